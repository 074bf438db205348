// Encoder-only small ops: the ones with no shared equivalent in pipeline/gpu/ops (LayerNorm,
// activations, losses, residual adds, dropout and plain reductions moved to the shared
// kernels; measured at least as fast on the encoder's shapes). Why each one stays:
// - embed_forward: x[r,:] = word[ids[r]] + pos[pids[r]] + type[tids[r]] (n = rows·E) with
//   explicit position ids; the shared embedding derives positions from the row index, which
//   cannot express RoBERTa's padding-aware position ids.
// - scatter_ps: per-sample embedding-table grads, out[b, ids[r], e] += g[r, e] for rows r of
//   sample b; one invocation per (b, e) walks its rows in order, so no two invocations touch
//   the same output (no float atomics in WGSL). out must be zeroed first. The shared backward
//   has no per-sample form, and its link pass is 2–8x slower here even for a batch sum.
// - seg_colsum: o[s, j] (+)= Σ_{t<len} in[(s·len + t)·n + j] (flags bit0 accumulate):
//   per-sample bias grads; the shared segmentSum cannot accumulate (ALBERT's shared layers
//   add every application into the same per-sample row).
// - rows_gather: o[b, :] = in[b·stride_rows, :];  rows_scatter: o[b·stride_rows, :] = in[b, :]
//   ([CLS] rows in and out of the padded batch).
// - rows_gather_idx: o[m, :] = x[ids[m], :]; rows_scatter_idx: o[ids[m], :] = x[m, :] (the row
//   indices must be distinct: one invocation per output element, no two write the same place).
// - mlm_ce: one invocation per predicted row m: softmax CE of logits x[m, :V] against class
//   ids[m]; loss o[m] = logsumexp − x[m, y], o2[m, :] = softmax − onehot (d loss[m] / d logits).
//   The shared crossEntropy (workgroup tree reduction per row) measured ~2x slower here.
// Workgroup 64 over a linear index (wid.x + wid.y·nwg.x) unless stated.
struct P { n: u32, a: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read> pids: array<u32>;
@group(0) @binding(6) var<storage, read> tids: array<u32>;
@group(0) @binding(7) var<storage, read> t1: array<f32>;
@group(0) @binding(8) var<storage, read> t2: array<f32>;
@group(0) @binding(9) var<storage, read> t3: array<f32>;
@group(0) @binding(10) var<storage, read_write> o2: array<f32>;

fn lin(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.x + wid.y * nwg.x) * 64u + li; }

// p.n = rows·E, p.a = E
@compute @workgroup_size(64)
fn embed_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let r = i / p.a; let e = i % p.a;
  o[i] = t1[ids[r] * p.a + e] + t2[pids[r] * p.a + e] + t3[tids[r] * p.a + e];
}

// p.n = B·E, p.a = E, p.b = T (rows per sample), p.c = V (table rows); x = g [B·T, E]
@compute @workgroup_size(64)
fn scatter_ps(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let e = i % p.a;
  for (var t = 0u; t < p.b; t++) {
    let r = bb * p.b + t;
    let dst = (bb * p.c + ids[r]) * p.a + e;
    o[dst] = o[dst] + x[r * p.a + e];
  }
}

// p.n = segments·cols, p.a = cols, p.b = rows per segment, p.c = flags (bit0 accumulate)
@compute @workgroup_size(64)
fn seg_colsum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let s = i / p.a; let j = i % p.a;
  var acc = 0.0;
  for (var t = 0u; t < p.b; t++) { acc += x[(s * p.b + t) * p.a + j]; }
  if ((p.c & 1u) != 0u) { acc += o[i]; }
  o[i] = acc;
}

// p.n = B·cols, p.a = cols, p.b = row stride (T)
@compute @workgroup_size(64)
fn rows_gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let j = i % p.a;
  o[i] = x[(bb * p.b) * p.a + j];
}

@compute @workgroup_size(64)
fn rows_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let j = i % p.a;
  o[(bb * p.b) * p.a + j] = x[i];
}

// p.n = M·cols, p.a = cols; ids = row indices [M]
@compute @workgroup_size(64)
fn rows_gather_idx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let m = i / p.a; let j = i % p.a;
  o[i] = x[ids[m] * p.a + j];
}

@compute @workgroup_size(64)
fn rows_scatter_idx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let m = i / p.a; let j = i % p.a;
  o[ids[m] * p.a + j] = x[i];
}

// p.n = M rows, p.a = V classes; x = logits [M, V], ids = target class per row
@compute @workgroup_size(64)
fn mlm_ce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let m = lin(wid, nwg, li);
  if (m >= p.n) { return; }
  let base = m * p.a;
  var mx = -3.4e38;
  for (var l = 0u; l < p.a; l++) { mx = max(mx, x[base + l]); }
  var z = 0.0;
  for (var l = 0u; l < p.a; l++) { z += exp(x[base + l] - mx); }
  let y = ids[m];
  for (var l = 0u; l < p.a; l++) {
    o2[base + l] = exp(x[base + l] - mx) / z - select(0.0, 1.0, l == y);
  }
  o[m] = mx + log(z) - x[base + y];
}
