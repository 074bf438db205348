/**
 * Checkpoint I/O: safetensors codec, config.json parsing, HF name mapping for BERT/ALBERT/RoBERTa
 * (f32/f16/bf16, sharded), save/load round trips, PEFT adapter export/import and LoRA merging.
 */
import {
  deepStrictEqual as assertDeepEqual,
  ok as assert,
  strictEqual as assertEquals,
} from "node:assert/strict";
import { freshSeed, randn, relErr, rng } from "./helpers.ts";
import {
  makeTinyCheckpoint,
  randomEncoderWeights,
  type TinyCheckpointOptions,
  tinyConfig,
} from "./fixtures/tiny_checkpoint.ts";
import {
  CheckpointError,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  SafetensorsFile,
} from "../pipeline/model/safetensors.ts";
import { parseHfConfig } from "../pipeline/model/hf_config.ts";
import {
  loadCheckpoint,
  loadEncoder,
  mlmHeadFromTensors,
  saveCheckpoint,
} from "../pipeline/model/checkpoint.ts";
import {
  loadPeftAdapter,
  mergeLora,
  peftAdapterConfig,
  savePeftAdapter,
} from "../pipeline/model/peft.ts";
import type {
  EncoderWeights,
  HostTensor,
  LoraConfig,
  LoraTarget,
  LoraWeights,
} from "../pipeline/model/types.ts";

async function throwsWith(
  fn: () => unknown,
  part: string | RegExp,
  cls: new (...a: never[]) => Error = CheckpointError,
): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    const ok = typeof part === "string" ? e.message.includes(part) : part.test(e.message);
    assert(ok, `message ${JSON.stringify(e.message)} lacks ${part}`);
    return e.message;
  }
  throw new Error(`expected ${cls.name} matching ${part}, nothing thrown`);
}

/** Flatten weights (fixed field order) for exact comparisons. */
function flat(w: EncoderWeights): [string, HostTensor][] {
  const out: [string, HostTensor][] = [];
  const walk = (path: string, v: unknown) => {
    if (v && typeof v === "object" && "data" in v && "shape" in v) {
      out.push([path, v as HostTensor]);
    } else if (v && typeof v === "object") {
      for (const k of Object.keys(v).sort()) {
        walk(`${path}.${k}`, (v as Record<string, unknown>)[k]);
      }
    }
  };
  walk("w", w);
  return out;
}

function assertWeightsEqual(got: EncoderWeights, want: EncoderWeights, what: string): void {
  const g = flat(got), w = flat(want);
  assertDeepEqual(g.map((x) => x[0]), w.map((x) => x[0]), `${what}: same tensors`);
  for (let i = 0; i < g.length; i++) {
    assertDeepEqual(g[i][1].shape, w[i][1].shape, `${what}: shape of ${g[i][0]}`);
    // Exact: the fixture rounds to the storage dtype before returning.
    assert(
      g[i][1].data.every((v, j) => Object.is(v, w[i][1].data[j])),
      `${what}: values of ${g[i][0]}`,
    );
  }
}

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "ckpt_" });
}

// ---------------------------------------------------------------- safetensors codec

