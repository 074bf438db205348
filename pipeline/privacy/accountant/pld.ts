/**
 * Tight numerical accountant: the privacy loss distribution (PLD) of the Poisson-subsampled
 * Gaussian mechanism, discretised pessimistically, self-composed by FFT, then ε(δ).
 *
 * Why the result is an upper bound on the true ε (up to float64 round-off in the FFT):
 * - Each adjacency direction (remove: P = (1−q)N(0,σ²) + qN(1,σ²) vs Q = N(0,σ²); add: the pair
 *   swapped) is handled separately and the worse ε is reported, as dp_accounting does.
 * - Discretisation on the grid ε_i = i·h: the P- and Q-mass of every bin (ε_{i−1}, ε_i] is split
 *   between its two end points so that both masses are preserved ("connect the dots", Doroshenko
 *   et al. 2022). The hockey-stick curve of the result equals the true one at grid points and is
 *   its linear interpolation in e^ε between them, hence above it (convexity): a dominating pair.
 *   Unlike rounding every loss up, the bias is second order (≤ h²/8 per step), so 10⁵ steps do
 *   not accumulate a 10⁵·h error.
 * - Loss mass below the grid is rounded up to its lowest point; mass above it goes to +∞ and is
 *   counted in δ. Dominance is preserved by composition.
 * - Composition: one FFT per segment, pointwise power `steps`, one inverse FFT (cyclic). The
 *   window [lo, hi] is chosen by Chernoff bounds on the discretised per-step PLD so that at most
 *   τ = 1e-4·δ composed mass lies above hi; that τ is added to δ. Mass below lo that wraps around
 *   only adds to δ (pessimistic).
 * - Tilting (for FFT round-off at tiny δ) makes the cyclic wrap-around of mass from above the
 *   window large after the tilt is undone (×e^{λ·n·h}); it still only adds mass (valid), but with
 *   few steps and a heavy per-step tail it made ε up to ~80% loose. A Chernoff bound on that
 *   aliased mass above the ε found is checked (≤ 1e-4·δ), else λ is lowered; λ = 0 always passes.
 * - h is chosen adaptively: ≤ 0.05 × the per-step loss standard deviation (so the added variance
 *   is < 0.1%), and small enough that steps·h²/8 ≤ 2e-4 × a scale of ε; capped so that the FFT
 *   has at most `maxFftSize` points (memory bound), in which case accuracy, not validity, drops.
 */
import { AccountantError } from "./errors.ts";
import { fft } from "./fft.ts";
import { erfc } from "./special.ts";
import { type AccountingParams, type Segment, toSegments } from "./types.ts";

export type Direction = "remove" | "add";

export interface PldOptions {
  /** Fixed discretisation interval h (default: chosen adaptively). Any h gives an upper bound. */
  interval?: number;
  /** Largest FFT length (power of two; default 2^20 = 32 MiB of working memory). */
  maxFftSize?: number;
}

export interface PldResult {
  epsilon: number;
  /** ε of each adjacency direction (the reported ε is the larger). */
  byDirection: Record<Direction, number>;
  /** Discretisation interval used. */
  interval: number;
  /** FFT length used (largest over the two directions). */
  fftSize: number;
}

/** Relative share of δ given to the composed-window truncation and to per-step +∞ tails. */
const TAIL_SHARE = 1e-4;
/** Largest share of δ by which FFT aliasing of the tilted distribution may inflate δ(ε). */
const ALIAS_SHARE = 1e-4;
const DEFAULT_MAX_FFT = 1 << 20;
/** Per-step grid cap (points): beyond it h is coarsened (accuracy, not validity, drops). */
const MAX_STEP_POINTS = 1 << 21;

/** P(X ≤ z) and P(X > z) for X ~ N(0,1), each accurate in its own tail. */
function phiPair(z: number): [number, number] {
  if (z === -Infinity) return [0, 1];
  if (z === Infinity) return [1, 0];
  if (z < 0) {
    const lo = 0.5 * erfc(-z / Math.SQRT2);
    return [lo, 1 - lo];
  }
  const hi = 0.5 * erfc(z / Math.SQRT2);
  return [1 - hi, hi];
}

