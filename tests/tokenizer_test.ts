/**
 * Tokenizers: WordPiece from vocab.txt against tokenizer.json through @huggingface/tokenizers.
 * Both must give identical ids; a few cases are also pinned to hand-derived BERT tokenizations.
 */
import {
  deepStrictEqual as assertDeepEqual,
  notStrictEqual as assertNotEquals,
  ok as assert,
  strictEqual as assertEquals,
  throws as assertThrows,
} from "node:assert/strict";
import { freshSeed, rng } from "./helpers.ts";
import { loadTokenizer, TokenizerError } from "../pipeline/model/tokenizer/load.ts";
import { writeWordPieceTokenizer } from "../pipeline/model/tokenizer/tokenizer_json.ts";
import { WordPieceTokenizer } from "../pipeline/model/tokenizer/wordpiece.ts";
import { HfJsonTokenizer } from "../pipeline/model/tokenizer/hf_json.ts";
import { basicTokenize } from "../pipeline/model/tokenizer/basic.ts";

/** Await `fn`, require it to throw `cls` with `part` in the message. */
async function rejects(
  fn: () => Promise<unknown>,
  cls: new (...a: never[]) => Error,
  part: string,
): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert(
      e.message.includes(part),
      `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`,
    );
    return;
  }
  throw new Error(`expected ${cls.name} containing ${JSON.stringify(part)}, nothing thrown`);
}

/** Hand-built vocabulary: both cases present so lower-casing on/off changes the ids. */
const VOCAB = [
  "[PAD]",
  "[UNK]",
  "[CLS]",
  "[SEP]",
  "[MASK]",
  ".",
  ",",
  ":",
  ";",
  "-",
  "(",
  ")",
  "/",
  "%",
  "_",
  "—",
  "'",
  "the",
  "The",
  "no",
  "No",
  "lung",
  "lungs",
  "Lungs",
  "are",
  "clear",
  "pleural",
  "Pleural",
  "effusion",
  "##s",
  "mild",
  "cm",
  "3",
  "5",
  "12",
  "t",
  "T",
  "##12",
  "xxxx",
  "XXXX",
  "x",
  "X",
  "##x",
  "##X",
  "cafe",
  "café",
  "µ",
  "##g",
  "µg",
  "naive",
  "nai",
  "##ve",
  "肺",
  "ang",
  "##str",
  "##om",
  "##öm",
  "Å",
  "a",
  "##n",
  "impression",
  "IMPRESSION",
  "findings",
  "FINDINGS",
  "37",
  "##°",
  "°",
  "c",
  "C",
  "##c",
  "##C",
  "opacity",
  "left",
  "right",
  "base",
  "of",
  "at",
  "in",
  "is",
  "and",
  "with",
  "status",
  "post",
  "##ctomy",
  "chole",
  "##cyst",
  "##e",
];

const SENTENCES = [
  "",
  "   ",
  "\t\n \u00a0 ",
  "FINDINGS: The lungs are clear. No pleural effusion.",
  "IMPRESSION: 3.5 cm opacity at the left lung base (T12).",
  "Mild opacity, XXXX and ___ at the right base; status post cholecystectomy.",
  "Patient ___ seen on XXXX/XXXX at 12:35.",
  "Café naïve Ångström µg 37°C — 肺 (lung) 5%.",
  "no pleural effusion" + "x".repeat(101),
  "x".repeat(100),
  "[MASK] opacity at the [SEP] base",
  "tab\tseparated\u0000control\u0007chars\ufffdhere",
  "UPPER lower MiXeD 😀 emoji",
  "12.5/3.5-cm,x;y:(z)",
];

async function writeVocab(lowercase: boolean): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tok_" });
  await writeWordPieceTokenizer(dir, VOCAB, { lowercase });
  return dir;
}

async function bothPaths(lowercase: boolean) {
  const dir = await writeVocab(lowercase);
  const wp = await loadTokenizer(dir, { prefer: "vocab.txt" });
  const hf = await loadTokenizer(dir, { prefer: "tokenizer.json" });
  assert(wp instanceof WordPieceTokenizer, "vocab.txt path yields WordPieceTokenizer");
  assert(hf instanceof HfJsonTokenizer, "tokenizer.json path yields HfJsonTokenizer");
  return { dir, wp, hf };
}

