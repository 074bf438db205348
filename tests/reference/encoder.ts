/**
 * Float64 reference of the encoder classifier: BERT (post-LN), ALBERT (E→H projection, shared
 * layer groups), RoBERTa (position ids from padding_idx + 1 over non-pad tokens), LoRA on chosen
 * linears, pooler or [CLS], classification head, per-sample BCE (label mask) / CE losses.
 *
 * Written plainly (one sample at a time, unpadded) so it is easy to audit: each sample is run at
 * its true length, which is exactly what a key-padding mask must reproduce on a padded batch.
 * Parameters are a name → Float64Array map using the names of pipeline/model/params.ts, so finite
 * differences can perturb any tensor the GPU reports a gradient for.
 */
import type {
  EncoderConfig,
  EncoderWeights,
  HeadKind,
  HeadWeights,
  LoraTarget,
  LoraWeights,
} from "../../pipeline/model/types.ts";
import { linearDims, namedTensors, weightSetOf } from "../../pipeline/model/params.ts";

export type RefParams = Map<string, Float64Array>;

export interface RefSpec {
  config: EncoderConfig;
  head: { kind: HeadKind; numLabels: number };
  /** LoRA targets present in the params and their scale s = alpha / rank. */
  lora?: { targets: LoraTarget[]; rank: number; scale: number };
  /** "mean": the head reads the mean of the top token states (the pooler is bypassed). */
  pooling?: "cls" | "mean";
}

export interface RefSample {
  ids: number[];
  typeIds?: number[];
  /** multi-label: one 0/1 target per label; multi-class: [classIndex]. */
  labels: number[];
  /** multi-label only: 1 = the label counts, 0 = ignored (e.g. uncertain/blank). */
  labelMask?: number[];
}

/** Copy weights (f32) into a float64 parameter map. */
export function refParams(
  c: EncoderConfig,
  w: EncoderWeights,
  lora?: LoraWeights,
  head?: HeadWeights,
): RefParams {
  const m: RefParams = new Map();
  for (const [k, t] of namedTensors(c, w, lora, head)) m.set(k, Float64Array.from(t.data));
  return m;
}

function get(p: RefParams, name: string): Float64Array {
  const v = p.get(name);
  if (!v) throw new Error(`reference: missing parameter ${name}`);
  return v;
}

