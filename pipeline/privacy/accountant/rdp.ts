/**
 * Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
 * "Rényi Differential Privacy of the Sampled Gaussian Mechanism"), as in TF Privacy /
 * dp_accounting: integer orders by the exact binomial expansion of A_α in log space, fractional
 * orders by the two-series formula. ε(δ) uses the improved conversion of Balle et al. 2020
 * (= Canonne, Kamath, Steinke 2020): ε = rdp + log((α−1)/α) − (log δ + log α)/(α−1), minimised
 * over the orders. Composition multiplies RDP by the number of steps (per segment, then sums).
 */
import { log1mExp, logAddExp, logErfc, logSubExp } from "./special.ts";
import { type AccountingParams, toSegments } from "./types.ts";

/**
 * Default orders: fine steps on (1, 20] where moderate ε is certified, integers to 64, then a
 * geometric grid to 2·10⁵ so that small ε (0.01..0.1, which need α in the thousands) can be
 * certified too — an accountant whose orders stop at 63 cannot certify ε ≤ 0.1 at δ = 1e-5.
 */
export const DEFAULT_ORDERS: readonly number[] = (() => {
  const o: number[] = [1.01, 1.02, 1.05];
  for (let k = 11; k <= 30; k++) o.push(k / 10); // 1.1 .. 3.0
  for (let k = 13; k <= 80; k++) o.push(k / 4); // 3.25 .. 20
  for (let a = 21; a <= 64; a++) o.push(a);
  for (let a = 64 * 1.1; a <= 2e5; a *= 1.1) o.push(Math.round(a));
  return [...new Set(o)].sort((a, b) => a - b);
})();

/** log n! for n = 0..N (cumulative; grown on demand and shared by all integer orders). */
let logFactTable = new Float64Array([0]);
function logFactorials(n: number): Float64Array {
  if (logFactTable.length > n) return logFactTable;
  const t = new Float64Array(Math.max(n + 1, 2 * logFactTable.length));
  t.set(logFactTable);
  for (let k = logFactTable.length; k < t.length; k++) t[k] = t[k - 1] + Math.log(k);
  logFactTable = t;
  return t;
}

/** log A_α for integer α ≥ 2: Σ_i C(α,i) q^i (1−q)^{α−i} exp((i²−i)/(2σ²)). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const lq = Math.log(q), l1q = Math.log1p(-q), s2 = 2 * sigma * sigma;
  const lf = logFactorials(alpha);
  const terms = new Float64Array(alpha + 1);
  let max = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    const t = lf[alpha] - lf[i] - lf[alpha - i] + i * lq + (alpha - i) * l1q + (i * i - i) / s2;
    terms[i] = t;
    if (t > max) max = t;
  }
  // One log-sum-exp pass: every term is ≤ 0 after the shift, so nothing overflows. Terms below
  // e^−60 of the largest are skipped: even 2·10⁵ of them change the sum by < 1e-20 (relative).
  // The test is on the shifted value: at tiny σ the terms reach ~1e17, where `max − 60` rounds
  // to `max` and a `terms[i] > max − 60` test dropped every term, sum 0, log A = −∞, ε = 0.
  let sum = 0;
  for (let i = 0; i <= alpha; i++) {
    const d = terms[i] - max;
    if (d > -60) sum += Math.exp(d);
  }
  return max + Math.log(sum);
}

/** log A_α for fractional α > 1 (two alternating series; stop when both terms < e^−30). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let la0 = -Infinity, la1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const lq = Math.log(q), l1q = Math.log1p(-q), s2 = 2 * sigma * sigma;
  let logCoef = 0, signPos = true; // |C(α, i)| and its sign, updated by the ratio (α−i+1)/i
  for (let i = 0;; i++) {
    if (i > 0) {
      const ratio = (alpha - i + 1) / i;
      if (ratio === 0) break; // cannot happen for fractional α, kept for safety
      logCoef += Math.log(Math.abs(ratio));
      if (ratio < 0) signPos = !signPos;
    }
    const j = alpha - i;
    const lt0 = logCoef + i * lq + j * l1q;
    const lt1 = logCoef + j * lq + i * l1q;
    const le0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const le1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const ls0 = lt0 + (i * i - i) / s2 + le0;
    const ls1 = lt1 + (j * j - j) / s2 + le1;
    if (signPos) {
      la0 = logAddExp(la0, ls0);
      la1 = logAddExp(la1, ls1);
    } else {
      la0 = logSubExp(la0, ls0);
      la1 = logSubExp(la1, ls1);
    }
    if (Math.max(ls0, ls1) < -30 && i > alpha) break;
    if (i > 100000) break; // the series converges long before; guard against a runaway loop
  }
  return logAddExp(la0, la1);
}

/** RDP of one step of the sampled Gaussian mechanism at order α. */
export function rdpStep(q: number, sigma: number, alpha: number): number {
  if (q === 1) return alpha / (2 * sigma * sigma);
  const la = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  // A_α ≥ 1 (a Rényi divergence is ≥ 0). Anything else is a numerical failure of the series at
  // this order: the order is dropped (∞ never wins the minimum), it must never look private.
  if (!(la > -1e-9)) return Infinity;
  return Math.max(0, la) / (alpha - 1);
}

/** Composed RDP curve Σ_segments steps·rdpStep over `orders`. */
export function rdpCurve(
  p: AccountingParams,
  orders: readonly number[] = DEFAULT_ORDERS,
): Float64Array {
  const { segments } = toSegments(p);
  const out = new Float64Array(orders.length);
  for (const s of segments) {
    for (let k = 0; k < orders.length; k++) {
      out[k] += s.steps * rdpStep(s.sampleRate, s.noiseMultiplier, orders[k]);
    }
  }
  return out;
}

/**
 * "improved": Balle et al. 2020 / Canonne-Kamath-Steinke (the default, and what Opacus and
 * dp_accounting report today). "classic": ε = rdp + log(1/δ)/(α−1) (Mironov 2017), which older
 * published figures use (e.g. TF Privacy's MNIST tutorial ε ≈ 3.0).
 */
export type RdpConversion = "improved" | "classic";

export interface RdpOptions {
  orders?: readonly number[];
  conversion?: RdpConversion;
}

/** RDP → (ε, δ) conversion at one order (may be negative; callers clamp at 0). */
export function rdpToEpsilon(
  rdp: number,
  alpha: number,
  delta: number,
  conversion: RdpConversion = "improved",
): number {
  if (conversion === "classic") return rdp - Math.log(delta) / (alpha - 1);
  // log((α−1)/α) = log(1 − e^{−log α})
  return rdp + log1mExp(-Math.log(alpha)) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1);
}

/** ε(δ) by RDP, minimised over the orders; also returns the optimal order. */
export function rdpEpsilonDetailed(
  p: AccountingParams,
  opts: RdpOptions = {},
): { epsilon: number; order: number } {
  const { delta } = toSegments(p);
  const orders = opts.orders ?? DEFAULT_ORDERS;
  const curve = rdpCurve(p, orders);
  let best = Infinity, order = NaN;
  for (let k = 0; k < orders.length; k++) {
    const e = rdpToEpsilon(curve[k], orders[k], delta, opts.conversion);
    if (e < best) {
      best = e;
      order = orders[k];
    }
  }
  return { epsilon: Math.max(0, best), order };
}

/** ε(δ) by RDP (an upper bound, looser than the PLD accountant). */
export function rdpEpsilon(p: AccountingParams, opts?: RdpOptions): number {
  return rdpEpsilonDetailed(p, opts).epsilon;
}
