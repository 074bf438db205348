/**
 * HF checkpoint folders ⇄ (EncoderConfig, EncoderWeights, Tokenizer).
 *
 * One naming table per model type (below) serves both directions, so load and save cannot drift.
 * Names may carry the task-model prefix (`bert.` as BertForSequenceClassification saves them) or
 * not (BertModel.save_pretrained); known task heads are ignored unless `keepHeads` is set, and
 * anything else unexpected is an error rather than a silently unused tensor.
 */
import type {
  EncoderConfig,
  EncoderWeights,
  HeadWeights,
  HostTensor,
  LayerNormWeights,
  LayerWeights,
  Linear,
  ModelType,
  Tokenizer,
} from "./types.ts";
import {
  CheckpointError,
  openModelTensors,
  type TensorSource,
  type WriteDtype,
  writeModelSafetensors,
} from "./safetensors.ts";
import { readHfConfig, toHfConfig } from "./hf_config.ts";
import { loadTokenizer } from "./tokenizer/load.ts";
import { writeFileAtomic, writeJsonAtomic } from "../fs.ts";

export { CheckpointError };

interface LayerNames {
  query: string;
  key: string;
  value: string;
  attnOut: string;
  attnLn: string;
  inter: string;
  out: string;
  outLn: string;
}

/** Module names (without `.weight`/`.bias`) of encoder layer (ALBERT: group) `i`. */
export function layerModuleNames(mt: ModelType, prefix: string, i: number): LayerNames {
  if (mt === "albert") {
    const p = `${prefix}encoder.albert_layer_groups.${i}.albert_layers.0.`;
    return {
      query: `${p}attention.query`,
      key: `${p}attention.key`,
      value: `${p}attention.value`,
      attnOut: `${p}attention.dense`,
      attnLn: `${p}attention.LayerNorm`,
      inter: `${p}ffn`,
      out: `${p}ffn_output`,
      outLn: `${p}full_layer_layer_norm`,
    };
  }
  const p = `${prefix}encoder.layer.${i}.`;
  return {
    query: `${p}attention.self.query`,
    key: `${p}attention.self.key`,
    value: `${p}attention.self.value`,
    attnOut: `${p}attention.output.dense`,
    attnLn: `${p}attention.output.LayerNorm`,
    inter: `${p}intermediate.dense`,
    out: `${p}output.dense`,
    outLn: `${p}output.LayerNorm`,
  };
}

function poolerModule(mt: ModelType, prefix: string): string {
  return mt === "albert" ? `${prefix}pooler` : `${prefix}pooler.dense`;
}

/** Tensor-name prefix of the base model inside task models (`bert.`, `albert.`, `roberta.`). */
export function basePrefix(mt: ModelType): string {
  return `${mt}.`;
}

/** Weights of the masked-LM head (decoder weight tied to the word embeddings). */
export interface MlmHeadWeights {
  /** BERT/RoBERTa [H, H]; ALBERT [E, H]. */
  transform: Linear;
  ln: LayerNormWeights;
  /** [V] output bias. */
  bias: HostTensor;
}

function mlmModules(mt: ModelType): { transform: string; ln: string; bias: string } {
  switch (mt) {
    case "bert":
      return {
        transform: "cls.predictions.transform.dense",
        ln: "cls.predictions.transform.LayerNorm",
        bias: "cls.predictions.bias",
      };
    case "albert":
      return {
        transform: "predictions.dense",
        ln: "predictions.LayerNorm",
        bias: "predictions.bias",
      };
    case "roberta":
      return { transform: "lm_head.dense", ln: "lm_head.layer_norm", bias: "lm_head.bias" };
  }
}

/** Names of task heads that a base-model load skips (or returns in `extras` with keepHeads). */
const HEAD_PREFIXES = [
  "cls.",
  "classifier.",
  "predictions.",
  "sop_classifier.",
  "lm_head.",
  "qa_outputs.",
];
/** Non-parameter buffers some checkpoints carry; never needed. */
const BUFFER_SUFFIXES = ["embeddings.position_ids", "embeddings.token_type_ids"];

type Visit = (name: string, shape: number[]) => HostTensor;

function linear(visit: Visit, mod: string, out: number, inp: number): Linear {
  return { w: visit(`${mod}.weight`, [out, inp]), b: visit(`${mod}.bias`, [out]) };
}
function layerNorm(visit: Visit, mod: string, n: number): LayerNormWeights {
  return { gamma: visit(`${mod}.weight`, [n]), beta: visit(`${mod}.bias`, [n]) };
}

/**
 * Walk every encoder tensor in a fixed order, calling `visit(name, expectedShape)`; the
 * returned tensors are assembled into EncoderWeights. Loading passes a reader, saving a
 * lookup into the weights being written.
 */
