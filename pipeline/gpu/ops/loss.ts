/**
 * Losses with one loss value per sample (shaders/loss.wgsl): masked multi-label
 * BCE-with-logits and softmax cross-entropy. `loss` is always the unscaled per-sample loss;
 * `dlogits` is the gradient of `scale · Σ_b loss[b]` (scale 1 for DP per-sample gradients,
 * 1/B for a batch mean).
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "loss.wgsl";
/** Label value that excludes a sample from cross-entropy (loss 0, gradient 0). */
export const IGNORE_LABEL = 0xffffffff;

function batchOf(op: string, logits: GpuTensor): [number, number] {
  if (logits.shape.length !== 2) {
    throw new ShapeError(
      `${op}: tensor "logits" (${logits.label}) has shape [${logits.shape}], expected [B, L]`,
    );
  }
  expectShape(op, "logits", logits, logits.shape);
  return [logits.shape[0], logits.shape[1]];
}

function checkScale(op: string, scale: number): void {
  if (!Number.isFinite(scale)) throw new RangeError(`${op}: scale ${scale} must be finite`);
}

export interface BceArgs {
  /** f32 [B, L] */
  logits: GpuTensor;
  /** f32 [B, L], 0/1 (soft targets in [0, 1] also work) */
  targets: GpuTensor;
  /** f32 [B, L]: per-label weight, 0 = ignore the label */
  mask: GpuTensor;
  /** f32 [B], unscaled per-sample loss (summed over labels) */
  loss: GpuTensor;
  /** f32 [B, L] */
  dlogits: GpuTensor;
  /** gradient scale: 1 (sum) or 1/B (mean) */
  scale: number;
}

export function bceWithLogits(rt: Runtime, a: BceArgs): void {
  const op = "bceWithLogits";
  const [b, l] = batchOf(op, a.logits);
  checkScale(op, a.scale);
  expectShape(op, "targets", a.targets, [b, l]);
  expectShape(op, "mask", a.mask, [b, l]);
  expectShape(op, "loss", a.loss, [b]);
  expectShape(op, "dlogits", a.dlogits, [b, l]);
  rt.dispatch({
    shader: FILE,
    entry: "bce",
    bindings: { 1: a.logits, 2: a.targets, 3: a.mask, 4: a.loss, 5: a.dlogits },
    params: params([b, l], [a.scale]),
    workgroups: grid(b),
  });
}

export interface CrossEntropyArgs {
  /** f32 [B, K] */
  logits: GpuTensor;
  /** u32 [B]; IGNORE_LABEL skips a sample */
  labels: GpuTensor;
  /** f32 [B] */
  loss: GpuTensor;
  /** f32 [B, K] */
  dlogits: GpuTensor;
  scale: number;
}

export function crossEntropy(rt: Runtime, a: CrossEntropyArgs): void {
  const op = "crossEntropy";
  const [b, k] = batchOf(op, a.logits);
  if (k < 1) throw new ShapeError(`${op}: logits (${a.logits.label}) need at least one class`);
  checkScale(op, a.scale);
  expectShape(op, "labels", a.labels, [b], "u32");
  expectShape(op, "loss", a.loss, [b]);
  expectShape(op, "dlogits", a.dlogits, [b, k]);
  rt.dispatch({
    shader: FILE,
    entry: "ce",
    bindings: { 1: a.logits, 4: a.loss, 5: a.dlogits, 6: a.labels },
    params: params([b, k], [a.scale]),
    workgroups: grid(b),
  });
}
