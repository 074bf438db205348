/**
 * Masked-LM pretraining of a small BERT from scratch on a public text corpus (the demo base
 * model): HF init, BERT masking (pipeline/model/mlm.ts), AdamW (β 0.9/0.999, ε 1e-6, decoupled
 * weight decay except on biases and LayerNorm, linear warm-up then linear decay to 0), loss =
 * mean CE over the predicted tokens of a batch. Non-private: the corpus must be public.
 * With `init` it continues from an existing checkpoint (domain-adaptive pretraining of a public
 * model on public in-domain text before DP fine-tuning on the private reports).
 *
 * Batches: each epoch shuffles the reports (seeded), sorts chunks of 50 batches by length and
 * shuffles the batches, so padding stays small without a fixed order. One readback per step
 * (the loss), which also bounds the queue.
 * Artifacts: `<checkpoints>/epoch-N/` after each epoch (written to a temp folder, then renamed),
 * `<checkpoints>/log.jsonl` live, and at the end `<output>/` (HF layout, BertForMaskedLM names,
 * tokenizer files, `pretrain_log.jsonl`, `pretrain_loss.svg`), also built aside and renamed into
 * place.
 */
import { Runtime } from "../gpu/runtime.ts";
import { adamwStep } from "../gpu/ops/adamw.ts";
import { GpuEncoder } from "./encoder.ts";
import { ENC_SHADERS } from "./enc_kernels.ts";
import type { EncoderConfig, EncoderWeights, Tokenizer } from "./types.ts";
import { initEncoderWeights } from "./init.ts";
import { maskBatch, type MaskingSpec, maskingSpec, maxPredictionsPerSeq } from "./mlm.ts";
import {
  CheckpointError,
  checkVocabFits,
  loadEncoder,
  mlmHeadFromTensors,
  type MlmHeadWeights,
  saveCheckpoint,
} from "./checkpoint.ts";
import { loadTokenizer } from "./tokenizer/load.ts";
import { seededRng } from "./lora.ts";
import { DataError } from "../errors.ts";
import { lineChart } from "../report/svg.ts";
import type { PretrainConfig } from "./pretrain_config.ts";

export interface PretrainLogLine {
  step: number;
  epoch: number;
  /** Mean masked-token CE over the steps since the last line. */
  loss?: number;
  /** Mean masked-token CE on the held-out reports (fixed masks). */
  evalLoss?: number;
  lr?: number;
  tokensPerSec?: number;
  elapsedSec: number;
}

export interface PretrainResult {
  steps: number;
  seconds: number;
  log: PretrainLogLine[];
  output: string;
  /** Final held-out loss (undefined without a holdout). */
  evalLoss?: number;
}

export interface PretrainHooks {
  /** Runtime to use (tests share one); default: a new one with the encoder + AdamW shaders. */
  rt?: Runtime;
  /** Progress lines (default: stderr). */
  print?: (line: string) => void;
}

/** Reports of a corpus: paragraphs separated by blank lines. */
export async function readCorpus(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new DataError(path, "unreadable", `cannot read corpus (${(e as Error).message})`);
  }
  const reports = text.split(/\r?\n[ \t]*\r?\n/).map((s) => s.trim()).filter((s) => s !== "");
  if (reports.length === 0) throw new DataError(path, "empty-text", "the corpus has no text");
  return reports;
}

export function bertConfig(p: PretrainConfig, tok: Tokenizer): EncoderConfig {
  const m = p.model;
  if (!m) {
    throw new RangeError("bertConfig: the recipe has no model section (it continues from init)");
  }
  return {
    modelType: "bert",
    vocabSize: tok.vocabSize,
    embeddingSize: m.hidden,
    hiddenSize: m.hidden,
    numLayers: m.layers,
    numHeads: m.heads,
    intermediateSize: m.intermediate,
    maxPositions: m.maxPositions,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    hiddenAct: m.act,
    numHiddenGroups: m.layers,
    padTokenId: tok.padId,
    positionOffset: 0,
  };
}

