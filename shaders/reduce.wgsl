// reduce.wgsl — reductions over row-major [R, C] f32 matrices.
//
// Entry points (one invocation per output element unless stated; workgroup 64 along x; the
// linear workgroup index is wid.x + wid.y·nwg.x so > 65535 workgroups split over y):
// * row_sumsq:   out[r] = Σ_c x[r,c]²                  (per-sample squared norms)
// * row_dot:     out[r] = Σ_c x[r,c]·y[r,c]            (ghost norms: ⟨XXᵀ, GGᵀ⟩ per sample)
// * col_sum:     out[c] = Σ_r x[r,c] (+ out[c] if ACC) (bias gradients; ACC = accumulate)
// * segment_sum: out[s,c] = Σ_{off[s] ≤ r < off[s+1]} x[r,c]  (rows grouped by sample; off is
//   u32 [S+1], non-decreasing, off[S] ≤ R)
// * sum_all:     out[0] = Σ x — one 256-invocation workgroup: strided partial sums, then a
//   tree in workgroup memory (8 barriers; fine for the sizes it is used on: losses, norms).
// These are backward-pass helpers, not GEMMs; each sums in f32 in index order, so the error is
// ~ n·2⁻²⁴ relative in the worst case and ~ √n·2⁻²⁴ typically.

struct Params {
  R: u32,
  C: u32,
  S: u32,
}

override ACC: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> off: array<u32>;

fn lin(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * 64u + li;
}

@compute @workgroup_size(64)
fn row_sumsq(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let r = lin(wid, nwg, li);
  if (r >= p.R) {
    return;
  }
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) {
    let v = x[r * p.C + c];
    s = fma(v, v, s);
  }
  out[r] = s;
}

@compute @workgroup_size(64)
fn row_dot(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let r = lin(wid, nwg, li);
  if (r >= p.R) {
    return;
  }
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) {
    s = fma(x[r * p.C + c], y[r * p.C + c], s);
  }
  out[r] = s;
}

@compute @workgroup_size(64)
fn col_sum(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let c = lin(wid, nwg, li);
  if (c >= p.C) {
    return;
  }
  var s = 0.0;
  for (var r = 0u; r < p.R; r++) {
    s += x[r * p.C + c];
  }
  if (ACC) {
    s += out[c];
  }
  out[c] = s;
}

@compute @workgroup_size(64)
fn segment_sum(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let i = lin(wid, nwg, li);
  if (i >= p.S * p.C) {
    return;
  }
  let sgm = i / p.C;
  let c = i % p.C;
  var s = 0.0;
  for (var r = off[sgm]; r < off[sgm + 1u]; r++) {
    s += x[r * p.C + c];
  }
  out[i] = s;
}

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn sum_all(@builtin(local_invocation_index) li: u32) {
  let n = p.R * p.C;
  var s = 0.0;
  for (var i = li; i < n; i += 256u) {
    s += x[i];
  }
  part[li] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (li < w) {
      part[li] += part[li + w];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    out[0] = part[0];
  }
}
