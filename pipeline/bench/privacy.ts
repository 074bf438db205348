/**
 * `deno task bench privacy`: what differential privacy costs in time.
 *
 * 1. Step overhead: DP-LoRA step ÷ non-private LoRA step, per model (batch 32, seq 128 by
 *    default). DP step = trainStep with per-sample gradients + perSampleGrads + DpStep begin →
 *    singlePass → finish; non-private = trainStep with `perSample: false`. Both end with one
 *    readback of the loss, neither runs an optimizer. The two workloads live side by side and
 *    their timed runs alternate (np, dp, np, dp, …) so that load drift on a shared machine hits
 *    both alike; `ratio` is median(dp) / median(np), `ratio_paired` the median of per-pair
 *    ratios. Opacus pays ≈ 1.10×; the project's target is ≤ 1.05×.
 * 2. Accountant: wall time of computeEpsilon and calibrateNoise (PLD and RDP) in a few regimes.
 */
import { type AccountantName, calibrateNoise, computeEpsilon } from "../privacy/accountant/mod.ts";
import { type E2eOptions, openWorkload, summarise, WeightCache } from "./measure.ts";
import { median, round } from "./stats.ts";
import { type Column, header, mib, num, renderTable } from "./table.ts";
import type { Workload } from "./workload.ts";

export interface OverheadRow {
  bench: "privacy";
  kind: "step";
  model: string;
  seq: number;
  batch: number;
  nonprivate_ms: number;
  dp_ms: number;
  ratio: number;
  ratio_paired: number;
  nonprivate_peak_bytes: number;
  dp_peak_bytes: number;
  /** Whether the non-private encoder skipped per-sample gradients (perSample: false honoured). */
  nonprivate_per_sample: boolean;
  reps: number;
  adapter: string;
  load_avg: number | null;
  opacus_ratio: number;
  target_ratio: number;
}

export interface AccountantRow {
  bench: "privacy";
  kind: "accountant";
  op: "computeEpsilon" | "calibrateNoise";
  accountant: AccountantName;
  q: number;
  sigma: number | null;
  steps: number;
  delta: number;
  target_epsilon: number | null;
  epsilon: number;
  /** calibrateNoise: accountant evaluations it used. */
  evaluations: number | null;
  ms: number;
  reps: number;
  adapter: string;
}

export type PrivacyRow = OverheadRow | AccountantRow;

export interface PrivacyOptions extends E2eOptions {
  /** Repetitions of each accountant query (median reported); default 3. */
  accountantReps?: number;
  /** Skip the step-overhead part (accountant only). */
  skipSteps?: boolean;
}

/** Alternate timed runs of two warm workloads; returns their wall times. */
async function interleaved(
  a: Workload,
  b: Workload,
  warmup: number,
  reps: number,
): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    await a.run();
    await b.run();
  }
  const ta: number[] = [], tb: number[] = [];
  for (let i = 0; i < reps; i++) {
    for (const [w, out] of [[a, ta], [b, tb]] as const) {
      const t0 = performance.now();
      await w.run();
      out.push(performance.now() - t0);
    }
  }
  return [ta, tb];
}

async function stepOverhead(o: E2eOptions, onRow?: (r: PrivacyRow) => void) {
  const weights = new WeightCache();
  const rows: OverheadRow[] = [];
  for (const model of o.models) {
    o.log?.(`${model}: building LoRA (non-private) and DP-LoRA (batch ${o.batch}, seq ${o.seq})`);
    const np = await openWorkload(model, "lora", o, weights, false);
    let dp: Workload | null = null;
    try {
      dp = await openWorkload(model, "dp-lora", o, weights, false);
      const [tn, td] = await interleaved(np, dp, o.warmup, o.reps);
      const mn = summarise(model, "lora", o, np, tn, median(tn));
      const md = summarise(model, "dp-lora", o, dp, td, median(td));
      const r: OverheadRow = {
        bench: "privacy",
        kind: "step",
        model,
        seq: o.seq,
        batch: o.batch,
        nonprivate_ms: round(mn.step_ms, 1),
        dp_ms: round(md.step_ms, 1),
        ratio: round(md.step_ms / mn.step_ms),
        ratio_paired: round(median(td.map((x, i) => x / tn[i]))),
        nonprivate_peak_bytes: mn.peak_bytes,
        dp_peak_bytes: md.peak_bytes,
        nonprivate_per_sample: mn.per_sample,
        reps: o.reps,
        adapter: np.rt.info.adapterName,
        load_avg: md.load_avg === null ? null : round(md.load_avg, 2),
        opacus_ratio: 1.10,
        target_ratio: 1.05,
      };
      o.log?.(`${model}: DP/non-private ${r.ratio}`);
      rows.push(r);
      onRow?.(r);
    } finally {
      dp?.dispose();
      np.dispose();
    }
  }
  return rows;
}

interface Regime {
  op: "computeEpsilon" | "calibrateNoise";
  q: number;
  sigma?: number;
  steps: number;
  delta: number;
  target?: number;
}

