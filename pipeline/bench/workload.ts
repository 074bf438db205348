/**
 * One benchmarked operation on one model shape, on its own Runtime (so `rt.peakBytes` is the
 * peak of this configuration alone: the encoder has no dispose, and a shared runtime would
 * carry the previous configuration's buffers).
 *
 * Ops (every `run()` ends with one readback of the loss or logits, as a training loop that logs
 * its loss does; that readback includes the adapter's synchronisation floor):
 * - forward:  GpuEncoder.forward (eval mode) + read of the logits;
 * - lora:     GpuEncoder.trainStep, LoRA q+v r 8, non-private (perSample false);
 * - full:     GpuEncoder.trainStep, every weight trainable, non-private (perSample false);
 * - dp-lora:  trainStep with per-sample gradients + perSampleGrads + DpStep begin → singlePass
 *             → finish (flat clipping C 1, σ 1, fresh CSPRNG noise key per step);
 * with `optimizer`, each step also applies AdamW to every trainable tensor (what the trainer in
 * pipeline/stages/train.ts does per logical step; DP gradients come already divided by q·N).
 */
import { Runtime } from "../gpu/runtime.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { adamwStep } from "../gpu/ops/adamw.ts";
import { type EncoderOptions, GpuEncoder, type TrainMode } from "../model/encoder.ts";
import type { EncoderConfig, EncoderWeights } from "../model/types.ts";
import { DpStep } from "../privacy/dp_step.ts";
import type { MicroBatch } from "../privacy/sampler.ts";
import { BENCH_LORA, CHEXPERT_LABELS, randomBatch } from "./shapes.ts";

export type BenchOp = "forward" | "lora" | "full" | "dp-lora";

export interface WorkloadSpec {
  config: EncoderConfig;
  weights: EncoderWeights;
  op: BenchOp;
  batch: number;
  seq: number;
  /** Also run AdamW on every trainable tensor each step. */
  optimizer?: boolean;
  seed?: number;
}

export interface Workload {
  rt: Runtime;
  /** Trainable parameter count (0 for forward). */
  trainableParams: number;
  /**
   * Whether per-sample gradients are materialised: false for the non-private ops when the
   * encoder honours `perSample: false`, true for dp-lora.
   */
  perSample: boolean;
  /** Record one step and wait for its readback. */
  run(): Promise<void>;
  /** Destroy the runtime (and with it every buffer of this configuration). */
  dispose(): void;
}

/** Build the encoder (and DpStep / optimizer state) for `spec` on a fresh Runtime. */
export async function createWorkload(spec: WorkloadSpec, rt?: Runtime): Promise<Workload> {
  const runtime = rt ?? await Runtime.create();
  try {
    return await build(runtime, spec);
  } catch (e) {
    if (!rt) runtime.destroy();
    throw e;
  }
}

async function build(rt: Runtime, spec: WorkloadSpec): Promise<Workload> {
  const { op, batch: b, seq: t } = spec;
  const dp = op === "dp-lora";
  const mode: TrainMode = op === "full" ? "full" : "lora";
  // Spread, not a literal: the option is honoured by encoders that have it and ignored (as an
  // unknown field) by older ones; `perSample` below reports which happened.
  const extra = { perSample: dp };
  const options: EncoderOptions = {
    mode,
    lora: mode === "lora" ? BENCH_LORA : undefined,
    head: { kind: "multi-label", numLabels: CHEXPERT_LABELS },
    seed: spec.seed ?? 1,
    maxBatch: b,
    maxLen: t,
    ...extra,
  };
  const enc = await GpuEncoder.create(rt, spec.config, spec.weights, options);
  const params = enc.parameters();
  // With perSample off the per-sample buffer is `grad` viewed as [1, P].
  const perSample = b > 1 && params.length > 0 ? params[0].perSample.shape[0] === b : dp;
  const data = randomBatch(spec.config, b, t, spec.seed ?? 1);
  const batch = { ids: data.ids, labels: data.labels };
  const trainableParams = op === "forward" ? 0 : params.reduce((s, p) => s + p.tensor.size, 0);

  const opt = spec.optimizer && op !== "forward"
    ? params.map((p) => ({
      param: p.tensor,
      grad: p.grad,
      m: rt.zeros(p.shape, `m:${p.name}`),
      v: rt.zeros(p.shape, `v:${p.name}`),
    }))
    : [];
  let step = 0;
  const optimize = (grads: GpuTensor[] | null, gradScale: number) => {
    opt.forEach((o, i) =>
      adamwStep(rt, { param: o.param, grad: grads ? grads[i] : o.grad, m: o.m, v: o.v }, {
        lr: 1e-4,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0,
        step,
        gradScale,
      })
    );
  };

  let ds: DpStep | null = null;
  let mb: MicroBatch | null = null;
  if (dp) {
    ds = new DpStep(rt, {
      params: enc.trainableSpecs(),
      clipping: { kind: "flat", C: 1 },
      sigma: 1,
      expectedUnits: b,
      maxRecords: b,
    });
    const idx = Uint32Array.from({ length: b }, (_, i) => i);
    mb = { index: 0, records: idx, unitIndex: idx.slice(), selfContained: true };
  }

  const run = async (): Promise<void> => {
    step++;
    if (op === "forward") {
      await rt.read(enc.forward(batch));
      return;
    }
    if (ds && mb) {
      ds.begin(step, b);
      const loss = enc.trainStep(batch);
      ds.singlePass(mb, enc.perSampleGrads("materialized"));
      const grads = ds.finish();
      optimize(grads, 1);
      await rt.read(loss);
      return;
    }
    const loss = enc.trainStep(batch);
    optimize(null, 1 / b);
    await rt.read(loss);
  };

  return {
    rt,
    trainableParams,
    perSample,
    run,
    dispose: () => rt.destroy(),
  };
}
