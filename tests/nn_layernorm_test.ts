/**
 * LayerNorm kernels vs the float64 reference; the reference backward vs finite differences.
 * Tolerances: each output is a function of two H-term row sums (mean, centred variance) and
 * O(1) more operations; the kernels sum in blocks of 32, so the rounding error is
 * ≤ (32 + H/32)·2⁻²⁴ relative (≈ 4e-6 at H = 1024, far less typically), so 1e-5 relative
 * Frobenius leaves headroom without hiding a wrong formula (a wrong term gives errors ≥ 1e-2).
 * dγ/dβ sum up to 130 rows in blocks of 32: (32 + 130/32)·2⁻²⁴ ≈ 2e-6 relative to the sum of the
 * terms' magnitudes Σ|term|, not to the result: at H = 1 the single dβ is a sum of 130 signed
 * values (plus the prior when accumulating) that can cancel to far below Σ|term|, so those
 * gradients are measured against Σ|term| (`condErr`), with the same 1e-5.
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import { layerNormBackward, layerNormForward } from "../pipeline/gpu/ops/layernorm.ts";
import {
  assertClose,
  condErr,
  finiteDiff,
  freshSeed,
  randn,
  relErr,
  rng,
  toF32,
} from "./helpers.ts";
import { layerNorm, layerNormBackward as refBackward } from "./reference/nn.ts";

/** Per column j (per group of `groupRows` rows when given): Σ_rows |v[r, j]|, plus |prior[j]|. */
function absColumnSums(
  v: Float64Array,
  rows: number,
  h: number,
  groupRows = rows,
  prior?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array((rows / groupRows) * h);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < h; j++) out[Math.floor(r / groupRows) * h + j] += Math.abs(v[r * h + j]);
  }
  if (prior) { for (let j = 0; j < out.length; j++) out[j] += Math.abs(prior[j]); }
  return out;
}

let shared: Promise<Runtime> | null = null;
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["layernorm.wgsl"]);
  return shared;
}

function poisoned(rt: Runtime, shape: number[], label: string): GpuTensor {
  const t = rt.empty(shape, label);
  rt.fill(t, NaN);
  return t;
}

const up = (rt: Runtime, a: Float64Array, shape: number[], label: string) =>
  rt.upload(Float32Array.from(a), shape, label);

Deno.test("reference layernorm backward matches finite differences", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const rows = 4, h = 7, eps = 1e-5, groupRows = 2;
  const x = randn(rows * h, r, 2), g = randn(h, r), b = randn(h, r), w = randn(rows * h, r);
  const loss = (xx: Float64Array, gg: Float64Array, bb: Float64Array) =>
    layerNorm(xx, gg, bb, rows, h, eps).y.reduce((s, v, i) => s + w[i] * v, 0);
  const an = refBackward(x, g, w, rows, h, eps, groupRows);
  assertClose(relErr(an.dx, finiteDiff((z) => loss(z, g, b), x)), 1e-7, "dx", seed);
  // Group gradients: the sum over groups is the gradient of the loss w.r.t. the shared γ, β.
  const sumGroups = (a: Float64Array) => a.slice(0, h).map((v, j) => v + a[h + j]);
  assertClose(relErr(sumGroups(an.dgamma), finiteDiff((z) => loss(x, z, b), g)), 1e-7, "dγ", seed);
  assertClose(relErr(sumGroups(an.dbeta), finiteDiff((z) => loss(x, g, z), b)), 1e-7, "dβ", seed);
  // And each group's gradient is the gradient of that group's rows alone.
  const loss0 = (gg: Float64Array) =>
    layerNorm(x, gg, b, rows, h, eps).y.reduce((s, v, i) => s + (i < 2 * h ? w[i] * v : 0), 0);
  assertClose(relErr(an.dgamma.slice(0, h), finiteDiff(loss0, g)), 1e-7, "dγ group 0", seed);
});

