/**
 * DP-SGD step machinery: ChaCha20 noise, clipping, clipped mean vs float64, noise statistics,
 * Poisson sampling, micro-batching of patient units, the ledger and the budget guard.
 * Every test here would fail if the guarantee it names broke.
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import { addNoiseAndScale, chachaRaw, NOISE_STREAM_TAG } from "../pipeline/gpu/ops/dp.ts";
import {
  cryptoSource,
  insecureSeedForTests,
  type RandomSource,
  uniforms53,
} from "../pipeline/privacy/csprng.ts";
import {
  DpStep,
  type PerSampleGrad,
  type PerSamplePass,
  type TrainableSpec,
} from "../pipeline/privacy/dp_step.ts";
import { DpConfigError, LedgerError, PrivacyBudgetError } from "../pipeline/privacy/errors.ts";
import {
  BudgetGuard,
  Ledger,
  type LedgerSegment,
  type StepSettings,
} from "../pipeline/privacy/ledger.ts";
import {
  type LogicalBatch,
  type MicroBatch,
  PoissonSampler,
  splitMicroBatches,
  UnitTable,
} from "../pipeline/privacy/sampler.ts";
import { assertClose, condErr, freshSeed, maxAbsErr, randn, relErr, rng } from "./helpers.ts";
import { chacha20Block, clippedMeanRef, noiseRef } from "./reference/dp.ts";

// One device for the file, with only this module's shader (other files' WGSL is not our concern).
let shared: Promise<Runtime> | null = null;
function gpu(): Promise<Runtime> {
  shared ??= Runtime.create(["dp.wgsl"]).then(async (rt) => {
    await rt.compile("test_bookkeeping.wgsl", BOOKKEEPING);
    return rt;
  });
  return shared;
}

// The model side of the book-keeping route, for tests: accum[j] += Σ_r c[r] · g[r*P + j].
const BOOKKEEPING = `
struct P { b: u32, p: u32 }
@group(0) @binding(0) var<uniform> prm: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> accum: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= prm.p) { return; }
  var s = 0.0;
  for (var r = 0u; r < prm.b; r++) { s += c[r] * g[r * prm.p + j]; }
  accum[j] += s;
}`;

// ------------------------------------------------------------------ test model

/** Per-record float64 gradients for a dataset, served per micro-batch like a model would. */
class FakeModel {
  calls: PerSamplePass[] = [];
  private live: GpuTensor[] = [];
  constructor(
    private readonly rt: Runtime,
    readonly specs: TrainableSpec[],
    /** grads[t][datasetRecord] */
    readonly grads: Float64Array[][],
    /** Which tensors use the book-keeping route (norms + callback). */
    readonly bookkeeping: boolean[] = specs.map(() => false),
  ) {}

  perSample(mb: MicroBatch, pass: PerSamplePass): PerSampleGrad[] {
    this.calls.push(pass);
    this.releaseLive();
    const b = mb.records.length;
    return this.specs.map((s, t) => {
      const p = this.grads[t][0].length;
      const rows = new Float32Array(b * p);
      mb.records.forEach((rec, i) => rows.set(this.grads[t][rec], i * p));
      const g = this.rt.upload(rows, [b, ...s.shape], `pg.${s.name}`);
      this.live.push(g);
      if (!this.bookkeeping[t]) return { kind: "materialized", grads: g };
      const sq = Float32Array.from(mb.records, (rec) => {
        let a = 0;
        for (const v of this.grads[t][rec]) a += Math.fround(v) ** 2;
        return a;
      });
      const sqnorms = this.rt.upload(sq, [b], `sq.${s.name}`);
      this.live.push(sqnorms);
      return {
        kind: "norms",
        sqnorms,
        weightedGrad: (c: GpuTensor, accum: GpuTensor) => {
          const prm = new Uint32Array([b, p, 0, 0]);
          this.rt.dispatch({
            shader: "test_bookkeeping.wgsl",
            entry: "main",
            bindings: { 1: g, 2: c, 3: accum },
            params: prm.buffer,
            workgroups: [Math.ceil(p / 64)],
          });
        },
      };
    });
  }

  releaseLive(): void {
    // Tensors stay referenced by recorded commands until the flush that the next upload forces.
    for (const t of this.live) this.rt.release(t);
    this.live = [];
  }
}

function batchOfUnits(unitOfRecord: number[]): LogicalBatch {
  // Dataset record r belongs to step-local unit unitOfRecord[r] (grouped, ascending).
  const units = [...new Set(unitOfRecord)];
  return {
    units: Uint32Array.from(units),
    records: Uint32Array.from(unitOfRecord, (_, r) => r),
    unitIndex: Uint32Array.from(unitOfRecord),
  };
}

