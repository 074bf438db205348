/**
 * Loss kernels vs the float64 reference, on logits spanning ±60 (saturated sigmoid/softmax).
 * Tolerances: each per-sample loss is a sum of non-negative terms, each a few f32 operations
 * (exp, log1p: a few ulps), and the gradients are computed without cancellation for 0/1
 * targets (see loss.wgsl), so 1e-6 relative Frobenius (≈ 16 ulps) for both; a wrong formula
 * or a mask leak gives ≥ 1e-3. Per-sample sums have ≤ 130 terms: ≤ 130·2⁻²⁴ ≈ 8e-6 worst case,
 * hence 1e-5 for the 130-label/class cases.
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import { bceWithLogits, crossEntropy, IGNORE_LABEL } from "../pipeline/gpu/ops/loss.ts";
import { assertClose, finiteDiff, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import { bceWithLogits as refBce, crossEntropy as refCe } from "./reference/nn.ts";

let shared: Promise<Runtime> | null = null;
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["loss.wgsl"]);
  return shared;
}

function poisoned(rt: Runtime, shape: number[], label: string): GpuTensor {
  const t = rt.empty(shape, label);
  rt.fill(t, NaN);
  return t;
}

const up = (rt: Runtime, a: ArrayLike<number>, shape: number[], label: string) =>
  rt.upload(Float32Array.from(a), shape, label);

/** Logits: mostly N(0, 3²), some saturated (±60). */
function logits(n: number, r: () => number): Float64Array {
  return toF32(randn(n, r, 3).map((v) => (r() < 0.1 ? Math.sign(v) * 60 : v)));
}

Deno.test("reference loss gradients match finite differences", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const b = 3, l = 5, scale = 0.5;
  const x = randn(b * l, r, 2), y = Float64Array.from({ length: b * l }, () => (r() < 0.5 ? 1 : 0));
  const m = Float64Array.from({ length: b * l }, () => (r() < 0.7 ? 1 : 0));
  const bce = (z: Float64Array) =>
    scale * refBce(z, y, m, b, l, scale).loss.reduce((s, v) => s + v, 0);
  assertClose(relErr(refBce(x, y, m, b, l, scale).dx, finiteDiff(bce, x)), 1e-8, "bce", seed);
  const labels = [2, IGNORE_LABEL, 0];
  const ce = (z: Float64Array) =>
    scale * refCe(z, labels, b, l, scale).loss.reduce((s, v) => s + v, 0);
  assertClose(relErr(refCe(x, labels, b, l, scale).dx, finiteDiff(ce, x)), 1e-8, "ce", seed);
});

for (const [b, l] of [[1, 1], [7, 14], [33, 7], [130, 130]]) {
  Deno.test(`bce B=${b} L=${l}: per-sample loss, masked gradient`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    const n = b * l, scale = Math.fround(1 / b);
    const x = logits(n, r);
    const y = Float64Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
    const m = Float64Array.from({ length: n }, () => (r() < 0.75 ? 1 : 0));
    // Masked labels carry garbage (NaN logit, target 7): they must not reach loss or gradient.
    const xg = Float32Array.from(x), yg = Float32Array.from(y);
    m.forEach((v, i) => {
      if (!v) [xg[i], yg[i]] = [NaN, 7];
    });
    const xt = up(rt, xg, [b, l], "logits"), yt = up(rt, yg, [b, l], "targets");
    const mt = up(rt, m, [b, l], "mask");
    const loss = poisoned(rt, [b], "loss"), dx = poisoned(rt, [b, l], "dlogits");
    bceWithLogits(rt, { logits: xt, targets: yt, mask: mt, loss, dlogits: dx, scale });
    const [gl, gd] = await rt.readMany([loss, dx]);
    const ref = refBce(x, y, m, b, l, scale);
    // WGSL guarantees log() to 2⁻²¹ absolute on [0.5, 2] (where log1p(e^−|x|) is evaluated) and
    // exp() to 3 + 2|x| ULP: a per-label absolute error ≈ 5e-7, i.e. up to ~2e-6 relative to a
    // loss of ~0.3 (lavapipe's libm is tighter; a GPU's is not).
    const tol = l > 100 ? 1e-5 : 4e-6;
    // WGSL guarantees log() only to 2⁻²¹ absolute on [0.5, 2] (where log1p(e^−|x|) is taken)
    // and exp() to 3 + 2|x| ULP. So per-sample losses are compared on absolute error where they
    // are below 0.125 (2⁻²¹ / 4e-6) and relatively above; dlogits = σ(∓|x|) − y inherit exp's
    // relative bound at the widest unmasked |x|.
    const lossErr = Math.hypot(...[...gl].map((v, i) => v - ref.loss[i])) /
      Math.hypot(...[...ref.loss].map((v) => Math.max(Math.abs(v), 0.125)));
    assertClose(lossErr, tol, `bce loss B=${b} L=${l}`, seed);
    const widest = x.reduce((w, v, i) => (m[i] ? Math.max(w, Math.abs(v)) : w), 0);
    const tolD = Math.max(1e-6, (3 + 2 * widest) * 2 ** -23);
    assertClose(relErr(gd, ref.dx), tolD, `bce dlogits B=${b} L=${l}`, seed);
    m.forEach((v, i) => {
      if (!v) assert.equal(gd[i], 0, `masked label ${i} has gradient ${gd[i]} (seed ${seed})`);
    });
    [xt, yt, mt, loss, dx].forEach((t) => rt.release(t));
  });
}

