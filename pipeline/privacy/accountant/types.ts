/** Shared argument types of the accountants, and their validation. */
import { AccountantError } from "./errors.ts";

/** A run of `steps` identical DP-SGD steps: Poisson rate q, noise multiplier σ. */
export interface Segment {
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
}

/** One homogeneous history: the usual (q, σ, steps, δ) query. */
export interface SingleParams extends Segment {
  delta: number;
}

/** A heterogeneous history (e.g. a resumed run whose ledger mixes settings). */
export interface HistoryParams {
  segments: readonly Segment[];
  delta: number;
}

export type AccountingParams = SingleParams | HistoryParams;

/** "prv" is an alias of the PLD accountant (there is no separate PRV implementation). */
export type AccountantName = "pld" | "prv" | "rdp";

export const ACCOUNTANTS: readonly AccountantName[] = ["pld", "prv", "rdp"];

/** Check one segment; `where` prefixes the field name in the error. */
export function validateSegment(s: Segment, where = ""): void {
  const q = s.sampleRate, sigma = s.noiseMultiplier, t = s.steps;
  if (typeof q !== "number" || !(q > 0 && q <= 1)) {
    throw new AccountantError(`must be in (0, 1], got ${q}`, `${where}sampleRate`);
  }
  if (typeof sigma !== "number" || !(sigma > 0) || !Number.isFinite(sigma)) {
    throw new AccountantError(
      `must be a finite number > 0, got ${sigma}`,
      `${where}noiseMultiplier`,
    );
  }
  if (typeof t !== "number" || !Number.isInteger(t) || t < 0) {
    throw new AccountantError(`must be an integer >= 0, got ${t}`, `${where}steps`);
  }
}

/** Check δ ∈ (0, 1). */
export function validateDelta(delta: number): void {
  if (typeof delta !== "number" || !(delta > 0 && delta < 1)) {
    throw new AccountantError(`must be in (0, 1), got ${delta}`, "delta");
  }
}

/** Validate and normalise to a list of segments (segments with 0 steps dropped). */
export function toSegments(p: AccountingParams): { segments: Segment[]; delta: number } {
  validateDelta(p.delta);
  const raw: readonly Segment[] = "segments" in p ? p.segments : [p];
  if (!Array.isArray(raw)) throw new AccountantError("must be an array", "segments");
  raw.forEach((s, i) => validateSegment(s, "segments" in p ? `segments[${i}].` : ""));
  return {
    segments: raw.filter((s) => s.steps > 0).map((s) => ({
      sampleRate: s.sampleRate,
      noiseMultiplier: s.noiseMultiplier,
      steps: s.steps,
    })),
    delta: p.delta,
  };
}
