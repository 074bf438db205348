// LayerNorm over the last dimension: y = (x − mean) · rstd · γ + β, rstd = 1/√(var + eps).
//
// Layout: x, y, dy, dx are [rows, H] row-major; γ, β are [H]; mean, rstd are [rows] (saved by
// the forward for the backward). dγ, dβ are [G, H] with G = rows / group_rows: sums over each
// group of group_rows consecutive rows (G = 1 for an ordinary batch sum; group_rows = T gives
// per-sample parameter gradients for DP). `accumulate` = 1 adds into dγ/dβ instead of writing.
//
// forward / backward_x: one workgroup of 64 invocations per row (linear workgroup index over
// a grid), each invocation strides over the row; the two row sums are tree reductions in
// workgroup memory. The variance is computed from centred values (two passes over the row),
// which avoids the E[x²] − E[x]² cancellation. H is unbounded (H ≤ 1024 in practice).
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

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;

// Sum a and b over the workgroup; every invocation gets both totals.
fn reduce2(li: u32, a: f32, b: f32) -> vec2f {
  red_a[li] = a;
  red_b[li] = b;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red_a[li] += red_a[li + s];
      red_b[li] += red_b[li + s];
    }
    workgroupBarrier();
  }
  let r = vec2f(red_a[0], red_b[0]);
  workgroupBarrier(); // the buffers are reused by the next reduction
  return r;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup: barriers stay in uniform control flow
  let base = row * p.h;
  let hf = f32(p.h);
  var s = 0.0;
  for (var j = li; j < p.h; j += WG) { s += x[base + j]; }
  let m = reduce2(li, s, 0.0).x / hf;
  var v = 0.0;
  for (var j = li; j < p.h; j += WG) {
    let d = x[base + j] - m;
    v += d * d;
  }
  let r = inverseSqrt(reduce2(li, v, 0.0).x / hf + p.eps);
  for (var j = li; j < p.h; j += WG) {
    y[base + j] = (x[base + j] - m) * r * gamma[j] + beta[j];
  }
  if (li == 0u) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ, x̂ = (x − mean) · rstd.
@compute @workgroup_size(64)
fn backward_x(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.h;
  let m = mean_in[row];
  let r = rstd_in[row];
  var a = 0.0;
  var b = 0.0;
  for (var j = li; j < p.h; j += WG) {
    let g = dy[base + j] * gamma[j];
    a += g;
    b += g * (x[base + j] - m) * r;
  }
  let t = reduce2(li, a, b) / f32(p.h);
  for (var j = li; j < p.h; j += WG) {
    let g = dy[base + j] * gamma[j];
    let xh = (x[base + j] - m) * r;
    dx[base + j] = r * (g - t.x - xh * t.y);
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