for (const h of [1, 7, 33, 130, 768, 1024]) {
  Deno.test(`layernorm H=${h}: forward, backward, dγ/dβ (write, accumulate, grouped)`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    for (const rows of [1, 7, 130]) {
      const eps = 1e-12 + 1e-5 * r();
      const x = toF32(randn(rows * h, r, 2).map((v) => v + 1.5));
      const g = toF32(randn(h, r).map((v) => 1 + 0.2 * v)), b = toF32(randn(h, r, 0.3));
      const dy = toF32(randn(rows * h, r));
      const xt = up(rt, x, [rows, h], "x"), gt = up(rt, g, [h], "gamma");
      const bt = up(rt, b, [h], "beta"), dyt = up(rt, dy, [rows, h], "dy");
      const y = poisoned(rt, [rows, h], "y"), mean = poisoned(rt, [rows], "mean");
      const rstd = poisoned(rt, [rows], "rstd"), dx = poisoned(rt, [rows, h], "dx");
      const dg = poisoned(rt, [h], "dgamma"), db = poisoned(rt, [h], "dbeta");
      const prior = toF32(randn(2 * h, r));
      const dgAcc = up(rt, prior.slice(0, h), [h], "dgamma acc");
      const dbAcc = up(rt, prior.slice(h), [h], "dbeta acc");
      const groupRows = rows === 130 ? 13 : 1;
      const dgG = poisoned(rt, [rows / groupRows, h], "dgamma groups");
      const dbG = poisoned(rt, [rows / groupRows, h], "dbeta groups");
      layerNormForward(rt, { x: xt, gamma: gt, beta: bt, y, mean, rstd, eps });
      const common = { x: xt, gamma: gt, mean, rstd, dy: dyt, dx };
      layerNormBackward(rt, { ...common, dgamma: dg, dbeta: db });
      layerNormBackward(rt, { ...common, dgamma: dgAcc, dbeta: dbAcc, accumulate: true });
      layerNormBackward(rt, { ...common, dgamma: dgG, dbeta: dbG, groupRows });
      const out = await rt.readMany([y, mean, rstd, dx, dg, db, dgAcc, dbAcc, dgG, dbG]);
      const ref = layerNorm(x, g, b, rows, h, eps);
      const bw = refBackward(x, g, dy, rows, h, eps);
      const bwG = refBackward(x, g, dy, rows, h, eps, groupRows);
      const at = `rows=${rows} H=${h}`;
      assertClose(relErr(out[0], ref.y), 1e-5, `y ${at}`, seed);
      assertClose(relErr(out[1], ref.mean), 1e-5, `mean ${at}`, seed);
      assertClose(relErr(out[2], ref.rstd), 1e-5, `rstd ${at}`, seed);
      if (h === 1) {
        // Mathematically 0 (the output does not depend on x). Exact 0 needs IEEE division; WGSL
        // allows 2.5 ULP and GPUs contract to FMA, so bound it by the f32 rounding of the terms.
        const rs0 = out[2] as Float32Array, dx0 = out[3] as Float32Array;
        const bound = rs0.reduce((a, rs, i) => Math.max(a, rs * Math.abs(dy[i] * g[0])), 0);
        const worst = dx0.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        assert.ok(worst <= 1e-5 * bound, `H=1: dx must be ~0, got ${worst} (seed ${seed})`);
      } else assertClose(relErr(out[3], bw.dx), 1e-5, `dx ${at}`, seed);
      // The terms of dγ[j] are dy·x̂, of dβ[j] dy: their magnitudes bound the summation error.
      const gTerms = dy.map((v, i) =>
        v * (x[i] - ref.mean[Math.floor(i / h)]) * ref.rstd[Math.floor(i / h)]
      );
      const sG = absColumnSums(gTerms, rows, h), sB = absColumnSums(dy, rows, h);
      assertClose(condErr(out[4], bw.dgamma, sG), 1e-5, `dγ ${at}`, seed);
      assertClose(condErr(out[5], bw.dbeta, sB), 1e-5, `dβ ${at}`, seed);
      const accG = bw.dgamma.map((v, j) => v + prior[j]);
      const accB = bw.dbeta.map((v, j) => v + prior[h + j]);
      const sGacc = absColumnSums(gTerms, rows, h, rows, prior.slice(0, h));
      const sBacc = absColumnSums(dy, rows, h, rows, prior.slice(h));
      assertClose(condErr(out[6], accG, sGacc), 1e-5, `dγ accumulated ${at}`, seed);
      assertClose(condErr(out[7], accB, sBacc), 1e-5, `dβ accumulated ${at}`, seed);
      const sGg = absColumnSums(gTerms, rows, h, groupRows);
      const sBg = absColumnSums(dy, rows, h, groupRows);
      assertClose(condErr(out[8], bwG.dgamma, sGg), 1e-5, `dγ grouped ${at}`, seed);
      assertClose(condErr(out[9], bwG.dbeta, sBg), 1e-5, `dβ grouped ${at}`, seed);
      [xt, gt, bt, dyt, y, mean, rstd, dx, dg, db, dgAcc, dbAcc, dgG, dbG].forEach((t) =>
        rt.release(t)
      );
    }
  });
}

Deno.test("layernorm: shape errors name the tensor", async () => {
  const rt = await nn();
  const x = rt.empty([4, 8], "x"), g = rt.empty([8], "g"), m = rt.empty([3], "m-wrong");
  assert.throws(
    () => layerNormForward(rt, { x, gamma: g, beta: g, y: x, mean: m, rstd: m, eps: 1e-5 }),
    /tensor "mean" \(m-wrong\)/,
  );
  const dg = rt.empty([8], "dg");
  assert.throws(
    () =>
      layerNormBackward(rt, {
        x,
        gamma: g,
        mean: m,
        rstd: m,
        dy: x,
        dx: x,
        dgamma: dg,
        dbeta: dg,
        groupRows: 3,
      }),
    /mean|groupRows/,
  );
  [x, g, m, dg].forEach((t) => rt.release(t));
});
