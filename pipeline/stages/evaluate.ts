/**
 * Evaluate stage: the trained adapter (or full model) on the test split → run/eval/metrics.json,
 * run/eval/predictions.csv, and the human-readable run/report.md + run/report.html. The
 * label-prior baseline (fit on the training split) is always reported beside the model.
 */
import { readManifest, readSplit } from "../data/cache.ts";
import { computeMetrics, type Metrics, priorBaseline, priorPredictions } from "../eval/metrics.ts";
import { writeMetricsJson, writePredictionsCsv } from "../eval/report.ts";
import { readJsonIfExists } from "../fs.ts";
import { writeRunReport } from "../report/run_report.ts";
import { chunks, encoderBatch } from "../training/batches.ts";
import { loadTrainedModel } from "../training/trained.ts";
import type { StageContext } from "./context.ts";
import type { PrivacyReport } from "./account.ts";
import type { TrainSummary } from "./train.ts";

export interface EvaluationResult {
  split: "test";
  model: Metrics;
  prior: Metrics;
}

export async function evaluateStage(ctx: StageContext): Promise<EvaluationResult> {
  const { config, runDir } = ctx;
  const manifest = await readManifest(runDir);
  if (!manifest) throw new Error(`${runDir}/data/manifest.json missing: run the data stage first`);
  const test = await readSplit(runDir, "test");
  const train = await readSplit(runDir, "train");
  const L = test.numLabels;
  const rt = await ctx.gpu();
  const batch = config.train.physical_batch;
  const { encoder } = await loadTrainedModel(
    rt,
    { ...config.model, maxLength: config.data.max_length },
    runDir,
    L,
    batch,
  );
  const probs = new Float32Array(test.n * L);
  const all = Uint32Array.from({ length: test.n }, (_, i) => i);
  let done = 0;
  for (const recs of chunks(all, batch)) {
    ctx.signal?.throwIfAborted();
    probs.set(await encoder.predict(encoderBatch(test, recs)), recs[0] * L);
    done += recs.length;
    ctx.progress({ stage: "evaluate", step: done, totalSteps: test.n });
  }
  const threshold = config.evaluate.threshold;
  const base = { targets: test.labels, mask: test.mask, numLabels: L, labelNames: test.labelNames };
  const model = computeMetrics({ ...base, probs, threshold });
  const pb = priorBaseline(train.labels, train.mask, L);
  const pp = priorPredictions(pb, test.n);
  const prior = computeMetrics({ ...base, probs: pp.probs, preds: pp.preds, threshold });
  const result: EvaluationResult = { split: "test", model, prior };
  await writeMetricsJson(`${runDir}/eval/metrics.json`, {
    ...result,
    mode: config.model.mode,
    threshold,
    note: "threshold fixed in the config (not tuned on private data); prior = training majority",
  });
  await writePredictionsCsv(
    `${runDir}/eval/predictions.csv`,
    test.recordIds,
    test.labelNames,
    probs,
    threshold,
  );
  const summary = await readJsonIfExists<TrainSummary>(`${runDir}/train/summary.json`);
  const privacy = await readJsonIfExists<PrivacyReport>(`${runDir}/privacy/report.json`);
  await writeRunReport(runDir, { config, manifest, summary, privacy, evaluation: result });
  ctx.progress({
    stage: "evaluate",
    message: `test weighted F1 ${model.weightedF1.toFixed(4)} (macro ${
      model.macroF1.toFixed(4)
    }, micro ${model.microF1.toFixed(4)}); label-prior baseline ${prior.weightedF1.toFixed(4)}`,
  });
  return result;
}
