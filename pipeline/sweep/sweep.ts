/**
 * Runs the comparison study: tokenize once into `<out>/data-run/`, then for each planned run copy
 * that token cache into `<out>/runs/<name>/data/` and run train → account → evaluate there on one
 * shared GPU runtime. A run whose stages finished with the same settings is skipped by the
 * pipeline's done-markers, so an interrupted sweep resumes and a repeated one only re-aggregates.
 * results.csv / results.json / table.md / f1_vs_epsilon.svg are rewritten (atomically) after
 * every run, so a long sweep can be read while it runs.
 */
import type { PipelineConfig } from "../config.ts";
import { readManifest } from "../data/cache.ts";
import type { Metrics } from "../eval/metrics.ts";
import { exists, writeJsonAtomic, writeTextAtomic } from "../fs.ts";
import { Runtime } from "../gpu/runtime.ts";
import type { ProgressSink } from "../progress.ts";
import { runPipeline } from "../run.ts";
import { planSweep, type RunSpec, type SweepPlanOptions } from "./plan.ts";
import { f1VsEpsilonSvg } from "./plot.ts";
import {
  type Aggregate,
  aggregate,
  perLabelEpsilon,
  type PriorSummary,
  priorSummary,
  readRun,
  resultsCsv,
  type RunRow,
} from "./results.ts";
import { sweepTable } from "./table.ts";

export interface SweepOptions extends SweepPlanOptions {
  /** Output folder (runs/, data-run/ and the result files). */
  out: string;
  /** GPU runtime shared by all runs (created, and destroyed at the end, when absent). */
  runtime?: Runtime;
  /** One event per run start / finish (and one for the data stage). */
  onEvent?: (e: SweepEvent) => void;
  /** The pipeline's own stage progress (per step); silent when absent. */
  onStageProgress?: ProgressSink;
  signal?: AbortSignal;
}

export type SweepEvent =
  | { kind: "data"; message: string }
  | { kind: "start"; index: number; total: number; name: string }
  | { kind: "finish"; index: number; total: number; row: RunRow; reused: boolean };

export interface SweepFiles {
  csv: string;
  json: string;
  table: string;
  svg: string;
}

export interface SweepResult {
  rows: RunRow[];
  aggregates: Aggregate[];
  prior: PriorSummary;
  /** Names of the runs trained (or re-trained) by this invocation. */
  trained: string[];
  /** Names of the runs found finished with the same settings and reused. */
  reused: string[];
  files: SweepFiles;
}

/** JSON with non-finite numbers as null (JSON has no NaN). */
function finiteJson(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v, (_k, x) => (typeof x === "number" && !Number.isFinite(x) ? null : x)),
  );
}

/** Replace `to` by a copy of the folder `from` (flat: the token cache has no subfolders). */
async function replaceDir(from: string, to: string): Promise<void> {
  const tmp = `${to}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.mkdir(tmp, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (!e.isFile) continue;
    await Deno.copyFile(`${from}/${e.name}`, `${tmp}/${e.name}`);
  }
  await Deno.remove(to, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await Deno.rename(tmp, to);
}

function caption(config: PipelineConfig, train: number, test: number): string {
  const d = config.data;
  const base = (p: string | undefined) => (p ?? "?").replace(/[\\/]+$/, "").split(/[\\/]/).pop();
  const t = config.train;
  return `Data: \`${base(d.root ?? d.file)}\` (${train} training / ${test} test reports), ` +
    `model: \`${base(config.model.checkpoint)}\`, ${
      t.max_steps ? `≤ ${t.max_steps} steps` : `${t.epochs} epoch${t.epochs === 1 ? "" : "s"}`
    } per run (settings of each run: \`runs/<run>/config.json\`).`;
}

