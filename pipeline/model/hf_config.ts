/**
 * Hugging Face `config.json` ⇄ EncoderConfig for BERT, ALBERT and RoBERTa.
 *
 * Fields absent from config.json take the defaults of the matching transformers config class
 * (BertConfig / AlbertConfig / RobertaConfig), because that is what `from_pretrained` would use;
 * the structural sizes (vocab, hidden, layers, heads, intermediate) are required.
 */
import type { Activation, EncoderConfig, ModelType } from "./types.ts";
import { CheckpointError } from "./safetensors.ts";

export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ["bert", "albert", "roberta"];

/** HF activation names → ours. The tanh-approximation aliases are the same function. */
const ACTIVATIONS: Record<string, Activation> = {
  gelu: "gelu",
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu_fast: "gelu_new",
  relu: "relu",
};

interface Defaults {
  layerNormEps: number;
  hiddenAct: string;
  typeVocabSize: number;
  padTokenId: number;
  maxPositions: number;
}

const DEFAULTS: Record<ModelType, Defaults> = {
  bert: {
    layerNormEps: 1e-12,
    hiddenAct: "gelu",
    typeVocabSize: 2,
    padTokenId: 0,
    maxPositions: 512,
  },
  albert: {
    layerNormEps: 1e-12,
    hiddenAct: "gelu_new",
    typeVocabSize: 2,
    padTokenId: 0,
    maxPositions: 512,
  },
  roberta: {
    layerNormEps: 1e-12,
    hiddenAct: "gelu",
    typeVocabSize: 2,
    padTokenId: 1,
    maxPositions: 512,
  },
};

/** Parse a config.json object. `file` names the file in errors. */
export function parseHfConfig(json: unknown, file = "config.json"): EncoderConfig {
  const fail = (field: string, msg: string): never => {
    throw new CheckpointError(`${file}: field "${field}" ${msg}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new CheckpointError(`${file}: not a JSON object`);
  }
  const j = json as Record<string, unknown>;
  const mt = j.model_type;
  if (typeof mt !== "string" || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt)) {
    fail(
      "model_type",
      `is ${JSON.stringify(mt)}; supported model types: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    );
  }
  const modelType = mt as ModelType;
  const d = DEFAULTS[modelType];
  const int = (field: string, def?: number, min = 1): number => {
    const v = j[field] ?? def;
    if (v === undefined) fail(field, "is missing");
    if (!Number.isSafeInteger(v) || (v as number) < min) {
      fail(field, `must be an integer >= ${min}, found ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  if (hiddenSize % numHeads !== 0) {
    fail("num_attention_heads", `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  }
  const numLayers = int("num_hidden_layers");
  const eps = j.layer_norm_eps ?? d.layerNormEps;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    fail("layer_norm_eps", `must be a positive number, found ${JSON.stringify(eps)}`);
  }
  const act = j.hidden_act ?? d.hiddenAct;
  if (typeof act !== "string" || !(act in ACTIVATIONS)) {
    fail(
      "hidden_act",
      `is ${JSON.stringify(act)}; supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
    );
  }
  const pet = j.position_embedding_type;
  if (pet !== undefined && pet !== null && pet !== "absolute") {
    fail("position_embedding_type", `is ${JSON.stringify(pet)}; only "absolute" is supported`);
  }
  let embeddingSize = hiddenSize;
  let numHiddenGroups = numLayers;
  if (modelType === "albert") {
    embeddingSize = int("embedding_size", 128);
    numHiddenGroups = int("num_hidden_groups", 1);
    if (numHiddenGroups > numLayers) {
      fail("num_hidden_groups", `(${numHiddenGroups}) exceeds num_hidden_layers (${numLayers})`);
    }
    const inner = int("inner_group_num", 1);
    if (inner !== 1) {
      fail("inner_group_num", `is ${inner}; only 1 (every released ALBERT) is supported`);
    }
  }
  const padTokenId = int("pad_token_id", d.padTokenId, 0);
  const vocabSize = int("vocab_size");
  if (padTokenId >= vocabSize) fail("pad_token_id", `(${padTokenId}) >= vocab_size (${vocabSize})`);
  const maxPositions = int("max_position_embeddings", d.maxPositions);
  const positionOffset = modelType === "roberta" ? padTokenId + 1 : 0;
  if (positionOffset >= maxPositions) {
    fail("max_position_embeddings", `(${maxPositions}) leaves no position after the offset`);
  }
  return {
    modelType,
    vocabSize,
    embeddingSize,
    hiddenSize,
    numLayers,
    numHeads,
    intermediateSize: int("intermediate_size"),
    maxPositions,
    typeVocabSize: int("type_vocab_size", d.typeVocabSize),
    layerNormEps: eps as number,
    hiddenAct: ACTIVATIONS[act as string],
    numHiddenGroups,
    padTokenId,
    positionOffset,
  };
}

/** Read and parse `<dir>/config.json`. */
export async function readHfConfig(dir: string): Promise<EncoderConfig> {
  const file = `${dir}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${file}: file not found`);
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(json, file);
}

const CLASS_PREFIX: Record<ModelType, string> = {
  bert: "Bert",
  albert: "Albert",
  roberta: "Roberta",
};

export interface HfConfigExtras {
  /** e.g. ["BertForSequenceClassification"]; default `<Prefix>Model`. */
  architectures?: string[];
  /** Label names for a classification head (writes id2label/label2id/num_labels). */
  labels?: string[];
  /** "multi_label_classification" for multi-label heads. */
  problemType?: string;
  /** Extra keys copied verbatim (win over ours only where we do not set the key). */
  passthrough?: Record<string, unknown>;
}

/** EncoderConfig → a config.json object transformers loads (`AutoConfig.from_pretrained`). */
export function toHfConfig(c: EncoderConfig, extras: HfConfigExtras = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...extras.passthrough,
    architectures: extras.architectures ?? [`${CLASS_PREFIX[c.modelType]}Model`],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    intermediate_size: c.intermediateSize,
    hidden_act: c.hiddenAct,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: c.maxPositions,
    type_vocab_size: c.typeVocabSize,
    initializer_range: 0.02,
    layer_norm_eps: c.layerNormEps,
    pad_token_id: c.padTokenId,
    position_embedding_type: "absolute",
  };
  if (c.modelType === "albert") {
    out.embedding_size = c.embeddingSize;
    out.num_hidden_groups = c.numHiddenGroups;
    out.inner_group_num = 1;
    out.hidden_dropout_prob = 0;
    out.attention_probs_dropout_prob = 0;
  }
  if (c.modelType === "roberta") {
    out.bos_token_id = 0;
    out.eos_token_id = 2;
  }
  if (extras.labels) {
    out.num_labels = extras.labels.length;
    out.id2label = Object.fromEntries(extras.labels.map((l, i) => [String(i), l]));
    out.label2id = Object.fromEntries(extras.labels.map((l, i) => [l, i]));
  }
  if (extras.problemType) out.problem_type = extras.problemType;
  return out;
}
