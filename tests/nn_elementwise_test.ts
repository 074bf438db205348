/**
 * Elementwise kernels and activations vs the float64 reference (tests/reference/nn.ts).
 * Tolerances: these ops do O(1) f32 operations per element, so the relative Frobenius error vs
 * float64 (inputs rounded to f32 first) is a few f32 ulps: 2⁻²⁴ ≈ 6e-8 per rounding. GELU adds
 * the erfc fit (1.2e-7 relative) and llvmpipe's exp (a few ulps), hence 1e-6.
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import {
  add,
  axpy,
  dropoutBackward,
  dropoutForward,
  fillValue,
  scale,
  tanhBackward,
  tanhForward,
} from "../pipeline/gpu/ops/elementwise.ts";
import { activationBackward, activationForward } from "../pipeline/gpu/ops/gelu.ts";
import { assertClose, finiteDiff, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import { type Act, act, dact, dropoutKeep, erf } from "./reference/nn.ts";

let shared: Promise<Runtime> | null = null;
/** One device per file, with only this family's shaders (other WIP shaders cannot break it). */
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["elementwise.wgsl", "gelu.wgsl"]);
  return shared;
}

/** ‖got − want‖ / ‖mag‖: error relative to the size of the terms that were summed. */
function termErr(got: ArrayLike<number>, want: ArrayLike<number>, mag: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num += (got[i] - want[i]) ** 2;
    den += Math.max(Math.abs(mag[i]), TAIL) ** 2;
  }
  return Math.sqrt(num) / Math.sqrt(den);
}

/**
 * Activation values and derivatives below 1e-3 in magnitude (the far negative tail, x < −4)
 * are reached through exp() of a large argument, which WGSL only guarantees to 3 + 2|arg| ULP;
 * there the check is on absolute error (≤ tolerance·1e-3), elsewhere it stays relative.
 */
const TAIL = 1e-3;

/** Sum of the absolute values of the terms of act'(x). */
function dmag(x: number, kind: Act): number {
  if (kind === "gelu") {
    return Math.abs(act(x, kind) / (x || 1)) +
      Math.abs(x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  }
  if (kind === "gelu_new") {
    const k = Math.sqrt(2 / Math.PI);
    const t = Math.tanh(k * (x + 0.044715 * x ** 3));
    return 0.5 * (1 + t) + Math.abs(0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x));
  }
  return 1;
}

const SIZES = [1, 7, 33, 130, 1000, 66000];

function poisoned(rt: Runtime, shape: number[], label: string): GpuTensor {
  const t = rt.empty(shape, label);
  rt.fill(t, NaN);
  return t;
}

Deno.test("reference erf matches known values and symmetry", () => {
  // erf(0.5), erf(1), erf(2), erf(3.5) from tables (15+ digits).
  const known: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
  ];
  for (const [x, v] of known) {
    assert.ok(Math.abs(erf(x) - v) < 1e-14, `erf(${x}) = ${erf(x)}`);
    assert.ok(Math.abs(erf(-x) + v) < 1e-14);
  }
});

Deno.test("reference activation and tanh derivatives match finite differences", () => {
  const seed = freshSeed();
  const x = randn(50, rng(seed), 3);
  for (const kind of ["gelu", "gelu_new"] as Act[]) {
    const w = randn(50, rng(seed + 1));
    const f = (z: Float64Array) => z.reduce((s, v, i) => s + w[i] * act(v, kind), 0);
    const fd = finiteDiff(f, x);
    const an = x.map((v, i) => w[i] * dact(v, kind));
    assertClose(relErr(an, fd), 1e-8, `${kind} reference derivative`, seed);
  }
  // tanh' = 1 − tanh², the formula tanh_bwd implements from the saved output.
  const w = randn(50, rng(seed + 2));
  const fd = finiteDiff((z) => z.reduce((s, v, i) => s + w[i] * Math.tanh(v), 0), x);
  const an = x.map((v, i) => w[i] * (1 - Math.tanh(v) ** 2));
  assertClose(relErr(an, fd), 1e-8, "tanh reference derivative", seed);
});