/** Run (or resume) the sweep and write its result files. */
export async function runSweep(base: PipelineConfig, opts: SweepOptions): Promise<SweepResult> {
  const plan = planSweep(base, opts);
  const out = opts.out.replace(/[\\/]+$/, "") || ".";
  const quiet: ProgressSink = () => {};
  const progress = opts.onStageProgress ?? quiet;
  const emit = opts.onEvent ?? (() => {});
  const files: SweepFiles = {
    csv: `${out}/results.csv`,
    json: `${out}/results.json`,
    table: `${out}/table.md`,
    svg: `${out}/f1_vs_epsilon.svg`,
  };

  // Tokenize once. Forced so that the content-keyed cache notices edited input files; when the
  // inputs are unchanged prepareData reuses the cache without re-tokenizing.
  const dataRun = `${out}/data-run`;
  await runPipeline(plan[0].config, {
    stages: ["data"],
    runDir: dataRun,
    force: true,
    onProgress: progress,
    signal: opts.signal,
  });
  const manifest = await readManifest(dataRun);
  if (!manifest) throw new Error(`${dataRun}/data/manifest.json missing after the data stage`);
  const s = manifest.splits;
  emit({
    kind: "data",
    message:
      `data: train ${s.train.records}, validation ${s.validation.records}, test ${s.test.records} reports (${dataRun}/data)`,
  });

  const owned = !opts.runtime;
  const rt = opts.runtime ?? await Runtime.create();
  const rows: RunRow[] = [];
  const trained: string[] = [], reused: string[] = [];
  let prior: Metrics | null = null;
  let priorFrom = "";
  try {
    for (const [i, spec] of plan.entries()) {
      opts.signal?.throwIfAborted();
      emit({ kind: "start", index: i + 1, total: plan.length, name: spec.name });
      const runDir = `${out}/runs/${spec.name}`;
      const force = await syncData(`${dataRun}/data`, manifest.key, runDir);
      const res = await runPipeline(spec.config, {
        stages: ["train", "account", "evaluate"],
        runDir,
        runtime: rt,
        force,
        onProgress: progress,
        signal: opts.signal,
      });
      const wasReused = res.ran.length === 0;
      (wasReused ? reused : trained).push(spec.name);
      const got = await readRun(spec, runDir);
      // Same splits ⇒ the same training-majority prior on the same test set, bit for bit.
      if (prior === null) {
        prior = got.prior;
        priorFrom = spec.name;
      } else if (
        got.prior.weightedF1 !== prior.weightedF1 || got.prior.macroF1 !== prior.macroF1
      ) {
        throw new Error(
          `${runDir}/eval/metrics.json: label-prior baseline differs from ${priorFrom}'s; the ` +
            "runs did not see the same data splits",
        );
      }
      rows.push(got.row);
      emit({ kind: "finish", index: i + 1, total: plan.length, row: got.row, reused: wasReused });
      await writeOutputs(
        files,
        plan,
        rows,
        prior,
        opts,
        caption(base, s.train.records, s.test.records),
        {
          trained,
          reused,
        },
      );
    }
  } finally {
    if (owned) rt.destroy();
  }
  const pr = priorSummary(prior!);
  return { rows, aggregates: aggregate(rows), prior: pr, trained, reused, files };
}

/**
 * Make `<runDir>/data` hold the shared token cache. Returns true when a finished run's data was
 * replaced (its done-markers do not cover data contents, so its stages must be forced to re-run).
 */
async function syncData(shared: string, key: string, runDir: string): Promise<boolean> {
  const have = await readManifest(runDir);
  if (have?.key === key) return false;
  const hadWork = have !== undefined || await exists(`${runDir}/train/done-train.json`);
  await Deno.mkdir(runDir, { recursive: true });
  await replaceDir(shared, `${runDir}/data`);
  return hadWork;
}

async function writeOutputs(
  files: SweepFiles,
  plan: readonly RunSpec[],
  rows: readonly RunRow[],
  prior: Metrics,
  opts: SweepOptions,
  cap: string,
  status: { trained: string[]; reused: string[] },
): Promise<void> {
  const aggregates = aggregate(rows);
  const pr = priorSummary(prior);
  const epsilons = [...opts.epsilons].sort((a, b) => a - b);
  const atEps = perLabelEpsilon(epsilons);
  await writeTextAtomic(files.csv, resultsCsv(rows));
  await writeJsonAtomic(
    files.json,
    finiteJson({
      version: 1,
      created: new Date().toISOString(),
      complete: rows.length === plan.length,
      planned: plan.map((p) => p.name),
      epsilons,
      seeds: opts.seeds,
      std: "sample standard deviation over seeds (n − 1); null for one seed",
      runs: rows,
      aggregates,
      prior: pr,
      per_label_epsilon: atEps,
      trained: status.trained,
      reused: status.reused,
    }),
  );
  await writeTextAtomic(
    files.table,
    sweepTable({ aggregates, prior: pr, perLabelEpsilon: atEps, seeds: opts.seeds, caption: cap }),
  );
  await writeTextAtomic(files.svg, f1VsEpsilonSvg(aggregates, pr));
}
