/**
 * GEMM: C = α·op(A)·op(B) (+ bias[n]) (+ C), op = identity or transpose, optionally batched.
 *
 * Linear weights are stored HF-style [out, in], so the hot calls are
 *   y  = x·Wᵀ + b  → matmul(rt, x, w, { transB: true, bias: b })
 *   dX = dY·W      → matmul(rt, dy, w)
 *   dW += dYᵀ·X    → matmul(rt, dy, x, { transA: true, out: dw, accumulate: true })
 * The kernel variant is chosen per adapter (see shaders/matmul.wgsl): `ubo` on software
 * adapters (falling back to `reg` where B differs per batch, or K = 0), `reg` on GPUs; tests
 * force each one.
 *
 * `ubo` needs buffers with UNIFORM usage, which the runtime's pool does not make: this module
 * keeps its own per-runtime list of 64 KiB chunk buffers (grown to the most chunks one call has
 * needed, reused by every later call; not counted in `rt.allocatedBytes`). Reuse within one
 * command encoder is safe because dispatches execute in recording order and WebGPU orders a
 * buffer's storage write (pack) before a later uniform read (GEMM) and vice versa.
 */
import { params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, GpuTensor } from "../tensor.ts";

export type MatmulVariant = "reg" | "tiled" | "ubo";

export interface MatmulOptions {
  /** A is stored [K, M] (per batch) and used transposed. */
  transA?: boolean;
  /** B is stored [N, K] (per batch) and used transposed — the y = x·Wᵀ case. */
  transB?: boolean;
  /** [N], added to every row of every batch. */
  bias?: GpuTensor;
  /** Output tensor [M, N] or [batch, M, N]; allocated when omitted. */
  out?: GpuTensor;
  /** β = 1: C += α·op(A)·op(B) (needs `out`). Default β = 0 (C is overwritten, never read). */
  accumulate?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Force a kernel variant (tests, benchmarks); default by adapter. */
  variant?: MatmulVariant;
  label?: string;
}

/** One operand's batch stride: a number, or [outer, inner] for a two-level batch. */
export type Stride = number | readonly [number, number];

/**
 * The general strided form. Each operand is addressed as in shaders/matmul.wgsl:
 * op(A)[m,k] = a[offA + batchOffset + m·lda + k] (or k·lda + m when transposed), etc.
 * Every address the kernel can form is checked against the tensors' sizes.
 */
export interface StridedMatmul {
  a: GpuTensor;
  b: GpuTensor;
  out: GpuTensor;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  offA?: number;
  offB?: number;
  offC?: number;
  /** `count` batches; with `inner`, batch z uses (z / inner, z % inner) with [outer, inner] strides. */
  batch?: {
    count: number;
    inner?: number;
    strideA: Stride;
    strideB: Stride;
    strideC: Stride;
  };
  bias?: GpuTensor;
  accumulate?: boolean;
  alpha?: number;
  variant?: MatmulVariant;
}

const dummies = new WeakMap<Runtime, GpuTensor>();
const chunkBuffers = new WeakMap<Runtime, GPUBuffer[]>();

/** vec4 slots in one uniform chunk: 64 KiB, the WebGPU default maxUniformBufferBindingSize. */
const CHUNK_VEC4 = 4096;
/** Widest chunk in vec4 columns (128 floats: two 64-column workgroup tiles). */
const MAX_NV = 32;

/** The variant this adapter runs best (measured: see shaders/matmul.wgsl header). */
/**
 * Per adapter, by measurement: `ubo` on software adapters (llvmpipe), `reg` on real GPUs. On an
 * NVIDIA H100 (Vulkan) `mm_reg` ran 7.3 TFLOP/s at 1024³ against 0.45 for `mm_tiled` and made
 * `mm_tiled` 97% of a BERT-small DP-LoRA step; `tiled` stays available (and tested) for
 * adapters where shared memory turns out to win.
 */
export function defaultVariant(rt: Runtime): MatmulVariant {
  return rt.info.isFallback ? "ubo" : "reg";
}

function chunkBuffer(rt: Runtime, i: number): GpuTensor {
  let list = chunkBuffers.get(rt);
  if (!list) {
    list = [];
    chunkBuffers.set(rt, list);
  }
  while (list.length <= i) {
    list.push(rt.device.createBuffer({
      label: `matmul.ubo-chunk${list.length}`,
      size: CHUNK_VEC4 * 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE,
    }));
  }
  return new GpuTensor(list[i], [CHUNK_VEC4 * 4], "f32", `matmul.ubo-chunk${i}`);
}

/** Most chunk dispatches one `ubo` call may record before `reg` (one dispatch) is cheaper. */
const MAX_UBO_CHUNKS = 64;

/**
 * Whether `ubo` suits a GEMM of `rows` output rows (all batches) × N × K: B must be one matrix
 * for the whole call (it is packed once), K > 0 (nothing to pack otherwise), at most
 * MAX_UBO_CHUNKS chunks (each costs a pack and a dispatch: a 1 × 4·10⁶ row-vector product
 * would otherwise record 34 000 of them), and at least one 32-row tile of rows.
 */
