/**
 * The difficulty gauge for the synthetic corpus: a bag-of-words keyword classifier (a label is
 * predicted positive when any of its keywords occurs anywhere in the text, negated or not; No
 * Finding when no other finding keyword except device words fires) and support-weighted F1.
 * If this baseline scores near 1.0 the corpus is too easy to separate a strong model from a weak one.
 */
import {
  CHEXPERT_LABELS,
  type LabelRow,
  NO_FINDING_INDEX,
  SUPPORT_DEVICES_INDEX,
} from "./labels.ts";

/** Keyword regexes per label (null for No Finding, which is derived). Word-start anchored. */
export const KEYWORDS: ReadonlyArray<RegExp | null> = [
  /\b(atelecta|collapse)/i,
  /\b(cardiomegaly|(heart|heart size|cardiac silhouette) (is |remains )?(\w+ly )?enlarged|enlarge(d|ment of the) (heart|cardiac))/i,
  /\bconsolidat/i,
  /\b(edema|vascular congestion)/i,
  /\b(widen|mediastinal widening|enlarged cardiomediastinal)/i,
  /\bfractur/i,
  /\b(nodul|mass\b|masses\b|lesion)/i,
  /\b(opacit|infiltrat|airspace disease)/i,
  null,
  /\beffusion/i,
  /\b(pleural thickening|pleural plaque|fibrothorax|pleural scarring)/i,
  /\b(pneumonia|infection)/i,
  /\bpneumothora/i,
  /\b(tube|lines?\b|catheter|pacemaker|picc|wires|leads|icd\b)/i,
];

export function keywordPredict(text: string): boolean[] {
  const pred = KEYWORDS.map((k) => k !== null && k.test(text));
  pred[NO_FINDING_INDEX] = !pred.some((p, i) => p && i !== SUPPORT_DEVICES_INDEX);
  return pred;
}

/** How a CheXpert cell becomes a binary target: U-Zeros (−1 → 0) or U-Ones (−1 → 1). */
export type UncertainPolicy = "zeros" | "ones";

export function binarise(row: LabelRow, policy: UncertainPolicy): boolean[] {
  return row.map((v) => v === 1 || (policy === "ones" && v === -1));
}

export interface LabelScore {
  label: string;
  support: number;
  precision: number;
  recall: number;
  f1: number;
}

/** Per-label P/R/F1 and the support-weighted mean F1 over labels. */
export function weightedF1(
  truth: boolean[][],
  pred: boolean[][],
): { weighted: number; perLabel: LabelScore[] } {
  const perLabel: LabelScore[] = CHEXPERT_LABELS.map((label, j) => {
    let tp = 0, fp = 0, fn = 0;
    for (let i = 0; i < truth.length; i++) {
      if (pred[i][j] && truth[i][j]) tp++;
      else if (pred[i][j]) fp++;
      else if (truth[i][j]) fn++;
    }
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, support: tp + fn, precision, recall, f1 };
  });
  const total = perLabel.reduce((s, l) => s + l.support, 0);
  const weighted = total > 0 ? perLabel.reduce((s, l) => s + l.f1 * l.support, 0) / total : 0;
  return { weighted, perLabel };
}
