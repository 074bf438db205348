/**
 * `deno task sweep [--config FILE] [--quick] [--seeds 3] [--epsilons 0.01,0.1,1,10] [--out sweep]
 *  [--set K=V] [--set-full K=V] [--set-lora K=V] [--set-dp K=V] [--verbose]`
 *
 * Reproduces the study's comparison table in one command: full fine-tuning, LoRA and DP-LoRA at
 * each ε, over several seeds, on the same tokenized data and splits, plus the label-prior baseline.
 */
import { parseArgs } from "node:util";
import { applyOverrides, loadConfig, type PipelineConfig } from "../pipeline/config.ts";
import { ConfigError } from "../pipeline/errors.ts";
import { consoleProgress, type ProgressEvent } from "../pipeline/progress.ts";
import { parseEpsilons } from "../pipeline/sweep/plan.ts";
import type { RunRow } from "../pipeline/sweep/results.ts";
import { runSweep, type SweepEvent } from "../pipeline/sweep/sweep.ts";
import { runMain } from "./cli.ts";

const DEFAULT_CONFIG = new URL("../fixtures/default.yaml", import.meta.url).pathname;
const DEFAULT_EPSILONS = "0.01,0.1,1,10";
const QUICK_EPSILONS = "0.1,1,10";
const DEMO_DATA = new URL("../fixtures/data/mimic-synth", import.meta.url).pathname;
const TINY_DATA = new URL("../fixtures/data/mimic-tiny", import.meta.url).pathname;

async function samePath(a: string | undefined, b: string): Promise<boolean> {
  if (!a) return false;
  try {
    return await Deno.realPath(a) === await Deno.realPath(b);
  } catch {
    return false;
  }
}

/**
 * What --quick overrides (before any --set). On the demo corpus (10 000 reports, where one DP step
 * of the demo model at batch 256 took ~1 min on the 2-core software adapter) it trains on the
 * 300-report mimic-tiny corpus with batches of 32 for the configured epochs (~20 s per epoch and
 * run there); any other dataset is never swapped out, it is trained for one epoch instead.
 */
export async function quickSets(config: PipelineConfig): Promise<string[]> {
  if (config.data.format === "mimic-cxr" && await samePath(config.data.root, DEMO_DATA)) {
    return [
      `data.root=${JSON.stringify(TINY_DATA)}`,
      "train.batch_size=32",
      "train.physical_batch=32",
    ];
  }
  return ["train.epochs=1"];
}

const USAGE = `usage: deno task sweep [--config FILE] [--quick] [--seeds N] [--epsilons LIST]
                       [--out DIR] [--set K=V ...] [--set-full K=V ...] [--set-lora K=V ...]
                       [--set-dp K=V ...] [--verbose]

Trains, on the same tokenized data and splits: full fine-tuning (non-private), LoRA
(non-private) and DP-LoRA at each target ε, for each seed (train.seed = the config's seed + k;
the data split seed stays fixed), then writes
  DIR/results.csv        one row per run (F1s, ε spent by PLD and RDP, σ, steps, seconds)
  DIR/results.json       the runs plus mean ± std per (mode, ε) and the label-prior baseline
  DIR/table.md           the comparison table and a per-label F1 table at ε = 1
  DIR/f1_vs_epsilon.svg  weighted F1 vs ε, with the non-private results as dashed lines
Runs live in DIR/runs/<mode>-eps<ε|inf>-seed<k>/; finished runs with unchanged settings are
reused, so an interrupted sweep resumes where it stopped.

  --config FILE     pipeline YAML (default: the embedded demo, fixtures/default.yaml)
  --seeds N         seeds per setting (default 3)
  --epsilons LIST   DP-LoRA target ε values (default ${DEFAULT_EPSILONS})
  --out DIR         output folder (default: sweep)
  --set K=V         override a key for every run, e.g. --set train.epochs=2
  --set-full K=V    override for the full fine-tuning runs only (e.g. train.lr=5e-5)
  --set-lora K=V    override for the LoRA runs only (e.g. train.batch_size=32)
  --set-dp K=V      override for the DP-LoRA runs only (e.g. privacy.max_grad_norm=0.5)
                    (these apply after the file's own sweep.full / sweep.lora / sweep.dp_lora
                    lists; per-mode overrides may not touch data.* or model.checkpoint: all runs
                    share one token cache)
  --quick           a smoke-sized sweep: 1 seed, ε ∈ {${QUICK_EPSILONS}}; on the demo corpus
                    (fixtures/data/mimic-synth) it trains on the 300-report fixtures/data/mimic-tiny
                    with train.batch_size=32 instead (~5 min on 2 CPU cores), on any other data
                    for train.epochs=1 (explicit --seeds, --epsilons and --set still win)
  --verbose         also print every stage's progress lines`;

