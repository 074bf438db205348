/**
 * Mean ± standard deviation over seeds. The std is the sample std (n − 1 denominator, as numpy's
 * `std(ddof=1)` and the usual "mean ± std over k seeds" tables), null for a single seed: one run
 * says nothing about the spread, and printing ± 0 would claim it does.
 */

export interface MeanStd {
  mean: number;
  std: number | null;
  n: number;
}

export function meanStd(values: readonly number[]): MeanStd {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: null, n: 0 };
  const mean = values.reduce((a, v) => a + v, 0) / n;
  if (n < 2) return { mean, std: null, n };
  // Two-pass: subtracting the mean first keeps the sum of squares free of cancellation.
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (n - 1)), n };
}

/** `0.842 ± 0.013` (or `0.842` for one seed); `—` for no value. */
export function fmtMeanStd(m: MeanStd | undefined, digits = 3): string {
  if (!m || m.n === 0 || !Number.isFinite(m.mean)) return "—";
  return m.std === null
    ? m.mean.toFixed(digits)
    : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`;
}
