import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import {
  loraBackward,
  loraForward,
  type LoraParams,
  loraPerSampleGrads,
  loraPerSampleSqNorms,
  loraWeightedGrads,
} from "../pipeline/gpu/ops/lora.ts";
import { assertClose, finiteDiff, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import { type RefLora, refLoraBackward, refLoraForward } from "./reference/linalg.ts";

let shared: Promise<Runtime> | null = null;
function gpu(): Promise<Runtime> {
  shared ??= Runtime.create(["matmul.wgsl", "lora.wgsl", "reduce.wgsl"]);
  return shared;
}

// Longest f32 dot product here has K = max(in, out, T·S) ≤ 310 terms, chained through at most
// two GEMMs: error ≲ 2·√K·2⁻²⁴ ≈ 2e-6; tolerance 2e-5 (10× margin).
const TOL = 2e-5;
const [S, T, IN, OUT, R] = [3, 7, 33, 130, 7];

function problem(r: () => number, rows: number): RefLora {
  return {
    x: toF32(randn(rows * IN, r)),
    w: toF32(randn(OUT * IN, r, 0.2)),
    bias: toF32(randn(OUT, r)),
    a: toF32(randn(R * IN, r, 0.2)),
    b: toF32(randn(OUT * R, r, 0.2)),
    scale: 16 / R,
    T: rows,
    dIn: IN,
    dOut: OUT,
    r: R,
  };
}

function upload(rt: Runtime, p: RefLora): { x: GpuTensor; lp: LoraParams } {
  const u = (a: ArrayLike<number>, shape: number[], l: string) =>
    rt.upload(Float32Array.from(a), shape, l);
  return {
    x: u(p.x, [p.T, IN], "x"),
    lp: {
      w: u(p.w, [OUT, IN], "w"),
      bias: u(p.bias, [OUT], "bias"),
      a: u(p.a, [R, IN], "A"),
      b: u(p.b, [OUT, R], "B"),
      scale: p.scale,
    },
  };
}

Deno.test("lora: forward vs float64, output poisoned first", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const rows of [1, 130, 301]) {
    const p = problem(r, rows);
    const { x, lp } = upload(rt, p);
    const y = rt.empty([rows, OUT], "y");
    const h = rt.empty([rows, R], "h");
    rt.fill(y, NaN);
    rt.fill(h, NaN);
    loraForward(rt, x, lp, { y, h });
    assertClose(relErr(await rt.read(y), refLoraForward(p)), TOL, `forward T=${rows}`, seed);
  }
});

Deno.test("lora: backward dX, dA, dB match finite differences of L = Σ w⊙y", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const rows = 33;
  const p = problem(r, rows);
  const wt = toF32(randn(rows * OUT, r));
  const loss = (q: RefLora) => refLoraForward(q).reduce((s, v, i) => s + v * wt[i], 0);
  const { x, lp } = upload(rt, p);
  const { h } = loraForward(rt, x, lp);
  const dy = rt.upload(Float32Array.from(wt), [rows, OUT], "dy");
  const g = loraBackward(rt, x, h, dy, lp);
  const [dx, da, db] = await rt.readMany([g.dx!, g.da, g.db]);
  const fdX = finiteDiff((v) => loss({ ...p, x: v }), Float64Array.from(p.x));
  const fdA = finiteDiff((v) => loss({ ...p, a: v }), Float64Array.from(p.a));
  const fdB = finiteDiff((v) => loss({ ...p, b: v }), Float64Array.from(p.b));
  // Finite differences of the float64 loss are exact to ~1e-9 relative (L is linear in each).
  assertClose(relErr(dx, fdX), TOL, "dX", seed);
  assertClose(relErr(da, fdA), TOL, "dA", seed);
  assertClose(relErr(db, fdB), TOL, "dB", seed);
});

Deno.test("lora: per-sample grads, both norm methods and book-keeping sum vs per-sample runs", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const p = problem(r, S * T);
  const dyAll = toF32(randn(S * T * OUT, r));
  // Sample 1 is shorter: its last 3 rows are padding (dY = 0 there, as masked attention gives).
  for (let t = T - 3; t < T; t++) dyAll.fill(0, (T + t) * OUT, (T + t + 1) * OUT);
  const { x, lp } = upload(rt, p);
  const { h } = loraForward(rt, x, lp);
  const dy = rt.upload(Float32Array.from(dyAll), [S * T, OUT], "dy");
  const { g } = loraBackward(rt, x, h, dy, lp, { needDx: false });
  const acts = {
    x: x.reshape([S, T, IN]),
    h: h.reshape([S, T, R]),
    dy: dy.reshape([S, T, OUT]),
    g: g.reshape([S, T, R]),
    scale: p.scale,
  };
  const coefs = [0.25, 1, 0.6];
  const coef = rt.upload(Float32Array.from(coefs), [S], "coef");
  const per = loraPerSampleGrads(rt, acts);
  const nm = loraPerSampleSqNorms(rt, acts, "materialize");
  const ng = loraPerSampleSqNorms(rt, acts, "ghost");
  const bk = loraWeightedGrads(rt, acts, coef);
  const [da, db, nma, nmb, nga, ngb, bka, bkb] = await rt.readMany([
    per.da,
    per.db,
    nm.a,
    nm.b,
    ng.a,
    ng.b,
    bk.da,
    bk.db,
  ]);
  const sumA = new Float64Array(R * IN);
  const sumB = new Float64Array(OUT * R);
  for (let i = 0; i < S; i++) {
    // Run sample i alone through the float64 reference.
    const alone = {
      ...p,
      T,
      x: Float64Array.from(p.x).subarray(i * T * IN, (i + 1) * T * IN),
    };
    const want = refLoraBackward(alone, dyAll.subarray(i * T * OUT, (i + 1) * T * OUT));
    const gotA = da.subarray(i * R * IN, (i + 1) * R * IN);
    const gotB = db.subarray(i * OUT * R, (i + 1) * OUT * R);
    assertClose(relErr(gotA, want.da), TOL, `dA_${i}`, seed);
    assertClose(relErr(gotB, want.db), TOL, `dB_${i}`, seed);
    const na = want.da.reduce((s, v) => s + v * v, 0);
    const nb = want.db.reduce((s, v) => s + v * v, 0);
    assertClose(Math.abs(nma[i] - na) / na, TOL, `‖dA_${i}‖² materialized`, seed);
    assertClose(Math.abs(nmb[i] - nb) / nb, TOL, `‖dB_${i}‖² materialized`, seed);
    assertClose(Math.abs(nga[i] - na) / na, TOL, `‖dA_${i}‖² ghost`, seed);
    assertClose(Math.abs(ngb[i] - nb) / nb, TOL, `‖dB_${i}‖² ghost`, seed);
    want.da.forEach((v, j) => sumA[j] += coefs[i] * v);
    want.db.forEach((v, j) => sumB[j] += coefs[i] * v);
  }
  assert.ok(nma[0] > 0 && nma[1] !== nma[0], "norms differ per sample");
  assertClose(relErr(bka, sumA), TOL, "Σ c_i dA_i (book-keeping)", seed);
  assertClose(relErr(bkb, sumB), TOL, "Σ c_i dB_i (book-keeping)", seed);
});

Deno.test("lora: mismatched adapter shapes name the tensor", async () => {
  const rt = await gpu();
  const p = problem(rng(1), 7);
  const { x, lp } = upload(rt, p);
  const badB = rt.empty([OUT, R + 1], "lora_B");
  assert.throws(() => loraForward(rt, x, { ...lp, b: badB }), /tensor "b" \(lora_B\)/);
});