function fmt(x: number | null, d = 4): string {
  return x === null || !Number.isFinite(x) ? "—" : x.toFixed(d);
}

function finishLine(r: RunRow): string {
  const priv = r.epsilon_spent === null
    ? "non-private"
    : `ε spent ${fmt(r.epsilon_spent, 3)} (RDP ${fmt(r.epsilon_rdp, 3)}), σ ${
      fmt(r.noise_multiplier, 3)
    }`;
  return `weighted F1 ${fmt(r.weighted_f1)}, macro F1 ${fmt(r.macro_f1)}, ${priv}, ${r.steps} ` +
    `steps, ${r.seconds.toFixed(0)} s`;
}

function printEvent(e: SweepEvent): void {
  if (e.kind === "data") console.log(e.message);
  else if (e.kind === "start") console.log(`[${e.index}/${e.total}] ${e.name}: start`);
  else {
    console.log(
      `[${e.index}/${e.total}] ${e.row.name}: ${e.reused ? "reused" : "done"} — ${
        finishLine(e.row)
      }`,
    );
  }
}

/** Without --verbose the stages' warnings (δ too large, skipped rows, …) still get through. */
function warningsOnly(e: ProgressEvent): void {
  if (e.message?.startsWith("warning:")) console.error(`  [${e.stage}] ${e.message}`);
}

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        config: { type: "string" },
        quick: { type: "boolean" },
        seeds: { type: "string" },
        epsilons: { type: "string" },
        out: { type: "string" },
        set: { type: "string", multiple: true },
        "set-full": { type: "string", multiple: true },
        "set-lora": { type: "string", multiple: true },
        "set-dp": { type: "string", multiple: true },
        verbose: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    console.error(`sweep: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const seedsText = v.seeds ?? (v.quick ? "1" : "3");
  const seeds = Number(seedsText);
  if (!/^\d+$/.test(seedsText.trim()) || !Number.isInteger(seeds) || seeds < 1) {
    throw new ConfigError(`--seeds: expected a positive integer, got ${JSON.stringify(seedsText)}`);
  }
  const epsilons = parseEpsilons(v.epsilons ?? (v.quick ? QUICK_EPSILONS : DEFAULT_EPSILONS));
  let config = await loadConfig(v.config ?? DEFAULT_CONFIG);
  if (v.quick) config = applyOverrides(config, await quickSets(config));
  const t0 = performance.now();
  const res = await runSweep(config, {
    out: v.out ?? "sweep",
    epsilons,
    seeds,
    setAll: v.set ?? [],
    setMode: { full: v["set-full"] ?? [], lora: v["set-lora"] ?? [], "dp-lora": v["set-dp"] ?? [] },
    onEvent: printEvent,
    onStageProgress: v.verbose ? consoleProgress() : warningsOnly,
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  console.log(
    `\nsweep done in ${secs} s: ${res.trained.length} runs trained, ${res.reused.length} reused.\n` +
      `  ${res.files.table}\n  ${res.files.csv}\n  ${res.files.json}\n  ${res.files.svg}`,
  );
  return 0;
}

if (import.meta.main) await runMain(main);