export function uboFits(rows: number, N: number, K: number, sharedB: boolean): boolean {
  if (!sharedB || K === 0 || rows < 32) return false;
  const { nv, kc } = uboChunks(K, N);
  return Math.ceil(N / (4 * nv)) * Math.ceil(K / kc) <= MAX_UBO_CHUNKS;
}

/**
 * How op(B) [K, N] is cut into uniform chunks: nv vec4 columns × kc rows each (kc·nv ≤ 4096).
 * The full K in one chunk when that leaves it ≥ 8 vec4 wide (K ≤ 512), so only wide K splits
 * into accumulated passes (measured at 2048×128·512ᵀ: 4 K-chunks 7.6–11 GFLOP/s, 4 narrow
 * full-K chunks 10–17).
 */
export function uboChunks(K: number, N: number): { nv: number; kc: number } {
  const full = Math.min(Math.ceil(N / 4), MAX_NV);
  // Widest chunk that holds all of K; used when it is still 8 vec4 wide (a NARROW tile's width).
  const fit = Math.floor(CHUNK_VEC4 / Math.max(K, 1));
  const nv = fit >= Math.min(full, 8) ? Math.min(full, fit) : full;
  return { nv, kc: Math.min(K, Math.floor(CHUNK_VEC4 / nv)) };
}

/**
 * C = α·op(A)·op(B) (+ bias) (+ C). A is [M,K] ([K,M] with transA) or [batch, …]; B is [K,N]
 * ([N,K] with transB) or [batch, …]. A 2-D operand next to a 3-D one is shared by every batch
 * (stride 0). Returns `out` (or a new [batch?, M, N] tensor). Records only; no sync.
 */
export function matmul(
  rt: Runtime,
  a: GpuTensor,
  b: GpuTensor,
  opts: MatmulOptions = {},
): GpuTensor {
  const op = "matmul";
  if (a.shape.length < 2 || a.shape.length > 3) {
    throw new ShapeError(`${op}: tensor "a" (${a.label}) must be 2-D or 3-D, got [${a.shape}]`);
  }
  if (b.shape.length < 2 || b.shape.length > 3) {
    throw new ShapeError(`${op}: tensor "b" (${b.label}) must be 2-D or 3-D, got [${b.shape}]`);
  }
  const ab = a.shape.length === 3 ? a.shape[0] : 0;
  const bb = b.shape.length === 3 ? b.shape[0] : 0;
  if (ab && bb && ab !== bb) {
    throw new ShapeError(`${op}: batch of "a" (${a.label}) is ${ab}, of "b" (${b.label}) ${bb}`);
  }
  const batch = ab || bb;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = opts.transA ? ac : ar;
  const K = opts.transA ? ar : ac;
  const N = opts.transB ? br : bc;
  const kb = opts.transB ? bc : br;
  if (kb !== K) {
    const want = opts.transB ? `[${"*"}, ${K}]` : `[${K}, *]`;
    throw new ShapeError(
      `${op}: tensor "b" (${b.label}) has shape [${b.shape}], inner dimension ${kb} ≠ K = ${K} ` +
        `(expected ${want}${opts.transB ? " with transB" : ""})`,
    );
  }
  const outShape = batch ? [batch, M, N] : [M, N];
  if (opts.accumulate && !opts.out) {
    throw new ShapeError(`${op}: accumulate needs an existing "out" tensor`);
  }
  const out = opts.out ?? rt.empty(outShape, opts.label ?? "matmul.out");
  expectShape(op, "out", out, outShape);
  if (opts.bias) expectShape(op, "bias", opts.bias, [N]);
  matmulStrided(rt, {
    a,
    b,
    out,
    M,
    N,
    K,
    transA: opts.transA,
    transB: opts.transB,
    lda: ac,
    ldb: bc,
    ldc: N,
    batch: batch
      ? {
        count: batch,
        strideA: ab ? ar * ac : 0,
        strideB: bb ? br * bc : 0,
        strideC: M * N,
      }
      : undefined,
    bias: opts.bias,
    accumulate: opts.accumulate,
    alpha: opts.alpha,
    variant: opts.variant,
  });
  return out;
}

function pair(s: Stride): [number, number] {
  return typeof s === "number" ? [s, 0] : [s[0], s[1]];
}

