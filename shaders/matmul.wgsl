// matmul.wgsl — C = α·op(A)·op(B) (+ bias[n]) (+ C), batched with per-operand strides.
//
// Layout: every operand is a row-major matrix inside a flat f32 buffer, addressed as
//   A: op(A)[m, k] = A[offA + zA + m·lda + k]   (TA = false)  or  A[offA + zA + k·lda + m] (TA)
//   B: op(B)[k, n] = B[offB + zB + k·ldb + n]   (TB = false)  or  B[offB + zB + n·ldb + k] (TB)
//   C[m, n]        = C[offC + zC + m·ldc + n];  bias[n] is shared by every row and batch.
// Batch z (workgroup_id.z) splits as (zo, zi) = (z / inner, z % inner) and each operand's batch
// offset is zo·s_outer + zi·s_inner (a stride 0 shares the operand, e.g. one weight matrix for
// every sample; two levels cover attention's [batch, head] without a transpose).
// The epilogue computes C = α·acc + bias + (ACC ? C_old : 0): ACC is β = 1 (gradient
// accumulation, C += AᵀB); β = 0 never reads C, so a NaN-poisoned C is overwritten.
// TA, TB, HAS_BIAS, ACC are override constants: each combination is its own pipeline, so the
// branches below fold away at pipeline creation.
//
// Three variants, chosen per adapter by pipeline/gpu/ops/matmul.ts (`defaultVariant`):
// * `mm_ubo` (+ `mm_pack`) — CPU adapters, when B is shared by every batch (the linear layers:
//   x·Wᵀ, dY·W). llvmpipe (Mesa 22.3) compiles a storage load inside a loop into a loop over
//   the SIMD lanes with an exec-mask branch per lane, but a uniform-buffer load with a varying
//   address into straight-line per-lane loads (no loop, no branch). So op(B) is packed, chunk by
//   chunk, into 64 KiB uniform buffers laid out [kc][4·nv] (row k of the chunk = nv vec4s,
//   columns n0 … n0 + 4nv − 1 of op(B) rows k0 … k0 + kc − 1, zero past N), and the GEMM reads B
//   from there; only A stays in storage. One mm_pack + one mm_ubo dispatch per chunk; chunks
//   along K after the first accumulate into C (bias only in the first). Each invocation owns
//   16 rows × 4 vec4 columns (64 named vec4 accumulators: LLVM spills some, but a spilled
//   accumulator costs one vector load/store, a storage element costs a per-lane loop), lanes
//   (local x) run along columns so the 8 lanes of a SIMD group read the same A element;
//   workgroup 8×2 → a 32 × 128 output tile (NARROW, for chunks under 32 vec4 columns: lanes
//   along rows, a 128 × 32 tile). Measured block shapes (rows × vec4 columns, median
//   GFLOP/s over 2048×128·128×128ᵀ, 2048×512·128ᵀ, 2048×128·512: lavapipe, 2 vCPU shared,
//   load 3–5): 8×2 4.5–5.0; 8×4 5.8–6.2; 12×4 5.8–6.5; 16×4 6.6–6.9; 32×4 5.3–7.1; 16×8 4.2–8.4;
//   4×8 3.0–4.8 (mm_reg 8×8 scalar-column: 3.2–3.6). Workgroup 8×1 … 8×8 made no difference.
//   Also tried and dropped: A in uniform chunks too (copied rows, vec4 along k): no clear win,
//   16× the dispatches; k unrolled by 2 or 4: within noise.
//   `deno task bench kernels`, best GFLOP/s per run, mm_reg → mm_ubo, runs interleaved on one
//   loaded machine (load 4–5): 1024³ 4.5–6.8 → 8.4–21; 2048×128·128ᵀ 6.5–12 → 11–21;
//   2048×128·512ᵀ 7.4–9.2 → 13–21; 2048×512·128ᵀ 7.1–8.4 → 11–14; 4096×8·256ᵀ 0.7 → 3.3–6.2;
//   512³ 9–13 → 7–11 (16 narrow chunks: the one shape where reg can tie).
// * `mm_reg` — for CPU adapters (llvmpipe/lavapipe, isFallback). llvmpipe runs 8 invocations as
//   SIMD lanes and turns every storage load inside a loop into a scalar loop over the lanes, and
//   shared memory costs the same loop plus coroutine switches at each barrier. So there is no
//   shared memory; each invocation owns an 8×8 output block held in 16 named vec4 registers
//   (8 + 8 loads per 64 FMAs), workgroup 8×8 invocations = 64×64 outputs. Out-of-range
//   rows/columns are clamped for loading (no lane-dependent branch in the k loop) and skipped
//   at the store. Measured at 1024³ on this llvmpipe (noisy, shared 2 cores): 8×8 named
//   registers 6–12 GFLOP/s; 4×4: 1–5; the same 8×8 with indexed private arrays 3.9; per-lane
//   vec4<f32> storage loads were slower than scalar ones (1.5–4.4); shared-memory tiles 2.5.
// * `mm_tiled` — shared-memory tiling: 64×64 output tile per 16×16 workgroup, 4×4 outputs per
//   invocation (strided by 16 so a warp's loads and stores coalesce), 64×16 tiles of A and B
//   staged in workgroup memory, 2 barriers per 16-deep k step. Loads are bounds-checked
//   (zero outside), so any M, N, K works. Measured on an NVIDIA H100 (Vulkan, 1024³):
//   mm_reg 7.3 TFLOP/s, mm_tiled 0.45, mm_ubo 0.14 — so real GPUs default to mm_reg.
// Every variant handles every size and every TA/TB/HAS_BIAS/ACC combination (tests run all);
// `mm_ubo` needs B shared by every batch (the wrapper runs mm_reg otherwise).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  ldb: u32,
  ldc: u32,
  offA: u32,
  offB: u32,
  offC: u32,
  inner: u32,
  sAo: u32,
  sAi: u32,
  sBo: u32,
  sBi: u32,
  sCo: u32,
  sCi: u32,
  // mm_pack / mm_ubo only: the chunk of op(B) held in the uniform buffer (see mm_ubo).
  k0: u32,
  n0: u32,
  nv: u32,
  kc: u32,
  alpha: f32,
}

