/**
 * The end-to-end benchmark commands behind `deno task bench model | privacy | train`, callable
 * in-process (tests/bench_test.ts) with the output lines captured.
 *
 * Flags: --json (one JSON object per line, adapter in each), --quick (BERT-tiny, batch 8, one
 * warm-up, two timed runs: a smoke run), --models tiny,small,medium, --batch N, --seq N,
 * --reps N, --warmup N; privacy also --accountant-reps N and --no-steps (accountant only).
 * Progress goes to `io.err`; tables and JSON to `io.out`. Never asserts on timings.
 */
import { parseArgs } from "node:util";
import { Runtime } from "../gpu/runtime.ts";
import { e2eDefaults, type E2eOptions } from "./measure.ts";
import { benchModel, modelTable } from "./model.ts";
import { benchPrivacy, privacyTable } from "./privacy.ts";
import { benchTrain, trainTable } from "./train.ts";
import { parseModels } from "./shapes.ts";
import { loadAverage } from "./stats.ts";

export const E2E_BENCHES = ["model", "privacy", "train"] as const;
export type E2eBench = typeof E2E_BENCHES[number];

export interface BenchIo {
  out(line: string): void;
  err(line: string): void;
}

export const consoleIo: BenchIo = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
};

class UsageError extends Error {}

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}

/** Adapter name without holding a device for the whole run (each configuration opens its own). */
async function adapterName(): Promise<string> {
  const rt = await Runtime.create([]);
  const name = rt.info.adapterName;
  rt.destroy();
  return name;
}

/** Run `bench <what> [flags]`; returns the exit code (2 = usage error). */
export async function e2eMain(what: E2eBench, args: string[], io: BenchIo): Promise<number> {
  let o: E2eOptions & { accountantReps?: number; skipSteps?: boolean };
  let json: boolean;
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      options: {
        json: { type: "boolean", default: false },
        quick: { type: "boolean", default: false },
        models: { type: "string" },
        batch: { type: "string" },
        seq: { type: "string" },
        reps: { type: "string" },
        warmup: { type: "string" },
        "accountant-reps": { type: "string" },
        "no-steps": { type: "boolean", default: false },
      },
    });
    const d = e2eDefaults(values.quick);
    if (what === "privacy" && !values.quick) d.models = ["bert-tiny", "bert-small"];
    o = {
      models: values.models !== undefined ? parseModels(values.models) : d.models,
      batch: int("batch", values.batch, 1) ?? d.batch,
      seq: int("seq", values.seq, 1) ?? d.seq,
      reps: int("reps", values.reps, 1) ?? d.reps,
      warmup: int("warmup", values.warmup, 0) ?? d.warmup,
      accountantReps: int("accountant-reps", values["accountant-reps"], 1) ??
        (values.quick ? 1 : 3),
      skipSteps: values["no-steps"],
      log: (m) => io.err(`bench ${what}: ${m}`),
    };
    if (!o.models.length) throw new UsageError("--models: no model given");
    json = values.json;
  } catch (e) {
    if (e instanceof UsageError || e instanceof RangeError || e instanceof TypeError) {
      io.err(`bench ${what}: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const load = loadAverage();
  io.err(
    `bench ${what}: models ${o.models.join(", ")}, batch ${o.batch}, seq ${o.seq}, ` +
      `${o.warmup} warm-up + ${o.reps} timed runs, load average ${load?.toFixed(2) ?? "?"}`,
  );
  const emit = (r: object) => {
    if (json) io.out(JSON.stringify(r));
  };
  if (what === "model") {
    const rows = await benchModel(o, emit);
    if (!json) io.out(modelTable(rows));
  } else if (what === "train") {
    const rows = await benchTrain(o, emit);
    if (!json) io.out(trainTable(rows, rows[0]?.adapter ?? await adapterName()));
  } else {
    const adapter = await adapterName();
    const rows = await benchPrivacy(o, adapter, emit);
    if (!json) io.out(privacyTable(rows, adapter));
  }
  return 0;
}
