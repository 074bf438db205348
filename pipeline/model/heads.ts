/**
 * Classification heads: multi-label (sigmoid per label, BCE with a label mask, mean over the
 * counted labels) and multi-class (softmax, CE). The per-sample loss is one scalar per sample,
 * so per-sample gradients are of that scalar (the DP unit), never of single labels.
 */
import type { EncoderConfig, HeadKind, HeadWeights } from "./types.ts";
import { seededRng } from "./lora.ts";

/** HF-style init: weights N(0, 0.02²), bias 0. */
export function initHead(config: EncoderConfig, numLabels: number, seed: number): HeadWeights {
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new RangeError(`head.numLabels must be a positive integer, got ${numLabels}`);
  }
  const r = seededRng(seed ^ 0x5bd1e995);
  const h = config.hiddenSize;
  const w = new Float32Array(numLabels * h);
  for (let i = 0; i < w.length; i++) {
    const u = Math.max(r(), 1e-12);
    w[i] = 0.02 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return {
    w: { data: w, shape: [numLabels, h] },
    b: { data: new Float32Array(numLabels), shape: [numLabels] },
  };
}

/** Probabilities from logits [B, L]: sigmoid per label, or softmax per row. */
export function probabilities(kind: HeadKind, logits: Float32Array, labels: number): Float32Array {
  const out = new Float32Array(logits.length);
  if (kind === "multi-label") {
    for (let i = 0; i < logits.length; i++) out[i] = 1 / (1 + Math.exp(-logits[i]));
    return out;
  }
  for (let r = 0; r < logits.length / labels; r++) {
    let mx = -Infinity;
    for (let l = 0; l < labels; l++) mx = Math.max(mx, logits[r * labels + l]);
    let z = 0;
    for (let l = 0; l < labels; l++) z += Math.exp(logits[r * labels + l] - mx);
    for (let l = 0; l < labels; l++) {
      out[r * labels + l] = Math.exp(logits[r * labels + l] - mx) / z;
    }
  }
  return out;
}