for (const lowercase of [true, false]) {
  Deno.test(`vocab.txt and tokenizer.json give identical ids (lowercase=${lowercase})`, async () => {
    const { dir, wp, hf } = await bothPaths(lowercase);
    for (const s of SENTENCES) {
      assertDeepEqual(wp.encodeBody(s), hf.encodeBody(s), `ids of ${JSON.stringify(s)}`);
      assertDeepEqual(wp.encode(s, 512), hf.encode(s, 512), `encode of ${JSON.stringify(s)}`);
    }
    for (const t of [wp, hf]) {
      assertEquals(t.vocabSize, VOCAB.length);
      assertDeepEqual(
        [t.padId, t.unkId, t.clsId, t.sepId, t.maskId],
        [0, 1, 2, 3, 4],
        "special ids",
      );
    }
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("hand-derived BERT tokenizations (lower-cased)", async () => {
  const { dir, wp, hf } = await bothPaths(true);
  const cases: [string, string[]][] = [
    ["3.5 cm", ["3", ".", "5", "cm"]],
    ["T12", ["t", "##12"]],
    ["Pleural effusions", ["pleural", "effusion", "##s"]],
    // ___ is three punctuation characters (Pc), each its own word.
    ["XXXX ___", ["xxxx", "_", "_", "_"]],
    // Accents stripped after lower-casing: café → cafe, Ångström → angstrom.
    ["Café Ångström", ["cafe", "ang", "##str", "##om"]],
    // µ (U+00B5) has no accent and lower-cases to itself.
    ["µg", ["µg"]],
    // ° is a symbol (So), not punctuation: it stays inside the word.
    ["37°C", ["37", "##°", "##c"]],
    ["肺x", ["肺", "x"]],
    ["x".repeat(101), ["[UNK]"]],
    ["zzz", ["[UNK]"]],
    ["[MASK] base", ["[MASK]", "base"]],
    ["", []],
    [" \t ", []],
  ];
  for (const [text, want] of cases) {
    assertDeepEqual(wp.tokenize(text), want, `vocab.txt tokens of ${JSON.stringify(text)}`);
    assertDeepEqual(hf.tokenize(text), want, `tokenizer.json tokens of ${JSON.stringify(text)}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cased: no lower-casing, no accent stripping", async () => {
  const { dir, wp, hf } = await bothPaths(false);
  for (const t of [wp, hf]) {
    assertDeepEqual(t.tokenize("The Lungs"), ["The", "Lungs"]);
    assertDeepEqual(t.tokenize("café T12 XXXX"), ["café", "T", "##12", "XXXX"]);
    assertDeepEqual(t.tokenize("LUNGS"), ["[UNK]"]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("random strings over a clinical alphabet: both paths agree", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const alphabet = [
    ..."abcTXx _.-:/()%°µéÅ肺😀\t\n\u00a0\u0301",
    "the ",
    "lung",
    "cm ",
    "XXXX",
    "[MASK]",
  ];
  for (const lowercase of [true, false]) {
    const { dir, wp, hf } = await bothPaths(lowercase);
    for (let k = 0; k < 200; k++) {
      let s = "";
      const n = Math.floor(r() * 40);
      for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      const a = wp.encodeBody(s), b = hf.encodeBody(s);
      if (a.join() !== b.join()) {
        throw new Error(
          `lowercase=${lowercase} ${JSON.stringify(s)}: vocab.txt ${a} vs tokenizer.json ${b} ` +
            `(DPLORA_TEST_SEED=${seed})`,
        );
      }
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("truncation keeps [CLS] first and [SEP] last, length <= maxLength", async () => {
  const { dir, wp, hf } = await bothPaths(true);
  const text = "the lungs are clear . no pleural effusion";
  for (const t of [wp, hf]) {
    const full = t.encode(text, 512);
    assertEquals(full.length, 10);
    for (const max of [2, 3, 7, 10, 11]) {
      const ids = t.encode(text, max);
      assertEquals(ids.length, Math.min(max, full.length), `length at maxLength ${max}`);
      assertEquals(ids[0], t.clsId);
      assertEquals(ids[ids.length - 1], t.sepId);
      assertDeepEqual(ids.slice(1, -1), full.slice(1, 1 + ids.length - 2), "prefix kept");
    }
    assertThrows(() => t.encode(text, 1), TokenizerError);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fingerprint: stable per vocab+settings, changes with either", async () => {
  const a = await bothPaths(true);
  const b = await bothPaths(false);
  assertEquals(
    a.wp.fingerprint(),
    (await loadTokenizer(a.dir, { prefer: "vocab.txt" })).fingerprint(),
  );
  assertEquals(a.hf.fingerprint(), (await loadTokenizer(a.dir)).fingerprint());
  assertNotEquals(a.wp.fingerprint(), b.wp.fingerprint());
  assertNotEquals(a.hf.fingerprint(), b.hf.fingerprint());
  const other = new WordPieceTokenizer([...VOCAB, "extra"], { lowercase: true });
  assertNotEquals(a.wp.fingerprint(), other.fingerprint());
  assertEquals(a.wp.fingerprint().length, 64);
  await Deno.remove(a.dir, { recursive: true });
  await Deno.remove(b.dir, { recursive: true });
});

Deno.test("tokenizer_config.json do_lower_case drives the vocab.txt path", async () => {
  const dir = await writeVocab(false);
  await Deno.remove(`${dir}/tokenizer.json`);
  const t = await loadTokenizer(dir) as WordPieceTokenizer;
  assertDeepEqual(t.tokenize("The"), ["The"]);
  await Deno.remove(`${dir}/tokenizer_config.json`);
  // No config: HF's BertTokenizer default do_lower_case=True.
  const u = await loadTokenizer(dir) as WordPieceTokenizer;
  assertDeepEqual(u.tokenize("The"), ["the"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("errors: missing files, missing special token, duplicate vocab entries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tok_" });
  await rejects(() => loadTokenizer(dir), TokenizerError, "no tokenizer.json or vocab.txt");
  await Deno.writeTextFile(`${dir}/vocab.txt`, "[PAD]\n[CLS]\n[SEP]\n[MASK]\nthe\n");
  await rejects(() => loadTokenizer(dir), TokenizerError, "[UNK] (unk) is not in the vocabulary");
  await Deno.writeTextFile(`${dir}/vocab.txt`, "");
  await rejects(() => loadTokenizer(dir), TokenizerError, "empty vocabulary");
  await rejects(
    () => writeWordPieceTokenizer(dir, [...VOCAB, "the"], { lowercase: true }),
    TokenizerError,
    "appears at ids",
  );
  await Deno.writeTextFile(`${dir}/tokenizer.json`, "{not json");
  await rejects(() => loadTokenizer(dir), TokenizerError, "tokenizer.json: not valid JSON");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("basic tokenizer: punctuation classes as BERT defines them", () => {
  // ASCII symbols count as punctuation; Unicode P* too; letters/marks/symbols (So) do not.
  assertDeepEqual(basicTokenize("a$b^c`d", { lowercase: false }), [
    "a",
    "$",
    "b",
    "^",
    "c",
    "`",
    "d",
  ]);
  assertDeepEqual(basicTokenize("a«b»c¿d", { lowercase: false }), [
    "a",
    "«",
    "b",
    "»",
    "c",
    "¿",
    "d",
  ]);
  assertDeepEqual(basicTokenize("a©b", { lowercase: false }), ["a©b"]);
  // Astral CJK ideographs (Ext. B) are spaced out by code point, as in Python/Rust.
  assertDeepEqual(basicTokenize("a\u{20000}b", { lowercase: false }), ["a", "\u{20000}", "b"]);
  // strip_accents=false keeps accents even when lower-casing.
  assertDeepEqual(basicTokenize("Café", { lowercase: true, stripAccents: false }), ["café"]);
});