function walkEncoder(
  c: EncoderConfig,
  prefix: string,
  pooler: boolean,
  visit: Visit,
): EncoderWeights {
  const { hiddenSize: H, embeddingSize: E, intermediateSize: I } = c;
  const mt = c.modelType;
  const emb = `${prefix}embeddings`;
  const w: EncoderWeights = {
    wordEmb: visit(`${emb}.word_embeddings.weight`, [c.vocabSize, E]),
    posEmb: visit(`${emb}.position_embeddings.weight`, [c.maxPositions, E]),
    typeEmb: visit(`${emb}.token_type_embeddings.weight`, [c.typeVocabSize, E]),
    embLn: layerNorm(visit, `${emb}.LayerNorm`, E),
    layers: [],
  };
  if (mt === "albert") {
    w.embProj = linear(visit, `${prefix}encoder.embedding_hidden_mapping_in`, H, E);
  }
  const n = mt === "albert" ? c.numHiddenGroups : c.numLayers;
  for (let i = 0; i < n; i++) {
    const m = layerModuleNames(mt, prefix, i);
    const layer: LayerWeights = {
      query: linear(visit, m.query, H, H),
      key: linear(visit, m.key, H, H),
      value: linear(visit, m.value, H, H),
      attnOut: linear(visit, m.attnOut, H, H),
      attnLn: layerNorm(visit, m.attnLn, H),
      inter: linear(visit, m.inter, I, H),
      out: linear(visit, m.out, H, I),
      outLn: layerNorm(visit, m.outLn, H),
    };
    w.layers.push(layer);
  }
  if (pooler) w.pooler = linear(visit, poolerModule(mt, prefix), H, H);
  return w;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Flatten EncoderWeights to HF names (checking every shape against the config). */
export function encoderToTensors(
  c: EncoderConfig,
  w: EncoderWeights,
  prefix = basePrefix(c.modelType),
): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  // Walk the same table as loading, pulling tensors out of `w` in walk order.
  const flat = flattenInWalkOrder(w);
  let k = 0;
  walkEncoder(c, prefix, w.pooler !== undefined, (name, shape) => {
    const t = flat[k++];
    if (!t) throw new CheckpointError(`weights: tensor "${name}" is missing`);
    if (!sameShape(t.shape, shape) || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new CheckpointError(
        `weights: tensor "${name}": expected ${shapeStr(shape)}, found ${shapeStr(t.shape)}`,
      );
    }
    out.set(name, t);
    return t;
  });
  if (k !== flat.length) {
    throw new CheckpointError(
      `weights: ${flat.length - k} more tensors than config allows (layers: ${w.layers.length})`,
    );
  }
  return out;
}

function flattenInWalkOrder(w: EncoderWeights): HostTensor[] {
  const lin = (l: Linear) => [l.w, l.b];
  const ln = (l: LayerNormWeights) => [l.gamma, l.beta];
  const out: HostTensor[] = [w.wordEmb, w.posEmb, w.typeEmb, ...ln(w.embLn)];
  if (w.embProj) out.push(...lin(w.embProj));
  for (const l of w.layers) {
    out.push(
      ...lin(l.query),
      ...lin(l.key),
      ...lin(l.value),
      ...lin(l.attnOut),
      ...ln(l.attnLn),
      ...lin(l.inter),
      ...lin(l.out),
      ...ln(l.outLn),
    );
  }
  if (w.pooler) out.push(...lin(w.pooler));
  return out;
}

/** Classifier head (`classifier.weight/bias`, as BertForSequenceClassification names it). */
export function headToTensors(h: HeadWeights): Map<string, HostTensor> {
  return new Map([["classifier.weight", h.w], ["classifier.bias", h.b]]);
}

export function mlmHeadToTensors(mt: ModelType, h: MlmHeadWeights): Map<string, HostTensor> {
  const m = mlmModules(mt);
  return new Map([
    [`${m.transform}.weight`, h.transform.w],
    [`${m.transform}.bias`, h.transform.b],
    [`${m.ln}.weight`, h.ln.gamma],
    [`${m.ln}.bias`, h.ln.beta],
    [m.bias, h.bias],
  ]);
}

/** The MLM head out of a checkpoint's `extras` (load with keepHeads), or undefined if absent. */
export function mlmHeadFromTensors(
  c: EncoderConfig,
  extras: ReadonlyMap<string, HostTensor>,
): MlmHeadWeights | undefined {
  const m = mlmModules(c.modelType);
  if (!extras.has(`${m.transform}.weight`)) return undefined;
  const tOut = c.modelType === "albert" ? c.embeddingSize : c.hiddenSize;
  const get: Visit = (name, shape) => {
    const t = extras.get(name);
    if (!t) throw new CheckpointError(`MLM head: tensor "${name}" is missing`);
    if (!sameShape(t.shape, shape)) {
      throw new CheckpointError(
        `MLM head: tensor "${name}": expected ${shapeStr(shape)}, found ${shapeStr(t.shape)}`,
      );
    }
    return t;
  };
  return {
    transform: linear(get, m.transform, tOut, c.hiddenSize),
    ln: layerNorm(get, m.ln, tOut),
    bias: get(m.bias, [c.vocabSize]),
  };
}