/** g(l) = log((e^l − (1−q))/q): the Gaussian-pair loss whose subsampled loss is l (−∞ below). */
function innerLoss(l: number, q: number): number {
  if (l > 0) return l + Math.log1p(-(1 - q) * Math.exp(-l)) - Math.log(q);
  const v = Math.expm1(l) + q;
  return v > 0 ? Math.log(v) - Math.log(q) : -Infinity;
}

/** Masses of {L > l} and {L ≤ l} under P and Q for one step of one direction. */
interface TailMasses {
  gp: number;
  fp: number;
  gq: number;
  fq: number;
}

function tailMasses(dir: Direction, q: number, sigma: number, l: number): TailMasses {
  const s2 = sigma * sigma;
  if (dir === "remove") {
    // L(x) = log((1−q) + q·e^{(x−½)/σ²}) increasing in x; {L > l} = {x > x_l}.
    const x = 0.5 + s2 * innerLoss(l, q);
    const [f0, g0] = phiPair(x / sigma), [f1, g1] = phiPair((x - 1) / sigma);
    return { gp: (1 - q) * g0 + q * g1, fp: (1 - q) * f0 + q * f1, gq: g0, fq: f0 };
  }
  // add: L(x) = −log((1−q) + q·e^{(x−½)/σ²}) decreasing in x; {L > l} = {x < x_{−l}}.
  const x = 0.5 + s2 * innerLoss(-l, q);
  const [f0, g0] = phiPair(x / sigma), [f1, g1] = phiPair((x - 1) / sigma);
  return { gp: f0, fp: g0, gq: (1 - q) * f0 + q * f1, fq: (1 - q) * g0 + q * g1 };
}