for (const [b, k] of [[1, 1], [7, 7], [33, 130], [5, 3001]]) {
  Deno.test(`cross-entropy B=${b} K=${k}: per-sample loss, ignored samples`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    const x = logits(b * k, r);
    const labels = Uint32Array.from(
      { length: b },
      (_, i) => i === 1 ? IGNORE_LABEL : Math.floor(r() * k),
    );
    // A confidently right sample (label logit +60 above the rest) exercises the log1p path.
    if (b > 2) x[2 * k + labels[2]] = Math.max(...x.slice(2 * k, 3 * k)) + 60;
    const scale = 1;
    const xt = up(rt, x, [b, k], "logits"), lt = rt.upload(labels, [b], "labels");
    const loss = poisoned(rt, [b], "loss"), dx = poisoned(rt, [b, k], "dlogits");
    crossEntropy(rt, { logits: xt, labels: lt, loss, dlogits: dx, scale });
    const [gl, gd] = await rt.readMany([loss, dx]);
    const ref = refCe(x, labels, b, k, scale);
    const tol = k > 100 ? 1e-5 : 1e-6;
    if (k === 1) assert.ok(gl.every((v) => v === 0) && gd.every((v) => v === 0), "K=1: all zero");
    else {
      assertClose(relErr(gl, ref.loss), tol, `ce loss B=${b} K=${k}`, seed);
      assertClose(relErr(gd, ref.dx), tol, `ce dlogits B=${b} K=${k}`, seed);
    }
    if (b > 1) {
      assert.equal(gl[1], 0);
      assert.ok(gd.slice(k, 2 * k).every((v) => v === 0), "ignored sample has zero gradient");
    }
    if (b > 2) {
      // loss = log1p(Σ_other e^(x_k − x_label)) with gaps ≥ 60: its relative accuracy is that of
      // WGSL's exp at the gap (3 + 2|gap| ULP). Below f32's normal range (~1e-38; GPUs flush
      // subnormals) it can only be 0.
      const row = x.slice(2 * k, 3 * k), xl = row[labels[2]];
      const gap = xl - Math.max(...row.filter((_, j) => j !== labels[2]));
      if (ref.loss[2] < 1e-36) assert.ok(gl[2] >= 0 && gl[2] < 1e-36, `tiny loss ${gl[2]}`);
      else {
        const tolTiny = (3 + 2 * gap) * 2 ** -23 + 1e-6;
        assertClose(Math.abs(gl[2] - ref.loss[2]) / ref.loss[2], tolTiny, "tiny loss", seed);
      }
    }
    [xt, lt, loss, dx].forEach((t) => rt.release(t));
  });
}

Deno.test("cross-entropy: a label outside the classes gives NaN loss", async () => {
  const rt = await nn();
  const x = rt.upload(new Float32Array(6), [2, 3], "logits");
  const lab = rt.upload(Uint32Array.from([1, 3]), [2], "labels");
  const loss = poisoned(rt, [2], "loss"), dx = poisoned(rt, [2, 3], "dx");
  crossEntropy(rt, { logits: x, labels: lab, loss, dlogits: dx, scale: 1 });
  const l = await rt.read(loss);
  assert.ok(Math.abs(l[0] - Math.log(3)) < 1e-6);
  assert.ok(Number.isNaN(l[1]));
  assert.throws(
    () => bceWithLogits(rt, { logits: x, targets: x, mask: dx, loss: x, dlogits: dx, scale: 1 }),
    /tensor "loss" \(logits\)/,
  );
  [x, lab, loss, dx].forEach((t) => rt.release(t));
});
