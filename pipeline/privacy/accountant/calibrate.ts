/**
 * Calibration: the noise multiplier σ for a target ε, and the largest number of steps within a
 * budget. Both keep the answer on the safe side: the returned value is re-evaluated and
 * ε(answer) ≤ target is checked, never assumed.
 */
import { AccountantError } from "./errors.ts";
import { pldEpsilon } from "./pld.ts";
import { rdpEpsilon } from "./rdp.ts";
import { type AccountantName, type Segment, validateDelta, validateSegment } from "./types.ts";

/** (q, σ, steps, δ) → ε with the named accountant ("prv" is the PLD implementation). */
export function computeEpsilon(
  params: Segment & { delta: number } | { segments: readonly Segment[]; delta: number },
  accountant: AccountantName = "pld",
): number {
  if (accountant === "rdp") return rdpEpsilon(params);
  if (accountant === "pld" || accountant === "prv") return pldEpsilon(params);
  throw new AccountantError(`unknown accountant "${accountant}" (pld | prv | rdp)`, "accountant");
}

export interface CalibrateNoiseParams {
  targetEpsilon: number;
  sampleRate: number;
  steps: number;
  delta: number;
  accountant?: AccountantName;
  /** Relative tolerance on σ (default 1e-3): σ_returned ≤ σ_min·(1 + tol). */
  tolerance?: number;
}

export interface CalibrateNoiseResult {
  noiseMultiplier: number;
  /** ε at the returned σ (≤ target). */
  epsilon: number;
  /** Accountant evaluations used. */
  evaluations: number;
}

function checkTarget(e: number, field: string): void {
  if (typeof e !== "number" || !(e > 0) || !Number.isFinite(e)) {
    throw new AccountantError(`must be a finite number > 0, got ${e}`, field);
  }
}

const SIGMA_MIN = 1e-3, SIGMA_MAX = 1e6;

/**
 * Smallest σ (to `tolerance` relative) with ε(σ) ≤ target, by bisection in log σ. Returns the
 * upper end of the final bracket, whose ε was evaluated and is ≤ target. ε is evaluated exactly
 * as `computeEpsilon` does (adaptive PLD grid), so re-accounting the run reproduces ε ≤ target;
 * the grid's jitter in σ (~1e-4 relative in ε) is far below the 1e-3 tolerance.
 */
export function calibrateNoise(p: CalibrateNoiseParams): CalibrateNoiseResult {
  checkTarget(p.targetEpsilon, "targetEpsilon");
  validateDelta(p.delta);
  validateSegment({ sampleRate: p.sampleRate, noiseMultiplier: 1, steps: p.steps });
  const acc = p.accountant ?? "pld";
  const tol = p.tolerance ?? 1e-3;
  if (!(tol > 0 && tol < 1)) {
    throw new AccountantError(`must be in (0, 1), got ${tol}`, "tolerance");
  }
  if (p.steps === 0) return { noiseMultiplier: SIGMA_MIN, epsilon: 0, evaluations: 0 };
  const base = { sampleRate: p.sampleRate, steps: p.steps, delta: p.delta };
  let evaluations = 0;
  const eps = (sigma: number): number => {
    evaluations++;
    const q = { ...base, noiseMultiplier: sigma };
    if (acc === "rdp") return rdpEpsilon(q);
    if (acc !== "pld" && acc !== "prv") {
      throw new AccountantError(`unknown accountant "${acc}" (pld | prv | rdp)`, "accountant");
    }
    return pldEpsilon(q);
  };
  // Bracket [lo, hi] with ε(lo) > target ≥ ε(hi), by doubling from σ = 1.
  let lo = 1, hi = 1;
  if (eps(1) > p.targetEpsilon) {
    while (eps(hi) > p.targetEpsilon) {
      lo = hi;
      hi *= 2;
      if (hi > SIGMA_MAX) {
        throw new AccountantError(
          `target ε = ${p.targetEpsilon} needs σ > ${SIGMA_MAX} at q=${p.sampleRate}, ` +
            `steps=${p.steps}, δ=${p.delta}; the target is unreachable in practice`,
          "targetEpsilon",
        );
      }
    }
  } else {
    while (eps(lo) <= p.targetEpsilon) {
      hi = lo;
      lo /= 2;
      if (lo < SIGMA_MIN) {
        // Even almost no noise meets the target (a huge ε budget).
        return { noiseMultiplier: hi, epsilon: eps(hi), evaluations };
      }
    }
  }
  while (hi / lo - 1 > tol) {
    const mid = Math.sqrt(lo * hi);
    if (eps(mid) > p.targetEpsilon) lo = mid;
    else hi = mid;
  }
  const epsilon = eps(hi);
  if (!(epsilon <= p.targetEpsilon)) {
    throw new AccountantError(
      `internal: ε(σ=${hi}) = ${epsilon} exceeds the target`,
      "targetEpsilon",
    );
  }
  return { noiseMultiplier: hi, epsilon, evaluations };
}

export interface MaxStepsParams {
  targetEpsilon: number;
  sampleRate: number;
  noiseMultiplier: number;
  delta: number;
  accountant?: AccountantName;
  /** Upper limit of the search (default 10⁷ steps). */
  maxSteps?: number;
}

/**
 * Largest steps with ε(steps) ≤ target (0 when even one step exceeds it), by doubling then
 * integer bisection; the returned count was evaluated and meets the target.
 */
export function maxStepsForBudget(p: MaxStepsParams): { steps: number; epsilon: number } {
  checkTarget(p.targetEpsilon, "targetEpsilon");
  validateDelta(p.delta);
  validateSegment({ sampleRate: p.sampleRate, noiseMultiplier: p.noiseMultiplier, steps: 0 });
  const cap = p.maxSteps ?? 1e7;
  if (!Number.isInteger(cap) || cap < 1) {
    throw new AccountantError(`must be an integer >= 1, got ${cap}`, "maxSteps");
  }
  const acc = p.accountant ?? "pld";
  const eps = (steps: number): number =>
    steps === 0 ? 0 : computeEpsilon({
      sampleRate: p.sampleRate,
      noiseMultiplier: p.noiseMultiplier,
      steps,
      delta: p.delta,
    }, acc);
  if (eps(1) > p.targetEpsilon) return { steps: 0, epsilon: 0 };
  let lo = 1, hi = 2; // ε(lo) ≤ target
  while (hi <= cap && eps(hi) <= p.targetEpsilon) {
    lo = hi;
    hi *= 2;
  }
  if (hi > cap) {
    if (eps(cap) <= p.targetEpsilon) return { steps: cap, epsilon: eps(cap) };
    hi = cap;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (eps(mid) <= p.targetEpsilon) lo = mid;
    else hi = mid;
  }
  return { steps: lo, epsilon: eps(lo) };
}
