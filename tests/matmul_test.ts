import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import { ShapeError } from "../pipeline/gpu/errors.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import {
  defaultVariant,
  matmul,
  matmulStrided,
  type MatmulVariant,
  uboChunks,
  uboFits,
} from "../pipeline/gpu/ops/matmul.ts";
import {
  assertClose,
  condErr,
  finiteDiff,
  freshSeed,
  gammaF32,
  randn,
  relErr,
  rng,
  toF32,
} from "./helpers.ts";
import { refMatmul } from "./reference/linalg.ts";

let shared: Promise<Runtime> | null = null;
/** One device per file, with only the shaders this file needs (others' WGSL can't break it). */
function gpu(): Promise<Runtime> {
  shared ??= Runtime.create(["matmul.wgsl"]);
  return shared;
}

// A K-long f32 dot product has relative error ~ √K·2⁻²⁴ (≈ 6e-8·√K) for random-sign data;
// 1e-6·√K leaves a 16× margin and still catches any wrong index (errors of order 1).
const tolK = (K: number) => 1e-6 * Math.sqrt(Math.max(K, 1));

const VARIANTS: MatmulVariant[] = ["reg", "tiled", "ubo"];
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [7, 33, 130],
  [130, 7, 33],
  [33, 130, 7],
  [321, 67, 259],
];

function up(rt: Runtime, a: Float64Array, shape: number[], label: string): GpuTensor {
  return rt.upload(Float32Array.from(a), shape, label);
}

Deno.test("matmul: every variant × transpose × size, with bias / accumulate, vs float64", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  let caseNo = 0;
  for (const variant of VARIANTS) {
    for (const [M, N, K] of SIZES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const useBias = caseNo % 2 === 0;
          const acc = caseNo % 3 === 1;
          const alpha = caseNo % 4 === 3 ? -0.75 : 1;
          caseNo++;
          const a = toF32(randn(M * K, r));
          const b = toF32(randn(K * N, r));
          const bias = toF32(randn(N, r));
          const c0 = toF32(randn(M * N, r));
          const ta = up(rt, a, transA ? [K, M] : [M, K], "a");
          const tb = up(rt, b, transB ? [N, K] : [K, N], "b");
          const tbias = up(rt, bias, [N], "bias");
          const out = rt.empty([M, N], "c");
          if (acc) rt.write(out, Float32Array.from(c0));
          else rt.fill(out, NaN);
          matmul(rt, ta, tb, {
            transA,
            transB,
            bias: useBias ? tbias : undefined,
            out,
            accumulate: acc,
            alpha,
            variant,
          });
          const got = await rt.read(out);
          const want = refMatmul(a, b, M, N, K, {
            transA,
            transB,
            alpha,
            bias: useBias ? bias : undefined,
            c: acc ? c0 : undefined,
          });
          // |α|·|A|·|B| + |bias| + |C₀|: what the K products, bias and C₀ can cancel from.
          const scale = refMatmul(a.map(Math.abs), b.map(Math.abs), M, N, K, {
            transA,
            transB,
            alpha: Math.abs(alpha),
            bias: useBias ? bias.map(Math.abs) : undefined,
            c: acc ? c0.map(Math.abs) : undefined,
          });
          const what = `${variant} ${M}x${N}x${K} tA=${transA} tB=${transB} bias=${useBias} ` +
            `acc=${acc} α=${alpha}`;
          // Each term passes at most K + 3 roundings (product, K − 1 sums, α, bias, C₀): γ_{K+3}.
          assertClose(condErr(got, want, scale), gammaF32(K + 3), what, seed);
          for (const t of [ta, tb, tbias, out]) rt.release(t);
        }
      }
    }
  }
});

