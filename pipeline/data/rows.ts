/**
 * One report per row (CSV or JSONL): id, optional patient, text columns joined in order, label
 * columns, optional split column. Shared so both formats obey exactly the same contract.
 */
import type { DataConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import { parseLabel, type RawLabel } from "./labels.ts";
import { normalizeSpace } from "./text.ts";
import type { SplitName } from "./types.ts";

/** A row's cell by column name: undefined when the row lacks the column. */
export type Cell = (column: string) => unknown;

export interface RowFields {
  id: string;
  patient: string;
  text: string;
  raw: RawLabel[];
  split?: SplitName;
}

/** Normalise a split value: train / validate|validation|val|dev / test (case-insensitive). */
export function parseSplitName(v: string): SplitName | undefined {
  const s = v.trim().toLowerCase();
  if (s === "train") return "train";
  if (s === "validate" || s === "validation" || s === "val" || s === "dev") return "validation";
  if (s === "test") return "test";
  return undefined;
}

function scalarString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Extract one record's fields; any violation is a DataError naming `where` and the column. */
export function rowFields(
  cell: Cell,
  cfg: DataConfig,
  labels: readonly string[],
  where: string,
): RowFields {
  const need = (col: string): unknown => {
    const v = cell(col);
    if (v === undefined) throw new DataError(where, "missing-column", `row has no "${col}"`);
    return v;
  };
  const id = scalarString(need(cfg.id_column))?.trim();
  if (!id) {
    throw new DataError(where, "missing-column", `empty or non-text id in "${cfg.id_column}"`);
  }
  let patient = id;
  if (cfg.patient_column) {
    const p = scalarString(need(cfg.patient_column))?.trim();
    if (!p) {
      throw new DataError(where, "missing-column", `empty patient id in "${cfg.patient_column}"`);
    }
    patient = p;
  }
  const parts: string[] = [];
  for (const col of cfg.text_columns) {
    const v = need(col);
    if (v === null) continue;
    if (typeof v !== "string") {
      throw new DataError(
        where,
        "syntax",
        `text column "${col}" is not text: ${JSON.stringify(v)}`,
      );
    }
    const t = normalizeSpace(v);
    if (t) parts.push(t);
  }
  const text = parts.join(" ");
  if (!text) {
    throw new DataError(
      where,
      "empty-text",
      `empty text in ${cfg.text_columns.map((c) => `"${c}"`).join(", ")}`,
    );
  }
  const raw: RawLabel[] = labels.map((name) => {
    const v = need(name);
    const r = parseLabel(v);
    if (r === undefined) {
      throw new DataError(
        where,
        "bad-label",
        `label "${name}" = ${JSON.stringify(v)} is not one of 1, 0, -1 or blank`,
      );
    }
    return r;
  });
  let split: SplitName | undefined;
  if (cfg.split_column) {
    const v = scalarString(need(cfg.split_column)) ?? "";
    split = parseSplitName(v);
    if (!split) {
      throw new DataError(
        where,
        "bad-split",
        `split "${v}" in "${cfg.split_column}" is not train, validate/validation/val or test`,
      );
    }
  }
  return { id, patient, text, raw, split };
}
