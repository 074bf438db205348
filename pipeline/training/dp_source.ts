/**
 * The encoder as DpStep's per-sample source for one DP-SGD step.
 *
 * When a privacy unit (a patient) spans micro-batches, DpStep asks for every micro-batch twice:
 * a "norms" pass that fixes each unit's clip factor, then a "sums" pass that adds the clipped
 * gradients. Both passes must compute the same gradients, or the factor from the first would
 * scale a gradient it does not bound and a unit could contribute more than C. LoRA dropout is the
 * only randomness in a train step, so its masks are keyed by (step, micro-batch index): the same
 * in both passes, different across micro-batches and steps.
 */
import type { GpuTensor } from "../gpu/tensor.ts";
import type { GpuEncoder, LabeledBatch } from "../model/encoder.ts";
import type { PerSampleGrad, PerSamplePass, PerSampleSource } from "../privacy/dp_step.ts";
import type { MicroBatch } from "../privacy/sampler.ts";

export function encoderSource(
  enc: GpuEncoder,
  step: number,
  batchOf: (mb: MicroBatch) => LabeledBatch,
  /** Called once per micro-batch with its per-sample losses (not again on the "sums" pass). */
  onLoss?: (loss: GpuTensor, records: number) => void,
): PerSampleSource {
  return {
    perSample(mb: MicroBatch, pass: PerSamplePass): PerSampleGrad[] {
      const loss = enc.trainStep(batchOf(mb), { dropoutKey: [step, mb.index] });
      if (pass !== "sums") onLoss?.(loss, mb.records.length);
      return enc.perSampleGrads("materialized");
    },
  };
}