Deno.test("f16/bf16 codecs: known bit patterns, exact round trip of every f16, ties to even", () => {
  assertEquals(f16ToF32(0x3c00), 1);
  assertEquals(f16ToF32(0xc000), -2);
  assertEquals(f16ToF32(0x7bff), 65504);
  assertEquals(f16ToF32(0x0001), 2 ** -24);
  assertEquals(f16ToF32(0x7c00), Infinity);
  assert(Number.isNaN(f16ToF32(0x7e00)));
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) continue; // NaNs
    assertEquals(f32ToF16(f16ToF32(h)), h, `f16 bits ${h.toString(16)}`);
  }
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even → 1. 1 + 3·2^-11 → 1 + 2^-9.
  assertEquals(f32ToF16(1 + 2 ** -11), 0x3c00);
  assertEquals(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assertEquals(f32ToF16(65520), 0x7c00); // rounds up past max → inf
  assertEquals(f32ToF16(2 ** -25), 0); // tie between 0 and smallest subnormal → 0 (even)
  assertEquals(f32ToBf16(1), 0x3f80);
  assertEquals(f32ToBf16(-2), 0xc000);
  assertEquals(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even
  assertEquals(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
});

Deno.test("safetensors: hand-built file decodes (F16, BF16, F64, I64), header validated", () => {
  // Build the bytes by hand, as the reference writer lays them out.
  const header = JSON.stringify({
    __metadata__: { format: "pt" },
    h: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
    b: { dtype: "BF16", shape: [1], data_offsets: [4, 6] },
    d: { dtype: "F64", shape: [1], data_offsets: [8, 16] },
    i: { dtype: "I64", shape: [1, 1], data_offsets: [16, 24] },
  });
  const hb = new TextEncoder().encode(header);
  const buf = new Uint8Array(8 + hb.length + 24);
  const dv = new DataView(buf.buffer);
  dv.setBigUint64(0, BigInt(hb.length), true);
  buf.set(hb, 8);
  const d0 = 8 + hb.length;
  dv.setUint16(d0, 0x3c00, true);
  dv.setUint16(d0 + 2, 0xc000, true);
  dv.setUint16(d0 + 4, 0x3f80, true);
  dv.setFloat64(d0 + 8, 0.1, true);
  dv.setBigInt64(d0 + 16, -7n, true);
  const f = SafetensorsFile.parse("hand.safetensors", buf);
  assertDeepEqual([...f.tensor("h").data], [1, -2]);
  assertDeepEqual([...f.tensor("b").data], [1]);
  assertEquals(f.tensor("d").data[0], Math.fround(0.1));
  assertDeepEqual(f.tensor("i"), { data: Float32Array.of(-7), shape: [1, 1] });
  assertEquals(f.metadata.format, "pt");

  // Corruptions, each named.
  const bad = (mut: (b: Uint8Array) => Uint8Array, part: string) =>
    throwsWith(() => SafetensorsFile.parse("bad.safetensors", mut(buf.slice())), part);
  bad((b) => b.slice(0, b.length - 1), "outside the data");
  bad((b) => {
    new DataView(b.buffer).setBigUint64(0, 10n ** 12n, true);
    return b;
  }, "does not fit the file size");
  bad((b) => b.slice(0, 4), "too short");
  const enc = (h: unknown) => {
    const j = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + j.length + 8);
    new DataView(out.buffer).setBigUint64(0, BigInt(j.length), true);
    out.set(j, 8);
    return out;
  };
  throwsWith(
    () =>
      SafetensorsFile.parse("x", enc({ t: { dtype: "F32", shape: [3], data_offsets: [0, 8] } })),
    'tensor "t": 8 bytes for F32 [3], expected 12',
  );
  throwsWith(
    () =>
      SafetensorsFile.parse(
        "x",
        enc({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
        }),
      ),
    "overlap",
  );
  throwsWith(
    () => SafetensorsFile.parse("x", enc({ t: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } })),
    "unknown dtype",
  );
  throwsWith(
    () =>
      SafetensorsFile.parse("x", enc({ t: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }))
        .tensor("t"),
    "dtype U8",
  );
});

Deno.test("safetensors writer: 8-byte aligned header, metadata, round trip f32/f16/bf16", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 7, 33, 130]) {
    const t = { data: Float32Array.from(randn(n, r)), shape: [n] };
    const u = { data: Float32Array.from(randn(3 * n, r)), shape: [3, n] };
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const bytes = encodeSafetensors(new Map([["t", t], ["u", u]]), {
        dtype,
        metadata: { k: "v" },
      });
      const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assertEquals(hlen % 8, 0, "header padded to 8 bytes");
      const f = SafetensorsFile.parse("rt", bytes);
      assertDeepEqual(f.metadata, { format: "pt", k: "v" });
      for (const [name, src] of [["t", t], ["u", u]] as const) {
        const got = f.tensor(name);
        assertDeepEqual(got.shape, src.shape);
        // F32 exact; F16 rel. rounding 2^-11, BF16 2^-8 per element (normal range; |x| > 6e-5 here
        // except rare tiny draws, hence the absolute floor of one f16 subnormal step).
        const ulp = { F32: 0, F16: 2 ** -11, BF16: 2 ** -8 }[dtype];
        for (let i = 0; i < src.data.length; i++) {
          const err = Math.abs(got.data[i] - src.data[i]);
          assert(
            err <= ulp * Math.abs(src.data[i]) + (dtype === "F16" ? 2 ** -25 : 0),
            `${dtype} ${name}[${i}] ${got.data[i]} vs ${src.data[i]} (DPLORA_TEST_SEED=${seed})`,
          );
        }
      }
    }
  }
});

