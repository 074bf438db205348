/**
 * GPU encoder classifier (BERT post-LN, ALBERT shared groups + E→H projection, RoBERTa position
 * ids) with LoRA, a classification head and per-sample gradients for DP.
 *
 * Shape of a step: `forward`/`backward` only record into the runtime's single command encoder;
 * nothing waits. Weights are uploaded once; every activation lives in an arena sized for
 * maxBatch × maxLen allocated once in `create`, and a batch uses views of it (padded to its own
 * longest member, key-padding mask from the lengths).
 *
 * Backward computes only what is needed: no dW for frozen weights, and no input gradient below
 * the lowest trainable tensor (LoRA mode never reaches the embeddings unless LayerNorm training
 * includes the embedding LayerNorm).
 *
 * Per-sample route: every trainable tensor gets a materialised per-sample gradient [B, P]
 * (one batched GEMM per linear: batch = sample, contraction over the sample's rows). For LoRA
 * this is the right route: r·(in+out) floats per adapter per sample (BERT-small, r 8, q+v,
 * 4 layers: 65 k floats/sample = 8 MiB at B 32), and it needs no second backward. ALBERT's
 * shared layer accumulates all N applications into the same [B, P] buffer before any norm is
 * taken, so the norm is of the summed per-sample gradient (tested against per-application FD).
 * `perSampleGrads("norms")` offers the same rows through DpStep's book-keeping interface.
 * Full mode also materialises: correct, but B·|θ| floats, so only for small models; ghost norms
 * (⟨XXᵀ, GGᵀ⟩) for full fine-tuning of large encoders are NOT implemented yet.
 * Measured on lavapipe (2 shared vCPU, 2026-11-27; ±20%), H 64, 2 layers, T 32, B 8, 14 labels:
 *   LoRA (q+v, r 8): per-sample buffers 0.15 MiB of 5.8 MiB allocated; step 113 ms, forward 50 ms.
 *   full:            per-sample buffers 6.2 MiB of 12.3 MiB;           step 101 ms, forward 31 ms.
 * Most step time is GEMM (mm_reg ~30 ms); the per-sample GEMMs replace the dW GEMMs, so the
 * per-sample route costs no extra contraction over the non-private backward.
 *
 * Non-private route (`perSample: false`): the dW/db/dγ/embedding contractions run over all
 * rows of the batch at once straight into `grad` (one segment instead of B), and no [B, P]
 * buffer exists; `perSample` is then `grad` viewed as [1, P] and the DP hooks refuse to run.
 * Measured (timestamp sums of one step, L2 H128 I512, B16 T~96, lavapipe on a CPU shared with
 * other jobs, so ±30%): LoRA q+v r8 2.2 s → 1.6 s (the batched skinny per-sample GEMMs cost
 * more than one contraction over all rows); full 3.1 s → 3.0 s (saves the [B, P] column sums).
 *
 * Masked LM (`mlm`, full mode, non-private route): BERT's `cls.predictions` head — transform
 * dense (H→H; ALBERT H→E) + activation + LayerNorm, decoder tied to `emb.word` plus its own bias
 * [V] — on the predicted positions only (gathered rows), softmax CE per predicted token.
 * `emb.word`'s gradient is the sum of its input-embedding scatter and the decoder's dW.
 *
 * Losses: per-sample scalar (multi-label: masked BCE mean over counted labels; multi-class: CE);
 * `grad` holds the gradient of Σ_i loss_i.
 *
 * Dropout: only on the LoRA input (train mode); base-model dropout is off (eval-mode base).
 * Kernels: dense contractions on the shared GEMM, attention on the shared attention kernels,
 * LayerNorm (per-sample dγ/dβ straight from its grouped backward), activations, BCE/CE loss,
 * tanh, dropout and plain reductions on the shared ops (pipeline/gpu/ops/); only what has no
 * shared equivalent (explicit-position embedding gather, per-sample embedding scatter,
 * accumulating segmented column sums, [CLS]/MLM row gathers, MLM CE) stays in
 * pipeline/model/enc_kernels.ts + shaders/enc_misc.wgsl (reasons in that shader's header).
 * Residual adds cost no dispatch: the residual is copied into the output and the projection's
 * GEMM accumulates onto it (forward), and input gradients accumulate straight into dX (backward).
 * The arena holds backward scratch only as deep as the backward goes (none when only the head
 * trains), and LoRA-dropout scratch only when dropout > 0.
 * Classifier route: only the [CLS] rows reach the head, so the top layer runs its attention-
 * output projection, LayerNorms and FFN (forward and backward) on those B rows, not B·T; its
 * q/k/v and attention stay full (every key/value row feeds the [CLS] query). Exact: the other
 * rows' outputs have no path to the loss. (MLM needs every row and runs the full top layer.)
 * With LoRA dropout there, the mask is drawn over the B rows (a different, equally valid draw).
 * The query backward of that layer also runs on the [CLS] rows (dq is zero elsewhere) unless
 * LoRA dropout acts on the query input. Mean pooling needs every row: no pruning there.
 * Measured (radbert-mini L2 H128 A4 I512, B 32, [CLS] pooling, LoRA q+v r8; same process
 * alternating old/new steps, same GEMM; lavapipe on 2 shared vCPUs, medians of 8, ±15%):
 *   step ms before → after, T 40: LoRA 444 → 342, DP-LoRA 446 → 351, full 618 → 518;
 *   T 96: LoRA 1223 → 993, DP-LoRA 1317 → 1037, full 1597 → 1135. Peak bytes −11 MiB (T 40)
 *   and −27 MiB (T 96). With mean pooling the step time is unchanged (±5%).
 */
import type { Runtime } from "../gpu/runtime.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import type {
  EncoderConfig,
  EncoderWeights,
  HeadKind,
  HeadWeights,
  HostTensor,
  LoraConfig,
  LoraTarget,
  LoraWeights,
} from "./types.ts";
import { LORA_TARGETS } from "./types.ts";
import {
  baseParamSpecs,
  headParamSpecs,
  linearDims,
  loraParamSpecs,
  namedTensors,
  numWeightSets,
  type ParamKind,
  type ParamSpec,
  weightSetOf,
} from "./params.ts";
import { initLora, loraScale } from "./lora.ts";
import { initHead, probabilities } from "./heads.ts";
import * as K from "./enc_kernels.ts";
import { layerNormBackward, layerNormForward } from "../gpu/ops/layernorm.ts";
import { activationBackward, activationForward } from "../gpu/ops/gelu.ts";
import {
  axpy,
  dropoutBackward,
  dropoutForward,
  tanhBackward,
  tanhForward,
} from "../gpu/ops/elementwise.ts";
import { bceWithLogits, crossEntropy } from "../gpu/ops/loss.ts";
import { colSum, rowSumSq } from "../gpu/ops/reduce.ts";
import { meanPoolBackward, meanPoolForward } from "../gpu/ops/pooling.ts";
import type { PerSampleGrad, TrainableSpec } from "../privacy/dp_step.ts";
import type { MlmHeadWeights } from "./checkpoint.ts";
import {
  encoderFromNamed,
  mlmFromNamed,
  mlmNamedTensors,
  mlmParamSpecs,
  mlmWidth,
} from "./params.ts";
import { initMlmHead } from "./init.ts";

