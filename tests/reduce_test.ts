import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import { ShapeError } from "../pipeline/gpu/errors.ts";
import { colSum, rowDot, rowSumSq, segmentSum, sumAll } from "../pipeline/gpu/ops/reduce.ts";
import {
  assertClose,
  condErr,
  finiteDiff,
  freshSeed,
  gammaF32,
  randn,
  relErr,
  rng,
  toF32,
} from "./helpers.ts";
import { refColSum, refMatmul, refRowDot, refRowSumSq, refSegmentSum } from "./reference/linalg.ts";

let shared: Promise<Runtime> | null = null;
function gpu(): Promise<Runtime> {
  shared ??= Runtime.create(["reduce.wgsl"]);
  return shared;
}

// An n-term f32 sum has relative error ≤ n·2⁻²⁴ worst case, ~√n·2⁻²⁴ typically; sums of
// squares have no cancellation. 1e-6·√n (16× the typical bound) catches any wrong index.
// Signed sums (rowDot, colSum) can cancel: a [130, 1] colSum is one number that may land near 0,
// so they are measured against Σ|term| (condErr) with the worst-case bound γ_n, never spurious.
const tolN = (n: number) => 1e-6 * Math.sqrt(Math.max(n, 1));
const SHAPES: [number, number][] = [[1, 1], [7, 33], [33, 7], [130, 1], [1, 130], [301, 67]];

Deno.test("reduce: rowSumSq, rowDot, colSum (+accumulate) at awkward shapes vs float64", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [R, C] of SHAPES) {
    const x = toF32(randn(R * C, r));
    const y = toF32(randn(R * C, r));
    const c0 = toF32(randn(C, r));
    const tx = rt.upload(Float32Array.from(x), [R, C], "x");
    const ty = rt.upload(Float32Array.from(y), [R, C], "y");
    const o1 = rt.empty([R], "sumsq");
    const o2 = rt.empty([R], "dot");
    const o3 = rt.empty([C], "colsum");
    const o4 = rt.upload(Float32Array.from(c0), [C], "colsum.acc");
    for (const o of [o1, o2, o3]) rt.fill(o, NaN);
    rowSumSq(rt, tx, o1);
    rowDot(rt, tx, ty, o2);
    colSum(rt, tx, { out: o3 });
    colSum(rt, tx, { out: o4, accumulate: true });
    const [g1, g2, g3, g4] = await rt.readMany([o1, o2, o3, o4]);
    assertClose(relErr(g1, refRowSumSq(x, R, C)), tolN(C), `rowSumSq ${R}x${C}`, seed);
    const ax = x.map(Math.abs);
    const dotScale = refRowDot(ax, y.map(Math.abs), R, C);
    assertClose(
      condErr(g2, refRowDot(x, y, R, C), dotScale),
      gammaF32(C),
      `rowDot ${R}x${C}`,
      seed,
    );
    const cs = refColSum(x, R, C), csScale = refColSum(ax, R, C);
    assertClose(condErr(g3, cs, csScale), gammaF32(R), `colSum ${R}x${C}`, seed);
    assertClose(
      condErr(g4, cs.map((v, i) => v + c0[i]), csScale.map((v, i) => v + Math.abs(c0[i]))),
      gammaF32(R + 1),
      `colSum acc ${R}x${C}`,
      seed,
    );
    for (const t of [tx, ty, o1, o2, o3, o4]) rt.release(t);
  }
});

Deno.test("reduce: segmentSum over variable-length samples (incl. empty) and sumAll", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const lengths = [3, 0, 1, 130, 7, 33, 0, 160]; // 334 rows
  const offsets = [0];
  for (const l of lengths) offsets.push(offsets[offsets.length - 1] + l);
  const R = offsets[offsets.length - 1];
  for (const C of [1, 7]) {
    const x = toF32(randn(R * C, r));
    const tx = rt.upload(Float32Array.from(x), [R, C], "x");
    const toff = rt.upload(Uint32Array.from(offsets), [offsets.length], "offsets");
    const o = rt.empty([lengths.length, C], "seg");
    rt.fill(o, NaN);
    segmentSum(rt, tx, toff, { out: o, hostOffsets: offsets });
    const total = rt.empty([1], "total");
    rt.fill(total, NaN);
    sumAll(rt, tx, total);
    const [g, t] = await rt.readMany([o, total]);
    const want = refSegmentSum(x, offsets, C);
    assertClose(relErr(g, want), tolN(160), `segmentSum C=${C}`, seed);
    assert.equal(g[1 * C], 0, "an empty sample sums to exactly 0");
    const wantT = x.reduce((s, v) => s + v, 0);
    // Absolute bound: n terms of |x| ≲ 4 each, error ≤ n·2⁻²⁴·Σ|x| worst case.
    const absSum = x.reduce((s, v) => s + Math.abs(v), 0);
    assertClose(Math.abs(t[0] - wantT) / absSum, 1e-6, `sumAll C=${C}`, seed);
    for (const tt of [tx, toff, o, total]) rt.release(tt);
  }
});

Deno.test("reduce: bias gradient = colSum(dY) matches finite differences of Σ w⊙(x·Wᵀ+b)", async () => {
  const rt = await gpu();
  const seed = freshSeed();
  const r = rng(seed);
  const [T, I, O] = [33, 7, 130];
  const x = toF32(randn(T * I, r));
  const w = toF32(randn(O * I, r));
  const wt = toF32(randn(T * O, r));
  const loss = (b: Float64Array) => {
    const y = refMatmul(x, w, T, O, I, { transB: true, bias: b });
    return y.reduce((s, v, i) => s + v * wt[i], 0);
  };
  const fd = finiteDiff(loss, toF32(randn(O, r)));
  const g = rt.upload(Float32Array.from(wt), [T, O], "dy");
  const db = rt.empty([O], "db");
  rt.fill(db, NaN);
  colSum(rt, g, { out: db });
  assertClose(relErr(await rt.read(db), fd), 1e-5, "db vs finite differences", seed);
  rt.release(g);
  rt.release(db);
});

Deno.test("reduce: bad shapes and unsorted offsets are rejected with the tensor's name", async () => {
  const rt = await gpu();
  const x = rt.empty([4, 3], "acts");
  const off = rt.upload(Uint32Array.from([0, 3, 2]), [3], "offs");
  assert.throws(() => segmentSum(rt, x, off, { hostOffsets: [0, 3, 2] }), /offsets\[2\]/);
  assert.throws(() => rowDot(rt, x, rt.empty([3, 4], "other")), /tensor "y" \(other\)/);
  assert.throws(() => colSum(rt, x, { accumulate: true }), ShapeError);
  assert.throws(() => rowSumSq(rt, rt.empty([12], "flat")), /tensor "x" \(flat\)/);
});
