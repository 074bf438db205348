/**
 * `deno task account`: ε for (q, σ, steps, δ), or σ for a target ε.
 *
 *   deno task account --sample-rate 0.01 --noise-multiplier 1 --steps 1000 --delta 1e-5
 *   deno task account --sample-rate 0.01 --target-epsilon 1 --steps 1000 --delta 1e-5 --json
 *
 * Exit codes: 0 ok, 2 bad arguments (message on stderr), 1 unexpected failure.
 */
import { parseArgs } from "node:util";
import {
  AccountantError,
  type AccountantName,
  ACCOUNTANTS,
  calibrateNoise,
  computeEpsilon,
} from "../pipeline/privacy/accountant/mod.ts";

export const USAGE = `usage: deno task account --sample-rate Q --steps N --delta D
         (--noise-multiplier S | --target-epsilon E) [--accountant pld|prv|rdp] [--json]
  prints ε (or, with --target-epsilon, the smallest σ whose ε ≤ E, within 0.1%)
  --accountant  pld (default; tight, an upper bound), prv (alias of pld), rdp (looser)`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

class UsageError extends Error {}

function num(values: Record<string, unknown>, flag: string): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const s = String(raw).trim();
  const v = Number(s);
  if (s === "" || !Number.isFinite(v)) throw new UsageError(`--${flag}: not a number: "${raw}"`);
  return v;
}

function required(v: number | undefined, flag: string): number {
  if (v === undefined) throw new UsageError(`missing required flag --${flag}`);
  return v;
}

/** Run the CLI on `args` without touching the process (testable in-process). */
export function runAccountCli(args: string[]): CliResult {
  let out = "", err = "";
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        "sample-rate": { type: "string" },
        "noise-multiplier": { type: "string" },
        "target-epsilon": { type: "string" },
        "steps": { type: "string" },
        "delta": { type: "string" },
        "accountant": { type: "string" },
        "json": { type: "boolean" },
        "help": { type: "boolean", short: "h" },
      },
    });
    if (values.help) return { code: 0, stdout: USAGE + "\n", stderr: "" };
    const q = required(num(values, "sample-rate"), "sample-rate");
    const steps = required(num(values, "steps"), "steps");
    const delta = required(num(values, "delta"), "delta");
    const sigma = num(values, "noise-multiplier");
    const target = num(values, "target-epsilon");
    const accountant = (values.accountant ?? "pld") as AccountantName;
    if (!ACCOUNTANTS.includes(accountant)) {
      throw new UsageError(`--accountant: unknown "${values.accountant}" (pld | prv | rdp)`);
    }
    if ((sigma === undefined) === (target === undefined)) {
      throw new UsageError("give exactly one of --noise-multiplier and --target-epsilon");
    }
    if (!(q > 0 && q <= 1)) throw new UsageError(`--sample-rate: must be in (0, 1], got ${q}`);
    if (!Number.isInteger(steps) || steps < 0) {
      throw new UsageError(`--steps: must be an integer >= 0, got ${steps}`);
    }
    if (!(delta > 0 && delta < 1)) throw new UsageError(`--delta: must be in (0, 1), got ${delta}`);
    if (sigma !== undefined && !(sigma > 0)) {
      throw new UsageError(`--noise-multiplier: must be > 0, got ${sigma}`);
    }
    if (target !== undefined && !(target > 0)) {
      throw new UsageError(`--target-epsilon: must be > 0, got ${target}`);
    }
    if (accountant === "prv") {
      err += "note: --accountant prv is an alias of the PLD accountant " +
        "(no separate PRV implementation)\n";
    }
    let noiseMultiplier: number, epsilon: number;
    if (target !== undefined) {
      const r = calibrateNoise({ targetEpsilon: target, sampleRate: q, steps, delta, accountant });
      noiseMultiplier = r.noiseMultiplier;
      epsilon = r.epsilon;
    } else {
      noiseMultiplier = sigma!;
      epsilon = computeEpsilon({ sampleRate: q, noiseMultiplier, steps, delta }, accountant);
    }
    if (values.json) {
      const o: Record<string, unknown> = {
        accountant,
        sample_rate: q,
        noise_multiplier: noiseMultiplier,
        steps,
        delta,
        epsilon,
      };
      if (target !== undefined) o.target_epsilon = target;
      out += JSON.stringify(o) + "\n";
    } else if (target !== undefined) {
      out +=
        `σ = ${noiseMultiplier.toPrecision(6)} gives ε = ${epsilon.toPrecision(6)} ≤ ${target}` +
        ` (accountant ${accountant}, q=${q}, steps=${steps}, δ=${delta})\n`;
    } else {
      out +=
        `ε = ${epsilon.toPrecision(6)} (accountant ${accountant}, q=${q}, σ=${noiseMultiplier}` +
        `, steps=${steps}, δ=${delta})\n`;
    }
    return { code: 0, stdout: out, stderr: err };
  } catch (e) {
    // parseArgs throws TypeError (code ERR_PARSE_ARGS_*) for unknown flags / missing values.
    const parse = e instanceof TypeError && String((e as { code?: string }).code).startsWith(
      "ERR_PARSE_ARGS",
    );
    if (e instanceof UsageError || e instanceof AccountantError || parse) {
      return { code: 2, stdout: out, stderr: err + `error: ${(e as Error).message}\n${USAGE}\n` };
    }
    return { code: 1, stdout: out, stderr: err + `error: ${(e as Error).stack ?? e}\n` };
  }
}

if (import.meta.main) {
  const r = runAccountCli(Deno.args);
  if (r.stdout) await Deno.stdout.write(new TextEncoder().encode(r.stdout));
  if (r.stderr) await Deno.stderr.write(new TextEncoder().encode(r.stderr));
  Deno.exit(r.code);
}