export type TrainMode = "lora" | "full";

export interface EncoderOptions {
  mode: TrainMode;
  /** Required in LoRA mode. */
  lora?: LoraConfig;
  /** LoRA mode: also train every LayerNorm (embedding + layers). */
  trainLayerNorm?: boolean;
  /** LoRA mode: also train every linear bias (layers + pooler + ALBERT projection). */
  trainBias?: boolean;
  head: { kind: HeadKind; numLabels: number };
  seed: number;
  maxBatch: number;
  maxLen: number;
  /** Start from these adapters / head instead of a fresh init (resume, evaluation). */
  loraWeights?: LoraWeights;
  headWeights?: HeadWeights;
  /**
   * Materialise per-sample gradients [B, P] (default true; DP needs them). false: only the
   * summed `grad` is computed (non-private training; less memory, fewer dispatches).
   */
  perSample?: boolean;
  /** Masked-LM pretraining head (full mode only; implies perSample false). */
  mlm?: MlmOptions;
  /**
   * Sentence features for the classifier: "cls" (default; the pooler when the checkpoint has
   * one, as HF does) or "mean" (masked mean of the top layer's token states; the pooler is then
   * unused and frozen). MLM-only checkpoints have no trained [CLS] summary: "mean" suits them.
   */
  pooling?: "cls" | "mean";
}

export interface MlmOptions {
  /** Capacity: the most predicted positions one batch may have (≤ maxBatch·maxLen). */
  maxPredictions: number;
  /** Start from this head (resume); default: HF init (N(0, 0.02²) dense, LN 1/0, bias 0). */
  weights?: MlmHeadWeights;
}

/** HF convention for "not a prediction target". */
export const MLM_IGNORE = -100;

export interface MlmBatch extends EncoderBatch {
  /** Per sample, aligned with `ids`: the original token id at predicted positions, else -100. */
  mlmLabels: number[][];
}

export interface EncoderBatch {
  /** Token ids per sample (unpadded; [CLS]/<s> first). */
  ids: number[][];
  typeIds?: number[][];
}

export interface LabeledBatch extends EncoderBatch {
  /** multi-label: one 0/1 target per label; multi-class: [classIndex]. */
  labels: number[][];
  /** multi-label: 1 = counts, 0 = ignored. Default all 1. */
  labelMask?: number[][];
}

export interface TrainableParam {
  name: string;
  shape: number[];
  kind: ParamKind;
  tensor: GpuTensor;
  /** Gradient of Σ_i loss_i, valid after `backward`. */
  grad: GpuTensor;
  /**
   * [maxBatch, P]; the first B rows are the per-sample gradients after `backward`. With
   * `perSample: false` there is no such buffer: this is `grad` viewed as [1, P].
   */
  perSample: GpuTensor;
}

interface LoraSaved {
  xd: GpuTensor | null;
  u: GpuTensor;
}

interface LayerSaved {
  q: GpuTensor;
  k: GpuTensor;
  v: GpuTensor;
  probs: GpuTensor;
  ctx: GpuTensor;
  s1: GpuTensor;
  m1: GpuTensor;
  r1: GpuTensor;
  h1: GpuTensor;
  f: GpuTensor;
  a: GpuTensor;
  s2: GpuTensor;
  m2: GpuTensor;
  r2: GpuTensor;
  h2: GpuTensor;
  lora: Map<LoraTarget, LoraSaved>;
}

function mix(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
  }
  return h;
}

export class GpuEncoder {
  readonly config: EncoderConfig;
  readonly options: EncoderOptions;
  private rt: Runtime;
  private w = new Map<string, GpuTensor>();
  private train = new Map<string, TrainableParam>();
  private specs: ParamSpec[];
  private hasPooler: boolean;
  private scale: number;
  private step = 0;
  /** What the LoRA-dropout masks of the current train step derive from (see trainStep). */
  private maskKey: readonly number[] = [0];
  private dims = { b: 0, t: 0 };
  private a: Record<string, GpuTensor> = {};
  private layers: LayerSaved[] = [];
  private training = false;
  private sqnorms = new Map<string, GpuTensor>();
  private perSampleOn: boolean;
  /** Mean pooling (see EncoderOptions.pooling); with it the pooler is bypassed. */
  private meanPool: boolean;
  /** The classifier reads pooler(tanh(dense([CLS]))). */
  private usePooler: boolean;

  private constructor(rt: Runtime, c: EncoderConfig, hasPooler: boolean, o: EncoderOptions) {
    this.rt = rt;
    this.config = c;
    this.options = o;
    this.hasPooler = hasPooler;
    this.meanPool = o.pooling === "mean";
    this.usePooler = hasPooler && !this.meanPool;
    this.scale = o.lora ? loraScale(o.lora) : 0;
    this.perSampleOn = o.perSample ?? !o.mlm;
    this.specs = [
      ...baseParamSpecs(c, hasPooler),
      ...(o.lora ? loraParamSpecs(c, o.lora.targets, o.lora.rank) : []),
      ...headParamSpecs(c, o.head.numLabels),
      ...(o.mlm ? mlmParamSpecs(c) : []),
    ];
  }

  /** Upload weights once, init LoRA/head (seeded), allocate the activation arena. */
  static create(
    rt: Runtime,
    config: EncoderConfig,
    weights: EncoderWeights,
    options: EncoderOptions,
  ): Promise<GpuEncoder> {
    if (options.mode === "lora" && !options.lora) {
      throw new RangeError("EncoderOptions.lora is required in LoRA mode");
    }
    if (config.hiddenSize % config.numHeads !== 0) {
      throw new RangeError(`hiddenSize ${config.hiddenSize} % numHeads ${config.numHeads} != 0`);
    }
    if (options.maxLen > config.maxPositions - Math.max(0, config.positionOffset)) {
      throw new RangeError(`maxLen ${options.maxLen} exceeds the model's position table`);
    }
    // Full fine-tuning has no adapters: a LoRA section in the options is ignored there.
    if (options.mode === "full") options = { ...options, lora: undefined, loraWeights: undefined };
    if (options.mlm) {
      if (options.mode !== "full") throw new RangeError("EncoderOptions.mlm needs mode 'full'");
      if (options.perSample) {
        throw new RangeError("EncoderOptions.mlm has no per-sample route: set perSample false");
      }
      const cap = options.mlm.maxPredictions;
      if (!Number.isInteger(cap) || cap < 1 || cap > options.maxBatch * options.maxLen) {
        throw new RangeError(
          `mlm.maxPredictions ${cap} must be an integer in 1..maxBatch·maxLen ` +
            `(${options.maxBatch * options.maxLen})`,
        );
      }
    }
    const enc = new GpuEncoder(rt, config, !!weights.pooler, options);
    const lora = options.lora
      ? options.loraWeights ?? initLora(config, options.lora, options.seed)
      : undefined;
    const head = options.headWeights ?? initHead(config, options.head.numLabels, options.seed);
    const host = namedTensors(config, weights, lora, head);
    if (options.mlm) {
      for (
        const [k, v] of mlmNamedTensors(options.mlm.weights ?? initMlmHead(config, options.seed))
      ) {
        host.set(k, v);
      }
    }
    for (const s of enc.specs) {
      const t = host.get(s.name);
      if (!t) throw new RangeError(`missing tensor ${s.name}`);
      if (t.shape.join() !== s.shape.join()) {
        throw new RangeError(`tensor ${s.name} has shape [${t.shape}], expected [${s.shape}]`);
      }
      enc.w.set(s.name, rt.upload(t.data, s.shape, s.name));
      if (enc.isTrainable(s)) {
        const p = t.data.length;
        const grad = rt.zeros(s.shape, `grad:${s.name}`);
        enc.train.set(s.name, {
          name: s.name,
          shape: s.shape,
          kind: s.kind,
          tensor: enc.w.get(s.name)!,
          grad,
          perSample: enc.perSampleOn
            ? rt.zeros([options.maxBatch, p], `ps:${s.name}`)
            : K.view(grad, [1, p], `grad:${s.name}`),
        });
      }
    }
    enc.allocate();
    return Promise.resolve(enc);
  }