export interface LoadOptions {
  /** Return task-head tensors (cls.*, classifier.*, lm_head.*, …) in `extras` instead of skipping. */
  keepHeads?: boolean;
}

export interface LoadedEncoder {
  config: EncoderConfig;
  weights: EncoderWeights;
  /** Head tensors by their HF names (only with keepHeads). */
  extras: Map<string, HostTensor>;
  /** The prefix the checkpoint used ("bert." or ""). */
  prefix: string;
}

export interface LoadedCheckpoint extends LoadedEncoder {
  tokenizer: Tokenizer;
}

/** Map the tensors of `src` onto EncoderWeights for config `c`. */
export function tensorsToEncoder(
  c: EncoderConfig,
  src: TensorSource,
  opts: LoadOptions = {},
): LoadedEncoder {
  const base = basePrefix(c.modelType);
  const prefix = src.names.some((n) => n.startsWith(base)) ? base : "";
  const used = new Set<string>();
  const resolve = (name: string): string | undefined => {
    if (src.has(name)) return name;
    // TF-era checkpoints call LayerNorm parameters gamma/beta.
    const legacy = name.replace(/\.weight$/, ".gamma").replace(/\.bias$/, ".beta");
    return /LayerNorm|layer_norm/.test(name) && src.has(legacy) ? legacy : undefined;
  };
  const visit: Visit = (name, shape) => {
    const actual = resolve(name);
    if (actual === undefined) {
      throw new CheckpointError(`${src.where}: tensor "${name}" ${shapeStr(shape)} is missing`);
    }
    const found = src.shape(actual);
    if (!sameShape(found, shape)) {
      throw new CheckpointError(
        `${src.where}: tensor "${actual}": expected ${shapeStr(shape)}, found ${shapeStr(found)}`,
      );
    }
    used.add(actual);
    return src.tensor(actual);
  };
  const hasPooler = resolve(`${poolerModule(c.modelType, prefix)}.weight`) !== undefined;
  const weights = walkEncoder(c, prefix, hasPooler, visit);
  const extras = new Map<string, HostTensor>();
  const unexpected: string[] = [];
  for (const n of src.names) {
    if (used.has(n)) continue;
    if (BUFFER_SUFFIXES.some((s) => n === `${prefix}${s}`)) continue;
    if (prefix !== "" && HEAD_PREFIXES.some((h) => n.startsWith(h))) {
      if (opts.keepHeads) extras.set(n, src.tensor(n));
      continue;
    }
    unexpected.push(n);
  }
  if (unexpected.length > 0) {
    const list = unexpected.slice(0, 5).map((n) => `"${n}" ${shapeStr(src.shape(n))}`).join(", ");
    throw new CheckpointError(
      `${src.where}: ${unexpected.length} unexpected tensor(s) for a ${c.modelType} encoder with ` +
        `${
          c.modelType === "albert" ? `${c.numHiddenGroups} layer group(s)` : `${c.numLayers} layers`
        }: ` +
        `${list}${unexpected.length > 5 ? ", …" : ""}`,
    );
  }
  return { config: c, weights, extras, prefix };
}

/** config.json + safetensors weights of `dir`, without the tokenizer. */
export async function loadEncoder(dir: string, opts: LoadOptions = {}): Promise<LoadedEncoder> {
  const config = await readHfConfig(dir);
  return tensorsToEncoder(config, await openModelTensors(dir), opts);
}

/** A full HF checkpoint folder: config.json, (sharded) safetensors, tokenizer. */
export async function loadCheckpoint(
  dir: string,
  opts: LoadOptions = {},
): Promise<LoadedCheckpoint> {
  const enc = await loadEncoder(dir, opts);
  const tokenizer = await loadTokenizer(dir);
  checkVocabFits(dir, tokenizer, enc.config);
  return { ...enc, tokenizer };
}

/** A tokenizer whose ids run past the checkpoint's embedding table is an error naming `dir`. */
export function checkVocabFits(dir: string, tokenizer: Tokenizer, config: EncoderConfig): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(
      `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json vocab_size is ` +
        `${config.vocabSize}; ids past the embedding table would be out of range`,
    );
  }
}

/** Tokenizer files copied by a folder source, when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.txt",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
];

/**
 * Tokenizer files for a saved checkpoint: a folder (its known tokenizer files are copied), a list
 * of file paths, or file name → contents.
 */
