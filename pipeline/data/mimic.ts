/**
 * MIMIC-CXR layout: `files/pXX/pSUBJECT/sSTUDY.txt` reports, `mimic-cxr-2.0.0-chexpert.csv`
 * labels (one row per study), optional `mimic-cxr-2.0.0-split.csv` (one row per DICOM, so several
 * per study: deduplicated; a study with two different splits is an error, since it would leak).
 */
import type { DataConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import { columnIndex, parseCsv } from "./csv.ts";
import { parseLabel, type RawLabel } from "./labels.ts";
import { parseSplitName } from "./rows.ts";
import { parseSections, selectSections } from "./sections.ts";
import type { RowErrors } from "./skips.ts";
import type { SourceRows } from "./tabular.ts";
import { decodeUtf8, FolderDigest, readBytes, sha256Hex } from "./text.ts";
import type { InputDigest, SplitName } from "./types.ts";

export const MIMIC_LABEL_CSV = "mimic-cxr-2.0.0-chexpert.csv";
export const MIMIC_SPLIT_CSV = "mimic-cxr-2.0.0-split.csv";

/** Report path of a study: files/p10/p10000032/s50414267.txt. */
export function reportPath(reportsDir: string, subject: string, study: string): string {
  return `${reportsDir}/p${subject.slice(0, 2)}/p${subject}/s${study}.txt`;
}

async function fileExists(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isFile;
  } catch {
    return false;
  }
}

interface SplitEntry {
  split: SplitName;
  subject: string;
  line: number;
}

/** study_id → split, deduplicated over DICOM rows. Conflicts fail regardless of on_error. */
async function readSplitCsv(
  file: string,
): Promise<{ map: Map<string, SplitEntry>; digest: InputDigest }> {
  const bytes = await readBytes(file);
  const t = parseCsv(decodeUtf8(bytes, file), file);
  const iStudy = columnIndex(t, "study_id", file);
  const iSubject = columnIndex(t, "subject_id", file);
  const iSplit = columnIndex(t, "split", file);
  const map = new Map<string, SplitEntry>();
  for (const r of t.rows) {
    const study = r.cells[iStudy].trim();
    const split = parseSplitName(r.cells[iSplit]);
    if (!split) {
      throw new DataError(
        `${file}:${r.line}`,
        "bad-split",
        `split "${r.cells[iSplit]}" is not train, validate or test`,
      );
    }
    const prev = map.get(study);
    if (prev && prev.split !== split) {
      throw new DataError(
        `${file}:${r.line}`,
        "split-conflict",
        `study ${study} is "${split}" here but "${prev.split}" on line ${prev.line}`,
      );
    }
    if (!prev) map.set(study, { split, subject: r.cells[iSubject].trim(), line: r.line });
  }
  return { map, digest: { path: file, sha256: sha256Hex(bytes) } };
}

/** Read the MIMIC-CXR folder into rows (text selected by sections, raw labels, official split). */
export async function readMimicSource(
  cfg: DataConfig,
  labels: readonly string[],
  errs: RowErrors,
  textSources: Record<string, number>,
): Promise<SourceRows> {
  const root = cfg.root!;
  const reportsDir = cfg.reports_dir ?? `${root}/files`;
  const labelCsv = cfg.label_csv ?? `${root}/${MIMIC_LABEL_CSV}`;
  const splitCsv = cfg.split_csv ?? `${root}/${MIMIC_SPLIT_CSV}`;
  const inputs: InputDigest[] = [];

  const labelBytes = await readBytes(labelCsv);
  inputs.push({ path: labelCsv, sha256: sha256Hex(labelBytes) });
  const t = parseCsv(decodeUtf8(labelBytes, labelCsv), labelCsv);
  const iSubject = columnIndex(t, "subject_id", labelCsv);
  const iStudy = columnIndex(t, "study_id", labelCsv);
  const iLabels = labels.map((l) => columnIndex(t, l, labelCsv));

  let splits: Map<string, SplitEntry> | undefined;
  if (cfg.split.mode !== "random" && (cfg.split_csv !== undefined || await fileExists(splitCsv))) {
    const s = await readSplitCsv(splitCsv);
    splits = s.map;
    inputs.push(s.digest);
  }

  const digest = new FolderDigest();
  const seen = new Map<string, number>();
  const rows: SourceRows["rows"] = [];
  for (const r of t.rows) {
    const where = `${labelCsv}:${r.line}`;
    try {
      const subject = r.cells[iSubject].trim().replace(/\.0$/, "");
      const study = r.cells[iStudy].trim().replace(/\.0$/, "");
      if (!/^\d+$/.test(subject) || !/^\d+$/.test(study)) {
        throw new DataError(
          where,
          "syntax",
          `subject_id/study_id must be digits, got "${subject}", "${study}"`,
        );
      }
      const dup = seen.get(study);
      if (dup !== undefined) {
        throw new DataError(
          where,
          "duplicate-id",
          `study ${study} already labelled on line ${dup}`,
        );
      }
      seen.set(study, r.line);
      const raw: RawLabel[] = iLabels.map((i, k) => {
        const v = parseLabel(r.cells[i]);
        if (v === undefined) {
          throw new DataError(
            where,
            "bad-label",
            `label "${labels[k]}" = "${r.cells[i]}" is not one of 1.0, 0.0, -1.0 or blank`,
          );
        }
        return v;
      });
      const path = reportPath(reportsDir, subject, study);
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        const why = e instanceof Deno.errors.NotFound
          ? "report file not found"
          : "cannot read report";
        throw new DataError(where, "missing-report", `${why}: ${path}`);
      }
      digest.add(path.slice(reportsDir.length + 1), bytes);
      const chosen = selectSections(parseSections(decodeUtf8(bytes, path)), cfg.sections);
      if (chosen.text === "") throw new DataError(path, "empty-text", "report has no text");
      let split: SplitName | undefined;
      if (splits) {
        const e = splits.get(study);
        if (!e) throw new DataError(where, "missing-split", `study ${study} is not in ${splitCsv}`);
        if (e.subject !== subject) {
          throw new DataError(
            where,
            "split-conflict",
            `study ${study} has subject ${subject} here but ${e.subject} in ${splitCsv}:${e.line}`,
          );
        }
        split = e.split;
      }
      textSources[chosen.source] = (textSources[chosen.source] ?? 0) + 1;
      rows.push({ id: study, patient: subject, text: chosen.text, raw, split, where });
    } catch (e) {
      errs.handle(e);
    }
  }
  inputs.push({ path: reportsDir, sha256: digest.hex(), files: digest.files });
  return { rows, inputs };
}
