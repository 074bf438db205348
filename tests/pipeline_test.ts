/**
 * End to end: data → train → account → evaluate on the committed tiny MIMIC-CXR-style corpus with
 * a tiny random BERT (built here) whose vocabulary is the project's WordPiece vocabulary.
 * Checks every artifact, stage skipping, and that an interrupted DP run resumed from its ledger
 * never spends more than its budget.
 */
import assert from "node:assert/strict";
import { configFromObject, type PipelineConfig } from "../pipeline/config.ts";
import { runPipeline } from "../pipeline/run.ts";
import type { ProgressEvent } from "../pipeline/progress.ts";
import { computeEpsilon } from "../pipeline/privacy/accountant/mod.ts";
import { makeTinyProjectModel } from "./fixtures/tiny_checkpoint.ts";
import { assertClose, freshSeed, gpu, relErr, rng } from "./helpers.ts";
import { loadTrainedModel } from "../pipeline/training/trained.ts";
import { loadCheckpoint } from "../pipeline/model/checkpoint.ts";
import { GpuEncoder } from "../pipeline/model/encoder.ts";
import type { Runtime } from "../pipeline/gpu/runtime.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TINY = `${ROOT}fixtures/data/mimic-tiny`;

const tinyModel = (dir: string) => makeTinyProjectModel(dir);

function config(model: string, out: string, mode: string, extra: Record<string, unknown> = {}) {
  return configFromObject({
    data: { format: "mimic-cxr", root: TINY, max_length: 48 },
    model: { checkpoint: model, mode, lora: { rank: 4, alpha: 8, dropout: 0 } },
    train: { epochs: 1, batch_size: 32, physical_batch: 16, lr: 0.003, seed: 1 },
    ...(mode === "dp-lora" ? { privacy: { target_epsilon: 2, max_grad_norm: 1 } } : {}),
    output: { dir: out },
    ...extra,
  }, ROOT);
}

const quiet = (_e: ProgressEvent) => {};

async function lines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim());
}

