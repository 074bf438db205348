// LayerNorm over the last dimension: y = (x − mean) · rstd · γ + β, rstd = 1/√(var + eps).
//
// Layout: x, y, dy, dx are [rows, H] row-major; γ, β are [H]; mean, rstd are [rows] (saved by
// the forward for the backward). dγ, dβ are [G, H] with G = rows / group_rows: sums over each
// group of group_rows consecutive rows (G = 1 for an ordinary batch sum; group_rows = T gives
// per-sample parameter gradients for DP). `accumulate` = 1 adds into dγ/dβ instead of writing.
//
// forward / backward_x: one invocation per row (64 per workgroup, linear workgroup index over a
// grid), summing in blocks of 32 columns (error ~(32 + H/32)·ε). Measured on llvmpipe at
// 4096×512: 11 ms, against 40–67 ms for one workgroup per row (or per 8 rows) with tree
// reductions — barriers and per-row workgroup scheduling dominate on CPU adapters. The variance
// is computed from centred values (two passes over the row), which avoids the E[x²] − E[x]²
// cancellation. H is unbounded (H ≤ 1024 in practice).
// backward_params: one invocation per (group, column), looping over the group's rows in order,
// so results are deterministic (no atomics) and neighbouring lanes read neighbouring columns.

struct P {
  rows: u32,
  h: u32,
  group_rows: u32,
  accumulate: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(10) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(11) var<storage, read> mean_in: array<f32>;
@group(0) @binding(12) var<storage, read> rstd_in: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let row = (wid.x + wid.y * nwg.x) * 64u + li;
  if (row >= p.rows) { return; }
  let base = row * p.h;
  let hf = f32(p.h);
  var s = 0.0;
  for (var j0 = 0u; j0 < p.h; j0 += 32u) {
    var blk = 0.0;
    for (var j = j0; j < min(j0 + 32u, p.h); j++) { blk += x[base + j]; }
    s += blk;
  }
  let m = s / hf;
  var v = 0.0;
  for (var j0 = 0u; j0 < p.h; j0 += 32u) {
    var blk = 0.0;
    for (var j = j0; j < min(j0 + 32u, p.h); j++) {
      let d = x[base + j] - m;
      blk += d * d;
    }
    v += blk;
  }
  let r = inverseSqrt(v / hf + p.eps);
  for (var j = 0u; j < p.h; j++) { y[base + j] = (x[base + j] - m) * r * gamma[j] + beta[j]; }
  mean[row] = m;
  rstd[row] = r;
}

// dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ, x̂ = (x − mean) · rstd.
@compute @workgroup_size(64)
fn backward_x(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let row = (wid.x + wid.y * nwg.x) * 64u + li;
  if (row >= p.rows) { return; }
  let base = row * p.h;
  let m = mean_in[row];
  let r = rstd_in[row];
  var a = 0.0;
  var b = 0.0;
  for (var j0 = 0u; j0 < p.h; j0 += 32u) {
    var ba = 0.0;
    var bb = 0.0;
    for (var j = j0; j < min(j0 + 32u, p.h); j++) {
      let g = dy[base + j] * gamma[j];
      ba += g;
      bb += g * (x[base + j] - m) * r;
    }
    a += ba;
    b += bb;
  }
  let hf = f32(p.h);
  let ta = a / hf;
  let tb = b / hf;
  for (var j = 0u; j < p.h; j++) {
    let g = dy[base + j] * gamma[j];
    let xh = (x[base + j] - m) * r;
    dx[base + j] = r * (g - ta - xh * tb);
  }
}

@compute @workgroup_size(64)
fn backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let groups = p.rows / p.group_rows;
  let col = gid.x;
  let g = gid.y;
  if (col >= p.h || g >= groups) { return; }
  // Two-level sum (blocks of 32 rows): rounding error grows ~(32 + rows/32)·ε instead of
  // rows·ε, which matters for a 4096-row batch sum.
  var sg = 0.0;
  var sb = 0.0;
  var rr = 0u;
  while (rr < p.group_rows) {
    let end = min(rr + 32u, p.group_rows);
    var bg = 0.0;
    var bb = 0.0;
    for (; rr < end; rr++) {
      let row = g * p.group_rows + rr;
      let d = dy[row * p.h + col];
      bg += d * (x[row * p.h + col] - mean_in[row]) * rstd_in[row];
      bb += d;
    }
    sg += bg;
    sb += bb;
  }
  let o = g * p.h + col;
  if (p.accumulate != 0u) {
    sg += dgamma[o];
    sb += dbeta[o];
  }
  dgamma[o] = sg;
  dbeta[o] = sb;
}

