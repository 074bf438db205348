/**
 * BERT's "basic tokenizer" (google-research/bert tokenization.py, and the Rust `tokenizers`
 * BertNormalizer + BertPreTokenizer, which tokenizer.json files use): clean text, space out CJK
 * ideographs, optional lower-casing and accent stripping, split on whitespace and punctuation.
 *
 * Character classes follow the Python reference by code point (not UTF-16 unit), so astral CJK
 * ideographs (Extension B+) are spaced out as in Python/Rust. (tokenizers.js 0.2 checks UTF-16
 * units there and keeps them glued to neighbours: one known divergence, outside the BMP only.)
 */

export interface BasicOptions {
  /** do_lower_case: lower-case (and, unless stripAccents === false, strip accents). */
  lowercase: boolean;
  /** null/undefined: follow `lowercase` (HF's default); true/false force it. */
  stripAccents?: boolean | null;
  /** tokenize_chinese_chars (default true). */
  handleChineseChars?: boolean;
}

/** CJK Unified Ideographs blocks as BERT defines them (not all of Japanese/Korean). */
export function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** BERT treats all non-alphanumeric ASCII as punctuation (e.g. "$", "^", "`"), plus Unicode P*. */
const PUNCT = "\\p{P}\\u0021-\\u002F\\u003A-\\u0040\\u005B-\\u0060\\u007B-\\u007E";
const PUNCT_RE = new RegExp(`^[${PUNCT}]$`, "u");
const WORD_RE = new RegExp(`[^\\s${PUNCT}]+|[${PUNCT}]`, "gu");
/** Control = Unicode C* except the whitespace controls, which become spaces. */
const CONTROL_RE = /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}]$/u;
const SPACE_RE = /^[\s\p{Zs}]$/u;

export function isPunctuation(ch: string): boolean {
  return PUNCT_RE.test(ch);
}

/** Remove NUL, U+FFFD and control characters; turn every whitespace character into " ". */
export function cleanText(text: string): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd) continue;
    if (ch === "\t" || ch === "\n" || ch === "\r") {
      out += " ";
      continue;
    }
    if (CONTROL_RE.test(ch)) continue;
    out += SPACE_RE.test(ch) ? " " : ch;
  }
  return out;
}

/** The normalizer half (what tokenizer.json's BertNormalizer does). */
export function bertNormalize(text: string, o: BasicOptions): string {
  let t = cleanText(text);
  if (o.handleChineseChars ?? true) {
    let s = "";
    for (const ch of t) s += isChineseChar(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
    t = s;
  }
  if (o.lowercase) t = t.toLowerCase();
  if (o.stripAccents ?? o.lowercase) t = t.normalize("NFD").replace(/\p{Mn}/gu, "");
  return t;
}

/** The pre-tokenizer half: whitespace split, each punctuation character its own word. */
export function bertPreTokenize(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}

/** Normalize then split: the words WordPiece sees. */
export function basicTokenize(text: string, o: BasicOptions): string[] {
  return bertPreTokenize(bertNormalize(text, o));
}
