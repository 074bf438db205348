/**
 * Train stage: checkpoint → GPU encoder → steps → adapter (PEFT) / full model, with validation and
 * an atomic checkpoint every epoch and `--resume` from the last one.
 *
 * Non-private modes (`full`, `lora`): seeded shuffled batches, summed gradients over the physical
 * micro-batches, divided by the realised batch size, AdamW.
 *
 * `dp-lora`: each step draws a Poisson sample (CSPRNG, probability q = batch_size / N per unit),
 * splits it into micro-batches, clips every unit's gradient to C and adds N(0, σ²C²) once on the
 * GPU (DpStep), divides by the EXPECTED batch size qN, then AdamW. The step is appended to the
 * fsynced privacy ledger BEFORE it is computed, and the budget guard refuses a step that would take
 * ε past the target — so a crash can lose an update but never spent budget.
 */
import type { StageContext } from "./context.ts";
import type { PipelineConfig } from "../config.ts";
import { resolveDelta } from "../config.ts";
import { readManifest, readSplit, type SplitData } from "../data/cache.ts";
import { computeMetrics } from "../eval/metrics.ts";
import { writeJsonAtomic } from "../fs.ts";
import { adamwStep, sgdStep } from "../gpu/ops/adamw.ts";
import { axpy } from "../gpu/ops/elementwise.ts";
import type { Runtime } from "../gpu/runtime.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { GpuEncoder } from "../model/encoder.ts";
import { view } from "../model/enc_kernels.ts";
import { namedTensors } from "../model/params.ts";
import { mergeLora, savePeftAdapter } from "../model/peft.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import type { EncoderConfig, EncoderWeights, HostTensor, LoraConfig } from "../model/types.ts";
import { encoderSource } from "../training/dp_source.ts";
import { calibrateNoise, computeEpsilon } from "../privacy/accountant/mod.ts";
import { type ClipSpec, DpStep, type TrainableSpec } from "../privacy/dp_step.ts";
import { PrivacyBudgetError } from "../privacy/errors.ts";
import { BudgetGuard, Ledger } from "../privacy/ledger.ts";
import { PoissonSampler, splitMicroBatches, UnitTable } from "../privacy/sampler.ts";
import {
  byLength,
  chunks,
  encoderBatch,
  epochOrder,
  labeledBatch,
  sortByLength,
} from "../training/batches.ts";
import { learningRate } from "../training/schedule.ts";
import {
  readTrainState,
  readTrainTensors,
  type TrainState,
  writeTrainState,
} from "../training/state.ts";

export interface TrainSummary {
  mode: "full" | "lora" | "dp-lora";
  steps: number;
  epochs: number;
  trainRecords: number;
  seconds: number;
  finalValidation?: { loss: number; weightedF1: number };
  privacy?: {
    sampleRate: number;
    noiseMultiplier: number;
    maxGradNorm: number;
    delta: number;
    unit: "record" | "patient";
    units: number;
    plannedSteps: number;
    epsilonPlanned: number;
    accountant: string;
    stoppedByBudget: boolean;
  };
}

interface OptState {
  param: GpuTensor;
  m: GpuTensor;
  v: GpuTensor;
  acc: GpuTensor;
  name: string;
}

