import assert from "node:assert/strict";
import { configFromObject, type DataConfig } from "../pipeline/config.ts";
import { DataError } from "../pipeline/errors.ts";
import { buildTokenCache, prepareData, readManifest, readSplit } from "../pipeline/data/cache.ts";
import { parseCsv } from "../pipeline/data/csv.ts";
import { loadDataset } from "../pipeline/data/dataset.ts";
import {
  applyLabelPolicy,
  applyNoFindingRule,
  parseLabel,
  type RawLabel,
} from "../pipeline/data/labels.ts";
import { parseSections, selectSections } from "../pipeline/data/sections.ts";
import { randomPatientSplit, splitRecords } from "../pipeline/data/split.ts";
import type { ReportRecord } from "../pipeline/data/types.ts";
import type { Tokenizer } from "../pipeline/model/types.ts";
import { freshSeed, rng } from "./helpers.ts";

/** Whitespace tokenizer: [CLS]=1 words… [SEP]=2, word id = 10 + (hash mod 990). */
class WhitespaceTokenizer implements Tokenizer {
  readonly vocabSize = 1000;
  readonly padId = 0;
  readonly clsId = 1;
  readonly sepId = 2;
  readonly unkId = 3;
  readonly maskId = 4;
  constructor(private salt = "") {}
  encode(text: string, maxLength: number): number[] {
    const words = text.toLowerCase().split(/\s+/).filter((w) => w);
    const ids = words.map((w) => {
      let h = 0;
      for (const c of this.salt + w) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      return 10 + (h % 990);
    });
    return [this.clsId, ...ids.slice(0, maxLength - 2), this.sepId];
  }
  fingerprint(): string {
    return `ws:${this.salt}`;
  }
}

const LABELS3 = ["Edema", "No Finding", "Support Devices"];

function dataCfg(over: Record<string, unknown>): DataConfig {
  return configFromObject({
    data: { labels: LABELS3, ...over },
    model: { checkpoint: "/ckpt", mode: "lora" },
  }).data;
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dplora_data_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsData(p: Promise<unknown>, kind: string, where: RegExp): Promise<DataError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof DataError)) throw e;
    assert.equal(e.kind, kind, e.message);
    assert.match(e.where, where, e.message);
    return e;
  }
  throw new Error(`expected DataError ${kind}`);
}

// ---------------------------------------------------------------------------------------------

Deno.test("csv: quotes, escaped quotes, newlines in quotes, CRLF, BOM, blank lines, line numbers", () => {
  const text = '\ufeffid,text,n\r\n1,"a, ""quoted"" word",2\r\n\r\n2,"multi\nline\nfield",3\n3,,\n';
  const t = parseCsv(text, "f.csv");
  assert.deepEqual(t.header, ["id", "text", "n"]);
  assert.deepEqual(t.rows.map((r) => r.cells), [
    ["1", 'a, "quoted" word', "2"],
    ["2", "multi\nline\nfield", "3"],
    ["3", "", ""],
  ]);
  assert.deepEqual(t.rows.map((r) => r.line), [2, 4, 7]);
  // no trailing newline
  assert.deepEqual(parseCsv("a,b\n1,2", "f.csv").rows[0].cells, ["1", "2"]);
  const bad: [string, RegExp][] = [
    ['id,t\n1,"open\n2,x\n', /^f\.csv:2: unterminated/],
    ['id,t\n1,ab"c\n', /^f\.csv:2: quote inside an unquoted field/],
    ['id,t\n1,"ab"c\n', /^f\.csv:2: text after a closing quote/],
    ["id,t\n1,a\n2,b,c\n", /^f\.csv:3: expected 2 fields/],
  ];
  for (const [src, re] of bad) {
    assert.throws(
      () => parseCsv(src, "f.csv"),
      (e: unknown) => e instanceof DataError && re.test(e.message),
    );
  }
});