function makeGrads(
  n: number,
  sizes: number[],
  r: () => number,
  scaleOf: (rec: number) => number,
): Float64Array[][] {
  return sizes.map((p) =>
    Array.from({ length: n }, (_, rec) => {
      const a = randn(p, r, scaleOf(rec));
      return Float64Array.from(Float32Array.from(a)); // what the GPU sees
    })
  );
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/** Records a copy of every draw; delegates to the real CSPRNG. */
function recordingSource(): RandomSource & { draws: Uint32Array[] } {
  const draws: Uint32Array[] = [];
  return {
    secure: true,
    draws,
    fill(out: Uint32Array) {
      cryptoSource.fill(out);
      draws.push(out.slice());
      return out;
    },
  };
}

// ------------------------------------------------------------------ ChaCha20 + noise kernel

Deno.test("dp noise: ChaCha20 kernel matches RFC 8439 §2.3.2 and the reference on random keys", async () => {
  const rt = await gpu();
  const key = new Uint32Array(8);
  new Uint8Array(key.buffer).forEach((_, i, a) => (a[i] = i));
  const out = rt.empty([16], "raw", "u32");
  rt.fill(out, 0xdeadbeef);
  chachaRaw(rt, out, key, 1, [0x09000000, 0x4a000000, 0]);
  const [got] = await rt.readMany([out]);
  // RFC 8439 §2.3.2, "ChaCha state at the end of the ChaCha20 operation".
  const rfc = [
    0xe4e7f110,
    0x15593bd1,
    0x1fdd0f50,
    0xc47120a3,
    0xc7f4d1c7,
    0x0368c033,
    0x9aaa2204,
    0x4e6cd4c3,
    0x466482d2,
    0x09aa9f07,
    0x05d7c214,
    0xa2028bd9,
    0xd19c12b5,
    0xb94e16de,
    0xe883d0cb,
    0x4e3c50a2,
  ];
  assert.deepEqual([...got], rfc);
  assert.deepEqual([...chacha20Block(key, 1, [0x09000000, 0x4a000000, 0])], rfc);
  rt.release(out);

  const k2 = cryptoSource.fill(new Uint32Array(8));
  const nonce: [number, number, number] = [3, 0xffffffff, 77];
  const many = rt.empty([16 * 130], "raw130", "u32");
  rt.fill(many, 0);
  chachaRaw(rt, many, k2, 0xfffffff0, nonce); // counter wraps mod 2^32 inside the range
  const [g2] = await rt.readMany([many]);
  for (let b = 0; b < 130; b++) {
    const want = chacha20Block(k2, (0xfffffff0 + b) >>> 0, nonce);
    assert.deepEqual([...g2.subarray(16 * b, 16 * b + 16)], [...want], `block ${b}`);
  }
  rt.release(many);
});

Deno.test("dp noise: add_noise_and_scale equals the float64 map of the same keystream", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 7, 33, 130, 4099]) {
    const key = cryptoSource.fill(new Uint32Array(8));
    const a = Float32Array.from(randn(n, r));
    const acc = rt.upload(a, [n], "acc");
    const std = 0.37, scale = 1 / 12.5;
    addNoiseAndScale(rt, acc, { key, stream: 5, noiseStd: std, scale });
    const got = await rt.read(acc);
    const { z, r: rad } = noiseRef(key, [5, NOISE_STREAM_TAG, 0], n);
    const want = Float64Array.from(a, (v, j) => (v + std * z[j]) * scale);
    // f32: log/sin/cos ~1e-6 relative on llvmpipe, u1 rounded to 24 bits (abs 6e-8 → large
    // relative error of r only when r → 0), then one add and one multiply: error ≲ 1e-6 of
    // (|a| + std·|z|)·scale — the terms, not their sum, which can cancel (n = 1 did: 1e-4
    // relative to a near-zero a + std·z); 1e-5 leaves a margin without hiding a wrong coordinate.
    const terms = Float64Array.from(a, (v, j) => (Math.abs(v) + std * Math.abs(z[j])) * scale);
    assertClose(condErr(got, want, terms), 1e-5, `noise n=${n}`, seed);
    const far = [...got.keys()].filter((j) => rad[j] > 0.01);
    const gf = far.map((j) => got[j]), wf = far.map((j) => want[j]);
    assertClose(maxAbsErr(gf, wf), 1e-4 * scale * (1 + std * 10), `noise max n=${n}`, seed);
    rt.release(acc);
  }
});

// ------------------------------------------------------------------ clipping

