/**
 * `deno task bench model`: samples/s and peak GPU buffer bytes of the forward pass, the LoRA
 * training step (r 8, query + value) and the full training step, per model shape. A step is
 * GpuEncoder.trainStep + one readback of the loss (no optimizer: that is `bench train`); the
 * forward is GpuEncoder.forward + one readback of the logits. Non-private steps run with
 * `perSample: false` (the `per_sample` field says whether the encoder honoured it).
 */
import { type E2eOptions, measure, type Measurement, WeightCache } from "./measure.ts";
import { round } from "./stats.ts";
import { type Column, header, mib, num, renderTable } from "./table.ts";
import type { BenchOp } from "./workload.ts";

export const MODEL_OPS: readonly BenchOp[] = ["forward", "lora", "full"];

/** PyTorch 1.13 on this machine kind's 2-core CPU (given with the issue). */
const PEERS: Record<string, number> = { "bert-small/lora": 15 };

export interface ModelRow {
  bench: "model";
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

function toRow(m: Measurement, reps: number): ModelRow {
  return {
    bench: "model",
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
    pytorch_samples_per_s: PEERS[`${m.model}/${m.op}`] ?? null,
  };
}

/** Run every (model, op); `onRow` sees each row as soon as it is measured. */
export async function benchModel(
  o: E2eOptions,
  onRow?: (r: ModelRow) => void,
): Promise<ModelRow[]> {
  const weights = new WeightCache();
  const rows: ModelRow[] = [];
  for (const model of o.models) {
    for (const op of MODEL_OPS) {
      const r = toRow(await measure(model, op, o, weights, false), o.reps);
      rows.push(r);
      onRow?.(r);
    }
  }
  return rows;
}

const COLUMNS: Column<ModelRow>[] = [
  { title: "model", cell: (r) => r.model, left: true },
  { title: "op", cell: (r) => r.op, left: true },
  { title: "batch", cell: (r) => String(r.batch) },
  { title: "seq", cell: (r) => String(r.seq) },
  { title: "ms/step", cell: (r) => num(r.step_ms, 0) },
  { title: "samples/s", cell: (r) => num(r.samples_per_s, 2) },
  { title: "PyTorch", cell: (r) => num(r.pytorch_samples_per_s, 1) },
  { title: "peak MiB", cell: (r) => mib(r.peak_bytes) },
  { title: "trainable", cell: (r) => String(r.trainable_params) },
  { title: "load", cell: (r) => num(r.load_avg, 1) },
];

export function modelTable(rows: readonly ModelRow[]): string {
  const adapter = rows[0]?.adapter ?? "?";
  return [
    header("bench model (median wall ms per step incl. one readback)", adapter),
    renderTable(COLUMNS, rows),
  ].join("\n");
}
