/**
 * Model shapes and synthetic inputs for the end-to-end benchmarks (`deno task bench model |
 * privacy | train`). Speed depends on shapes, not on values, so the weights are random (HF's
 * init scale, so activations stay in the range a real checkpoint gives) and the token ids are
 * random; everything is seeded so two runs do the same work.
 *
 * The shapes are Google's compact BERTs (Turc et al. 2019, `google/bert_uncased_L-*_H-*_A-*`):
 * uncased WordPiece vocabulary 30522, 512 positions, 2 token types, GELU, pooler.
 */
import type {
  EncoderConfig,
  EncoderWeights,
  HostTensor,
  LayerNormWeights,
  Linear,
  LoraConfig,
} from "../model/types.ts";

export type BenchModelName = "bert-tiny" | "bert-small" | "bert-medium";

export const BENCH_MODELS: readonly BenchModelName[] = ["bert-tiny", "bert-small", "bert-medium"];

/** CheXpert's 14 observations: the head width of the radiology task. */
export const CHEXPERT_LABELS = 14;

/** LoRA as benchmarked: rank 8 on query + value (PEFT's BERT default), no dropout. */
export const BENCH_LORA: LoraConfig = {
  targets: ["query", "value"],
  rank: 8,
  alpha: 16,
  dropout: 0,
};

function bert(layers: number, hidden: number, heads: number): EncoderConfig {
  return {
    modelType: "bert",
    vocabSize: 30522,
    embeddingSize: hidden,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    intermediateSize: 4 * hidden,
    maxPositions: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    hiddenAct: "gelu",
    numHiddenGroups: layers,
    padTokenId: 0,
    positionOffset: 0,
  };
}

const CONFIGS: Record<BenchModelName, EncoderConfig> = {
  "bert-tiny": bert(2, 128, 2),
  "bert-small": bert(4, 512, 8),
  "bert-medium": bert(8, 512, 8),
};

/** The EncoderConfig of a benchmark model (a fresh copy). */
export function benchConfig(name: BenchModelName): EncoderConfig {
  return { ...CONFIGS[name] };
}

/** Parse a comma-separated model list ("tiny,small" or full names); errors name the bad entry. */
export function parseModels(list: string): BenchModelName[] {
  return list.split(",").map((s) => s.trim()).filter((s) => s).map((s) => {
    const name = (s.startsWith("bert-") ? s : `bert-${s}`) as BenchModelName;
    if (!BENCH_MODELS.includes(name)) {
      throw new RangeError(`--models: unknown model "${s}" (tiny | small | medium)`);
    }
    return name;
  });
}

/** Seeded uniform stream (LCG): benchmark inputs need reproducibility, not statistical quality. */
function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Random weights of `c`'s shapes: linear/embedding entries uniform with std 0.02 (HF's
 * initializer_range), biases 0, LayerNorm γ 1 / β 0, with a pooler.
 */
export function randomBertWeights(c: EncoderConfig, seed: number): EncoderWeights {
  const u = uniform(seed);
  const a = 0.02 * Math.sqrt(3);
  const rand = (shape: number[]): HostTensor => {
    const n = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = a * (2 * u() - 1);
    return { data, shape };
  };
  const fill = (shape: number[], v: number): HostTensor => ({
    data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(v),
    shape,
  });
  const lin = (out: number, inn: number): Linear => ({ w: rand([out, inn]), b: fill([out], 0) });
  const ln = (n: number): LayerNormWeights => ({ gamma: fill([n], 1), beta: fill([n], 0) });
  const { hiddenSize: H, embeddingSize: E, intermediateSize: I } = c;
  const w: EncoderWeights = {
    wordEmb: rand([c.vocabSize, E]),
    posEmb: rand([c.maxPositions, E]),
    typeEmb: rand([c.typeVocabSize, E]),
    embLn: ln(E),
    layers: [],
    pooler: lin(H, H),
  };
  for (let l = 0; l < c.numLayers; l++) {
    w.layers.push({
      query: lin(H, H),
      key: lin(H, H),
      value: lin(H, H),
      attnOut: lin(H, H),
      attnLn: ln(H),
      inter: lin(I, H),
      out: lin(H, I),
      outLn: ln(H),
    });
  }
  return w;
}

export interface SyntheticBatch {
  ids: number[][];
  labels: number[][];
}

/**
 * `batch` sequences of exactly `seq` tokens ([CLS] = 101 first, then random ids above the
 * specials, so no padding: the benchmark measures the full seq × seq attention) with random
 * 0/1 targets for the 14 CheXpert labels.
 */
export function randomBatch(
  c: EncoderConfig,
  batch: number,
  seq: number,
  seed: number,
): SyntheticBatch {
  const u = uniform(seed ^ 0x5bd1e995);
  const lo = Math.min(1000, c.vocabSize - 1);
  const ids: number[][] = [], labels: number[][] = [];
  for (let i = 0; i < batch; i++) {
    const s = [Math.min(101, c.vocabSize - 1)];
    for (let j = 1; j < seq; j++) s.push(lo + Math.floor(u() * (c.vocabSize - lo)));
    ids.push(s);
    labels.push(Array.from({ length: CHEXPERT_LABELS }, () => (u() < 0.3 ? 1 : 0)));
  }
  return { ids, labels };
}