/** Loss at x (remove direction); the add direction is its negation under the other measure. */
function lossAt(q: number, sigma: number, x: number): number {
  const t = (x - 0.5) / (sigma * sigma);
  if (q === 1) return t;
  const a = Math.log1p(-q), b = Math.log(q) + t;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/**
 * Mean and variance of the per-step loss under P (trapezoid rule over x on ±14σ, which is
 * spectrally accurate for these smooth Gaussian integrands). Only used to choose h.
 */
function lossMoments(dir: Direction, q: number, sigma: number): { mean: number; variance: number } {
  const n = 4000, lo = -14 * sigma, hi = 1 + 14 * sigma, dx = (hi - lo) / n;
  let m1 = 0, m2 = 0;
  for (let k = 0; k <= n; k++) {
    const x = lo + k * dx;
    const d0 = Math.exp(-0.5 * (x / sigma) ** 2), d1 = Math.exp(-0.5 * ((x - 1) / sigma) ** 2);
    // remove: P = mixture, L = lossAt; add: P = N(0,σ²), L = −lossAt.
    const w = dir === "remove" ? (1 - q) * d0 + q * d1 : d0;
    const l = dir === "remove" ? lossAt(q, sigma, x) : -lossAt(q, sigma, x);
    const c = (k === 0 || k === n ? 0.5 : 1) * w;
    m1 += c * l;
    m2 += c * l * l;
  }
  const norm = dx / (sigma * Math.sqrt(2 * Math.PI));
  const mean = m1 * norm;
  return { mean, variance: Math.max(0, m2 * norm - mean * mean) };
}

/** Smallest l in [lo, hi] with f(l) ≤ target for decreasing f (bisection in l). */
function searchDown(f: (l: number) => number, target: number, lo: number, hi: number): number {
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(hi)); i++) {
    const mid = 0.5 * (lo + hi);
    if (f(mid) <= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** A per-step PLD on the grid i·h, i ∈ [offset, offset + mass.length), plus mass at +∞. */
interface StepPmf {
  offset: number;
  mass: Float64Array;
  infMass: number;
}

/** Loss range [lo, hi] outside which the per-step P-mass is below `tail` on each side. */
function stepRange(
  dir: Direction,
  q: number,
  sigma: number,
  tail: number,
): { lo: number; hi: number } {
  const bound = q < 1 ? -Math.log1p(-q) : Infinity; // |support end| on the bounded side
  const grow = (f: (l: number) => number, sign: 1 | -1): number => {
    let l = sign;
    while (f(l) > tail && Math.abs(l) < 1e7) l *= 2;
    return l;
  };
  let lo: number, hi: number;
  if (dir === "remove") {
    lo = q < 1 ? -bound : -grow((l) => tailMasses(dir, q, sigma, -l).fp, 1);
    const top = grow((l) => tailMasses(dir, q, sigma, l).gp, 1);
    hi = searchDown((l) => tailMasses(dir, q, sigma, l).gp, tail, lo, top);
  } else {
    hi = bound < Infinity ? bound : grow((l) => tailMasses(dir, q, sigma, l).gp, 1);
    const bottom = -grow((l) => tailMasses(dir, q, sigma, -l).fp, 1);
    // fp is increasing in l: find the largest l with fp(l) ≤ tail via the mirrored search.
    lo = -searchDown((m) => tailMasses(dir, q, sigma, -m).fp, tail, -hi, -bottom);
  }
  return { lo, hi };
}

/** Pessimistic (connect-the-dots) discretisation of one step, see the header. */
function discretise(
  dir: Direction,
  q: number,
  sigma: number,
  h: number,
  range: { lo: number; hi: number },
): StepPmf {
  const iLo = Math.floor(range.lo / h), iHi = Math.ceil(range.hi / h);
  const n = iHi - iLo + 1;
  const mass = new Float64Array(n);
  let prev = tailMasses(dir, q, sigma, iLo * h);
  mass[0] = prev.fp; // all loss ≤ ε_lo rounded up to ε_lo
  const emh = Math.exp(-h);
  for (let k = 1; k < n; k++) {
    const cur = tailMasses(dir, q, sigma, (iLo + k) * h);
    // Bin masses from whichever of the two tails is small (no cancellation against 1).
    const pBin = prev.gp <= 0.5 ? prev.gp - cur.gp : cur.fp - prev.fp;
    const qBin = prev.gq <= 0.5 ? prev.gq - cur.gq : cur.fq - prev.fq;
    if (pBin > 0) {
      // u = e^{ε_{k−1}}·Q/P = E_P[e^{ε_{k−1} − L} | bin] ∈ [e^{−h}, 1]; clamped against round-off.
      const a = (iLo + k - 1) * h;
      let u = qBin > 0 ? Math.exp(a + Math.log(qBin) - Math.log(pBin)) : emh;
      u = Math.min(1, Math.max(emh, u));
      const upper = pBin * ((1 - u) / (1 - emh)); // share placed at ε_k
      mass[k] += upper;
      mass[k - 1] += pBin - upper;
    }
    prev = cur;
  }
  return { offset: iLo, mass, infMass: prev.gp };
}

/** log Σ_i p_i e^{t·(offset+i)·h}, over the finite part. */
function logMgf(pmf: StepPmf, h: number, t: number, logMass: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < logMass.length; i++) {
    const v = logMass[i] + t * (pmf.offset + i) * h;
    if (v > max) max = v;
  }
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < logMass.length; i++) {
    const v = logMass[i] + t * (pmf.offset + i) * h - max;
    if (v > -60) s += Math.exp(v);
  }
  return max + Math.log(s);
}

/** Σ_s steps_s·log E[e^{t·L_s}] of the composed finite part, at one t. */
interface ComposedMgf {
  t: number;
  logMgf: number;
}

