/**
 * Synthetic corpus + WordPiece trainer: determinism, MIMIC-CXR layout, CheXpert label rules,
 * prevalence, hardness (keyword baseline), and vocabulary coverage of the committed fixtures.
 */
import assert from "node:assert/strict";
import { generateCorpus, type SyntheticStudy } from "../pipeline/synthetic/corpus.ts";
import {
  CHEXPERT_LABELS,
  type LabelRow,
  labelsFromMentions,
  NO_FINDING_INDEX,
  noFindingHolds,
} from "../pipeline/synthetic/labels.ts";
import { binarise, keywordPredict, weightedF1 } from "../pipeline/synthetic/keyword_baseline.ts";
import { makeFixtures, SEEDS } from "../tasks/make_fixtures.ts";
import { CHEXPERT_CSV, SPLIT_CSV, writeMimicDataset } from "../pipeline/synthetic/write.ts";
import {
  countWords,
  DEFAULT_SPECIALS,
  trainWordPiece,
} from "../pipeline/model/tokenizer/train_wordpiece.ts";
import { WordPieceTokenizer } from "../pipeline/model/tokenizer/wordpiece.ts";

const idx = (l: string) => CHEXPERT_LABELS.indexOf(l as typeof CHEXPERT_LABELS[number]);

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

// One mid-sized corpus shared by the statistical tests (generation takes ~0.3 s).
let shared: SyntheticStudy[] | undefined;
const corpus = () => shared ??= generateCorpus({ seed: 11, reports: 3000 });

Deno.test("labelsFromMentions: CheXpert combination and the No Finding rule", () => {
  const m = (finding: typeof CHEXPERT_LABELS[number], value: 1 | 0 | -1) =>
    ({ finding, value }) as Parameters<typeof labelsFromMentions>[0][number];
  const eff = idx("Pleural Effusion");
  assert.equal(labelsFromMentions([m("Pleural Effusion", 0), m("Pleural Effusion", -1)])[eff], -1);
  assert.equal(labelsFromMentions([m("Pleural Effusion", 0), m("Pleural Effusion", 1)])[eff], 1);
  assert.equal(labelsFromMentions([m("Pleural Effusion", -1), m("Pleural Effusion", 1)])[eff], 1);
  assert.equal(labelsFromMentions([m("Pleural Effusion", 0)])[NO_FINDING_INDEX], 1);
  assert.equal(labelsFromMentions([m("Support Devices", 1)])[NO_FINDING_INDEX], 1);
  assert.equal(labelsFromMentions([m("Pneumonia", -1)])[NO_FINDING_INDEX], null);
  const empty = labelsFromMentions([]);
  assert.equal(empty[NO_FINDING_INDEX], 1);
  assert.equal(empty.filter((v) => v !== null).length, 1);
});

