import assert from "node:assert/strict";
import { meanPoolBackward, meanPoolForward } from "../pipeline/gpu/ops/pooling.ts";
import {
  assertClose,
  finiteDiff,
  freshSeed,
  gpu,
  randArray,
  relErr,
  rng,
  toF32,
} from "./helpers.ts";

/** float64 reference: masked mean over valid tokens. */
function refMeanPool(x: Float64Array, lens: number[], b: number, t: number, h: number) {
  const out = new Float64Array(b * h);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < h; j++) {
      let s = 0;
      for (let k = 0; k < lens[i]; k++) s += x[(i * t + k) * h + j];
      out[i * h + j] = s / lens[i];
    }
  }
  return out;
}

for (const [b, t, h] of [[1, 1, 1], [3, 7, 33], [7, 33, 130], [2, 130, 7]]) {
  Deno.test(`pooling: mean forward/backward vs float64 at B ${b}, T ${t}, H ${h}`, async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const rt = await gpu();
    const lens = Array.from({ length: b }, (_, i) => (i === 0 ? t : 1 + Math.floor(r() * t)));
    const x = toF32(randArray(b * t * h, r));
    // Padding holds NaN: the kernel must never read it.
    const xPoison = Float32Array.from(x);
    for (let i = 0; i < b; i++) {
      for (let k = lens[i]; k < t; k++) xPoison.fill(NaN, (i * t + k) * h, (i * t + k + 1) * h);
    }
    const xg = rt.upload(xPoison, [b, t, h], "x");
    const lg = rt.upload(Uint32Array.from(lens), [b], "lens");
    const out = rt.empty([b, h], "out");
    rt.fill(out, NaN);
    meanPoolForward(rt, xg, lg, out);
    const want = refMeanPool(x, lens, b, t, h);
    // each output is a mean of ≤ T f32 terms: relative error ≲ T·2⁻²⁴ ≈ 1e-5 at T = 130
    assertClose(relErr(await rt.read(out), want), 2e-6 * Math.max(1, t / 8), "mean_pool", seed);

    // backward: the gradient of L = Σ w⊙out, against finite differences of the reference
    const w = toF32(randArray(b * h, r));
    // finite differences at up to 300 random coordinates (padding ones included)
    const idx = Array.from({ length: Math.min(300, b * t * h) }, () => Math.floor(r() * b * t * h));
    const fdAll = finiteDiff(
      (xx) => refMeanPool(xx, lens, b, t, h).reduce((a, v, i) => a + v * w[i], 0),
      Float64Array.from(x),
      idx,
    );
    const fd = idx.map((i) => fdAll[i]);
    const dout = rt.upload(Float32Array.from(w), [b, h], "dout");
    const dx = rt.empty([b, t, h], "dx");
    rt.fill(dx, NaN);
    meanPoolBackward(rt, dout, lg, dx);
    const got = await rt.read(dx);
    // dx = w/len exactly representable up to one rounding; FD error ~1e-10
    assertClose(
      relErr(idx.map((i) => got[i]), fd),
      1e-6,
      "mean_pool_back vs finite differences",
      seed,
    );
    for (let i = 0; i < b; i++) {
      for (let k = lens[i]; k < t; k++) {
        assert.ok(got.subarray((i * t + k) * h, (i * t + k + 1) * h).every((v) => v === 0));
      }
    }
    for (const g of [xg, lg, out, dout, dx]) rt.release(g);
  });
}

Deno.test("pooling: shape errors name the tensor", async () => {
  const rt = await gpu();
  const x = rt.empty([2, 3, 4], "x"), lens = rt.empty([2], "lens", "u32");
  const bad = rt.empty([2, 5], "bad");
  assert.throws(() => meanPoolForward(rt, x, lens, bad), /tensor "out"/);
  assert.throws(
    () => meanPoolForward(rt, x, rt.empty([2], "f", "f32"), rt.empty([2, 4], "o")),
    /"lens"/,
  );
});
