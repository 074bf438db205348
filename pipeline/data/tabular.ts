/** CSV and JSONL sources: one report per row, read through the shared row contract. */
import type { DataConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import { columnIndex, parseCsv } from "./csv.ts";
import { type RowFields, rowFields } from "./rows.ts";
import type { RowErrors } from "./skips.ts";
import { decodeUtf8, readBytes, sha256Hex } from "./text.ts";
import type { InputDigest } from "./types.ts";

export interface SourceRows {
  rows: (RowFields & { where: string })[];
  inputs: InputDigest[];
}

/** Read a CSV of reports. File-level problems (missing column, syntax) always fail. */
export async function readCsvSource(
  cfg: DataConfig,
  labels: readonly string[],
  errs: RowErrors,
): Promise<SourceRows> {
  const file = cfg.file!;
  const bytes = await readBytes(file);
  const table = parseCsv(decodeUtf8(bytes, file), file);
  const cols = [cfg.id_column, ...cfg.text_columns, ...labels];
  if (cfg.patient_column) cols.push(cfg.patient_column);
  if (cfg.split_column) cols.push(cfg.split_column);
  const index = new Map<string, number>();
  for (const c of cols) index.set(c, columnIndex(table, c, file));
  const rows: SourceRows["rows"] = [];
  for (const r of table.rows) {
    const where = `${file}:${r.line}`;
    try {
      rows.push({ ...rowFields((c) => r.cells[index.get(c)!], cfg, labels, where), where });
    } catch (e) {
      errs.handle(e);
    }
  }
  return { rows, inputs: [{ path: file, sha256: sha256Hex(bytes) }] };
}

/** Read a JSONL file of reports: one JSON object per line; blank lines are ignored. */
export async function readJsonlSource(
  cfg: DataConfig,
  labels: readonly string[],
  errs: RowErrors,
): Promise<SourceRows> {
  const file = cfg.file!;
  const bytes = await readBytes(file);
  const lines = decodeUtf8(bytes, file).split("\n");
  const rows: SourceRows["rows"] = [];
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i].replace(/\r$/, "");
    if (text.trim() === "") continue;
    const where = `${file}:${i + 1}`;
    try {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch (e) {
        throw new DataError(where, "syntax", `not valid JSON: ${(e as Error).message}`);
      }
      if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        throw new DataError(where, "syntax", "expected a JSON object per line");
      }
      const o = obj as Record<string, unknown>;
      rows.push({
        ...rowFields((c) => (Object.hasOwn(o, c) ? o[c] : undefined), cfg, labels, where),
        where,
      });
    } catch (e) {
      errs.handle(e);
    }
  }
  return { rows, inputs: [{ path: file, sha256: sha256Hex(bytes) }] };
}
