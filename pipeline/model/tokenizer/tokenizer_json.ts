/**
 * Writes a vocabulary as an HF tokenizer folder (vocab.txt + tokenizer.json +
 * tokenizer_config.json + special_tokens_map.json) so a vocab learned by our own trainer loads
 * through both code paths (WordPiece from vocab.txt, and `tokenizers`/transformers fast tokenizers).
 */
import { writeJsonAtomic, writeTextAtomic } from "../../fs.ts";
import { TokenizerError } from "./errors.ts";
import { BERT_SPECIALS, type SpecialTokens } from "./wordpiece.ts";

export interface TokenizerJsonOptions {
  lowercase: boolean;
  stripAccents?: boolean | null;
  handleChineseChars?: boolean;
  maxInputCharsPerWord?: number;
  specials?: SpecialTokens;
  /** tokenizer_config.json model_max_length (default 512). */
  modelMaxLength?: number;
}

function vocabIndex(vocab: readonly string[]): Map<string, number> {
  const ids = new Map<string, number>();
  vocab.forEach((t, i) => {
    if (ids.has(t)) {
      throw new TokenizerError(
        `vocabulary: token ${JSON.stringify(t)} appears at ids ${ids.get(t)} and ${i}; ` +
          "tokenizer.json cannot represent duplicates",
      );
    }
    if (t.includes("\n")) throw new TokenizerError(`vocabulary: token ${i} contains a newline`);
    ids.set(t, i);
  });
  return ids;
}

/** The tokenizer.json object of a BERT WordPiece tokenizer over `vocab`. */
export function buildWordPieceTokenizerJson(
  vocab: readonly string[],
  o: TokenizerJsonOptions,
): Record<string, unknown> {
  const ids = vocabIndex(vocab);
  const s = o.specials ?? BERT_SPECIALS;
  const idOf = (t: string): number => {
    const id = ids.get(t);
    if (id === undefined) throw new TokenizerError(`vocabulary: special token ${t} is missing`);
    return id;
  };
  const roles: (keyof SpecialTokens)[] = ["pad", "unk", "cls", "sep", "mask"];
  const added = roles.map((r) => s[r]).map((t) => ({ id: idOf(t), t }))
    .sort((a, b) => a.id - b.id)
    .map(({ id, t }) => ({
      id,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
  const st = (t: string, typeId: number) => ({ SpecialToken: { id: t, type_id: typeId } });
  const seq = (id: "A" | "B", typeId: number) => ({ Sequence: { id, type_id: typeId } });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: o.handleChineseChars ?? true,
      strip_accents: o.stripAccents ?? null,
      lowercase: o.lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [st(s.cls, 0), seq("A", 0), st(s.sep, 0)],
      pair: [st(s.cls, 0), seq("A", 0), st(s.sep, 0), seq("B", 1), st(s.sep, 1)],
      special_tokens: Object.fromEntries(
        [s.cls, s.sep].map((t) => [t, { id: t, ids: [idOf(t)], tokens: [t] }]),
      ),
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: s.unk,
      continuing_subword_prefix: "##",
      max_input_chars_per_word: o.maxInputCharsPerWord ?? 100,
      vocab: Object.fromEntries(ids),
    },
  };
}

/** tokenizer_config.json as transformers' BertTokenizer(Fast) reads it. */
export function buildTokenizerConfig(o: TokenizerJsonOptions): Record<string, unknown> {
  const s = o.specials ?? BERT_SPECIALS;
  return {
    tokenizer_class: "BertTokenizer",
    do_lower_case: o.lowercase,
    strip_accents: o.stripAccents ?? null,
    tokenize_chinese_chars: o.handleChineseChars ?? true,
    model_max_length: o.modelMaxLength ?? 512,
    clean_up_tokenization_spaces: true,
    unk_token: s.unk,
    sep_token: s.sep,
    pad_token: s.pad,
    cls_token: s.cls,
    mask_token: s.mask,
  };
}

/** Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json into `dir`. */
export async function writeWordPieceTokenizer(
  dir: string,
  vocab: readonly string[],
  o: TokenizerJsonOptions,
): Promise<string[]> {
  const json = buildWordPieceTokenizerJson(vocab, o); // validates first: nothing half-written
  const s = o.specials ?? BERT_SPECIALS;
  await writeTextAtomic(`${dir}/vocab.txt`, vocab.join("\n") + "\n");
  await writeJsonAtomic(`${dir}/tokenizer.json`, json);
  await writeJsonAtomic(`${dir}/tokenizer_config.json`, buildTokenizerConfig(o));
  await writeJsonAtomic(`${dir}/special_tokens_map.json`, {
    unk_token: s.unk,
    sep_token: s.sep,
    pad_token: s.pad,
    cls_token: s.cls,
    mask_token: s.mask,
  });
  return ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];
}