Deno.test("matmul: K = 0 gives the bias alone (empty operands are never read)", async () => {
  const rt = await gpu();
  for (const variant of VARIANTS) {
    const a = rt.empty([3, 0], "a");
    const b = rt.empty([0, 5], "b");
    const bias = rt.upload(Float32Array.from([1, 2, 3, 4, 5]), [5], "bias");
    const out = rt.empty([3, 5], "c");
    rt.fill(out, NaN);
    matmul(rt, a, b, { bias, out, variant });
    const got = await rt.read(out);
    assert.deepEqual([...got], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
  }
});

Deno.test("matmul: batched, with a shared (stride 0) operand on either side", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const [S, M, N, K] = [7, 33, 7, 130];
  for (const variant of VARIANTS) {
    // y_i = x_i·Wᵀ + b, W shared.
    const x = toF32(randn(S * M * K, r));
    const w = toF32(randn(N * K, r));
    const bias = toF32(randn(N, r));
    const tx = up(rt, x, [S, M, K], "x");
    const tw = up(rt, w, [N, K], "w");
    const tbias = up(rt, bias, [N], "bias");
    const y = rt.empty([S, M, N], "y");
    rt.fill(y, NaN);
    matmul(rt, tx, tw, { transB: true, bias: tbias, out: y, variant });
    // z_i = Wᵀ·g_i with W shared on the left (transA), g batched: [K, N]·[N, M]… use g [S, N, M].
    const g = toF32(randn(S * N * M, r));
    const tg = up(rt, g, [S, N, M], "g");
    const z = rt.empty([S, K, M], "z");
    rt.fill(z, NaN);
    matmul(rt, tw, tg, { transA: true, out: z, variant });
    const [gy, gz] = await rt.readMany([y, z]);
    for (let s = 0; s < S; s++) {
      const wy = refMatmul(x.subarray(s * M * K, (s + 1) * M * K), w, M, N, K, {
        transB: true,
        bias,
      });
      assertClose(
        relErr(gy.subarray(s * M * N, (s + 1) * M * N), wy),
        tolK(K),
        `${variant} batch ${s} x·Wᵀ`,
        seed,
      );
      const wz = refMatmul(w, g.subarray(s * N * M, (s + 1) * N * M), K, M, N, { transA: true });
      assertClose(
        relErr(gz.subarray(s * K * M, (s + 1) * K * M), wz),
        tolK(N),
        `${variant} batch ${s} Wᵀ·g`,
        seed,
      );
    }
    for (const t of [tx, tw, tbias, y, tg, z]) rt.release(t);
  }
});

Deno.test("matmul: two-level strided batch (attention scores per [batch, head])", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const [B, T, H, D] = [2, 33, 3, 7]; // Q, K stored [B, T, H, D]; scores [B, H, T, T]
  const q = toF32(randn(B * T * H * D, r));
  const k = toF32(randn(B * T * H * D, r));
  const tq = up(rt, q, [B, T, H, D], "q");
  const tk = up(rt, k, [B, T, H, D], "k");
  for (const variant of VARIANTS) {
    const sc = rt.empty([B, H, T, T], "scores");
    rt.fill(sc, NaN);
    matmulStrided(rt, {
      a: tq,
      b: tk,
      out: sc,
      M: T,
      N: T,
      K: D,
      transB: true,
      lda: H * D,
      ldb: H * D,
      ldc: T,
      alpha: 1 / Math.sqrt(D),
      batch: {
        count: B * H,
        inner: H,
        strideA: [T * H * D, D],
        strideB: [T * H * D, D],
        strideC: [H * T * T, T * T],
      },
      variant,
    });
    const got = await rt.read(sc);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const qh = new Float64Array(T * D);
        const kh = new Float64Array(T * D);
        for (let t = 0; t < T; t++) {
          for (let d = 0; d < D; d++) {
            qh[t * D + d] = q[((b * T + t) * H + h) * D + d];
            kh[t * D + d] = k[((b * T + t) * H + h) * D + d];
          }
        }
        const want = refMatmul(qh, kh, T, T, D, { transB: true, alpha: 1 / Math.sqrt(D) });
        const off = (b * H + h) * T * T;
        assertClose(
          relErr(got.subarray(off, off + T * T), want),
          tolK(D),
          `${variant} b=${b} h=${h}`,
          seed,
        );
      }
    }
    rt.release(sc);
  }
  rt.release(tq);
  rt.release(tk);
});

