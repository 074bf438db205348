// BERT embeddings: out[r] = word[ids[r]] + pos[(r mod T) + pos_offset] + type[types[r]], and
// the backward scatter-add into the three tables' gradients.
//
// Layout: ids, types are u32 [N = B·T] (row r = sample r / T, position r mod T); tables are
// [V, E], [P, E], [TV, E]; out / dout are [N, E]. An id, type or position outside its table
// yields NaN in the forward (loud rather than silently clamped; the wrapper checks positions).
//
// Determinism without float atomics (the backward *accumulates* into the table gradients,
// so callers zero them once per step and several micro-batches can add up):
// - bwd_links (one invocation per token, 64 per workgroup): links[r] = index of the next token
//   with the same id (N if none) in bits 0..30, bit 31 set when an earlier token has the same
//   id. O(N²) id comparisons with the inner index uniform across lanes (broadcast loads).
// - bwd_word (one workgroup of 64 per token): only the first occurrence of each id owns its
//   table row; it walks the chain of later occurrences in token order, summing dout, and adds
//   the sum once. Every row is written by exactly one workgroup, in a fixed order.
// - bwd_pos / bwd_type (one invocation per (table row, column), 64-wide in x over columns):
//   loop over the tokens that map to that row in token order.

struct P {
  n: u32,          // tokens N
  t: u32,          // sequence length T
  e: u32,          // width E
  vocab: u32,      // V
  positions: u32,  // P
  type_vocab: u32, // TV
  pos_offset: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> types: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<f32>;
@group(0) @binding(4) var<storage, read> pos: array<f32>;
@group(0) @binding(5) var<storage, read> ttab: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> links: array<u32>;
@group(0) @binding(9) var<storage, read> links_in: array<u32>;
@group(0) @binding(10) var<storage, read_write> dword: array<f32>;
@group(0) @binding(11) var<storage, read_write> dpos: array<f32>;
@group(0) @binding(12) var<storage, read_write> dtype: array<f32>;

const WG: u32 = 64u;
const HAS_PREV: u32 = 0x80000000u;

fn nan() -> f32 {
  return bitcast<f32>(0x7fc00000u);
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.n) { return; }
  let id = ids[r];
  let tt = types[r];
  let pr = r % p.t + p.pos_offset;
  let ok = id < p.vocab && tt < p.type_vocab && pr < p.positions;
  let wi = min(id, p.vocab - 1u) * p.e;
  let ti = min(tt, p.type_vocab - 1u) * p.e;
  let pi = min(pr, p.positions - 1u) * p.e;
  for (var c = li; c < p.e; c += WG) {
    let s = word[wi + c] + pos[pi + c] + ttab[ti + c];
    out[r * p.e + c] = select(nan(), s, ok);
  }
}

@compute @workgroup_size(64)
fn bwd_links(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + li;
  if (r >= p.n) { return; }
  let id = ids[r];
  var prev = 0u;
  for (var s = 0u; s < r; s++) {
    if (ids[s] == id) {
      prev = HAS_PREV;
      break;
    }
  }
  var next = p.n;
  for (var s = r + 1u; s < p.n; s++) {
    if (ids[s] == id) {
      next = s;
      break;
    }
  }
  links[r] = next | prev;
}

@compute @workgroup_size(64)
fn bwd_word(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.n) { return; }
  if ((links_in[r] & HAS_PREV) != 0u) { return; } // not the owner of this id's row
  let id = ids[r];
  if (id >= p.vocab) { return; }
  for (var c = li; c < p.e; c += WG) {
    var acc = 0.0;
    var s = r;
    while (s < p.n) {
      acc += dout[s * p.e + c];
      s = links_in[s] & ~HAS_PREV;
    }
    dword[id * p.e + c] += acc;
  }
}

@compute @workgroup_size(64)
fn bwd_pos(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let tpos = gid.y; // position within the sequence
  if (c >= p.e || tpos >= p.t) { return; }
  let pr = tpos + p.pos_offset;
  if (pr >= p.positions) { return; }
  var acc = 0.0;
  for (var r = tpos; r < p.n; r += p.t) { acc += dout[r * p.e + c]; }
  dpos[pr * p.e + c] += acc;
}

@compute @workgroup_size(64)
fn bwd_type(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let k = gid.y;
  if (c >= p.e || k >= p.type_vocab) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.n; r++) {
    if (types[r] == k) { acc += dout[r * p.e + c]; }
  }
  dtype[k * p.e + c] += acc;
}