/**
 * Chernoff window [lo, hi] of the composed finite part (each tail ≤ τ), the tilt λ (the minimiser
 * of the Chernoff bound at δ, i.e. the exponent that centres the tilted composed distribution near
 * the ε being sought) and the composed log-MGF at every t tried (for the aliasing bound).
 */
function composedWindow(
  pmfs: readonly StepPmf[],
  logMasses: readonly Float64Array[],
  steps: readonly number[],
  h: number,
  tau: number,
  delta: number,
): { lo: number; hi: number; tilt: number; mgf: ComposedMgf[] } {
  let lo = -Infinity, hi = Infinity, tilt = 0, best = Infinity;
  const lt = Math.log(tau), ld = Math.log(delta);
  const mgf: ComposedMgf[] = [];
  for (let k = -40; k <= 28; k++) {
    const t = 10 ** (k / 4); // 1e-10 … 1e7 per nat of loss
    let up = 0, down = 0;
    for (let s = 0; s < pmfs.length; s++) {
      up += steps[s] * logMgf(pmfs[s], h, t, logMasses[s]);
      down += steps[s] * logMgf(pmfs[s], h, -t, logMasses[s]);
    }
    mgf.push({ t, logMgf: up });
    hi = Math.min(hi, (up - lt) / t);
    lo = Math.max(lo, (lt - down) / t);
    if ((up - ld) / t < best) {
      best = (up - ld) / t;
      tilt = t;
    }
  }
  // Never wider than the composed support itself.
  const minSum = pmfs.reduce((a, p, s) => a + steps[s] * p.offset * h, 0);
  const maxSum = pmfs.reduce((a, p, s) => a + steps[s] * (p.offset + p.mass.length - 1) * h, 0);
  return { lo: Math.max(lo, minSum), hi: Math.min(hi, maxSum), tilt, mgf };
}

/**
 * log of a bound on the mass that the cyclic FFT aliases from above the window onto grid points
 * ≥ ε0, after the tilt λ is undone. Composed mass at loss l ≥ ε0 + span (span = FFT length·h)
 * lands at l − m·span ≥ ε0 and is amplified by e^{λ·m·span} ≤ e^{λ(l−ε0)}; for any t ≥ λ,
 * Σ p_l e^{λ(l−ε0)} over l ≥ ε0 + span ≤ e^{K(t) − t·ε0 − (t−λ)·span} (Chernoff), K = composed
 * log-MGF. Aliasing only adds mass (a looser, still valid bound); this measures by how much.
 */
function logAliasBound(
  mgf: readonly ComposedMgf[],
  lambda: number,
  eps0: number,
  span: number,
): number {
  let best = Infinity;
  for (const { t, logMgf } of mgf) {
    if (t > lambda) best = Math.min(best, logMgf - t * eps0 - (t - lambda) * span);
  }
  return best;
}

/**
 * Composes the steps by FFT with tilt λ and scans δ(ε) down from the top of the window. Returns ε
 * and the grid index k where the scan stopped (ε ∈ [k·h, (k+1)·h)).
 */