Deno.test("labels: value parsing, policies with mask, No Finding rule", () => {
  const ok: [unknown, RawLabel][] = [
    [1, 1],
    [0, 0],
    [-1, -1],
    ["1", 1],
    ["1.0", 1],
    ["0.0", 0],
    ["-1.0", -1],
    ["-1", -1],
    ["", null],
    [null, null],
    [true, 1],
    [false, 0],
    [" 1.0 ", 1],
  ];
  for (const [v, want] of ok) assert.equal(parseLabel(v), want, `parseLabel(${JSON.stringify(v)})`);
  for (const v of ["2", "0.5", "yes", 2, 0.5, "1e0", {}, [1]]) {
    assert.equal(parseLabel(v), undefined, JSON.stringify(v));
  }
  const raw: RawLabel[] = [1, 0, -1, null];
  const pos = applyLabelPolicy(raw, "positive");
  assert.deepEqual([...pos.target], [1, 0, 1, 0]);
  assert.deepEqual([...pos.mask], [1, 1, 1, 1]);
  const neg = applyLabelPolicy(raw, "negative");
  assert.deepEqual([...neg.target], [1, 0, 0, 0]);
  assert.deepEqual([...neg.mask], [1, 1, 1, 1]);
  const ign = applyLabelPolicy(raw, "ignore");
  assert.deepEqual([...ign.target], [1, 0, 0, 0]);
  assert.deepEqual([...ign.mask], [1, 1, 0, 1], "uncertain masked, blank counted as negative");

  const names = ["Edema", "No Finding", "Support Devices", "Fracture"];
  // Only Support Devices positive → No Finding 1; an uncertain finding → No Finding blank.
  assert.deepEqual(applyNoFindingRule([0, null, 1, null], names), [0, 1, 1, null]);
  assert.deepEqual(applyNoFindingRule([null, 1, null, -1], names), [null, null, null, -1]);
  assert.deepEqual(applyNoFindingRule([1, 1, 0, 0], names), [1, null, 0, 0]);
  assert.deepEqual(applyNoFindingRule([0, null, -1, 0], names), [0, 1, -1, 0]);
  assert.throws(() => applyNoFindingRule([1], ["Edema"]), /No Finding/);
});

Deno.test("sections: headers, variants, last-section-wins and every fall-back", () => {
  const full = ` FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old man with cough.

 COMPARISON:  ___.

 FINDINGS:
 
 The lungs are clear.   No effusion.
 
 IMPRESSION:  No acute process.
`;
  const s = parseSections(full);
  assert.deepEqual(s.map((x) => x.name), [
    "preamble",
    "examination",
    "indication",
    "comparison",
    "findings",
    "impression",
  ]);
  assert.equal(s[2].text, "___ year old man with cough.", "___ kept, whitespace normalised");
  assert.deepEqual(selectSections(s, ["findings", "impression"]), {
    text: "The lungs are clear. No effusion. No acute process.",
    source: "sections",
  });
  assert.deepEqual(
    selectSections(s, ["impression", "findings"]).text,
    "No acute process. The lungs are clear. No effusion.",
  );

  const fi = " INDICATION: pain.\n FINDINGS AND IMPRESSION: Normal heart size.\n";
  assert.deepEqual(selectSections(parseSections(fi), ["impression"]), {
    text: "Normal heart size.",
    source: "sections",
  });
  // Requested findings missing but impression present → partial join, no fall-back.
  assert.equal(
    selectSections(parseSections(fi), ["findings", "impression"]).text,
    "Normal heart size.",
  );
  // Requested section absent → fall-back to impression.
  assert.deepEqual(
    selectSections(parseSections(fi), ["indication", "comparison"]).source,
    "sections",
  );
  assert.deepEqual(selectSections(parseSections(fi), ["technique"]), {
    text: "Normal heart size.",
    source: "fallback:impression",
  });
  // Empty FINDINGS dropped; no impression → falls back to findings? No: both gone → last paragraph.
  const lp =
    " INDICATION: cough.\n FINDINGS:\n\n COMMENT: First para.\n\n Final para with ___ here.\n";
  const ls = parseSections(lp);
  assert.ok(!ls.some((x) => x.name === "findings"), "empty findings removed");
  assert.deepEqual(selectSections(ls, ["findings", "impression"]), {
    text: "Final para with ___ here.",
    source: "fallback:last_paragraph",
  });
  // Only comparison.
  const cmp = " INDICATION: x.\n COMPARISON: Stable since ___.\n";
  assert.deepEqual(selectSections(parseSections(cmp), ["findings"]), {
    text: "Stable since ___.",
    source: "fallback:comparison",
  });
  // No headers at all, one paragraph → whole text.
  assert.deepEqual(selectSections(parseSections("Heart normal.\nLungs clear."), ["impression"]), {
    text: "Heart normal. Lungs clear.",
    source: "full_text",
  });
  // Two IMPRESSION sections: the last non-empty one wins (official parser's rule).
  const two = " IMPRESSION: first.\n ADDENDUM: x\n IMPRESSION: second.\n";
  assert.equal(selectSections(parseSections(two), ["impression"]).text, "second.");
  // CONCLUSION is an impression; a colon inside text ("4:15") is not a header.
  const conc = " WET READ: ___ 4:15 PM\n CONCLUSION: Pneumonia.\n";
  assert.equal(selectSections(parseSections(conc), ["impression"]).text, "Pneumonia.");
});

