/**
 * `deno task bench train`: training throughput (samples/s), step time and peak GPU buffer bytes
 * for full / LoRA / DP-LoRA per model shape — a step here is what the trainer does per logical
 * batch (pipeline/stages/train.ts): forward + backward (+ per-sample gradients, clipping and
 * noise for DP-LoRA) + AdamW on every trainable tensor + one readback of the loss. Full and LoRA
 * are non-private (`perSample: false`). LoRA: r 8 on query + value.
 *
 * Plus a per-kernel breakdown of one DP-LoRA step (BERT-small by default) from timestamp queries:
 * every dispatch in its own timed pass, summed per `shader:entry`. Those passes serialize what
 * the single-pass step may overlap, so the kernel total can exceed the wall step time slightly;
 * the shares are what matters.
 */
import type { Runtime } from "../gpu/runtime.ts";
import {
  type E2eOptions,
  measure,
  type Measurement,
  type StepRow,
  stepRow,
  WeightCache,
} from "./measure.ts";
import type { BenchModelName } from "./shapes.ts";
import { BENCH_LORA } from "./shapes.ts";
import { round } from "./stats.ts";
import { type Column, header, num, renderTable, stepColumns } from "./table.ts";
import type { BenchOp } from "./workload.ts";

export const TRAIN_OPS: readonly BenchOp[] = ["full", "lora", "dp-lora"];

/** PyTorch 1.13 + Opacus 1.5 on this machine kind's 2-core CPU (given with the issue). */
const PEERS: Record<string, number> = {
  "bert-small/dp-lora": 13.5,
  "bert-small/lora": 15,
  "bert-small/full": 12,
  "bert-tiny/dp-lora": 127,
};

export interface TrainRow extends StepRow {
  bench: "train";
  kind: "config";
  lora_rank: number | null;
  lora_targets: string[] | null;
}

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  /** Fraction of the summed kernel time. */
  share: number;
}

export interface KernelBreakdown {
  bench: "train";
  kind: "kernels";
  model: string;
  op: BenchOp;
  seq: number;
  batch: number;
  adapter: string;
  /** Sum over every timed dispatch of the profiled step. */
  kernel_ms_total: number;
  dispatches: number;
  /** True when the step had more dispatches than the profiler's capacity (tail untimed). */
  truncated: boolean;
  /** The top kernels by total ms. */
  kernels: KernelTime[];
}

export type TrainBenchRow = TrainRow | KernelBreakdown;

export interface TrainOptions extends E2eOptions {
  /** Model whose DP-LoRA step is profiled (default bert-small when benchmarked, else the first). */
  profileModel?: BenchModelName;
  /** Kernels listed in the breakdown (default 15). */
  topKernels?: number;
}

// wgpu caps a query set at 4096 timestamps (2 per dispatch).
const PROFILE_CAPACITY = 2048;

function toRow(m: Measurement, reps: number): TrainRow {
  const lora = m.op === "lora" || m.op === "dp-lora";
  return {
    bench: "train",
    kind: "config",
    ...stepRow(m, reps, PEERS),
    lora_rank: lora ? BENCH_LORA.rank : null,
    lora_targets: lora ? [...BENCH_LORA.targets] : null,
  };
}

/** Time one step with every dispatch in a timestamped pass; null without timestamp queries. */
export async function profileStep(
  rt: Runtime,
  run: () => Promise<void>,
  top: number,
): Promise<
  Pick<KernelBreakdown, "kernel_ms_total" | "dispatches" | "truncated" | "kernels"> | null
> {
  if (!rt.beginProfile(PROFILE_CAPACITY)) return null;
  let failure: unknown = null;
  try {
    await run();
  } catch (e) {
    failure = e;
  }
  const prof = await rt.endProfile(); // always: it also switches profiling off
  if (failure) throw failure;
  let total = 0, dispatches = 0;
  for (const v of prof.values()) {
    total += v.ms;
    dispatches += v.count;
  }
  const kernels = [...prof.entries()]
    .map(([kernel, v]) => ({
      kernel,
      calls: v.count,
      ms: round(v.ms, 2),
      share: round(total > 0 ? v.ms / total : 0, 4),
    }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
  return {
    kernel_ms_total: round(total, 1),
    dispatches,
    truncated: dispatches >= PROFILE_CAPACITY,
    kernels,
  };
}

/** Every (model, op) with AdamW, then the kernel breakdown of the profiled model's DP-LoRA. */
export async function benchTrain(
  o: TrainOptions,
  onRow?: (r: TrainBenchRow) => void,
): Promise<TrainBenchRow[]> {
  const weights = new WeightCache();
  const rows: TrainBenchRow[] = [];
  const profModel = o.profileModel ??
    (o.models.includes("bert-small") ? "bert-small" : o.models[0]);
  for (const model of o.models) {
    for (const op of TRAIN_OPS) {
      let breakdown: KernelBreakdown | null = null;
      const inspect = model === profModel && op === "dp-lora"
        ? async (rt: Runtime, run: () => Promise<void>) => {
          o.log?.(`${model} ${op}: profiling one step`);
          const p = await profileStep(rt, run, o.topKernels ?? 15);
          if (!p) return;
          breakdown = {
            bench: "train",
            kind: "kernels",
            model,
            op,
            seq: o.seq,
            batch: o.batch,
            adapter: rt.info.adapterName,
            ...p,
          };
        }
        : undefined;
      const r = toRow(await measure(model, op, o, weights, true, inspect), o.reps);
      rows.push(r);
      onRow?.(r);
      if (breakdown) {
        rows.push(breakdown);
        onRow?.(breakdown);
      }
    }
  }
  return rows;
}

const COLUMNS = stepColumns<TrainRow>("mode");

const KERNEL_COLUMNS: Column<KernelTime>[] = [
  { title: "kernel", cell: (k) => k.kernel, left: true },
  { title: "calls", cell: (k) => String(k.calls) },
  { title: "total ms", cell: (k) => num(k.ms, 1) },
  { title: "ms/call", cell: (k) => num(k.ms / k.calls, 2) },
  { title: "share %", cell: (k) => num(100 * k.share, 1) },
];

export function trainTable(rows: readonly TrainBenchRow[], adapter: string): string {
  const configs = rows.filter((r): r is TrainRow => r.kind === "config");
  const out = [
    header(
      "bench train (median wall ms per step: fwd + bwd (+ DP) + AdamW + one readback)",
      adapter,
    ),
    renderTable(COLUMNS, configs),
  ];
  for (const b of rows) {
    if (b.kind !== "kernels") continue;
    out.push(
      "",
      `per-kernel time, one ${b.model} ${b.op} step (batch ${b.batch}, seq ${b.seq}): ` +
        `${b.dispatches} dispatches, ${num(b.kernel_ms_total, 0)} ms summed` +
        (b.truncated ? " (TRUNCATED: more dispatches than profiler capacity)" : ""),
      renderTable(KERNEL_COLUMNS, b.kernels),
    );
  }
  return out.join("\n");
}