function composeAndScan(
  pmfs: readonly StepPmf[],
  logMasses: readonly Float64Array[],
  steps: readonly number[],
  h: number,
  win: { kLo: number; kHi: number; n: number },
  lambda: number,
  infMass: number,
  delta: number,
): { epsilon: number; stop: number } {
  const { kLo, kHi, n } = win;
  // Exponential tilting by λ (p_i → p_i e^{λε_i − K(λ)}) before the FFT, undone after: exact in
  // exact arithmetic, and it centres the composed distribution on the tail that sets ε, so the
  // FFT's round-off (relative to the largest mass) is small there even at δ = 1e-10, 10⁵ steps.
  const accRe = new Float64Array(n), accIm = new Float64Array(n);
  const re = new Float64Array(n), im = new Float64Array(n);
  accRe.fill(1);
  let logNorm = 0; // Σ_s steps·K_s(λ)
  for (let s = 0; s < pmfs.length; s++) {
    re.fill(0);
    im.fill(0);
    const p = pmfs[s], lm = logMasses[s];
    const k = logMgf(p, h, lambda, lm);
    logNorm += steps[s] * k;
    for (let i = 0; i < p.mass.length; i++) {
      const pos = (((p.offset + i) % n) + n) % n;
      re[pos] += Math.exp(lm[i] + lambda * (p.offset + i) * h - k);
    }
    fft(re, im);
    const t = steps[s];
    for (let j = 0; j < n; j++) {
      const r = Math.hypot(re[j], im[j]);
      if (r === 0) {
        accRe[j] = 0;
        accIm[j] = 0;
        continue;
      }
      const mag = Math.exp(t * Math.log(r)), ang = t * Math.atan2(im[j], re[j]);
      const pr = mag * Math.cos(ang), pi = mag * Math.sin(ang);
      const ar = accRe[j], ai = accIm[j];
      accRe[j] = ar * pr - ai * pi;
      accIm[j] = ar * pi + ai * pr;
    }
  }
  fft(accRe, accIm, true);

  // Scan down from the top of the window: A = Σ_{j>k} r_j, B = Σ_{j>k} r_j e^{ε_k − ε_j};
  // δ(ε) on [ε_k, ε_{k+1}) is infMass + A − e^{ε−ε_k}·B.
  const emh = Math.exp(-h);
  let a = 0, b = 0;
  for (let k = kHi; k >= kLo; k--) {
    const dk = infMass + a - b;
    if (dk > delta) {
      const eps = k * h + Math.log((infMass + a - delta) / b);
      return { epsilon: Math.max(0, eps), stop: k };
    }
    const pos = ((k % n) + n) % n;
    // Negative values are FFT round-off; undo the tilt.
    const r = Math.max(0, accRe[pos]) * Math.exp(logNorm - lambda * k * h);
    a += r;
    b = (b + r) * emh;
  }
  return { epsilon: Math.max(0, kLo * h), stop: kLo };
}

/** ε(δ) of one direction, composed over the segments with interval h. */
function directionEpsilon(
  dir: Direction,
  segments: readonly Segment[],
  delta: number,
  h: number,
  maxFft: number,
): { epsilon: number; fftSize: number; tooLarge?: number } {
  const totalSteps = segments.reduce((a, s) => a + s.steps, 0);
  const stepTail = (TAIL_SHARE * delta) / totalSteps;
  const pmfs: StepPmf[] = [];
  for (const s of segments) {
    const range = stepRange(dir, s.sampleRate, s.noiseMultiplier, stepTail);
    if ((range.hi - range.lo) / h > MAX_STEP_POINTS) {
      return { epsilon: NaN, fftSize: 0, tooLarge: (range.hi - range.lo) / MAX_STEP_POINTS };
    }
    pmfs.push(discretise(dir, s.sampleRate, s.noiseMultiplier, h, range));
  }
  const steps = segments.map((s) => s.steps);
  const tau = TAIL_SHARE * delta;
  const logMasses = pmfs.map((p) => p.mass.map((v) => (v > 0 ? Math.log(v) : -Infinity)));
  const win = composedWindow(pmfs, logMasses, steps, h, tau, delta);
  const kLo = Math.floor(win.lo / h), kHi = Math.ceil(win.hi / h);
  let n = 1;
  while (n < kHi - kLo + 1) n *= 2;
  if (n > maxFft) return { epsilon: NaN, fftSize: n, tooLarge: (kHi - kLo + 1) / maxFft };

  let logFinite = 0;
  for (let s = 0; s < pmfs.length; s++) logFinite += steps[s] * Math.log1p(-pmfs[s].infMass);
  const infMass = -Math.expm1(logFinite) + tau;
  if (infMass >= delta) return { epsilon: Infinity, fftSize: n };

  // The tilt λ that is best for round-off can put tilted mass far above the window (few steps
  // with a heavy per-step tail: the tilted sum piles up at multiples of the per-step maximum);
  // the cyclic FFT then folds it back, amplified by e^{λ·n·h}, and ε comes out far too loose.
  // Check the aliasing bound at the ε found and retry with smaller tilts until it is ≤
  // ALIAS_SHARE·δ. λ = 0 always passes: untilted, the folded mass lies above the window (≤ τ).
  const grid = { kLo, kHi, n };
  const lad = Math.log(ALIAS_SHARE * delta), span = n * h;
  let lambda = win.tilt;
  for (;;) {
    const r = composeAndScan(pmfs, logMasses, steps, h, grid, lambda, infMass, delta);
    const eps0 = r.stop * h;
    if (lambda === 0 || logAliasBound(win.mgf, lambda, eps0, span) <= lad) {
      return { epsilon: r.epsilon, fftSize: n };
    }
    // Largest smaller tilt predicted to pass at this ε0 (ε0 is then re-checked: the loose ε0 of
    // an aliased run is too high, which makes the prediction optimistic, never wrong).
    let next = 0;
    for (const { t } of win.mgf) {
      if (t < lambda && t > next && logAliasBound(win.mgf, t, eps0, span) <= lad) next = t;
    }
    lambda = next;
  }
}