// ---------------------------------------------------------------------------------------------
// MIMIC-CXR layout

interface Study {
  subject: string;
  study: string;
  labels: string[];
  text: string | Uint8Array | null;
}

async function writeMimic(dir: string, studies: Study[], splitRows?: string[][]): Promise<void> {
  const lines = [["subject_id", "study_id", ...LABELS3].join(",")];
  for (const s of studies) {
    lines.push([s.subject, s.study, ...s.labels].join(","));
    if (s.text === null) continue;
    const d = `${dir}/files/p${s.subject.slice(0, 2)}/p${s.subject}`;
    await Deno.mkdir(d, { recursive: true });
    const bytes = typeof s.text === "string" ? new TextEncoder().encode(s.text) : s.text;
    await Deno.writeFile(`${d}/s${s.study}.txt`, bytes);
  }
  await Deno.writeTextFile(`${dir}/mimic-cxr-2.0.0-chexpert.csv`, lines.join("\n") + "\n");
  if (splitRows) {
    const rows = [["dicom_id", "study_id", "subject_id", "split"], ...splitRows];
    await Deno.writeTextFile(
      `${dir}/mimic-cxr-2.0.0-split.csv`,
      rows.map((r) => r.join(",")).join("\n") + "\n",
    );
  }
}

const REPORT = (imp: string) =>
  ` FINAL REPORT\n INDICATION: ___ cough.\n\n FINDINGS: Lungs clear.\n\n IMPRESSION: ${imp}\n`;

const STUDIES: Study[] = [
  { subject: "10000032", study: "50414267", labels: ["", "1.0", ""], text: REPORT("Normal.") },
  {
    subject: "10000032",
    study: "53189527",
    labels: ["1.0", "", "-1.0"],
    text: REPORT("Mild edema."),
  },
  {
    subject: "11000011",
    study: "51000001",
    labels: ["-1.0", "", "1.0"],
    text: " INDICATION: x\n COMPARISON: none.\n",
  },
  { subject: "12000022", study: "52000002", labels: ["0.0", "", ""], text: REPORT("Stable.") },
];

