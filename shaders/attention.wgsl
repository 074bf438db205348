// Scaled dot-product attention with a key-padding mask, forward and backward, plus a
// standalone row softmax.
//
// Layout: Q, K, V, O and their gradients are [B, T, C] row-major with C = nh·dh and heads
// interleaved as in HF: head h owns columns h·dh .. (h+1)·dh. The softmax P (saved for the
// backward) and the score gradient dS are [B, nh, T, T]: row (b, h, i) holds query i's weights
// over keys j. Mask (override MASK_KIND): 0 = per-sample lengths, u32 [B] (keys j < len valid);
// 1 = key mask, u32 [B, T] (nonzero = valid). Masked keys get −∞ before the softmax, i.e. P = 0.
// A query row with no valid key at all (a length-0 sample) gets P = 0 and O = 0 (finite, and
// its backward is 0) instead of the NaN that softmax over all −∞ would give. Padded *query* rows
// are computed like any other row (their keys are the sample's valid keys). Rows of K and V at
// masked keys are never read (P = 0 / dS = 0 entries are skipped), so garbage there, even NaN,
// cannot leak into outputs or gradients.
//
// Workgroups: 64 invocations, one workgroup per row of P (scores_softmax, bwd_ds, pv, bwd_dq:
// (b, h, i)) or per key row (bwd_dkv: (b, h, j)); linear workgroup index wid.x + wid.y·nwg.x.
// Row kernels split keys over invocations (j = li, li + 64, …) and reduce max / sums in
// workgroup memory; the PV-style kernels split the dh columns over invocations and loop over
// keys, so lanes read consecutive V/K/Q columns while the P/dS value is uniform. Assumes dh ≤ 128
// (workgroup copy of one Q / dO row) and any T. Sums are sequential in f32 (T ≤ 512 terms).
//
// softmax_fwd / softmax_bwd: row softmax of an [rows, n] array (−∞ entries allowed; an all −∞
// row gives zeros), backward dx = y ⊙ (dy − Σ y·dy); same one-workgroup-per-row shape.

override MASK_KIND: u32 = 0u;

struct P {
  b: u32,
  t: u32,
  nh: u32,
  dh: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read> probs_in: array<f32>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;
@group(0) @binding(10) var<storage, read_write> dq: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<f32>;
@group(0) @binding(12) var<storage, read_write> dv: array<f32>;
@group(0) @binding(13) var<storage, read> ds_in: array<f32>;

const WG: u32 = 64u;
const NEG_INF: f32 = -3.4028234663852886e38; // −FLT_MAX: WGSL has no ∞ literal
var<workgroup> red: array<f32, 64>;
var<workgroup> row_buf: array<f32, 128>;

fn key_valid(b: u32, j: u32) -> bool {
  if (MASK_KIND == 0u) { return j < mask[b]; }
  return mask[b * p.t + j] != 0u;
}

fn reduce_max(li: u32, a: f32) -> f32 {
  red[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]); // uniform: the caller branches on it
  workgroupBarrier();
  return r;
}