function shuffle<T>(a: T[], r: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** One epoch's batches (indices into `lens`): shuffled, length-sorted in chunks, shuffled. */
export function epochBatches(lens: readonly number[], batch: number, seed: number): number[][] {
  const r = seededRng(seed);
  const order = shuffle(lens.map((_, i) => i), r);
  const out: number[][] = [];
  const chunk = batch * 50;
  for (let c = 0; c < order.length; c += chunk) {
    const part = order.slice(c, c + chunk).sort((a, b) => lens[a] - lens[b]);
    for (let i = 0; i < part.length; i += batch) out.push(part.slice(i, i + batch));
  }
  return shuffle(out, r);
}

/** Seeded split: `holdout` sequences for the evaluation loss, the rest for training. */
export function splitHoldout<T>(seqs: readonly T[], holdout: number, seed: number) {
  const order = shuffle(seqs.map((_, i) => i), seededRng(seed ^ 0x51ed));
  const n = Math.min(holdout, seqs.length - 1);
  return {
    hold: order.slice(0, n).map((i) => seqs[i]),
    train: order.slice(n).map((i) => seqs[i]),
  };
}

/** Mean masked-token CE over `hold` with fixed masks (the same for every call with this seed). */
export async function evaluateMlm(
  rt: Runtime,
  enc: GpuEncoder,
  hold: readonly (readonly number[])[],
  spec: MaskingSpec,
  batch: number,
  seed: number,
): Promise<number | undefined> {
  let sum = 0, n = 0;
  for (let i = 0; i < hold.length; i += batch) {
    const mb = maskBatch(hold.slice(i, i + batch), spec, seed ^ 0xe7a1, i);
    const { loss, count } = enc.mlmStep(mb, { backward: false });
    if (count === 0) continue;
    sum += (await rt.read(loss)).reduce((a, x) => a + x, 0);
    n += count;
  }
  return n > 0 ? sum / n : undefined;
}

/**
 * The starting point: the `init` checkpoint (architecture, encoder weights, MLM head if it has
 * one), or a fresh HF-initialised BERT of the recipe's shape.
 */
async function startingPoint(
  p: PretrainConfig,
  tok: Tokenizer,
): Promise<{ c: EncoderConfig; weights: EncoderWeights; head?: MlmHeadWeights }> {
  if (p.init === undefined) {
    const c = bertConfig(p, tok);
    return { c, weights: initEncoderWeights(c, p.train.seed) };
  }
  const loaded = await loadEncoder(p.init, { keepHeads: true });
  const c = loaded.config;
  checkVocabFits(p.init, tok, c);
  const room = c.maxPositions - c.positionOffset;
  if (p.train.maxLen > room) {
    throw new CheckpointError(
      `train.max_len ${p.train.maxLen} exceeds the ${room} positions of ${p.init}/config.json`,
    );
  }
  return { c, weights: loaded.weights, head: mlmHeadFromTensors(c, loaded.extras) };
}

/** The MLM loss curve of a pretraining log (training window means and held-out loss) as SVG. */
export function pretrainLossChart(log: readonly PretrainLogLine[]): string {
  return lineChart([
    {
      name: "train (window mean)",
      points: log.filter((l) => l.loss !== undefined).map((l) => ({ x: l.step, y: l.loss! })),
    },
    {
      name: "held-out",
      points: log.filter((l) => l.evalLoss !== undefined).map((l) => ({
        x: l.step,
        y: l.evalLoss!,
      })),
    },
  ], { title: "Masked-LM pretraining", xLabel: "step", yLabel: "cross-entropy (nats)", yMin: 0 });
}

async function replaceDir(tmp: string, dir: string): Promise<void> {
  try {
    await Deno.remove(dir, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.rename(tmp, dir);
}

export async function runPretrain(p: PretrainConfig, hooks: PretrainHooks = {}) {
  const print = hooks.print ?? ((s: string) => console.error(s));
  const t0 = performance.now();
  const tok = await loadTokenizer(p.tokenizer);
  const reports = await readCorpus(p.corpus);
  const tr = p.train;
  const seqs = reports.map((t) => tok.encode(t, tr.maxLen));
  const { hold, train } = splitHoldout(seqs, tr.holdout, tr.seed);
  const lens = train.map((s) => s.length);
  const start = await startingPoint(p, tok);
  const c = start.c;
  const spec = maskingSpec(tok, tr.maskProb);
  const perBatch = Math.ceil(train.length / tr.batch);
  const total = Math.min(tr.epochs * perBatch, tr.maxSteps || Infinity);
  print(
    `[pretrain] ${reports.length} reports (${hold.length} held out), ` +
      `${(lens.reduce((a, b) => a + b, 0) / lens.length).toFixed(1)} tokens/report, ` +
      `vocab ${c.vocabSize}, L${c.numLayers} H${c.hiddenSize} A${c.numHeads} ` +
      `I${c.intermediateSize}, ${total} steps of ${tr.batch} (tokenized in ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s)` +
      (p.init === undefined ? "" : `, continuing from ${p.init}` +
        (start.head ? "" : " (no MLM head there: a new one)")),
  );
  const rt = hooks.rt ?? await Runtime.create([...ENC_SHADERS, "adamw.wgsl"]);
  if (hooks.rt) await rt.load("adamw.wgsl");
  const enc = await GpuEncoder.create(rt, c, start.weights, {
    mode: "full",
    head: { kind: "multi-label", numLabels: 1 },
    seed: tr.seed,
    maxBatch: tr.batch,
    maxLen: tr.maxLen,
    mlm: {
      maxPredictions: tr.batch * maxPredictionsPerSeq(tr.maxLen, tr.maskProb),
      weights: start.head,
    },
  });
  const state = enc.parameters().map((q) => ({
    q,
    m: rt.zeros(q.shape, `m:${q.name}`),
    v: rt.zeros(q.shape, `v:${q.name}`),
    // BERT recipe: no weight decay on biases and LayerNorm parameters
    decay: /\.w$|^emb\.(word|pos|type)$/.test(q.name),
  }));
  const log: PretrainLogLine[] = [];
  await Deno.mkdir(p.checkpoints, { recursive: true });
  const logPath = `${p.checkpoints}/log.jsonl`;
  await Deno.writeTextFile(logPath, "");
  const emit = async (l: PretrainLogLine) => {
    log.push(l);
    await Deno.writeTextFile(logPath, JSON.stringify(l) + "\n", { append: true });
  };
  const lrAt = (s: number) =>
    s <= tr.warmup ? tr.lr * s / Math.max(1, tr.warmup) : tr.lr * Math.max(
      0,
      (total - s) /
        Math.max(1, total - tr.warmup),
    );

  const evaluate = () => evaluateMlm(rt, enc, hold, spec, tr.batch, tr.seed);
  const save = async (dir: string, withLog: boolean) => {
    const tmp = `${dir}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await saveCheckpoint(tmp, c, await enc.readEncoderWeights(), p.tokenizer, {
      mlmHead: await enc.readMlmHead(),
      dtype: tr.dtype === "f16" ? "F16" : "F32",
    });
    if (withLog) {
      await Deno.copyFile(logPath, `${tmp}/pretrain_log.jsonl`);
      await Deno.writeTextFile(`${tmp}/pretrain_loss.svg`, pretrainLossChart(log));
    }
    await replaceDir(tmp, dir);
  };

  const ev0 = await evaluate();
  await emit({ step: 0, epoch: 0, evalLoss: ev0, elapsedSec: (performance.now() - t0) / 1000 });
  print(`[pretrain] step 0  eval loss ${ev0?.toFixed(4) ?? "-"}`);
  let step = 0, winLoss = 0, winCount = 0, winTokens = 0, winStart = performance.now();
  const trainStart = performance.now();
  for (let epoch = 1; epoch <= tr.epochs && step < total; epoch++) {
    for (const idx of epochBatches(lens, tr.batch, tr.seed * 1000 + epoch)) {
      if (step >= total) break;
      step++;
      const mb = maskBatch(idx.map((i) => train[i]), spec, tr.seed, step);
      const { loss, count } = enc.mlmStep(mb);
      if (count > 0) {
        const lr = lrAt(step);
        for (const s of state) {
          adamwStep(rt, { param: s.q.tensor, grad: s.q.grad, m: s.m, v: s.v }, {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weightDecay: s.decay ? tr.weightDecay : 0,
            step,
            gradScale: 1 / count,
          });
        }
        winLoss += (await rt.read(loss)).reduce((a, x) => a + x, 0);
        winCount += count;
      }
      winTokens += idx.reduce((a, i) => a + lens[i], 0);
      if (step % tr.logEvery === 0 || step === total) {
        const now = performance.now();
        const tps = winTokens / ((now - winStart) / 1000);
        const perStep = (now - trainStart) / 1000 / step;
        const line: PretrainLogLine = {
          step,
          epoch,
          loss: winLoss / Math.max(1, winCount),
          lr: lrAt(step),
          tokensPerSec: Math.round(tps),
          elapsedSec: Math.round((now - t0) / 100) / 10,
        };
        await emit(line);
        print(
          `[pretrain] step ${step}/${total}  epoch ${epoch}  loss ${line.loss!.toFixed(4)}  ` +
            `lr ${line.lr!.toExponential(2)}  ${Math.round(tps)} tokens/s  ` +
            `${perStep.toFixed(2)} s/step  ETA ${Math.round((total - step) * perStep)} s`,
        );
        winLoss = winCount = winTokens = 0;
        winStart = now;
      }
    }
    const ev = await evaluate();
    await emit({ step, epoch, evalLoss: ev, elapsedSec: (performance.now() - t0) / 1000 });
    print(`[pretrain] epoch ${epoch} done at step ${step}  eval loss ${ev?.toFixed(4) ?? "-"}`);
    await save(`${p.checkpoints}/epoch-${epoch}`, false);
  }
  await save(p.output, true);
  const seconds = (performance.now() - t0) / 1000;
  print(`[pretrain] wrote ${p.output} after ${step} steps in ${seconds.toFixed(0)} s`);
  const evalLoss = log.findLast((l) => l.evalLoss !== undefined)?.evalLoss;
  return { steps: step, seconds, log, output: p.output, evalLoss } satisfies PretrainResult;
}
