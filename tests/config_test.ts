import assert from "node:assert/strict";
import {
  applyOverrides,
  CHEXPERT_LABELS,
  configReference,
  DEFAULTS,
  editDistance,
  loadConfig,
  parseConfig,
  resolveDelta,
} from "../pipeline/config.ts";
import { ConfigError } from "../pipeline/errors.ts";
import { planSweep } from "../pipeline/sweep/plan.ts";

const GOOD = `# a minimal dp-lora config
data:
  format: csv
  file: reports.csv
  text_columns: [findings, impression]
  patient_column: patient
model:
  checkpoint: ../ckpt/bert-small
  mode: dp-lora
train:
  epochs: 2
  batch_size: 64
  lr: 3.0e-4
privacy:
  target_epsilon: 1
  unit: patient
`;

function err(fn: () => unknown): string {
  let msg = "";
  assert.throws(() => {
    try {
      fn();
    } catch (e) {
      msg = (e as Error).message;
      throw e;
    }
  }, ConfigError);
  return msg;
}

/** Replace one line of GOOD (1-based) and return the text. */
function withLine(n: number, line: string): string {
  const ls = GOOD.split("\n");
  ls[n - 1] = line;
  return ls.join("\n");
}

Deno.test("config: valid file gets defaults, derived defaults and resolved paths", () => {
  const c = parseConfig(GOOD, "cfg/config.yaml", "/home/u/cfg");
  assert.deepEqual(c.data.file, "/home/u/cfg/reports.csv");
  assert.deepEqual(c.model.checkpoint, "/home/u/ckpt/bert-small");
  assert.deepEqual(c.output.dir, "/home/u/cfg/run");
  assert.deepEqual(c.data.labels, [...CHEXPERT_LABELS]);
  assert.deepEqual(c.data.max_length, 128);
  assert.deepEqual(c.data.split.fractions, { train: 0.8, validation: 0.1, test: 0.1 });
  assert.deepEqual(c.model.lora, {
    targets: ["query", "value"],
    rank: 8,
    alpha: 16,
    dropout: 0.05,
  });
  assert.deepEqual(c.train.lr, 3e-4);
  assert.deepEqual(c.train.physical_batch, 16); // min(16, 64)
  assert.deepEqual(c.privacy?.target_epsilon, 1);
  assert.deepEqual(c.privacy?.noise_multiplier, undefined);
  assert.deepEqual(c.privacy?.delta, undefined); // resolved later from N
  assert.deepEqual(c.privacy?.accountant, "pld");
  assert.deepEqual(c.evaluate.threshold, 0.5);
  assert.deepEqual(c.warnings, []);
});

Deno.test("config: wrong type names file, line and key path", () => {
  const msg = err(() => parseConfig(withLine(12, "  batch_size: sixty"), "config.yaml", "."));
  assert.deepEqual(
    msg,
    'config.yaml:12 train.batch_size: expected a positive integer, got "sixty"',
  );
  const m2 = err(() => parseConfig(withLine(13, "  lr: -1"), "config.yaml", "."));
  assert.deepEqual(m2, "config.yaml:13 train.lr: expected a positive number, got -1");
  const m3 = err(() => parseConfig(withLine(3, "  format: parquet"), "c.yaml", "."));
  assert.match(
    m3,
    /^c\.yaml:3 data\.format: expected one of mimic-cxr \| csv \| jsonl, got "parquet"$/,
  );
  const m4 = err(() => parseConfig(withLine(5, "  text_columns: [findings, 3]"), "c.yaml", "."));
  assert.match(m4, /^c\.yaml:5 data\.text_columns: expected a non-empty list .*bad item 3/);
  const m5 = err(() =>
    parseConfig(
      GOOD.replace("  checkpoint: ../ckpt/bert-small\n  mode: dp-lora\n", "").replace(
        "model:",
        "model: 3",
      ),
      "c.yaml",
      ".",
    )
  );
  assert.match(m5, /^c\.yaml:\d+ model: expected a mapping/);
});

Deno.test("config: unknown keys are errors with did-you-mean", () => {
  const m1 = err(() => parseConfig(withLine(12, "  batch_szie: 64"), "config.yaml", "."));
  assert.deepEqual(
    m1,
    "config.yaml:12 train.batch_szie: unknown key (did you mean train.batch_size?)",
  );
  // A key that belongs to another section points there.
  const m2 = err(() => parseConfig(withLine(11, "  rank: 4"), "config.yaml", "."));
  assert.deepEqual(m2, "config.yaml:11 train.rank: unknown key (did you mean model.lora.rank?)");
  const m3 = err(() => parseConfig(GOOD + "evaluat:\n  threshold: 0.3\n", "config.yaml", "."));
  assert.deepEqual(m3, "config.yaml:17 evaluat: unknown key (did you mean evaluate?)");
  assert.deepEqual(editDistance("kitten", "sitting"), 3);
  assert.deepEqual(editDistance("", "abc"), 3);
});