fn reduce_sum(li: u32, a: f32) -> f32 {
  red[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// Softmax of probs[base .. base + n) in place; entries ≤ NEG_INF count as −∞ (weight 0).
fn softmax_in_place(li: u32, base: u32, n: u32, local_max: f32) {
  let m = reduce_max(li, local_max);
  if (m <= NEG_INF) { // no finite entry: define the row as zeros
    for (var j = li; j < n; j += WG) { probs[base + j] = 0.0; }
    return;
  }
  var s = 0.0;
  for (var j = li; j < n; j += WG) {
    let x = probs[base + j];
    let e = select(exp(x - m), 0.0, x <= NEG_INF);
    probs[base + j] = e;
    s += e;
  }
  let inv = 1.0 / reduce_sum(li, s);
  for (var j = li; j < n; j += WG) { probs[base + j] *= inv; }
}

@compute @workgroup_size(64)
fn scores_softmax(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x; // (b, h, i)
  if (row >= p.b * p.nh * p.t) { return; }
  let t = p.t;
  let i = row % t;
  let bh = row / t;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let c = p.nh * p.dh;
  let qoff = (b * t + i) * c + h * p.dh;
  for (var d = li; d < p.dh; d += WG) { row_buf[d] = q[qoff + d] * p.scale; }
  workgroupBarrier();
  let base = row * t;
  var lm = NEG_INF;
  for (var j = li; j < t; j += WG) {
    var s = NEG_INF;
    if (key_valid(b, j)) {
      let koff = (b * t + j) * c + h * p.dh;
      var acc = 0.0;
      for (var d = 0u; d < p.dh; d++) { acc = fma(row_buf[d], k[koff + d], acc); }
      s = acc;
      lm = max(lm, s);
    }
    probs[base + j] = s;
  }
  softmax_in_place(li, base, t, lm);
}

@compute @workgroup_size(64)
fn pv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
      @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b * p.nh * p.t) { return; }
  let t = p.t;
  let i = row % t;
  let bh = row / t;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let c = p.nh * p.dh;
  let base = row * t;
  for (var d = li; d < p.dh; d += WG) {
    var acc = 0.0;
    var voff = b * t * c + h * p.dh + d;
    for (var j = 0u; j < t; j++) {
      let pj = probs_in[base + j]; // uniform across the workgroup
      if (pj != 0.0) { acc = fma(pj, v[voff], acc); } // masked rows of V are never read
      voff += c;
    }
    o[(b * t + i) * c + h * p.dh + d] = acc;
  }
}

// dS = scale · P ⊙ (dP − Σ_j P·dP), dP_j = dO_i · V_j.
@compute @workgroup_size(64)
fn bwd_ds(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b * p.nh * p.t) { return; }
  let t = p.t;
  let i = row % t;
  let bh = row / t;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let c = p.nh * p.dh;
  let ooff = (b * t + i) * c + h * p.dh;
  for (var d = li; d < p.dh; d += WG) { row_buf[d] = dout[ooff + d]; }
  workgroupBarrier();
  let base = row * t;
  var dot = 0.0;
  for (var j = li; j < t; j += WG) {
    let pj = probs_in[base + j];
    var dp = 0.0;
    if (pj != 0.0) { // masked keys (P = 0) contribute nothing
      let voff = (b * t + j) * c + h * p.dh;
      for (var d = 0u; d < p.dh; d++) { dp = fma(row_buf[d], v[voff + d], dp); }
    }
    ds[base + j] = dp;
    dot += pj * dp;
  }
  let tot = reduce_sum(li, dot);
  for (var j = li; j < t; j += WG) {
    ds[base + j] = p.scale * probs_in[base + j] * (ds[base + j] - tot);
  }
}

// dQ_i = Σ_j dS_ij K_j (the scale is already in dS).
@compute @workgroup_size(64)
fn bwd_dq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b * p.nh * p.t) { return; }
  let t = p.t;
  let i = row % t;
  let bh = row / t;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let c = p.nh * p.dh;
  let base = row * t;
  for (var d = li; d < p.dh; d += WG) {
    var acc = 0.0;
    var koff = b * t * c + h * p.dh + d;
    for (var j = 0u; j < t; j++) {
      let g = ds_in[base + j];
      if (g != 0.0) { acc = fma(g, k[koff], acc); } // masked rows of K are never read
      koff += c;
    }
    dq[(b * t + i) * c + h * p.dh + d] = acc;
  }
}

// dK_j = Σ_i dS_ij Q_i, dV_j = Σ_i P_ij dO_i; one workgroup per key row (b, h, j).
@compute @workgroup_size(64)
fn bwd_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b * p.nh * p.t) { return; }
  let t = p.t;
  let j = row % t;
  let bh = row / t;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let c = p.nh * p.dh;
  let col = bh * t * t + j; // P[b, h, 0, j]
  let valid = key_valid(b, j);
  for (var d = li; d < p.dh; d += WG) {
    var ak = 0.0;
    var av = 0.0;
    var off = b * t * c + h * p.dh + d;
    for (var i = 0u; i < select(0u, t, valid); i++) { // a masked key's gradients are 0
      ak = fma(ds_in[col + i * t], q[off], ak);
      av = fma(probs_in[col + i * t], dout[off], av);
      off += c;
    }
    let w = (b * t + j) * c + h * p.dh + d;
    dk[w] = ak;
    dv[w] = av;
  }
}

