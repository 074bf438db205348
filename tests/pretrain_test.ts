/**
 * Masked-LM pretraining: the BERT masking recipe (statistics, specials), the GPU MLM head's loss
 * and gradients (tied decoder included) against the float64 reference and finite differences,
 * and the pretraining loop end to end on a tiny corpus (loss falls, checkpoint loads back).
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import { ENC_SHADERS } from "../pipeline/model/enc_kernels.ts";
import { GpuEncoder, MLM_IGNORE, type MlmBatch } from "../pipeline/model/encoder.ts";
import { mlmNamedTensors } from "../pipeline/model/params.ts";
import {
  maskBatch,
  type MaskingSpec,
  maskingSpec,
  maskSequence,
  numToPredict,
} from "../pipeline/model/mlm.ts";
import {
  loadCheckpoint,
  mlmHeadFromTensors,
  type MlmHeadWeights,
} from "../pipeline/model/checkpoint.ts";
import { evaluateMlm, runPretrain, splitHoldout } from "../pipeline/model/pretrain.ts";
import { parsePretrainConfig, readPretrainConfig } from "../pipeline/model/pretrain_config.ts";
import { ConfigError } from "../pipeline/errors.ts";
import type { EncoderConfig } from "../pipeline/model/types.ts";
import { assertClose, freshSeed, rng } from "./helpers.ts";
import { refMlmLoss, type RefParams, refParams, type RefSpec } from "./reference/encoder.ts";
import {
  randomHost,
  randomLayerNorm,
  randomLinear,
  randomWeights,
} from "./fixtures/random_weights.ts";

let shared: Promise<Runtime> | null = null;
function gpu(): Promise<Runtime> {
  shared ??= Runtime.create([...ENC_SHADERS]);
  return shared;
}

function cfg(kind: "bert" | "albert"): EncoderConfig {
  return {
    modelType: kind,
    vocabSize: 37,
    embeddingSize: kind === "albert" ? 8 : 16,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 2,
    intermediateSize: 24,
    maxPositions: 12,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    hiddenAct: kind === "albert" ? "gelu_new" : "gelu",
    numHiddenGroups: kind === "albert" ? 1 : 2,
    padTokenId: 0,
    positionOffset: 0,
  };
}

function randomModel(c: EncoderConfig, r: () => number) {
  const w = randomWeights(c, r, false);
  const tw = c.modelType === "albert" ? c.embeddingSize : c.hiddenSize;
  const head: MlmHeadWeights = {
    transform: randomLinear(tw, c.hiddenSize, r),
    ln: randomLayerNorm(tw, r),
    bias: randomHost([c.vocabSize], r, 0.1),
  };
  return { w, head };
}

function randomMlmBatch(c: EncoderConfig, lens: number[], r: () => number) {
  const ids = lens.map((n) =>
    Array.from({ length: n }, () => 1 + Math.floor(r() * (c.vocabSize - 1)))
  );
  const typeIds = lens.map((n) => Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0)));
  // ~30% predicted, sample 1 (length 1) has none: an all-ignored sample must contribute nothing
  const mlmLabels = ids.map((s, i) =>
    s.map(() => (i !== 1 && r() < 0.3 ? Math.floor(r() * c.vocabSize) : MLM_IGNORE))
  );
  mlmLabels[0][0] = 5; // at least one prediction
  return { ids, typeIds, mlmLabels } satisfies MlmBatch;
}

for (const kind of ["bert", "albert"] as const) {
  Deno.test(`mlm ${kind}: per-token loss and all gradients (tied decoder) vs float64 + FD`, async () => {
    const seed = freshSeed(), r = rng(seed);
    const rt = await gpu();
    const c = cfg(kind);
    const { w, head } = randomModel(c, r);
    const enc = await GpuEncoder.create(rt, c, w, {
      mode: "full",
      head: { kind: "multi-label", numLabels: 1 },
      seed: 1,
      maxBatch: 4,
      maxLen: 9,
      mlm: { maxPredictions: 20, weights: head },
    });
    const ref: RefParams = refParams(c, w);
    for (const [k, t] of mlmNamedTensors(head)) ref.set(k, Float64Array.from(t.data));
    const spec: RefSpec = { config: c, head: { kind: "multi-label", numLabels: 1 } };
    const b = randomMlmBatch(c, [7, 1, 9, 4], r);
    const lossOf = (p: RefParams) =>
      b.ids.reduce((a, ids, i) => a + refMlmLoss(spec, p, ids, b.mlmLabels[i], b.typeIds[i]), 0);
    enc.poisonActivations();
    const { loss, count } = enc.mlmStep(b);
    const want = b.mlmLabels.flat().filter((y) => y !== MLM_IGNORE).length;
    assert.equal(count, want);
    const params = enc.parameters();
    assert.ok(params.some((p) => p.name === "mlm.transform.w"));
    assert.ok(!params.some((p) => p.name.startsWith("head.")), "classifier head must be frozen");
    const [lossGpu, ...grads] = await rt.readMany([loss, ...params.map((p) => p.grad)]);
    const lossSum = [...lossGpu].reduce((a, v) => a + v, 0);
    // f32 forward through 2 layers + LN + V-way log-softmax: ~1e-6 relative expected
    assertClose(Math.abs(lossSum - lossOf(ref)) / lossOf(ref), 1e-5, `${kind} MLM loss`, seed);
    params.forEach((p, k) => {
      const x = ref.get(p.name)!;
      const n = x.length;
      const idx = Array.from({ length: Math.min(5, n) }, () => Math.floor(r() * n));
      if (p.name === "emb.word") {
        // a row used only as decoder output (not an input id) and one used as both
        const used = new Set(b.ids.flat());
        const unused = Array.from({ length: c.vocabSize }, (_, v) => v).find((v) => !used.has(v));
        if (unused !== undefined) idx.push(unused * c.embeddingSize);
        idx.push(b.ids[0][0] * c.embeddingSize + 1);
      }
      const fd: number[] = [], got: number[] = [];
      for (const i of idx) {
        const old = x[i], h = 1e-5;
        x[i] = old + h;
        const lp = lossOf(ref);
        x[i] = old - h;
        const lm = lossOf(ref);
        x[i] = old;
        fd.push((lp - lm) / (2 * h));
        got.push(grads[k][i]);
      }
      if (p.name.endsWith(".key.b")) {
        // Exactly zero (softmax is shift-invariant per query): the f32 value is pure
        // cancellation of O(1..10) terms over ≤ 9 keys × H, measured up to 1.1e-6.
        const worst = Math.max(...got.map(Math.abs), ...fd.map(Math.abs));
        assertClose(worst, 2e-5, `${kind} MLM grad ${p.name} (exactly 0)`, seed);
        return;
      }
      // Floor 1e-2: the other tensors' gradients of this summed loss are O(0.1..10).
      const e = Math.hypot(...got.map((g, i) => g - fd[i])) / Math.max(Math.hypot(...fd), 1e-2);
      // f32 forward + backward (LN, attention, GELU, softmax over V); central FD in float64
      // with h = 1e-5 is accurate to ~1e-9. 1e-4 is the f32 bar used across the encoder tests.
      assertClose(e, 1e-4, `${kind} MLM grad ${p.name}`, seed);
    });
  });
}

Deno.test("mlm masking: 15% of maskable tokens, 80/10/10, specials never chosen, seeded", () => {
  const seed = freshSeed(), r = rng(seed);
  const V = 500;
  const specials = new Set([0, 1, 2, 3, 4]);
  const s: MaskingSpec = { prob: 0.15, maskId: 4, vocabSize: V, specialIds: specials };
  let chosen = 0, maskable = 0, masked = 0, random = 0, kept = 0, seqs = 0;
  for (let n = 0; n < 3000; n++) {
    const len = 3 + Math.floor(r() * 120);
    // [CLS] … [SEP] with some [UNK]/[PAD] inside: none of them may be chosen
    const ids = [
      2,
      ...Array.from({ length: len - 2 }, () => {
        const u = r();
        return u < 0.03 ? 1 : u < 0.05 ? 0 : 5 + Math.floor(r() * (V - 5));
      }),
      3,
    ];
    const { input, labels } = maskSequence(ids, s, r);
    const m = ids.filter((id) => !specials.has(id)).length;
    const k = labels.filter((y) => y !== MLM_IGNORE).length;
    assert.equal(k, numToPredict(m, 0.15), "exact count per sequence");
    maskable += m;
    chosen += k;
    seqs++;
    ids.forEach((id, j) => {
      if (labels[j] === MLM_IGNORE) {
        assert.equal(input[j], id, "an unchosen token changed");
        return;
      }
      assert.ok(!specials.has(id), `special id ${id} chosen`);
      assert.equal(labels[j], id, "label is the original token");
      if (input[j] === 4) masked++;
      else if (input[j] === id) kept++;
      else {
        random++;
        assert.ok(!specials.has(input[j]), "random replacement is a special token");
      }
    });
  }
  // per-sequence rounding moves the rate by < 0.5/len; over ~180k tokens within ±0.005
  assert.ok(Math.abs(chosen / maskable - 0.15) < 0.005, `rate ${chosen / maskable}`);
  // binomial(chosen ≈ 27k): 5σ of a 0.1 share ≈ 0.009; a random draw equal to the original
  // (p 1/495 of the 10%) counts as "kept", shifting shares by < 2e-4
  const sh = (x: number) => x / chosen;
  assert.ok(Math.abs(sh(masked) - 0.8) < 0.012, `[MASK] share ${sh(masked)}`);
  assert.ok(Math.abs(sh(random) - 0.1) < 0.009, `random share ${sh(random)}`);
  assert.ok(Math.abs(sh(kept) - 0.1) < 0.009, `kept share ${sh(kept)}`);
  assert.ok(seqs > 0);
  // long enough that two different masks coincide with negligible probability
  const batch = [0, 1].map((k) => [2, ...Array.from({ length: 60 }, (_, i) => 10 + i + k), 3]);
  assert.deepEqual(maskBatch(batch, s, 7, 3), maskBatch(batch, s, 7, 3), "not reproducible");
  assert.notDeepEqual(maskBatch(batch, s, 7, 3), maskBatch(batch, s, 7, 4), "step ignored");
});

Deno.test("pretrain: a tiny run lowers the MLM loss and its folder loads back with the head", async () => {
  const rt = await gpu();
  const dir = await Deno.makeTempDir({ prefix: "dplora-pretrain-" });
  try {
    const text = await Deno.readTextFile(
      new URL("../fixtures/data/public-corpus.txt", import.meta.url),
    );
    const reports = text.split(/\n\s*\n/).slice(0, 48);
    await Deno.writeTextFile(`${dir}/corpus.txt`, reports.join("\n\n"));
    const yaml = `corpus: corpus.txt
tokenizer: ${new URL("../fixtures/tokenizer", import.meta.url).pathname}
output: out/model
model: {layers: 1, hidden: 16, heads: 2, intermediate: 32, max_positions: 40}
train: {max_len: 40, batch: 8, lr: 1.0e-2, warmup: 3, epochs: 20, max_steps: 36, holdout: 8,
        log_every: 6, seed: 5}
`;
    await Deno.writeTextFile(`${dir}/pretrain.yaml`, yaml);
    const cfg = await readPretrainConfig(`${dir}/pretrain.yaml`);
    const lines: string[] = [];
    const res = await runPretrain(cfg, { rt, print: (l) => lines.push(l) });
    assert.equal(res.steps, 36);
    const ev = res.log.filter((l) => l.evalLoss !== undefined).map((l) => l.evalLoss!);
    const tr = res.log.filter((l) => l.loss !== undefined).map((l) => l.loss!);
    // HF init (std 0.02) predicts ~uniformly: the first loss is ln V (V = 3717 → 8.22)
    assert.ok(Math.abs(ev[0] - Math.log(3717)) < 0.05, `initial eval loss ${ev[0]}`);
    assert.ok(tr.at(-1)! < tr[0] - 1, `train loss ${tr[0]} → ${tr.at(-1)}`);
    assert.ok(ev.at(-1)! < ev[0] - 1, `eval loss ${ev[0]} → ${ev.at(-1)}`);
    assert.ok(lines.some((l) => /tokens\/s .* ETA/.test(l)), "no progress line");
    // per-epoch checkpoints (36 steps of 5 per epoch → 8 epochs) and the JSONL log
    assert.ok((await Deno.stat(`${dir}/out/model.checkpoints/epoch-8/model.safetensors`)).isFile);
    const logged = (await Deno.readTextFile(`${dir}/out/model/pretrain_log.jsonl`)).trim()
      .split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(logged, JSON.parse(JSON.stringify(res.log)));
    const svg = await Deno.readTextFile(`${dir}/out/model/pretrain_loss.svg`);
    assert.match(svg, /^<svg[^]*held-out[^]*<\/svg>$/);
    // one path per series, each with as many vertices as the log has points of its kind
    const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1].match(/[ML]/g)!.length);
    assert.deepEqual(paths, [tr.length, ev.length]);

    // Round trip: the saved folder reproduces the final held-out loss exactly (same f32 weights).
    const ck = await loadCheckpoint(cfg.output, { keepHeads: true });
    const head = mlmHeadFromTensors(ck.config, ck.extras);
    assert.ok(head, "MLM head missing from the saved checkpoint");
    assert.equal(ck.weights.pooler, undefined);
    assert.equal(ck.tokenizer.vocabSize, 3717);
    const enc = await GpuEncoder.create(rt, ck.config, ck.weights, {
      mode: "full",
      head: { kind: "multi-label", numLabels: 1 },
      seed: 0,
      maxBatch: 8,
      maxLen: 40,
      mlm: { maxPredictions: 64, weights: head },
    });
    const seqs = reports.map((t) => ck.tokenizer.encode(t.trim(), 40));
    const { hold } = splitHoldout(seqs, 8, 5);
    const again = await evaluateMlm(rt, enc, hold, maskingSpec(ck.tokenizer, 0.15), 8, 5);
    assert.ok(
      Math.abs(again! - res.evalLoss!) < 1e-6 * res.evalLoss!,
      `${again} vs ${res.evalLoss}`,
    );

    // Continued pretraining from the saved folder (init): same holdout and masks, so its step-0
    // held-out loss is the first run's final one — a re-initialised encoder or MLM head would
    // start near ln V instead.
    await Deno.writeTextFile(
      `${dir}/continue.yaml`,
      `corpus: corpus.txt
init: out/model
output: out/continued
train: {max_len: 40, batch: 8, lr: 1.0e-3, epochs: 1, max_steps: 3, holdout: 8, seed: 5}
`,
    );
    const cont = await readPretrainConfig(`${dir}/continue.yaml`);
    assert.equal(cont.tokenizer, cfg.output, "tokenizer should default to the init folder");
    const said: string[] = [];
    const res2 = await runPretrain(cont, { rt, print: (l) => said.push(l) });
    assert.ok(said.some((l) => l.includes(`continuing from ${cfg.output}`)), said[0]);
    const first = res2.log.find((l) => l.evalLoss !== undefined)!.evalLoss!;
    assert.ok(
      Math.abs(first - res.evalLoss!) < 1e-6 * res.evalLoss!,
      `${first} vs ${res.evalLoss}`,
    );
    assert.equal(res2.steps, 3);
    const ck2 = await loadCheckpoint(cont.output, { keepHeads: true });
    assert.deepEqual(ck2.config, ck.config, "continued model changed architecture");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain config: errors name the file, key and line", () => {
  const ok = `corpus: c.txt
tokenizer: tok
output: out
model: {layers: 2, hidden: 128, heads: 4}
train: {batch: 4, lr: 1.0e-3}
`;
  const c = parsePretrainConfig(ok, "p.yaml", "/base");
  assert.equal(c.corpus, "/base/c.txt");
  assert.equal(c.model?.intermediate, 512);
  assert.equal(c.checkpoints, "/base/out.checkpoints");
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => parsePretrainConfig(text, "p.yaml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  bad(ok.replace("lr: 1.0e-3", "lrr: 1.0e-3"), /^p\.yaml:5: train\.lrr: unknown key/);
  bad(ok.replace("heads: 4", "heads: 5"), /p\.yaml:4: model\.heads: must divide model\.hidden/);
  bad(ok.replace("output: out\n", ""), /p\.yaml: output: is required/);
  bad(ok.replace("batch: 4", "batch: 0"), /train\.batch: must be an integer ≥ 1, got 0/);
  bad(ok + "oops: [\n", /p\.yaml:\d+: YAML/);
  const cont = parsePretrainConfig(
    `corpus: c.txt\ninit: base\noutput: out\ntrain: {batch: 4, lr: 1.0e-4}\n`,
    "p.yaml",
    "/base",
  );
  assert.equal(cont.init, "/base/base");
  assert.equal(cont.tokenizer, "/base/base");
  assert.equal(cont.model, undefined);
  bad(
    ok.replace("output: out", "output: out\ninit: base"),
    /p\.yaml:5: model: must be absent with init/,
  );
});
