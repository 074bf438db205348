/**
 * Plain-text tables for the benchmark CLIs: a header line naming the adapter (timings mean
 * nothing without it), then right-aligned columns.
 */

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