// Row softmax: probs (binding 5) in place over [p.b rows, p.t columns], input copied from q.
@compute @workgroup_size(64)
fn softmax_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b) { return; }
  let base = row * p.t;
  var lm = NEG_INF;
  for (var j = li; j < p.t; j += WG) {
    let x = max(q[base + j], NEG_INF); // −∞ inputs become −FLT_MAX, i.e. weight 0
    probs[base + j] = x;
    lm = max(lm, x);
  }
  softmax_in_place(li, base, p.t, lm);
}

// dx (binding 9) = y ⊙ (dy − Σ y·dy), y = probs_in, dy = dout.
@compute @workgroup_size(64)
fn softmax_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b) { return; }
  let base = row * p.t;
  var dot = 0.0;
  for (var j = li; j < p.t; j += WG) { dot += probs_in[base + j] * dout[base + j]; }
  let tot = reduce_sum(li, dot);
  for (var j = li; j < p.t; j += WG) {
    ds[base + j] = probs_in[base + j] * (dout[base + j] - tot);
  }
}

// ---------------------------------------------------------------------------------------------
// Fast path for dh % 4 == 0 (BERT: dh = 64). Same results, different schedule: each workgroup
// owns a block of R = 8 rows of one (b, h), so every K/V/Q/dO vec4 a lane loads is reused for
// 8 rows (register blocking), and the 8 rows' Q / P / dS values are read at addresses that are
// uniform across the workgroup (broadcast loads on CPU adapters); the softmax / dS row sums of
// the 8 rows are reduced together. scores4 / bwd_ds4: 64 invocations over keys. pv4 / bwd_dq4 / bwd_dkv4: override DH4_WG
// invocations (= dh / 4, ≤ 32) over vec4 columns. Rows past T in a block are clamped for
// loads and never written.

override DH4_WG: u32 = 16u;
const R: u32 = 8u;

@group(0) @binding(14) var<storage, read> q4: array<vec4f>;
@group(0) @binding(15) var<storage, read> k4: array<vec4f>;
@group(0) @binding(16) var<storage, read> v4: array<vec4f>;
@group(0) @binding(17) var<storage, read> dout4: array<vec4f>;
@group(0) @binding(18) var<storage, read_write> o4: array<vec4f>;
@group(0) @binding(19) var<storage, read_write> dq4: array<vec4f>;
@group(0) @binding(20) var<storage, read_write> dk4: array<vec4f>;
@group(0) @binding(21) var<storage, read_write> dv4: array<vec4f>;

struct Blk {
  b: u32,
  h: u32,
  bh: u32,
  r0: u32, // first row of the block
}

// Decode a block index (b, h, row block) and report whether it is in range.
fn block(wid: vec3u, nwg: vec3u) -> Blk {
  let nblk = (p.t + R - 1u) / R;
  let idx = wid.x + wid.y * nwg.x;
  let bh = idx / nblk;
  return Blk(bh / p.nh, bh % p.nh, bh, (idx % nblk) * R);
}

fn n_blocks() -> u32 {
  return p.b * p.nh * ((p.t + R - 1u) / R);
}

// Offset of the vec4 (row, column d4) of head h in a [B, T, C] tensor; the row is clamped.
fn at4(b: u32, row: u32, h: u32, d4: u32) -> u32 {
  let c4 = p.nh * p.dh / 4u;
  return (b * p.t + min(row, p.t - 1u)) * c4 + h * (p.dh / 4u) + d4;
}

// Number of keys that can be valid (lengths mode: the sample's length; key-mask mode: T).
fn key_end(b: u32) -> u32 {
  if (MASK_KIND == 0u) { return min(mask[b], p.t); }
  return p.t;
}

// acc[r] = Σ_d Q[r0 + r]·K[j] for r < 8 (scores). Two copies (dots8_qk, dots8_ov) because
// an entry point's bind group layout includes every buffer its call graph mentions.
fn dots8_qk(k: Blk, j: u32) -> array<f32, 8> {
  var acc: array<f32, 8>;
  for (var d4 = 0u; d4 < p.dh / 4u; d4++) {
    let y = k4[at4(k.b, j, k.h, d4)];
    for (var r = 0u; r < R; r++) { acc[r] += dot(q4[at4(k.b, k.r0 + r, k.h, d4)], y); }
  }
  return acc;
}

