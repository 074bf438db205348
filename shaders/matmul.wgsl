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
//   8 rows × 2 vec4 columns (16 named vec4 accumulators, as mm_reg), lanes (local x) run along
//   columns so the 8 lanes of a SIMD group read the same A element; workgroup 8×8 → 64 × 64.
//   Measured (lavapipe, 2 vCPU shared with ~8 jobs, load ≈ 5, best of 3, 2026-11-28):
//   2048×128·128×128ᵀ 2.2–5.7 GFLOP/s (mm_reg) → 4.4–9.4; 2048×128·512×128ᵀ 2.5 → 5.4.
// * `mm_reg` — for CPU adapters (llvmpipe/lavapipe, isFallback). llvmpipe runs 8 invocations as
//   SIMD lanes and turns every storage load inside a loop into a scalar loop over the lanes, and
//   shared memory costs the same loop plus coroutine switches at each barrier. So there is no
//   shared memory; each invocation owns an 8×8 output block held in 16 named vec4 registers
//   (8 + 8 loads per 64 FMAs), workgroup 8×8 invocations = 64×64 outputs. Out-of-range
//   rows/columns are clamped for loading (no lane-dependent branch in the k loop) and skipped
//   at the store. Measured at 1024³ on this llvmpipe (noisy, shared 2 cores): 8×8 named
//   registers 6–12 GFLOP/s; 4×4: 1–5; the same 8×8 with indexed private arrays 3.9; per-lane
//   vec4<f32> storage loads were slower than scalar ones (1.5–4.4); shared-memory tiles 2.5.
// * `mm_tiled` — for real GPUs: 64×64 output tile per 16×16 workgroup, 4×4 outputs per
//   invocation (strided by 16 so a warp's loads and stores coalesce), 64×16 tiles of A and B
//   staged in workgroup memory, 2 barriers per 16-deep k step. Loads are bounds-checked
//   (zero outside), so any M, N, K works.
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

@compute @workgroup_size(8, 8, 1)
fn mm_ubo(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bs = bases(wid.z);
  let jb = (wid.x * WR + lid.x) * 2u; // first of this invocation's two vec4 columns in the chunk
  let m0 = (wid.y * WR + lid.y) * RB;
  // Clamped for loading (no lane-dependent branch in the k loop); out-of-range stores skipped.
  let j0 = min(jb, p.nv - 1u);
  let j1 = min(jb + 1u, p.nv - 1u);
  let mx = p.M - 1u;
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
  for (var k = 0u; k < p.kc; k++) {
    let row = k * p.nv;
    let b0 = Bu[row + j0];
    let b1 = Bu[row + j1];
    let ka = p.k0 + k;
    let a0 = vec4f(a_at(bs.a, m_0.x, ka));
    c00 = fma(a0, b0, c00);
    c01 = fma(a0, b1, c01);
    let a1 = vec4f(a_at(bs.a, m_0.y, ka));
    c10 = fma(a1, b0, c10);
    c11 = fma(a1, b1, c11);
    let a2 = vec4f(a_at(bs.a, m_0.z, ka));
    c20 = fma(a2, b0, c20);
    c21 = fma(a2, b1, c21);
    let a3 = vec4f(a_at(bs.a, m_0.w, ka));
    c30 = fma(a3, b0, c30);
    c31 = fma(a3, b1, c31);
    let a4 = vec4f(a_at(bs.a, m_1.x, ka));
    c40 = fma(a4, b0, c40);
    c41 = fma(a4, b1, c41);
    let a5 = vec4f(a_at(bs.a, m_1.y, ka));
    c50 = fma(a5, b0, c50);
    c51 = fma(a5, b1, c51);
    let a6 = vec4f(a_at(bs.a, m_1.z, ka));
    c60 = fma(a6, b0, c60);
    c61 = fma(a6, b1, c61);
    let a7 = vec4f(a_at(bs.a, m_1.w, ka));
    c70 = fma(a7, b0, c70);
    c71 = fma(a7, b1, c71);
  }
  // Columns past this chunk (jb + i ≥ nv) belong to the next chunk's dispatch: not stored.
  let nA = select(p.N, p.n0 + jb * 4u, jb < p.nv);
  let nB = select(p.N, p.n0 + jb * 4u + 4u, jb + 1u < p.nv);
  storeUbo(bs.c, m0 + 0u, nA, nB, c00, c01);
  storeUbo(bs.c, m0 + 1u, nA, nB, c10, c11);
  storeUbo(bs.c, m0 + 2u, nA, nB, c20, c21);
  storeUbo(bs.c, m0 + 3u, nA, nB, c30, c31);
  storeUbo(bs.c, m0 + 4u, nA, nB, c40, c41);
  storeUbo(bs.c, m0 + 5u, nA, nB, c50, c51);
  storeUbo(bs.c, m0 + 6u, nA, nB, c60, c61);
  storeUbo(bs.c, m0 + 7u, nA, nB, c70, c71);
}

// Store 4 columns from nA and 4 from nB of row m (a start of N means "none": n < N fails).
fn storeUbo(cb: u32, m: u32, nA: u32, nB: u32, v0: vec4f, v1: vec4f) {
  if (m >= p.M) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (nA + j < p.N) {
      store(cb, m, nA + j, v0[j]);
    }
    if (nB + j < p.N) {
      store(cb, m, nB + j, v1[j]);
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
