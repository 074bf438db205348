/** Shared shape of kernel benchmark cases (`deno task bench kernels`). */
import type { Runtime } from "../gpu/runtime.ts";

export interface KernelBenchCase {
  /** e.g. "matmul", "layernorm.forward" */
  kernel: string;
  /** e.g. "1024x1024x1024" */
  shape: string;
  /** Floating-point operations per run (for GFLOP/s), when meaningful. */
  flops?: number;
  /** Bytes moved per run (for GB/s), when the op is bandwidth-bound. */
  bytes?: number;
  /** Allocate inputs; `run` records one execution; `relErr` compares one run against float64. */
  setup(rt: Runtime): Promise<{
    run(): void;
    relErr(): Promise<number>;
    dispose(): void;
  }>;
}
