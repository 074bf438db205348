// lora.wgsl — the LoRA-specific kernels; the rest of a LoRA projection is matmul.wgsl.
//
// y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ with x [T, in], W [out, in], A [r, in], B [out, r], s = α/r.
// * lora_down: h = x·Aᵀ, [T, r] — the rank-r bottleneck. Skinny (r ≤ 64): a 64×64 GEMM tile
//   would leave most lanes idle, so one invocation owns one token row and 4 ranks
//   (workgroup 64 along tokens, wid.y = rank block of 4), looping over `in`.
// * rows_scale: out[t, c] = coef[t / T] · g[t, c] — book-keeping's diag(c per token's sample),
//   so Σ_i c_i·X_iᵀG_i = Xᵀ·(diag(c)·G) is one GEMM instead of S per-sample ones. Rows are
//   grouped by sample with T rows each (padded layout); padded rows carry dY = 0.
// Assumes row-major, densely packed tensors; the linear workgroup index is wid.x + wid.y·nwg.x.

struct Params {
  T: u32,
  IN: u32,
  R: u32,
  C: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<f32>;
@group(0) @binding(4) var<storage, read> coef: array<f32>;

@compute @workgroup_size(64)
fn lora_down(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let t = wid.x * 64u + li;
  let j0 = wid.y * 4u;
  if (t >= p.T) {
    return;
  }
  let rx = p.R - 1u;
  let a0 = min(j0, rx) * p.IN;
  let a1 = min(j0 + 1u, rx) * p.IN;
  let a2 = min(j0 + 2u, rx) * p.IN;
  let a3 = min(j0 + 3u, rx) * p.IN;
  var acc = vec4f(0.0);
  for (var k = 0u; k < p.IN; k++) {
    let xv = x[t * p.IN + k];
    acc = fma(vec4f(xv), vec4f(a[a0 + k], a[a1 + k], a[a2 + k], a[a3 + k]), acc);
  }
  for (var j = 0u; j < 4u; j++) {
    if (j0 + j < p.R) {
      h[t * p.R + j0 + j] = acc[j];
    }
  }
}

@compute @workgroup_size(64)
fn rows_scale(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  // Here x is G [rows, C], T = rows per sample, R = total rows.
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  if (i >= p.R * p.C) {
    return;
  }
  h[i] = coef[(i / p.C) / p.T] * x[i];
}
