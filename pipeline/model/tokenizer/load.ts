/** Pick a folder's tokenizer: tokenizer.json when present, else WordPiece from vocab.txt. */
import type { Tokenizer } from "../types.ts";
import { TokenizerError } from "./errors.ts";
import { HfJsonTokenizer, resolveSpecials } from "./hf_json.ts";
import { parseVocabTxt, WordPieceTokenizer } from "./wordpiece.ts";

export { TokenizerError };

export interface LoadTokenizerOptions {
  /** Force one code path (tests compare them). */
  prefer?: "tokenizer.json" | "vocab.txt";
  /** vocab.txt path: override do_lower_case (default: tokenizer_config.json, else true as HF). */
  lowercase?: boolean;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

export async function loadTokenizer(
  dir: string,
  opts: LoadTokenizerOptions = {},
): Promise<Tokenizer> {
  const jsonText = opts.prefer === "vocab.txt"
    ? undefined
    : await readIfExists(`${dir}/tokenizer.json`);
  const cfgFile = `${dir}/tokenizer_config.json`;
  const cfgText = await readIfExists(cfgFile);
  let cfg: Record<string, unknown> = {};
  if (cfgText !== undefined) {
    try {
      cfg = JSON.parse(cfgText);
    } catch (e) {
      throw new TokenizerError(`${cfgFile}: not valid JSON (${(e as Error).message})`);
    }
  }
  if (jsonText !== undefined) return new HfJsonTokenizer(jsonText, cfg, `${dir}/tokenizer.json`);
  const vocabFile = `${dir}/vocab.txt`;
  const vocabText = await readIfExists(vocabFile);
  if (vocabText === undefined) {
    throw new TokenizerError(
      `${dir}: no tokenizer.json or vocab.txt (a BPE vocab.json + merges.txt needs tokenizer.json: ` +
        "save it with a fast tokenizer, `tok.save_pretrained(dir)`)",
    );
  }
  const vocab = parseVocabTxt(vocabText, vocabFile);
  const set = new Set(vocab);
  const bool = (k: string): boolean | undefined => {
    const v = cfg[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") {
      throw new TokenizerError(`${cfgFile}: field "${k}" must be true/false`);
    }
    return v;
  };
  return new WordPieceTokenizer(vocab, {
    lowercase: opts.lowercase ?? bool("do_lower_case") ?? true,
    stripAccents: bool("strip_accents") ?? null,
    handleChineseChars: bool("tokenize_chinese_chars") ?? true,
    specials: resolveSpecials(cfg, (t) => set.has(t)),
  }, vocabFile);
}