// ---------------------------------------------------------------- config.json

Deno.test("config.json: parse BERT/ALBERT/RoBERTa; errors name the file and field", async () => {
  const base = {
    model_type: "bert",
    vocab_size: 130,
    hidden_size: 12,
    num_hidden_layers: 3,
    num_attention_heads: 3,
    intermediate_size: 33,
  };
  const b = parseHfConfig(base);
  assertEquals(b.layerNormEps, 1e-12);
  assertEquals(b.hiddenAct, "gelu");
  assertEquals(b.positionOffset, 0);
  assertEquals(b.embeddingSize, 12);
  const a = parseHfConfig({
    ...base,
    model_type: "albert",
    embedding_size: 7,
    num_hidden_groups: 1,
  });
  assertEquals(a.embeddingSize, 7);
  assertEquals(a.hiddenAct, "gelu_new");
  assertEquals(a.numHiddenGroups, 1);
  const r = parseHfConfig({
    ...base,
    model_type: "roberta",
    pad_token_id: 1,
    max_position_embeddings: 514,
  });
  assertEquals(r.positionOffset, 2);
  assertEquals(parseHfConfig({ ...base, hidden_act: "gelu_pytorch_tanh" }).hiddenAct, "gelu_new");

  await throwsWith(
    () => parseHfConfig({ ...base, model_type: "gpt2" }, "m/config.json"),
    'm/config.json: field "model_type" is "gpt2"; supported model types: bert, albert, roberta',
  );
  const { hidden_size: _, ...noHidden } = base;
  await throwsWith(
    () => parseHfConfig(noHidden, "c.json"),
    'c.json: field "hidden_size" is missing',
  );
  await throwsWith(
    () => parseHfConfig({ ...base, num_attention_heads: 5 }),
    '"num_attention_heads" (5) must divide',
  );
  await throwsWith(
    () => parseHfConfig({ ...base, hidden_act: "swish" }),
    'field "hidden_act" is "swish"',
  );
  await throwsWith(
    () => parseHfConfig({ ...base, vocab_size: "130" }),
    'field "vocab_size" must be an integer',
  );
  await throwsWith(
    () => parseHfConfig({ ...base, model_type: "albert", inner_group_num: 2 }),
    'field "inner_group_num" is 2',
  );
  const dir = await tmp();
  await Deno.writeTextFile(`${dir}/config.json`, "{ nope");
  await throwsWith(() => loadEncoder(dir), `${dir}/config.json: not valid JSON`);
  await Deno.remove(dir, { recursive: true });
});

// ---------------------------------------------------------------- name mapping, dtypes, shards

const SIZES = { layers: 3, hidden: 12, heads: 3, intermediate: 33, vocab: 130, maxPositions: 7 };

