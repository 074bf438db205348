/**
 * The sweep: its plan (per-mode overrides, shared data, seeds), its statistics (checked against an
 * independent computation), and end to end on a tiny random BERT + the committed tiny corpus:
 * the result files, their agreement with each run's own artifacts, and reuse on a second call.
 */
import assert from "node:assert/strict";
import { configFromObject } from "../pipeline/config.ts";
import { ConfigError } from "../pipeline/errors.ts";
import { parseEpsilons, planSweep } from "../pipeline/sweep/plan.ts";
import { aggregate, perLabelEpsilon, type RunRow } from "../pipeline/sweep/results.ts";
import { meanStd } from "../pipeline/sweep/stats.ts";
import { runSweep } from "../pipeline/sweep/sweep.ts";
import { main, quickSets } from "../tasks/sweep.ts";
import { makeTinyProjectModel } from "./fixtures/tiny_checkpoint.ts";
import { freshSeed, gpu, rng } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TINY = `${ROOT}fixtures/data/mimic-tiny`;

const tinyModel = (dir: string) => makeTinyProjectModel(dir);

/** A dp-lora base config with σ given directly (the sweep must replace it by the target ε). */
function baseConfig(model: string) {
  return configFromObject({
    data: { format: "mimic-cxr", root: TINY, max_length: 32 },
    model: { checkpoint: model, mode: "dp-lora", lora: { rank: 2, alpha: 4, dropout: 0 } },
    train: { epochs: 1, batch_size: 32, physical_batch: 16, lr: 0.003, seed: 10 },
    privacy: { noise_multiplier: 1.5, max_grad_norm: 1 },
  }, ROOT);
}

// ------------------------------------------------------------------------------------------ plan

Deno.test("sweep plan: modes × ε × seeds, per-mode overrides, privacy only where it applies", () => {
  const base = baseConfig("/nonexistent/model");
  const plan = planSweep(base, {
    epsilons: [1, 0.5],
    seeds: 2,
    setMode: { full: ["train.lr=0.0001"], lora: ["train.batch_size=16"] },
  });
  assert.deepEqual(plan.map((r) => r.name), [
    "full-epsinf-seed0",
    "lora-epsinf-seed0",
    "dp-lora-eps1-seed0",
    "dp-lora-eps0.5-seed0",
    "full-epsinf-seed1",
    "lora-epsinf-seed1",
    "dp-lora-eps1-seed1",
    "dp-lora-eps0.5-seed1",
  ]);
  for (const r of plan) {
    assert.equal(r.config.model.mode, r.mode);
    assert.equal(r.config.train.seed, 10 + r.k, "train.seed = base + k");
    assert.equal(r.seed, r.config.train.seed);
    assert.equal(r.config.data.split.seed, base.data.split.seed, "the split seed stays fixed");
    if (r.mode === "dp-lora") {
      assert.equal(r.config.privacy?.target_epsilon, r.epsilon);
      assert.equal(r.config.privacy?.noise_multiplier, undefined, "σ from the file is dropped");
      assert.equal(r.config.train.lr, 0.003);
      assert.equal(r.config.train.batch_size, 32);
    } else {
      assert.equal(r.config.privacy, undefined, "non-private runs carry no privacy section");
      assert.equal(r.config.warnings.length, 0);
    }
    if (r.mode === "full") assert.equal(r.config.train.lr, 0.0001);
    if (r.mode === "lora") assert.equal(r.config.train.batch_size, 16);
    if (r.mode === "lora") assert.equal(r.config.train.physical_batch, 16);
  }
});