export type TokenizerFiles =
  | string
  | readonly string[]
  | Readonly<Record<string, string | Uint8Array>>;

export interface SaveOptions {
  /** Sequence-classification head, saved as `classifier.*` (BertForSequenceClassification). */
  head?: HeadWeights;
  /** Label names of the head (config.json id2label). */
  labels?: string[];
  /** Multi-label head → problem_type multi_label_classification. */
  multiLabel?: boolean;
  /** Masked-LM head (pretraining). */
  mlmHead?: MlmHeadWeights;
  /** Further tensors written verbatim under their names. */
  extras?: ReadonlyMap<string, HostTensor>;
  dtype?: WriteDtype;
  /** > 1 writes sharded files + model.safetensors.index.json. */
  shards?: number;
  /** Extra config.json keys (e.g. the source config's other fields). */
  configPassthrough?: Record<string, unknown>;
}

/** Write an HF-layout folder: config.json, model.safetensors (or shards), tokenizer files. */
export async function saveCheckpoint(
  dir: string,
  config: EncoderConfig,
  weights: EncoderWeights,
  tokenizerFiles: TokenizerFiles,
  opts: SaveOptions = {},
): Promise<string[]> {
  const mt = config.modelType;
  const tensors = encoderToTensors(config, weights, basePrefix(mt));
  const add = (m: ReadonlyMap<string, HostTensor>) => {
    for (const [k, v] of m) {
      if (tensors.has(k)) throw new CheckpointError(`saveCheckpoint: tensor "${k}" given twice`);
      tensors.set(k, v);
    }
  };
  if (opts.head) {
    const { w, b } = opts.head;
    const L = w.shape[0];
    if (!sameShape(w.shape, [L, config.hiddenSize]) || !sameShape(b.shape, [L])) {
      throw new CheckpointError(
        `saveCheckpoint: head expected [numLabels, ${config.hiddenSize}] + [numLabels], found ` +
          `${shapeStr(w.shape)} + ${shapeStr(b.shape)}`,
      );
    }
    if (opts.labels && opts.labels.length !== L) {
      throw new CheckpointError(`saveCheckpoint: ${opts.labels.length} labels for a ${L}-way head`);
    }
    add(headToTensors(opts.head));
  }
  if (opts.mlmHead) {
    // Validate through the reader so a mis-shaped head fails here, not in transformers.
    const m = mlmHeadToTensors(mt, opts.mlmHead);
    mlmHeadFromTensors(config, m);
    add(m);
  }
  if (opts.extras) add(opts.extras);
  const P = { bert: "Bert", albert: "Albert", roberta: "Roberta" }[mt];
  const arch = opts.head
    ? `${P}ForSequenceClassification`
    : opts.mlmHead
    ? `${P}ForMaskedLM`
    : `${P}Model`;
  const labels = opts.labels ??
    (opts.head ? Array.from({ length: opts.head.w.shape[0] }, (_, i) => `LABEL_${i}`) : undefined);
  await Deno.mkdir(dir, { recursive: true });
  const written = await writeModelSafetensors(dir, tensors, {
    dtype: opts.dtype,
    shards: opts.shards,
  });
  await writeJsonAtomic(
    `${dir}/config.json`,
    toHfConfig(config, {
      architectures: [arch],
      labels,
      problemType: opts.head && opts.multiLabel ? "multi_label_classification" : undefined,
      passthrough: opts.configPassthrough,
    }),
  );
  written.push("config.json", ...await writeTokenizerFiles(dir, tokenizerFiles));
  return written;
}

async function writeTokenizerFiles(dir: string, files: TokenizerFiles): Promise<string[]> {
  const out: string[] = [];
  const baseName = (p: string) => p.replace(/^.*[\\/]/, "");
  if (typeof files === "string") {
    for (const name of TOKENIZER_FILES) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(`${files}/${name}`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      await writeFileAtomic(`${dir}/${name}`, bytes);
      out.push(name);
    }
    if (!out.includes("vocab.txt") && !out.includes("tokenizer.json")) {
      throw new CheckpointError(`${files}: no vocab.txt or tokenizer.json to copy`);
    }
  } else if (Array.isArray(files)) {
    for (const p of files as readonly string[]) {
      await writeFileAtomic(`${dir}/${baseName(p)}`, await Deno.readFile(p));
      out.push(baseName(p));
    }
  } else {
    for (const [name, content] of Object.entries(files as Record<string, string | Uint8Array>)) {
      if (name !== baseName(name)) {
        throw new CheckpointError(`tokenizer file name "${name}" has a folder`);
      }
      const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
      await writeFileAtomic(`${dir}/${name}`, bytes);
      out.push(name);
    }
  }
  return out;
}
