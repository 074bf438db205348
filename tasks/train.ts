/**
 * `deno task train [--config FILE] [--set key.path=value …] [--resume] [--stages a,b] [--force]`
 *
 * Without --config it runs the embedded default (fixtures/default.yaml): DP-LoRA at ε = 1 on the
 * synthetic MIMIC-CXR-style corpus with the demo base model pretrained by this project.
 */
import { parseArgs } from "node:util";
import { applyOverrides, loadConfig } from "../pipeline/config.ts";
import { runPipeline } from "../pipeline/run.ts";
import { type StageName, STAGES } from "../pipeline/stages/context.ts";
import { runMain } from "./cli.ts";

const DEFAULT_CONFIG = new URL("../fixtures/default.yaml", import.meta.url).pathname;

const USAGE = `usage: deno task train [--config FILE] [--set key.path=value ...] [--resume]
                       [--stages data,train,account,evaluate] [--force] [--out DIR]

  --config FILE   pipeline YAML (default: the embedded demo, fixtures/default.yaml)
  --set K=V       override one key, e.g. --set train.epochs=2 --set privacy.target_epsilon=8
  --resume        continue an interrupted training run from its checkpoint and privacy ledger
  --stages LIST   run only these stages (finished stages with the same settings are skipped)
  --force         re-run stages even if they finished with the same settings
  --out DIR       run folder (default: output.dir of the config)`;

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        config: { type: "string" },
        set: { type: "string", multiple: true },
        resume: { type: "boolean" },
        stages: { type: "string" },
        force: { type: "boolean" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    console.error(`train: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  let stages: StageName[] | undefined;
  if (v.stages) {
    stages = v.stages.split(",").map((s) => s.trim()) as StageName[];
    const bad = stages.filter((s) => !STAGES.includes(s));
    if (bad.length) {
      console.error(`train: unknown stage(s) ${bad.join(", ")}; stages are ${STAGES.join(", ")}`);
      return 2;
    }
  }
  let config = await loadConfig(v.config ?? DEFAULT_CONFIG);
  if (v.set?.length) config = applyOverrides(config, v.set);
  const t0 = performance.now();
  const res = await runPipeline(config, {
    stages,
    resume: v.resume,
    force: v.force,
    runDir: v.out,
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  console.log(
    `\ndone in ${secs} s. Report: ${res.runDir}/report.html (and report.md); metrics: ` +
      `${res.runDir}/eval/metrics.json; privacy: ${res.runDir}/privacy/report.json`,
  );
  return 0;
}

if (import.meta.main) await runMain(main);
