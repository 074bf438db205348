/** `on_error`: a row-level DataError either stops the run or becomes a counted skip. */
import { DataError } from "../errors.ts";
import type { SkippedRow } from "./types.ts";

export class RowErrors {
  readonly skipped: SkippedRow[] = [];
  constructor(readonly mode: "fail" | "skip") {}

  /** Rethrow unless it is a row-level DataError in skip mode, which is recorded. */
  handle(e: unknown): void {
    if (!(e instanceof DataError) || this.mode === "fail") throw e;
    this.skipped.push({ where: e.where, kind: e.kind, message: e.message });
  }
}
