/**
 * WordPiece tokenizer from a bare `vocab.txt` (one token per line, id = line number), matching
 * HF BertTokenizer / the tokenizer.json WordPiece path id for id (tests pin this).
 */
import { createHash } from "node:crypto";
import type { Tokenizer } from "../types.ts";
import { type BasicOptions, basicTokenize } from "./basic.ts";
import { TokenizerError } from "./errors.ts";

export interface SpecialTokens {
  pad: string;
  unk: string;
  cls: string;
  sep: string;
  mask: string;
}

export const BERT_SPECIALS: SpecialTokens = {
  pad: "[PAD]",
  unk: "[UNK]",
  cls: "[CLS]",
  sep: "[SEP]",
  mask: "[MASK]",
};
export const ROBERTA_SPECIALS: SpecialTokens = {
  pad: "<pad>",
  unk: "<unk>",
  cls: "<s>",
  sep: "</s>",
  mask: "<mask>",
};

export interface WordPieceOptions extends BasicOptions {
  /** Words longer than this (in code points) become [UNK] (BERT: 100). */
  maxInputCharsPerWord?: number;
  /** Continuation prefix (BERT: "##"). */
  continuingSubwordPrefix?: string;
  /** Special token strings (default: BERT's, or RoBERTa's when the vocab has `<s>`). */
  specials?: SpecialTokens;
}

/** Parse vocab.txt text: one token per line; a trailing newline does not add a token. */
export function parseVocabTxt(text: string, file = "vocab.txt"): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) throw new TokenizerError(`${file}: empty vocabulary`);
  return lines;
}

/** Resolve special-token ids, naming the missing one and the file. */
export function specialIds(
  lookup: (t: string) => number | undefined,
  s: SpecialTokens,
  file: string,
): { pad: number; unk: number; cls: number; sep: number; mask: number } {
  const get = (role: keyof SpecialTokens): number => {
    const id = lookup(s[role]);
    if (id === undefined) {
      throw new TokenizerError(
        `${file}: special token ${s[role]} (${role}) is not in the vocabulary`,
      );
    }
    return id;
  };
  return { pad: get("pad"), unk: get("unk"), cls: get("cls"), sep: get("sep"), mask: get("mask") };
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Wrap body ids as [CLS] … [SEP] within `maxLength` total, keeping the closing token. */
export function wrapAndTruncate(
  ids: number[],
  cls: number,
  sep: number,
  maxLength: number,
): number[] {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new TokenizerError(
      `maxLength must be an integer >= 2 (room for ${cls}/${sep}), got ${maxLength}`,
    );
  }
  return [cls, ...ids.slice(0, maxLength - 2), sep];
}

export class WordPieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  readonly maskId: number;
  private readonly ids = new Map<string, number>();
  private readonly opts: Required<Omit<WordPieceOptions, "stripAccents">> & {
    stripAccents: boolean | null;
  };
  /** Special tokens matched verbatim in raw text (as HF does), longest first. */
  private readonly specialList: string[];
  private fp?: string;

  constructor(readonly vocab: readonly string[], opts: WordPieceOptions, file = "vocab.txt") {
    vocab.forEach((t, i) => {
      // HF keeps the first id of a duplicated line; so do we.
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    const specials = opts.specials ??
      (this.ids.has("<s>") && !this.ids.has("[CLS]") ? ROBERTA_SPECIALS : BERT_SPECIALS);
    const s = specialIds((t) => this.ids.get(t), specials, file);
    this.vocabSize = vocab.length;
    this.padId = s.pad;
    this.unkId = s.unk;
    this.clsId = s.cls;
    this.sepId = s.sep;
    this.maskId = s.mask;
    this.opts = {
      lowercase: opts.lowercase,
      stripAccents: opts.stripAccents ?? null,
      handleChineseChars: opts.handleChineseChars ?? true,
      maxInputCharsPerWord: opts.maxInputCharsPerWord ?? 100,
      continuingSubwordPrefix: opts.continuingSubwordPrefix ?? "##",
      specials,
    };
    this.specialList = [...new Set(Object.values(specials))].sort((a, b) => b.length - a.length);
  }

  /** Load `vocab.txt`. */
  static async fromFile(path: string, opts: WordPieceOptions): Promise<WordPieceTokenizer> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new TokenizerError(`${path}: file not found`);
      throw e;
    }
    return new WordPieceTokenizer(parseVocabTxt(text, path), opts, path);
  }

  get options(): Readonly<WordPieceOptions> {
    return this.opts;
  }

  /** Split raw text at verbatim special tokens (leftmost, longest), as HF's added-token pass. */
  private splitSpecials(text: string): { text: string; special: boolean }[] {
    const out: { text: string; special: boolean }[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = text[i] === "[" || text[i] === "<"
        ? this.specialList.find((s) => text.startsWith(s, i))
        : undefined;
      if (hit) {
        if (i > start) out.push({ text: text.slice(start, i), special: false });
        out.push({ text: hit, special: true });
        i += hit.length;
        start = i;
      } else {
        i++;
      }
    }
    if (start < text.length) out.push({ text: text.slice(start), special: false });
    return out;
  }

  /** Greedy longest-match-first WordPiece of one word. */
  private wordPiece(word: string, out: string[]): void {
    const chars = [...word];
    if (chars.length > this.opts.maxInputCharsPerWord) {
      out.push(this.opts.specials.unk);
      return;
    }
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (start < end) {
        const sub = (start > 0 ? this.opts.continuingSubwordPrefix : "") +
          chars.slice(start, end).join("");
        if (this.ids.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) {
        out.push(this.opts.specials.unk);
        return;
      }
      pieces.push(found);
      start = end;
    }
    out.push(...pieces);
  }

  /** Token strings of `text` without special tokens around it. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const seg of this.splitSpecials(text)) {
      if (seg.special) {
        out.push(seg.text);
        continue;
      }
      for (const w of basicTokenize(seg.text, this.opts)) this.wordPiece(w, out);
    }
    return out;
  }

  /** Ids of `text` without special tokens around it. */
  encodeBody(text: string): number[] {
    return this.tokenize(text).map((t) => this.ids.get(t) ?? this.unkId);
  }

  encode(text: string, maxLength: number): number[] {
    return wrapAndTruncate(this.encodeBody(text), this.clsId, this.sepId, maxLength);
  }

  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  fingerprint(): string {
    this.fp ??= sha256Hex(JSON.stringify({
      kind: "wordpiece-vocab.txt",
      options: this.opts,
      vocab: this.vocab,
    }));
    return this.fp;
  }
}