for (const modelType of ["bert", "albert", "roberta"] as const) {
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const sharded of [false, 3]) {
      Deno.test(`load ${modelType} ${dtype}${sharded ? " sharded" : ""}: weights equal what was written`, async () => {
        const seed = freshSeed();
        const dir = await tmp();
        const opts: TinyCheckpointOptions = {
          modelType,
          ...SIZES,
          maxPositions: modelType === "roberta" ? 9 : 7,
          embeddingSize: 5,
          hiddenGroups: modelType === "albert" ? 2 : undefined,
          dtype,
          sharded,
          pooler: seed % 2 === 0,
          seed,
        };
        const fx = await makeTinyCheckpoint(dir, opts);
        const got = await loadCheckpoint(dir);
        assertDeepEqual(got.config, fx.config, `config (DPLORA_TEST_SEED=${seed})`);
        assertWeightsEqual(got.weights, fx.weights, `${modelType} ${dtype} seed ${seed}`);
        assertEquals(got.weights.pooler !== undefined, opts.pooler);
        assertEquals(got.tokenizer.vocabSize, fx.vocab.length);
        if (dtype !== "f32") {
          // The on-disk values are the f32 draws rounded to the dtype (not something else).
          const f32 = randomEncoderWeights(fx.config, seed, { pooler: opts.pooler });
          const e = relErr(got.weights.wordEmb.data, f32.wordEmb.data);
          const ulp = dtype === "f16" ? 2 ** -11 : 2 ** -8;
          assert(e > 0 && e <= ulp, `${dtype} rounding error ${e} (DPLORA_TEST_SEED=${seed})`);
        }
        await Deno.remove(dir, { recursive: true });
      });
    }
  }
}

