/** Shared test helpers: seeded randomness, error measures, one GPU runtime per test file. */
import { Runtime } from "../pipeline/gpu/runtime.ts";

/** Seeded test inputs (never for privacy noise). */
export { mulberry32 as rng } from "../pipeline/random.ts";

/** A fresh seed per run (printed by failing tests so the case can be replayed). */
export function freshSeed(): number {
  const env = Deno.env.get("DPLORA_TEST_SEED");
  return env ? Number(env) : (Math.random() * 2 ** 31) >>> 0;
}

/** Uniform values in [lo, hi) as float64. */
export function randArray(n: number, r: () => number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Standard normal values (Box–Muller) as float64. */
export function randn(n: number, r: () => number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-300);
    a[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return a;
}

/** Round float64 values to f32 (what the GPU actually sees), returned as float64. */
export function toF32(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(a));
}

/** Relative Frobenius error ‖got − want‖ / max(‖want‖, tiny). NaN anywhere → Infinity. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  return condErr(got, want, want);
}

/**
 * ‖got − want‖ / ‖scale‖, where scale[i] is the sum of the magnitudes of the terms that make
 * want[i] (e.g. |A|·|B| for a product). Summation error scales with the terms, not with the result
 * they may cancel to: a 1-element sum of 130 signed values can land near 0 and fail any bound
 * relative to itself. NaN anywhere → Infinity.
 */
export function condErr(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  scale: ArrayLike<number>,
): number {
  if (got.length !== want.length || want.length !== scale.length) {
    throw new Error(`length ${got.length} vs ${want.length} vs scale ${scale.length}`);
  }
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num += (got[i] - want[i]) ** 2;
    den += scale[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/**
 * Higham's γ_n = n·u / (1 − n·u), u = 2⁻²⁴: the worst-case error of n correctly rounded f32
 * additions/multiplications (any order), relative to the terms' magnitudes (see condErr).
 */
export function gammaF32(n: number): number {
  const nu = n * 2 ** -24;
  return nu / (1 - nu);
}

/** Max absolute error; NaN anywhere → Infinity. */
export function maxAbsErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    m = Math.max(m, Math.abs(got[i] - want[i]));
  }
  return m;
}

/** Assert `err <= tol`, naming what was compared and the seed for replay. */
export function assertClose(err: number, tol: number, what: string, seed: number): void {
  if (!(err <= tol)) {
    throw new Error(
      `${what}: error ${err.toExponential(3)} > tolerance ${tol} (DPLORA_TEST_SEED=${seed})`,
    );
  }
}

/**
 * Central finite differences of a scalar float64 function at `x`, for the indices listed
 * (all when omitted). Step h chosen for float64 (error O(h²) ≈ 1e-10 relative).
 */
export function finiteDiff(
  f: (x: Float64Array) => number,
  x: Float64Array,
  indices?: number[],
  h = 1e-5,
): Float64Array {
  const idx = indices ?? [...x.keys()];
  const g = new Float64Array(x.length);
  for (const i of idx) {
    const old = x[i];
    x[i] = old + h;
    const fp = f(x);
    x[i] = old - h;
    const fm = f(x);
    x[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

let shared: Promise<Runtime> | null = null;

/** One runtime per test file (each device leaks ~4 MiB until GC: share it). */
export function gpu(): Promise<Runtime> {
  shared ??= Runtime.create();
  return shared;
}