  private isTrainable(s: ParamSpec): boolean {
    // MLM: the classifier head and the pooler get no gradient from the masked-token loss.
    if (this.options.mlm && (s.kind === "head" || s.name.startsWith("pooler."))) return false;
    // Mean pooling bypasses the pooler: training it would leave a tensor with no gradient.
    if (this.meanPool && s.name.startsWith("pooler.")) return false;
    if (this.options.mode === "full") return s.kind !== "lora";
    if (s.kind === "lora" || s.kind === "head") return true;
    if (s.kind === "layernorm") return !!this.options.trainLayerNorm;
    if (s.kind === "linear.b") return !!this.options.trainBias;
    return false;
  }

  private allocate(): void {
    const c = this.config, o = this.options, rt = this.rt;
    const bt = o.maxBatch * o.maxLen, h = c.hiddenSize, e = c.embeddingSize;
    const f = c.intermediateSize, nh = c.numHeads, t = o.maxLen, b = o.maxBatch;
    const L = o.head.numLabels;
    const mk = (shape: number[], label: string, dt: "f32" | "u32" = "f32") =>
      this.a[label] = rt.empty(shape, label, dt);
    for (const n of ["ids", "pids", "tids"]) mk([bt], n, "u32");
    mk([b], "lens", "u32");
    mk([bt, e], "emb");
    mk([bt, e], "embLn");
    mk([bt], "m0");
    mk([bt], "r0");
    if (c.modelType === "albert") mk([bt, h], "proj");
    for (const n of ["cls", "poolPre", "pooled", "dCls", "dPooled", "dPoolPre"]) mk([b, h], n);
    for (const n of ["logits", "targets", "mask", "dlogits"]) mk([b, L], n);
    mk([b], "classIds", "u32");
    mk([b, h], "ctxC");
    mk([b], "loss");
    // Backward scratch only as deep as the backward goes: none when only the head (and pooler)
    // train; [B, T]-sized buffers once any layer (or the MLM head) has a trainable tensor.
    const low = o.mlm ? -1 : this.lowest();
    if (low !== null) {
      for (const n of ["dTop", "dX2", "dS2", "dH1", "dS1", "dCtx", "dq", "dk", "dv"]) {
        mk([bt, h], n);
      }
      // [CLS]-row gathers of the top layer's backward
      for (const n of ["dCtxC", "dqC", "xinC", "dXinC"]) mk([b, h], n);
      if (o.lora) mk([b, o.lora.rank], "uC");
      mk([bt, f], "dA");
      mk([bt, f], "dF");
      mk([b, nh, t, t], "ds");
      if (o.lora) mk([bt, o.lora.rank], "du");
      // LoRA dropout's backward needs two [rows, in] scratch buffers (masked copy, then add).
      if (o.lora && o.lora.dropout > 0) {
        const wide = Math.max(...o.lora.targets.map((tg) => linearDims(c, tg)[1]));
        mk([bt, wide], "tmp");
        mk([bt, wide], "tmp2");
      }
      if (c.modelType === "albert") mk([bt, e], "dE");
      if (low < 0) mk([bt, e], "dEmb");
    }
    if (o.mlm) {
      const m = o.mlm.maxPredictions, wd = mlmWidth(c);
      mk([m], "mIdx", "u32");
      mk([m], "mTgt", "u32");
      for (const n of ["mX", "mdX"]) mk([m, h], n);
      for (const n of ["mPre", "mAct", "mLn", "mdLn", "mdPre"]) mk([m, wd], n);
      mk([m], "mMean");
      mk([m], "mRstd");
      mk([m], "mLoss");
      mk([m, c.vocabSize], "mLogits");
      mk([m, c.vocabSize], "mdLogits");
    }
    for (let l = 0; l < c.numLayers; l++) {
      const lab = (n: string) => `L${l}.${n}`;
      const ls: LayerSaved = {
        q: rt.empty([bt, h], lab("q")),
        k: rt.empty([bt, h], lab("k")),
        v: rt.empty([bt, h], lab("v")),
        probs: rt.empty([b, nh, t, t], lab("probs")),
        ctx: rt.empty([bt, h], lab("ctx")),
        s1: rt.empty([bt, h], lab("s1")),
        m1: rt.empty([bt], lab("m1")),
        r1: rt.empty([bt], lab("r1")),
        h1: rt.empty([bt, h], lab("h1")),
        f: rt.empty([bt, f], lab("f")),
        a: rt.empty([bt, f], lab("a")),
        s2: rt.empty([bt, h], lab("s2")),
        m2: rt.empty([bt], lab("m2")),
        r2: rt.empty([bt], lab("r2")),
        h2: rt.empty([bt, h], lab("h2")),
        lora: new Map(),
      };
      for (const tg of o.lora?.targets ?? []) {
        const [, inn] = linearDims(c, tg);
        ls.lora.set(tg, {
          xd: o.lora!.dropout > 0 ? rt.empty([bt, inn], lab(`${tg}.xd`)) : null,
          u: rt.empty([bt, o.lora!.rank], lab(`${tg}.u`)),
        });
      }
      this.layers.push(ls);
    }
  }

  /** Trainable tensors with their summed and per-sample gradient buffers (fixed order). */
  parameters(): TrainableParam[] {
    return [...this.train.values()];
  }

  /** Batch size and padded length of the batch in flight. */
  get batchDims(): { b: number; t: number } {
    return { ...this.dims };
  }

  // ------------------------------------------------------------------ input