Deno.test("dp clip: per-unit clipped norms ≤ C(1+1e-5) with 1e6× outliers; small norms untouched", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const C = 0.8;
  const sizes = [130, 7, 1];
  const specs = sizes.map((p, t) => ({ name: `w${t}`, shape: [p] }));
  // Each step holds ONE unit, so the σ = 0 result with q·N = 1 IS that unit's clipped gradient.
  const n = 12;
  const totalNorm = (rec: number, g: Float64Array[][]) =>
    Math.sqrt(g.reduce((s, gt) => s + norm(gt[rec]) ** 2, 0));
  const g0 = makeGrads(n, sizes, r, (rec) => (rec % 3 === 0 ? 1e6 : rec % 3 === 1 ? 1 : 1e-3));
  // Make the "small" ones strictly below C and the middling ones just above or below it.
  const grads = g0.map((gt) => gt.map((row) => row.slice()));
  for (let rec = 0; rec < n; rec++) {
    if (rec % 3 !== 1) continue;
    const target = C * (rec % 2 ? 0.999 : 1.001);
    const f = target / totalNorm(rec, g0);
    grads.forEach((gt) => gt[rec].forEach((v, j, a) => (a[j] = Math.fround(v * f))));
  }
  const dp = new DpStep(rt, {
    params: specs,
    clipping: { kind: "flat", C },
    sigma: 0,
    expectedUnits: 1,
    maxRecords: 4,
  });
  const model = new FakeModel(rt, specs, grads);
  for (let rec = 0; rec < n; rec++) {
    const batch: LogicalBatch = {
      units: Uint32Array.of(rec),
      records: Uint32Array.of(rec),
      unitIndex: Uint32Array.of(0),
    };
    const out = await dp.run(rec, batch, splitMicroBatches(batch, 4), model);
    const got = await rt.readMany(out);
    const gotNorm = Math.sqrt(got.reduce((s, v) => s + norm(v) ** 2, 0));
    const inNorm = totalNorm(rec, grads);
    if (inNorm > C * (1 + 1e-6)) {
      assert.ok(gotNorm <= C * (1 + 1e-5), `rec ${rec}: ${gotNorm} > C (seed ${seed})`);
      assert.ok(gotNorm >= C * (1 - 1e-5), `rec ${rec}: over-clipped ${gotNorm} (seed ${seed})`);
    } else {
      // Factor exactly 1: the output is bit-for-bit the input (σ = 0, scale 1).
      got.forEach((v, t) =>
        assert.deepEqual([...v], [...Float32Array.from(grads[t][rec])], `rec ${rec} changed`)
      );
    }
    model.releaseLive();
  }
  dp.dispose();
});

Deno.test("dp clip: a unit with NaN/Inf gradients is dropped, the update stays finite", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const specs = [{ name: "a", shape: [33] }];
  const grads = makeGrads(3, [33], r, () => 1);
  grads[0][1][4] = NaN;
  grads[0][2][0] = Infinity;
  const dp = new DpStep(rt, {
    params: specs,
    clipping: { kind: "flat", C: 1 },
    sigma: 0,
    expectedUnits: 3,
    maxRecords: 3,
  });
  const batch = batchOfUnits([0, 1, 2]);
  const [out] = await rt.readMany(
    await dp.run(0, batch, splitMicroBatches(batch, 3), new FakeModel(rt, specs, grads)),
  );
  const ref = clippedMeanRef([[grads[0][0]]], [0], [0], [0], [1], 3);
  assertClose(relErr(out, ref.mean[0]), 1e-5, "only the finite unit remains", seed);
  dp.dispose();
});

Deno.test("dp step σ=0: record units, flat clipping, materialized + book-keeping = float64 reference", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const sizes = [1, 33, 130, 7];
  const specs = sizes.map((p, t) => ({ name: `t${t}`, shape: t === 2 ? [10, 13] : [p] }));
  const n = 20;
  const grads = makeGrads(n, sizes, r, (rec) => (rec % 5 === 0 ? 1e6 : 0.05 + r()));
  const C = 1.3, expected = 17.5;
  const dp = new DpStep(rt, {
    params: specs,
    clipping: { kind: "flat", C },
    sigma: 0,
    expectedUnits: expected,
    maxRecords: 7,
  });
  const model = new FakeModel(rt, specs, grads, [false, true, false, true]);
  const batch = batchOfUnits(Array.from({ length: n }, (_, i) => i));
  const micro = splitMicroBatches(batch, 7);
  assert.equal(micro.length, 3);
  const got = await rt.readMany(await dp.run(0, batch, micro, model));
  assert.ok(model.calls.every((c) => c === "single"));
  const ref = clippedMeanRef(
    grads,
    [...batch.unitIndex],
    [...batch.records],
    [0, 0, 0, 0],
    [C],
    expected,
  );
  // f32: norms over ≤ 291 values (~1e-7), factors, sums of ≤ 20 terms: ~1e-6 relative to the
  // summed magnitudes (condErr; the 1-element tensor's mean can cancel to near 0).
  got.forEach((g, t) =>
    assertClose(condErr(g, ref.mean[t], ref.absMean[t]), 1e-5, `tensor ${t}`, seed)
  );
  model.releaseLive();
  dp.dispose();
});

