/** Evaluation artifacts: metrics.json and predictions.csv, written atomically. */
import { writeJsonAtomic, writeTextAtomic } from "../fs.ts";
import { predict } from "./metrics.ts";

/** Write any JSON-serialisable metrics object (non-finite numbers become null). */
export function writeMetricsJson(path: string, metrics: unknown): Promise<void> {
  return writeJsonAtomic(
    path,
    JSON.parse(
      JSON.stringify(metrics, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v)),
    ),
  );
}

/** RFC 4180 quoting when a value needs it. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * predictions.csv: `id`, then per label `<label>.prob` (6 significant digits) and `<label>.pred`
 * (0/1 at `threshold`, or the explicit `preds`).
 */
export function predictionsCsv(
  recordIds: readonly string[],
  labelNames: readonly string[],
  probs: ArrayLike<number>,
  threshold: number,
  preds?: ArrayLike<number>,
): string {
  const L = labelNames.length;
  if (probs.length !== recordIds.length * L) {
    throw new Error(
      `predictions: ${probs.length} probabilities for ${recordIds.length} records × ${L} labels`,
    );
  }
  const head = ["id", ...labelNames.flatMap((l) => [`${l}.prob`, `${l}.pred`])].map(csvField);
  const lines = [head.join(",")];
  recordIds.forEach((id, i) => {
    const cells = [csvField(id)];
    for (let j = 0; j < L; j++) {
      const p = probs[i * L + j];
      cells.push(
        Number(p.toPrecision(6)).toString(),
        String(preds ? (preds[i * L + j] ? 1 : 0) : predict(p, threshold)),
      );
    }
    lines.push(cells.join(","));
  });
  return lines.join("\n") + "\n";
}

export function writePredictionsCsv(
  path: string,
  recordIds: readonly string[],
  labelNames: readonly string[],
  probs: ArrayLike<number>,
  threshold: number,
  preds?: ArrayLike<number>,
): Promise<void> {
  return writeTextAtomic(path, predictionsCsv(recordIds, labelNames, probs, threshold, preds));
}
