/**
 * Synthetic MIMIC-CXR-style corpus: patients → studies → report text + CheXpert labels (derived
 * from the text, then labeler noise) + patient-level split with 1–3 DICOM ids per study.
 */
import { Prng } from "./prng.ts";
import { CHEXPERT_LABELS, type LabelRow, type LabelValue, NO_FINDING_INDEX } from "./labels.ts";
import { drawProfile, nextState, type StudyState } from "./patient.ts";
import { renderStudy } from "./report.ts";

export type Split = "train" | "validate" | "test";

export interface SyntheticStudy {
  subjectId: number;
  studyId: number;
  /** 0-based position of the study in the patient's timeline */
  order: number;
  split: Split;
  dicomIds: string[];
  text: string;
  /** FINDINGS + IMPRESSION bodies: the text the labels were derived from */
  labelledText: string;
  /** Labels as the CSV has them (after labeler noise). */
  labels: LabelRow;
  /** Labels derived from the text, before noise. */
  cleanLabels: LabelRow;
}

export interface CorpusOptions {
  seed: number;
  /** number of studies (reports) */
  reports: number;
  /** P(perturb) of a mentioned label cell, blank cells get a fifth of it (default 0.06) */
  noise?: number;
  /** patient fractions for validate and test (default 0.1 each) */
  validate?: number;
  test?: number;
}

/** Weights for 1..6 studies per patient (mean ≈ 2.5). */
const STUDIES_PER_PATIENT = [0.34, 0.22, 0.16, 0.12, 0.09, 0.07];

/**
 * Perturb one cell as a rule-based labeler would: a missed negation (0 → 1), a missed mention
 * (1 → blank), an uncertainty cue missed or over-read (−1 ↔ 1), a spurious mention (blank → ±1/0).
 * No Finding only ever toggles between 1 and blank, as in the real CSV.
 */
function noisy(r: Prng, v: LabelValue, noFinding: boolean): LabelValue {
  if (noFinding) return v === 1 ? null : 1;
  const pick = (opts: LabelValue[], w: number[]) => opts[r.weighted(w)];
  switch (v) {
    case 1:
      return pick([-1, null, 0], [0.4, 0.35, 0.25]);
    case 0:
      return pick([1, null, -1], [0.6, 0.3, 0.1]);
    case -1:
      return pick([1, 0, null], [0.5, 0.3, 0.2]);
    default:
      return pick([1, 0, -1], [0.3, 0.5, 0.2]);
  }
}

/**
 * Labeler noise: a mentioned cell (or No Finding) is perturbed with probability `rate`, a blank
 * cell with rate/5 (a rule-based labeler seldom invents a finding that the text never names).
 * With ~30% of cells mentioned, rate 0.06 perturbs ≈ 2–2.5% of all cells.
 */
export function applyNoise(r: Prng, clean: LabelRow, rate: number): LabelRow {
  return clean.map((v, i) => {
    const nf = i === NO_FINDING_INDEX;
    return r.chance(v === null && !nf ? rate / 5 : rate) ? noisy(r, v, nf) : v;
  });
}

function hex8(r: Prng): string {
  return r.u32().toString(16).padStart(8, "0");
}

export function generateCorpus(opts: CorpusOptions): SyntheticStudy[] {
  const root = new Prng(opts.seed);
  const ids = root.fork(1);
  const noiseRng = root.fork(2);
  const noise = opts.noise ?? 0.06;
  const pVal = opts.validate ?? 0.1;
  const pTest = opts.test ?? 0.1;
  const usedSubjects = new Set<number>();
  const usedStudies = new Set<number>();
  const unique = (used: Set<number>, lo: number) => {
    for (;;) {
      const v = lo + ids.int(10_000_000);
      if (!used.has(v)) {
        used.add(v);
        return v;
      }
    }
  };
  const out: SyntheticStudy[] = [];
  let patientIndex = 0;
  while (out.length < opts.reports) {
    // one child stream per patient: the i-th patient is the same whatever the corpus size
    const r = root.fork(1000 + patientIndex++);
    const subjectId = unique(usedSubjects, 10_000_000);
    const u = r.next();
    const split: Split = u < pTest ? "test" : u < pTest + pVal ? "validate" : "train";
    const profile = drawProfile(r);
    const n = Math.min(1 + r.weighted(STUDIES_PER_PATIENT), opts.reports - out.length);
    let prev: StudyState | null = null;
    for (let k = 0; k < n; k++) {
      const state = nextState(r, profile, prev);
      const rs = renderStudy(r, { state, prev, profile });
      const nDicom = rs.portable ? (r.chance(0.9) ? 1 : 2) : (r.chance(0.85) ? 2 : 3);
      const dicomIds = Array.from(
        { length: nDicom },
        () => [hex8(ids), hex8(ids), hex8(ids), hex8(ids), hex8(ids)].join("-"),
      );
      out.push({
        subjectId,
        studyId: unique(usedStudies, 50_000_000),
        order: k,
        split,
        dicomIds,
        text: rs.text,
        labelledText: rs.labelledText,
        labels: applyNoise(noiseRng, rs.labels, noise),
        cleanLabels: rs.labels,
      });
      prev = state;
    }
  }
  return out;
}

/** Path of a study's report under the dataset root: files/pXX/pSUBJECT/sSTUDY.txt. */
export function reportPath(subjectId: number, studyId: number): string {
  const s = String(subjectId);
  return `files/p${s.slice(0, 2)}/p${s}/s${studyId}.txt`;
}

function bySubjectStudy(a: SyntheticStudy, b: SyntheticStudy): number {
  return a.subjectId - b.subjectId || a.studyId - b.studyId;
}

export function chexpertCsv(studies: readonly SyntheticStudy[]): string {
  const fmt = (v: LabelValue) => v === null ? "" : v === 1 ? "1.0" : v === 0 ? "0.0" : "-1.0";
  const rows = [...studies].sort(bySubjectStudy).map((s) =>
    [String(s.subjectId), String(s.studyId), ...s.labels.map(fmt)].join(",")
  );
  return ["subject_id,study_id," + CHEXPERT_LABELS.join(","), ...rows].join("\n") + "\n";
}

export function splitCsv(studies: readonly SyntheticStudy[]): string {
  const rows: string[] = [];
  for (const s of [...studies].sort(bySubjectStudy)) {
    for (const d of s.dicomIds) rows.push(`${d},${s.studyId},${s.subjectId},${s.split}`);
  }
  return ["dicom_id,study_id,subject_id,split", ...rows].join("\n") + "\n";
}

/**
 * A report as one paragraph for the unlabelled pretraining corpus: one line per section, wrapped
 * lines joined, the "FINAL REPORT" banner dropped, no blank line inside.
 */
export function asParagraph(text: string): string {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line === "FINAL REPORT") continue;
    if (/^[A-Z][A-Z ]+:/.test(line) || out.length === 0) out.push(line);
    else {out[out.length - 1] = out[out.length - 1].endsWith(":")
        ? `${out[out.length - 1]} ${line}`
        : `${out[out.length - 1]} ${line}`;}
  }
  return out.join("\n");
}

/** The unlabelled corpus text: reports separated by one blank line. */
export function publicCorpusText(studies: readonly SyntheticStudy[]): string {
  return studies.map((s) => asParagraph(s.text)).join("\n\n") + "\n";
}