override TA: bool = false;
override TB: bool = false;
override HAS_BIAS: bool = false;
override ACC: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// mm_ubo reads its chunk of op(B) here (64 KiB, the WebGPU default maxUniformBufferBindingSize);
// mm_pack writes that chunk through binding 6 (the same buffer, bound as storage).
@group(0) @binding(5) var<uniform> Bu: array<vec4f, 4096>;
@group(0) @binding(6) var<storage, read_write> Bpack: array<f32>;

struct Bases {
  a: u32,
  b: u32,
  c: u32,
}

fn bases(z: u32) -> Bases {
  let zo = z / p.inner;
  let zi = z % p.inner;
  return Bases(
    p.offA + zo * p.sAo + zi * p.sAi,
    p.offB + zo * p.sBo + zi * p.sBi,
    p.offC + zo * p.sCo + zi * p.sCi,
  );
}

fn a_at(base: u32, m: u32, k: u32) -> f32 {
  if (TA) {
    return A[base + k * p.lda + m];
  }
  return A[base + m * p.lda + k];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
  if (TB) {
    return B[base + n * p.ldb + k];
  }
  return B[base + k * p.ldb + n];
}

fn store(cb: u32, m: u32, n: u32, v: f32) {
  var r = p.alpha * v;
  if (HAS_BIAS) {
    r += bias[n];
  }
  let i = cb + m * p.ldc + n;
  if (ACC) {
    r += C[i];
  }
  C[i] = r;
}

// ---------------------------------------------------------------- mm_reg (CPU adapters)

const RB: u32 = 8u; // rows and columns per invocation
const WR: u32 = 8u; // workgroup is WR × WR invocations → a 64 × 64 output tile

