/** Benchmark cases for the NN kernels (GELU, LayerNorm, attention, …): filled by their owner. */
import type { KernelBenchCase } from "./types.ts";

export const nnCases: KernelBenchCase[] = [];