Deno.test("matmul: linear backward (dX = G·W, dW = Gᵀ·X) matches finite differences", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const [T, I, O] = [7, 33, 130];
  const x = toF32(randn(T * I, r));
  const w = toF32(randn(O * I, r));
  const bias = toF32(randn(O, r));
  const wt = toF32(randn(T * O, r)); // L = Σ wt ⊙ (x·Wᵀ + b) → dL/dY = wt
  const loss = (xx: Float64Array, ww: Float64Array) => {
    const y = refMatmul(xx, ww, T, O, I, { transB: true, bias });
    let s = 0;
    for (let i = 0; i < y.length; i++) s += wt[i] * y[i];
    return s;
  };
  const idxX = [0, 5, 17, T * I - 1];
  const idxW = [0, 31, 1000, O * I - 1];
  const fdX = finiteDiff((xx) => loss(xx, w), Float64Array.from(x), idxX);
  const fdW = finiteDiff((ww) => loss(x, ww), Float64Array.from(w), idxW);
  for (const variant of VARIANTS) {
    const tx = up(rt, x, [T, I], "x");
    const tw = up(rt, w, [O, I], "w");
    const tg = up(rt, wt, [T, O], "dy");
    const dx = rt.empty([T, I], "dx");
    rt.fill(dx, NaN);
    matmul(rt, tg, tw, { out: dx, variant });
    // Gradient accumulation: start dW at 0.5 and add twice the gradient in two calls.
    const dw = rt.empty([O, I], "dw");
    rt.fill(dw, 0.5);
    matmul(rt, tg, tx, { transA: true, out: dw, accumulate: true, variant });
    matmul(rt, tg, tx, { transA: true, out: dw, accumulate: true, variant });
    const [gx, gw] = await rt.readMany([dx, dw]);
    // Finite differences in float64 have error ~1e-9 here; the f32 kernel ~1e-7·√K relative.
    for (const i of idxX) {
      assertClose(
        Math.abs(gx[i] - fdX[i]) / (Math.abs(fdX[i]) + 1),
        1e-5,
        `${variant} dX[${i}]`,
        seed,
      );
    }
    for (const i of idxW) {
      const want = 0.5 + 2 * fdW[i];
      assertClose(Math.abs(gw[i] - want) / (Math.abs(want) + 1), 1e-5, `${variant} dW[${i}]`, seed);
    }
    for (const t of [tx, tw, tg, dx, dw]) rt.release(t);
  }
});

