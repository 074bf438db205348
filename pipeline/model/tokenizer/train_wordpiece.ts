/**
 * WordPiece vocabulary trainer (likelihood-based merges, as in Schuster & Nakajima 2012 and the
 * HF course's WordPiece description): words come from BERT basic tokenisation (basic.ts, lower-
 * cased), each word starts as its characters ("h", "##e", "##l", …), and the pair (a, b) with the
 * highest score count(ab) / (count(a) · count(b)) is merged until the vocabulary is full. This is
 * not HF's WordPieceTrainer (which runs BPE frequency merges with a "##" prefix); the likelihood
 * score prefers merging parts that rarely occur apart, which gives whole medical words early.
 *
 * Vocabulary layout: the specials at ids 0..4 ([PAD] [UNK] [CLS] [SEP] [MASK]; BERT's own vocab
 * puts [PAD]=0, [UNK]=100, [CLS]=101 — we choose 0..4 and tokenizers read the ids from vocab.txt),
 * then every character seen both as a word start "c" and as a continuation "##c" (so no word made
 * of seen characters is ever [UNK]), then the merged tokens in merge order.
 */
import { basicTokenize } from "./basic.ts";

export const DEFAULT_SPECIALS: readonly string[] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

export interface WordPieceTrainOptions {
  /** Target vocabulary size including specials and the alphabet. */
  vocabSize: number;
  /** A pair must occur at least this often (weighted by word counts) to be merged. Default 2. */
  minFrequency?: number;
  /** Special tokens, in id order. Default DEFAULT_SPECIALS. */
  specials?: readonly string[];
  /** Words longer than this (in characters) are skipped, as the tokenizer maps them to [UNK]. */
  maxInputCharsPerWord?: number;
}

export interface TrainResult {
  vocab: string[];
  /** Number of merges performed. */
  merges: number;
  /** True when merging stopped because no pair reached minFrequency (vocab < vocabSize). */
  exhausted: boolean;
}

/** Word frequencies after lower-cased BERT basic tokenisation. */
export function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) {
    for (const w of basicTokenize(t, { lowercase: true })) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

const PAIR_BASE = 2 ** 22;

/** Learn a vocabulary from word counts. Deterministic: ties break on count, then token string. */
export function trainWordPiece(
  wordCounts: ReadonlyMap<string, number>,
  opts: WordPieceTrainOptions,
): TrainResult {
  const specials = opts.specials ?? DEFAULT_SPECIALS;
  const minFreq = opts.minFrequency ?? 2;
  const maxChars = opts.maxInputCharsPerWord ?? 100;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize <= specials.length) {
    throw new RangeError(
      `vocabSize must be an integer > ${specials.length}, got ${opts.vocabSize}`,
    );
  }

  const tokens: string[] = [];
  const ids = new Map<string, number>();
  const intern = (t: string): number => {
    let id = ids.get(t);
    if (id === undefined) {
      id = tokens.length;
      if (id >= PAIR_BASE) throw new RangeError("trainWordPiece: too many tokens");
      tokens.push(t);
      ids.set(t, id);
    }
    return id;
  };

  // Alphabet first, sorted, so ids do not depend on Map iteration order of the input.
  const words = [...wordCounts.entries()]
    .filter(([w]) => [...w].length <= maxChars)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const chars = new Set<string>();
  for (const [w] of words) for (const ch of w) chars.add(ch);
  const alphabet = [...chars].sort();
  for (const s of specials) intern(s);
  for (const ch of alphabet) intern(ch);
  for (const ch of alphabet) intern("##" + ch);

  const pieces: number[][] = words.map(([w]) =>
    [...w].map((ch, i) => ids.get(i === 0 ? ch : "##" + ch)!)
  );
  const freq = words.map(([, c]) => c);
  const tokCount = new Map<number, number>();
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();

  const account = (wi: number, sign: 1 | -1) => {
    const p = pieces[wi];
    const c = freq[wi] * sign;
    for (let i = 0; i < p.length; i++) {
      tokCount.set(p[i], (tokCount.get(p[i]) ?? 0) + c);
      if (i + 1 < p.length) {
        const key = p[i] * PAIR_BASE + p[i + 1];
        const n = (pairCount.get(key) ?? 0) + c;
        if (n === 0) pairCount.delete(key);
        else pairCount.set(key, n);
        if (sign > 0) {
          let s = pairWords.get(key);
          if (!s) pairWords.set(key, s = new Set());
          s.add(wi);
        }
      }
    }
  };
  for (let wi = 0; wi < pieces.length; wi++) account(wi, 1);

  let merges = 0;
  let exhausted = false;
  while (tokens.length < opts.vocabSize) {
    let bestKey = -1, bestScore = -1, bestCount = 0;
    let bestStr = "";
    for (const [key, n] of pairCount) {
      if (n < minFreq) continue;
      const a = Math.floor(key / PAIR_BASE), b = key % PAIR_BASE;
      const score = n / (tokCount.get(a)! * tokCount.get(b)!);
      if (score < bestScore || (score === bestScore && n < bestCount)) continue;
      const str = tokens[a] + tokens[b].slice(2);
      if (score === bestScore && n === bestCount && str >= bestStr) continue;
      bestKey = key, bestScore = score, bestCount = n, bestStr = str;
    }
    if (bestKey < 0) {
      exhausted = true;
      break;
    }
    const a = Math.floor(bestKey / PAIR_BASE), b = bestKey % PAIR_BASE;
    const merged = intern(bestStr);
    merges++;
    const affected = [...(pairWords.get(bestKey) ?? [])].sort((x, y) => x - y);
    pairWords.delete(bestKey);
    for (const wi of affected) {
      const p = pieces[wi];
      let has = false;
      for (let i = 0; i + 1 < p.length; i++) if (p[i] === a && p[i + 1] === b) has = true;
      if (!has) continue;
      account(wi, -1);
      const next: number[] = [];
      for (let i = 0; i < p.length; i++) {
        if (i + 1 < p.length && p[i] === a && p[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(p[i]);
      }
      pieces[wi] = next;
      account(wi, 1);
    }
  }
  return { vocab: tokens, merges, exhausted };
}