/** Hash of the settings a resumed run must share with the interrupted one. */
async function trainConfigHash(config: PipelineConfig, dataKey: string): Promise<string> {
  const text = JSON.stringify({
    model: config.model,
    train: config.train,
    privacy: config.privacy ?? null,
    data: dataKey,
  });
  const h = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Validation loss (mean per-sample) and weighted F1 at the configured threshold. */
export async function validate(
  enc: GpuEncoder,
  split: SplitData,
  batch: number,
  threshold: number,
  multiClass: boolean,
): Promise<{ loss: number; weightedF1: number; probs: Float32Array }> {
  const L = split.numLabels;
  const probs = new Float32Array(split.n * L);
  let loss = 0;
  const all = Uint32Array.from({ length: split.n }, (_, i) => i);
  for (const recs of chunks(all, batch)) {
    const p = await enc.predict(encoderBatch(split, recs));
    probs.set(p, recs[0] * L);
    for (let k = 0; k < recs.length; k++) {
      const r = recs[k];
      let s = 0, n = 0;
      for (let j = 0; j < L; j++) {
        if (split.mask[r * L + j] === 0) continue;
        const y = split.labels[r * L + j], pr = Math.min(1 - 1e-7, Math.max(1e-7, p[k * L + j]));
        s += -(y * Math.log(pr) + (1 - y) * Math.log(1 - pr));
        n++;
      }
      loss += n ? s / n : 0;
    }
  }
  const m = computeMetrics({
    probs,
    targets: split.labels,
    mask: split.mask,
    numLabels: L,
    threshold,
    labelNames: split.labelNames,
  });
  void multiClass;
  return { loss: split.n ? loss / split.n : NaN, weightedF1: m.weightedF1, probs };
}

export async function trainStage(ctx: StageContext): Promise<TrainSummary> {
  const { config, runDir } = ctx;
  const t0 = performance.now();
  const manifest = await readManifest(runDir);
  if (!manifest) throw new Error(`${runDir}/data/manifest.json missing: run the data stage first`);
  const train = await readSplit(runDir, "train");
  const val = await readSplit(runDir, "validation");
  if (train.n === 0) throw new Error("the training split is empty");
  const L = train.numLabels;
  const multiClass = config.model.head === "multi-class";
  const mode = config.model.mode;
  const dp = mode === "dp-lora";
  const tc = config.train;

  const ckpt = await loadCheckpoint(config.model.checkpoint);
  const ec: EncoderConfig = ckpt.config;
  const rt = await ctx.gpu();
  const lora: LoraConfig | undefined = mode === "full" ? undefined : { ...config.model.lora };
  const maxLen = Math.min(manifest.maxLength, ec.maxPositions - Math.max(0, ec.positionOffset));
  const enc = await GpuEncoder.create(rt, ec, ckpt.weights, {
    mode: mode === "full" ? "full" : "lora",
    lora,
    trainLayerNorm: config.model.train_layernorm,
    pooling: config.model.pooling,
    head: { kind: config.model.head, numLabels: L },
    seed: tc.seed,
    maxBatch: tc.physical_batch,
    maxLen,
    // Non-private modes need only the summed gradient: skip the per-sample contractions.
    perSample: dp,
  });
  const params = enc.parameters();
  const configHash = await trainConfigHash(config, manifest.key);

  // ---------------------------------------------------------------- schedule
  let units: UnitTable | null = null;
  let q = 0, sigma = 0, delta = 0, plannedSteps: number, epsilonPlanned = 0;
  const privacy = config.privacy;
  if (dp) {
    if (!privacy) throw new Error("model.mode dp-lora needs a privacy section");
    units = privacy.unit === "patient"
      ? UnitTable.patients(train.unitIds)
      : UnitTable.records(train.n);
    const N = units.numUnits;
    q = Math.min(1, tc.batch_size / N);
    plannedSteps = tc.max_steps ?? Math.max(1, Math.ceil(tc.epochs / q));
    const d = resolveDelta(privacy, N);
    delta = d.delta;
    for (const w of d.warnings) ctx.progress({ stage: "train", message: `warning: ${w}` });
    if (privacy.noise_multiplier !== undefined) {
      sigma = privacy.noise_multiplier;
      epsilonPlanned = computeEpsilon(
        { sampleRate: q, noiseMultiplier: sigma, steps: plannedSteps, delta },
        privacy.accountant,
      );
    } else {
      const cal = calibrateNoise({
        targetEpsilon: privacy.target_epsilon!,
        sampleRate: q,
        steps: plannedSteps,
        delta,
        accountant: privacy.accountant,
      });
      sigma = cal.noiseMultiplier;
      epsilonPlanned = cal.epsilon;
    }
    ctx.progress({
      stage: "train",
      message: `DP-SGD: q = ${q.toPrecision(4)} (${N} ${privacy.unit} units), σ = ${
        sigma.toPrecision(4)
      }, C = ${privacy.max_grad_norm}, ${plannedSteps} steps, δ = ${delta.toExponential(2)} → ε ≤ ${
        epsilonPlanned.toFixed(3)
      } (${privacy.accountant})`,
    });
  } else {
    plannedSteps = tc.max_steps ?? tc.epochs * Math.ceil(train.n / tc.batch_size);
  }
  const stepsPerEpoch = dp ? Math.max(1, Math.round(1 / q)) : Math.ceil(train.n / tc.batch_size);

  // ---------------------------------------------------------------- optimizer + resume
  const opt: OptState[] = params.map((p) => ({
    name: p.name,
    param: p.tensor,
    m: rt.zeros(p.shape, `m:${p.name}`),
    v: rt.zeros(p.shape, `v:${p.name}`),
    acc: rt.zeros(p.shape, `acc:${p.name}`),
  }));
  // Weight average (train.ema): starts at the initial weights; `swap` puts it in place of the
  // iterate for validation and export and back again.
  const ema = tc.ema > 0
    ? opt.map((o) => {
      const e = rt.empty([...o.param.shape], `ema:${o.name}`);
      rt.copy(o.param, e);
      return e;
    })
    : null;
  const emaScratch = ema ? opt.map((o) => rt.empty([...o.param.shape], `ema-tmp:${o.name}`)) : [];
  const swapEma = () => {
    if (!ema) return;
    opt.forEach((o, i) => {
      rt.copy(o.param, emaScratch[i]);
      rt.copy(ema[i], o.param);
      rt.copy(emaScratch[i], ema[i]);
    });
  };
  const updateEma = (t: number) => {
    if (!ema) return;
    const beta = Math.min(tc.ema, (1 + t) / (10 + t));
    // e ← e + (1 − β)(θ − e); axpy may not read and write one buffer, so θ − e goes via scratch.
    opt.forEach((o, i) => {
      rt.copy(o.param, emaScratch[i]);
      axpy(rt, -1, ema[i], emaScratch[i]);
      axpy(rt, 1 - beta, emaScratch[i], ema[i]);
    });
  };
  let step = 0;
  let stoppedByBudget = false;
  const prior = await readTrainState(runDir);
  if (ctx.resume && prior) {
    if (prior.configHash !== configHash) {
      throw new Error(
        `${runDir}/train/checkpoint: saved with other model/train/privacy/data settings; ` +
          "resume with the same config, or train into a fresh output.dir",
      );
    }
    const file = await readTrainTensors(runDir, prior);
    for (const o of opt) {
      rt.write(o.param, file.tensor(o.name).data);
      rt.write(o.m, file.tensor(`m:${o.name}`).data);
      rt.write(o.v, file.tensor(`v:${o.name}`).data);
    }
    ema?.forEach((e, i) => rt.write(e, file.tensor(`ema:${opt[i].name}`).data));
    step = prior.step;
    if (dp && prior.noiseMultiplier !== undefined) sigma = prior.noiseMultiplier;
    stoppedByBudget = !!prior.stoppedByBudget;
    ctx.progress({ stage: "train", message: `resuming at step ${step}/${plannedSteps}` });
  }

  // ---------------------------------------------------------------- privacy ledger
  let ledger: Ledger | null = null;
  let dpStep: DpStep | null = null;
  let sampler: PoissonSampler | null = null;
  let guard: BudgetGuard | null = null;
  const ledgerPath = `${runDir}/privacy/ledger.jsonl`;
  if (dp && privacy && units) {
    if (!ctx.resume) await archiveLedger(ledgerPath, ctx);
    const current = {
      q,
      sigma,
      C: privacy.max_grad_norm,
      unit: privacy.unit,
      epoch: 0,
      rng: "csprng" as const,
    };
    ledger = await Ledger.open(ledgerPath, { current });
    const target = privacy.target_epsilon ?? epsilonPlanned;
    const acc = privacy.accountant;
    guard = new BudgetGuard(
      (segs) =>
        computeEpsilon(
          {
            segments: segs.map((s) => ({
              sampleRate: s.q,
              noiseMultiplier: s.sigma,
              steps: s.steps,
            })),
            delta,
          },
          acc,
        ),
      target,
    );
    sampler = new PoissonSampler(units, q);
    const clip = clippingPlan(enc.trainableSpecs(), privacy.clipping, privacy.max_grad_norm);
    dpStep = new DpStep(rt, {
      params: clip.params,
      clipping: clip.spec,
      sigma,
      expectedUnits: sampler.expectedUnits,
      maxRecords: tc.physical_batch,
    });
  }

  // ---------------------------------------------------------------- loop
  const logPath = `${runDir}/train/log.jsonl`;
  await Deno.mkdir(`${runDir}/train`, { recursive: true });
  if (!ctx.resume) await Deno.writeTextFile(logPath, "");
  const log = await Deno.open(logPath, { append: true, create: true });
  const enc8 = new TextEncoder();
  const writeLog = (o: Record<string, unknown>) =>
    log.writeSync(enc8.encode(JSON.stringify(o) + "\n"));
  const schedule = {
    lr: tc.lr,
    schedule: tc.schedule,
    warmupRatio: tc.warmup_ratio,
    totalSteps: plannedSteps,
  };
  // Per-sample training losses of every micro-batch are summed on the GPU (one add each) and read
  // every 10 steps: a mean over all records, not the last (length-sorted: longest) micro-batch.
  const lossAcc = rt.zeros([tc.physical_batch], "train.loss-acc");
  let lossRows = 0;
  const addLoss = (loss: GpuTensor, n: number) => {
    axpy(rt, 1, view(loss, [n], "train.loss"), view(lossAcc, [n], "train.loss-acc"));
    lossRows += n;
  };
  let lossSum = 0, lossCount = 0;
  let samplesSeen = 0;
  const loopStart = performance.now();
  const startStep = step;
  let finalValidation: TrainSummary["finalValidation"];
  const epsCache = { steps: -Infinity, eps: 0 };

  // head_lr scales the head's share of the same schedule (warm-up and decay stay in step).
  const lrScale = params.map((p) =>
    p.kind === "head" && tc.head_lr !== undefined ? tc.head_lr / tc.lr : 1
  );
  const optimizerStep = (grads: GpuTensor[] | null, gradScale: number) => {
    const base = learningRate(schedule, step);
    opt.forEach((o, i) => {
      const lr = base * lrScale[i];
      const grad = grads ? grads[i] : o.acc;
      if (tc.optimizer === "adamw") {
        adamwStep(rt, { param: o.param, grad, m: o.m, v: o.v }, {
          lr,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: tc.weight_decay,
          step: step + 1,
          gradScale,
        });
      } else {
        sgdStep(
          rt,
          o.param,
          grad,
          { lr, weightDecay: tc.weight_decay, gradScale, momentum: 0.9 },
          o.m,
        );
      }
    });
    updateEma(step + 1);
    rt.flush();
  };

  const readLoss = async () => {
    if (lossRows === 0) return;
    lossSum += (await rt.read(lossAcc)).reduce((a, x) => a + x, 0);
    lossCount += lossRows;
    rt.clear(lossAcc);
    lossRows = 0;
  };

  const checkpoint = async (epoch: number) => {
    // One read-back for all state: parameter, moments and (train.ema) the average per tensor.
    const kinds = ["", "m:", "v:", ...(ema ? ["ema:"] : [])];
    const host = await rt.readMany(
      opt.flatMap((o, i) => [o.param, o.m, o.v, ...(ema ? [ema[i]] : [])]),
    );
    const tensors = new Map<string, HostTensor>();
    opt.forEach((o, i) => {
      const shape = [...o.param.shape];
      kinds.forEach((k, j) =>
        tensors.set(`${k}${o.name}`, { data: host[kinds.length * i + j] as Float32Array, shape })
      );
    });
    const state: Omit<TrainState, "tensorsFile"> = {
      step,
      epoch,
      totalSteps: plannedSteps,
      mode,
      configHash,
      stoppedByBudget,
      ...(dp ? { sampleRate: q, noiseMultiplier: sigma } : {}),
    };
    await writeTrainState(runDir, state, tensors);
  };

  const endOfEpoch = async (epoch: number) => {
    await readLoss();
    swapEma();
    const v = val.n
      ? await validate(enc, val, tc.physical_batch, config.evaluate.threshold, multiClass)
      : undefined;
    swapEma();
    const trainLoss = lossCount ? lossSum / lossCount : NaN;
    lossSum = 0;
    lossCount = 0;
    const spent = dp && ledger ? ledgerEpsilon(ledger, delta, privacy!.accountant) : undefined;
    writeLog({
      kind: "epoch",
      epoch,
      step,
      train_loss: trainLoss,
      val_loss: v?.loss ?? null,
      val_weighted_f1: v?.weightedF1 ?? null,
      epsilon: spent ?? null,
      time: new Date().toISOString(),
    });
    if (v) finalValidation = { loss: v.loss, weightedF1: v.weightedF1 };
    ctx.progress({
      stage: "train",
      message: `epoch ${epoch}: train loss ${trainLoss.toFixed(4)}` +
        (v
          ? `, validation loss ${v.loss.toFixed(4)}, weighted F1 ${v.weightedF1.toFixed(4)}`
          : "") +
        (spent !== undefined ? `, ε spent ${spent.toFixed(3)}` : ""),
    });
    await checkpoint(epoch);
  };

  try {
    if (!dp) {
      // Non-private: epochs of seeded shuffled batches; resume restarts at an epoch boundary.
      const startEpoch = Math.floor(step / stepsPerEpoch);
      step = startEpoch * stepsPerEpoch;
      for (let epoch = startEpoch; epoch < tc.epochs && step < plannedSteps; epoch++) {
        const order = epochOrder(train.n, tc.seed, epoch);
        for (const batch of chunks(order, tc.batch_size)) {
          if (step >= plannedSteps) break;
          ctx.signal?.throwIfAborted();
          for (const o of opt) rt.clear(o.acc);
          for (const mb of chunks(sortByLength(batch, train), tc.physical_batch)) {
            addLoss(enc.trainStep(labeledBatch(train, mb, multiClass)), mb.length);
            params.forEach((p, i) => axpy(rt, 1, p.grad, opt[i].acc));
          }
          optimizerStep(null, 1 / batch.length);
          samplesSeen += batch.length;
          step++;
          if (step % 10 === 0 || step === plannedSteps) await readLoss();
          reportStep();
        }
        await endOfEpoch(epoch + 1);
      }
    } else {
      const ds = dpStep!, smp = sampler!, led = ledger!, g = guard!;
      const planned = { q, sigma };
      while (step < plannedSteps) {
        ctx.signal?.throwIfAborted();
        // Budget first, then the durable ledger line, then the computation.
        const history = led.segments();
        const onPlan = history.length === 0 ||
          (history.length === 1 && history[0].q === q && history[0].sigma === sigma &&
            history[0].steps < plannedSteps && epsilonPlanned <= g.target);
        // On the planned schedule ε(k + 1) ≤ ε(planned) ≤ target (ε grows with steps), so the
        // accountant need not run every step; any other history is checked exactly.
        if (!onPlan) g.check(history, planned);
        const epoch = Math.floor(step / stepsPerEpoch);
        led.append({
          q,
          sigma,
          C: privacy!.max_grad_norm,
          unit: privacy!.unit,
          epoch,
          rng: "csprng",
        });
        const batch = byLength(smp.sample(), train);
        const micro = splitMicroBatches(batch, tc.physical_batch);
        const source = encoderSource(
          enc,
          step,
          (mb) => labeledBatch(train, mb.records, multiClass),
          addLoss,
        );
        const grads = await ds.run(step, batch, micro, source);
        optimizerStep(grads, 1);
        // Reports actually processed (a patient unit holds several): the same "samples" as the
        // non-private modes count. Local progress only; nothing released depends on it.
        samplesSeen += batch.records.length;
        step++;
        if (step % 10 === 0 || step === plannedSteps) await readLoss();
        reportStep();
        // Epoch k ends at step round(k · planned / epochs): expected passes over the data.
        const k = Math.round(step * tc.epochs / plannedSteps);
        if (step === plannedSteps || step === Math.round(k * plannedSteps / tc.epochs)) {
          await endOfEpoch(k);
        }
      }
    }
  } catch (e) {
    if (e instanceof PrivacyBudgetError) {
      // Stop before the step that would overspend; keep what was trained so far.
      stoppedByBudget = true;
      ctx.progress({ stage: "train", message: `stopped: ${e.message}` });
      await checkpoint(Math.floor(step / stepsPerEpoch));
    } else {
      throw e;
    }
  } finally {
    log.close();
    ledger?.close();
  }

  function reportStep() {
    const el = (performance.now() - loopStart) / 1000;
    const done = step - startStep;
    ctx.progress({
      stage: "train",
      step,
      totalSteps: plannedSteps,
      epoch: Math.floor(step / stepsPerEpoch),
      loss: lossCount ? lossSum / lossCount : undefined,
      samplesPerSec: el > 0 ? samplesSeen / el : undefined,
      etaSec: done > 0 ? (el / done) * (plannedSteps - step) : undefined,
      epsilon: dp && ledger
        ? progressEpsilon(epsCache, ledger, plannedSteps, delta, privacy!.accountant)
        : undefined,
    });
  }

  // ---------------------------------------------------------------- export
  const outDir = `${runDir}/train`;
  swapEma(); // the average is what gets exported (the iterate is not needed any more)
  if (mode === "full") {
    const host = await rt.readMany(opt.map((o) => o.param));
    const w: EncoderWeights = structuredClone(ckpt.weights);
    const named = namedTensors(ec, w);
    let head: { w: HostTensor; b: HostTensor } | undefined;
    opt.forEach((o, i) => {
      const data = host[i] as Float32Array;
      if (o.name === "head.w" || o.name === "head.b") {
        head = head ?? { w: { data, shape: [] }, b: { data, shape: [] } };
        head[o.name === "head.w" ? "w" : "b"] = { data, shape: [...o.param.shape] };
      } else named.get(o.name)?.data.set(data);
    });
    await saveCheckpoint(`${outDir}/model`, ec, w, config.model.checkpoint, {
      head,
      labels: train.labelNames,
      multiLabel: !multiClass,
    });
  } else {
    const { lora: lw, head } = await enc.readAdapter();
    await savePeftAdapter(`${outDir}/adapter`, ec, lora!, lw, {
      head,
      baseModelNameOrPath: config.model.checkpoint,
    });
    if (config.output.merged) {
      await saveCheckpoint(
        `${outDir}/merged`,
        ec,
        mergeLora(ckpt.weights, lw, lora!, ec),
        config.model.checkpoint,
        {
          head,
          labels: train.labelNames,
          multiLabel: !multiClass,
        },
      );
    }
  }

  const summary: TrainSummary = {
    mode,
    steps: step,
    epochs: step / stepsPerEpoch,
    trainRecords: train.n,
    seconds: (performance.now() - t0) / 1000,
    finalValidation,
    ...(dp
      ? {
        privacy: {
          sampleRate: q,
          noiseMultiplier: sigma,
          maxGradNorm: privacy!.max_grad_norm,
          delta,
          unit: privacy!.unit,
          units: units!.numUnits,
          plannedSteps,
          epsilonPlanned,
          accountant: privacy!.accountant,
          stoppedByBudget,
        },
      }
      : {}),
  };
  await writeJsonAtomic(`${outDir}/summary.json`, summary);
  dpStep?.dispose();
  return summary;
}

/**
 * Flat clipping: one bound C over all trainable tensors. Per-layer: tensors grouped by encoder
 * layer (weight set), embeddings, and head/pooler; each group gets C/√K so that the total
 * sensitivity √(Σ C_k²) is exactly C and the noise calibration is unchanged.
 */
export function clippingPlan(
  specs: TrainableSpec[],
  mode: "flat" | "per-layer",
  C: number,
): { params: TrainableSpec[]; spec: ClipSpec; groups: string[] } {
  if (mode === "flat") {
    return {
      params: specs.map((s) => ({ ...s, group: 0 })),
      spec: { kind: "flat", C },
      groups: ["all"],
    };
  }
  const groupOf = (name: string) => {
    const m = /^(?:lora\.|L)(\d+)\./.exec(name);
    if (m) return `layer ${m[1]}`;
    return name.startsWith("emb.") ? "embeddings" : "head";
  };
  const groups = [...new Set(specs.map((s) => groupOf(s.name)))];
  const params = specs.map((s) => ({ ...s, group: groups.indexOf(groupOf(s.name)) }));
  const bounds = groups.map(() => C / Math.sqrt(groups.length));
  return { params, spec: { kind: "per-layer", bounds }, groups };
}

/** ε of the ledger so far (exact accountant call; used once per epoch). */
function ledgerEpsilon(ledger: Ledger, delta: number, acc: "pld" | "prv" | "rdp"): number {
  const segs = ledger.segments();
  if (!segs.length) return 0;
  return computeEpsilon({
    segments: segs.map((s) => ({ sampleRate: s.q, noiseMultiplier: s.sigma, steps: s.steps })),
    delta,
  }, acc);
}

/**
 * ε for the progress line: the accountant (~50 ms) runs again only after 2% more of the planned
 * steps, so the display never slows training; epoch lines and the account stage are exact.
 */
function progressEpsilon(
  cache: { steps: number; eps: number },
  ledger: Ledger,
  planned: number,
  delta: number,
  acc: "pld" | "prv" | "rdp",
): number {
  const n = ledger.entries.length;
  if (n - cache.steps >= Math.max(1, planned / 50) || n === planned) {
    cache.steps = n;
    cache.eps = ledgerEpsilon(ledger, delta, acc);
  }
  return cache.eps;
}

/**
 * A fresh (non-resume) run into a folder that already has a ledger keeps the old one under a dated
 * name: its budget was spent on the same data, and if that run's outputs were released it
 * composes with this one.
 */
async function archiveLedger(path: string, ctx: StageContext): Promise<void> {
  try {
    await Deno.stat(path);
  } catch {
    return;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const to = path.replace(/\.jsonl$/, `.${stamp}.jsonl`);
  await Deno.rename(path, to);
  ctx.progress({
    stage: "train",
    message: `warning: an earlier privacy ledger was moved to ${to}; if that run's model was ` +
      "released, its ε adds to this run's",
  });
}

export type { Runtime };