Deno.test("fixtures: byte-identical on rerun (small sizes)", async () => {
  const a = await Deno.makeTempDir({ prefix: "h8fixA" });
  const b = await Deno.makeTempDir({ prefix: "h8fixB" });
  try {
    const o = { reports: 80, tiny: 20, publicReports: 150, vocabSize: 500 };
    await makeFixtures({ out: a, ...o });
    await makeFixtures({ out: b, ...o });
    const fa = await listFiles(a), fb = await listFiles(b);
    assert.deepEqual(fa, fb);
    assert.ok(fa.length > 100, `only ${fa.length} files written`);
    for (const f of fa) {
      assert.deepEqual(await Deno.readFile(`${a}/${f}`), await Deno.readFile(`${b}/${f}`), f);
    }
    // a different seed gives a different corpus (the public one must not repeat the labelled one)
    const t1 = generateCorpus({ seed: SEEDS.synth, reports: 50 }).map((s) => s.text);
    const t2 = generateCorpus({ seed: SEEDS.public, reports: 50 }).map((s) => s.text);
    assert.ok(t1.filter((t) => t2.includes(t)).length < 5);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("committed mimic-tiny matches the generator (fixtures are up to date)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "h8tiny" });
  try {
    const committed = new URL("../fixtures/data/mimic-tiny", import.meta.url).pathname;
    await writeMimicDataset(`${dir}/t`, generateCorpus({ seed: SEEDS.tiny, reports: 300 }));
    const files = await listFiles(`${dir}/t`);
    assert.deepEqual(files, await listFiles(committed));
    for (const f of [CHEXPERT_CSV, SPLIT_CSV, files[5], files[files.length - 3]]) {
      assert.equal(
        await Deno.readTextFile(`${dir}/t/${f}`),
        await Deno.readTextFile(`${committed}/${f}`),
        f,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("layout: paths, CSV headers and values, splits by patient, 1–3 dicoms", async () => {
  const dir = await Deno.makeTempDir({ prefix: "h8lay" });
  try {
    const studies = generateCorpus({ seed: 5, reports: 400 });
    await writeMimicDataset(`${dir}/d`, studies);
    const root = `${dir}/d`;
    const lab = (await Deno.readTextFile(`${root}/${CHEXPERT_CSV}`)).trimEnd().split("\n");
    assert.equal(lab[0], "subject_id,study_id," + CHEXPERT_LABELS.join(","));
    assert.equal(lab.length - 1, 400);
    const allowed = new Set(["1.0", "0.0", "-1.0", ""]);
    for (const line of lab.slice(1)) {
      const c = line.split(",");
      assert.equal(c.length, 16, line);
      assert.match(c[0], /^1\d{7}$/);
      assert.match(c[1], /^5\d{7}$/);
      for (const v of c.slice(2)) {
        assert.ok(allowed.has(v), `value ${JSON.stringify(v)} in ${line}`);
      }
      assert.ok(c[2 + NO_FINDING_INDEX] === "1.0" || c[2 + NO_FINDING_INDEX] === "", line);
      const txt = await Deno.readTextFile(
        `${root}/files/p${c[0].slice(0, 2)}/p${c[0]}/s${c[1]}.txt`,
      );
      assert.match(txt, /^ {33}FINAL REPORT\n/);
      assert.match(txt, /\n (FINDINGS|IMPRESSION):/);
    }
    const split = (await Deno.readTextFile(`${root}/${SPLIT_CSV}`)).trimEnd().split("\n");
    assert.equal(split[0], "dicom_id,study_id,subject_id,split");
    const subjSplit = new Map<string, string>();
    const perStudy = new Map<string, number>();
    for (const line of split.slice(1)) {
      const [dicom, study, subject, sp] = line.split(",");
      assert.match(dicom, /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/);
      assert.ok(["train", "validate", "test"].includes(sp), sp);
      assert.equal(subjSplit.get(subject) ?? sp, sp, `patient ${subject} crosses splits`);
      subjSplit.set(subject, sp);
      perStudy.set(study, (perStudy.get(study) ?? 0) + 1);
    }
    assert.equal(perStudy.size, 400);
    for (const [s, n] of perStudy) assert.ok(n >= 1 && n <= 3, `study ${s}: ${n} dicoms`);
    assert.equal(new Set([...subjSplit.values()]).size, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("studies per patient 1–6, several on average; labels derive from the text", () => {
  const c = corpus();
  const per = new Map<number, number>();
  for (const s of c) per.set(s.subjectId, (per.get(s.subjectId) ?? 0) + 1);
  const counts = [...per.values()];
  assert.ok(Math.max(...counts) <= 6 && Math.min(...counts) >= 1);
  assert.ok(counts.filter((n) => n > 1).length / counts.length > 0.4);
  for (const s of c) {
    assert.ok(noFindingHolds(s.cleanLabels) === (s.cleanLabels[NO_FINDING_INDEX] === 1), s.text);
    assert.ok(s.labels[NO_FINDING_INDEX] === 1 || s.labels[NO_FINDING_INDEX] === null);
  }
  // noise: ~2–3% of cells, a rule-based labeler's errors on top of the text-derived labels
  let diff = 0;
  for (const s of c) s.labels.forEach((v, j) => diff += v !== s.cleanLabels[j] ? 1 : 0);
  const rate = diff / (c.length * CHEXPERT_LABELS.length);
  assert.ok(rate > 0.015 && rate < 0.035, `noise rate ${rate}`);
});

Deno.test("negation and uncertainty in the text map to 0 and −1", () => {
  const c = corpus();
  const ptx = idx("Pneumothorax"), pna = idx("Pneumonia");
  let negOnly = 0, hedgeOnly = 0, resolvedN = 0;
  for (const s of c) {
    const sentences = s.labelledText.split(/(?<=\.)\s+/);
    const ptxS = sentences.filter((t) => /pneumothora/i.test(t));
    if (ptxS.length > 0 && ptxS.every((t) => /^(No|There is no|Negative for)\b/.test(t))) {
      negOnly++;
      assert.equal(s.cleanLabels[ptx], 0, s.labelledText);
    }
    const pnaS = sentences.filter((t) => /pneumonia|infection/i.test(t));
    if (
      pnaS.length > 0 &&
      pnaS.every((t) =>
        /cannot exclude|cannot be excluded|may represent|concerning for|possible/i.test(t)
      )
    ) {
      hedgeOnly++;
      assert.equal(s.cleanLabels[pna], -1, s.labelledText);
    }
    if (/has resolved|interval resolution/i.test(s.labelledText)) resolvedN++;
  }
  assert.ok(negOnly > 50, `only ${negOnly} negated-pneumothorax reports`);
  assert.ok(hedgeOnly > 30, `only ${hedgeOnly} hedged-pneumonia reports`);
  assert.ok(resolvedN > 30, `only ${resolvedN} resolution statements`);
  for (
    const cue of [
      "without",
      "negative for",
      "cannot exclude",
      "may represent",
      "suggestive of",
      "unchanged",
    ]
  ) {
    assert.ok(c.some((s) => s.labelledText.toLowerCase().includes(cue)), `cue "${cue}" never used`);
  }
});

Deno.test("prevalence in plausible ranges (MIMIC-CXR-like)", () => {
  const c = corpus();
  const pos = (l: string) => c.filter((s) => s.labels[idx(l)] === 1).length / c.length;
  const ranges: Array<[string, number, number]> = [
    ["No Finding", 0.25, 0.42],
    ["Support Devices", 0.15, 0.32],
    ["Pleural Other", 0.005, 0.035],
    ["Fracture", 0.005, 0.035],
    ["Pleural Effusion", 0.12, 0.3],
    ["Cardiomegaly", 0.12, 0.3],
    ["Lung Opacity", 0.15, 0.35],
    ["Atelectasis", 0.1, 0.3],
    ["Edema", 0.05, 0.18],
    ["Pneumonia", 0.03, 0.12],
  ];
  for (const [l, lo, hi] of ranges) {
    const p = pos(l);
    assert.ok(p >= lo && p <= hi, `${l} prevalence ${p.toFixed(3)} outside [${lo}, ${hi}]`);
  }
  // correlation: edema goes with effusion far more often than the base rate
  const row = (s: SyntheticStudy) => s.cleanLabels;
  const e = c.filter((s) => row(s)[idx("Edema")] === 1);
  const effGivenEdema = e.filter((s) => row(s)[idx("Pleural Effusion")] === 1).length / e.length;
  assert.ok(effGivenEdema > 1.5 * pos("Pleural Effusion"), `P(eff|edema)=${effGivenEdema}`);
});

Deno.test("keyword baseline stays well below saturation (weighted F1 < 0.9)", () => {
  const c = corpus();
  const pred = c.map((s) => keywordPredict(s.labelledText));
  const zeros = weightedF1(c.map((s) => binarise(s.labels, "zeros")), pred).weighted;
  const ones = weightedF1(c.map((s) => binarise(s.labels, "ones")), pred).weighted;
  console.log(
    `keyword baseline weighted F1: U-zeros ${zeros.toFixed(4)}, U-ones ${ones.toFixed(4)}`,
  );
  assert.ok(zeros > 0.65 && zeros < 0.87, `U-zeros ${zeros}`);
  assert.ok(ones > 0.65 && ones < 0.9, `U-ones ${ones}`);
  // and a perfect reader of the text (the clean labels) beats it by a wide margin
  const truth = c.map((s) => binarise(s.labels, "zeros"));
  const oracle =
    weightedF1(truth, c.map((s) => binarise(s.cleanLabels as LabelRow, "zeros"))).weighted;
  assert.ok(oracle > zeros + 0.1, `oracle ${oracle} vs keywords ${zeros}`);
});

Deno.test("trainWordPiece: specials 0..4, full alphabet, ## continuations, deterministic", () => {
  const texts = [
    "Small left pleural effusion.",
    "No pleural effusion or pneumothorax.",
    "Pleural effusions!",
  ];
  const wc = countWords(texts);
  const a = trainWordPiece(wc, { vocabSize: 60 });
  const b = trainWordPiece(new Map([...wc].reverse()), { vocabSize: 60 });
  assert.deepEqual(a.vocab, b.vocab);
  assert.deepEqual(a.vocab.slice(0, 5), [...DEFAULT_SPECIALS]);
  assert.equal(new Set(a.vocab).size, a.vocab.length);
  for (const ch of "smalefturionphx.!") {
    assert.ok(a.vocab.includes(ch) && a.vocab.includes("##" + ch), ch);
  }
  assert.ok(a.vocab.includes("pleural"), "frequent word not merged whole");
  assert.ok(a.vocab.some((t) => t.startsWith("##") && t.length > 3));
  const tok = new WordPieceTokenizer(a.vocab, { lowercase: true });
  assert.deepEqual(tok.tokenize("pleural"), ["pleural"]);
  assert.ok(!tok.tokenize("pneumothorax effusion").includes("[UNK]"));
  assert.deepEqual(tok.tokenize("zz"), ["[UNK]"]);
  assert.throws(() => trainWordPiece(wc, { vocabSize: 5 }), RangeError);
});

Deno.test("committed vocab: specials, 3000–4000 entries, < 0.1% [UNK] on the labelled corpus", async () => {
  const root = new URL("../fixtures/", import.meta.url).pathname;
  const vocab = (await Deno.readTextFile(`${root}tokenizer/vocab.txt`)).trimEnd().split("\n");
  assert.deepEqual(vocab.slice(0, 5), [...DEFAULT_SPECIALS]);
  assert.ok(vocab.length >= 3000 && vocab.length <= 4000, `vocab size ${vocab.length}`);
  const tok = new WordPieceTokenizer(vocab, { lowercase: true });
  // the labelled corpus uses a different seed from the public corpus the vocab was learned on
  const studies = generateCorpus({ seed: 99, reports: 400 });
  let total = 0, unk = 0;
  for (const s of studies) {
    for (const t of tok.tokenize(s.text)) {
      total++;
      if (t === "[UNK]") unk++;
    }
  }
  console.log(
    `vocab ${vocab.length}: ${total} tokens, ${unk} [UNK], ${
      (total / studies.length).toFixed(1)
    } tokens/report`,
  );
  assert.ok(unk / total < 0.001, `[UNK] rate ${unk / total}`);
  const json = JSON.parse(await Deno.readTextFile(`${root}tokenizer/tokenizer.json`));
  assert.equal(Object.keys(json.model.vocab).length, vocab.length);
});