/** The strided form (see {@link StridedMatmul}); records one dispatch. */
export function matmulStrided(rt: Runtime, s: StridedMatmul): void {
  const op = "matmulStrided";
  const { M, N, K } = s;
  const count = s.batch?.count ?? 1;
  const inner = s.batch?.inner ?? 1;
  const [sAo, sAi] = pair(s.batch?.strideA ?? 0);
  const [sBo, sBi] = pair(s.batch?.strideB ?? 0);
  const [sCo, sCi] = pair(s.batch?.strideC ?? 0);
  for (const [k, v] of Object.entries({ M, N, K, count, inner })) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${op}: ${k} = ${v} is not a size`);
  }
  if (inner < 1 || count % inner !== 0) {
    throw new ShapeError(`${op}: batch count ${count} is not a multiple of inner ${inner}`);
  }
  if (count > 65535) throw new ShapeError(`${op}: batch count ${count} exceeds 65535`);
  for (const [name, t] of [["a", s.a], ["b", s.b], ["out", s.out]] as const) {
    if (t.dtype !== "f32") {
      throw new ShapeError(
        `${op}: tensor "${name}" (${t.label}) has dtype ${t.dtype}, expected f32`,
      );
    }
  }
  if (s.bias) expectShape(op, "bias", s.bias, [N]);
  if (M === 0 || N === 0 || count === 0) return;
  // Largest address each operand can reach (all strides are non-negative).
  const zo = count / inner - 1;
  const zi = inner - 1;
  const lastA = (s.offA ?? 0) + zo * sAo + zi * sAi +
    (K === 0 ? 0 : s.transA ? (K - 1) * s.lda + M - 1 : (M - 1) * s.lda + K - 1);
  const lastB = (s.offB ?? 0) + zo * sBo + zi * sBi +
    (K === 0 ? 0 : s.transB ? (N - 1) * s.ldb + K - 1 : (K - 1) * s.ldb + N - 1);
  const lastC = (s.offC ?? 0) + zo * sCo + zi * sCi + (M - 1) * s.ldc + N - 1;
  const reach = [["a", s.a, lastA], ["b", s.b, lastB], ["out", s.out, lastC]] as const;
  for (const [name, t, last] of reach) {
    // With K = 0 the kernel never reads A or B (the result is the bias, or C kept).
    if (K === 0 && name !== "out") continue;
    if (last >= t.size) {
      throw new ShapeError(
        `${op}: tensor "${name}" (${t.label}, ${t.size} elements) is too small: index ${last} reachable`,
      );
    }
  }
  // A forced `ubo` (tests) runs whenever it can; the default only where it pays (uboFits).
  const sharedB = count === 1 || (sBo === 0 && sBi === 0);
  let variant = s.variant ?? defaultVariant(rt);
  if (
    variant === "ubo" &&
    (s.variant ? !sharedB || K === 0 : !uboFits(M * count, N, K, sharedB))
  ) variant = "reg";
  let bias = s.bias;
  if (!bias) {
    bias = dummies.get(rt);
    if (!bias) {
      bias = rt.zeros([1], "matmul.no-bias");
      dummies.set(rt, bias);
    }
  }
  const base = [
    M,
    N,
    K,
    s.lda,
    s.ldb,
    s.ldc,
    s.offA ?? 0,
    s.offB ?? 0,
    s.offC ?? 0,
    inner,
    sAo,
    sAi,
    sBo,
    sBi,
    sCo,
    sCi,
  ];
  const alpha = [s.alpha ?? 1];
  const TA = s.transA ? 1 : 0;
  const TB = s.transB ? 1 : 0;
  if (variant === "ubo") {
    const { nv, kc } = uboChunks(K, N);
    const narrow = nv < MAX_NV;
    let i = 0;
    for (let n0 = 0; n0 < N; n0 += 4 * nv) {
      for (let k0 = 0; k0 < K; k0 += kc) {
        const chunk = chunkBuffer(rt, i++);
        const kcc = Math.min(kc, K - k0);
        const u = params([...base, k0, n0, nv, kcc], alpha);
        rt.dispatch({
          shader: "matmul.wgsl",
          entry: "mm_pack",
          bindings: { 2: s.b, 6: chunk },
          params: u,
          workgroups: [Math.ceil((kcc * nv * 4) / 256)],
          constants: { TB },
        });
        // Later K chunks add onto the first one's result (which carries the bias and old C).
        const first = k0 === 0;
        rt.dispatch({
          shader: "matmul.wgsl",
          entry: "mm_ubo",
          bindings: { 1: s.a, 3: s.out, 4: bias, 5: chunk.buffer },
          params: u,
          // 8 × 2 invocations of 16 rows × 4 vec4 columns: a 32 × 128 tile per workgroup, or
          // 128 × 32 with the lanes along rows for narrow chunks.
          workgroups: narrow
            ? [Math.ceil(nv / 8), Math.ceil(M / 128), count]
            : [Math.ceil(nv / 32), Math.ceil(M / 32), count],
          constants: {
            TA,
            NARROW: narrow ? 1 : 0,
            HAS_BIAS: first && s.bias ? 1 : 0,
            ACC: !first || s.accumulate ? 1 : 0,
          },
        });
      }
    }
    return;
  }
  rt.dispatch({
    shader: "matmul.wgsl",
    entry: variant === "reg" ? "mm_reg" : "mm_tiled",
    bindings: { 1: s.a, 2: s.b, 3: s.out, 4: bias },
    params: params([...base, 0, 0, 0, 0], alpha),
    // Both variants cover a 64 × 64 output tile per workgroup.
    workgroups: [Math.ceil(N / 64), Math.ceil(M / 64), count],
    constants: { TA, TB, HAS_BIAS: s.bias ? 1 : 0, ACC: s.accumulate ? 1 : 0 },
  });
}
