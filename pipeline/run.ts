/**
 * Runs the stages in order. A stage that finished with the same settings is skipped (its
 * `run/<stage>/done.json` records a hash of everything that shapes its output), so an interrupted
 * run resumes where it stopped and a re-run after changing only `evaluate.*` re-evaluates only.
 */
import type { PipelineConfig } from "./config.ts";
import { resolvedConfig } from "./config.ts";
import { readJsonIfExists, writeJsonAtomic } from "./fs.ts";
import { Runtime } from "./gpu/runtime.ts";
import { consoleProgress, type ProgressSink } from "./progress.ts";
import { accountStage } from "./stages/account.ts";
import { type StageContext, type StageName, STAGES } from "./stages/context.ts";
import { dataStage } from "./stages/data.ts";
import { evaluateStage } from "./stages/evaluate.ts";
import { trainStage } from "./stages/train.ts";

export interface RunOptions {
  /** Stages to run (default all four, in order). */
  stages?: StageName[];
  /** Continue an interrupted train stage from its checkpoint and ledger. */
  resume?: boolean;
  /** Re-run stages even when their done-marker matches. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressSink;
  /** Use this GPU runtime instead of creating one. */
  runtime?: Runtime;
  /** Run folder (default config.output.dir). */
  runDir?: string;
}

export interface RunResult {
  runDir: string;
  ran: StageName[];
  skipped: StageName[];
}

/** The config sections each stage depends on (its own and every upstream stage's). */
function stageInputs(config: PipelineConfig, stage: StageName): unknown {
  const c = resolvedConfig(config) as Record<string, unknown>;
  const data = { data: c.data, tokenizer: config.model.checkpoint };
  if (stage === "data") return data;
  const train = { ...data, model: c.model, train: c.train, privacy: c.privacy ?? null };
  if (stage === "train" || stage === "account") return train;
  return { ...train, evaluate: c.evaluate };
}

async function hash(v: unknown): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(v)));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

const RUNNERS: Record<StageName, (ctx: StageContext) => Promise<unknown>> = {
  data: dataStage,
  train: trainStage,
  account: accountStage,
  evaluate: evaluateStage,
};

/** Run the pipeline. Returns which stages ran and which were already done. */
export async function runPipeline(
  config: PipelineConfig,
  opts: RunOptions = {},
): Promise<RunResult> {
  const runDir = opts.runDir ?? config.output.dir;
  const progress = opts.onProgress ?? consoleProgress();
  let rt: Promise<Runtime> | null = opts.runtime ? Promise.resolve(opts.runtime) : null;
  const ctx: StageContext = {
    config,
    runDir,
    progress,
    signal: opts.signal,
    resume: !!opts.resume,
    gpu: () => (rt ??= Runtime.create()),
  };
  for (const w of config.warnings) progress({ stage: "data", message: `warning: ${w}` });
  await Deno.mkdir(runDir, { recursive: true });
  await writeJsonAtomic(`${runDir}/config.json`, resolvedConfig(config));
  const wanted = opts.stages ?? [...STAGES];
  const ran: StageName[] = [], skipped: StageName[] = [];
  let upstreamRan = false;
  for (const stage of STAGES) {
    if (!wanted.includes(stage)) continue;
    const key = await hash(stageInputs(config, stage));
    const marker = `${runDir}/${stage === "account" ? "privacy" : stage}/done-${stage}.json`;
    const done = await readJsonIfExists<{ key: string }>(marker);
    if (!opts.force && !upstreamRan && done?.key === key) {
      skipped.push(stage);
      progress({ stage, message: "already done with these settings: skipped" });
      continue;
    }
    opts.signal?.throwIfAborted();
    await Deno.remove(marker).catch(() => {});
    // Train resumes only when asked; otherwise a changed train stage starts over.
    await RUNNERS[stage]({ ...ctx, resume: ctx.resume && stage === "train" });
    await writeJsonAtomic(marker, { key, finished: new Date().toISOString() });
    ran.push(stage);
    upstreamRan = true;
  }
  if (rt && !opts.runtime) (await rt).destroy();
  return { runDir, ran, skipped };
}