Deno.test("matmul ubo: N and K chunks, strided/offset operands, chunk buffers reused in one submit", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  // GEMM 1: 2 batches of op(A)[70, 1100] · op(B)[1100, 133] (B = Wᵀ shared) → 2 N-chunks × 9
  // K-chunks, with padded leading dimensions, offsets, bias, accumulate and α.
  const [M, N, K, S] = [70, 133, 1100, 2];
  assert.deepEqual(uboChunks(K, N), { nv: 32, kc: 128 });
  assert.deepEqual(uboChunks(300, N), { nv: 13, kc: 300 }); // K fits: narrow chunks, no split
  const [lda, ldb, ldc, offA, offB, offC] = [K + 3, K + 1, N + 2, 5, 11, 3];
  const sA = M * lda + 7;
  const sC = M * ldc + 1;
  const ha = toF32(randn(offA + S * sA, r));
  const hb = toF32(randn(offB + N * ldb, r));
  const hbias = toF32(randn(N, r));
  const hc = toF32(randn(offC + S * sC, r));
  const ta = up(rt, ha, [ha.length], "a");
  const tb = up(rt, hb, [hb.length], "w");
  const tbias = up(rt, hbias, [N], "bias");
  const tc = up(rt, hc, [hc.length], "c");
  matmulStrided(rt, {
    a: ta,
    b: tb,
    out: tc,
    M,
    N,
    K,
    transB: true,
    lda,
    ldb,
    ldc,
    offA,
    offB,
    offC,
    batch: { count: S, strideA: sA, strideB: 0, strideC: sC },
    bias: tbias,
    accumulate: true,
    alpha: -0.5,
    variant: "ubo",
  });
  // GEMM 2, recorded before anything is submitted: reuses chunk buffers 0 and 1 for another B
  // (K = 2500, N = 7: narrow, 2 K-chunks, transposed A).
  const [M2, N2, K2] = [33, 7, 2500];
  assert.deepEqual(uboChunks(K2, N2), { nv: 2, kc: 2048 });
  const ha2 = toF32(randn(K2 * M2, r));
  const hb2 = toF32(randn(K2 * N2, r));
  const ta2 = up(rt, ha2, [K2, M2], "a2");
  const tb2 = up(rt, hb2, [K2, N2], "b2");
  const tc2 = rt.empty([M2, N2], "c2");
  rt.fill(tc2, NaN);
  matmul(rt, ta2, tb2, { transA: true, out: tc2, variant: "ubo" });
  const [g1, g2] = await rt.readMany([tc, tc2]);
  for (let z = 0; z < S; z++) {
    const a = new Float64Array(M * K);
    const b = new Float64Array(N * K);
    const c0 = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) a[m * K + k] = ha[offA + z * sA + m * lda + k];
      for (let n = 0; n < N; n++) c0[m * N + n] = hc[offC + z * sC + m * ldc + n];
    }
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) b[n * K + k] = hb[offB + n * ldb + k];
    const want = refMatmul(a, b, M, N, K, { transB: true, bias: hbias, c: c0, alpha: -0.5 });
    const got = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) got[m * N + n] = g1[offC + z * sC + m * ldc + n];
    }
    assertClose(relErr(got, want), tolK(K), `ubo strided batch ${z}`, seed);
  }
  // Elements between the rows/batches (padding) must be untouched.
  for (let z = 0; z < S; z++) {
    for (let m = 0; m < M; m++) {
      for (let n = N; n < ldc && offC + z * sC + m * ldc + n < hc.length; n++) {
        const i = offC + z * sC + m * ldc + n;
        assert.equal(g1[i], Math.fround(hc[i]), `padding C[${i}] was written (seed ${seed})`);
      }
    }
  }
  const want2 = refMatmul(ha2, hb2, M2, N2, K2, { transA: true });
  assertClose(relErr(g2, want2), tolK(K2), "ubo second GEMM sharing chunk 0", seed);
  for (const t of [ta, tb, tbias, tc, ta2, tb2, tc2]) rt.release(t);
});

Deno.test("matmul: the software adapter defaults to ubo, a GPU to reg", async () => {
  const rt = await gpu();
  assert.equal(defaultVariant(rt), rt.info.isFallback ? "ubo" : "reg");
});

Deno.test("matmul: ubo is chosen by default only where it pays (no dispatch explosion)", () => {
  assert.equal(uboFits(2048, 128, 128, true), true); // encoder linears
  assert.equal(uboFits(2048, 512, 512, true), true); // 16 narrow full-K chunks
  assert.equal(uboFits(2048, 128, 128, false), false); // B differs per batch
  assert.equal(uboFits(2048, 128, 0, true), false); // nothing to pack
  assert.equal(uboFits(1, 4_387_726, 32, true), false); // a row-vector product over all params
  assert.equal(uboFits(4096, 4096, 4096, true), false); // 32 × 32 chunks
  assert.equal(uboFits(16, 128, 128, true), false); // less than one row tile
});

Deno.test("matmul: shape errors name the tensor", async () => {
  const rt = await gpu();
  const a = rt.empty([4, 3], "x");
  const w = rt.empty([5, 4], "weight");
  assert.throws(() => matmul(rt, a, w, { transB: true }), /tensor "b" \(weight\)/);
  const bias = rt.empty([4], "bias4");
  const w2 = rt.empty([5, 3], "w2");
  assert.throws(() => matmul(rt, a, w2, { transB: true, bias }), /tensor "bias" \(bias4\)/);
  assert.throws(() => matmul(rt, a, w2, { transB: true, accumulate: true }), ShapeError);
  const small = rt.empty([2, 5], "small");
  assert.throws(() => matmul(rt, a, w2, { transB: true, out: small }), /tensor "out" \(small\)/);
  for (const t of [a, w, bias, w2, small]) rt.release(t);
});