for (const kind of ["gelu", "gelu_new", "relu"] as Act[]) {
  Deno.test(`${kind}: forward and backward vs float64`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    for (const n of SIZES) {
      // scale 4: covers both tails (−12..12) where erf/tanh saturate.
      const x = toF32(randn(n, r, 4));
      const dy = toF32(randn(n, r));
      const xt = rt.upload(Float32Array.from(x), [n], "x");
      const dyt = rt.upload(Float32Array.from(dy), [n], "dy");
      const y = poisoned(rt, [n], "y");
      const dx = poisoned(rt, [n], "dx");
      activationForward(rt, xt, y, kind);
      activationBackward(rt, xt, dyt, dx, kind);
      const [gy, gdx] = await rt.readMany([y, dx]);
      const tol = kind === "relu" ? 0 : 1e-6;
      const want = x.map((v) => act(v, kind));
      assertClose(termErr(gy, want, want), tol, `${kind} forward n=${n}`, seed);
      // gelu' is a sum of terms that cancel near its zero (x ≈ −0.75), so the error is measured
      // against the magnitude of the terms, not of their sum (a single element can be ~0).
      assertClose(
        termErr(
          gdx,
          x.map((v, i) => dy[i] * dact(v, kind)),
          x.map((v, i) => dy[i] * dmag(v, kind)),
        ),
        // gelu_new' goes through e^(−2u): above the TAIL floor (x > −4, |2u| < 11) WGSL's exp
        // allows (3 + 22) ULP ≈ 1.5e-6, plus ~10 f32 roundings of the product rule.
        kind === "relu" ? 0 : kind === "gelu_new" ? 3e-6 : 1e-6,
        `${kind} backward n=${n}`,
        seed,
      );
      [xt, dyt, y, dx].forEach((t) => rt.release(t));
    }
  });
}

Deno.test("gelu: extreme inputs stay finite and saturate", async () => {
  const rt = await nn();
  const xs = Float32Array.from([-1e30, -100, -20, -9, 0, 9, 20, 100, 1e30]);
  for (const kind of ["gelu", "gelu_new"] as Act[]) {
    const x = rt.upload(xs, [xs.length], "x");
    const one = rt.upload(new Float32Array(xs.length).fill(1), [xs.length], "dy");
    const y = poisoned(rt, [xs.length], "y");
    const dx = poisoned(rt, [xs.length], "dx");
    activationForward(rt, x, y, kind);
    activationBackward(rt, x, one, dx, kind);
    const [gy, gd] = await rt.readMany([y, dx]);
    gy.forEach((v, i) => {
      assert.ok(Number.isFinite(v), `${kind}(${xs[i]}) = ${v}`);
      if (xs[i] >= 9) assert.equal(v, xs[i]);
      if (xs[i] <= -20) assert.ok(Math.abs(v) < 1e-30, `${kind}(${xs[i]}) = ${v}`);
    });
    gd.forEach((v, i) => {
      assert.ok(Number.isFinite(v), `${kind}'(${xs[i]}) = ${v}`);
      if (Math.abs(xs[i]) >= 20) assert.equal(v, xs[i] > 0 ? 1 : 0);
    });
    [x, one, y, dx].forEach((t) => rt.release(t));
  }
});

