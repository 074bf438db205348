/**
 * Measure one (model, op) configuration: build it on a fresh Runtime, warm up, time, read the
 * runtime's peak buffer bytes, destroy. Shared by `bench model`, `bench privacy`, `bench train`.
 */
import type { Runtime } from "../gpu/runtime.ts";
import { benchConfig, type BenchModelName, randomBertWeights } from "./shapes.ts";
import { type BenchOp, createWorkload, type Workload } from "./workload.ts";
import { loadAverage, round, timeRuns } from "./stats.ts";
import type { EncoderWeights } from "../model/types.ts";

/** Options every end-to-end benchmark takes. */
export interface E2eOptions {
  models: BenchModelName[];
  batch: number;
  seq: number;
  warmup: number;
  reps: number;
  /** Called with each progress message (stderr in the CLI); default silent. */
  log?: (msg: string) => void;
}

/** The full and `--quick` defaults (quick: BERT-tiny only, batch 8, one warm-up, two reps). */
export function e2eDefaults(quick: boolean): E2eOptions {
  return quick ? { models: ["bert-tiny"], batch: 8, seq: 128, warmup: 1, reps: 2 } : {
    models: ["bert-tiny", "bert-small", "bert-medium"],
    batch: 32,
    seq: 128,
    warmup: 1,
    reps: 3,
  };
}

export interface Measurement {
  model: BenchModelName;
  op: BenchOp;
  seq: number;
  batch: number;
  step_ms: number;
  samples_per_s: number;
  peak_bytes: number;
  /** Every timed repetition (wall ms). */
  ms: number[];
  trainable_params: number;
  per_sample: boolean;
  adapter: string;
  load_avg: number | null;
}

/** Random weights, generated once per model and reused across its configurations. */
export class WeightCache {
  private cache = new Map<BenchModelName, EncoderWeights>();
  get(model: BenchModelName): EncoderWeights {
    let w = this.cache.get(model);
    if (!w) {
      w = randomBertWeights(benchConfig(model), 1);
      this.cache.set(model, w);
    }
    return w;
  }
}

export async function openWorkload(
  model: BenchModelName,
  op: BenchOp,
  o: E2eOptions,
  weights: WeightCache,
  optimizer: boolean,
): Promise<Workload> {
  return await createWorkload({
    config: benchConfig(model),
    weights: weights.get(model),
    op,
    batch: o.batch,
    seq: o.seq,
    optimizer,
  });
}

/** Summarise timings of a workload into a Measurement. */
export function summarise(
  model: BenchModelName,
  op: BenchOp,
  o: E2eOptions,
  wl: Workload,
  ms: number[],
  median: number,
): Measurement {
  return {
    model,
    op,
    seq: o.seq,
    batch: o.batch,
    step_ms: median,
    samples_per_s: o.batch / (median / 1000),
    peak_bytes: wl.rt.peakBytes,
    ms,
    trainable_params: wl.trainableParams,
    per_sample: wl.perSample,
    adapter: wl.rt.info.adapterName,
    load_avg: loadAverage(),
  };
}

/**
 * Build, warm up, time and destroy one configuration. `inspect` runs on the warm workload
 * after timing (e.g. a profiled step), before the runtime is destroyed.
 */
export async function measure(
  model: BenchModelName,
  op: BenchOp,
  o: E2eOptions,
  weights: WeightCache,
  optimizer: boolean,
  inspect?: (rt: Runtime, run: () => Promise<void>) => Promise<void>,
): Promise<Measurement> {
  o.log?.(`${model} ${op}: building (batch ${o.batch}, seq ${o.seq})`);
  const wl = await openWorkload(model, op, o, weights, optimizer);
  try {
    const t = await timeRuns(wl.run, o.warmup, o.reps);
    const m = summarise(model, op, o, wl, t.ms, t.median);
    o.log?.(`${model} ${op}: ${m.step_ms.toFixed(0)} ms/step`);
    if (inspect) await inspect(wl.rt, wl.run);
    return m;
  } finally {
    wl.dispose();
  }
}

/** The fields every per-step benchmark row shares (bench model and bench train). */
export interface StepRow {
  model: string;
  op: BenchOp;
  seq: number;
  batch: number;
  samples_per_s: number;
  step_ms: number;
  peak_bytes: number;
  adapter: string;
  per_sample: boolean;
  trainable_params: number;
  reps: number;
  ms: number[];
  load_avg: number | null;
  pytorch_samples_per_s: number | null;
}

/** A measurement as a rounded row, with the peer's samples/s where one was measured. */
export function stepRow(m: Measurement, reps: number, peers: Record<string, number>): StepRow {
  return {
    model: m.model,
    op: m.op,
    seq: m.seq,
    batch: m.batch,
    samples_per_s: round(m.samples_per_s),
    step_ms: round(m.step_ms, 1),
    peak_bytes: m.peak_bytes,
    adapter: m.adapter,
    per_sample: m.per_sample,
    trainable_params: m.trainable_params,
    reps,
    ms: m.ms.map((x) => round(x, 1)),
    load_avg: m.load_avg === null ? null : round(m.load_avg, 2),
    pytorch_samples_per_s: peers[`${m.model}/${m.op}`] ?? null,
  };
}
