/**
 * The privacy ledger `run/privacy/ledger.jsonl`: one JSON line per DP step, appended and fsynced
 * BEFORE the step is computed, so no update can reach a saved artifact (checkpoint, adapter)
 * without its cost being durable. A crash can therefore only over-count, never lose, spent budget.
 *
 * Line: {"step","q","sigma","C","unit","epoch","time","rng"}. The realised batch size is private
 * and is never written. On open the ledger is validated (consecutive step indices, sane fields, one
 * privacy unit throughout); a torn final line (a crash mid-append) is counted as a spent step —
 * with the fields it still shows, else those of the entry before it, else the caller's current
 * settings — and the file is repaired (rewritten atomically) before anything is appended.
 * `segments()` gives the history as runs of equal (q, σ) for the accountant.
 */
import { writeTextAtomic } from "../fs.ts";
import { LedgerError, PrivacyBudgetError } from "./errors.ts";
import type { PrivacyUnit } from "./sampler.ts";

export interface LedgerEntry {
  step: number;
  q: number;
  sigma: number;
  C: number;
  unit: PrivacyUnit;
  epoch: number;
  /** ISO-8601 time of the append. */
  time: string;
  /** "csprng", or "insecure-test-seed" when the test-only source was used. */
  rng: "csprng" | "insecure-test-seed";
  /** Present (true) on an entry rebuilt from a torn line: counted, fields possibly inferred. */
  recovered?: boolean;
}

/** A run of consecutive steps with the same sampling rate and noise multiplier. */
export interface LedgerSegment {
  q: number;
  sigma: number;
  steps: number;
}

/** ε after composing the segments (the accountant's job; passed in, at a fixed δ). */
export type EpsilonFn = (segments: readonly LedgerSegment[]) => number;

/** The settings a step is about to use. */
export type StepSettings = Omit<LedgerEntry, "step" | "time" | "recovered">;

const UNITS: readonly PrivacyUnit[] = ["record", "patient"];
const RNGS = ["csprng", "insecure-test-seed"] as const;

export interface OpenOptions {
  /** Settings of the resuming run: fills a torn first line's missing fields (conservative). */
  current?: StepSettings;
}

export class Ledger {
  private file: Deno.FsFile | null = null;

  private constructor(
    readonly path: string,
    private readonly list: LedgerEntry[],
    /** The torn line that was repaired on open, if any (raw text). */
    readonly repairedTornLine: string | null,
  ) {}

  /** Open (or create) a ledger; validates it and repairs a torn last line. */
  static async open(path: string, opts: OpenOptions = {}): Promise<Ledger> {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const { entries, torn } = parseLedger(path, text, opts.current);
    const ledger = new Ledger(path, entries, torn);
    if (torn !== null || (text.length > 0 && !text.endsWith("\n"))) {
      await writeTextAtomic(path, entries.map((e) => JSON.stringify(e) + "\n").join(""));
    }
    return ledger;
  }

  get entries(): readonly LedgerEntry[] {
    return this.list;
  }

  /** Index the next step must carry (0 for a new ledger). */
  get nextStep(): number {
    return this.list.length ? this.list[this.list.length - 1].step + 1 : 0;
  }

  /** The history as runs of equal (q, σ), in order. */
  segments(): LedgerSegment[] {
    return toSegments(this.list);
  }

  /**
   * Append step `nextStep` with `settings`, then fdatasync before returning. Call BEFORE computing
   * the step. Throws on settings that would make the ledger inconsistent.
   */
  append(settings: StepSettings, now: Date = new Date()): LedgerEntry {
    const entry: LedgerEntry = {
      step: this.nextStep,
      q: settings.q,
      sigma: settings.sigma,
      C: settings.C,
      unit: settings.unit,
      epoch: settings.epoch,
      time: now.toISOString(),
      rng: settings.rng,
    };
    const problem = validateEntry(entry) ?? consistency(this.list[this.list.length - 1], entry);
    if (problem) {
      throw new LedgerError(`${this.path}: refusing to append step ${entry.step}: ${problem}`);
    }
    if (!this.file) {
      const dir = this.path.replace(/[\\/][^\\/]*$/, "");
      if (dir !== this.path) Deno.mkdirSync(dir, { recursive: true });
      const created = !exists(this.path);
      this.file = Deno.openSync(this.path, { append: true, create: true });
      if (created && dir !== this.path) syncDir(dir);
    }
    const bytes = new TextEncoder().encode(JSON.stringify(entry) + "\n");
    let off = 0;
    while (off < bytes.length) off += this.file.writeSync(bytes.subarray(off));
    this.file.syncDataSync();
    this.list.push(entry);
    return entry;
  }

  close(): void {
    this.file?.close();
    this.file = null;
  }
}

/**
 * Refuses a step that would take ε past the target. Call `check(ledger, next)` BEFORE appending
 * the step to the ledger (and before computing it).
 */
export class BudgetGuard {
  constructor(private readonly epsilon: EpsilonFn, readonly target: number) {
    if (!(target > 0)) throw new RangeError(`privacy budget ε = ${target} must be > 0`);
  }

  /** ε spent so far and ε after the next step; throws PrivacyBudgetError when over the target. */
  check(
    history: readonly LedgerSegment[],
    next: { q: number; sigma: number },
  ): { spent: number; next: number } {
    const spent = history.length ? this.epsilon(history) : 0;
    const after = this.epsilon(appendStep(history, next));
    if (!(after <= this.target)) throw new PrivacyBudgetError(spent, after, this.target);
    return { spent, next: after };
  }
}