Deno.test("dp step σ=0: per-layer clipping bounds each group by its own C_k", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const sizes = [33, 7, 130];
  const groups = [0, 1, 1];
  const bounds = [0.6, 0.8]; // total C = 1
  const specs = sizes.map((p, t) => ({ name: `t${t}`, shape: [p], group: groups[t] }));
  const n = 9;
  const grads = makeGrads(n, sizes, r, (rec) => (rec % 2 ? 10 : 0.01));
  const dp = new DpStep(rt, {
    params: specs,
    clipping: { kind: "per-layer", bounds },
    sigma: 0,
    expectedUnits: 4.5,
    maxRecords: 4,
  });
  assert.ok(Math.abs(dp.C - 1) < 1e-12);
  const batch = batchOfUnits(Array.from({ length: n }, (_, i) => i));
  const model = new FakeModel(rt, specs, grads);
  const got = await rt.readMany(await dp.run(0, batch, splitMicroBatches(batch, 4), model));
  const ref = clippedMeanRef(grads, [...batch.unitIndex], [...batch.records], groups, bounds, 4.5);
  got.forEach((g, t) =>
    assertClose(condErr(g, ref.mean[t], ref.absMean[t]), 1e-5, `tensor ${t}`, seed)
  );
  model.releaseLive();
  dp.dispose();
});

Deno.test("dp step σ=0: patient units summed-then-clipped, within and across micro-batches", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const sizes = [130, 7];
  const specs = sizes.map((p, t) => ({ name: `t${t}`, shape: [p] }));
  // 6 patients with 1..5 records: 17 records.
  const unitOf = [0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5];
  const n = unitOf.length;
  const grads = makeGrads(n, sizes, r, (rec) => (rec % 4 === 0 ? 1e3 : 0.05));
  const C = 1, expected = 6;
  const batch = batchOfUnits(unitOf);
  const mk = () =>
    new DpStep(rt, {
      params: specs,
      clipping: { kind: "flat", C },
      sigma: 0,
      expectedUnits: expected,
      maxRecords: 5,
    });

  // (a) units kept together: one pass, each unit's norm is exactly ‖Σ_r g_r‖.
  const together = splitMicroBatches(batch, 5);
  assert.ok(together.every((mb) => mb.selfContained));
  const m1 = new FakeModel(rt, specs, grads);
  const dp1 = mk();
  const got1 = await rt.readMany(await dp1.run(0, batch, together, m1));
  assert.ok(m1.calls.every((c) => c === "single"));
  const exact = clippedMeanRef(grads, unitOf, unitOf.map(() => 0), [0, 0], [C], expected);
  got1.forEach((g, t) =>
    assertClose(condErr(g, exact.mean[t], exact.absMean[t]), 1e-5, `together t${t}`, seed)
  );

  // (b) contiguous cut: patients 0, 3, 5 span two micro-batches → two passes, pieces per mb.
  const cut = splitMicroBatches(batch, 5, { keepUnitsTogether: false });
  assert.ok(cut.some((mb) => !mb.selfContained));
  const pieceOf = new Array<number>(n);
  cut.forEach((mb) => mb.records.forEach((rec) => (pieceOf[rec] = mb.index)));
  const m2 = new FakeModel(rt, specs, grads);
  const dp2 = mk();
  const got2 = await rt.readMany(await dp2.run(0, batch, cut, m2));
  assert.deepEqual(m2.calls, [...cut.map(() => "norms"), ...cut.map(() => "sums")]);
  const pieced = clippedMeanRef(grads, unitOf, pieceOf, [0, 0], [C], expected);
  got2.forEach((g, t) =>
    assertClose(condErr(g, pieced.mean[t], pieced.absMean[t]), 1e-5, `spanning t${t}`, seed)
  );

  // (c) book-keeping route on one tensor: only per-record norms exist, so multi-record pieces
  // are bounded per record (Σ_r ‖g_r‖ ≥ ‖Σ_r g_r‖): conservative, never under-clipped.
  const m3 = new FakeModel(rt, specs, grads, [true, false]);
  const dp3 = mk();
  const got3 = await rt.readMany(await dp3.run(0, batch, together, m3));
  const perRecord = clippedMeanRef(grads, unitOf, unitOf.map((_, i) => i), [0, 0], [C], expected);
  got3.forEach((g, t) =>
    assertClose(
      condErr(g, perRecord.mean[t], perRecord.absMean[t]),
      1e-5,
      `bookkeeping t${t}`,
      seed,
    )
  );
  m3.releaseLive();
  dp3.dispose();

  // A spanning micro-batch is refused by the single-pass route (it would under-clip).
  dp2.begin(1, batch.units.length);
  const spanning = cut.find((mb) => !mb.selfContained)!;
  assert.throws(() => dp2.singlePass(spanning, m2.perSample(spanning, "single")), DpConfigError);
  // Records must come grouped by consecutive unit indices (the piece kernels rely on it).
  const gap: MicroBatch = {
    index: 9,
    records: Uint32Array.of(0, 6),
    unitIndex: Uint32Array.of(0, 3),
    selfContained: true,
  };
  assert.throws(() => dp2.singlePass(gap, m2.perSample(gap, "single")), /consecutive/);
  m1.releaseLive();
  m2.releaseLive();
  dp1.dispose();
  dp2.dispose();
});

