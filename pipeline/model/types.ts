/**
 * In-memory layout of encoder checkpoints, shared by the checkpoint loader, the float64 reference
 * and the GPU encoder. Linear weights keep PyTorch/HF layout `[out, in]` (y = x·Wᵀ + b), so loading,
 * PEFT export and merged export need no transposes; the matmul kernels take transposed operands.
 */

export type ModelType = "bert" | "albert" | "roberta";
export type Activation = "gelu" | "gelu_new" | "relu";

export interface EncoderConfig {
  modelType: ModelType;
  vocabSize: number;
  /** Embedding width E (= hiddenSize except ALBERT's factorized embeddings). */
  embeddingSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  hiddenAct: Activation;
  /** ALBERT: number of distinct layer groups (1 in every released ALBERT); BERT/RoBERTa: numLayers. */
  numHiddenGroups: number;
  padTokenId: number;
  /** RoBERTa numbers positions from padding_idx + 1; BERT/ALBERT from 0. */
  positionOffset: number;
}

/** A host-side f32 tensor with its shape. */
export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

export interface Linear {
  /** [out, in] */
  w: HostTensor;
  /** [out] */
  b: HostTensor;
}

export interface LayerNormWeights {
  gamma: HostTensor;
  beta: HostTensor;
}

export interface LayerWeights {
  query: Linear;
  key: Linear;
  value: Linear;
  /** attention.output.dense */
  attnOut: Linear;
  attnLn: LayerNormWeights;
  /** intermediate.dense */
  inter: Linear;
  /** output.dense */
  out: Linear;
  outLn: LayerNormWeights;
}

export interface EncoderWeights {
  /** [V, E] */
  wordEmb: HostTensor;
  /** [P, E] */
  posEmb: HostTensor;
  /** [T, E] */
  typeEmb: HostTensor;
  embLn: LayerNormWeights;
  /** ALBERT only: embedding_hidden_mapping_in, [H, E]. */
  embProj?: Linear;
  /**
   * BERT/RoBERTa: one entry per layer. ALBERT: one entry per layer group (shared), applied
   * `numLayers` times; layer i uses group floor(i * numHiddenGroups / numLayers).
   */
  layers: LayerWeights[];
  /** dense + tanh on [CLS], when the checkpoint has one. */
  pooler?: Linear;
}

/** Linear sub-modules LoRA may target, named as in HF/PEFT `target_modules`. */
export type LoraTarget = "query" | "key" | "value" | "attention.output" | "intermediate" | "output";

export const LORA_TARGETS: readonly LoraTarget[] = [
  "query",
  "key",
  "value",
  "attention.output",
  "intermediate",
  "output",
];

export interface LoraConfig {
  targets: LoraTarget[];
  rank: number;
  alpha: number;
  dropout: number;
}

/** A LoRA adapter on one linear: y += (alpha/rank) · (x·Aᵀ)·Bᵀ. */
export interface LoraAdapter {
  /** [rank, in], Kaiming-uniform init */
  a: HostTensor;
  /** [out, rank], zero init */
  b: HostTensor;
}

/** Adapters keyed by `${layerIndex}.${target}` (layer index = group index for ALBERT). */
export type LoraWeights = Map<string, LoraAdapter>;

export type HeadKind = "multi-label" | "multi-class";

export interface HeadWeights {
  /** [numLabels, H] */
  w: HostTensor;
  /** [numLabels] */
  b: HostTensor;
}

/** What the data stage needs from a tokenizer (WordPiece from vocab.txt or HF tokenizer.json). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  readonly maskId: number;
  /**
   * Token ids of `text` with the model's special tokens ([CLS] … [SEP] for BERT, <s> … </s> for
   * RoBERTa), truncated to `maxLength` ids in total (the closing special token is kept).
   */
  encode(text: string, maxLength: number): number[];
  /** Stable hash of vocabulary + normalisation settings: the token cache key includes it. */
  fingerprint(): string;
}