Deno.test("sweep plan: the file's sweep section tunes each mode; the command line wins", () => {
  const raw = {
    data: { format: "mimic-cxr", root: TINY, max_length: 32 },
    model: { checkpoint: "/nonexistent/model", mode: "dp-lora", lora: { rank: 2, alpha: 4 } },
    train: { epochs: 1, batch_size: 32, physical_batch: 16, lr: 0.02, head_lr: 0.05, seed: 1 },
    privacy: { target_epsilon: 1, max_grad_norm: 1 },
    sweep: {
      full: ["train.lr=3e-4", "train.head_lr=null"],
      lora: ["train.lr=3e-3", "train.head_lr=null", "train.batch_size=16"],
      dp_lora: ["privacy.max_grad_norm=0.5"],
    },
  };
  const base = configFromObject(raw, ROOT);
  assert.equal(base.train.lr, 0.02, "deno task train ignores the sweep section");
  const plan = planSweep(base, { epsilons: [1], seeds: 1, setMode: { lora: ["train.lr=0.007"] } });
  const by = Object.fromEntries(plan.map((r) => [r.mode, r.config]));
  assert.equal(by.full.train.lr, 3e-4);
  assert.equal(by.full.train.head_lr, undefined);
  assert.equal(by.lora.train.lr, 0.007, "--set-lora applies after the file's sweep.lora");
  assert.equal(by.lora.train.batch_size, 16);
  assert.equal(by["dp-lora"].train.lr, 0.02);
  assert.equal(by["dp-lora"].train.head_lr, 0.05);
  assert.equal(by["dp-lora"].privacy?.max_grad_norm, 0.5);
  assert.equal(by.full.privacy, undefined);
  // A key that does not exist is refused when the file is read, naming the field.
  const badKey = { ...raw, sweep: { lora: ["train.lrr=1"] } };
  assert.throws(() => configFromObject(badKey, ROOT), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /sweep\.lora/);
    assert.match(e.message, /train\.lrr: unknown key.*did you mean.*lr/);
    return true;
  });
  const noEq = { ...raw, sweep: { full: ["train.lr"] } };
  assert.throws(() => configFromObject(noEq, ROOT), /sweep\.full.*key\.path=value/);
  // Per-mode settings from the file pass the same shared-data rule as --set-*.
  const dataChange = configFromObject({ ...raw, sweep: { lora: ["data.max_length=16"] } }, ROOT);
  assert.throws(
    () => planSweep(dataChange, { epsilons: [1], seeds: 1 }),
    /sweep\.lora \/ --set-lora: changes data/,
  );
});

Deno.test("sweep plan: refuses overrides that would break the shared data or the ε grid", () => {
  const base = baseConfig("/nonexistent/model");
  const plan = (setMode: Record<string, string[]>) => () =>
    planSweep(base, { epsilons: [1], seeds: 1, setMode });
  assert.throws(plan({ lora: ["data.max_length=16"] }), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /--set-lora.*share the same tokenized data/);
    return true;
  });
  assert.throws(plan({ full: ["model.checkpoint=/elsewhere"] }), ConfigError);
  assert.throws(plan({ "dp-lora": ["privacy.target_epsilon=3"] }), /set by --epsilons/);
  assert.throws(plan({ "dp-lora": ["privacy.noise_multiplier=2"] }), /not both/);
  assert.throws(plan({ lora: ["model.mode=full"] }), /model.mode cannot be overridden/);
  assert.throws(plan({ full: ["train.nope=1"] }), /full-epsinf-seed0.*unknown key/);
  assert.throws(() => planSweep(base, { epsilons: [1], seeds: 0 }), /--seeds/);
  // Overrides for every mode may change the data: all runs still share it.
  const ok = planSweep(base, { epsilons: [1], seeds: 1, setAll: ["data.max_length=16"] });
  assert.ok(ok.every((r) => r.config.data.max_length === 16));
});

Deno.test("sweep: --epsilons parsing and the per-label ε", () => {
  assert.deepEqual(parseEpsilons("10, 0.01,1,0.1"), [0.01, 0.1, 1, 10]);
  assert.throws(() => parseEpsilons("1,1"), /twice/);
  assert.throws(() => parseEpsilons("1,-2"), /not a positive number/);
  assert.throws(() => parseEpsilons("1,abc"), /not a positive number/);
  assert.throws(() => parseEpsilons("0"), /not a positive number/);
  assert.throws(() => parseEpsilons(" , "), /empty/);
  assert.equal(perLabelEpsilon([0.01, 0.1, 1, 10]), 1);
  assert.equal(perLabelEpsilon([0.3, 8]), 0.3); // |log 0.3| = 1.20 < |log 8| = 2.08
  assert.equal(perLabelEpsilon([]), null);
});

// ------------------------------------------------------------------------------------- statistics

