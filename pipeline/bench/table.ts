/**
 * Plain-text tables for the benchmark CLIs: a header line naming the adapter (timings mean
 * nothing without it), then right-aligned columns.
 */
import type { StepRow } from "./measure.ts";

export interface Column<R> {
  title: string;
  /** Cell text; numbers are formatted by the column, never by the caller's locale. */
  cell(r: R): string;
  /** Left-align (names); default right (numbers). */
  left?: boolean;
}

/** Render rows as lines of text (no trailing newline). */
export function renderTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, j) =>
    Math.max(c.title.length, ...cells.map((row) => row[j].length))
  );
  const line = (xs: string[]) =>
    xs.map((x, j) => columns[j].left ? x.padEnd(widths[j]) : x.padStart(widths[j])).join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...cells.map(line)].join("\n");
}

/** Fixed-point, or "-" for null/undefined/NaN. */
export function num(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits);
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? "-" : (bytes / 2 ** 20).toFixed(1);
}

/** The header every benchmark prints first. */
export function header(
  title: string,
  adapter: string,
  extra: Record<string, unknown> = {},
): string {
  const kv = Object.entries(extra).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${title} — adapter: ${adapter}${kv ? ` (${kv})` : ""}`;
}

/** Columns of a per-step benchmark table; `opTitle` names the op column ("op" or "mode"). */
export function stepColumns<R extends StepRow>(opTitle: string): Column<R>[] {
  return [
    { title: "model", cell: (r) => r.model, left: true },
    { title: opTitle, cell: (r) => r.op, left: true },
    { title: "batch", cell: (r) => String(r.batch) },
    { title: "seq", cell: (r) => String(r.seq) },
    { title: "ms/step", cell: (r) => num(r.step_ms, 0) },
    { title: "samples/s", cell: (r) => num(r.samples_per_s, 2) },
    { title: "PyTorch", cell: (r) => num(r.pytorch_samples_per_s, 1) },
    { title: "peak MiB", cell: (r) => mib(r.peak_bytes) },
    { title: "trainable", cell: (r) => String(r.trainable_params) },
    { title: "load", cell: (r) => num(r.load_avg, 1) },
  ];
}
