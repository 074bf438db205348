/**
 * One row per finished run, read from the run's own artifacts (eval/metrics.json,
 * privacy/report.json, train/summary.json) — never from in-memory state — so a reused run and a
 * freshly trained one are reported identically. Aggregates are mean ± std per (mode, ε).
 */
import type { Metrics } from "../eval/metrics.ts";
import { csvField } from "../eval/report.ts";
import { readJsonIfExists } from "../fs.ts";
import type { PrivacyReport } from "../stages/account.ts";
import type { TrainSummary } from "../stages/train.ts";
import type { RunSpec, SweepMode } from "./plan.ts";
import { type MeanStd, meanStd } from "./stats.ts";

export interface RunRow {
  mode: SweepMode;
  /** Target ε (null: non-private). */
  epsilon: number | null;
  /** The run's train.seed. */
  seed: number;
  name: string;
  weighted_f1: number;
  macro_f1: number;
  micro_f1: number;
  /** ε spent by the ledger, tight (PLD) accountant; null for non-private runs. */
  epsilon_spent: number | null;
  epsilon_rdp: number | null;
  noise_multiplier: number | null;
  steps: number;
  /** Wall time of the train stage (as recorded when the run was trained). */
  seconds: number;
  /** Per-label test F1, in label order. */
  per_label_f1: Record<string, number>;
}

export interface EvalFile {
  model: Metrics;
  prior: Metrics;
}

export interface RunArtifacts {
  row: RunRow;
  prior: Metrics;
}

async function need<T>(path: string): Promise<T> {
  const v = await readJsonIfExists<T>(path);
  if (v === undefined) throw new Error(`${path} missing: the run did not finish`);
  return v;
}

/** Read a finished run's artifacts into its row (and its label-prior metrics). */
export async function readRun(spec: RunSpec, runDir: string): Promise<RunArtifacts> {
  const metrics = await need<EvalFile>(`${runDir}/eval/metrics.json`);
  const report = await need<PrivacyReport>(`${runDir}/privacy/report.json`);
  const summary = await need<TrainSummary>(`${runDir}/train/summary.json`);
  const m = metrics.model;
  return {
    row: {
      mode: spec.mode,
      epsilon: spec.epsilon,
      seed: spec.seed,
      name: spec.name,
      weighted_f1: m.weightedF1,
      macro_f1: m.macroF1,
      micro_f1: m.microF1,
      epsilon_spent: report.epsilon,
      epsilon_rdp: report.epsilon_rdp,
      noise_multiplier: report.noise_multiplier,
      steps: summary.steps,
      seconds: summary.seconds,
      per_label_f1: Object.fromEntries(m.perLabel.map((l) => [l.label, l.f1])),
    },
    prior: metrics.prior,
  };
}

export const CSV_COLUMNS = [
  "mode",
  "epsilon",
  "seed",
  "weighted_f1",
  "macro_f1",
  "micro_f1",
  "epsilon_spent",
  "epsilon_rdp",
  "noise_multiplier",
  "steps",
  "seconds",
] as const;

/** results.csv: one row per run; non-private ε columns are `inf` (target) or empty (spent). */
export function resultsCsv(rows: readonly RunRow[]): string {
  const cell = (r: RunRow, c: typeof CSV_COLUMNS[number]): string => {
    const v = r[c];
    if (c === "epsilon" && v === null) return "inf";
    if (v === null) return "";
    return csvField(String(v));
  };
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) lines.push(CSV_COLUMNS.map((c) => cell(r, c)).join(","));
  return lines.join("\n") + "\n";
}

export interface Aggregate {
  mode: SweepMode;
  epsilon: number | null;
  seeds: number[];
  weighted_f1: MeanStd;
  macro_f1: MeanStd;
  micro_f1: MeanStd;
  epsilon_spent: MeanStd | null;
  per_label_f1: Record<string, MeanStd>;
}

/** Group rows by (mode, ε) in first-seen order and take mean ± std over seeds. */
export function aggregate(rows: readonly RunRow[]): Aggregate[] {
  const groups = new Map<string, RunRow[]>();
  for (const r of rows) {
    const key = `${r.mode}|${r.epsilon}`;
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((g) => {
    const labels = Object.keys(g[0].per_label_f1);
    const spent = g.map((r) => r.epsilon_spent).filter((e): e is number => e !== null);
    return {
      mode: g[0].mode,
      epsilon: g[0].epsilon,
      seeds: g.map((r) => r.seed),
      weighted_f1: meanStd(g.map((r) => r.weighted_f1)),
      macro_f1: meanStd(g.map((r) => r.macro_f1)),
      micro_f1: meanStd(g.map((r) => r.micro_f1)),
      epsilon_spent: spent.length ? meanStd(spent) : null,
      per_label_f1: Object.fromEntries(
        labels.map((l) => [l, meanStd(g.map((r) => r.per_label_f1[l]))]),
      ),
    };
  });
}

export interface PriorSummary {
  weighted_f1: number;
  macro_f1: number;
  micro_f1: number;
  per_label_f1: Record<string, number>;
}

export function priorSummary(prior: Metrics): PriorSummary {
  return {
    weighted_f1: prior.weightedF1,
    macro_f1: prior.macroF1,
    micro_f1: prior.microF1,
    per_label_f1: Object.fromEntries(prior.perLabel.map((l) => [l.label, l.f1])),
  };
}

/** The DP-LoRA ε whose per-label table is shown: 1 if swept, else the one nearest 1 in log ε. */
export function perLabelEpsilon(epsilons: readonly number[]): number | null {
  if (epsilons.length === 0) return null;
  return [...epsilons].sort((a, b) => Math.abs(Math.log(a)) - Math.abs(Math.log(b)) || a - b)[0];
}
