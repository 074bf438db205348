/**
 * Train / validation / test split. A source's own split (official csv, split column) is used as
 * is; otherwise patients — never records — are assigned, so no patient's reports are in two
 * splits. Patients are ordered by sha256(seed:patient): deterministic for a seed, independent of
 * input order, and adding patients does not move the others between splits.
 */
import type { SplitConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import { sha256Hex } from "./text.ts";
import { type ReportRecord, SPLIT_NAMES, type SplitName } from "./types.ts";

export interface SplitResult {
  splits: Record<SplitName, ReportRecord[]>;
  source: "given" | "random";
  warnings: string[];
}

/** Split records per config. Throws DataError when a given split is incomplete. */
export function splitRecords(records: readonly ReportRecord[], cfg: SplitConfig): SplitResult {
  const withSplit = records.filter((r) => r.split !== undefined).length;
  const useGiven = cfg.mode === "given" || (cfg.mode === "auto" && withSplit > 0);
  if (useGiven) return givenSplit(records, cfg.mode);
  return { splits: randomPatientSplit(records, cfg), source: "random", warnings: [] };
}

function givenSplit(records: readonly ReportRecord[], mode: string): SplitResult {
  const splits: Record<SplitName, ReportRecord[]> = { train: [], validation: [], test: [] };
  for (const r of records) {
    if (r.split === undefined) {
      throw new DataError(
        r.where,
        "missing-split",
        `record "${r.id}" has no split, but data.split.mode ${mode} uses the source's split`,
      );
    }
    splits[r.split].push(r);
  }
  // A user-provided split is used as is, but a patient in two splits leaks and is worth a shout.
  const home = new Map<string, SplitName>();
  let crossing = 0;
  const counted = new Set<string>();
  for (const s of SPLIT_NAMES) {
    for (const r of splits[s]) {
      const h = home.get(r.patient);
      if (h === undefined) home.set(r.patient, s);
      else if (h !== s && !counted.has(r.patient)) {
        counted.add(r.patient);
        crossing++;
      }
    }
  }
  const warnings = crossing > 0
    ? [`${crossing} patient(s) have records in more than one split of the given split`]
    : [];
  return { splits, source: "given", warnings };
}

/** Seeded patient-level split with the configured patient fractions. */
export function randomPatientSplit(
  records: readonly ReportRecord[],
  cfg: Pick<SplitConfig, "fractions" | "seed">,
): Record<SplitName, ReportRecord[]> {
  const patients = [...new Set(records.map((r) => r.patient))];
  const key = new Map(patients.map((p) => [p, sha256Hex(`${cfg.seed}:${p}`)]));
  patients.sort((a, b) => {
    const ka = key.get(a)!, kb = key.get(b)!;
    return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
  const n = patients.length;
  const nTrain = Math.round(cfg.fractions.train * n);
  const nVal = Math.min(n - nTrain, Math.round(cfg.fractions.validation * n));
  const assign = new Map<string, SplitName>();
  patients.forEach((p, i) =>
    assign.set(p, i < nTrain ? "train" : i < nTrain + nVal ? "validation" : "test")
  );
  const splits: Record<SplitName, ReportRecord[]> = { train: [], validation: [], test: [] };
  for (const r of records) splits[assign.get(r.patient)!].push(r);
  return splits;
}
