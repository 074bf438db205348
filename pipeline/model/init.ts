/**
 * Fresh weights for pretraining from scratch, as HF `BertPreTrainedModel._init_weights` does:
 * linear and embedding weights N(0, 0.02²), biases 0, LayerNorm γ 1 / β 0, the padding row of the
 * word embeddings zero. The MLM head likewise (its decoder is tied to the word embeddings, so it
 * owns only the transform, its LayerNorm and the output bias). Seeded (Mulberry32), not secret.
 */
import type { MlmHeadWeights } from "./checkpoint.ts";
import type { EncoderConfig, EncoderWeights, HostTensor, Linear } from "./types.ts";
import { seededRng } from "./lora.ts";
import { linearDims, mlmWidth, numWeightSets } from "./params.ts";

export const INIT_STD = 0.02;

function normal(shape: number[], r: () => number, std = INIT_STD): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    data[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return { data, shape };
}

const zeros = (n: number): HostTensor => ({ data: new Float32Array(n), shape: [n] });
const ones = (n: number): HostTensor => ({ data: new Float32Array(n).fill(1), shape: [n] });

function linear(out: number, inn: number, r: () => number): Linear {
  return { w: normal([out, inn], r), b: zeros(out) };
}

/** A randomly initialised encoder (HF init), optionally with a pooler. */
export function initEncoderWeights(
  c: EncoderConfig,
  seed: number,
  opts: { pooler?: boolean } = {},
): EncoderWeights {
  const r = seededRng(seed ^ 0x2545f491);
  const e = c.embeddingSize, h = c.hiddenSize;
  const word = normal([c.vocabSize, e], r);
  if (c.padTokenId >= 0 && c.padTokenId < c.vocabSize) {
    word.data.fill(0, c.padTokenId * e, (c.padTokenId + 1) * e);
  }
  const lin = (t: Parameters<typeof linearDims>[1]) => {
    const [o, i] = linearDims(c, t);
    return linear(o, i, r);
  };
  return {
    wordEmb: word,
    posEmb: normal([c.maxPositions, e], r),
    typeEmb: normal([c.typeVocabSize, e], r),
    embLn: { gamma: ones(e), beta: zeros(e) },
    embProj: c.modelType === "albert" ? linear(h, e, r) : undefined,
    layers: Array.from({ length: numWeightSets(c) }, () => ({
      query: lin("query"),
      key: lin("key"),
      value: lin("value"),
      attnOut: lin("attention.output"),
      attnLn: { gamma: ones(h), beta: zeros(h) },
      inter: lin("intermediate"),
      out: lin("output"),
      outLn: { gamma: ones(h), beta: zeros(h) },
    })),
    pooler: opts.pooler ? linear(h, h, r) : undefined,
  };
}

/** A fresh MLM head (HF init). */
export function initMlmHead(c: EncoderConfig, seed: number): MlmHeadWeights {
  const r = seededRng(seed ^ 0x68e31da4);
  const w = mlmWidth(c);
  return {
    transform: linear(w, c.hiddenSize, r),
    ln: { gamma: ones(w), beta: zeros(w) },
    bias: zeros(c.vocabSize),
  };
}