/** Segments with one more step of (q, σ). */
export function appendStep(
  history: readonly LedgerSegment[],
  next: { q: number; sigma: number },
): LedgerSegment[] {
  const out = history.map((s) => ({ ...s }));
  const last = out[out.length - 1];
  if (last && last.q === next.q && last.sigma === next.sigma) last.steps++;
  else out.push({ q: next.q, sigma: next.sigma, steps: 1 });
  return out;
}

function toSegments(entries: readonly LedgerEntry[]): LedgerSegment[] {
  let out: LedgerSegment[] = [];
  for (const e of entries) out = appendStep(out, e);
  return out;
}

/** Parse and validate ledger text. Exported for tests and for the account stage (read-only). */
export function parseLedger(
  path: string,
  text: string,
  current?: StepSettings,
): { entries: LedgerEntry[]; torn: string | null } {
  const lines = text.split("\n");
  const lastComplete = text.endsWith("\n") || text === "";
  if (lastComplete) lines.pop(); // "" after the final newline
  const entries: LedgerEntry[] = [];
  let torn: string | null = null;
  lines.forEach((line, i) => {
    const isLast = i === lines.length - 1;
    let parsed: unknown;
    let problem: string | null = null;
    try {
      parsed = JSON.parse(line);
      problem = validateEntry(parsed);
    } catch (e) {
      problem = `not JSON (${(e as Error).message})`;
    }
    if (problem === null) {
      const e = parsed as LedgerEntry;
      const prev = entries[entries.length - 1];
      const bad = consistency(prev, e);
      if (bad) throw new LedgerError(`${path}:${i + 1}: ${bad}`);
      entries.push(e);
      return;
    }
    if (!isLast) throw new LedgerError(`${path}:${i + 1}: ${problem}`);
    // A final line that does not parse is a torn append: the step was about to run, so count it.
    torn = line;
    entries.push(recoverTorn(path, i + 1, line, entries[entries.length - 1], current));
  });
  return { entries, torn };
}

function recoverTorn(
  path: string,
  lineNo: number,
  line: string,
  prev: LedgerEntry | undefined,
  current: StepSettings | undefined,
): LedgerEntry {
  const num = (k: string) => {
    // Only a value followed by a delimiter is complete ("sigma":1.2 may be a cut 1.25).
    const m = line.match(new RegExp(`"${k}":(-?[0-9.eE+-]+)[,}]`));
    return m ? Number(m[1]) : undefined;
  };
  const str = (k: string) => line.match(new RegExp(`"${k}":"([^"]*)"`))?.[1];
  const base = prev ?? current;
  if (!base) {
    throw new LedgerError(
      `${path}:${lineNo}: the only line is torn and no current settings were given to count it`,
    );
  }
  const e: LedgerEntry = {
    step: prev ? prev.step + 1 : (num("step") ?? 0),
    // Conservative: the larger q and the smaller σ of what the line shows and the fallback.
    q: Math.max(num("q") ?? base.q, base.q),
    sigma: Math.min(num("sigma") ?? base.sigma, base.sigma),
    C: num("C") ?? base.C,
    unit: base.unit,
    epoch: num("epoch") ?? base.epoch,
    time: str("time") ?? new Date(0).toISOString(),
    rng: base.rng,
    recovered: true,
  };
  const problem = validateEntry(e) ?? consistency(prev, e);
  if (problem) {
    throw new LedgerError(`${path}:${lineNo}: torn line cannot be recovered: ${problem}`);
  }
  return e;
}

function validateEntry(v: unknown): string | null {
  if (typeof v !== "object" || v === null) return "not an object";
  const e = v as Record<string, unknown>;
  const isNum = (k: string) => typeof e[k] === "number" && Number.isFinite(e[k]);
  if (!isNum("step") || !Number.isInteger(e.step) || (e.step as number) < 0) {
    return `"step" must be an integer ≥ 0`;
  }
  if (!isNum("q") || !((e.q as number) > 0 && (e.q as number) <= 1)) return `"q" must be in (0, 1]`;
  if (!isNum("sigma") || !((e.sigma as number) > 0)) return `"sigma" must be > 0`;
  if (!isNum("C") || !((e.C as number) > 0)) return `"C" must be > 0`;
  if (!UNITS.includes(e.unit as PrivacyUnit)) return `"unit" must be one of ${UNITS.join(", ")}`;
  if (!isNum("epoch") || (e.epoch as number) < 0) return `"epoch" must be a number ≥ 0`;
  if (typeof e.time !== "string" || Number.isNaN(Date.parse(e.time))) return `"time" is not a date`;
  if (!RNGS.includes(e.rng as (typeof RNGS)[number])) {
    return `"rng" must be one of ${RNGS.join(", ")}`;
  }
  return null;
}

function consistency(prev: LedgerEntry | undefined, e: LedgerEntry): string | null {
  if (!prev) return null;
  if (e.step !== prev.step + 1) return `step ${e.step} does not follow step ${prev.step}`;
  if (e.unit !== prev.unit) {
    return `privacy unit changes from ${prev.unit} to ${e.unit}: one ledger, one unit`;
  }
  return null;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** fsync a directory so a newly created file's name is durable (best effort where unsupported). */
function syncDir(dir: string): void {
  try {
    const d = Deno.openSync(dir, { read: true });
    try {
      d.syncSync();
    } finally {
      d.close();
    }
  } catch {
    // Some platforms cannot open directories; the data itself was fdatasynced.
  }
}
