/**
 * Typed errors for bad user input. Messages name the file, the key path or row, and the line, so a
 * clinician-engineer can fix the input without reading the code.
 */

/** The YAML config (or a `--set` override) is malformed or breaks a rule. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A data file is unreadable or a row breaks the data contract; `where` is `file:line`. */
export class DataError extends Error {
  override name = "DataError";
  /** `file:line` (or `file` alone) of the offending input. */
  readonly where: string;
  /** Short machine-readable reason, used to count skips by kind in the manifest. */
  readonly kind: DataErrorKind;

  constructor(where: string, kind: DataErrorKind, message: string) {
    super(`${where}: ${message}`);
    this.where = where;
    this.kind = kind;
  }
}

export type DataErrorKind =
  | "unreadable"
  | "not-utf8"
  | "syntax"
  | "missing-column"
  | "bad-label"
  | "empty-text"
  | "duplicate-id"
  | "missing-report"
  | "split-conflict"
  | "bad-split"
  | "missing-split";