Deno.test("dp clip: a patient's aligned records are clipped as ONE unit (not per record, not √Σ‖g_r‖²)", async () => {
  const rt = await gpu();
  const C = 1;
  const p = 33;
  const specs = [{ name: "w", shape: [p] }];
  // Three records of one patient, same direction, each of norm 0.8·C: ‖Σ‖ = 2.4·C.
  // Per-record clipping would leave 2.4·C; √(Σ‖g_r‖²) = 1.39·C would leave 1.73·C.
  const dir = Float64Array.from({ length: p }, (_, j) => Math.fround(Math.sin(j + 1)));
  const unit = Float64Array.from(dir, (v) => Math.fround((v / norm(dir)) * 0.8));
  const grads = [[unit, unit, unit]];
  const batch = batchOfUnits([0, 0, 0]);
  for (const split of [splitMicroBatches(batch, 3), splitMicroBatches(batch, 2)]) {
    const dp = new DpStep(rt, {
      params: specs,
      clipping: { kind: "flat", C },
      sigma: 0,
      expectedUnits: 1,
      maxRecords: 3,
    });
    const model = new FakeModel(rt, specs, grads);
    const [out] = await rt.readMany(await dp.run(0, batch, split, model));
    assert.ok(norm(out) <= C * (1 + 1e-5), `‖clipped unit‖ = ${norm(out)} > C`);
    assert.ok(norm(out) >= C * (1 - 1e-5), `aligned unit over-clipped: ${norm(out)}`);
    model.releaseLive();
    dp.dispose();
  }
});

// ------------------------------------------------------------------ noise statistics

/** Kolmogorov–Smirnov statistic of samples against N(0, 1). */
function ksNormal(xs: Float64Array): number {
  const s = Float64Array.from(xs).sort();
  const phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
  let d = 0;
  s.forEach((x, i) => {
    const f = phi(x);
    d = Math.max(d, Math.abs(f - i / s.length), Math.abs((i + 1) / s.length - f));
  });
  return d;
}

/** erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev). */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(
    -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                  t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851413 +
                                  t * (-0.82215223 + t * 0.17087277)))))))),
  );
  return x >= 0 ? 1 - r : r - 1;
}

Deno.test("dp noise: zero gradients → mean 0, variance (σC/qN)², normal (KS), fresh key every step", async () => {
  const rt = await gpu();
  const sigma = 1.3, C = 0.7, expected = 50;
  const specs = [{ name: "big", shape: [100003] }, { name: "small", shape: [7] }];
  const src = recordingSource();
  const mk = (rngSrc: RandomSource) =>
    new DpStep(rt, {
      params: specs,
      clipping: { kind: "flat", C },
      sigma,
      expectedUnits: expected,
      maxRecords: 8,
      rng: rngSrc,
    });
  const dpA = mk(src), dpB = mk(cryptoSource);
  const empty: LogicalBatch = {
    units: new Uint32Array(0),
    records: new Uint32Array(0),
    unitIndex: new Uint32Array(0),
  };
  const noModel = {
    perSample: (): PerSampleGrad[] => assert.fail("empty batch asks the model nothing"),
  };
  const [a1] = await rt.readMany([(await dpA.run(0, empty, [], noModel))[0]]);
  const [a2] = await rt.readMany([(await dpA.run(1, empty, [], noModel))[0]]);
  const [b1] = await rt.readMany([(await dpB.run(0, empty, [], noModel))[0]]);
  const sd = (sigma * C) / expected;
  const n = a1.length;
  for (const [name, x] of [["A step 0", a1], ["A step 1", a2], ["B step 0", b1]] as const) {
    let m = 0;
    for (const v of x) m += v;
    m /= n;
    let v2 = 0;
    for (const v of x) v2 += (v - m) ** 2;
    v2 /= n - 1;
    // 5 standard errors: SE(mean) = sd/√n; SE(var) = sd²·√(2/(n−1)). False alarm < 1e-6 each.
    assert.ok(Math.abs(m) < (5 * sd) / Math.sqrt(n), `${name}: mean ${m}`);
    assert.ok(
      Math.abs(v2 - sd * sd) < 5 * sd * sd * Math.sqrt(2 / (n - 1)),
      `${name}: var ${v2} vs ${sd * sd}`,
    );
    // KS against N(0,1) after standardising: critical value 2.5/√n ⇒ false alarm ≈ 7e-6.
    const d = ksNormal(Float64Array.from(x, (v) => v / sd));
    assert.ok(d < 2.5 / Math.sqrt(n), `${name}: KS D = ${d}`);
  }
  // Two steps, and two instances, must not share noise: equal coordinates happen by chance with
  // probability ~1e-7 each (f32 values of a continuous law); a reused key makes ALL of them equal.
  // Correlation of independent draws: |ρ| < 5/√n.
  for (const [name, x, y] of [["steps", a1, a2], ["instances", a1, b1]] as const) {
    let eq = 0, xy = 0, xx = 0, yy = 0;
    for (let j = 0; j < n; j++) {
      if (x[j] === y[j]) eq++;
      xy += x[j] * y[j];
      xx += x[j] * x[j];
      yy += y[j] * y[j];
    }
    assert.ok(eq < 10, `${name}: ${eq} equal coordinates`);
    assert.ok(Math.abs(xy / Math.sqrt(xx * yy)) < 5 / Math.sqrt(n), `${name}: correlated`);
  }
  // Keys: one 256-bit draw per step from the CSPRNG, different each step.
  assert.equal(src.draws.length, 2);
  assert.ok(src.draws.every((k) => k.length === 8));
  assert.notDeepEqual([...src.draws[0]], [...src.draws[1]]);
  dpA.dispose();
  dpB.dispose();
});