@compute @workgroup_size(8, 8, 1)
fn mm_reg(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  if (p.M == 0u || p.N == 0u) {
    return;
  }
  let bs = bases(wid.z);
  let n0 = (wid.x * WR + lid.x) * RB;
  let m0 = (wid.y * WR + lid.y) * RB;
  // Clamped indices: edge invocations load valid (duplicate) data and skip their stores, so the
  // k loop has no lane-dependent branch. Everything is unrolled into named registers: llvmpipe
  // keeps indexed private arrays in memory (measured 3.9 vs 12 GFLOP/s at 1024³).
  let nx = p.N - 1u;
  let mx = p.M - 1u;
  let n_0 = vec4u(min(n0, nx), min(n0 + 1u, nx), min(n0 + 2u, nx), min(n0 + 3u, nx));
  let n_1 = vec4u(min(n0 + 4u, nx), min(n0 + 5u, nx), min(n0 + 6u, nx), min(n0 + 7u, nx));
  let m_0 = vec4u(min(m0, mx), min(m0 + 1u, mx), min(m0 + 2u, mx), min(m0 + 3u, mx));
  let m_1 = vec4u(min(m0 + 4u, mx), min(m0 + 5u, mx), min(m0 + 6u, mx), min(m0 + 7u, mx));
  var c00 = vec4f(0.0);
  var c01 = vec4f(0.0);
  var c10 = vec4f(0.0);
  var c11 = vec4f(0.0);
  var c20 = vec4f(0.0);
  var c21 = vec4f(0.0);
  var c30 = vec4f(0.0);
  var c31 = vec4f(0.0);
  var c40 = vec4f(0.0);
  var c41 = vec4f(0.0);
  var c50 = vec4f(0.0);
  var c51 = vec4f(0.0);
  var c60 = vec4f(0.0);
  var c61 = vec4f(0.0);
  var c70 = vec4f(0.0);
  var c71 = vec4f(0.0);
  for (var k = 0u; k < p.K; k++) {
    let b0 = vec4f(
      b_at(bs.b, k, n_0.x),
      b_at(bs.b, k, n_0.y),
      b_at(bs.b, k, n_0.z),
      b_at(bs.b, k, n_0.w),
    );
    let b1 = vec4f(
      b_at(bs.b, k, n_1.x),
      b_at(bs.b, k, n_1.y),
      b_at(bs.b, k, n_1.z),
      b_at(bs.b, k, n_1.w),
    );
    let a0 = a_at(bs.a, m_0.x, k);
    c00 = fma(vec4f(a0), b0, c00);
    c01 = fma(vec4f(a0), b1, c01);
    let a1 = a_at(bs.a, m_0.y, k);
    c10 = fma(vec4f(a1), b0, c10);
    c11 = fma(vec4f(a1), b1, c11);
    let a2 = a_at(bs.a, m_0.z, k);
    c20 = fma(vec4f(a2), b0, c20);
    c21 = fma(vec4f(a2), b1, c21);
    let a3 = a_at(bs.a, m_0.w, k);
    c30 = fma(vec4f(a3), b0, c30);
    c31 = fma(vec4f(a3), b1, c31);
    let a4 = a_at(bs.a, m_1.x, k);
    c40 = fma(vec4f(a4), b0, c40);
    c41 = fma(vec4f(a4), b1, c41);
    let a5 = a_at(bs.a, m_1.y, k);
    c50 = fma(vec4f(a5), b0, c50);
    c51 = fma(vec4f(a5), b1, c51);
    let a6 = a_at(bs.a, m_1.z, k);
    c60 = fma(vec4f(a6), b0, c60);
    c61 = fma(vec4f(a6), b1, c61);
    let a7 = a_at(bs.a, m_1.w, k);
    c70 = fma(vec4f(a7), b0, c70);
    c71 = fma(vec4f(a7), b1, c71);
  }
  store8(bs.c, m0 + 0u, n0, c00, c01);
  store8(bs.c, m0 + 1u, n0, c10, c11);
  store8(bs.c, m0 + 2u, n0, c20, c21);
  store8(bs.c, m0 + 3u, n0, c30, c31);
  store8(bs.c, m0 + 4u, n0, c40, c41);
  store8(bs.c, m0 + 5u, n0, c50, c51);
  store8(bs.c, m0 + 6u, n0, c60, c61);
  store8(bs.c, m0 + 7u, n0, c70, c71);
}