Deno.test("sweep statistics: mean and sample std per (mode, ε) match a direct computation", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const rows: RunRow[] = [];
  const settings: [RunRow["mode"], number | null][] = [["full", null], ["dp-lora", 1], [
    "dp-lora",
    0.1,
  ]];
  for (let s = 0; s < 3; s++) {
    for (const [mode, epsilon] of settings) {
      rows.push({
        mode,
        epsilon,
        seed: s,
        name: `${mode}-${epsilon}-${s}`,
        weighted_f1: r(),
        macro_f1: r(),
        micro_f1: r(),
        epsilon_spent: epsilon === null ? null : epsilon * (0.9 + 0.1 * r()),
        epsilon_rdp: null,
        noise_multiplier: null,
        steps: 1,
        seconds: 1,
        per_label_f1: { A: r(), B: r() },
      });
    }
  }
  // One-seed group: std is undefined, not 0.
  rows.push({ ...rows[0], mode: "lora", name: "lora" });
  const agg = aggregate(rows);
  assert.equal(agg.length, 4, `seed ${seed}`);
  for (const a of agg) {
    const g = rows.filter((x) => x.mode === a.mode && x.epsilon === a.epsilon);
    const check = (got: { mean: number; std: number | null; n: number }, xs: number[]) => {
      const n = xs.length;
      let mean = 0;
      for (const x of xs) mean += x / n;
      let ss = 0;
      for (const x of xs) ss += (x - mean) * (x - mean);
      assert.equal(got.n, n);
      // Both are sums of ≤ 3 doubles: any difference is rounding (~1e-16 relative).
      assert.ok(Math.abs(got.mean - mean) <= 1e-12, `mean, seed ${seed}`);
      if (n < 2) assert.equal(got.std, null);
      else assert.ok(Math.abs(got.std! - Math.sqrt(ss / (n - 1))) <= 1e-12, `std, seed ${seed}`);
    };
    check(a.weighted_f1, g.map((x) => x.weighted_f1));
    check(a.macro_f1, g.map((x) => x.macro_f1));
    check(a.micro_f1, g.map((x) => x.micro_f1));
    check(a.per_label_f1.B, g.map((x) => x.per_label_f1.B));
    if (a.epsilon === null) assert.equal(a.epsilon_spent, null);
    else check(a.epsilon_spent!, g.map((x) => x.epsilon_spent!));
  }
  assert.deepEqual(meanStd([]).n, 0);
  assert.equal(meanStd([2, 4]).std, Math.SQRT2);
});

// ------------------------------------------------------------------------------------ end to end

function parseCsv(text: string): Record<string, string>[] {
  const [head, ...lines] = text.trim().split("\n");
  const cols = head.split(",");
  return lines.map((l) => {
    const cells = l.split(",");
    assert.equal(cells.length, cols.length, `CSV row ${l}`);
    return Object.fromEntries(cols.map((c, i) => [c, cells[i]]));
  });
}

