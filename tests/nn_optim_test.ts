/**
 * AdamW and SGD steps vs the float64 reference (PyTorch formulas), over several steps.
 * Tolerances: each element does ~12 f32 operations per step (sqrt and division correctly
 * rounded or within 1-3 ulps), so parameters and moments agree to ~1e-6 relative after three
 * steps. The update Δp itself is checked too (tolerance 5e-5: the final p − Δp rounds to
 * 2⁻²⁴·|p| ≈ 6e-8 while |Δp| ≈ lr = 1e-2 → ≤ 6e-6, plus moment rounding), which is what
 * catches a wrong bias correction or decay (errors ≥ 1e-3 of Δp).
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import { adamwStep, sgdStep } from "../pipeline/gpu/ops/adamw.ts";
import { assertClose, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import { adamw, sgd } from "./reference/nn.ts";

let shared: Promise<Runtime> | null = null;
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["adamw.wgsl"]);
  return shared;
}

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));

const up = (rt: Runtime, a: ArrayLike<number>, label: string) =>
  rt.upload(Float32Array.from(a), [a.length], label);

for (const n of [1, 7, 33, 130, 100_003]) {
  Deno.test(`adamw n=${n}: three steps vs float64 (params, moments, update)`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    const p0 = toF32(randn(n, r)), p = Float64Array.from(p0);
    const m = new Float64Array(n), v = new Float64Array(n), mag = new Float64Array(n);
    const pt = up(rt, p0, "param"), mt = rt.zeros([n], "m"), vt = rt.zeros([n], "v");
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradScale: 0.25 };
    let before = Float64Array.from(p0);
    for (let step = 1; step <= 3; step++) {
      const g = toF32(randn(n, r, 2));
      const gt = up(rt, g, "grad");
      adamwStep(rt, { param: pt, grad: gt, m: mt, v: vt }, { ...h, step });
      adamw(p, g, m, v, { ...h, step });
      const [gp, gm, gv] = await rt.readMany([pt, mt, vt]);
      const at = `n=${n} step ${step}`;
      assertClose(relErr(gp, p), 1e-6, `param ${at}`, seed);
      // m = β1·m + (1 − β1)·g can cancel: error relative to the size of its terms.
      mag.forEach((x, i) => (mag[i] = h.beta1 * x + (1 - h.beta1) * Math.abs(g[i] * h.gradScale)));
      assertClose(relErr(gm, m) * norm(m) / norm(mag), 1e-6, `m ${at}`, seed);
      assertClose(relErr(gv, v), 1e-6, `v ${at}`, seed);
      // The update, from the GPU's own previous params and new moments, element by element:
      // allowed error = three roundings at the scale of p (p·(1 − lr·wd), the f32 constant
      // 1 − lr·wd, p − step: ≤ 3·2⁻²⁴·|p| < 2⁻²²·|p|) + 1e-5 of the step (m/√v arithmetic).
      const bc1 = 1 - h.beta1 ** step, bc2 = 1 - h.beta2 ** step;
      for (let i = 0; i < n; i++) {
        const dRef = -h.lr * h.weightDecay * before[i] -
          (h.lr / bc1) * gm[i] / (Math.sqrt(gv[i]) / Math.sqrt(bc2) + h.eps);
        const err = Math.abs(gp[i] - before[i] - dRef);
        assertClose(
          err,
          2 ** -22 * Math.abs(gp[i]) + 1e-5 * Math.abs(dRef),
          `Δp[${i}] ${at}`,
          seed,
        );
      }
      before = Float64Array.from(gp);
      rt.release(gt);
    }
    [pt, mt, vt].forEach((t) => rt.release(t));
  });
}

for (const momentum of [0, 0.9]) {
  Deno.test(`sgd momentum=${momentum}: three steps vs float64`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    for (const n of [1, 33, 1000]) {
      const p0 = toF32(randn(n, r)), p = Float64Array.from(p0);
      const buf = momentum ? new Float64Array(n) : null;
      const mag = new Float64Array(n); // Σ of |terms| of the momentum buffer
      const pt = up(rt, p0, "param"), bt = rt.zeros([n], "buf");
      const h = { lr: 0.05, momentum, weightDecay: 0.1, gradScale: 0.5 };
      for (let step = 1; step <= 3; step++) {
        const g = toF32(randn(n, r));
        const gt = up(rt, g, "grad");
        sgdStep(rt, pt, gt, h, bt);
        mag.forEach((
          x,
          i,
        ) => (mag[i] = momentum * x + Math.abs(g[i] * h.gradScale) +
          Math.abs(h.weightDecay * p[i]))
        );
        sgd(p, g, buf, h);
        rt.release(gt);
      }
      const [gp, gb] = await rt.readMany([pt, bt]);
      assertClose(relErr(gp, p), 1e-6, `sgd n=${n}`, seed);
      // The buffer sums terms that can cancel: error relative to the size of those terms.
      if (buf) {
        assertClose(relErr(gb, buf) * norm(buf) / norm(mag), 1e-6, `sgd buffer n=${n}`, seed);
      } else assert.ok(gb.every((x) => x === 0), "plain SGD must not touch the buffer");
      [pt, bt].forEach((t) => rt.release(t));
    }
  });
}

Deno.test("optimizers: bad hyper-parameters and shapes are rejected", async () => {
  const rt = await nn();
  const a = rt.zeros([4], "a"), b = rt.zeros([5], "bee");
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 0 };
  assert.throws(() => adamwStep(rt, { param: a, grad: a, m: a, v: a }, h), /step 0/);
  assert.throws(
    () => adamwStep(rt, { param: a, grad: b, m: a, v: a }, { ...h, step: 1 }),
    /"grad" \(bee\)/,
  );
  assert.throws(() => sgdStep(rt, a, a, { lr: 0.1, momentum: 0.9 }), /momentumBuffer/);
  [a, b].forEach((t) => rt.release(t));
});