Deno.test("config: missing required keys and sections", () => {
  const m1 = err(() => parseConfig(withLine(8, "  # no checkpoint"), "config.yaml", "."));
  assert.match(m1, /^config\.yaml:7 model\.checkpoint: missing required key/);
  const m2 = err(() => parseConfig(withLine(3, "  # no format"), "config.yaml", "."));
  assert.match(m2, /^config\.yaml:2 data\.format: missing required key/);
  const noPrivacy = GOOD.split("\n").slice(0, 13).join("\n");
  const m3 = err(() => parseConfig(noPrivacy, "config.yaml", "."));
  assert.match(m3, /^config\.yaml:1 privacy: missing required section: model\.mode dp-lora/);
  const m4 = err(() => parseConfig(withLine(4, "  # no file"), "config.yaml", "."));
  assert.match(m4, /^config\.yaml:2 data\.file: missing required key: format csv/);
  const mimic = withLine(4, "  sections: [impression]").replace("format: csv", "format: mimic-cxr");
  assert.match(
    err(() => parseConfig(mimic, "c.yaml", ".")),
    /c\.yaml:2 data\.root: missing required/,
  );
});

Deno.test("config: epsilon XOR sigma, and the other cross-field rules", () => {
  const both = GOOD + "  noise_multiplier: 1.1\n";
  assert.deepEqual(
    err(() => parseConfig(both, "config.yaml", ".")),
    "config.yaml:17 privacy.noise_multiplier: give either privacy.target_epsilon or " +
      "privacy.noise_multiplier, not both",
  );
  const neither = withLine(15, "  max_grad_norm: 1.0");
  assert.match(
    err(() => parseConfig(neither, "c.yaml", ".")),
    /c\.yaml:14 privacy: missing required key/,
  );
  // Non-private: a micro-batch is a slice of a fixed batch. Under DP batch_size counts expected
  // units (a patient holds several reports), so a larger record cap is valid there.
  const phys = withLine(13, "  physical_batch: 128").replace("mode: dp-lora", "mode: lora");
  assert.deepEqual(
    err(() => parseConfig(phys, "c.yaml", ".")),
    "c.yaml:13 train.physical_batch: must be ≤ train.batch_size (64), got 128",
  );
  const dpPhys = parseConfig(withLine(13, "  physical_batch: 128"), "c.yaml", ".");
  assert.equal(dpPhys.train.physical_batch, 128);
  const frac = GOOD.replace(
    "  patient_column: patient\n",
    "  patient_column: patient\n  split:\n    fractions: {train: 0.8, validation: 0.3, test: 0.1}\n",
  );
  assert.match(
    err(() => parseConfig(frac, "c.yaml", ".")),
    /c\.yaml:8 data\.split\.fractions: .*must be 1/,
  );
  const noPatient = GOOD.replace("  patient_column: patient\n", "");
  assert.match(
    err(() => parseConfig(noPatient, "c.yaml", ".")),
    /privacy\.unit: patient needs data\.patient_column/,
  );
  // Non-private mode with a privacy section: accepted, but loudly.
  const lora = parseConfig(GOOD.replace("mode: dp-lora", "mode: lora"), "c.yaml", ".");
  assert.deepEqual(lora.warnings.length, 1);
  assert.match(lora.warnings[0], /WITHOUT privacy/);
});

Deno.test("config: YAML syntax and duplicate keys give the line", () => {
  assert.match(
    err(() => parseConfig("data:\n  format: [csv\n", "c.yaml", ".")),
    /^c\.yaml:\d+: YAML syntax error/,
  );
  assert.match(
    err(() => parseConfig(GOOD + "train:\n  epochs: 3\n", "c.yaml", ".")),
    /^c\.yaml:17: YAML syntax error: .*unique/i,
  );
});

