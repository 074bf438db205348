/**
 * Canonical names and shapes of every tensor of an encoder + LoRA + head, shared by the GPU
 * encoder (`parameters()`), the float64 reference (tests/reference/encoder.ts) and the tests, so
 * a gradient on the GPU can be matched to a finite difference of the reference by name.
 *
 * Names: `emb.word|pos|type`, `emb.ln.g|b`, `emb.proj.w|b` (ALBERT), `L{g}.{target}.w|b` for the
 * six linears of layer (group) g, `L{g}.attnLn.g|b`, `L{g}.outLn.g|b`, `pooler.w|b`, `head.w|b`,
 * `lora.{g}.{target}.a|b` (the `{g}.{target}` part is the LoraWeights key), and the masked-LM
 * head `mlm.transform.w|b`, `mlm.ln.g|b`, `mlm.bias` (its decoder is tied to `emb.word`).
 */
import type { MlmHeadWeights } from "./checkpoint.ts";
import type {
  EncoderConfig,
  EncoderWeights,
  HeadWeights,
  HostTensor,
  LayerWeights,
  Linear,
  LoraTarget,
  LoraWeights,
} from "./types.ts";
import { LORA_TARGETS } from "./types.ts";

export type ParamKind =
  | "embedding"
  | "layernorm"
  | "linear.w"
  | "linear.b"
  | "lora"
  | "head"
  | "mlm";

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
}

/** Number of distinct layer weight sets (ALBERT shares groups; BERT/RoBERTa: one per layer). */
export function numWeightSets(c: EncoderConfig): number {
  return c.modelType === "albert" ? c.numHiddenGroups : c.numLayers;
}

/** Which weight set layer application `i` uses (ALBERT: floor(i·groups/layers)). */
export function weightSetOf(c: EncoderConfig, i: number): number {
  return c.modelType === "albert" ? Math.floor(i * c.numHiddenGroups / c.numLayers) : i;
}

/** [out, in] of each LoRA-targetable linear. */
export function linearDims(c: EncoderConfig, t: LoraTarget): [number, number] {
  const h = c.hiddenSize, f = c.intermediateSize;
  switch (t) {
    case "intermediate":
      return [f, h];
    case "output":
      return [h, f];
    default:
      return [h, h];
  }
}

/** The LayerWeights field holding a target's linear. */
export function layerLinear(l: LayerWeights, t: LoraTarget): Linear {
  switch (t) {
    case "query":
      return l.query;
    case "key":
      return l.key;
    case "value":
      return l.value;
    case "attention.output":
      return l.attnOut;
    case "intermediate":
      return l.inter;
    case "output":
      return l.out;
  }
}

/** Every base-model tensor in a fixed order. */
export function baseParamSpecs(c: EncoderConfig, hasPooler: boolean): ParamSpec[] {
  const e = c.embeddingSize, h = c.hiddenSize;
  const out: ParamSpec[] = [
    { name: "emb.word", shape: [c.vocabSize, e], kind: "embedding" },
    { name: "emb.pos", shape: [c.maxPositions, e], kind: "embedding" },
    { name: "emb.type", shape: [c.typeVocabSize, e], kind: "embedding" },
    { name: "emb.ln.g", shape: [e], kind: "layernorm" },
    { name: "emb.ln.b", shape: [e], kind: "layernorm" },
  ];
  if (c.modelType === "albert") {
    out.push({ name: "emb.proj.w", shape: [h, e], kind: "linear.w" });
    out.push({ name: "emb.proj.b", shape: [h], kind: "linear.b" });
  }
  for (let g = 0; g < numWeightSets(c); g++) {
    for (const t of LORA_TARGETS) {
      const [o, i] = linearDims(c, t);
      out.push({ name: `L${g}.${t}.w`, shape: [o, i], kind: "linear.w" });
      out.push({ name: `L${g}.${t}.b`, shape: [o], kind: "linear.b" });
    }
    for (const ln of ["attnLn", "outLn"]) {
      out.push({ name: `L${g}.${ln}.g`, shape: [h], kind: "layernorm" });
      out.push({ name: `L${g}.${ln}.b`, shape: [h], kind: "layernorm" });
    }
  }
  if (hasPooler) {
    out.push({ name: "pooler.w", shape: [h, h], kind: "linear.w" });
    out.push({ name: "pooler.b", shape: [h], kind: "linear.b" });
  }
  return out;
}

/** LoRA tensors for the given targets, in a fixed order. */
export function loraParamSpecs(c: EncoderConfig, targets: readonly LoraTarget[], rank: number) {
  const out: ParamSpec[] = [];
  for (let g = 0; g < numWeightSets(c); g++) {
    for (const t of LORA_TARGETS) {
      if (!targets.includes(t)) continue;
      const [o, i] = linearDims(c, t);
      out.push({ name: `lora.${g}.${t}.a`, shape: [rank, i], kind: "lora" });
      out.push({ name: `lora.${g}.${t}.b`, shape: [o, rank], kind: "lora" });
    }
  }
  return out;
}

export function headParamSpecs(c: EncoderConfig, numLabels: number): ParamSpec[] {
  return [
    { name: "head.w", shape: [numLabels, c.hiddenSize], kind: "head" },
    { name: "head.b", shape: [numLabels], kind: "head" },
  ];
}