/** y[t, o] = Σ_i x[t, i] · w[o, i] + b[o] */
function linear(x: Float64Array, t: number, inn: number, w: Float64Array, b: Float64Array) {
  const out = b.length;
  const y = new Float64Array(t * out);
  for (let r = 0; r < t; r++) {
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < inn; i++) s += x[r * inn + i] * w[o * inn + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** Linear with an optional LoRA term: y += scale · (x·Aᵀ)·Bᵀ. */
function projection(
  spec: RefSpec,
  p: RefParams,
  g: number,
  target: LoraTarget,
  x: Float64Array,
  t: number,
): Float64Array {
  const [out, inn] = linearDims(spec.config, target);
  const y = linear(x, t, inn, get(p, `L${g}.${target}.w`), get(p, `L${g}.${target}.b`));
  if (spec.lora && spec.lora.targets.includes(target)) {
    const r = spec.lora.rank;
    const a = get(p, `lora.${g}.${target}.a`);
    const b = get(p, `lora.${g}.${target}.b`);
    const u = linear(x, t, inn, a, new Float64Array(r));
    const d = linear(u, t, r, b, new Float64Array(out));
    for (let i = 0; i < y.length; i++) y[i] += spec.lora.scale * d[i];
  }
  return y;
}

function layerNorm(
  x: Float64Array,
  t: number,
  n: number,
  g: Float64Array,
  b: Float64Array,
  eps: number,
) {
  const y = new Float64Array(t * n);
  for (let r = 0; r < t; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    v /= n;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * inv * g[i] + b[i];
  }
  return y;
}

/** erf to ~1e-14: Taylor series for |x| < 3, continued fraction of erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    for (let n = 1; n < 100; n++) {
      term *= -x * x / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 2 / Math.sqrt(Math.PI) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export function activation(kind: EncoderConfig["hiddenAct"], x: number): number {
  switch (kind) {
    case "gelu":
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case "gelu_new":
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case "relu":
      return Math.max(0, x);
  }
}

/** Position ids: BERT/ALBERT 0..T-1; RoBERTa HF rule (cumsum of non-pad mask) + padding_idx. */
export function positionIds(c: EncoderConfig, ids: readonly number[]): number[] {
  if (c.modelType !== "roberta") return ids.map((_, i) => i + c.positionOffset);
  let count = 0;
  return ids.map((id) => {
    if (id === c.padTokenId) return c.padTokenId;
    count++;
    return c.positionOffset - 1 + count;
  });
}

/** Final hidden states [T, H] of one unpadded sequence. */
export function refEncode(spec: RefSpec, p: RefParams, ids: number[], typeIds?: number[]) {
  const c = spec.config;
  const t = ids.length, e = c.embeddingSize, h = c.hiddenSize;
  const word = get(p, "emb.word"), pos = get(p, "emb.pos"), typ = get(p, "emb.type");
  const pids = positionIds(c, ids);
  let x = new Float64Array(t * e);
  for (let r = 0; r < t; r++) {
    const ty = typeIds?.[r] ?? 0;
    for (let i = 0; i < e; i++) {
      x[r * e + i] = word[ids[r] * e + i] + pos[pids[r] * e + i] + typ[ty * e + i];
    }
  }
  x = layerNorm(x, t, e, get(p, "emb.ln.g"), get(p, "emb.ln.b"), c.layerNormEps);
  if (c.modelType === "albert") x = linear(x, t, e, get(p, "emb.proj.w"), get(p, "emb.proj.b"));
  const nh = c.numHeads, dh = h / nh;
  // Masking is implicit: the sequence is unpadded, every key is real.
  for (let layer = 0; layer < c.numLayers; layer++) {
    const g = weightSetOf(c, layer);
    const q = projection(spec, p, g, "query", x, t);
    const k = projection(spec, p, g, "key", x, t);
    const v = projection(spec, p, g, "value", x, t);
    const ctx = new Float64Array(t * h);
    for (let hd = 0; hd < nh; hd++) {
      for (let i = 0; i < t; i++) {
        const s = new Float64Array(t);
        let mx = -Infinity;
        for (let j = 0; j < t; j++) {
          let d = 0;
          for (let u = 0; u < dh; u++) d += q[i * h + hd * dh + u] * k[j * h + hd * dh + u];
          s[j] = d / Math.sqrt(dh);
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < t; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let u = 0; u < dh; u++) {
          let acc = 0;
          for (let j = 0; j < t; j++) acc += s[j] / z * v[j * h + hd * dh + u];
          ctx[i * h + hd * dh + u] = acc;
        }
      }
    }
    const ao = projection(spec, p, g, "attention.output", ctx, t);
    for (let i = 0; i < ao.length; i++) ao[i] += x[i];
    const h1 = layerNorm(
      ao,
      t,
      h,
      get(p, `L${g}.attnLn.g`),
      get(p, `L${g}.attnLn.b`),
      c.layerNormEps,
    );
    const inter = projection(spec, p, g, "intermediate", h1, t);
    for (let i = 0; i < inter.length; i++) inter[i] = activation(c.hiddenAct, inter[i]);
    const out = projection(spec, p, g, "output", inter, t);
    for (let i = 0; i < out.length; i++) out[i] += h1[i];
    x = layerNorm(out, t, h, get(p, `L${g}.outLn.g`), get(p, `L${g}.outLn.b`), c.layerNormEps);
  }
  return x;
}

/**
 * Classifier logits of one sample: pooler (dense + tanh) on [CLS] when present, else [CLS];
 * or the mean of the token states (spec.pooling "mean").
 */
export function refLogits(spec: RefSpec, p: RefParams, s: RefSample): Float64Array {
  const c = spec.config, h = c.hiddenSize;
  const hid = refEncode(spec, p, s.ids, s.typeIds);
  if (spec.pooling === "mean") {
    const t = hid.length / h, mean = new Float64Array(h);
    for (let k = 0; k < t; k++) for (let j = 0; j < h; j++) mean[j] += hid[k * h + j] / t;
    return linear(mean, 1, h, get(p, "head.w"), get(p, "head.b"));
  }
  let cls = hid.slice(0, h);
  const pw = p.get("pooler.w");
  if (pw) {
    cls = linear(cls, 1, h, pw, get(p, "pooler.b"));
    cls = cls.map(Math.tanh);
  }
  return linear(cls, 1, h, get(p, "head.w"), get(p, "head.b"));
}

/** softplus(x) = log(1 + eˣ), stable for large |x|. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/**
 * Per-sample loss, one scalar per sample:
 * - multi-label: Σ_l m_l · BCEWithLogits(z_l, y_l) / max(1, Σ_l m_l) (mean over counted labels);
 * - multi-class: −log softmax(z)[y].
 */
export function lossFromLogits(
  kind: HeadKind,
  z: ArrayLike<number>,
  labels: readonly number[],
  mask?: readonly number[],
): number {
  if (kind === "multi-class") {
    let mx = -Infinity;
    for (let i = 0; i < z.length; i++) mx = Math.max(mx, z[i]);
    let s = 0;
    for (let i = 0; i < z.length; i++) s += Math.exp(z[i] - mx);
    return mx + Math.log(s) - z[labels[0]];
  }
  let sum = 0, count = 0;
  for (let l = 0; l < z.length; l++) {
    const m = mask ? mask[l] : 1;
    if (!m) continue;
    // BCE with logits: softplus(z) − y·z
    sum += m * (softplus(z[l]) - labels[l] * z[l]);
    count += m;
  }
  return sum / Math.max(1, count);
}

export function refSampleLoss(spec: RefSpec, p: RefParams, s: RefSample): number {
  return lossFromLogits(spec.head.kind, refLogits(spec, p, s), s.labels, s.labelMask);
}

/** Batch loss = Σ_i loss_i (the GPU gradients are of this sum; a trainer divides as it needs). */
export function refBatchLoss(spec: RefSpec, p: RefParams, batch: RefSample[]): number {
  let s = 0;
  for (const x of batch) s += refSampleLoss(spec, p, x);
  return s;
}

/**
 * Masked-LM loss of one sequence: Σ over positions with labels[j] ≥ 0 of softmax CE of
 * LN(act(hidden_j·Tᵀ + t))·Wordᵀ + bias against labels[j] (decoder tied to `emb.word`; the head
 * tensors are `mlm.transform.w|b`, `mlm.ln.g|b`, `mlm.bias`).
 */
export function refMlmLoss(
  spec: RefSpec,
  p: RefParams,
  ids: number[],
  labels: readonly number[],
  typeIds?: number[],
): number {
  const c = spec.config, h = c.hiddenSize;
  const hid = refEncode(spec, p, ids, typeIds);
  const tw = get(p, "mlm.transform.w"), tb = get(p, "mlm.transform.b");
  const w = tb.length, word = get(p, "emb.word"), bias = get(p, "mlm.bias"), V = bias.length;
  let total = 0;
  labels.forEach((y, j) => {
    if (y < 0) return;
    const row = hid.slice(j * h, (j + 1) * h);
    const pre = linear(row, 1, h, tw, tb).map((v) => activation(c.hiddenAct, v));
    const ln = layerNorm(pre, 1, w, get(p, "mlm.ln.g"), get(p, "mlm.ln.b"), c.layerNormEps);
    const z = linear(ln, 1, w, word, bias);
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, z[v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[v] - mx);
    total += mx + Math.log(s) - z[y];
  });
  return total;
}