Deno.test("dp step: empty batch is a noise-only update (σ=0 → exactly zero)", async () => {
  const rt = await gpu();
  const specs = [{ name: "w", shape: [33] }];
  const empty = PoissonSampler.prototype.batchOf.call(
    new PoissonSampler(UnitTable.records(5), 0.5),
    new Uint32Array(0),
  );
  const model = { perSample: (): PerSampleGrad[] => assert.fail("no micro-batch") };
  const dp0 = new DpStep(rt, {
    params: specs,
    clipping: { kind: "flat", C: 1 },
    sigma: 0,
    expectedUnits: 2,
    maxRecords: 4,
  });
  // poison the accumulator first: begin() must clear it
  const [poisoned] = await rt.readMany(await dp0.run(0, empty, [], model));
  assert.ok(poisoned.every((v) => v === 0));
  const dp1 = new DpStep(rt, {
    params: specs,
    clipping: { kind: "flat", C: 1 },
    sigma: 2,
    expectedUnits: 2,
    maxRecords: 4,
  });
  const [noisy] = await rt.readMany(await dp1.run(0, empty, [], model));
  assert.ok(noisy.every((v) => Number.isFinite(v)) && noisy.some((v) => v !== 0));
  dp0.dispose();
  dp1.dispose();
});

// ------------------------------------------------------------------ sampling

Deno.test("sampler: inclusion frequency q (binomial bounds), pairwise independence, varying size", () => {
  const nUnits = 2000, q = 0.05, draws = 200;
  const s = new PoissonSampler(UnitTable.records(nUnits), q);
  assert.ok(s.secure);
  let total = 0, both = 0;
  const sizes: number[] = [];
  for (let d = 0; d < draws; d++) {
    const b = s.sample();
    const inBatch = new Uint8Array(nUnits);
    b.units.forEach((u) => (inBatch[u] = 1));
    total += b.units.length;
    sizes.push(b.units.length);
    for (let i = 0; i < nUnits; i += 2) both += inBatch[i] & inBatch[i + 1];
  }
  // Total inclusions ~ Binomial(N·draws, q): within 5 sd (false alarm < 1e-6).
  const trials = nUnits * draws;
  const sd = Math.sqrt(trials * q * (1 - q));
  assert.ok(Math.abs(total - trials * q) < 5 * sd, `inclusions ${total} vs ${trials * q}`);
  // Pairs (2i, 2i+1) both in ~ Binomial(N/2·draws, q²) if independent.
  const pt = (nUnits / 2) * draws;
  const psd = Math.sqrt(pt * q * q * (1 - q * q));
  assert.ok(Math.abs(both - pt * q * q) < 5 * psd, `pairs ${both} vs ${pt * q * q}`);
  // Batch size varies like Binomial(N, q): sample variance within 5 SE of Nq(1−q) = 95.
  // (A shuffled fixed-size batch has variance 0.)
  const mean = sizes.reduce((a, b) => a + b, 0) / draws;
  const v = sizes.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws - 1);
  const want = nUnits * q * (1 - q);
  assert.ok(Math.abs(v - want) < 5 * want * Math.sqrt(2 / (draws - 1)), `size variance ${v}`);
});

