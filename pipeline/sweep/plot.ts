/**
 * f1_vs_epsilon.svg: DP-LoRA weighted F1 against ε (log axis, ± std error bars), with the
 * non-private full / LoRA results and the label prior as horizontal dashed lines across the swept
 * ε range, so the privacy cost reads as the gap to the LoRA line.
 */
import { lineChart, type Series } from "../report/svg.ts";
import type { Aggregate, PriorSummary } from "./results.ts";

export function f1VsEpsilonSvg(aggregates: readonly Aggregate[], prior: PriorSummary): string {
  const dp = aggregates.filter((a) => a.mode === "dp-lora" && a.epsilon !== null)
    .sort((a, b) => a.epsilon! - b.epsilon!);
  const eps = dp.map((a) => a.epsilon!);
  // With no DP runs (or one ε) the flat lines still need a visible span on the log axis.
  const lo = eps.length ? Math.min(...eps) : 0.1, hi = eps.length ? Math.max(...eps) : 10;
  const [x0, x1] = hi > lo ? [lo, hi] : [lo / 10, hi * 10];
  const flat = (name: string, y: number, color: string): Series => ({
    name,
    color,
    dashed: true,
    points: [{ x: x0, y }, { x: x1, y }],
  });
  const series: Series[] = [];
  if (dp.length) {
    series.push({
      name: "DP-LoRA",
      color: "#d62728",
      points: dp.map((a) => {
        const m = a.weighted_f1;
        return m.std === null ? { x: a.epsilon!, y: m.mean } : {
          x: a.epsilon!,
          y: m.mean,
          // F1 lives in [0, 1]: a bar past it would only leave the plot area.
          lo: Math.max(0, m.mean - m.std),
          hi: Math.min(1, m.mean + m.std),
        };
      }),
    });
  }
  const full = aggregates.find((a) => a.mode === "full");
  const lora = aggregates.find((a) => a.mode === "lora");
  if (full) series.push(flat("full (non-private)", full.weighted_f1.mean, "#1f77b4"));
  if (lora) series.push(flat("LoRA (non-private)", lora.weighted_f1.mean, "#2ca02c"));
  series.push(flat("label prior", prior.weighted_f1, "#7f7f7f"));
  return lineChart(series, {
    title: "Weighted F1 vs privacy budget",
    xLabel: "ε (log scale)",
    yLabel: "test weighted F1",
    logX: true,
    // A fixed F1 axis, so sweeps on different data or models compare at a glance.
    yMin: 0,
    yMax: 1,
  }) + "\n";
}