// acc[r] = Σ_d dO[r0 + r]·V[j] for r < 8 (dP).
fn dots8_ov(k: Blk, j: u32) -> array<f32, 8> {
  var acc: array<f32, 8>;
  for (var d4 = 0u; d4 < p.dh / 4u; d4++) {
    let y = v4[at4(k.b, j, k.h, d4)];
    for (var r = 0u; r < R; r++) { acc[r] += dot(dout4[at4(k.b, k.r0 + r, k.h, d4)], y); }
  }
  return acc;
}

var<workgroup> red8: array<array<f32, 8>, 64>;

// Reduce 8 per-row values over the workgroup at once (one barrier ladder for 8 rows).
fn reduce8(li: u32, a: array<f32, 8>, is_max: bool) -> array<f32, 8> {
  red8[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      for (var r = 0u; r < R; r++) {
        let x = red8[li][r];
        let y = red8[li + s][r];
        red8[li][r] = select(x + y, max(x, y), is_max);
      }
    }
    workgroupBarrier();
  }
  let out = red8[0];
  workgroupBarrier();
  return out;
}

// Scores and softmax for 8 query rows: each invocation keeps to its own keys j = li + 64·n, so
// it only re-reads what it wrote itself between the passes; the 8 rows' max and sum are
// reduced together.
@compute @workgroup_size(64)
fn scores4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  if (wid.x + wid.y * nwg.x >= n_blocks()) { return; }
  let k = block(wid, nwg);
  var lm: array<f32, 8>;
  for (var r = 0u; r < R; r++) { lm[r] = NEG_INF; }
  for (var j = li; j < p.t; j += WG) {
    let valid = key_valid(k.b, j);
    var acc: array<f32, 8>;
    if (valid) { acc = dots8_qk(k, j); }
    for (var r = 0u; r < R; r++) {
      let i = k.r0 + r;
      let sv = select(NEG_INF, acc[r] * p.scale, valid);
      lm[r] = max(lm[r], sv);
      if (i < p.t) { probs[(k.bh * p.t + i) * p.t + j] = sv; }
    }
  }
  let m = reduce8(li, lm, true);
  var ls: array<f32, 8>;
  for (var j = li; j < p.t; j += WG) {
    for (var r = 0u; r < R; r++) {
      let i = k.r0 + r;
      if (i < p.t) {
        let o = (k.bh * p.t + i) * p.t + j;
        let x = probs[o];
        let e = select(exp(x - m[r]), 0.0, x <= NEG_INF);
        probs[o] = e;
        ls[r] += e;
      }
    }
  }
  let tot = reduce8(li, ls, false);
  for (var j = li; j < p.t; j += WG) {
    for (var r = 0u; r < R; r++) {
      let i = k.r0 + r;
      // A row with no valid key has sum 0: define it as zeros (not 0/0).
      let inv = select(1.0 / tot[r], 0.0, tot[r] == 0.0);
      if (i < p.t) { probs[(k.bh * p.t + i) * p.t + j] *= inv; }
    }
  }
}

// O[r0 + r] = Σ_j P[r0 + r, j] V[j] (pv4) — one vec4 column per invocation.
@compute @workgroup_size(DH4_WG)
fn pv4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  if (wid.x + wid.y * nwg.x >= n_blocks()) { return; }
  let k = block(wid, nwg);
  let dh4 = p.dh / 4u;
  let end = key_end(k.b);
  for (var d4 = li; d4 < dh4; d4 += DH4_WG) {
    var acc: array<vec4f, 8>;
    for (var j = 0u; j < end; j++) {
      var w: array<f32, 8>;
      var any_nz = false;
      for (var r = 0u; r < R; r++) {
        w[r] = probs_in[(k.bh * p.t + min(k.r0 + r, p.t - 1u)) * p.t + j];
        any_nz = any_nz || w[r] != 0.0;
      }
      if (!any_nz) { continue; } // masked key: its V row is never read
      let y = v4[at4(k.b, j, k.h, d4)];
      for (var r = 0u; r < R; r++) { acc[r] = fma(vec4f(w[r]), y, acc[r]); }
    }
    for (var r = 0u; r < R; r++) {
      if (k.r0 + r < p.t) { o4[at4(k.b, k.r0 + r, k.h, d4)] = acc[r]; }
    }
  }
}

