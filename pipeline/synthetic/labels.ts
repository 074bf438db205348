/**
 * CheXpert label space and the labeler's combination rules, applied to the mentions the generator
 * wrote into a report's text. The rules follow the CheXpert labeler (Irvin et al. 2019) as used for
 * mimic-cxr-2.0.0-chexpert.csv.
 */

import { CHEXPERT_LABELS } from "../data/chexpert.ts";

export { CHEXPERT_LABELS };

export type ChexpertLabel = typeof CHEXPERT_LABELS[number];

/** A mentioned finding: every label except No Finding, which is derived. */
export type Finding = Exclude<ChexpertLabel, "No Finding">;

export const FINDINGS: readonly Finding[] = CHEXPERT_LABELS.filter(
  (l): l is Finding => l !== "No Finding",
);

/** 1 positive, 0 negated, −1 uncertain, null = not mentioned (blank cell). */
export type LabelValue = 1 | 0 | -1 | null;

/** One finding stated in the text with the certainty the sentence expresses. */
export interface Mention {
  finding: Finding;
  value: 1 | 0 | -1;
}

/** One row of labels in CHEXPERT_LABELS order. */
export type LabelRow = LabelValue[];

export const NO_FINDING_INDEX = CHEXPERT_LABELS.indexOf("No Finding");
export const SUPPORT_DEVICES_INDEX = CHEXPERT_LABELS.indexOf("Support Devices");

/**
 * Combine all mentions of each finding ({0,−1}→−1, {0,1}→1, {−1,1}→1, i.e. 1 > −1 > 0), then set
 * No Finding = 1 when no label other than Support Devices is 1 or −1, else blank.
 */
export function labelsFromMentions(mentions: readonly Mention[]): LabelRow {
  const rank = (v: LabelValue): number => v === 1 ? 3 : v === -1 ? 2 : v === 0 ? 1 : 0;
  const row: LabelRow = CHEXPERT_LABELS.map(() => null);
  for (const m of mentions) {
    const i = CHEXPERT_LABELS.indexOf(m.finding);
    if (rank(m.value) > rank(row[i])) row[i] = m.value;
  }
  row[NO_FINDING_INDEX] = noFindingHolds(row) ? 1 : null;
  return row;
}

/** The No Finding rule: nothing but Support Devices is positive or uncertain. */
export function noFindingHolds(row: LabelRow): boolean {
  for (let i = 0; i < row.length; i++) {
    if (i === NO_FINDING_INDEX || i === SUPPORT_DEVICES_INDEX) continue;
    if (row[i] === 1 || row[i] === -1) return false;
  }
  return true;
}

/** CSV cell text as MIMIC-CXR writes it. */
export function formatLabel(v: LabelValue): string {
  return v === null ? "" : v === 1 ? "1.0" : v === 0 ? "0.0" : "-1.0";
}
