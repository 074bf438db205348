// LayerNorm over the last dimension: y = (x − mean) · rstd · γ + β, rstd = 1/√(var + eps).
//
// Layout: x, y, dy, dx are [rows, H] row-major; γ, β are [H]; mean, rstd are [rows] (saved by
// the forward for the backward). dγ, dβ are [G, H] with G = rows / group_rows: sums over each
// group of group_rows consecutive rows (G = 1 for an ordinary batch sum; group_rows = T gives
// per-sample parameter gradients for DP). `accumulate` = 1 adds into dγ/dβ instead of writing.
//
// forward / backward_x: one workgroup of 64 invocations per block of 8 rows (linear workgroup
// index over a grid), each invocation strides over the columns; the row sums of the 8 rows are
// reduced together in workgroup memory (one barrier ladder per 8 rows, not per row). The variance is computed from centred values (two passes over the row),
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
const R: u32 = 8u; // rows per workgroup
var<workgroup> red_a: array<array<f32, 8>, 64>;
var<workgroup> red_b: array<array<f32, 8>, 64>;

// Sum a[r] and b[r] over the workgroup for the 8 rows at once: one barrier ladder per 8 rows
// (barriers dominate on CPU adapters); every invocation gets the totals.
fn reduce8x2(li: u32, a: array<f32, 8>, b: array<f32, 8>) -> array<array<f32, 8>, 2> {
  red_a[li] = a;
  red_b[li] = b;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      for (var r = 0u; r < R; r++) {
        red_a[li][r] += red_a[li + s][r];
        red_b[li][r] += red_b[li + s][r];
      }
    }
    workgroupBarrier();
  }
  let out = array<array<f32, 8>, 2>(red_a[0], red_b[0]);
  workgroupBarrier(); // the buffers are reused by the next reduction
  return out;
}

// Rows r0 .. r0 + 7 of this workgroup; rows past p.rows are clamped for reads, never written.
fn row_of(wid: vec3u, nwg: vec3u, r: u32) -> u32 {
  return min((wid.x + wid.y * nwg.x) * R + r, p.rows - 1u);
}

fn valid_row(wid: vec3u, nwg: vec3u, r: u32) -> bool {
  return (wid.x + wid.y * nwg.x) * R + r < p.rows;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  // uniform per workgroup: barriers stay in uniform control flow
  if ((wid.x + wid.y * nwg.x) * R >= p.rows) { return; }
  let hf = f32(p.h);
  var s: array<f32, 8>;
  for (var r = 0u; r < R; r++) {
    let base = row_of(wid, nwg, r) * p.h;
    for (var j = li; j < p.h; j += WG) { s[r] += x[base + j]; }
  }
  let zero = array<f32, 8>();
  let m = reduce8x2(li, s, zero)[0];
  var v: array<f32, 8>;
  for (var r = 0u; r < R; r++) {
    let base = row_of(wid, nwg, r) * p.h;
    let mr = m[r] / hf;
    for (var j = li; j < p.h; j += WG) {
      let d = x[base + j] - mr;
      v[r] += d * d;
    }
  }
  let var_ = reduce8x2(li, v, zero)[0];
  for (var r = 0u; r < R; r++) {
    if (!valid_row(wid, nwg, r)) { continue; }
    let row = row_of(wid, nwg, r);
    let base = row * p.h;
    let mr = m[r] / hf;
    let rs = inverseSqrt(var_[r] / hf + p.eps);
    for (var j = li; j < p.h; j += WG) {
      y[base + j] = (x[base + j] - mr) * rs * gamma[j] + beta[j];
    }
    if (li == 0u) {
      mean[row] = mr;
      rstd[row] = rs;
    }
  }
}

// dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ, x̂ = (x − mean) · rstd.
@compute @workgroup_size(64)
fn backward_x(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  if ((wid.x + wid.y * nwg.x) * R >= p.rows) { return; }
  var a: array<f32, 8>;
  var b: array<f32, 8>;
  for (var r = 0u; r < R; r++) {
    let row = row_of(wid, nwg, r);
    let base = row * p.h;
    let m = mean_in[row];
    let rs = rstd_in[row];
    for (var j = li; j < p.h; j += WG) {
      let g = dy[base + j] * gamma[j];
      a[r] += g;
      b[r] += g * (x[base + j] - m) * rs;
    }
  }
  let t = reduce8x2(li, a, b);
  let hf = f32(p.h);
  for (var r = 0u; r < R; r++) {
    if (!valid_row(wid, nwg, r)) { continue; }
    let row = row_of(wid, nwg, r);
    let base = row * p.h;
    let m = mean_in[row];
    let rs = rstd_in[row];
    let ta = t[0][r] / hf;
    let tb = t[1][r] / hf;
    for (var j = li; j < p.h; j += WG) {
      let g = dy[base + j] * gamma[j];
      let xh = (x[base + j] - m) * rs;
      dx[base + j] = rs * (g - ta - xh * tb);
    }
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

// ---------------------------------------------------------------------------------------------
// forward4: the same as forward for H % 4 == 0, with vec4 loads and stores (4× fewer memory
// instructions, which bound this kernel on CPU adapters).
@group(0) @binding(13) var<storage, read> x4: array<vec4f>;
@group(0) @binding(14) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(15) var<storage, read> beta4: array<vec4f>;
@group(0) @binding(16) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(64)
fn forward4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  if ((wid.x + wid.y * nwg.x) * R >= p.rows) { return; }
  let hf = f32(p.h);
  let h4 = p.h / 4u;
  var s: array<f32, 8>;
  for (var r = 0u; r < R; r++) {
    let base = row_of(wid, nwg, r) * h4;
    var acc = vec4f(0.0);
    for (var j = li; j < h4; j += WG) { acc += x4[base + j]; }
    s[r] = (acc.x + acc.y) + (acc.z + acc.w);
  }
  let zero = array<f32, 8>();
  let m = reduce8x2(li, s, zero)[0];
  var v: array<f32, 8>;
  for (var r = 0u; r < R; r++) {
    let base = row_of(wid, nwg, r) * h4;
    let mr = vec4f(m[r] / hf);
    var acc = vec4f(0.0);
    for (var j = li; j < h4; j += WG) {
      let d = x4[base + j] - mr;
      acc += d * d;
    }
    v[r] = (acc.x + acc.y) + (acc.z + acc.w);
  }
  let var_ = reduce8x2(li, v, zero)[0];
  for (var r = 0u; r < R; r++) {
    if (!valid_row(wid, nwg, r)) { continue; }
    let row = row_of(wid, nwg, r);
    let base = row * h4;
    let mr = m[r] / hf;
    let rs = inverseSqrt(var_[r] / hf + p.eps);
    for (var j = li; j < h4; j += WG) {
      y4[base + j] = (x4[base + j] - vec4f(mr)) * rs * gamma4[j] + beta4[j];
    }
    if (li == 0u) {
      mean[row] = mr;
      rstd[row] = rs;
    }
  }
}
