/** Benchmark cases for the linear-algebra kernels (`deno task bench kernels`). */
import type { KernelBenchCase } from "./types.ts";
import type { Runtime } from "../gpu/runtime.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { matmul, type MatmulVariant } from "../gpu/ops/matmul.ts";
import { loraDown } from "../gpu/ops/lora.ts";

/** Deterministic pseudo-random f32 data (benchmarks need no statistical quality). */
function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/**
 * Relative error of sampled output rows against a float64 recomputation (full float64 GEMMs of
 * the large shapes would take minutes in JS; 16 rows × all columns is a fair check).
 */
function sampledRelErr(
  got: Float32Array,
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  transB: boolean,
): number {
  let num = 0, den = 0;
  const rows = Math.min(M, 16);
  for (let i = 0; i < rows; i++) {
    const m = Math.floor((i * (M - 1)) / Math.max(rows - 1, 1));
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * (transB ? b[n * K + k] : b[k * N + n]);
      const g = got[m * N + n];
      if (!Number.isFinite(g)) return Infinity;
      num += (g - s) ** 2;
      den += s * s;
    }
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function gemmCase(
  M: number,
  N: number,
  K: number,
  transB: boolean,
  variant: MatmulVariant,
): KernelBenchCase {
  return {
    kernel: `matmul.${variant}${transB ? ".nt" : ".nn"}`,
    shape: `${M}x${N}x${K}`,
    flops: 2 * M * N * K,
    setup(rt: Runtime) {
      const ha = data(M * K, 1);
      const hb = data(K * N, 2);
      const a = rt.upload(ha, [M, K], "bench.a");
      const b = rt.upload(hb, transB ? [N, K] : [K, N], "bench.b");
      const c = rt.empty([M, N], "bench.c");
      const run = () => void matmul(rt, a, b, { transB, out: c, variant });
      return Promise.resolve({
        run,
        async relErr() {
          rt.fill(c, NaN);
          run();
          return sampledRelErr(await rt.read(c), ha, hb, M, N, K, transB);
        },
        dispose() {
          for (const t of [a, b, c] as GpuTensor[]) rt.release(t);
        },
      });
    },
  };
}

function loraDownCase(T: number, dIn: number, r: number): KernelBenchCase {
  return {
    kernel: "lora.down",
    shape: `${T}x${dIn}x${r}`,
    flops: 2 * T * dIn * r,
    bytes: 4 * (T * dIn + r * dIn + T * r),
    setup(rt: Runtime) {
      const hx = data(T * dIn, 3);
      const ha = data(r * dIn, 4);
      const x = rt.upload(hx, [T, dIn], "bench.x");
      const a = rt.upload(ha, [r, dIn], "bench.A");
      const h = rt.empty([T, r], "bench.h");
      const run = () => void loraDown(rt, x, a, h);
      return Promise.resolve({
        run,
        async relErr() {
          rt.fill(h, NaN);
          run();
          return sampledRelErr(await rt.read(h), hx, ha, T, r, dIn, true);
        },
        dispose() {
          for (const t of [x, a, h]) rt.release(t);
        },
      });
    },
  };
}

const variants: MatmulVariant[] = ["reg", "tiled", "ubo"];
/** The variants a software adapter chooses between (`tiled` is the GPU one). */
const cpuVariants: MatmulVariant[] = ["reg", "ubo"];

export const linalgCases: KernelBenchCase[] = [
  ...variants.flatMap((v) => [
    gemmCase(512, 512, 512, false, v),
    gemmCase(1024, 1024, 1024, false, v),
    gemmCase(1024, 1024, 1024, true, v),
  ]),
  // BERT-tiny encoder linears as the default run trains them (rows = 32 samples × T 64):
  // forward y = x·Wᵀ for q/k/v/o (128→128), FFN in (128→512), FFN out (512→128); backward
  // dX = dY·W for FFN in (K 512) and FFN out (K 128).
  ...cpuVariants.flatMap((v) => [
    gemmCase(2048, 128, 128, true, v),
    gemmCase(2048, 512, 128, true, v),
    gemmCase(2048, 128, 512, true, v),
    gemmCase(2048, 128, 512, false, v),
    gemmCase(2048, 512, 128, false, v),
  ]),
  // BERT-small linear shapes (batch 32 × seq 128 tokens), y = x·Wᵀ.
  ...cpuVariants.flatMap((v) => [
    gemmCase(4096, 512, 512, true, v),
    gemmCase(4096, 2048, 512, true, v),
  ]),
  // The LoRA bottleneck h = x·Aᵀ (r = 8), as the skinny kernel and as a GEMM.
  loraDownCase(4096, 256, 8),
  ...cpuVariants.map((v) => gemmCase(4096, 8, 256, true, v)),
];
