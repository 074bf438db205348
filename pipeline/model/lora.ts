/**
 * LoRA adapters: initialisation and scale. y = x·Wᵀ + b + (alpha/r)·(dropout(x)·Aᵀ)·Bᵀ.
 * A is Kaiming-uniform as PyTorch's `kaiming_uniform_(a=√5)` (PEFT's default), whose bound is
 * √(6/((1+a²)·fan_in)) = 1/√fan_in; B is zero so the adapted model starts equal to the base.
 * The init rng is a seeded Mulberry32: reproducible, and adapter init is not a privacy secret.
 */
import type { EncoderConfig, LoraConfig, LoraWeights } from "./types.ts";
import { LORA_TARGETS } from "./types.ts";
import { linearDims, numWeightSets } from "./params.ts";

import { mulberry32 } from "../random.ts";

/** Seeded Mulberry32 (adapter/head init is reproducible and not a privacy secret). */
export const seededRng = mulberry32;

export function loraScale(c: LoraConfig): number {
  return c.alpha / c.rank;
}

/** Fresh adapters for every (layer group, target) pair, keyed `${group}.${target}`. */
export function initLora(config: EncoderConfig, lora: LoraConfig, seed: number): LoraWeights {
  if (!Number.isInteger(lora.rank) || lora.rank < 1) {
    throw new RangeError(`lora.rank must be a positive integer, got ${lora.rank}`);
  }
  if (!(lora.dropout >= 0 && lora.dropout < 1)) {
    throw new RangeError(`lora.dropout must be in [0, 1), got ${lora.dropout}`);
  }
  const r = seededRng(seed);
  const out: LoraWeights = new Map();
  for (let g = 0; g < numWeightSets(config); g++) {
    for (const t of LORA_TARGETS) {
      if (!lora.targets.includes(t)) continue;
      const [o, i] = linearDims(config, t);
      const bound = 1 / Math.sqrt(i);
      const a = new Float32Array(lora.rank * i);
      for (let k = 0; k < a.length; k++) a[k] = (2 * r() - 1) * bound;
      out.set(`${g}.${t}`, {
        a: { data: a, shape: [lora.rank, i] },
        b: { data: new Float32Array(o * lora.rank), shape: [o, lora.rank] },
      });
    }
  }
  return out;
}
