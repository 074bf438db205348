import assert from "node:assert/strict";
import {
  auroc,
  computeMetrics,
  priorBaseline,
  priorPredictions,
} from "../pipeline/eval/metrics.ts";
import { parseCsv } from "../pipeline/data/csv.ts";
import { predictionsCsv, writeMetricsJson, writePredictionsCsv } from "../pipeline/eval/report.ts";
import { assertClose, freshSeed, rng } from "./helpers.ts";

// Exact rational results computed in float64; 1e-12 covers the few roundings of a sum of ≤ 10 terms.
const EPS = 1e-12;
const near = (got: number | null, want: number, what: string) =>
  assert.ok(got !== null && Math.abs(got - want) <= EPS, `${what}: got ${got}, want ${want}`);

/*
 * Hand-computed example: 6 records × 3 labels, threshold 0.5 (positive iff p ≥ 0.5).
 *
 * A: y = 1 1 0 0 1 0, p = .9 .4 .6 .1 .8 .3 → ŷ = 1 0 1 0 1 0
 *    tp 2 (r0, r4), fn 1 (r1), fp 1 (r2), tn 2 → P = 2/3, R = 2/3, F1 = 4/(4+1+1) = 2/3, support 3
 *    AUROC: pos {.9,.4,.8} vs neg {.6,.1,.3}: .9 beats 3, .4 beats 2, .8 beats 3 → 8/9
 * B: y = 0 0 0 0 0 1, p = .7 .2 .2 .1 .6 .2 → ŷ = 1 0 0 0 1 0
 *    tp 0, fp 2, fn 1, tn 3 → P = 0, R = 0, F1 = 0/(0+2+1) = 0, support 1
 *    AUROC: pos {.2} vs neg {.7,.2,.2,.1,.6}: beats .1 (1) + ties two .2 (2·½) → 2/5
 * C: y = all 0, p all < .5 → tp = fp = fn = 0 → F1 = zero_division = 0, support 0, AUROC null
 *
 * weighted F1 = (3·2/3 + 1·0 + 0·0) / (3+1) = 1/2     (sklearn average="weighted": 0.5)
 * macro F1    = (2/3 + 0 + 0) / 3 = 2/9               (sklearn average="macro": 0.2222…)
 * micro F1    = TP 2, FP 3, FN 2 → 4 / (4+3+2) = 4/9  (sklearn average="micro": 0.4444…)
 */
const Y = [
  [1, 0, 0],
  [1, 0, 0],
  [0, 0, 0],
  [0, 0, 0],
  [1, 0, 0],
  [0, 1, 0],
].flat();
const P = [
  [.9, .7, .1],
  [.4, .2, .2],
  [.6, .2, .3],
  [.1, .1, .4],
  [.8, .6, .0],
  [.3, .2, .1],
].flat();

Deno.test("metrics: hand-computed weighted / macro / micro F1, per-label P/R/F1, AUROC", () => {
  const m = computeMetrics({ probs: P, targets: Y, numLabels: 3, labelNames: ["A", "B", "C"] });
  near(m.weightedF1, 1 / 2, "weighted F1");
  near(m.macroF1, 2 / 9, "macro F1");
  near(m.microF1, 4 / 9, "micro F1");
  const [a, b, c] = m.perLabel;
  assert.deepEqual([a.tp, a.fp, a.fn, a.tn, a.support], [2, 1, 1, 2, 3]);
  near(a.precision, 2 / 3, "A precision");
  near(a.recall, 2 / 3, "A recall");
  near(a.f1, 2 / 3, "A f1");
  near(a.auroc, 8 / 9, "A auroc");
  assert.deepEqual([b.tp, b.fp, b.fn, b.tn, b.support], [0, 2, 1, 3, 1]);
  assert.deepEqual([b.precision, b.recall, b.f1], [0, 0, 0]);
  near(b.auroc, 2 / 5, "B auroc (ties averaged)");
  assert.deepEqual([c.support, c.f1, c.auroc], [0, 0, null]);
  near(m.macroAuroc, (8 / 9 + 2 / 5) / 2, "macro AUROC over defined labels");
  assert.equal(m.allSupportsZero, false);
  assert.equal(m.n, 6);
});

Deno.test("metrics: masked entries are excluded everywhere", () => {
  // Mask r1 of A (a false negative): A becomes tp 2, fp 1, fn 0 → P 2/3, R 1, F1 4/5, support 2;
  // AUROC pos {.9,.8} vs neg {.6,.1,.3} = 1. Weighted = (2·4/5 + 1·0)/3 = 8/15.
  // Micro: TP 2, FP 3, FN 1 → 4/8 = 1/2. Masking a value must equal deleting it, so it must not
  // matter what target or probability sits under the mask.
  for (const junk of [0, 1]) {
    const mask = Y.map(() => 1);
    mask[1 * 3 + 0] = 0;
    const y = [...Y], p = [...P];
    y[3] = junk;
    p[3] = junk ? 0.99 : 0.01;
    const m = computeMetrics({ probs: p, targets: y, mask, numLabels: 3 });
    const a = m.perLabel[0];
    assert.deepEqual([a.tp, a.fp, a.fn, a.tn, a.support, a.masked], [2, 1, 0, 2, 2, 1]);
    near(a.f1, 4 / 5, "A f1 masked");
    near(a.auroc, 1, "A auroc masked");
    near(m.weightedF1, 8 / 15, "weighted masked");
    near(m.microF1, 1 / 2, "micro masked");
  }
});