/** Flatten EncoderWeights (+ optional LoRA and head) into a name → HostTensor map. */
export function namedTensors(
  c: EncoderConfig,
  w: EncoderWeights,
  lora?: LoraWeights,
  head?: HeadWeights,
): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>();
  m.set("emb.word", w.wordEmb);
  m.set("emb.pos", w.posEmb);
  m.set("emb.type", w.typeEmb);
  m.set("emb.ln.g", w.embLn.gamma);
  m.set("emb.ln.b", w.embLn.beta);
  if (c.modelType === "albert") {
    if (!w.embProj) throw new Error("ALBERT weights lack embProj (embedding_hidden_mapping_in)");
    m.set("emb.proj.w", w.embProj.w);
    m.set("emb.proj.b", w.embProj.b);
  }
  if (w.layers.length !== numWeightSets(c)) {
    throw new Error(`weights have ${w.layers.length} layer sets, config needs ${numWeightSets(c)}`);
  }
  w.layers.forEach((l, g) => {
    for (const t of LORA_TARGETS) {
      const lin = layerLinear(l, t);
      m.set(`L${g}.${t}.w`, lin.w);
      m.set(`L${g}.${t}.b`, lin.b);
    }
    m.set(`L${g}.attnLn.g`, l.attnLn.gamma);
    m.set(`L${g}.attnLn.b`, l.attnLn.beta);
    m.set(`L${g}.outLn.g`, l.outLn.gamma);
    m.set(`L${g}.outLn.b`, l.outLn.beta);
  });
  if (w.pooler) {
    m.set("pooler.w", w.pooler.w);
    m.set("pooler.b", w.pooler.b);
  }
  if (lora) {
    for (const [key, ad] of lora) {
      m.set(`lora.${key}.a`, ad.a);
      m.set(`lora.${key}.b`, ad.b);
    }
  }
  if (head) {
    m.set("head.w", head.w);
    m.set("head.b", head.b);
  }
  return m;
}

/** Width of the MLM transform's output (= the word-embedding width the tied decoder needs). */
export function mlmWidth(c: EncoderConfig): number {
  return c.modelType === "albert" ? c.embeddingSize : c.hiddenSize;
}

/** The masked-LM head's own tensors (the decoder weight is `emb.word`, not listed here). */
export function mlmParamSpecs(c: EncoderConfig): ParamSpec[] {
  const w = mlmWidth(c);
  return [
    { name: "mlm.transform.w", shape: [w, c.hiddenSize], kind: "mlm" },
    { name: "mlm.transform.b", shape: [w], kind: "mlm" },
    { name: "mlm.ln.g", shape: [w], kind: "mlm" },
    { name: "mlm.ln.b", shape: [w], kind: "mlm" },
    { name: "mlm.bias", shape: [c.vocabSize], kind: "mlm" },
  ];
}

/** MlmHeadWeights → name map (names of `mlmParamSpecs`). */
export function mlmNamedTensors(h: MlmHeadWeights): Map<string, HostTensor> {
  return new Map([
    ["mlm.transform.w", h.transform.w],
    ["mlm.transform.b", h.transform.b],
    ["mlm.ln.g", h.ln.gamma],
    ["mlm.ln.b", h.ln.beta],
    ["mlm.bias", h.bias],
  ]);
}

/** Name map → MlmHeadWeights (inverse of `mlmNamedTensors`). */
export function mlmFromNamed(m: ReadonlyMap<string, HostTensor>): MlmHeadWeights {
  const g = (n: string) => {
    const t = m.get(n);
    if (!t) throw new RangeError(`missing tensor ${n}`);
    return t;
  };
  return {
    transform: { w: g("mlm.transform.w"), b: g("mlm.transform.b") },
    ln: { gamma: g("mlm.ln.g"), beta: g("mlm.ln.b") },
    bias: g("mlm.bias"),
  };
}

/** Name map → EncoderWeights (inverse of `namedTensors` for the base model). */
export function encoderFromNamed(
  c: EncoderConfig,
  m: ReadonlyMap<string, HostTensor>,
  hasPooler: boolean,
): EncoderWeights {
  const g = (n: string) => {
    const t = m.get(n);
    if (!t) throw new RangeError(`missing tensor ${n}`);
    return t;
  };
  const lin = (n: string): Linear => ({ w: g(`${n}.w`), b: g(`${n}.b`) });
  const ln = (n: string) => ({ gamma: g(`${n}.g`), beta: g(`${n}.b`) });
  return {
    wordEmb: g("emb.word"),
    posEmb: g("emb.pos"),
    typeEmb: g("emb.type"),
    embLn: ln("emb.ln"),
    embProj: c.modelType === "albert" ? lin("emb.proj") : undefined,
    layers: Array.from({ length: numWeightSets(c) }, (_, l): LayerWeights => ({
      query: lin(`L${l}.query`),
      key: lin(`L${l}.key`),
      value: lin(`L${l}.value`),
      attnOut: lin(`L${l}.attention.output`),
      attnLn: ln(`L${l}.attnLn`),
      inter: lin(`L${l}.intermediate`),
      out: lin(`L${l}.output`),
      outLn: ln(`L${l}.outLn`),
    })),
    pooler: hasPooler ? lin("pooler") : undefined,
  };
}