// dS = scale · P ⊙ (dP − Σ_j P·dP) with dP = dO·Vᵀ, for 8 query rows (keys split over
// invocations as in scores4; dP is staged in ds by the invocation that owns it).
@compute @workgroup_size(64)
fn bwd_ds4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  if (wid.x + wid.y * nwg.x >= n_blocks()) { return; }
  let k = block(wid, nwg);
  var ld: array<f32, 8>;
  for (var j = li; j < p.t; j += WG) {
    var acc: array<f32, 8>;
    if (key_valid(k.b, j)) { acc = dots8_ov(k, j); }
    for (var r = 0u; r < R; r++) {
      let i = k.r0 + r;
      if (i < p.t) {
        let o = (k.bh * p.t + i) * p.t + j;
        ds[o] = acc[r];
        ld[r] += probs_in[o] * acc[r];
      }
    }
  }
  let tot = reduce8(li, ld, false);
  for (var j = li; j < p.t; j += WG) {
    for (var r = 0u; r < R; r++) {
      let i = k.r0 + r;
      if (i < p.t) {
        let o = (k.bh * p.t + i) * p.t + j;
        ds[o] = p.scale * probs_in[o] * (ds[o] - tot[r]);
      }
    }
  }
}

// dQ[r0 + r] = Σ_j dS[r0 + r, j] K[j].
@compute @workgroup_size(DH4_WG)
fn bwd_dq4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  if (wid.x + wid.y * nwg.x >= n_blocks()) { return; }
  let k = block(wid, nwg);
  let dh4 = p.dh / 4u;
  let end = key_end(k.b);
  for (var d4 = li; d4 < dh4; d4 += DH4_WG) {
    var acc: array<vec4f, 8>;
    for (var j = 0u; j < end; j++) {
      var w: array<f32, 8>;
      var any_nz = false;
      for (var r = 0u; r < R; r++) {
        w[r] = ds_in[(k.bh * p.t + min(k.r0 + r, p.t - 1u)) * p.t + j];
        any_nz = any_nz || w[r] != 0.0;
      }
      if (!any_nz) { continue; }
      let y = k4[at4(k.b, j, k.h, d4)];
      for (var r = 0u; r < R; r++) { acc[r] = fma(vec4f(w[r]), y, acc[r]); }
    }
    for (var r = 0u; r < R; r++) {
      if (k.r0 + r < p.t) { dq4[at4(k.b, k.r0 + r, k.h, d4)] = acc[r]; }
    }
  }
}

// dK[j0 + r] = Σ_i dS[i, j0 + r] Q[i], dV[j0 + r] = Σ_i P[i, j0 + r] dO[i]; the block is of keys.
@compute @workgroup_size(DH4_WG)
fn bwd_dkv4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  if (wid.x + wid.y * nwg.x >= n_blocks()) { return; }
  let k = block(wid, nwg);
  let dh4 = p.dh / 4u;
  let col = k.bh * p.t * p.t;
  for (var d4 = li; d4 < dh4; d4 += DH4_WG) {
    var ak: array<vec4f, 8>;
    var av: array<vec4f, 8>;
    for (var i = 0u; i < p.t; i++) {
      let xq = q4[at4(k.b, i, k.h, d4)];
      let xo = dout4[at4(k.b, i, k.h, d4)];
      for (var r = 0u; r < R; r++) {
        let j = min(k.r0 + r, p.t - 1u);
        ak[r] = fma(vec4f(ds_in[col + i * p.t + j]), xq, ak[r]);
        av[r] = fma(vec4f(probs_in[col + i * p.t + j]), xo, av[r]);
      }
    }
    for (var r = 0u; r < R; r++) {
      let j = k.r0 + r;
      if (j < p.t) {
        let valid = key_valid(k.b, j); // masked keys: exactly 0 whatever Q / dO hold
        dk4[at4(k.b, j, k.h, d4)] = select(vec4f(0.0), ak[r], valid);
        dv4[at4(k.b, j, k.h, d4)] = select(vec4f(0.0), av[r], valid);
      }
    }
  }
}