Deno.test("metrics: all supports zero → weighted F1 0 (sklearn zero_division) and flagged", () => {
  // 2 records × 2 labels, all negative; one false positive.
  const m = computeMetrics({ probs: [0.9, 0.1, 0.2, 0.3], targets: [0, 0, 0, 0], numLabels: 2 });
  assert.equal(m.weightedF1, 0);
  assert.equal(m.allSupportsZero, true);
  assert.equal(m.microF1, 0);
  assert.equal(m.macroAuroc, null);
  // Perfect predictions: F1 1 per label, all three averages 1.
  const p = computeMetrics({ probs: [0.9, 0.1, 0.2, 0.7], targets: [1, 0, 0, 1], numLabels: 2 });
  assert.deepEqual([p.weightedF1, p.macroF1, p.microF1], [1, 1, 1]);
  // Threshold is inclusive: p = t is positive.
  const t = computeMetrics({ probs: [0.3], targets: [1], numLabels: 1, threshold: 0.3 });
  assert.equal(t.perLabel[0].tp, 1);
  assert.throws(
    () => computeMetrics({ probs: [1, 2], targets: [1, 0, 1], numLabels: 2 }),
    /multiple/,
  );
});

Deno.test("auroc: known values, ties, one class → null, and brute-force pair counting", () => {
  near(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75, "sklearn roc_auc_score doc example");
  near(auroc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]), 0.5, "all tied");
  near(auroc([1, 2, 3], [0, 0, 1]), 1, "perfect");
  near(auroc([3, 2, 1], [0, 0, 1]), 0, "reversed");
  assert.equal(auroc([0.1, 0.2], [1, 1]), null);
  assert.equal(auroc([], []), null);
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [2, 7, 33, 130]) {
    // Scores on a coarse grid so ties are common.
    const s = Array.from({ length: n }, () => Math.round(r() * 8) / 8);
    const y = Array.from({ length: n }, (_, i) => (i === 0 ? 1 : i === 1 ? 0 : r() < 0.3 ? 1 : 0));
    let wins = 0, pairs = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (y[i] === 1 && y[j] === 0) {
          pairs++;
          wins += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
      }
    }
    assertClose(Math.abs(auroc(s, y)! - wins / pairs), 1e-12, `auroc n=${n}`, seed);
  }
});

Deno.test("prior baseline: training majority per label, rare labels all-negative", () => {
  // Train: label0 positive 3/4 (majority 1), label1 1/4 (rare → 0), label2 masked except 1 positive.
  const t = [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0];
  const mask = [1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0];
  const b = priorBaseline(t, mask, 3);
  assert.deepEqual(b.prevalence, [3 / 4, 1 / 4, 1]);
  assert.deepEqual(b.majority, [1, 0, 1]);
  const { probs, preds } = priorPredictions(b, 2);
  assert.deepEqual([...preds], [1, 0, 1, 1, 0, 1]);
  assert.equal(probs[1], Math.fround(0.25));
  // On a test set, explicit preds are used (not prevalence vs threshold): rare label → F1 0.
  const m = computeMetrics({
    probs,
    preds,
    targets: [1, 1, 0, 0, 1, 0],
    numLabels: 3,
    threshold: 0.2,
  });
  assert.deepEqual(m.perLabel.map((l) => l.f1), [2 / 3, 0, 0]);
  // Constant scores: AUROC ½ where both classes occur (label 0), undefined elsewhere.
  assert.deepEqual(m.perLabel.map((l) => l.auroc), [0.5, null, null]);
});

Deno.test("report: predictions.csv round-trips through the CSV parser; metrics.json is atomic JSON", async () => {
  const csv = predictionsCsv(
    ["r,1", 'q"2'],
    ["A", "No Finding"],
    [0.123456789, 0.5, 1e-9, 0.49],
    0.5,
  );
  const t = parseCsv(csv, "p.csv");
  assert.deepEqual(t.header, ["id", "A.prob", "A.pred", "No Finding.prob", "No Finding.pred"]);
  assert.deepEqual(t.rows.map((r) => r.cells), [
    ["r,1", "0.123457", "0", "0.5", "1"],
    ['q"2', "1e-9", "0", "0.49", "0"],
  ]);
  const dir = await Deno.makeTempDir();
  try {
    await writePredictionsCsv(`${dir}/eval/predictions.csv`, ["a"], ["A"], [0.7], 0.5);
    assert.equal(
      await Deno.readTextFile(`${dir}/eval/predictions.csv`),
      "id,A.prob,A.pred\na,0.7,1\n",
    );
    await writeMetricsJson(`${dir}/eval/metrics.json`, { f1: 0.5, auroc: null, bad: NaN });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/eval/metrics.json`)), {
      f1: 0.5,
      auroc: null,
      bad: null,
    });
    const left = [...Deno.readDirSync(`${dir}/eval`)].map((e) => e.name).sort();
    assert.deepEqual(left, ["metrics.json", "predictions.csv"], "no temp files left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