Deno.test("BertModel-style names (no prefix) load; task heads skipped or kept", async () => {
  const seed = freshSeed();
  const dir = await tmp();
  const fx = await makeTinyCheckpoint(dir, { modelType: "bert", ...SIZES, prefix: false, seed });
  const got = await loadEncoder(dir);
  assertEquals(got.prefix, "");
  assertWeightsEqual(got.weights, fx.weights, "no-prefix");
  for (const modelType of ["bert", "albert", "roberta"] as const) {
    const d = await tmp();
    const f = await makeTinyCheckpoint(d, {
      modelType,
      ...SIZES,
      embeddingSize: 5,
      taskHeads: true,
      seed,
    });
    const skipped = await loadEncoder(d);
    assertEquals(skipped.extras.size, 0);
    assertWeightsEqual(skipped.weights, f.weights, `${modelType} with heads`);
    const kept = await loadEncoder(d, { keepHeads: true });
    const headNames = [...f.tensors.keys()].filter((n) => !n.startsWith(`${modelType}.`)).sort();
    assertDeepEqual([...kept.extras.keys()].sort(), headNames);
    const mlm = mlmHeadFromTensors(f.config, kept.extras);
    assert(mlm, `${modelType} MLM head found`);
    assertEquals(mlm.bias.data.length, f.config.vocabSize);
    await Deno.remove(d, { recursive: true });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("errors name the tensor: missing, unexpected, mis-shaped; no weights file", async () => {
  const seed = freshSeed();
  const dir = await tmp();
  const fx = await makeTinyCheckpoint(dir, { modelType: "bert", ...SIZES, seed });
  const rewrite = async (m: Map<string, HostTensor>) =>
    await Deno.writeFile(`${dir}/model.safetensors`, encodeSafetensors(m));
  const q = "bert.encoder.layer.1.attention.self.query.weight";

  const missing = new Map(fx.tensors);
  missing.delete(q);
  await rewrite(missing);
  await throwsWith(() => loadEncoder(dir), `tensor "${q}" [12, 12] is missing`);

  const extra = new Map(fx.tensors);
  extra.set("bert.encoder.layer.3.attention.self.query.weight", fx.tensors.get(q)!);
  await rewrite(extra);
  await throwsWith(
    () => loadEncoder(dir),
    '1 unexpected tensor(s) for a bert encoder with 3 layers: "bert.encoder.layer.3.attention.self.query.weight" [12, 12]',
  );

  const misshaped = new Map(fx.tensors);
  misshaped.set(q, { data: new Float32Array(12 * 5), shape: [12, 5] });
  await rewrite(misshaped);
  await throwsWith(() => loadEncoder(dir), `tensor "${q}": expected [12, 12], found [12, 5]`);

  await Deno.remove(`${dir}/model.safetensors`);
  await Deno.writeFile(`${dir}/pytorch_model.bin`, new Uint8Array(4));
  await throwsWith(() => loadEncoder(dir), "found pytorch_model.bin");

  // A sharded index that points at a shard lacking the tensor.
  await Deno.writeFile(`${dir}/model-1.safetensors`, encodeSafetensors(missing));
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ weight_map: { [q]: "model-1.safetensors" } }),
  );
  await throwsWith(() => loadEncoder(dir), `weight_map puts "${q}" in model-1.safetensors`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokenizer larger than vocab_size is refused", async () => {
  const dir = await tmp();
  await makeTinyCheckpoint(dir, { modelType: "bert", ...SIZES, seed: 1 });
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const vocab = (await Deno.readTextFile(`${dir}/vocab.txt`)) + "extra1\nextra2\n";
  await Deno.writeTextFile(`${dir}/vocab.txt`, vocab);
  await Deno.remove(`${dir}/tokenizer.json`);
  await throwsWith(() => loadCheckpoint(dir), `tokenizer has ${cfg.vocab_size + 2} tokens`);
  await Deno.remove(dir, { recursive: true });
});

// ---------------------------------------------------------------- save

Deno.test("saveCheckpoint → loadCheckpoint round trip (head, MLM head, shards, f32)", async () => {
  const seed = freshSeed();
  for (const modelType of ["bert", "albert", "roberta"] as const) {
    const src = await tmp();
    const fx = await makeTinyCheckpoint(src, {
      modelType,
      ...SIZES,
      embeddingSize: 5,
      taskHeads: true,
      seed,
    });
    const loaded = await loadCheckpoint(src, { keepHeads: true });
    const mlmHead = mlmHeadFromTensors(loaded.config, loaded.extras)!;
    const r = rng(seed + 1);
    const head = {
      w: { data: Float32Array.from(randn(14 * 12, r)), shape: [14, 12] },
      b: { data: Float32Array.from(randn(14, r)), shape: [14] },
    };
    const out = await tmp();
    const files = await saveCheckpoint(out, loaded.config, loaded.weights, src, {
      head,
      mlmHead,
      multiLabel: true,
      shards: 2,
    });
    assert(files.includes("model.safetensors.index.json") && files.includes("vocab.txt"));
    const cfg = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assertEquals(cfg.problem_type, "multi_label_classification");
    assertEquals(cfg.num_labels, 14);
    const back = await loadCheckpoint(out, { keepHeads: true });
    assertDeepEqual(back.config, fx.config);
    assertWeightsEqual(back.weights, fx.weights, `${modelType} resaved`);
    assertDeepEqual(back.extras.get("classifier.weight"), head.w);
    assertDeepEqual(mlmHeadFromTensors(back.config, back.extras), mlmHead);
    assertEquals(back.tokenizer.fingerprint(), loaded.tokenizer.fingerprint());
    await Deno.remove(src, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("saveCheckpoint refuses weights that do not match the config", async () => {
  const c = tinyConfig({ modelType: "bert", ...SIZES, seed: 0 });
  const w = randomEncoderWeights(c, 3);
  w.layers[2].inter.w = { data: new Float32Array(12 * 32), shape: [32, 12] };
  const out = await tmp();
  await throwsWith(
    () => saveCheckpoint(out, c, w, { "vocab.txt": "[PAD]\n" }),
    'tensor "bert.encoder.layer.2.intermediate.dense.weight": expected [33, 12], found [32, 12]',
  );
  await Deno.remove(out, { recursive: true });
});

// ---------------------------------------------------------------- PEFT

function randomLora(
  c: ReturnType<typeof tinyConfig>,
  lc: LoraConfig,
  seed: number,
): LoraWeights {
  const r = rng(seed);
  const lora: LoraWeights = new Map();
  const n = c.modelType === "albert" ? c.numHiddenGroups : c.numLayers;
  for (let i = 0; i < n; i++) {
    for (const t of lc.targets) {
      const inp = t === "output" ? c.intermediateSize : c.hiddenSize;
      const out = t === "intermediate" ? c.intermediateSize : c.hiddenSize;
      lora.set(`${i}.${t}`, {
        a: { data: Float32Array.from(randn(lc.rank * inp, r)), shape: [lc.rank, inp] },
        b: { data: Float32Array.from(randn(out * lc.rank, r)), shape: [out, lc.rank] },
      });
    }
  }
  return lora;
}

const ALL_TARGETS: LoraTarget[] = [
  "query",
  "key",
  "value",
  "attention.output",
  "intermediate",
  "output",
];

Deno.test("PEFT export: adapter_config fields and key names (BERT, ALBERT)", async () => {
  const seed = freshSeed();
  const c = tinyConfig({ modelType: "bert", ...SIZES, seed });
  const lc: LoraConfig = { targets: ["query", "value"], rank: 4, alpha: 8, dropout: 0.1 };
  const head = {
    w: { data: new Float32Array(14 * 12).fill(0.5), shape: [14, 12] },
    b: { data: new Float32Array(14), shape: [14] },
  };
  const dir = await tmp();
  await savePeftAdapter(dir, c, lc, randomLora(c, lc, seed), {
    head,
    baseModelNameOrPath: "prajjwal1/bert-small",
  });
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
  for (
    const [k, v] of Object.entries({
      peft_type: "LORA",
      task_type: "SEQ_CLS",
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.1,
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      base_model_name_or_path: "prajjwal1/bert-small",
    })
  ) assertEquals(cfg[k], v, `adapter_config.json ${k}`);
  assertDeepEqual(cfg.target_modules, ["query", "value"]);
  assertDeepEqual(cfg.modules_to_save, ["classifier"]);
  const f = await SafetensorsFile.open(`${dir}/adapter_model.safetensors`);
  const names = f.names.sort();
  assert(
    names.includes("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"),
  );
  assert(
    names.includes("base_model.model.bert.encoder.layer.2.attention.self.value.lora_B.weight"),
  );
  assert(names.includes("base_model.model.classifier.weight"));
  assertEquals(names.length, 3 * 2 * 2 + 2);
  assertDeepEqual(
    f.infos.get("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight")!.shape,
    [4, 12],
  );
  assertDeepEqual(
    f.infos.get("base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight")!.shape,
    [12, 4],
  );

  const ca = tinyConfig({ modelType: "albert", ...SIZES, embeddingSize: 5, seed });
  const la: LoraConfig = { targets: ALL_TARGETS, rank: 2, alpha: 16, dropout: 0 };
  const pa = peftAdapterConfig(ca, la);
  assertDeepEqual(pa.target_modules, [
    "query",
    "key",
    "value",
    "attention.dense",
    "ffn",
    "ffn_output",
  ]);
  assertEquals(pa.modules_to_save, null);
  const da = await tmp();
  await savePeftAdapter(da, ca, la, randomLora(ca, la, seed));
  const fa = await SafetensorsFile.open(`${da}/adapter_model.safetensors`);
  assert(
    fa.has(
      "base_model.model.albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.lora_A.weight",
    ),
  );
  assert(
    fa.has(
      "base_model.model.albert.encoder.albert_layer_groups.0.albert_layers.0.attention.dense.lora_B.weight",
    ),
  );
  // BERT "output" alone cannot be a suffix list (output.dense also matches attention.output.dense).
  const po = peftAdapterConfig(c, { ...lc, targets: ["output"] });
  assertEquals(typeof po.target_modules, "string");
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(da, { recursive: true });
});

Deno.test("PEFT round trip: identical tensors, config and head (all model types, target sets)", async () => {
  const seed = freshSeed();
  const sets: LoraTarget[][] = [["query", "value"], ALL_TARGETS, ["output"], [
    "attention.output",
    "intermediate",
  ]];
  for (const modelType of ["bert", "albert", "roberta"] as const) {
    const c = tinyConfig({ modelType, ...SIZES, embeddingSize: 5, hiddenGroups: 2, seed });
    for (const targets of sets) {
      const lc: LoraConfig = { targets, rank: 3, alpha: 6, dropout: 0.05 };
      const lora = randomLora(c, lc, seed);
      const head = {
        w: { data: Float32Array.from(randn(14 * 12, rng(seed))), shape: [14, 12] },
        b: { data: Float32Array.from(randn(14, rng(seed + 1))), shape: [14] },
      };
      const dir = await tmp();
      await savePeftAdapter(dir, c, lc, lora, { head });
      const back = await loadPeftAdapter(dir, c);
      assertDeepEqual(
        back.loraConfig,
        { ...lc, targets: [...targets].sort() },
        `${modelType} ${targets}`,
      );
      assertDeepEqual(
        back.lora,
        lora,
        `${modelType} ${targets} tensors (DPLORA_TEST_SEED=${seed})`,
      );
      assertDeepEqual(back.head, head);
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("PEFT import: accepts modules_to_save.default keys; rejects unsupported configs", async () => {
  const c = tinyConfig({ modelType: "bert", ...SIZES, seed: 0 });
  const lc: LoraConfig = { targets: ["query"], rank: 2, alpha: 4, dropout: 0 };
  const dir = await tmp();
  await savePeftAdapter(dir, c, lc, randomLora(c, lc, 5));
  const f = await SafetensorsFile.open(`${dir}/adapter_model.safetensors`);
  const m = new Map(f.names.map((n) => [n, f.tensor(n)]));
  const hw = { data: new Float32Array(2 * 12).fill(1), shape: [2, 12] };
  m.set("base_model.model.classifier.modules_to_save.default.weight", hw);
  m.set("base_model.model.classifier.modules_to_save.default.bias", {
    data: new Float32Array(2),
    shape: [2],
  });
  await Deno.writeFile(`${dir}/adapter_model.safetensors`, encodeSafetensors(m));
  assertDeepEqual((await loadPeftAdapter(dir, c)).head?.w, hw);
  m.set("base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight", hw);
  await Deno.writeFile(`${dir}/adapter_model.safetensors`, encodeSafetensors(m));
  await throwsWith(
    () => loadPeftAdapter(dir, c),
    'unexpected tensor(s) "base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight"',
  );
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
  await Deno.writeTextFile(
    `${dir}/adapter_config.json`,
    JSON.stringify({ ...cfg, use_dora: true }),
  );
  await throwsWith(() => loadPeftAdapter(dir, c), 'field "use_dora" is true');
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify({ ...cfg, r: 3 }));
  await throwsWith(
    () => loadPeftAdapter(dir, c),
    /lora_A of "0.query": expected \[3, 12\], found \[2, 12\]/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mergeLora: merged linear equals base + (alpha/r)·B·A·x (float64 reference)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const c = tinyConfig({ modelType: "bert", ...SIZES, seed });
  const w = randomEncoderWeights(c, seed);
  const lc: LoraConfig = { targets: ALL_TARGETS, rank: 3, alpha: 7, dropout: 0 };
  const lora = randomLora(c, lc, seed + 9);
  const before = structuredClone(w);
  const merged = mergeLora(w, lora, lc, c);
  assertDeepEqual(w, before, "input weights untouched");
  const s = lc.alpha / lc.rank;
  const field = {
    query: "query",
    key: "key",
    value: "value",
    "attention.output": "attnOut",
    intermediate: "inter",
    output: "out",
  } as const;
  for (const [key, ad] of lora) {
    const [li, t] = [Number(key.split(".")[0]), key.slice(key.indexOf(".") + 1) as LoraTarget];
    const W = w.layers[li][field[t]].w, M = merged.layers[li][field[t]].w;
    const [O, I] = W.shape;
    const x = randn(I, r);
    const want = new Float64Array(O), got = new Float64Array(O);
    const ax = new Float64Array(lc.rank);
    for (let k = 0; k < lc.rank; k++) {
      for (let i = 0; i < I; i++) ax[k] += ad.a.data[k * I + i] * x[i];
    }
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < I; i++) {
        want[o] += W.data[o * I + i] * x[i];
        got[o] += M.data[o * I + i] * x[i];
      }
      for (let k = 0; k < lc.rank; k++) want[o] += s * ad.b.data[o * lc.rank + k] * ax[k];
    }
    // Only error: one f32 rounding of each merged weight (rel. 2^-24 ≈ 6e-8) summed over I ≤ 33
    // terms with random signs; 1e-6 leaves margin while a wrong scale/transpose gives O(1).
    const e = relErr(got, want);
    assert(e < 1e-6, `${key}: merged error ${e} (DPLORA_TEST_SEED=${seed})`);
  }
  assertDeepEqual(merged.wordEmb, w.wordEmb);
});