fn store8(cb: u32, m: u32, n0: u32, v0: vec4f, v1: vec4f) {
  if (m >= p.M) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < p.N) {
      store(cb, m, n0 + j, v0[j]);
    }
    if (n0 + 4u + j < p.N) {
      store(cb, m, n0 + 4u + j, v1[j]);
    }
  }
}

// ---------------------------------------------------------------- mm_ubo (CPU adapters)

// Copy op(B)[k0 + k, n0 + n] (k < kc, n < 4·nv; zero where n0 + n ≥ N) to Bpack[k·4nv + n].
// One invocation per element; 256 per workgroup, ceil(kc·4nv / 256) workgroups (≤ 64).
@compute @workgroup_size(256, 1, 1)
fn mm_pack(@builtin(global_invocation_id) gid: vec3u) {
  let w = p.nv * 4u;
  let e = gid.x;
  if (e >= p.kc * w) {
    return;
  }
  let k = p.k0 + e / w;
  let n = p.n0 + e % w;
  var v = 0.0;
  if (n < p.N) {
    v = b_at(p.offB, k, n);
  }
  Bpack[e] = v;
}

const URB: u32 = 16u; // rows per invocation
const UCV: u32 = 4u; // vec4 columns per invocation (16 floats)
const UWX: u32 = 8u; // workgroup 8 × 2 invocations → a 32 × 128 output tile
const UWY: u32 = 2u;
override NARROW: bool = false;

