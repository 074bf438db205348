/**
 * BERT masked-LM data recipe: per sequence choose max(1, round(p·n)) of its n maskable tokens
 * uniformly without replacement (p = 0.15; specials are never chosen); of the chosen, 80% become
 * [MASK], 10% a random ordinary token, 10% stay unchanged; the labels hold the original id at
 * every chosen position and -100 elsewhere (HF convention). Seeded: the same (seed, step) gives
 * the same masks, so a run is reproducible and resumable.
 */
import type { Tokenizer } from "./types.ts";
import { seededRng } from "./lora.ts";
import { MLM_IGNORE } from "./encoder.ts";

export interface MaskingSpec {
  /** Fraction of maskable tokens chosen per sequence (BERT: 0.15). */
  prob: number;
  maskId: number;
  vocabSize: number;
  /** Ids never chosen and never drawn as random replacements. */
  specialIds: ReadonlySet<number>;
}

export interface MaskedSequence {
  input: number[];
  labels: number[];
}

/** Masking spec of a tokenizer: its pad/cls/sep/unk/mask ids are the specials. */
export function maskingSpec(tok: Tokenizer, prob = 0.15): MaskingSpec {
  if (!(prob > 0 && prob < 1)) throw new RangeError(`mask probability ${prob} not in (0, 1)`);
  return {
    prob,
    maskId: tok.maskId,
    vocabSize: tok.vocabSize,
    specialIds: new Set([tok.padId, tok.clsId, tok.sepId, tok.unkId, tok.maskId]),
  };
}

/** Number of positions to predict in a sequence with `n` maskable tokens. */
export function numToPredict(n: number, prob: number): number {
  return n === 0 ? 0 : Math.max(1, Math.round(prob * n));
}

/** Upper bound of `numToPredict` for sequences of at most `maxLen` ids (for buffer sizing). */
export function maxPredictionsPerSeq(maxLen: number, prob: number): number {
  return numToPredict(maxLen, prob);
}

/** Mask one sequence with the BERT recipe, drawing from `r` (uniform [0, 1)). */
export function maskSequence(ids: readonly number[], s: MaskingSpec, r: () => number) {
  const cand: number[] = [];
  ids.forEach((id, j) => {
    if (!s.specialIds.has(id)) cand.push(j);
  });
  const k = numToPredict(cand.length, s.prob);
  // partial Fisher–Yates: the first k of a uniform permutation
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(r() * (cand.length - i));
    [cand[i], cand[j]] = [cand[j], cand[i]];
  }
  const input = [...ids];
  const labels = ids.map(() => MLM_IGNORE);
  for (const j of cand.slice(0, k)) {
    labels[j] = ids[j];
    const u = r();
    if (u < 0.8) input[j] = s.maskId;
    else if (u < 0.9) input[j] = randomOrdinary(s, r);
    // else: unchanged (the model must also predict tokens it can see)
  }
  return { input, labels } satisfies MaskedSequence;
}

function randomOrdinary(s: MaskingSpec, r: () => number): number {
  for (;;) {
    const id = Math.floor(r() * s.vocabSize);
    if (!s.specialIds.has(id)) return id;
  }
}

/** Mask a batch; the rng is derived from (seed, step) so masks are reproducible. */
export function maskBatch(
  batch: readonly (readonly number[])[],
  s: MaskingSpec,
  seed: number,
  step: number,
): { ids: number[][]; mlmLabels: number[][] } {
  const r = seededRng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);
  const out = batch.map((ids) => maskSequence(ids, s, r));
  return { ids: out.map((o) => o.input), mlmLabels: out.map((o) => o.labels) };
}