/** The accountant regimes: a typical run, a very long run at tiny δ, and a very strict target. */
export const ACCOUNTANT_REGIMES: readonly Regime[] = [
  { op: "computeEpsilon", q: 0.01, sigma: 1, steps: 1000, delta: 1e-5 },
  { op: "computeEpsilon", q: 0.01, sigma: 1, steps: 100_000, delta: 1e-10 },
  { op: "calibrateNoise", q: 0.01, steps: 1000, delta: 1e-5, target: 1 },
  { op: "calibrateNoise", q: 0.01, steps: 1000, delta: 1e-5, target: 0.01 },
];

function accountantRows(adapter: string, reps: number, onRow?: (r: PrivacyRow) => void) {
  const rows: AccountantRow[] = [];
  for (const g of ACCOUNTANT_REGIMES) {
    for (const acc of ["pld", "rdp"] as const) {
      const ms: number[] = [];
      let epsilon = NaN, sigma = g.sigma ?? null, evaluations: number | null = null;
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        if (g.op === "computeEpsilon") {
          epsilon = computeEpsilon(
            { sampleRate: g.q, noiseMultiplier: g.sigma!, steps: g.steps, delta: g.delta },
            acc,
          );
        } else {
          const c = calibrateNoise({
            targetEpsilon: g.target!,
            sampleRate: g.q,
            steps: g.steps,
            delta: g.delta,
            accountant: acc,
          });
          epsilon = c.epsilon;
          sigma = c.noiseMultiplier;
          evaluations = c.evaluations;
        }
        ms.push(performance.now() - t0);
      }
      const r: AccountantRow = {
        bench: "privacy",
        kind: "accountant",
        op: g.op,
        accountant: acc,
        q: g.q,
        sigma: sigma === null ? null : round(sigma, 4),
        steps: g.steps,
        delta: g.delta,
        target_epsilon: g.target ?? null,
        epsilon: round(epsilon, 5),
        evaluations,
        ms: round(median(ms), 1),
        reps,
        adapter,
      };
      rows.push(r);
      onRow?.(r);
    }
  }
  return rows;
}

/**
 * Step overhead per model, then the accountant timings. `adapter` names the device for the
 * accountant rows (they run on the CPU, but every JSON line carries the adapter).
 */
export async function benchPrivacy(
  o: PrivacyOptions,
  adapter: string,
  onRow?: (r: PrivacyRow) => void,
): Promise<PrivacyRow[]> {
  const steps = o.skipSteps ? [] : await stepOverhead(o, onRow);
  o.log?.("accountant queries");
  return [...steps, ...accountantRows(adapter, o.accountantReps ?? 3, onRow)];
}

const STEP_COLUMNS: Column<OverheadRow>[] = [
  { title: "model", cell: (r) => r.model, left: true },
  { title: "batch", cell: (r) => String(r.batch) },
  { title: "seq", cell: (r) => String(r.seq) },
  { title: "LoRA ms", cell: (r) => num(r.nonprivate_ms, 0) },
  { title: "DP-LoRA ms", cell: (r) => num(r.dp_ms, 0) },
  { title: "DP/LoRA", cell: (r) => num(r.ratio, 3) },
  { title: "paired", cell: (r) => num(r.ratio_paired, 3) },
  { title: "Opacus", cell: (r) => num(r.opacus_ratio, 2) },
  { title: "target", cell: (r) => num(r.target_ratio, 2) },
  { title: "LoRA MiB", cell: (r) => mib(r.nonprivate_peak_bytes) },
  { title: "DP MiB", cell: (r) => mib(r.dp_peak_bytes) },
  { title: "load", cell: (r) => num(r.load_avg, 1) },
];

const ACC_COLUMNS: Column<AccountantRow>[] = [
  { title: "query", cell: (r) => r.op, left: true },
  { title: "acct", cell: (r) => r.accountant, left: true },
  { title: "q", cell: (r) => String(r.q) },
  { title: "steps", cell: (r) => String(r.steps) },
  { title: "delta", cell: (r) => String(r.delta) },
  { title: "target ε", cell: (r) => num(r.target_epsilon, 2) },
  { title: "σ", cell: (r) => num(r.sigma, 3) },
  { title: "ε", cell: (r) => num(r.epsilon, 4) },
  { title: "evals", cell: (r) => r.evaluations === null ? "-" : String(r.evaluations) },
  { title: "ms", cell: (r) => num(r.ms, 1) },
];

export function privacyTable(rows: readonly PrivacyRow[], adapter: string): string {
  const steps = rows.filter((r): r is OverheadRow => r.kind === "step");
  const acc = rows.filter((r): r is AccountantRow => r.kind === "accountant");
  const out = [header("bench privacy", adapter)];
  if (steps.length) {
    out.push(
      "",
      "DP-LoRA step ÷ non-private LoRA step (median wall ms incl. one readback, interleaved runs)",
      renderTable(STEP_COLUMNS, steps),
    );
  }
  if (acc.length) {
    out.push("", "accountant (CPU, median wall ms)", renderTable(ACC_COLUMNS, acc));
  }
  return out.join("\n");
}
