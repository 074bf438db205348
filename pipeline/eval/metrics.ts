/**
 * Multi-label classification metrics with label masks.
 *
 * F1 follows scikit-learn's `f1_score` on multi-label indicator data with zero_division = 0 (its
 * default "warn" behaves as 0): per label F1 = 2·tp / (2·tp + fp + fn), 0 when the denominator is 0;
 * weighted = support-weighted mean (a label with no positives has weight 0); macro = plain mean
 * over all labels (zero-support labels included, as sklearn does); micro = F1 of the pooled counts.
 * When EVERY label has support 0 the weighted F1 is 0 (sklearn returns zero_division there) and
 * `allSupportsZero` is set so a report can say "undefined" instead of showing a misleading 0.
 * Masked entries (mask 0) are excluded from every count, as if the row lacked that label.
 */

export interface MetricsInput {
  /** [n·numLabels] probabilities (row-major: record i, label j at i·numLabels + j). */
  probs: ArrayLike<number>;
  /** [n·numLabels] 0/1 targets. */
  targets: ArrayLike<number>;
  /** [n·numLabels] 1 = counts, 0 = excluded; all ones when omitted. */
  mask?: ArrayLike<number>;
  numLabels: number;
  labelNames?: readonly string[];
  /** Positive iff prob ≥ threshold (default 0.5). */
  threshold?: number;
  /** Explicit 0/1 predictions (e.g. the prior baseline); overrides thresholding. */
  preds?: ArrayLike<number>;
}

export interface LabelMetrics {
  label: string;
  /** Unmasked positives. */
  support: number;
  /** Unmasked negatives. */
  negatives: number;
  masked: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  precision: number;
  recall: number;
  f1: number;
  /** Mann–Whitney AUROC with ties averaged; null when only one class is present. */
  auroc: number | null;
}

export interface Metrics {
  n: number;
  threshold: number;
  weightedF1: number;
  macroF1: number;
  microF1: number;
  /** Mean AUROC over labels where it is defined; null if none is. */
  macroAuroc: number | null;
  allSupportsZero: boolean;
  perLabel: LabelMetrics[];
}

/** sklearn's `_prf_divide` with zero_division = 0. */
const div = (a: number, b: number) => (b === 0 ? 0 : a / b);

/** Prediction rule: positive iff prob ≥ threshold (sklearn's `y_prob >= t` convention). */
export function predict(prob: number, threshold: number): 0 | 1 {
  return prob >= threshold ? 1 : 0;
}

/**
 * AUROC = P(score⁺ > score⁻) + ½·P(score⁺ = score⁻), computed from average ranks
 * (Mann–Whitney U / (n⁺·n⁻)). Null when either class is empty. O(n log n).
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let nPos = 0;
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const avgRank = (i + j) / 2 + 1; // ranks are 1-based; a tie group shares its mean rank
    for (let k = i; k <= j; k++) {
      if (labels[order[k]] === 1) {
        nPos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export function computeMetrics(input: MetricsInput): Metrics {
  const L = input.numLabels;
  const total = input.targets.length;
  if (!Number.isInteger(L) || L <= 0 || total % L !== 0) {
    throw new Error(`metrics: ${total} targets is not a multiple of numLabels ${L}`);
  }
  if (input.probs.length !== total) {
    throw new Error(`metrics: probs has ${input.probs.length} values, targets ${total}`);
  }
  if (input.mask && input.mask.length !== total) {
    throw new Error(`metrics: mask has ${input.mask.length} values, targets ${total}`);
  }
  if (input.preds && input.preds.length !== total) {
    throw new Error(`metrics: preds has ${input.preds.length} values, targets ${total}`);
  }
  const n = total / L;
  const threshold = input.threshold ?? 0.5;
  const perLabel: LabelMetrics[] = [];
  let TP = 0, FP = 0, FN = 0;
  for (let j = 0; j < L; j++) {
    let tp = 0, fp = 0, fn = 0, tn = 0, masked = 0;
    const s: number[] = [], y: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = i * L + j;
      if (input.mask && !input.mask[k]) {
        masked++;
        continue;
      }
      const t = input.targets[k] ? 1 : 0;
      const p = input.preds ? (input.preds[k] ? 1 : 0) : predict(input.probs[k], threshold);
      if (t && p) tp++;
      else if (!t && p) fp++;
      else if (t && !p) fn++;
      else tn++;
      s.push(input.probs[k]);
      y.push(t);
    }
    TP += tp;
    FP += fp;
    FN += fn;
    perLabel.push({
      label: input.labelNames?.[j] ?? `label${j}`,
      support: tp + fn,
      negatives: fp + tn,
      masked,
      tp,
      fp,
      fn,
      tn,
      precision: div(tp, tp + fp),
      recall: div(tp, tp + fn),
      f1: div(2 * tp, 2 * tp + fp + fn),
      auroc: auroc(s, y),
    });
  }
  const supportSum = perLabel.reduce((a, m) => a + m.support, 0);
  const weightedF1 = div(perLabel.reduce((a, m) => a + m.support * m.f1, 0), supportSum);
  const macroF1 = perLabel.reduce((a, m) => a + m.f1, 0) / L;
  const defined = perLabel.filter((m) => m.auroc !== null);
  return {
    n,
    threshold,
    weightedF1,
    macroF1,
    microF1: div(2 * TP, 2 * TP + FP + FN),
    macroAuroc: defined.length ? defined.reduce((a, m) => a + m.auroc!, 0) / defined.length : null,
    allSupportsZero: supportSum === 0,
    perLabel,
  };
}

export interface PriorBaseline {
  /** Training prevalence per label among unmasked entries (0 when all masked). */
  prevalence: number[];
  /** Training majority per label: 1 iff prevalence > 0.5 (rare labels → always negative). */
  majority: (0 | 1)[];
}

/** The label-prior baseline, fit on the TRAINING split only. */
export function priorBaseline(
  trainTargets: ArrayLike<number>,
  trainMask: ArrayLike<number> | undefined,
  numLabels: number,
): PriorBaseline {
  const n = trainTargets.length / numLabels;
  const prevalence: number[] = [], majority: (0 | 1)[] = [];
  for (let j = 0; j < numLabels; j++) {
    let pos = 0, cnt = 0;
    for (let i = 0; i < n; i++) {
      const k = i * numLabels + j;
      if (trainMask && !trainMask[k]) continue;
      cnt++;
      if (trainTargets[k]) pos++;
    }
    const p = cnt ? pos / cnt : 0;
    prevalence.push(p);
    majority.push(p > 0.5 ? 1 : 0);
  }
  return { prevalence, majority };
}

/** The baseline as predictions for `n` records: probability = prevalence, label = majority. */
export function priorPredictions(
  b: PriorBaseline,
  n: number,
): { probs: Float32Array; preds: Uint8Array } {
  const L = b.prevalence.length;
  const probs = new Float32Array(n * L), preds = new Uint8Array(n * L);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < L; j++) {
      probs[i * L + j] = b.prevalence[j];
      preds[i * L + j] = b.majority[j];
    }
  }
  return { probs, preds };
}