Deno.test("sampler: patient units join with all their records, unit indices are step-local", () => {
  const r = rng(freshSeed());
  const patientOf = Array.from({ length: 500 }, () => `p${Math.floor(r() * 120)}`);
  const table = UnitTable.patients(patientOf);
  assert.equal(table.unit, "patient");
  const s = new PoissonSampler(table, 0.3);
  let steps = 0;
  for (let d = 0; d < 50; d++) {
    const b = s.sample();
    const inRecs = new Set(b.records);
    const chosen = new Set([...b.units].map((u) => patientOf[table.records[table.offsets[u]]]));
    patientOf.forEach((p, rec) => assert.equal(inRecs.has(rec), chosen.has(p), `record ${rec}`));
    b.records.forEach((rec, i) => {
      const u = b.units[b.unitIndex[i]];
      assert.equal(patientOf[rec], patientOf[table.records[table.offsets[u]]]);
    });
    steps++;
  }
  assert.equal(steps, 50);
  // Frequency per unit, not per record: P(patient in) = q whatever its record count.
  const counts = new Float64Array(table.numUnits);
  const draws = 400;
  for (let d = 0; d < draws; d++) s.sample().units.forEach((u) => counts[u]++);
  const tot = counts.reduce((a, b) => a + b, 0);
  const trials = table.numUnits * draws;
  assert.ok(Math.abs(tot - trials * 0.3) < 5 * Math.sqrt(trials * 0.21));
});

Deno.test("sampler: micro-batches ≤ P, cover the batch once, flag spanning units", () => {
  const r = rng(freshSeed());
  const patientOf = Array.from(
    { length: 300 },
    (_, i) => Math.floor(i / (1 + Math.floor(r() * 9))),
  );
  const s = new PoissonSampler(UnitTable.patients(patientOf), 0.5, insecureSeedForTests(7));
  for (let d = 0; d < 20; d++) {
    const b = s.sample();
    for (const keep of [true, false]) {
      for (const P of [1, 4, 7]) {
        const mbs = splitMicroBatches(b, P, { keepUnitsTogether: keep });
        const recs = mbs.flatMap((mb) => [...mb.records]);
        assert.deepEqual(recs, [...b.records]);
        for (const mb of mbs) {
          assert.ok(mb.records.length >= 1 && mb.records.length <= P);
          const units = new Set(mb.unitIndex);
          const elsewhere = mbs.some((o) => o !== mb && o.unitIndex.some((u) => units.has(u)));
          assert.equal(mb.selfContained, !elsewhere);
        }
      }
    }
  }
  const empty = s.batchOf(new Uint32Array(0));
  assert.deepEqual(splitMicroBatches(empty, 4), []);
});

Deno.test("csprng: test seed is deterministic and branded insecure; CSPRNG uniforms in [0,1)", () => {
  const a = insecureSeedForTests(42), b = insecureSeedForTests(42);
  assert.equal(a.secure, false);
  assert.deepEqual([...a.fill(new Uint32Array(5))], [...b.fill(new Uint32Array(5))]);
  const t = UnitTable.records(100);
  assert.deepEqual(
    [...new PoissonSampler(t, 0.3, insecureSeedForTests(9)).sample().units],
    [...new PoissonSampler(t, 0.3, insecureSeedForTests(9)).sample().units],
  );
  assert.equal(new PoissonSampler(t, 0.3, insecureSeedForTests(9)).secure, false);
  const u = uniforms53(100000);
  assert.ok(u.every((x) => x >= 0 && x < 1));
  const m = u.reduce((s, x) => s + x, 0) / u.length;
  assert.ok(Math.abs(m - 0.5) < 5 * Math.sqrt(1 / 12 / u.length));
  assert.throws(() => new PoissonSampler(t, 0), DpConfigError);
  assert.throws(() => new PoissonSampler(t, 1.5), DpConfigError);
});

// ------------------------------------------------------------------ ledger

const SETTINGS: StepSettings = {
  q: 0.01,
  sigma: 1.1,
  C: 1,
  unit: "patient",
  epoch: 0,
  rng: "csprng",
};

async function tmpLedger(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dplora-ledger-" });
  return `${dir}/run/privacy/ledger.jsonl`;
}