Deno.test("elementwise: add, scale, axpy, fill, tanh vs float64", async () => {
  const rt = await nn();
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of SIZES) {
    const a = toF32(randn(n, r, 3)), b = toF32(randn(n, r)), alpha = Math.fround(r() * 4 - 2);
    const at = rt.upload(Float32Array.from(a), [n], "a");
    const bt = rt.upload(Float32Array.from(b), [n], "b");
    const sum = poisoned(rt, [n], "sum");
    const sc = poisoned(rt, [n], "scaled");
    const ax = rt.upload(Float32Array.from(b), [n], "axpy");
    const fl = poisoned(rt, [n], "fill");
    const th = poisoned(rt, [n], "tanh");
    const dth = poisoned(rt, [n], "dtanh");
    add(rt, at, bt, sum);
    scale(rt, at, alpha, sc);
    axpy(rt, alpha, at, ax);
    fillValue(rt, fl, 0.25);
    tanhForward(rt, at, th);
    tanhBackward(rt, bt, th, dth);
    const [gs, gsc, gax, gfl, gth, gdth] = await rt.readMany([sum, sc, ax, fl, th, dth]);
    // add/scale/fill: one rounding each (≤ 2⁻²⁴ relative per element).
    assertClose(relErr(gs, a.map((v, i) => v + b[i])), 6e-8, `add n=${n}`, seed);
    assertClose(relErr(gsc, a.map((v) => alpha * v)), 6e-8, `scale n=${n}`, seed);
    // axpy may compile to a multiply then an add (two roundings) and b + αa may cancel, so
    // bound each element by 2 ulps of the operands' magnitude rather than of the result.
    for (let i = 0; i < n; i++) {
      const bound = 2 ** -23 * (Math.abs(alpha * a[i]) + Math.abs(b[i]));
      const err = Math.abs(gax[i] - (b[i] + alpha * a[i]));
      assertClose(err, bound, `axpy n=${n} element ${i}`, seed);
    }
    assert.ok(gfl.every((v) => v === 0.25));
    const tref = a.map(Math.tanh);
    assertClose(relErr(gth, tref), 1e-6, `tanh n=${n}`, seed);
    // backward from the GPU's own y, so only the backward arithmetic is measured.
    assertClose(relErr(gdth, b.map((v, i) => v * (1 - gth[i] ** 2))), 1e-6, `dtanh n=${n}`, seed);
    [at, bt, sum, sc, ax, fl, th, dth].forEach((t) => rt.release(t));
  }
});

Deno.test("dropout: mask matches the hash, backward reuses it, keep rate ≈ 1 − p", async () => {
  const rt = await nn();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 100_003, prob = 0.1, dseed = (r() * 2 ** 32) >>> 0;
  const x = toF32(randn(n, r));
  const dy = toF32(randn(n, r));
  const xt = rt.upload(Float32Array.from(x), [n], "x");
  const dyt = rt.upload(Float32Array.from(dy), [n], "dy");
  const y = poisoned(rt, [n], "y"), dx = poisoned(rt, [n], "dx"), y2 = poisoned(rt, [n], "y2");
  dropoutForward(rt, xt, y, prob, dseed);
  dropoutBackward(rt, dyt, dx, prob, dseed);
  dropoutForward(rt, xt, y2, prob, (dseed + 1) >>> 0);
  const [gy, gdx, gy2] = await rt.readMany([y, dx, y2]);
  const s = Math.fround(1 / (1 - prob));
  let kept = 0, same = 0;
  for (let i = 0; i < n; i++) {
    const k = dropoutKeep(i, dseed, prob);
    kept += k ? 1 : 0;
    assert.equal(gy[i], k ? Math.fround(x[i] * s) : 0, `forward element ${i} (seed ${seed})`);
    assert.equal(gdx[i], k ? Math.fround(dy[i] * s) : 0, `backward element ${i} (seed ${seed})`);
    same += (gy2[i] !== 0) === k ? 1 : 0;
  }
  // Binomial(n, 0.9): sd ≈ 95 → 6 sd ≈ 570.
  assert.ok(Math.abs(kept - n * (1 - prob)) < 600, `kept ${kept} of ${n}`);
  // Another seed gives another mask: agreement ≈ 0.9² + 0.1² = 0.82, far from 1.
  assert.ok(same / n < 0.9, `masks for seeds ${dseed} and ${dseed + 1} agree on ${same}`);
  [xt, dyt, y, dx, y2].forEach((t) => rt.release(t));
});

Deno.test("elementwise: shape errors name the tensor", async () => {
  const rt = await nn();
  const a = rt.empty([3, 4], "a"), b = rt.empty([4, 3], "bee");
  assert.throws(() => add(rt, a, b, a), /add: tensor "b" \(bee\)/);
  assert.throws(() => dropoutForward(rt, a, a, 1, 0), RangeError);
  [a, b].forEach((t) => rt.release(t));
});
