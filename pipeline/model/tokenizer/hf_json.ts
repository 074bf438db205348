/**
 * `tokenizer.json` through the npm package @huggingface/tokenizers (pure JS), wrapped to our
 * Tokenizer interface. Special tokens are added by us (not the file's post-processor) so that
 * truncation always keeps the closing token, for WordPiece and BPE (RoBERTa) files alike.
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import type { Tokenizer } from "../types.ts";
import { TokenizerError } from "./errors.ts";
import {
  BERT_SPECIALS,
  ROBERTA_SPECIALS,
  sha256Hex,
  specialIds,
  type SpecialTokens,
  wrapAndTruncate,
} from "./wordpiece.ts";

/** tokenizer_config.json special-token entries are strings or `{content: string}` objects. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (
    typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** Special tokens named by tokenizer_config.json, else BERT's or RoBERTa's by what the vocab has. */
export function resolveSpecials(
  config: Record<string, unknown>,
  has: (t: string) => boolean,
): SpecialTokens {
  const base = has("[CLS]") || !has("<s>") ? BERT_SPECIALS : ROBERTA_SPECIALS;
  return {
    pad: tokenString(config.pad_token) ?? base.pad,
    unk: tokenString(config.unk_token) ?? base.unk,
    cls: tokenString(config.cls_token) ?? tokenString(config.bos_token) ?? base.cls,
    sep: tokenString(config.sep_token) ?? tokenString(config.eos_token) ?? base.sep,
    mask: tokenString(config.mask_token) ?? base.mask,
  };
}

export class HfJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  readonly maskId: number;
  private readonly tok: HfTokenizer;
  private readonly fp: string;

  /**
   * @param jsonText tokenizer.json contents
   * @param config tokenizer_config.json contents ({} when absent)
   */
  constructor(jsonText: string, config: Record<string, unknown>, readonly file = "tokenizer.json") {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(jsonText);
    } catch (e) {
      throw new TokenizerError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    for (const k of ["model", "normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
      if (!(k in json)) throw new TokenizerError(`${file}: field "${k}" is missing`);
    }
    json.added_tokens ??= [];
    try {
      this.tok = new HfTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${file}: unsupported tokenizer (${(e as Error).message})`);
    }
    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const specials = resolveSpecials(config, (t) => vocab.has(t));
    const s = specialIds((t) => this.tok.token_to_id(t), specials, file);
    this.padId = s.pad;
    this.unkId = s.unk;
    this.clsId = s.cls;
    this.sepId = s.sep;
    this.maskId = s.mask;
    this.fp = sha256Hex(JSON.stringify({ kind: "tokenizer.json", json: jsonText, specials }));
  }

  static async fromDir(dir: string): Promise<HfJsonTokenizer> {
    const file = `${dir}/tokenizer.json`;
    const text = await Deno.readTextFile(file);
    let config: Record<string, unknown> = {};
    try {
      config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
    } catch (e) {
      if (e instanceof SyntaxError) {
        throw new TokenizerError(`${dir}/tokenizer_config.json: not valid JSON (${e.message})`);
      }
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return new HfJsonTokenizer(text, config, file);
  }

  /** Token strings without special tokens around them. */
  tokenize(text: string): string[] {
    return this.tok.tokenize(text, { add_special_tokens: false });
  }

  /** Ids without special tokens around them. */
  encodeBody(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  encode(text: string, maxLength: number): number[] {
    return wrapAndTruncate(this.encodeBody(text), this.clsId, this.sepId, maxLength);
  }

  fingerprint(): string {
    return this.fp;
  }
}
