/** Timing helpers shared by the end-to-end benchmarks: warm-up, timed repetitions, median. */

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface Timing {
  /** Wall milliseconds of each timed repetition. */
  ms: number[];
  median: number;
  min: number;
}

/**
 * `warmup` untimed runs (pipeline compilation, first-touch of buffers), then `reps` timed ones.
 * Wall time: the runs end with a readback, so this is what a training loop sees.
 */
export async function timeRuns(
  run: () => Promise<void>,
  warmup: number,
  reps: number,
): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await run();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return { ms, median: median(ms), min: Math.min(...ms) };
}

/**
 * The 1-minute load average, or null: shared machines make timings drift with it. Needs
 * --allow-sys=loadavg (Deno also refuses /proc/loadavg without --allow-all); null without it.
 */
export function loadAverage(): number | null {
  try {
    return Deno.loadavg()[0];
  } catch {
    return null;
  }
}

/** Round for JSON output (keeps lines short, the measurements are not this precise anyway). */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}