@compute @workgroup_size(8, 2, 1)
fn mm_ubo(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bs = bases(wid.z);
  // First of this invocation's vec4 columns in the chunk, and first row. NARROW swaps the lanes
  // onto rows (tile 128 × 32) so that a chunk narrower than 128 floats (N = 8 for a LoRA
  // down-projection) does not leave 7 of 8 lanes computing clamped duplicates.
  let jb = select((wid.x * UWX + lid.x) * UCV, (wid.x * UWY + lid.y) * UCV, NARROW);
  let m0 = select((wid.y * UWY + lid.y) * URB, (wid.y * UWX + lid.x) * URB, NARROW);
  // Clamped for loading (no lane-dependent branch in the k loop); out-of-range stores skipped.
  let jx = p.nv - 1u;
  let mx = p.M - 1u;
  let j0 = min(jb + 0u, jx);
  let j1 = min(jb + 1u, jx);
  let j2 = min(jb + 2u, jx);
  let j3 = min(jb + 3u, jx);
  let r0 = min(m0 + 0u, mx);
  let r1 = min(m0 + 1u, mx);
  let r2 = min(m0 + 2u, mx);
  let r3 = min(m0 + 3u, mx);
  let r4 = min(m0 + 4u, mx);
  let r5 = min(m0 + 5u, mx);
  let r6 = min(m0 + 6u, mx);
  let r7 = min(m0 + 7u, mx);
  let r8 = min(m0 + 8u, mx);
  let r9 = min(m0 + 9u, mx);
  let r10 = min(m0 + 10u, mx);
  let r11 = min(m0 + 11u, mx);
  let r12 = min(m0 + 12u, mx);
  let r13 = min(m0 + 13u, mx);
  let r14 = min(m0 + 14u, mx);
  let r15 = min(m0 + 15u, mx);
  var c0_0 = vec4f(0.0);
  var c0_1 = vec4f(0.0);
  var c0_2 = vec4f(0.0);
  var c0_3 = vec4f(0.0);
  var c1_0 = vec4f(0.0);
  var c1_1 = vec4f(0.0);
  var c1_2 = vec4f(0.0);
  var c1_3 = vec4f(0.0);
  var c2_0 = vec4f(0.0);
  var c2_1 = vec4f(0.0);
  var c2_2 = vec4f(0.0);
  var c2_3 = vec4f(0.0);
  var c3_0 = vec4f(0.0);
  var c3_1 = vec4f(0.0);
  var c3_2 = vec4f(0.0);
  var c3_3 = vec4f(0.0);
  var c4_0 = vec4f(0.0);
  var c4_1 = vec4f(0.0);
  var c4_2 = vec4f(0.0);
  var c4_3 = vec4f(0.0);
  var c5_0 = vec4f(0.0);
  var c5_1 = vec4f(0.0);
  var c5_2 = vec4f(0.0);
  var c5_3 = vec4f(0.0);
  var c6_0 = vec4f(0.0);
  var c6_1 = vec4f(0.0);
  var c6_2 = vec4f(0.0);
  var c6_3 = vec4f(0.0);
  var c7_0 = vec4f(0.0);
  var c7_1 = vec4f(0.0);
  var c7_2 = vec4f(0.0);
  var c7_3 = vec4f(0.0);
  var c8_0 = vec4f(0.0);
  var c8_1 = vec4f(0.0);
  var c8_2 = vec4f(0.0);
  var c8_3 = vec4f(0.0);
  var c9_0 = vec4f(0.0);
  var c9_1 = vec4f(0.0);
  var c9_2 = vec4f(0.0);
  var c9_3 = vec4f(0.0);
  var c10_0 = vec4f(0.0);
  var c10_1 = vec4f(0.0);
  var c10_2 = vec4f(0.0);
  var c10_3 = vec4f(0.0);
  var c11_0 = vec4f(0.0);
  var c11_1 = vec4f(0.0);
  var c11_2 = vec4f(0.0);
  var c11_3 = vec4f(0.0);
  var c12_0 = vec4f(0.0);
  var c12_1 = vec4f(0.0);
  var c12_2 = vec4f(0.0);
  var c12_3 = vec4f(0.0);
  var c13_0 = vec4f(0.0);
  var c13_1 = vec4f(0.0);
  var c13_2 = vec4f(0.0);
  var c13_3 = vec4f(0.0);
  var c14_0 = vec4f(0.0);
  var c14_1 = vec4f(0.0);
  var c14_2 = vec4f(0.0);
  var c14_3 = vec4f(0.0);
  var c15_0 = vec4f(0.0);
  var c15_1 = vec4f(0.0);
  var c15_2 = vec4f(0.0);
  var c15_3 = vec4f(0.0);
  for (var k = 0u; k < p.kc; k++) {
    let row = k * p.nv;
    let b0 = Bu[row + j0];
    let b1 = Bu[row + j1];
    let b2 = Bu[row + j2];
    let b3 = Bu[row + j3];
    let ka = p.k0 + k;
    let a0 = vec4f(a_at(bs.a, r0, ka));
    c0_0 = fma(a0, b0, c0_0);
    c0_1 = fma(a0, b1, c0_1);
    c0_2 = fma(a0, b2, c0_2);
    c0_3 = fma(a0, b3, c0_3);
    let a1 = vec4f(a_at(bs.a, r1, ka));
    c1_0 = fma(a1, b0, c1_0);
    c1_1 = fma(a1, b1, c1_1);
    c1_2 = fma(a1, b2, c1_2);
    c1_3 = fma(a1, b3, c1_3);
    let a2 = vec4f(a_at(bs.a, r2, ka));
    c2_0 = fma(a2, b0, c2_0);
    c2_1 = fma(a2, b1, c2_1);
    c2_2 = fma(a2, b2, c2_2);
    c2_3 = fma(a2, b3, c2_3);
    let a3 = vec4f(a_at(bs.a, r3, ka));
    c3_0 = fma(a3, b0, c3_0);
    c3_1 = fma(a3, b1, c3_1);
    c3_2 = fma(a3, b2, c3_2);
    c3_3 = fma(a3, b3, c3_3);
    let a4 = vec4f(a_at(bs.a, r4, ka));
    c4_0 = fma(a4, b0, c4_0);
    c4_1 = fma(a4, b1, c4_1);
    c4_2 = fma(a4, b2, c4_2);
    c4_3 = fma(a4, b3, c4_3);
    let a5 = vec4f(a_at(bs.a, r5, ka));
    c5_0 = fma(a5, b0, c5_0);
    c5_1 = fma(a5, b1, c5_1);
    c5_2 = fma(a5, b2, c5_2);
    c5_3 = fma(a5, b3, c5_3);
    let a6 = vec4f(a_at(bs.a, r6, ka));
    c6_0 = fma(a6, b0, c6_0);
    c6_1 = fma(a6, b1, c6_1);
    c6_2 = fma(a6, b2, c6_2);
    c6_3 = fma(a6, b3, c6_3);
    let a7 = vec4f(a_at(bs.a, r7, ka));
    c7_0 = fma(a7, b0, c7_0);
    c7_1 = fma(a7, b1, c7_1);
    c7_2 = fma(a7, b2, c7_2);
    c7_3 = fma(a7, b3, c7_3);
    let a8 = vec4f(a_at(bs.a, r8, ka));
    c8_0 = fma(a8, b0, c8_0);
    c8_1 = fma(a8, b1, c8_1);
    c8_2 = fma(a8, b2, c8_2);
    c8_3 = fma(a8, b3, c8_3);
    let a9 = vec4f(a_at(bs.a, r9, ka));
    c9_0 = fma(a9, b0, c9_0);
    c9_1 = fma(a9, b1, c9_1);
    c9_2 = fma(a9, b2, c9_2);
    c9_3 = fma(a9, b3, c9_3);
    let a10 = vec4f(a_at(bs.a, r10, ka));
    c10_0 = fma(a10, b0, c10_0);
    c10_1 = fma(a10, b1, c10_1);
    c10_2 = fma(a10, b2, c10_2);
    c10_3 = fma(a10, b3, c10_3);
    let a11 = vec4f(a_at(bs.a, r11, ka));
    c11_0 = fma(a11, b0, c11_0);
    c11_1 = fma(a11, b1, c11_1);
    c11_2 = fma(a11, b2, c11_2);
    c11_3 = fma(a11, b3, c11_3);
    let a12 = vec4f(a_at(bs.a, r12, ka));
    c12_0 = fma(a12, b0, c12_0);
    c12_1 = fma(a12, b1, c12_1);
    c12_2 = fma(a12, b2, c12_2);
    c12_3 = fma(a12, b3, c12_3);
    let a13 = vec4f(a_at(bs.a, r13, ka));
    c13_0 = fma(a13, b0, c13_0);
    c13_1 = fma(a13, b1, c13_1);
    c13_2 = fma(a13, b2, c13_2);
    c13_3 = fma(a13, b3, c13_3);
    let a14 = vec4f(a_at(bs.a, r14, ka));
    c14_0 = fma(a14, b0, c14_0);
    c14_1 = fma(a14, b1, c14_1);
    c14_2 = fma(a14, b2, c14_2);
    c14_3 = fma(a14, b3, c14_3);
    let a15 = vec4f(a_at(bs.a, r15, ka));
    c15_0 = fma(a15, b0, c15_0);
    c15_1 = fma(a15, b1, c15_1);
    c15_2 = fma(a15, b2, c15_2);
    c15_3 = fma(a15, b3, c15_3);
  }
  // Columns past this chunk (jb + i ≥ nv) belong to another dispatch: start N = not stored.
  let n0 = select(p.N, p.n0 + (jb + 0u) * 4u, jb + 0u < p.nv);
  let n1 = select(p.N, p.n0 + (jb + 1u) * 4u, jb + 1u < p.nv);
  let n2 = select(p.N, p.n0 + (jb + 2u) * 4u, jb + 2u < p.nv);
  let n3 = select(p.N, p.n0 + (jb + 3u) * 4u, jb + 3u < p.nv);
  storeRow(bs.c, m0 + 0u, vec4u(n0, n1, n2, n3), c0_0, c0_1, c0_2, c0_3);
  storeRow(bs.c, m0 + 1u, vec4u(n0, n1, n2, n3), c1_0, c1_1, c1_2, c1_3);
  storeRow(bs.c, m0 + 2u, vec4u(n0, n1, n2, n3), c2_0, c2_1, c2_2, c2_3);
  storeRow(bs.c, m0 + 3u, vec4u(n0, n1, n2, n3), c3_0, c3_1, c3_2, c3_3);
  storeRow(bs.c, m0 + 4u, vec4u(n0, n1, n2, n3), c4_0, c4_1, c4_2, c4_3);
  storeRow(bs.c, m0 + 5u, vec4u(n0, n1, n2, n3), c5_0, c5_1, c5_2, c5_3);
  storeRow(bs.c, m0 + 6u, vec4u(n0, n1, n2, n3), c6_0, c6_1, c6_2, c6_3);
  storeRow(bs.c, m0 + 7u, vec4u(n0, n1, n2, n3), c7_0, c7_1, c7_2, c7_3);
  storeRow(bs.c, m0 + 8u, vec4u(n0, n1, n2, n3), c8_0, c8_1, c8_2, c8_3);
  storeRow(bs.c, m0 + 9u, vec4u(n0, n1, n2, n3), c9_0, c9_1, c9_2, c9_3);
  storeRow(bs.c, m0 + 10u, vec4u(n0, n1, n2, n3), c10_0, c10_1, c10_2, c10_3);
  storeRow(bs.c, m0 + 11u, vec4u(n0, n1, n2, n3), c11_0, c11_1, c11_2, c11_3);
  storeRow(bs.c, m0 + 12u, vec4u(n0, n1, n2, n3), c12_0, c12_1, c12_2, c12_3);
  storeRow(bs.c, m0 + 13u, vec4u(n0, n1, n2, n3), c13_0, c13_1, c13_2, c13_3);
  storeRow(bs.c, m0 + 14u, vec4u(n0, n1, n2, n3), c14_0, c14_1, c14_2, c14_3);
  storeRow(bs.c, m0 + 15u, vec4u(n0, n1, n2, n3), c15_0, c15_1, c15_2, c15_3);
}