Deno.test("mimic: layout, labels, sections, official split deduplicated over DICOMs", async () => {
  await withTmp(async (dir) => {
    await writeMimic(dir, STUDIES, [
      ["d1", "50414267", "10000032", "train"],
      ["d2", "50414267", "10000032", "train"],
      ["d3", "53189527", "10000032", "train"],
      ["d4", "51000001", "11000011", "validate"],
      ["d5", "52000002", "12000022", "test"],
      ["d6", "52000002", "12000022", "test"],
    ]);
    const cfg = dataCfg({ format: "mimic-cxr", root: dir, uncertain: "ignore" });
    const ds = await loadDataset(cfg);
    assert.deepEqual(ds.records.map((r) => [r.id, r.patient, r.split]), [
      ["50414267", "10000032", "train"],
      ["53189527", "10000032", "train"],
      ["51000001", "11000011", "validation"],
      ["52000002", "12000022", "test"],
    ]);
    assert.equal(ds.records[1].text, "Lungs clear. Mild edema.");
    assert.equal(ds.records[2].text, "none.", "comparison fall-back");
    assert.deepEqual(ds.textSources, { sections: 3, "fallback:comparison": 1 });
    assert.deepEqual(ds.records[1].raw, [1, null, -1]);
    assert.deepEqual([...ds.records[1].mask], [1, 1, 0]);
    assert.deepEqual([...ds.records[2].target], [0, 0, 1]);
    assert.equal(ds.inputs.length, 3);
    assert.equal(ds.inputs[2].files, 4);

    const nf = await loadDataset({ ...cfg, no_finding_rule: true });
    // Study 2: Edema 1 → No Finding blank; study 4: only negatives → No Finding 1.
    assert.deepEqual(nf.records.map((r) => r.raw[1]), [1, null, null, 1]);

    // A study whose DICOMs disagree on the split is a DataError even with on_error: skip.
    await writeMimic(dir, STUDIES, [
      ["d1", "50414267", "10000032", "train"],
      ["d2", "50414267", "10000032", "test"],
    ]);
    const e = await rejectsData(
      loadDataset({ ...cfg, on_error: "skip" }),
      "split-conflict",
      /split\.csv:3$/,
    );
    assert.match(e.message, /study 50414267 is "test" here but "train" on line 2/);
    // Random mode ignores the official split file entirely.
    const r = await loadDataset({ ...cfg, split: { ...cfg.split, mode: "random" } });
    assert.ok(r.records.every((x) => x.split === undefined));
  });
});

