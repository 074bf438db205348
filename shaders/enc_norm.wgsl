// Encoder-private LayerNorm over the last dim (naive, one invocation per row).
// x, y, dy, dx: [rows, n]; mean, rstd: [rows]; gamma, beta: [n].
// backward_params also writes per-row parameter contributions grow = dy·x̂ and brow = dy
// ([rows, n]) so per-sample dγ/dβ come from a segmented column sum (no cross-row race).
// Workgroup 64, linear row index.
struct P { rows: u32, n: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> mn: array<f32>;
@group(0) @binding(9) var<storage, read> rs: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> grow: array<f32>;
@group(0) @binding(12) var<storage, read_write> brow: array<f32>;

fn lin(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.x + wid.y * nwg.x) * 64u + li; }

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg, li);
  if (r >= p.rows) { return; }
  let o = r * p.n;
  var m = 0.0;
  for (var i = 0u; i < p.n; i++) { m += x[o + i]; }
  m /= f32(p.n);
  var va = 0.0;
  for (var i = 0u; i < p.n; i++) { let d = x[o + i] - m; va += d * d; }
  let inv = inverseSqrt(va / f32(p.n) + p.eps);
  for (var i = 0u; i < p.n; i++) { y[o + i] = (x[o + i] - m) * inv * gamma[i] + beta[i]; }
  mean[r] = m;
  rstd[r] = inv;
}

fn dx_row(r: u32) {
  let o = r * p.n;
  var a = 0.0;
  var b = 0.0;
  for (var i = 0u; i < p.n; i++) {
    let xh = (x[o + i] - mn[r]) * rs[r];
    let g = dy[o + i] * gamma[i];
    a += g;
    b += g * xh;
  }
  a /= f32(p.n);
  b /= f32(p.n);
  for (var i = 0u; i < p.n; i++) {
    let xh = (x[o + i] - mn[r]) * rs[r];
    dx[o + i] = rs[r] * (dy[o + i] * gamma[i] - a - xh * b);
  }
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg, li);
  if (r >= p.rows) { return; }
  dx_row(r);
}

@compute @workgroup_size(64)
fn backward_params(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg, li);
  if (r >= p.rows) { return; }
  dx_row(r);
  let o = r * p.n;
  for (var i = 0u; i < p.n; i++) {
    grow[o + i] = dy[o + i] * (x[o + i] - mn[r]) * rs[r];
    brow[o + i] = dy[o + i];
  }
}
