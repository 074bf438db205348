/**
 * table.md: the study's comparison table (full / LoRA / DP-LoRA at each ε / label prior, weighted
 * and macro F1 as mean ± std over seeds) and a per-label F1 table at ε = 1 (or the swept ε
 * nearest to it), DP-LoRA vs LoRA vs full vs the prior.
 */
import type { Aggregate, PriorSummary } from "./results.ts";
import { fmtMeanStd } from "./stats.ts";

export interface TableInput {
  aggregates: readonly Aggregate[];
  prior: PriorSummary;
  /** ε of the per-label table (null: no DP-LoRA runs). */
  perLabelEpsilon: number | null;
  seeds: number;
  /** One line saying what was run (data, model, epochs), shown under the title. */
  caption: string;
}

function rowName(a: Aggregate): string {
  if (a.mode === "full") return "Full fine-tuning (non-private)";
  if (a.mode === "lora") return "LoRA (non-private)";
  return `DP-LoRA ε = ${a.epsilon}`;
}

function esc(s: string): string {
  return s.replaceAll("|", "\\|");
}

export function sweepTable(t: TableInput): string {
  const seedText = t.seeds === 1 ? "1 seed (no std)" : `mean ± std over ${t.seeds} seeds`;
  const lines = [
    "# DP-LoRA sweep",
    "",
    t.caption,
    "",
    `Test-set F1, ${seedText}. ε is the target at the run's δ; the ε each run actually spent ` +
    "(PLD accountant) is in results.csv.",
    "",
    "| model | weighted F1 | macro F1 | ε spent |",
    "|---|---|---|---|",
  ];
  // Rows as in the paper: the non-private references first, then DP-LoRA from weak to strong
  // privacy.
  const rank = (a: Aggregate) => (a.mode === "full" ? 0 : a.mode === "lora" ? 1 : 2);
  const sorted = [...t.aggregates].sort((a, b) =>
    rank(a) - rank(b) || (b.epsilon ?? 0) - (a.epsilon ?? 0)
  );
  for (const a of sorted) {
    lines.push(
      `| ${rowName(a)} | ${fmtMeanStd(a.weighted_f1)} | ${fmtMeanStd(a.macro_f1)} | ${
        a.epsilon_spent ? fmtMeanStd(a.epsilon_spent) : "∞"
      } |`,
    );
  }
  lines.push(
    `| Label prior (training majority) | ${t.prior.weighted_f1.toFixed(3)} | ${
      t.prior.macro_f1.toFixed(3)
    } | 0 |`,
    "",
  );

  const dp = sorted.find((a) => a.mode === "dp-lora" && a.epsilon === t.perLabelEpsilon);
  const lora = sorted.find((a) => a.mode === "lora");
  const full = sorted.find((a) => a.mode === "full");
  const cols = [
    ...(dp ? [[`DP-LoRA ε = ${dp.epsilon}`, dp] as const] : []),
    ...(lora ? [["LoRA", lora] as const] : []),
    ...(full ? [["Full", full] as const] : []),
  ];
  if (cols.length > 0) {
    lines.push(
      `## Per-label F1${dp ? ` at ε = ${dp.epsilon}` : ""}`,
      "",
      `| label | ${cols.map(([n]) => n).join(" | ")} | label prior |`,
      `|---|${cols.map(() => "---|").join("")}---|`,
    );
    for (const label of Object.keys(t.prior.per_label_f1)) {
      const cells = cols.map(([, a]) => fmtMeanStd(a.per_label_f1[label]));
      lines.push(
        `| ${esc(label)} | ${cells.join(" | ")} | ${t.prior.per_label_f1[label].toFixed(3)} |`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}