Deno.test("mimic: missing report, bad label, duplicate study, non-UTF-8 — fail and skip", async () => {
  await withTmp(async (dir) => {
    const bad: Study[] = [
      ...STUDIES,
      { subject: "13000033", study: "53000003", labels: ["", "", ""], text: null },
      { subject: "14000044", study: "54000004", labels: ["2.0", "", ""], text: REPORT("x") },
      { subject: "10000032", study: "50414267", labels: ["", "", ""], text: REPORT("dup") },
      {
        subject: "15000055",
        study: "55000005",
        labels: ["", "", ""],
        text: new Uint8Array([0x20, 0x0a, 0x41, 0xff, 0x0a]),
      },
      { subject: "16000066", study: "56000006", labels: ["", "", ""], text: "   \n\n  " },
    ];
    await writeMimic(dir, bad);
    const cfg = dataCfg({ format: "mimic-cxr", root: dir });
    const csv = /chexpert\.csv:\d+$/;
    await rejectsData(loadDataset(cfg), "missing-report", /chexpert\.csv:6$/);
    const skip = await loadDataset({ ...cfg, on_error: "skip" });
    assert.equal(skip.records.length, 4);
    assert.deepEqual(skip.skipped.map((s) => s.kind), [
      "missing-report",
      "bad-label",
      "duplicate-id",
      "not-utf8",
      "empty-text",
    ]);
    assert.match(skip.skipped[0].where, csv);
    assert.match(skip.skipped[1].message, /label "Edema" = "2\.0" is not one of/);
    assert.match(skip.skipped[2].message, /already labelled on line 2/);
    assert.match(
      skip.skipped[3].where,
      /s55000005\.txt:2$/,
      "non-UTF-8 names the report and its line",
    );
    assert.match(skip.skipped[4].where, /s56000006\.txt$/);
    // Missing label column and unreadable label file are file-level: always fatal.
    await Deno.writeTextFile(
      `${dir}/mimic-cxr-2.0.0-chexpert.csv`,
      "subject_id,study_id,Edema\n1,2,1\n",
    );
    await rejectsData(
      loadDataset({ ...cfg, on_error: "skip" }),
      "missing-column",
      /chexpert\.csv:1$/,
    );
    await rejectsData(
      loadDataset({ ...cfg, root: `${dir}/nope` }),
      "unreadable",
      /nope\/mimic-cxr-2\.0\.0-chexpert\.csv$/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// CSV and JSONL

Deno.test("csv source: id/patient/text columns joined in order, split column used as is", async () => {
  await withTmp(async (dir) => {
    const rows = [
      "id,patient,findings,impression,Edema,No Finding,Support Devices,split",
      'r1,p1,"Lungs clear.","No acute, process.",0,1,,train',
      'r2,p1,"Edema ""mild""\nbilateral.",Edema.,1.0,,-1,validate',
      "r3,p2,,Only impression.,-1,,1,test",
    ];
    await Deno.writeTextFile(`${dir}/r.csv`, rows.join("\r\n") + "\r\n");
    const cfg = dataCfg({
      format: "csv",
      file: `${dir}/r.csv`,
      text_columns: ["findings", "impression"],
      patient_column: "patient",
      split_column: "split",
      uncertain: "positive",
    });
    const ds = await loadDataset(cfg);
    assert.deepEqual(ds.records.map((r) => [r.id, r.patient, r.text, r.split]), [
      ["r1", "p1", "Lungs clear. No acute, process.", "train"],
      ["r2", "p1", 'Edema "mild" bilateral. Edema.', "validation"],
      ["r3", "p2", "Only impression.", "test"],
    ]);
    assert.deepEqual(ds.records.map((r) => [...r.target]), [[0, 1, 0], [1, 0, 1], [1, 0, 1]]);
    assert.equal(ds.records[2].where, `${dir}/r.csv:5`, "line counts the embedded newline");
    // Without a patient column each record is its own patient.
    const own = await loadDataset({ ...cfg, patient_column: undefined });
    assert.deepEqual(own.records.map((r) => r.patient), ["r1", "r2", "r3"]);
    // Relative paths resolve against baseDir.
    assert.equal((await loadDataset({ ...cfg, file: "r.csv" }, dir)).records.length, 3);
  });
});

Deno.test("jsonl source: numbers, strings, booleans and null as labels", async () => {
  await withTmp(async (dir) => {
    const lines = [
      { id: 1, text: "a b", "Edema": 1, "No Finding": "", "Support Devices": null },
      { id: "2", text: "c", "Edema": "1.0", "No Finding": false, "Support Devices": true },
      { id: "3", text: "d", "Edema": -1, "No Finding": "0", "Support Devices": "-1.0" },
    ].map((o) => JSON.stringify(o));
    await Deno.writeTextFile(`${dir}/r.jsonl`, lines.join("\n") + "\n\n");
    const cfg = dataCfg({ format: "jsonl", file: `${dir}/r.jsonl`, uncertain: "negative" });
    const ds = await loadDataset(cfg);
    assert.deepEqual(ds.records.map((r) => r.id), ["1", "2", "3"]);
    assert.deepEqual(ds.records.map((r) => r.raw), [[1, null, null], [1, 0, 1], [-1, 0, -1]]);
    assert.deepEqual(ds.records.map((r) => [...r.target]), [[1, 0, 0], [1, 0, 1], [0, 0, 0]]);
  });
});

Deno.test("csv/jsonl DataErrors: every kind names file:line; skip mode counts them", async () => {
  await withTmp(async (dir) => {
    const head = "id,text,Edema,No Finding,Support Devices";
    const rows = [head, "a,ok,1,,", "b,,1,,", "c,x,yes,,", "a,dup,0,,", "d,fine,,,"];
    await Deno.writeTextFile(`${dir}/r.csv`, rows.join("\n") + "\n");
    const cfg = dataCfg({ format: "csv", file: `${dir}/r.csv` });
    await rejectsData(loadDataset(cfg), "empty-text", /r\.csv:3$/);
    const s = await loadDataset({ ...cfg, on_error: "skip" });
    assert.deepEqual(s.records.map((r) => r.id), ["a", "d"]);
    assert.deepEqual(s.skipped.map((x) => [x.kind, x.where.split(":").pop()]), [
      ["empty-text", "3"],
      ["bad-label", "4"],
      ["duplicate-id", "5"],
    ]);
    await rejectsData(
      loadDataset({ ...cfg, text_columns: ["report"], on_error: "skip" }),
      "missing-column",
      /r\.csv:1$/,
    );
    await rejectsData(loadDataset({ ...cfg, file: `${dir}/none.csv` }), "unreadable", /none\.csv$/);
    const bytes = new TextEncoder().encode(`${head}\na,ok,1,,\nb,caf`);
    await Deno.writeFile(`${dir}/latin1.csv`, new Uint8Array([...bytes, 0xe9, 0x0a]));
    await rejectsData(
      loadDataset({ ...cfg, file: `${dir}/latin1.csv`, on_error: "skip" }),
      "not-utf8",
      /latin1\.csv:3$/,
    );

    const jl = [
      '{"id":"a","text":"t","Edema":1,"No Finding":null,"Support Devices":null}',
      "{not json",
      '{"id":"b","text":"t","Edema":1}',
      "[1]",
    ];
    await Deno.writeTextFile(`${dir}/r.jsonl`, jl.join("\n"));
    const jcfg = dataCfg({ format: "jsonl", file: `${dir}/r.jsonl` });
    await rejectsData(loadDataset(jcfg), "syntax", /r\.jsonl:2$/);
    const js = await loadDataset({ ...jcfg, on_error: "skip" });
    assert.equal(js.records.length, 1);
    assert.deepEqual(js.skipped.map((x) => [x.kind, x.where.split(":").pop()]), [
      ["syntax", "2"],
      ["missing-column", "3"],
      ["syntax", "4"],
    ]);
    assert.match(js.skipped[1].message, /row has no "No Finding"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Splits

function fakeRecords(nPatients: number, r: () => number): ReportRecord[] {
  const out: ReportRecord[] = [];
  for (let p = 0; p < nPatients; p++) {
    const k = 1 + Math.floor(r() * 4);
    for (let j = 0; j < k; j++) {
      out.push({
        id: `s${p}_${j}`,
        patient: `p${p}`,
        text: "t",
        raw: [0],
        target: new Uint8Array(1),
        mask: new Uint8Array([1]),
        where: "x",
      });
    }
  }
  return out;
}

Deno.test("split: patient-level, disjoint, deterministic by seed, fractions by patient", () => {
  const seed = freshSeed();
  const recs = fakeRecords(130, rng(seed));
  const cfg = {
    mode: "random" as const,
    seed: 7,
    fractions: { train: 0.8, validation: 0.1, test: 0.1 },
  };
  const a = splitRecords(recs, cfg);
  assert.equal(a.source, "random");
  const pats = (s: ReportRecord[]) => new Set(s.map((r) => r.patient));
  const [tr, va, te] = [pats(a.splits.train), pats(a.splits.validation), pats(a.splits.test)];
  for (const p of tr) {
    assert.ok(!va.has(p) && !te.has(p), `patient ${p} crosses splits (seed ${seed})`);
  }
  for (const p of va) assert.ok(!te.has(p), `patient ${p} crosses splits (seed ${seed})`);
  assert.deepEqual([tr.size, va.size, te.size], [104, 13, 13]);
  assert.equal(
    a.splits.train.length + a.splits.validation.length + a.splits.test.length,
    recs.length,
  );
  // Same seed, shuffled input → identical assignment; other seed → different.
  const shuffled = [...recs].reverse();
  const b = randomPatientSplit(shuffled, cfg);
  assert.deepEqual([...pats(b.test)].sort(), [...te].sort());
  const c = randomPatientSplit(recs, { ...cfg, seed: 8 });
  assert.notDeepEqual([...pats(c.test)].sort(), [...te].sort());
  // Given splits: used as is; a record without one is an error; auto falls back to random.
  const given: ReportRecord[] = recs.map((r, i) => ({
    ...r,
    split: (["train", "validation", "test"] as const)[i % 3],
  }));
  const g = splitRecords(given, { ...cfg, mode: "auto" });
  assert.equal(g.source, "given");
  assert.ok(g.warnings[0].includes("more than one split"), "crossing patients are flagged");
  given[5] = { ...given[5], split: undefined };
  assert.throws(
    () => splitRecords(given, { ...cfg, mode: "auto" }),
    (e: unknown) => e instanceof DataError && e.kind === "missing-split",
  );
  assert.throws(() => splitRecords(recs, { ...cfg, mode: "given" }), DataError);
  assert.equal(splitRecords(recs, { ...cfg, mode: "auto" }).source, "random");
});

// ---------------------------------------------------------------------------------------------
// Token cache

Deno.test("cache: round trip, reuse, invalidation on input/tokenizer/settings change", async () => {
  await withTmp(async (dir) => {
    const head = "id,patient,text,Edema,No Finding,Support Devices";
    const body: string[] = [];
    for (let i = 0; i < 40; i++) {
      const words = Array.from({ length: 3 + (i % 9) }, (_, k) => `w${(i * 7 + k) % 23}`).join(" ");
      body.push(`r${i},p${i % 17},${words},${["1", "0", "-1", ""][i % 4]},,${i % 5 === 0 ? 1 : 0}`);
    }
    await Deno.writeTextFile(`${dir}/r.csv`, [head, ...body].join("\n") + "\n");
    const cfg = dataCfg({
      format: "csv",
      file: `${dir}/r.csv`,
      patient_column: "patient",
      max_length: 8,
    });
    const tok = new WhitespaceTokenizer();
    const run = `${dir}/run`;
    const m1 = await prepareData(cfg, tok, run);
    assert.equal(m1.reused, false);
    assert.equal(m1.splitSource, "random");
    const total = m1.splits.train.records + m1.splits.validation.records + m1.splits.test.records;
    assert.equal(total, 40);
    const ds = await loadDataset(cfg);
    const byId = new Map(ds.records.map((r) => [r.id, r]));
    for (const s of ["train", "validation", "test"] as const) {
      const d = await readSplit(run, s);
      assert.equal(d.n, m1.splits[s].records);
      assert.deepEqual(d.labelNames, LABELS3);
      for (let i = 0; i < d.n; i++) {
        const r = byId.get(d.recordIds[i])!;
        const ids = [...d.ids.subarray(d.offsets[i], d.offsets[i + 1])];
        assert.deepEqual(ids, tok.encode(r.text, 8), `tokens of ${r.id}`);
        for (let j = 0; j < 3; j++) {
          assert.equal(d.mask[i * 3 + j], r.mask[j], `mask ${r.id}/${j}`);
          assert.equal(d.labels[i * 3 + j], r.mask[j] ? r.target[j] : 0, `label ${r.id}/${j}`);
        }
        assert.equal(d.units[d.unitIds[i]], r.patient);
      }
      // Manifest prevalence agrees with the file.
      const edema = m1.splits[s].prevalence["Edema"];
      let pos = 0, masked = 0;
      for (let i = 0; i < d.n; i++) {
        pos += d.labels[i * 3];
        masked += 1 - d.mask[i * 3];
      }
      assert.deepEqual([edema.positive, edema.masked], [pos, masked]);
    }
    const mtimeBefore = (await Deno.stat(`${run}/data/train.bin`)).mtime?.getTime();
    const m2 = await prepareData(cfg, tok, run);
    assert.equal(m2.reused, true);
    assert.equal(m2.key, m1.key);
    assert.equal(
      (await Deno.stat(`${run}/data/train.bin`)).mtime?.getTime(),
      mtimeBefore,
      "no rewrite",
    );

    // One changed character in the input → new key, rebuilt.
    await Deno.writeTextFile(
      `${dir}/r.csv`,
      [head, ...body].join("\n").replace("r3,", "r3x,") + "\n",
    );
    const m3 = await prepareData(cfg, tok, run);
    assert.equal(m3.reused, false);
    assert.notEqual(m3.key, m1.key);
    assert.ok(
      (await readSplit(run, "train")).recordIds.concat(
        (await readSplit(run, "test")).recordIds,
        (await readSplit(run, "validation")).recordIds,
      ).includes("r3x"),
    );
    // Tokenizer fingerprint and settings are part of the key.
    assert.equal((await prepareData(cfg, new WhitespaceTokenizer("v2"), run)).reused, false);
    assert.equal(
      (await prepareData({ ...cfg, max_length: 9 }, new WhitespaceTokenizer("v2"), run)).reused,
      false,
    );
    // A damaged bin is detected and rebuilt, not reused.
    const ds2 = await loadDataset({ ...cfg, max_length: 9 });
    const bin = await Deno.readFile(`${run}/data/test.bin`);
    bin[40] ^= 1;
    await Deno.writeFile(`${run}/data/test.bin`, bin);
    assert.equal(
      (await buildTokenCache(ds2, new WhitespaceTokenizer("v2"), { ...cfg, max_length: 9 }, run))
        .reused,
      false,
    );
    assert.ok(await readManifest(run));
    await rejectsData(readSplit(`${dir}/norun`, "train"), "unreadable", /norun\/data\/train\.bin$/);
  });
});
