/**
 * RFC 4180 CSV: quoted fields, "" escapes, newlines inside quotes, CRLF or LF, optional BOM.
 * Strict: a stray quote in an unquoted field or an unterminated quote is an error naming the line,
 * because a lenient parser would silently shift every later column of a label file.
 */
import { DataError } from "../errors.ts";

export interface CsvRow {
  cells: string[];
  /** Line on which the record starts (1-based; the header is line 1). */
  line: number;
}

export interface CsvTable {
  header: string[];
  rows: CsvRow[];
}

/** Parse CSV text. Blank lines between records are skipped; every row must match the header width. */
export function parseCsv(text: string, file: string): CsvTable {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: CsvRow[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const cells: string[] = [];
    let field = "";
    let endOfRecord = false;
    // Each iteration reads one field.
    while (!endOfRecord) {
      field = "";
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= n) {
            throw new DataError(`${file}:${startLine}`, "syntax", "unterminated quoted field");
          }
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === "\n") line++;
          field += c;
          i++;
        }
        const c = text[i];
        if (i < n && c !== "," && c !== "\n" && !(c === "\r" && text[i + 1] === "\n")) {
          throw new DataError(`${file}:${line}`, "syntax", "text after a closing quote");
        }
      } else {
        while (i < n && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r") {
          if (text[i] === '"') {
            throw new DataError(`${file}:${line}`, "syntax", "quote inside an unquoted field");
          }
          field += text[i++];
        }
        if (text[i] === "\r" && text[i + 1] !== "\n") {
          throw new DataError(`${file}:${line}`, "syntax", "bare carriage return");
        }
      }
      cells.push(field);
      if (i >= n) endOfRecord = true;
      else if (text[i] === ",") i++;
      else {
        i += text[i] === "\r" ? 2 : 1;
        line++;
        endOfRecord = true;
      }
    }
    if (cells.length === 1 && cells[0] === "" && text[i - 1] === "\n") continue; // blank line
    records.push({ cells, line: startLine });
  }
  if (records.length === 0) throw new DataError(`${file}:1`, "syntax", "empty CSV (no header)");
  const header = records[0].cells.map((h) => h.trim());
  const rows = records.slice(1);
  for (const r of rows) {
    if (r.cells.length !== header.length) {
      throw new DataError(
        `${file}:${r.line}`,
        "syntax",
        `expected ${header.length} fields (as in the header), got ${r.cells.length}`,
      );
    }
  }
  return { header, rows };
}

/** Column index by name; a missing column is a DataError naming the file's header line. */
export function columnIndex(table: CsvTable, name: string, file: string): number {
  const idx = table.header.indexOf(name);
  if (idx < 0) {
    throw new DataError(
      `${file}:1`,
      "missing-column",
      `missing column "${name}" (header has: ${table.header.join(", ")})`,
    );
  }
  return idx;
}