Deno.test("config: --set overrides are parsed as YAML and validated the same way", () => {
  const c = parseConfig(GOOD, "config.yaml", "/d");
  const o = applyOverrides(c, [
    "train.lr=1e-3",
    "train.batch_size=8",
    "model.lora.targets=[query, key, value]",
    "data.file=other.csv",
    "privacy.unit=record",
  ]);
  assert.deepEqual(o.train.lr, 1e-3);
  assert.deepEqual(o.train.batch_size, 8);
  assert.deepEqual(o.train.physical_batch, 8); // derived default recomputed: min(16, 8)
  assert.deepEqual(o.model.lora.targets, ["query", "key", "value"]);
  assert.deepEqual(o.data.file, "/d/other.csv");
  assert.deepEqual(o.source.overrides.length, 5);
  assert.deepEqual(c.train.lr, 3e-4, "original untouched");
  assert.deepEqual(
    err(() => applyOverrides(c, ["train.batch_size=sixty"])),
    '--set train.batch_size: expected a positive integer, got "sixty"',
  );
  assert.deepEqual(
    err(() => applyOverrides(c, ["train.batch_szie=3"])),
    "--set train.batch_szie: unknown key (did you mean train.batch_size?)",
  );
  assert.match(
    err(() => applyOverrides(c, ["train.lr"])),
    /^--set train\.lr: expected key\.path=value/,
  );
  // Setting sigma on top of epsilon breaks epsilon XOR sigma, reported against --set.
  assert.match(
    err(() => applyOverrides(c, ["privacy.noise_multiplier=0.8"])),
    /^--set privacy\.noise_multiplier: give either/,
  );
  // An override can also fix a file that alone would be invalid.
  const both = parseConfig(GOOD, "c.yaml", ".");
  assert.deepEqual(applyOverrides(both, ["model.mode=full"]).model.mode, "full");
});

Deno.test("config: loadConfig resolves paths against the file's folder and names the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.yaml`, GOOD);
    const c = await loadConfig(`${dir}/config.yaml`);
    assert.deepEqual(c.data.file, `${dir}/reports.csv`);
    await Deno.writeTextFile(`${dir}/bad.yaml`, withLine(12, "  batch_size: 0"));
    await assertRejectsMsg(
      loadConfig(`${dir}/bad.yaml`),
      `${dir}/bad.yaml:12 train.batch_size: expected a positive integer, got 0`,
    );
    await assertRejectsMsg(
      loadConfig(`${dir}/none.yaml`),
      `${dir}/none.yaml: config file not found`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function assertRejectsMsg(p: Promise<unknown>, msg: string) {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`expected ConfigError, got ${e}`);
    assert.equal(e.message, msg);
    return;
  }
  throw new Error("expected a rejection");
}

Deno.test("config: delta default N^-1.1 and warning when delta >= 1/N", () => {
  const c = parseConfig(GOOD, "c.yaml", ".");
  const r = resolveDelta(c.privacy!, 1000);
  assert.ok(Math.abs(r.delta - Math.pow(1000, -1.1)) < 1e-18);
  assert.deepEqual(r.warnings, []);
  const loose = parseConfig(GOOD + "  delta: 0.01\n", "c.yaml", ".");
  const w = resolveDelta(loose.privacy!, 1000);
  assert.deepEqual(w.delta, 0.01);
  assert.deepEqual(w.warnings.length, 1);
  assert.match(w.warnings[0], /not below 1\/N/);
  assert.deepEqual(resolveDelta(loose.privacy!, 50).warnings.length, 0); // 0.01 < 1/50
});

Deno.test("config: DEFAULTS and the Markdown reference cover every key", () => {
  const train = DEFAULTS.train as Record<string, unknown>;
  assert.deepEqual(train.batch_size, 32);
  assert.deepEqual((DEFAULTS.data as Record<string, unknown>).uncertain, "ignore");
  const md = configReference();
  for (
    const key of [
      "train.batch_size",
      "privacy.target_epsilon",
      "data.split.fractions.train",
      "model.lora.rank",
    ]
  ) {
    assert.ok(md.includes(`\`${key}\``), `reference lacks ${key}`);
  }
  assert.ok(md.includes("**required**"));
});

Deno.test("config: every examples/*.yaml validates", async () => {
  const dir = new URL("../examples/", import.meta.url).pathname;
  let count = 0;
  for (const e of Deno.readDirSync(dir)) {
    if (!e.name.endsWith(".yaml")) continue;
    const c = await loadConfig(`${dir}${e.name}`);
    assert.ok(c.output.dir.startsWith("/"), `${e.name}: output.dir resolved`);
    count++;
  }
  assert.ok(count >= 2, "examples present");
});

Deno.test("config: the embedded default parses, and its sweep section tunes each mode", async () => {
  // `deno task train` and `deno task sweep` with no arguments read this file.
  const path = new URL("../fixtures/default.yaml", import.meta.url).pathname;
  const c = await loadConfig(path);
  assert.equal(c.model.mode, "dp-lora");
  assert.equal(c.privacy?.target_epsilon, 1);
  const plan = planSweep(c, { epsilons: [1], seeds: 1 });
  const lr = Object.fromEntries(plan.map((r) => [r.mode, r.config.train.lr]));
  assert.notEqual(lr.full, lr["dp-lora"], "full fine-tuning has its own lr");
  assert.notEqual(lr.lora, lr["dp-lora"], "LoRA has its own lr");
  assert.equal(lr["dp-lora"], c.train.lr);
});
