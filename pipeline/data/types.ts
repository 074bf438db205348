/** Records as the data stage passes them between its steps (source → labels → split → cache). */
import type { RawLabel } from "./labels.ts";

export type SplitName = "train" | "validation" | "test";
export const SPLIT_NAMES: readonly SplitName[] = ["train", "validation", "test"];

/** One report with its labels, before tokenization. */
export interface ReportRecord {
  /** Unique record id (the study id for MIMIC-CXR). */
  id: string;
  /** Patient id; the record id when the source names no patient (each record its own patient). */
  patient: string;
  /** Selected text, whitespace-normalised. */
  text: string;
  /** Label values as in the source (after the No Finding rule when enabled). */
  raw: RawLabel[];
  /** 0/1 targets after the uncertainty policy. */
  target: Uint8Array;
  /** 1 = label counts in loss and metrics; 0 = masked (uncertain under `ignore`). */
  mask: Uint8Array;
  /** Split given by the source (official split csv / split column), if any. */
  split?: SplitName;
  /** `file:line` the record came from, for later messages. */
  where: string;
}

/** A row dropped under `on_error: skip`. */
export interface SkippedRow {
  where: string;
  kind: string;
  message: string;
}

/** Digest of one input (a file, or a folder of report files hashed in reading order). */
export interface InputDigest {
  path: string;
  sha256: string;
  /** For a folder: how many of its files were read. */
  files?: number;
}

export interface LoadedDataset {
  records: ReportRecord[];
  skipped: SkippedRow[];
  labelNames: string[];
  inputs: InputDigest[];
  /** How each MIMIC-CXR text was chosen (requested sections, or which fall-back). */
  textSources: Record<string, number>;
}
