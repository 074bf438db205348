/**
 * `deno task bench model`: samples/s and peak GPU buffer bytes of the forward pass, the LoRA
 * training step (r 8, query + value) and the full training step, per model shape. A step is
 * GpuEncoder.trainStep + one readback of the loss (no optimizer: that is `bench train`); the
 * forward is GpuEncoder.forward + one readback of the logits. Non-private steps run with
 * `perSample: false` (the `per_sample` field says whether the encoder honoured it).
 */
import {
  type E2eOptions,
  measure,
  type Measurement,
  type StepRow,
  stepRow,
  WeightCache,
} from "./measure.ts";
import { header, renderTable, stepColumns } from "./table.ts";
import type { BenchOp } from "./workload.ts";

export const MODEL_OPS: readonly BenchOp[] = ["forward", "lora", "full"];

/** PyTorch 1.13 on this machine kind's 2-core CPU (given with the issue). */
const PEERS: Record<string, number> = { "bert-small/lora": 15 };

export interface ModelRow extends StepRow {
  bench: "model";
}

function toRow(m: Measurement, reps: number): ModelRow {
  return { bench: "model", ...stepRow(m, reps, PEERS) };
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

const COLUMNS = stepColumns<ModelRow>("op");

export function modelTable(rows: readonly ModelRow[]): string {
  const adapter = rows[0]?.adapter ?? "?";
  return [
    header("bench model (median wall ms per step incl. one readback)", adapter),
    renderTable(COLUMNS, rows),
  ].join("\n");
}