// Store row m's four vec4 column groups starting at ns (a start of N stores nothing).
fn storeRow(cb: u32, m: u32, ns: vec4u, v0: vec4f, v1: vec4f, v2: vec4f, v3: vec4f) {
  if (m >= p.M) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (ns.x + j < p.N) {
      store(cb, m, ns.x + j, v0[j]);
    }
    if (ns.y + j < p.N) {
      store(cb, m, ns.y + j, v1[j]);
    }
    if (ns.z + j < p.N) {
      store(cb, m, ns.z + j, v2[j]);
    }
    if (ns.w + j < p.N) {
      store(cb, m, ns.w + j, v3[j]);
    }
  }
}

// ---------------------------------------------------------------- mm_tiled (GPUs)

const TM: u32 = 64u; // output tile rows/cols
const TK: u32 = 16u; // k depth staged per step

var<workgroup> As: array<array<f32, TM>, TK>;
var<workgroup> Bs: array<array<f32, TM>, TK>;

fn a_safe(base: u32, m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) {
    return a_at(base, m, k);
  }
  return 0.0;
}

fn b_safe(base: u32, k: u32, n: u32) -> f32 {
  if (k < p.K && n < p.N) {
    return b_at(base, k, n);
  }
  return 0.0;
}

@compute @workgroup_size(16, 16, 1)
fn mm_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let bs = bases(wid.z);
  let tm = wid.y * TM;
  let tn = wid.x * TM;
  var acc: array<array<f32, 4>, 4>;
  let ktiles = (p.K + TK - 1u) / TK;
  for (var t = 0u; t < ktiles; t++) {
    let k0 = t * TK;
    // 256 invocations stage 64×16 of A and 16×64 of B: 4 elements each.
    for (var e = 0u; e < 4u; e++) {
      let idx = li + e * 256u;
      let r = idx / TK; // 0..63
      let c = idx % TK; // 0..15
      As[c][r] = a_safe(bs.a, tm + r, k0 + c);
      let kr = idx / TM; // 0..15
      let nc = idx % TM; // 0..63
      Bs[kr][nc] = b_safe(bs.b, k0 + kr, tn + nc);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = As[kk][lid.y + 16u * i];
        bv[i] = Bs[kk][lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let m = tm + lid.y + 16u * i;
      let n = tn + lid.x + 16u * j;
      if (m < p.M && n < p.N) {
        store(bs.c, m, n, acc[i][j]);
      }
    }
  }
}