Deno.test("ledger: appends are on disk at once, resume continues, segments group (q, σ)", async () => {
  const path = await tmpLedger();
  const l1 = await Ledger.open(path);
  assert.equal(l1.nextStep, 0);
  l1.append(SETTINGS);
  l1.append(SETTINGS);
  // Durable before return: a fresh reader (no close) sees both lines, and no batch size field.
  const text = await Deno.readTextFile(path);
  assert.equal(text.split("\n").length, 3);
  assert.ok(!/batch|size|records/i.test(text));
  l1.close();
  const l2 = await Ledger.open(path);
  assert.equal(l2.nextStep, 2);
  l2.append({ ...SETTINGS, sigma: 2 });
  l2.append({ ...SETTINGS, sigma: 2, epoch: 1 });
  assert.deepEqual(l2.segments(), [
    { q: 0.01, sigma: 1.1, steps: 2 },
    { q: 0.01, sigma: 2, steps: 2 },
  ]);
  assert.throws(() => l2.append({ ...SETTINGS, unit: "record" }), LedgerError);
  assert.throws(() => l2.append({ ...SETTINGS, sigma: 0 }), LedgerError);
  l2.close();
  assert.deepEqual((await Ledger.open(path)).entries.map((e) => e.step), [0, 1, 2, 3]);
});

Deno.test("ledger: a crash mid-append (torn last line) still counts the step, and is repaired", async () => {
  const path = await tmpLedger();
  const l = await Ledger.open(path);
  for (let i = 0; i < 3; i++) l.append(SETTINGS);
  l.append({ ...SETTINGS, q: 0.02, sigma: 0.9 });
  l.close();
  const full = await Deno.readTextFile(path);
  const lastStart = full.lastIndexOf("\n", full.length - 2) + 1;
  for (const cutInLine of [1, 12, 30, full.length - lastStart - 1]) {
    await Deno.writeTextFile(path, full.slice(0, lastStart + cutInLine)); // simulated crash
    const re = await Ledger.open(path, { current: SETTINGS });
    assert.equal(re.entries.length, 4, `cut at ${cutInLine}: torn step must count`);
    assert.equal(re.nextStep, 4);
    const last = re.entries[3];
    assert.equal(last.step, 3);
    // Conservative fields: never a smaller q or a larger σ than the torn line or its predecessor.
    assert.ok(last.q >= 0.01 && last.sigma <= 1.1);
    // Repaired on disk: every line parses, ends with a newline; appending continues at 4.
    const fixed = await Deno.readTextFile(path);
    assert.ok(fixed.endsWith("\n"));
    fixed.trim().split("\n").forEach((ln) => JSON.parse(ln));
    re.append(SETTINGS);
    re.close();
    assert.deepEqual((await Ledger.open(path)).entries.map((e) => e.step), [0, 1, 2, 3, 4]);
  }
  // A torn line that is the only line needs the current settings to be counted.
  await Deno.writeTextFile(path, '{"step":0,"q":0.0');
  assert.equal((await Ledger.open(path, { current: SETTINGS })).entries.length, 1);
  await Deno.writeTextFile(path, '{"step":0,"q":0.0');
  await assert.rejects(() => Ledger.open(path), LedgerError);
});

Deno.test("ledger: corruption in the middle or a gap in step indices is a LedgerError naming the line", async () => {
  const path = await tmpLedger();
  const l = await Ledger.open(path);
  for (let i = 0; i < 3; i++) l.append(SETTINGS);
  l.close();
  const lines = (await Deno.readTextFile(path)).trim().split("\n");
  await Deno.writeTextFile(path, [lines[0], "garbage", lines[2]].join("\n") + "\n");
  await assert.rejects(
    () => Ledger.open(path),
    (e) => e instanceof LedgerError && /:2:/.test(e.message),
  );
  await Deno.writeTextFile(path, [lines[0], lines[2]].join("\n") + "\n");
  await assert.rejects(
    () => Ledger.open(path),
    (e) => e instanceof LedgerError && /does not follow/.test(e.message),
  );
});

Deno.test("budget guard: throws PrivacyBudgetError before the step that would exceed ε", async () => {
  const path = await tmpLedger();
  const ledger = await Ledger.open(path);
  // A stand-in monotone ε (the real accountant is injected the same way): ε = Σ steps·q/σ.
  const eps = (segs: readonly LedgerSegment[]) =>
    segs.reduce((a, s) => a + (s.steps * s.q) / s.sigma, 0);
  const guard = new BudgetGuard(eps, 0.05);
  let computed = 0;
  const step = () => {
    guard.check(ledger.segments(), SETTINGS); // before the ledger and before the step
    ledger.append(SETTINGS);
    computed++;
  };
  // Each step costs 0.01/1.1 ≈ 0.00909: 5 steps = 0.04545 ≤ 0.05, a 6th would be 0.0545.
  for (let i = 0; i < 5; i++) step();
  assert.throws(step, (e) => e instanceof PrivacyBudgetError && e.next > 0.05 && e.spent <= 0.05);
  assert.equal(computed, 5);
  assert.equal(ledger.entries.length, 5);
  ledger.close();
  // After resume the guard sees the same history and still refuses.
  const again = await Ledger.open(path);
  assert.throws(() => guard.check(again.segments(), SETTINGS), PrivacyBudgetError);
});