  private upload(batch: EncoderBatch): void {
    const c = this.config, o = this.options;
    const b = batch.ids.length;
    if (b < 1 || b > o.maxBatch) {
      throw new RangeError(`batch has ${b} samples; allowed 1..${o.maxBatch}`);
    }
    let t = 0;
    batch.ids.forEach((s, i) => {
      if (s.length < 1 || s.length > o.maxLen) {
        throw new RangeError(`sample ${i} has ${s.length} tokens; allowed 1..${o.maxLen}`);
      }
      t = Math.max(t, s.length);
    });
    const ids = new Uint32Array(b * t),
      pids = new Uint32Array(b * t),
      tids = new Uint32Array(b * t);
    const lens = new Uint32Array(b);
    batch.ids.forEach((s, i) => {
      lens[i] = s.length;
      let count = 0;
      for (let j = 0; j < t; j++) {
        const id = j < s.length ? s[j] : c.padTokenId;
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
          throw new RangeError(
            `sample ${i} token ${j}: id ${id} outside vocabulary 0..${c.vocabSize - 1}`,
          );
        }
        ids[i * t + j] = id;
        const ty = j < s.length ? batch.typeIds?.[i]?.[j] ?? 0 : 0;
        if (ty < 0 || ty >= c.typeVocabSize) {
          throw new RangeError(`sample ${i} token ${j}: type id ${ty} out of range`);
        }
        tids[i * t + j] = ty;
        if (c.modelType === "roberta") {
          // HF create_position_ids_from_input_ids: non-pad tokens count from padding_idx + 1.
          pids[i * t + j] = id === c.padTokenId ? c.padTokenId : c.positionOffset + count++;
        } else pids[i * t + j] = c.positionOffset + j;
      }
    });
    this.dims = { b, t };
    this.rt.write(this.a.ids, ids);
    this.rt.write(this.a.pids, pids);
    this.rt.write(this.a.tids, tids);
    this.rt.write(this.a.lens, lens);
  }

  private uploadLabels(batch: LabeledBatch): void {
    const { b } = this.dims, L = this.options.head.numLabels;
    const y = new Float32Array(b * L), m = new Float32Array(b * L).fill(1);
    const cls = new Uint32Array(b);
    if (batch.labels.length !== b) {
      throw new RangeError(`labels has ${batch.labels.length} rows for ${b} samples`);
    }
    batch.labels.forEach((row, i) => {
      if (this.options.head.kind === "multi-class") {
        const k = row[0];
        if (!Number.isInteger(k) || k < 0 || k >= L) {
          throw new RangeError(`sample ${i}: class ${k} outside 0..${L - 1}`);
        }
        y[i * L + k] = 1;
        cls[i] = k;
      } else {
        if (row.length !== L) {
          throw new RangeError(`sample ${i}: ${row.length} labels, expected ${L}`);
        }
        row.forEach((v, l) => (y[i * L + l] = v));
        const mr = batch.labelMask?.[i];
        if (mr) mr.forEach((v, l) => (m[i * L + l] = v));
        // The per-sample loss is the mean over counted labels: the shared BCE sums mask-weighted
        // terms, so the weights carry 1/count (a sample with no counted label: loss 0, grad 0).
        let count = 0;
        for (let l = 0; l < L; l++) count += m[i * L + l];
        const inv = 1 / Math.max(count, 1);
        for (let l = 0; l < L; l++) m[i * L + l] *= inv;
      }
    });
    this.rt.write(this.a.targets, y);
    this.rt.write(this.a.mask, m);
    this.rt.write(this.a.classIds, cls);
  }

  // ------------------------------------------------------------------ forward

  private p(name: string): GpuTensor {
    const t = this.w.get(name);
    if (!t) throw new RangeError(`encoder has no tensor ${name}`);
    return t;
  }

  /** The first n (default B·T: the batch in flight) rows of an arena tensor as [n, cols]. */
  private rows(t: GpuTensor, cols: number, n = this.dims.b * this.dims.t): GpuTensor {
    return K.view(t, [n, cols], t.label);
  }

  /** [rows, H] LayerNorm forward on arena views. */
  private ln(
    prefix: string,
    x: GpuTensor,
    y: GpuTensor,
    mean: GpuTensor,
    rstd: GpuTensor,
    rows: number,
  ): void {
    const g = this.p(`${prefix}.g`), n = g.shape[0];
    layerNormForward(this.rt, {
      x: K.view(x, [rows, n]),
      gamma: g,
      beta: this.p(`${prefix}.b`),
      y: K.view(y, [rows, n]),
      mean: K.view(mean, [rows]),
      rstd: K.view(rstd, [rows]),
      eps: this.config.layerNormEps,
    });
  }

  private dropoutSeed(layer: number, target: LoraTarget): number {
    return mix(this.options.seed, ...this.maskKey, layer, LORA_TARGETS.indexOf(target));
  }

  /**
   * y (+)= x·Wᵀ + b (+ LoRA) for layer application `l` on the first `rows` rows; `acc` adds
   * onto y (the residual, copied there first: a copy instead of a separate add dispatch).
   */
  private proj(
    l: number,
    tg: LoraTarget,
    x: GpuTensor,
    y: GpuTensor,
    acc = false,
    rows = this.dims.b * this.dims.t,
  ): void {
    const rt = this.rt, g = weightSetOf(this.config, l);
    const w = this.p(`L${g}.${tg}.w`);
    K.linearForward(rt, x, w, this.p(`L${g}.${tg}.b`), y, rows, { acc });
    const ls = this.layers[l].lora.get(tg);
    if (!ls) return;
    const [, inn] = linearDims(this.config, tg);
    let xd = x;
    if (ls.xd && this.training) {
      const seed = this.dropoutSeed(l, tg);
      const p = this.options.lora!.dropout;
      dropoutForward(rt, this.rows(x, inn, rows), this.rows(ls.xd, inn, rows), p, seed);
      xd = ls.xd;
    }
    K.linearForward(rt, xd, this.p(`lora.${g}.${tg}.a`), null, ls.u, rows);
    K.linearForward(rt, ls.u, this.p(`lora.${g}.${tg}.b`), null, y, rows, {
      alpha: this.scale,
      acc: true,
    });
  }

  /** Records the encoder (+ classifier unless `head` is false); returns the top hidden rows. */
  private recordForward(head = true): GpuTensor {
    const rt = this.rt, c = this.config, a = this.a;
    const { b, t } = this.dims, rows = b * t, h = c.hiddenSize, fi = c.intermediateSize;
    K.embedForward(
      rt,
      a.ids,
      a.pids,
      a.tids,
      this.p("emb.word"),
      this.p("emb.pos"),
      this.p("emb.type"),
      a.emb,
      rows,
    );
    this.ln("emb.ln", a.emb, a.embLn, a.m0, a.r0, rows);
    let x = a.embLn;
    if (c.modelType === "albert") {
      K.linearForward(rt, a.embLn, this.p("emb.proj.w"), this.p("emb.proj.b"), a.proj, rows);
      x = a.proj;
    }
    const ad = { b, t, heads: c.numHeads, hidden: h };
    for (let l = 0; l < c.numLayers; l++) {
      const s = this.layers[l], g = weightSetOf(c, l);
      // The classifier reads only the [CLS] rows, so the top layer's attention-output
      // projection, LayerNorms and FFN run on those B rows (keys/values still need all rows).
      const clsOnly = head && !this.meanPool && l === c.numLayers - 1, n = clsOnly ? b : rows;
      this.proj(l, "query", x, s.q);
      this.proj(l, "key", x, s.k);
      this.proj(l, "value", x, s.v);
      K.attentionForward(rt, s.q, s.k, s.v, a.lens, s.probs, s.ctx, ad);
      // residual first, then the projection accumulates onto it
      if (clsOnly) {
        K.rowsGather(rt, x, s.s1, b, h, t);
        K.rowsGather(rt, s.ctx, a.ctxC, b, h, t);
      } else rt.copy(x, s.s1, 0, 0, rows * h);
      this.proj(l, "attention.output", clsOnly ? a.ctxC : s.ctx, s.s1, true, n);
      this.ln(`L${g}.attnLn`, s.s1, s.h1, s.m1, s.r1, n);
      this.proj(l, "intermediate", s.h1, s.f, false, n);
      activationForward(rt, this.rows(s.f, fi, n), this.rows(s.a, fi, n), c.hiddenAct);
      rt.copy(s.h1, s.s2, 0, 0, n * h);
      this.proj(l, "output", s.a, s.s2, true, n);
      this.ln(`L${g}.outLn`, s.s2, s.h2, s.m2, s.r2, n);
      x = s.h2;
    }
    if (!head) return x;
    if (this.meanPool) {
      meanPoolForward(rt, K.view(x, [b, t, h]), a.lens, K.view(a.cls, [b, h]));
    } else if (c.numLayers > 0) rt.copy(x, a.cls, 0, 0, b * h);
    else K.rowsGather(rt, x, a.cls, b, h, t);
    let feat = a.cls;
    if (this.usePooler) {
      K.linearForward(rt, a.cls, this.p("pooler.w"), this.p("pooler.b"), a.poolPre, b);
      tanhForward(rt, K.view(a.poolPre, [b, h]), K.view(a.pooled, [b, h]));
      feat = a.pooled;
    }
    K.linearForward(rt, feat, this.p("head.w"), this.p("head.b"), a.logits, b);
    return x;
  }

  /** Record the forward pass (eval mode: no dropout); returns the logits view [B, L]. */
  forward(batch: EncoderBatch): GpuTensor {
    this.training = false;
    this.upload(batch);
    this.recordForward();
    return K.view(this.a.logits, [this.dims.b, this.options.head.numLabels], "logits");
  }

  /** Class/label probabilities [B, L] (one readback). */
  async predict(batch: EncoderBatch): Promise<Float32Array> {
    const logits = await this.rt.read(this.forward(batch));
    return probabilities(this.options.head.kind, logits, this.options.head.numLabels);
  }

  // ------------------------------------------------------------------ backward

  /**
   * Record forward (train mode) + per-sample loss + backward. Afterwards every trainable
   * parameter's `perSample` holds [B, P] per-sample gradients and `grad` their sum. Returns the
   * per-sample loss view [B] (read it lazily).
   *
   * `dropoutKey` fixes the LoRA-dropout masks: the same key and batch give the same masks, hence
   * the same gradients (DP-SGD recomputes a micro-batch whose patient spans several, and the clip
   * factor from the first pass must bound the gradient of the second). Without a key every call
   * draws fresh masks.
   */
  trainStep(batch: LabeledBatch, opts: { dropoutKey?: readonly number[] } = {}): GpuTensor {
    this.step++;
    this.maskKey = opts.dropoutKey ? [0x6b657900, ...opts.dropoutKey] : [this.step];
    this.training = true;
    this.upload(batch);
    this.uploadLabels(batch);
    this.recordForward();
    const rt = this.rt, a = this.a, c = this.config;
    const { b, t } = this.dims, h = c.hiddenSize, L = this.options.head.numLabels;
    const logits = K.view(a.logits, [b, L]), loss = K.view(a.loss, [b], "loss");
    const dlogits = K.view(a.dlogits, [b, L]);
    if (this.options.head.kind === "multi-label") {
      const targets = K.view(a.targets, [b, L]), mask = K.view(a.mask, [b, L]);
      bceWithLogits(rt, { logits, targets, mask, loss, dlogits, scale: 1 });
    } else {
      crossEntropy(rt, { logits, labels: K.view(a.classIds, [b]), loss, dlogits, scale: 1 });
    }
    for (const p of this.train.values()) rt.clear(p.perSample);
    // (perSample off: perSample IS grad, so this clears the sum the backward accumulates into)
    // head (one row per sample)
    const feat = this.usePooler ? a.pooled : a.cls;
    this.linBack("head", feat, a.dlogits, this.needsBelowHead() ? a.dPooled : null, b, 1);
    if (this.needsBelowHead()) {
      let dCls = a.dPooled;
      if (this.usePooler) {
        const v = (x: GpuTensor) => K.view(x, [b, h]);
        tanhBackward(rt, v(a.dPooled), v(a.pooled), v(a.dPoolPre));
        this.linBack("pooler", a.cls, a.dPoolPre, this.lowest() !== null ? a.dCls : null, b, 1);
        dCls = a.dCls;
      }
      const low = this.lowest();
      if (low !== null) {
        // the top layer ran on the [CLS] rows only (recordForward): its backward starts there
        let dOut = dCls;
        if (this.meanPool) {
          // every valid token row gets dFeature / length; the top layer runs on all rows
          meanPoolBackward(rt, K.view(dCls, [b, h]), a.lens, K.view(a.dTop, [b, t, h]));
          dOut = a.dTop;
        } else if (c.numLayers === 0) {
          rt.clear(a.dTop);
          K.rowsScatter(rt, dCls, a.dTop, b, h, t);
          dOut = a.dTop;
        }
        for (let l = c.numLayers - 1; l >= Math.max(low, 0); l--) {
          const needX = l > low;
          const dX = dOut === a.dX2 ? a.dTop : a.dX2;
          this.layerBack(l, dOut, needX ? dX : null, !this.meanPool && l === c.numLayers - 1);
          dOut = dX;
        }
        if (low < 0) this.embBack(dOut);
      }
    }
    if (this.perSampleOn) {
      for (const p of this.train.values()) {
        const n = p.tensor.size;
        colSum(rt, K.view(p.perSample, [b, n]), { out: K.view(p.grad, [n]) });
      }
    }
    return loss;
  }

  /** Backward through layers (top → 0) and the embeddings from dX at the top hidden rows. */
  private stackBack(dTop: GpuTensor): void {
    const c = this.config, a = this.a;
    let dOut = dTop;
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const dX = dOut === a.dX2 ? a.dTop : a.dX2;
      this.layerBack(l, dOut, dX);
      dOut = dX;
    }
    this.embBack(dOut);
  }

  /** Predicted positions of a batch as flat row indices (b·T + j) and target ids. */
  private mlmTargets(batch: MlmBatch): { idx: Uint32Array; tgt: Uint32Array } {
    const { t } = this.dims, V = this.config.vocabSize;
    const cap = this.options.mlm!.maxPredictions;
    const idx: number[] = [], tgt: number[] = [];
    if (batch.mlmLabels.length !== batch.ids.length) {
      throw new RangeError(
        `mlmLabels has ${batch.mlmLabels.length} rows for ${batch.ids.length} samples`,
      );
    }
    batch.mlmLabels.forEach((row, i) => {
      if (row.length !== batch.ids[i].length) {
        throw new RangeError(
          `sample ${i}: ${row.length} mlmLabels for ${batch.ids[i].length} tokens`,
        );
      }
      row.forEach((y, j) => {
        if (y === MLM_IGNORE) return;
        if (!Number.isInteger(y) || y < 0 || y >= V) {
          throw new RangeError(`sample ${i} position ${j}: MLM label ${y} outside 0..${V - 1}`);
        }
        idx.push(i * t + j);
        tgt.push(y);
      });
    });
    if (idx.length > cap) {
      throw new RangeError(
        `batch has ${idx.length} predicted positions; mlm.maxPredictions ${cap}`,
      );
    }
    return { idx: Uint32Array.from(idx), tgt: Uint32Array.from(tgt) };
  }

  /**
   * Masked-LM step: forward (train mode) + per-prediction CE + (unless `backward` is false) the
   * backward of Σ_m loss_m into every trainable `grad`. Returns the per-prediction loss view [M]
   * (M = number of predicted positions; read it lazily). M = 0 gives zero gradients.
   */
  mlmStep(batch: MlmBatch, opt: { backward?: boolean } = {}): { loss: GpuTensor; count: number } {
    const o = this.options;
    if (!o.mlm) throw new RangeError("mlmStep needs EncoderOptions.mlm");
    this.step++;
    this.maskKey = [this.step];
    this.training = true;
    this.upload(batch);
    const { idx, tgt } = this.mlmTargets(batch);
    const M = idx.length;
    const rt = this.rt, a = this.a, c = this.config, h = c.hiddenSize, wd = mlmWidth(c);
    const V = c.vocabSize;
    if (opt.backward !== false) { for (const p of this.train.values()) rt.clear(p.grad); }
    if (M === 0) return { loss: K.view(a.mLoss, [0], "mlm loss"), count: 0 };
    rt.write(a.mIdx, idx);
    rt.write(a.mTgt, tgt);
    const top = this.recordForward(false);
    const word = this.p("emb.word");
    K.rowsGatherIdx(rt, top, a.mIdx, a.mX, M, h);
    K.linearForward(rt, a.mX, this.p("mlm.transform.w"), this.p("mlm.transform.b"), a.mPre, M);
    const mv = (t: GpuTensor) => K.view(t, [M, wd]);
    activationForward(rt, mv(a.mPre), mv(a.mAct), c.hiddenAct);
    this.ln("mlm.ln", a.mAct, a.mLn, a.mMean, a.mRstd, M);
    K.linearForward(rt, a.mLn, word, this.p("mlm.bias"), a.mLogits, M);
    K.classCrossEntropy(rt, a.mLogits, a.mTgt, a.mLoss, a.mdLogits, M, V);
    const loss = K.view(a.mLoss, [M], "mlm loss");
    if (opt.backward === false) return { loss, count: M };
    const g = (n: string) => this.train.get(n)!.grad;
    // tied decoder: dWord += dlogitsᵀ·ln ; bias: column sums ; d ln = dlogits·Word
    K.weightGradPerSample(rt, a.mdLogits, a.mLn, g("emb.word"), {
      samples: 1,
      rowsPerSample: M,
      out: V,
      inn: wd,
    }, { acc: true });
    colSum(rt, K.view(a.mdLogits, [M, V]), { out: g("mlm.bias"), accumulate: true });
    K.linearBackwardInput(rt, a.mdLogits, word, a.mdLn, M);
    layerNormBackward(rt, {
      x: mv(a.mAct),
      gamma: this.p("mlm.ln.g"),
      mean: K.view(a.mMean, [M]),
      rstd: K.view(a.mRstd, [M]),
      dy: mv(a.mdLn),
      dx: mv(a.mdPre),
      dgamma: g("mlm.ln.g"),
      dbeta: g("mlm.ln.b"),
      accumulate: true,
    });
    // mdPre holds d act-output; act backward into mdLn (free now), then the dense
    activationBackward(rt, mv(a.mPre), mv(a.mdPre), mv(a.mdLn), c.hiddenAct);
    this.linBack("mlm.transform", a.mX, a.mdLn, a.mdX, 1, M);
    rt.clear(a.dTop);
    K.rowsScatterIdx(rt, a.mdX, a.mIdx, a.dTop, M, h);
    this.stackBack(a.dTop);
    return { loss, count: M };
  }

  private needsBelowHead(): boolean {
    return this.train.has("pooler.w") || this.train.has("pooler.b") || this.lowest() !== null;
  }

  /** Lowest layer application with a trainable tensor; -1 = embeddings; null = none. */
  private lowest(): number | null {
    const c = this.config;
    if ([...this.train.keys()].some((n) => n.startsWith("emb."))) return -1;
    for (let l = 0; l < c.numLayers; l++) {
      const g = weightSetOf(c, l);
      if (
        [...this.train.keys()].some((n) => n.startsWith(`L${g}.`) || n.startsWith(`lora.${g}.`))
      ) {
        return l;
      }
    }
    return null;
  }

  /**
   * Backward of a linear named `prefix` ({prefix}.w/.b) applied to x with upstream dy:
   * dx (if wanted; overwritten, or added to with `accDx`), per-sample dW/db for trainable ones.
   */
  private linBack(
    prefix: string,
    x: GpuTensor,
    dy: GpuTensor,
    dx: GpuTensor | null,
    samples: number,
    rowsPerSample: number,
    accDx = false,
  ): void {
    const rt = this.rt, w = this.p(`${prefix}.w`), [out, inn] = w.shape;
    const rows = samples * rowsPerSample;
    if (dx) K.linearBackwardInput(rt, dy, w, dx, rows, { acc: accDx });
    const tw = this.train.get(`${prefix}.w`), tb = this.train.get(`${prefix}.b`);
    const s = this.seg(samples, rowsPerSample);
    const d = { ...s, out, inn };
    if (tw) K.weightGradPerSample(rt, dy, x, tw.perSample, d, { acc: true });
    if (tb) this.segSum(dy, tb.perSample, s, out);
  }

  /** out[s, :] += column sums of each segment of x's rows (one segment: the shared colSum). */
  private segSum(
    x: GpuTensor,
    out: GpuTensor,
    s: { samples: number; rowsPerSample: number },
    cols: number,
  ): void {
    if (s.samples > 1) {
      K.segColSum(this.rt, x, out, s.samples, s.rowsPerSample, cols, true);
      return;
    }
    const xv = K.view(x, [s.rowsPerSample, cols]);
    colSum(this.rt, xv, { out: K.view(out, [cols]), accumulate: true });
  }

  /** Segmentation of the rows for parameter gradients: per sample, or one segment (sum). */
  private seg(samples: number, rowsPerSample: number): { samples: number; rowsPerSample: number } {
    return this.perSampleOn
      ? { samples, rowsPerSample }
      : { samples: 1, rowsPerSample: samples * rowsPerSample };
  }

  /** linBack for a layer linear plus its LoRA adapter (dx overwritten or added to). */
  private projBack(
    l: number,
    tg: LoraTarget,
    x: GpuTensor,
    dy: GpuTensor,
    dx: GpuTensor | null,
    opt: { accDx?: boolean; rowsPerSample?: number; u?: GpuTensor } = {},
  ) {
    const rt = this.rt, c = this.config, g = weightSetOf(c, l);
    const b = this.dims.b, t = opt.rowsPerSample ?? this.dims.t, rows = b * t;
    this.linBack(`L${g}.${tg}`, x, dy, dx, b, t, opt.accDx);
    const saved = this.layers[l].lora.get(tg);
    if (!saved) return;
    // `u`: the adapter's saved x·Aᵀ rows matching x (gathered rows; never with dropout)
    const ls = opt.u ? { u: opt.u, xd: null } : saved;
    const [out, inn] = linearDims(c, tg), r = this.options.lora!.rank;
    const A = this.p(`lora.${g}.${tg}.a`), B = this.p(`lora.${g}.${tg}.b`);
    const xd = ls.xd && this.training ? ls.xd : x;
    const pa = this.train.get(`lora.${g}.${tg}.a`)!, pb = this.train.get(`lora.${g}.${tg}.b`)!;
    const sg = this.seg(b, t);
    // dB_i += s · dy_iᵀ u_i ;  du = s · dy·B ;  dA_i += du_iᵀ xd_i
    K.weightGradPerSample(rt, dy, ls.u, pb.perSample, { ...sg, out, inn: r }, {
      alpha: this.scale,
      acc: true,
    });
    K.linearBackwardInput(rt, dy, B, this.a.du, rows, { alpha: this.scale });
    K.weightGradPerSample(rt, this.a.du, xd, pa.perSample, { ...sg, out: r, inn }, { acc: true });
    if (!dx) return;
    if (ls.xd && this.training) {
      // dropout is linear with a fixed mask: its backward is the same masked scaling
      const v = (u: GpuTensor) => this.rows(u, inn, rows);
      K.linearBackwardInput(rt, this.a.du, A, this.a.tmp, rows);
      dropoutBackward(
        rt,
        v(this.a.tmp),
        v(this.a.tmp2),
        this.options.lora!.dropout,
        this.dropoutSeed(l, tg),
      );
      axpy(rt, 1, v(this.a.tmp2), v(dx));
    } else K.linearBackwardInput(rt, this.a.du, A, dx, rows, { acc: true });
  }

  /** LayerNorm backward; trainable γ/β get their (per-sample) gradients added in place. */
  private lnBack(
    prefix: string,
    x: GpuTensor,
    mean: GpuTensor,
    rstd: GpuTensor,
    dy: GpuTensor,
    dx: GpuTensor,
    cols: number,
    rowsPerSample = this.dims.t,
  ): void {
    const b = this.dims.b, t = rowsPerSample, rows = b * t;
    const v = (u: GpuTensor) => K.view(u, [rows, cols]);
    const tg = this.train.get(`${prefix}.g`), tb = this.train.get(`${prefix}.b`);
    if (!tg !== !tb) throw new RangeError(`${prefix}: γ and β must be trainable together`);
    const s = this.seg(b, t);
    const pg = (p: TrainableParam) => K.view(p.perSample, [s.samples, cols]);
    layerNormBackward(this.rt, {
      x: v(x),
      gamma: this.p(`${prefix}.g`),
      mean: K.view(mean, [rows]),
      rstd: K.view(rstd, [rows]),
      dy: v(dy),
      dx: v(dx),
      dgamma: tg && pg(tg),
      dbeta: tb && pg(tb),
      accumulate: true,
      groupRows: s.rowsPerSample,
    });
  }

  /**
   * Backward of layer application `l` from dOut (its output rows) into dXin (its input rows;
   * null: parameter gradients only). `clsOnly`: the layer ran its post-attention part on the
   * [CLS] rows only (the classifier's top layer), so dOut is [B, H] and so is that part here.
   */
  private layerBack(l: number, dOut: GpuTensor, dXin: GpuTensor | null, clsOnly = false): void {
    const rt = this.rt, c = this.config, a = this.a, s = this.layers[l], g = weightSetOf(c, l);
    const { b, t } = this.dims, rows = b * t, h = c.hiddenSize, fi = c.intermediateSize;
    const rps = clsOnly ? 1 : t, n = b * rps;
    const xin = l === 0 ? (c.modelType === "albert" ? a.proj : a.embLn) : this.layers[l - 1].h2;
    this.lnBack(`L${g}.outLn`, s.s2, s.m2, s.r2, dOut, a.dS2, h, rps);
    this.projBack(l, "output", s.a, a.dS2, a.dA, { rowsPerSample: rps });
    const v = (u: GpuTensor) => this.rows(u, fi, n);
    activationBackward(rt, v(s.f), v(a.dA), v(a.dF), c.hiddenAct);
    // residual: dH1 = dS2 + d(intermediate input), the projection accumulating onto the copy
    rt.copy(a.dS2, a.dH1, 0, 0, n * h);
    this.projBack(l, "intermediate", s.h1, a.dF, a.dH1, { accDx: true, rowsPerSample: rps });
    this.lnBack(`L${g}.attnLn`, s.s1, s.m1, s.r1, a.dH1, a.dS1, h, rps);
    if (clsOnly) {
      // d ctx is zero off the [CLS] rows
      this.projBack(l, "attention.output", a.ctxC, a.dS1, a.dCtxC, { rowsPerSample: 1 });
      rt.clear(this.rows(a.dCtx, h));
      K.rowsScatter(rt, a.dCtxC, a.dCtx, b, h, t);
    } else this.projBack(l, "attention.output", s.ctx, a.dS1, a.dCtx);
    K.attentionBackward(
      rt,
      { ...s, lens: a.lens },
      a.dCtx,
      a.ds,
      { dq: a.dq, dk: a.dk, dv: a.dv },
      { b, t, heads: c.numHeads, hidden: h },
    );
    // dXin = dS1 (residual) + the q/k/v input gradients, each accumulated straight onto it.
    // Top layer: dq, like d ctx, is zero off the [CLS] rows, so the query backward runs on
    // those B rows (gathered), unless LoRA dropout acts on the query input (its mask is
    // indexed by the full rows).
    const qLora = s.lora.get("query");
    if (clsOnly && !(qLora?.xd && this.training)) {
      K.rowsGather(rt, a.dq, a.dqC, b, h, t);
      K.rowsGather(rt, xin, a.xinC, b, h, t);
      let u: GpuTensor | undefined;
      if (qLora) {
        const r = this.options.lora!.rank;
        K.rowsGather(rt, qLora.u, a.uC, b, r, t);
        u = a.uC;
      }
      if (dXin) rt.copy(a.dS1, a.dXinC, 0, 0, b * h);
      const opt = { accDx: true, rowsPerSample: 1, u };
      this.projBack(l, "query", a.xinC, a.dqC, dXin ? a.dXinC : null, opt);
      if (dXin) {
        rt.clear(this.rows(dXin, h));
        K.rowsScatter(rt, a.dXinC, dXin, b, h, t);
      }
    } else {
      if (dXin && clsOnly) {
        rt.clear(this.rows(dXin, h));
        K.rowsScatter(rt, a.dS1, dXin, b, h, t);
      } else if (dXin) rt.copy(a.dS1, dXin, 0, 0, rows * h);
      this.projBack(l, "query", xin, a.dq, dXin, { accDx: true });
    }
    for (const [tg, dy] of [["key", a.dk], ["value", a.dv]] as const) {
      this.projBack(l, tg, xin, dy, dXin, { accDx: true });
    }
  }

  private embBack(dX: GpuTensor): void {
    const rt = this.rt, c = this.config, a = this.a, { b, t } = this.dims;
    const e = c.embeddingSize;
    let dE = dX;
    if (c.modelType === "albert") {
      this.linBack("emb.proj", a.embLn, dX, a.dE, b, t);
      dE = a.dE;
    }
    this.lnBack("emb.ln", a.emb, a.m0, a.r0, dE, a.dEmb, e);
    for (
      const [n, ids] of [["emb.word", a.ids], ["emb.pos", a.pids], ["emb.type", a.tids]] as const
    ) {
      const p = this.train.get(n);
      if (!p) continue;
      K.embedScatterPerSample(rt, ids, a.dEmb, p.perSample, {
        ...this.seg(b, t),
        tableRows: p.shape[0],
        e,
      });
    }
  }

  // ------------------------------------------------------------------ DP hooks

  /** DpStep's tensor list, in `parameters()` order (flat clipping: group 0). */
  trainableSpecs(): TrainableSpec[] {
    return this.parameters().map((p) => ({ name: p.name, shape: p.shape, group: 0 }));
  }

  /**
   * Per-sample gradients of the last `trainStep` in DpStep's format, in `parameters()` order.
   * "materialized" (default, the LoRA route): views [B, ...shape] of the per-sample buffers.
   * "norms" (book-keeping interface): per-tensor squared norms [B] and a weightedGrad that ADDS
   * Σ_i c[i]·g_i into the accumulator (here computed from the same materialised rows).
   */
  perSampleGrads(route: "materialized" | "norms" = "materialized"): PerSampleGrad[] {
    this.needPerSample("perSampleGrads");
    const b = this.dims.b;
    return this.parameters().map((p) => {
      if (route === "materialized") {
        return {
          kind: "materialized",
          grads: K.view(p.perSample, [b, ...p.shape], `ps:${p.name}`),
        };
      }
      let sq = this.sqnorms.get(p.name);
      if (!sq) {
        sq = this.rt.empty([this.options.maxBatch], `sq:${p.name}`);
        this.sqnorms.set(p.name, sq);
      }
      const view = K.view(sq, [b], `sq:${p.name}`);
      rowSumSq(this.rt, K.view(p.perSample, [b, p.tensor.size]), view);
      return {
        kind: "norms",
        sqnorms: view,
        weightedGrad: (c: GpuTensor, accum: GpuTensor) => this.weightedGrad(p.name, c, accum, true),
      };
    });
  }

  /** out[i] = ‖g_i‖² over all trainable tensors (after `trainStep`). */
  perSampleSqNorms(out: GpuTensor): void {
    this.needPerSample("perSampleSqNorms");
    const b = this.dims.b, o = K.view(out, [b], "perSampleSqNorms out");
    // not on the DP step's path (DpStep takes perSampleGrads): a scratch row + add per tensor
    const part = this.rt.empty([b], "sqnorm part");
    let first = true;
    for (const p of this.train.values()) {
      const g = K.view(p.perSample, [b, p.tensor.size]);
      if (first) rowSumSq(this.rt, g, o);
      else {
        rowSumSq(this.rt, g, part);
        axpy(this.rt, 1, part, o);
      }
      first = false;
    }
    this.rt.release(part); // later users are recorded after these reads
  }

  /** Book-keeping weighted sum: into[name] (+)= Σ_i c[i]·g_i for one trainable tensor. */
  weightedGrad(name: string, c: GpuTensor, into: GpuTensor, accumulate = false): void {
    const p = this.train.get(name);
    if (!p) throw new RangeError(`weightedGrad: ${name} is not trainable`);
    this.needPerSample("weightedGrad");
    const n = p.tensor.size, b = this.dims.b;
    K.weightedRows(this.rt, c, p.perSample, into, b, n, accumulate);
  }

  /** Whether per-sample gradients are materialised (EncoderOptions.perSample). */
  get hasPerSample(): boolean {
    return this.perSampleOn;
  }

  private needPerSample(op: string): void {
    if (!this.perSampleOn) {
      throw new RangeError(`${op}: this encoder was created with perSample: false (no DP route)`);
    }
  }

  // ------------------------------------------------------------------ export

  /** Read the base-model weights back (full fine-tuning / pretraining checkpoints). */
  async readEncoderWeights(): Promise<EncoderWeights> {
    const names = baseParamSpecs(this.config, this.hasPooler);
    const data = await this.rt.readMany(names.map((s) => this.p(s.name)));
    const host = new Map<string, HostTensor>();
    names.forEach((s, i) => host.set(s.name, { data: data[i] as Float32Array, shape: s.shape }));
    return encoderFromNamed(this.config, host, this.hasPooler);
  }

  /** Read the masked-LM head back (needs EncoderOptions.mlm). */
  async readMlmHead(): Promise<MlmHeadWeights> {
    if (!this.options.mlm) throw new RangeError("readMlmHead: the encoder has no MLM head");
    const names = mlmParamSpecs(this.config);
    const data = await this.rt.readMany(names.map((s) => this.p(s.name)));
    const host = new Map<string, HostTensor>();
    names.forEach((s, i) => host.set(s.name, { data: data[i] as Float32Array, shape: s.shape }));
    return mlmFromNamed(host);
  }

  /** Read the adapters and the head back (for PEFT export / checkpoints). */
  async readAdapter(): Promise<{ lora: LoraWeights; head: HeadWeights }> {
    const names = this.specs.filter((s) => s.kind === "lora" || s.kind === "head");
    const data = await this.rt.readMany(names.map((s) => this.p(s.name)));
    const host = new Map<string, HostTensor>();
    names.forEach((s, i) => host.set(s.name, { data: data[i] as Float32Array, shape: s.shape }));
    const lora: LoraWeights = new Map();
    for (let g = 0; g < numWeightSets(this.config); g++) {
      for (const tg of this.options.lora?.targets ?? []) {
        lora.set(`${g}.${tg}`, {
          a: host.get(`lora.${g}.${tg}.a`)!,
          b: host.get(`lora.${g}.${tg}.b`)!,
        });
      }
    }
    return { lora, head: { w: host.get("head.w")!, b: host.get("head.b")! } };
  }

  /** Fill every f32 activation buffer with NaN (tests: proves nothing reads stale memory). */
  poisonActivations(): void {
    for (const t of Object.values(this.a)) if (t.dtype === "f32") this.rt.fill(t, NaN);
    for (const l of this.layers) {
      for (const [k, t] of Object.entries(l)) if (k !== "lora") this.rt.fill(t as GpuTensor, NaN);
      for (const s of l.lora.values()) {
        this.rt.fill(s.u, NaN);
        if (s.xd) this.rt.fill(s.xd, NaN);
      }
    }
    for (const p of this.train.values()) {
      this.rt.fill(p.grad, NaN);
      if (this.perSampleOn) this.rt.fill(p.perSample, NaN);
    }
  }

  /** Read any named tensor (tests, export). */
  readTensor(name: string): Promise<Float32Array> {
    return this.rt.read(this.p(name));
  }

  /** Overwrite a named tensor from the host (tests; trainer restores). */
  writeTensor(name: string, data: Float32Array): void {
    this.rt.write(this.p(name), data);
  }
}