/** Adaptive h for one direction (see the header). */
function chooseInterval(dir: Direction, segments: readonly Segment[]): number {
  let totalSteps = 0, mean = 0, variance = 0;
  for (const s of segments) {
    const m = lossMoments(dir, s.sampleRate, s.noiseMultiplier);
    totalSteps += s.steps;
    mean += s.steps * m.mean;
    variance += s.steps * m.variance;
  }
  const sRms = Math.sqrt(variance / totalSteps);
  const scale = Math.max(mean + 3 * Math.sqrt(variance), 1e-3);
  const hBias = Math.sqrt((8 * 2e-4 * scale) / totalSteps);
  return Math.min(0.05 * sRms, hBias);
}

/** Tight ε(δ) by the PLD accountant, with the discretisation used. */
export function pldEpsilonDetailed(p: AccountingParams, opts: PldOptions = {}): PldResult {
  const { segments, delta } = toSegments(p);
  const maxFft = opts.maxFftSize ?? DEFAULT_MAX_FFT;
  if (opts.interval !== undefined && !(opts.interval > 0 && Number.isFinite(opts.interval))) {
    throw new AccountantError(`must be a finite number > 0, got ${opts.interval}`, "interval");
  }
  if (segments.length === 0) {
    return { epsilon: 0, byDirection: { remove: 0, add: 0 }, interval: NaN, fftSize: 0 };
  }
  const byDirection = { remove: 0, add: 0 };
  let fftSize = 0, interval = Infinity;
  const dirs: Direction[] = segments.every((s) => s.sampleRate === 1)
    ? ["remove"] // q = 1: both directions are the same Gaussian pair
    : ["remove", "add"];
  for (const dir of dirs) {
    let h = opts.interval ?? chooseInterval(dir, segments);
    for (let attempt = 0;; attempt++) {
      const r = directionEpsilon(dir, segments, delta, h, maxFft);
      if (r.tooLarge === undefined) {
        byDirection[dir] = r.epsilon;
        fftSize = Math.max(fftSize, r.fftSize);
        interval = Math.min(interval, h);
        break;
      }
      if (attempt > 40) throw new AccountantError("could not fit the PLD grid in memory");
      h *= r.tooLarge * 1.05; // coarser grid: still an upper bound, only less tight
    }
  }
  if (dirs.length === 1) byDirection.add = byDirection.remove;
  return {
    epsilon: Math.max(byDirection.remove, byDirection.add),
    byDirection,
    interval,
    fftSize,
  };
}

/** Tight ε(δ) by the PLD accountant (an upper bound on the true ε). */
export function pldEpsilon(p: AccountingParams, opts?: PldOptions): number {
  return pldEpsilonDetailed(p, opts).epsilon;
}
