// Masked mean pooling over a sequence (sentence features for the classifier head).
//
// Layout: x [B, T, H] row-major (padded batch), lens [B] u32 valid tokens per sample
// (1 ≤ lens[b] ≤ T; tokens t ≥ lens[b] are padding), out [B, H].
//   mean_pool:       out[b, j] = (1 / lens[b]) · Σ_{t < lens[b]} x[b, t, j]
//   mean_pool_back:  dx[b, t, j] = t < lens[b] ? dout[b, j] / lens[b] : 0   (overwrites dx)
// Workgroup: 64 invocations, one output element each, flattened over a 2-D grid (wid.y·nwg.x).
// Sums run in f32 in token order; T ≤ 512 keeps the relative error ~T·2⁻²⁴.

struct P { B: u32, T: u32, H: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> lens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * 64u + li;
}

@compute @workgroup_size(64)
fn mean_pool(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.B * p.H) { return; }
  let b = i / p.H;
  let j = i % p.H;
  let n = min(lens[b], p.T);
  var s = 0.0;
  for (var t = 0u; t < n; t++) {
    s += x[(b * p.T + t) * p.H + j];
  }
  out[i] = s / f32(max(n, 1u));
}

// Backward: x holds dout [B, H]; out receives dx [B, T, H].
@compute @workgroup_size(64)
fn mean_pool_back(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.B * p.T * p.H) { return; }
  let j = i % p.H;
  let bt = i / p.H;
  let b = bt / p.T;
  let t = bt % p.T;
  let n = min(lens[b], p.T);
  out[i] = select(0.0, x[b * p.H + j] / f32(max(n, 1u)), t < n);
}