/** Well-formed enough for a browser: one <svg> root, every element closed in order. */
function assertBalancedSvg(svg: string): void {
  assert.ok(svg.trimStart().startsWith("<svg"), "starts with <svg");
  assert.ok(svg.trimEnd().endsWith("</svg>"), "ends with </svg>");
  const stack: string[] = [];
  const body = svg.replace(/<text[^>]*>[^<]*<\/text>/g, "<text/>");
  for (const m of body.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, close, name, attrs, self] = m;
    assert.ok(!/[<&](?!amp;|lt;|gt;|quot;)/.test(attrs), `unescaped attribute in ${m[0]}`);
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the open element`);
    else stack.push(name);
  }
  assert.deepEqual(stack, [], "every element is closed");
}

Deno.test("sweep end to end: result files agree with the runs; a second call reuses them", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-sweep-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const out = `${tmp}/sweep`;
    const events: string[] = [];
    const opts = {
      out,
      epsilons: [8, 2],
      seeds: 1,
      // Non-private runs: smaller batches, as the usage text suggests.
      setMode: { full: ["train.batch_size=16"], lora: ["train.batch_size=16"] },
      runtime: rt,
      onEvent: (e: { kind: string }) => events.push(e.kind),
    };
    const t0 = performance.now();
    const first = await runSweep(baseConfig(model), opts);
    const firstSecs = (performance.now() - t0) / 1000;
    const names = [
      "full-epsinf-seed0",
      "lora-epsinf-seed0",
      "dp-lora-eps8-seed0",
      "dp-lora-eps2-seed0",
    ];
    assert.deepEqual(first.trained, names);
    assert.deepEqual(first.reused, []);
    assert.deepEqual(events, ["data", ...names.flatMap(() => ["start", "finish"])]);

    // Every run got the one shared token cache.
    const shared = await Deno.readTextFile(`${out}/data-run/data/manifest.json`);
    for (const n of names) {
      assert.equal(await Deno.readTextFile(`${out}/runs/${n}/data/manifest.json`), shared);
      const cfg = JSON.parse(await Deno.readTextFile(`${out}/runs/${n}/config.json`));
      assert.equal(cfg.train.seed, 10);
    }

    // results.csv: one row per run, numbers equal to each run's own artifacts.
    const rows = parseCsv(await Deno.readTextFile(first.files.csv));
    assert.deepEqual(rows.map((r) => `${r.mode}|${r.epsilon}|${r.seed}`), [
      "full|inf|10",
      "lora|inf|10",
      "dp-lora|8|10",
      "dp-lora|2|10",
    ]);
    for (const [i, r] of rows.entries()) {
      const run = `${out}/runs/${names[i]}`;
      const metrics = JSON.parse(await Deno.readTextFile(`${run}/eval/metrics.json`));
      const report = JSON.parse(await Deno.readTextFile(`${run}/privacy/report.json`));
      const summary = JSON.parse(await Deno.readTextFile(`${run}/train/summary.json`));
      assert.equal(Number(r.weighted_f1), metrics.model.weightedF1);
      assert.equal(Number(r.macro_f1), metrics.model.macroF1);
      assert.equal(Number(r.micro_f1), metrics.model.microF1);
      assert.equal(Number(r.steps), summary.steps);
      assert.equal(metrics.mode, r.mode);
      if (r.mode === "dp-lora") {
        assert.equal(Number(r.epsilon_spent), report.epsilon);
        assert.equal(Number(r.epsilon_rdp), report.epsilon_rdp);
        assert.equal(Number(r.noise_multiplier), report.noise_multiplier);
        assert.equal(report.target_epsilon, Number(r.epsilon));
        assert.ok(report.epsilon > 0 && report.epsilon <= Number(r.epsilon) * (1 + 1e-9));
      } else {
        assert.equal(r.epsilon_spent, "");
        assert.equal(report.private, false);
      }
    }
    // The smaller ε needs more noise.
    assert.ok(Number(rows[3].noise_multiplier) > Number(rows[2].noise_multiplier));

    // results.json aggregates = mean over the rows of each (mode, ε), computed here directly.
    const json = JSON.parse(await Deno.readTextFile(first.files.json));
    assert.equal(json.runs.length, 4);
    assert.equal(json.complete, true);
    assert.equal(json.aggregates.length, 4);
    for (const a of json.aggregates) {
      const g = rows.filter((r) => r.mode === a.mode && r.epsilon === String(a.epsilon ?? "inf"));
      assert.equal(g.length, 1);
      assert.equal(a.weighted_f1.n, 1);
      assert.equal(a.weighted_f1.mean, Number(g[0].weighted_f1));
      assert.equal(a.macro_f1.mean, Number(g[0].macro_f1));
      assert.equal(a.weighted_f1.std, null, "one seed has no std");
    }
    const metrics0 = JSON.parse(
      await Deno.readTextFile(`${out}/runs/${names[0]}/eval/metrics.json`),
    );
    assert.equal(json.prior.weighted_f1, metrics0.prior.weightedF1);

    // table.md: the four rows + prior, and the per-label table at ε = 2 (nearest 1 of {2, 8}).
    const table = await Deno.readTextFile(first.files.table);
    const order = ["Full fine-tuning", "LoRA (non-private)", "DP-LoRA ε = 8", "DP-LoRA ε = 2"];
    const at = [...order, "Label prior"].map((t) => table.indexOf(`| ${t}`));
    assert.ok(at.every((i, j) => i >= 0 && (j === 0 || i > at[j - 1])), `row order ${at}`);
    assert.match(table, /## Per-label F1 at ε = 2/);
    const labels = metrics0.model.perLabel.map((l: { label: string }) => l.label);
    for (const l of labels) assert.ok(table.includes(`| ${l} |`), `per-label row ${l}`);
    assert.ok(table.includes(Number(rows[0].weighted_f1).toFixed(3)));

    const svg = await Deno.readTextFile(first.files.svg);
    assertBalancedSvg(svg);
    assert.match(svg, /DP-LoRA/);
    assert.match(svg, /stroke-dasharray/);

    // Second call: nothing retrained, same rows, much faster.
    const before = (await Deno.stat(`${out}/runs/${names[2]}/eval/metrics.json`)).mtime;
    const t1 = performance.now();
    const second = await runSweep(baseConfig(model), opts);
    const secondSecs = (performance.now() - t1) / 1000;
    assert.deepEqual(second.trained, []);
    assert.deepEqual(second.reused, names);
    assert.deepEqual(second.rows, first.rows);
    assert.deepEqual(
      (await Deno.stat(`${out}/runs/${names[2]}/eval/metrics.json`)).mtime,
      before,
    );
    assert.ok(secondSecs < firstSecs / 2, `reuse took ${secondSecs} s vs ${firstSecs} s`);

    // Changing a DP-only setting retrains exactly the DP runs.
    const third = await runSweep(baseConfig(model), {
      ...opts,
      epsilons: [8],
      setMode: { ...opts.setMode, "dp-lora": ["privacy.max_grad_norm=0.5"] },
    });
    assert.deepEqual(third.trained, ["dp-lora-eps8-seed0"]);
    assert.deepEqual(third.reused, names.slice(0, 2));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------- CLI

Deno.test("sweep CLI: --quick swaps only the demo corpus for mimic-tiny; bad flags are refused", async () => {
  const demo = configFromObject({
    data: { format: "mimic-cxr", root: `${ROOT}fixtures/data/mimic-synth` },
    model: { checkpoint: "/m", mode: "lora" },
  }, ROOT);
  const sets = await quickSets(demo);
  assert.ok(!sets.some((s) => s.startsWith("train.epochs")), "the demo keeps its epochs");
  assert.ok(sets.some((s) => s.startsWith("data.root=") && s.includes("mimic-tiny")), `${sets}`);
  const real = configFromObject({
    data: { format: "mimic-cxr", root: TINY },
    model: { checkpoint: "/m", mode: "lora" },
  }, ROOT);
  assert.deepEqual(await quickSets(real), ["train.epochs=1"]);

  assert.equal(await main(["--nope"]), 2);
  await assert.rejects(() => main(["--seeds", "0"]), /--seeds/);
  await assert.rejects(() => main(["--seeds", "1.5"]), /--seeds/);
  await assert.rejects(() => main(["--epsilons", "1,x"]), /--epsilons/);
});

Deno.test("sweep CLI: a config file, per-mode --set and --out give the result files", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-sweep-cli-" });
  try {
    const model = await tinyModel(`${tmp}/model`);
    const yaml = [
      "data: {format: mimic-cxr, root: " + JSON.stringify(TINY) + ", max_length: 24}",
      `model: {checkpoint: ${JSON.stringify(model)}, mode: lora, lora: {rank: 2, alpha: 4}}`,
      "train: {epochs: 3, batch_size: 32, physical_batch: 32, lr: 0.003, seed: 5}",
    ].join("\n");
    await Deno.writeTextFile(`${tmp}/c.yaml`, yaml);
    const out = `${tmp}/out`;
    const code = await main([
      "--config",
      `${tmp}/c.yaml`,
      "--quick",
      "--epsilons",
      "4",
      "--set-full",
      "train.lr=0.001",
      "--out",
      out,
    ]);
    assert.equal(code, 0);
    const rows = parseCsv(await Deno.readTextFile(`${out}/results.csv`));
    assert.deepEqual(rows.map((r) => `${r.mode}|${r.epsilon}|${r.seed}`), [
      "full|inf|5",
      "lora|inf|5",
      "dp-lora|4|5",
    ]);
    const full = JSON.parse(await Deno.readTextFile(`${out}/runs/full-epsinf-seed0/config.json`));
    assert.equal(full.train.lr, 0.001);
    assert.equal(full.train.epochs, 1, "--quick: one epoch");
    const dp = JSON.parse(await Deno.readTextFile(`${out}/runs/dp-lora-eps4-seed0/config.json`));
    assert.equal(dp.train.lr, 0.003);
    assert.equal(dp.privacy.target_epsilon, 4);
    for (const f of ["table.md", "results.json", "f1_vs_epsilon.svg"]) {
      await Deno.stat(`${out}/${f}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

Deno.test("sweep: edited input data under unchanged settings retrains every run on the new cache", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-sweep-data-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const root = `${tmp}/data`;
    await copyTree(TINY, root);
    const config = configFromObject({
      data: { format: "mimic-cxr", root, max_length: 24 },
      model: { checkpoint: model, mode: "lora", lora: { rank: 2, alpha: 4 } },
      train: { epochs: 1, batch_size: 64, physical_batch: 32, seed: 1 },
    }, ROOT);
    const opts = { out: `${tmp}/out`, epsilons: [4], seeds: 1, runtime: rt };
    const first = await runSweep(config, opts);
    assert.equal(first.trained.length, 3);
    const key = async (dir: string) =>
      JSON.parse(await Deno.readTextFile(`${dir}/data/manifest.json`)).key as string;
    const oldKey = await key(`${opts.out}/data-run`);

    // Same config, one label changed in the CSV: the content-keyed cache changes, so must the runs.
    const csv = `${root}/mimic-cxr-2.0.0-chexpert.csv`;
    const lines = (await Deno.readTextFile(csv)).split("\n");
    lines[1] = lines[1].replace(/,1\.0,/, ",0.0,");
    await Deno.writeTextFile(csv, lines.join("\n"));
    const second = await runSweep(config, opts);
    assert.deepEqual(second.reused, []);
    assert.equal(second.trained.length, 3);
    const newKey = await key(`${opts.out}/data-run`);
    assert.notEqual(newKey, oldKey);
    for (const n of second.trained) assert.equal(await key(`${opts.out}/runs/${n}`), newKey);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