Deno.test("pipeline: dp-lora end to end writes every artifact with ε within budget", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-e2e-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const cfg = config(model, `${tmp}/run`, "dp-lora");
    const res = await runPipeline(cfg, { runtime: rt, onProgress: quiet });
    assert.deepEqual(res.ran, ["data", "train", "account", "evaluate"]);
    const run = `${tmp}/run`;
    for (
      const f of [
        "config.json",
        "data/manifest.json",
        "data/train.bin",
        "train/log.jsonl",
        "train/summary.json",
        "train/adapter/adapter_config.json",
        "train/adapter/adapter_model.safetensors",
        "privacy/ledger.jsonl",
        "privacy/report.json",
        "eval/metrics.json",
        "eval/predictions.csv",
        "report.md",
        "report.html",
      ]
    ) await Deno.stat(`${run}/${f}`);
    const summary = JSON.parse(await Deno.readTextFile(`${run}/train/summary.json`));
    const report = JSON.parse(await Deno.readTextFile(`${run}/privacy/report.json`));
    const ledger = await lines(`${run}/privacy/ledger.jsonl`);
    assert.equal(ledger.length, summary.steps);
    assert.equal(report.steps, summary.steps);
    assert.ok(report.epsilon <= 2, `ε ${report.epsilon} over the target`);
    // Independent recomputation from the report's own (q, σ, steps, δ).
    const again = computeEpsilon({
      sampleRate: report.sample_rate,
      noiseMultiplier: report.noise_multiplier,
      steps: report.steps,
      delta: report.delta,
    }, "pld");
    assert.ok(Math.abs(again - report.epsilon) <= 1e-9 * again);
    assert.ok(report.epsilon_rdp >= report.epsilon, "tight ε must not exceed RDP ε");
    const manifest = JSON.parse(await Deno.readTextFile(`${run}/data/manifest.json`));
    const preds = await lines(`${run}/eval/predictions.csv`);
    assert.equal(preds.length, manifest.splits.test.records + 1);
    const metrics = JSON.parse(await Deno.readTextFile(`${run}/eval/metrics.json`));
    assert.ok(metrics.model.weightedF1 >= 0 && metrics.model.weightedF1 <= 1);
    assert.ok("prior" in metrics);
    const html = await Deno.readTextFile(`${run}/report.html`);
    assert.ok(!/https?:\/\//.test(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, "")));

    // predict: a CSV of new reports and a folder of .txt reports, labelled with the trained run.
    const { main: predict } = await import("../tasks/predict.ts");
    await Deno.writeTextFile(
      `${tmp}/new.csv`,
      'id,text\na1,"No pneumothorax. Small left pleural effusion."\na2,Normal chest.\n',
    );
    assert.equal(
      await predict(["--run", run, "--input", `${tmp}/new.csv`, "--output", `${tmp}/p.csv`]),
      0,
    );
    const pcsv = await lines(`${tmp}/p.csv`);
    assert.equal(pcsv.length, 3);
    assert.ok(pcsv[1].startsWith("a1,") && pcsv[0].includes("Pleural Effusion.prob"));
    await Deno.mkdir(`${tmp}/txt`);
    await Deno.writeTextFile(
      `${tmp}/txt/s1.txt`,
      "FINDINGS: Mild cardiomegaly.\nIMPRESSION: No edema.",
    );
    assert.equal(
      await predict(["--run", run, "--input", `${tmp}/txt`, "--output", `${tmp}/q.csv`]),
      0,
    );
    assert.ok((await lines(`${tmp}/q.csv`))[1].startsWith("s1,"));
    assert.equal(await predict(["--run", run]), 2, "missing flags are a usage error");

    // Same settings again: every stage is skipped; only evaluate settings changed → only it runs.
    const again2 = await runPipeline(cfg, { runtime: rt, onProgress: quiet });
    assert.deepEqual(again2.ran, []);
    const cfg3 = configFromObject({
      ...structuredClone(cfg.source.raw),
      evaluate: { threshold: 0.4 },
    }, ROOT);
    const third = await runPipeline(cfg3, { runtime: rt, onProgress: quiet });
    assert.deepEqual(third.ran, ["evaluate"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("pipeline: an interrupted dp-lora run resumes from its ledger without overspending", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-resume-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    // ema: the resume must also restore the weight average from the epoch checkpoint.
    const cfg: PipelineConfig = config(model, `${tmp}/run`, "dp-lora", {
      train: { epochs: 2, batch_size: 32, physical_batch: 16, lr: 0.003, ema: 0.9, seed: 1 },
    });
    const ac = new AbortController();
    await assert.rejects(() =>
      runPipeline(cfg, {
        runtime: rt,
        signal: ac.signal,
        onProgress: (e) => {
          if (e.stage === "train" && e.step === 9) ac.abort();
        },
      })
    );
    const before = await lines(`${tmp}/run/privacy/ledger.jsonl`);
    assert.equal(before.length, 9);
    await runPipeline(cfg, { runtime: rt, resume: true, onProgress: quiet });
    const after = (await lines(`${tmp}/run/privacy/ledger.jsonl`)).map((l) => JSON.parse(l));
    assert.deepEqual(after.slice(0, 9).map((e) => JSON.stringify(e)), before);
    after.forEach((e, i) => assert.equal(e.step, i, "ledger steps are consecutive"));
    const report = JSON.parse(await Deno.readTextFile(`${tmp}/run/privacy/report.json`));
    assert.equal(report.steps, after.length);
    assert.ok(report.epsilon <= 2 * (1 + 1e-9), `resumed run spent ε ${report.epsilon} > 2`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("pipeline: the logged training loss is the mean over every record, whatever the micro-batching", async () => {
  // With lr ≈ 0 the model stays at its initialisation, so an epoch's training loss is the mean
  // per-sample loss of one fixed model over the same records: it must not depend on how batches
  // are cut into micro-batches. Logging one (length-sorted: the longest) micro-batch would.
  const tmp = await Deno.makeTempDir({ prefix: "dplora-trainloss-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const losses: number[] = [];
    for (const physical of [32, 5]) {
      const run = `${tmp}/run-${physical}`;
      const cfg = config(model, run, "lora", {
        train: { epochs: 1, batch_size: 32, physical_batch: physical, lr: 1e-12, seed: 3 },
      });
      await runPipeline(cfg, { runtime: rt, onProgress: quiet, stages: ["data", "train"] });
      const log = (await lines(`${run}/train/log.jsonl`)).map((l) => JSON.parse(l));
      losses.push(log.find((e) => e.kind === "epoch").train_loss);
    }
    // f32 sums of ~240 per-sample losses in two different orders: ~1e-6 relative
    assert.ok(Number.isFinite(losses[0]) && losses[0] > 0, `train loss ${losses[0]}`);
    const rel = Math.abs(losses[1] - losses[0]) / losses[0];
    assert.ok(rel < 1e-5, `train loss ${losses[1]} (micro-batches of 5) vs ${losses[0]} (32)`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Train non-private LoRA on the tiny corpus with these train settings; the saved adapter + head. */
async function trainedAdapter(rt: Runtime, model: string, run: string, train: object) {
  const cfg = config(model, run, "lora", { train });
  await runPipeline(cfg, { runtime: rt, onProgress: quiet, stages: ["data", "train"] });
  const spec = { ...cfg.model, maxLength: cfg.data.max_length };
  const { encoder } = await loadTrainedModel(rt, spec, run, 14, 4);
  return await encoder.readAdapter();
}

Deno.test("pipeline: train.head_lr moves the head at its own rate, the adapters at lr", async () => {
  // One Adam step from zero moments moves every coordinate with a non-zero gradient by exactly
  // ±lr (m̂/√v̂ = sign g). The head bias and LoRA B both start at 0, so after one step their
  // largest entries are the two learning rates; one shared rate would make them equal.
  const tmp = await Deno.makeTempDir({ prefix: "dplora-headlr-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const lr = 1e-4, headLr = 3e-2;
    const { lora, head } = await trainedAdapter(rt, model, `${tmp}/run`, {
      max_steps: 1,
      batch_size: 32,
      physical_batch: 16,
      lr,
      head_lr: headLr,
      schedule: "constant",
      weight_decay: 0,
      seed: 5,
    });
    const maxAbs = (xs: Float32Array) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const headMax = maxAbs(head.b.data);
    const loraMax = Math.max(...[...lora.values()].map((p) => maxAbs(p.b.data)));
    // f32 rounding of lr·g/(|g| + 1e-8): ~1e-7 relative
    assertClose(Math.abs(headMax - headLr) / headLr, 1e-5, "largest head-bias step vs head_lr", 0);
    assertClose(Math.abs(loraMax - lr) / lr, 1e-5, "largest LoRA-B step vs lr", 0);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("pipeline: train.ema exports the moving average of the iterates", async () => {
  // Non-private LoRA at a constant lr is deterministic, so runs of 1, 2, 3 steps give the
  // iterates θ1..θ3 (and lr ≈ 0 gives θ0, the initialisation); a 3-step run with ema must export
  // e3 with e0 = θ0, e_t = β_t e_{t-1} + (1 - β_t) θ_t, β_t = min(ema, (1 + t)/(10 + t)).
  const tmp = await Deno.makeTempDir({ prefix: "dplora-ema-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    const weights = async (name: string, steps: number, lr: number, ema: number) => {
      const { lora, head } = await trainedAdapter(rt, model, `${tmp}/${name}`, {
        max_steps: steps,
        batch_size: 16,
        physical_batch: 16,
        lr,
        ema,
        schedule: "constant",
        weight_decay: 0,
        seed: 9,
      });
      const parts = [head.w, head.b, ...[...lora.values()].flatMap((p) => [p.a, p.b])];
      return Float64Array.from(parts.flatMap((t) => Array.from(t.data)));
    };
    const beta = 0.2;
    const theta = [await weights("t0", 1, 1e-12, 0)];
    for (let t = 1; t <= 3; t++) theta.push(await weights(`t${t}`, t, 2e-3, 0));
    const expected = Float64Array.from(theta[0]);
    for (let t = 1; t <= 3; t++) {
      const b = Math.min(beta, (1 + t) / (10 + t));
      for (let j = 0; j < expected.length; j++) {
        expected[j] = b * expected[j] + (1 - b) * theta[t][j];
      }
    }
    const got = await weights("ema", 3, 2e-3, beta);
    // The last iterate is ~1e-2 away from the average, 5 orders above the tolerance below.
    assert.ok(relErr(theta[3], expected) > 1e-3, "the average differs from the last iterate");
    // f32 arithmetic on O(1e-2) weights, three updates: ~1e-6 relative
    assertClose(relErr(got, expected), 1e-5, "exported EMA", 0);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("pipeline: lora and full fine-tuning run end to end and learn", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dplora-modes-" });
  try {
    const rt = await gpu();
    const model = await tinyModel(`${tmp}/model`);
    for (const mode of ["lora", "full"]) {
      const run = `${tmp}/run-${mode}`;
      const cfg = config(model, run, mode, {
        train: { epochs: 2, batch_size: 16, physical_batch: 16, lr: 0.003, seed: 1 },
        output: { dir: run, merged: mode === "lora" },
      });
      await runPipeline(cfg, { runtime: rt, onProgress: quiet });
      const log = (await lines(`${run}/train/log.jsonl`)).map((l) => JSON.parse(l));
      const epochs = log.filter((e) => e.kind === "epoch");
      assert.equal(epochs.length, 2);
      assert.ok(
        epochs[1].train_loss < epochs[0].train_loss,
        `${mode}: training loss did not fall (${epochs[0].train_loss} → ${epochs[1].train_loss})`,
      );
      await Deno.stat(
        mode === "full"
          ? `${run}/train/model/model.safetensors`
          : `${run}/train/adapter/adapter_config.json`,
      );
      const report = JSON.parse(await Deno.readTextFile(`${run}/privacy/report.json`));
      assert.equal(report.private, false);
      if (mode === "lora") {
        // The merged HF export predicts what base + adapter predicts.
        const spec = { ...cfg.model, maxLength: cfg.data.max_length };
        const a = await loadTrainedModel(rt, spec, run, 14, 4);
        const merged = await loadCheckpoint(`${run}/train/merged`, { keepHeads: true });
        const b = await GpuEncoder.create(rt, merged.config, merged.weights, {
          mode: "full",
          head: { kind: "multi-label", numLabels: 14 },
          seed: 0,
          maxBatch: 4,
          maxLen: 48,
          perSample: false,
          headWeights: {
            w: merged.extras.get("classifier.weight")!,
            b: merged.extras.get("classifier.bias")!,
          },
        });
        const ids = ["no pneumothorax.", "small left pleural effusion, unchanged."]
          .map((t) => a.tokenizer.encode(t, 48));
        const pa = await a.encoder.predict({ ids }), pb = await b.predict({ ids });
        assertClose(relErr(pb, pa), 1e-5, "merged export vs adapter", 0);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("batches: ordering a Poisson sample by length keeps every record with its unit", async () => {
  const { byLength } = await import("../pipeline/training/batches.ts");
  const { PoissonSampler, UnitTable, splitMicroBatches } = await import(
    "../pipeline/privacy/sampler.ts"
  );
  const seed = freshSeed();
  const r = rng(seed);
  const n = 130;
  const patientOf = Array.from({ length: n }, () => Math.floor(r() * 40));
  const lengths = Array.from({ length: n }, () => 1 + Math.floor(r() * 50));
  const offsets = new Uint32Array(n + 1);
  lengths.forEach((l, i) => (offsets[i + 1] = offsets[i] + l));
  const split = { offsets } as unknown as Parameters<typeof byLength>[1];
  const table = UnitTable.patients(patientOf);
  const batch = new PoissonSampler(table, 0.5).sample();
  const sorted = byLength(batch, split);
  const unitOf = (b: typeof batch, k: number) => b.units[b.unitIndex[k]];
  assert.deepEqual(
    [...sorted.records].sort((a, b) => a - b),
    [...batch.records].sort((a, b) => a - b),
  );
  const want = new Map<number, number>();
  batch.records.forEach((rec, k) => want.set(rec, unitOf(batch, k)));
  sorted.records.forEach((rec, k) => {
    assert.equal(
      unitOf(sorted, k),
      want.get(rec),
      `record ${rec} moved to another unit (seed ${seed})`,
    );
    if (k > 0 && sorted.unitIndex[k] === sorted.unitIndex[k - 1]) {
      assert.equal(patientOf[rec], patientOf[sorted.records[k - 1]], "a unit is one patient");
    }
    const step = k > 0 ? sorted.unitIndex[k] - sorted.unitIndex[k - 1] : sorted.unitIndex[0];
    assert.ok(step === 0 || step === 1, "unit indices start at 0, ascend by 1, units contiguous");
  });
  // Units ascend by their longest record, and micro-batches still respect unit boundaries.
  const longest = (b: typeof batch, u: number) =>
    Math.max(...[...b.records].filter((_, k) => b.unitIndex[k] === u).map((rec) => lengths[rec]));
  for (let u = 1; u < sorted.units.length; u++) {
    assert.ok(longest(sorted, u - 1) <= longest(sorted, u));
  }
  for (const mb of splitMicroBatches(sorted, 8)) {
    assert.ok(mb.records.length <= 8);
  }
});

Deno.test("clipping plan: per-layer bounds split C so the total sensitivity stays C", async () => {
  const { clippingPlan } = await import("../pipeline/stages/train.ts");
  const specs = ["lora.0.query.a", "lora.0.value.b", "lora.1.query.a", "L1.attnLn.g", "head.w"]
    .map((name) => ({ name, shape: [2, 3] }));
  const flat = clippingPlan(specs, "flat", 1.5);
  assert.deepEqual(flat.spec, { kind: "flat", C: 1.5 });
  assert.ok(flat.params.every((p) => p.group === 0));
  const pl = clippingPlan(specs, "per-layer", 1.5);
  assert.deepEqual(pl.groups, ["layer 0", "layer 1", "head"]);
  assert.deepEqual(pl.params.map((p) => p.group), [0, 0, 1, 1, 2]);
  if (pl.spec.kind !== "per-layer") throw new Error("expected per-layer");
  const total = Math.sqrt(pl.spec.bounds.reduce((a, c) => a + c * c, 0));
  assert.ok(Math.abs(total - 1.5) < 1e-12, `total sensitivity ${total} ≠ C`);
});
