/**
 * Attention and row softmax vs the float64 reference; the reference backward vs finite
 * differences. Tolerances: a score is a dh-term f32 dot product (≤ dh·2⁻²⁴ relative to
 * Σ|q||k|, ≈ 1e-6 at dh = 128); softmax and P·V add T-term sums (T ≤ 130 here → ≤ 8e-6
 * worst case, ~1e-6 typical for random signs). 2e-5 relative Frobenius covers that with margin
 * while a wrong mask, scale or transposition gives errors ≥ 1e-2. The backward's dS subtracts
 * Σ P·dP from dP (cancellation), hence 5e-5 for dQ/dK (measured ≈ 1e-6).
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import {
  attentionBackward,
  attentionForward,
  type KeyMask,
  softmaxBackward,
  softmaxForward,
} from "../pipeline/gpu/ops/attention.ts";
import { assertClose, finiteDiff, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import {
  attention,
  attentionBackward as refBackward,
  type AttnShape,
  softmaxRows,
  softmaxRowsBackward,
} from "./reference/nn.ts";

let shared: Promise<Runtime> | null = null;
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["attention.wgsl"]);
  return shared;
}

function poisoned(rt: Runtime, shape: number[], label: string): GpuTensor {
  const t = rt.empty(shape, label);
  rt.fill(t, NaN);
  return t;
}

const up = (rt: Runtime, a: ArrayLike<number>, shape: number[], label: string) =>
  rt.upload(Float32Array.from(a), shape, label);

Deno.test("reference attention backward matches finite differences (with padding)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const s: AttnShape = { b: 2, t: 5, nh: 2, dh: 3 };
  const n = s.b * s.t * s.nh * s.dh;
  const q = randn(n, r), k = randn(n, r), v = randn(n, r), w = randn(n, r);
  const valid = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1];
  const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) =>
    attention(qq, kk, vv, valid, s).out.reduce((acc, x, i) => acc + w[i] * x, 0);
  const { p } = attention(q, k, v, valid, s);
  const g = refBackward(q, k, v, p, w, s);
  assertClose(relErr(g.dq, finiteDiff((z) => loss(z, k, v), q)), 1e-7, "dQ", seed);
  assertClose(relErr(g.dk, finiteDiff((z) => loss(q, z, v), k)), 1e-7, "dK", seed);
  assertClose(relErr(g.dv, finiteDiff((z) => loss(q, k, z), v)), 1e-7, "dV", seed);
});

interface Case extends AttnShape {
  kind: "lengths" | "keyMask";
}

const CASES: Case[] = [
  { b: 1, t: 1, nh: 1, dh: 1, kind: "lengths" },
  { b: 3, t: 7, nh: 3, dh: 5, kind: "lengths" },
  { b: 2, t: 33, nh: 2, dh: 7, kind: "keyMask" },
  { b: 3, t: 130, nh: 2, dh: 33, kind: "lengths" },
  { b: 2, t: 70, nh: 1, dh: 128, kind: "keyMask" },
  // dh % 4 == 0 fast path (8-row blocks): T not a multiple of 8, both mask kinds.
  { b: 1, t: 1, nh: 1, dh: 4, kind: "keyMask" },
  { b: 3, t: 33, nh: 3, dh: 4, kind: "lengths" },
  { b: 2, t: 130, nh: 2, dh: 64, kind: "keyMask" },
  { b: 3, t: 13, nh: 2, dh: 128, kind: "lengths" },
  { b: 2, t: 512, nh: 1, dh: 64, kind: "lengths" }, // the longest supported sequence
];

for (const c of CASES) {
  const name = `attention B=${c.b} T=${c.t} nh=${c.nh} dh=${c.dh} (${c.kind})`;
  Deno.test(`${name}: forward and backward vs float64`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    const C = c.nh * c.dh, n = c.b * c.t * C;
    // Sample 0 has length 0 (every key masked) when B > 1; the others random lengths ≥ 1.
    const valid = new Uint32Array(c.b * c.t);
    const lengths = new Uint32Array(c.b);
    for (let b = 0; b < c.b; b++) {
      lengths[b] = c.b > 1 && b === 0 ? 0 : 1 + Math.floor(r() * c.t);
      for (let j = 0; j < c.t; j++) {
        valid[b * c.t + j] = c.kind === "lengths"
          ? (j < lengths[b] ? 1 : 0)
          : (lengths[b] > 0 && r() < 0.7 ? 1 : 0);
      }
    }
    const q = toF32(randn(n, r)), k = toF32(randn(n, r)), v = toF32(randn(n, r));
    const dout = toF32(randn(n, r));
    // Garbage (NaN) in the rows of masked keys must never be read.
    const kg = Float32Array.from(k), vg = Float32Array.from(v);
    for (let row = 0; row < c.b * c.t; row++) {
      if (!valid[row]) { for (let e = 0; e < C; e++) kg[row * C + e] = vg[row * C + e] = NaN; }
    }
    const shape = [c.b, c.t, C], pShape = [c.b, c.nh, c.t, c.t];
    const qt = up(rt, q, shape, "q"), kt = up(rt, kg, shape, "k"), vt = up(rt, vg, shape, "v");
    const dot = up(rt, dout, shape, "dout");
    const mt = c.kind === "lengths"
      ? rt.upload(lengths, [c.b], "lengths")
      : rt.upload(valid, [c.b, c.t], "mask");
    const mask: KeyMask = c.kind === "lengths" ? { lengths: mt } : { keyMask: mt };
    const out = poisoned(rt, shape, "out"), probs = poisoned(rt, pShape, "probs");
    const dq = poisoned(rt, shape, "dq"), dk = poisoned(rt, shape, "dk");
    const dv = poisoned(rt, shape, "dv");
    attentionForward(rt, { q: qt, k: kt, v: vt, mask, numHeads: c.nh, out, probs });
    attentionBackward(rt, {
      q: qt,
      k: kt,
      v: vt,
      probs,
      mask,
      numHeads: c.nh,
      dout: dot,
      dq,
      dk,
      dv,
    });
    const [go, gp, gdq, gdk, gdv] = await rt.readMany([out, probs, dq, dk, dv]);
    const ref = attention(q, k, v, valid, c);
    const g = refBackward(q, k, v, ref.p, dout, c);
    assertClose(relErr(gp, ref.p), 2e-5, `${name} P`, seed);
    assertClose(relErr(go, ref.out), 2e-5, `${name} out`, seed);
    if (c.t === 1) {
      // One key: P ≡ 1, so the score gradient is exactly 0 (a relative error would divide by 0).
      assert.ok(gdq.every((x) => x === 0) && gdk.every((x) => x === 0), "T=1: dQ = dK = 0");
    } else {
      assertClose(relErr(gdq, g.dq), 5e-5, `${name} dQ`, seed);
      assertClose(relErr(gdk, g.dk), 5e-5, `${name} dK`, seed);
    }
    assertClose(relErr(gdv, g.dv), 2e-5, `${name} dV`, seed);
    // A length-0 sample: P, output and gradients are exactly 0 (finite, documented).
    if (c.b > 1) {
      const per = c.t * C;
      assert.ok(go.slice(0, per).every((x) => x === 0), "length-0 sample output must be 0");
      assert.ok(gdq.slice(0, per).every((x) => x === 0), "length-0 sample dQ must be 0");
      assert.ok(gp.slice(0, c.nh * c.t * c.t).every((x) => x === 0));
    }
    // Masked keys: exactly zero weight and zero dK/dV.
    for (let row = 0; row < c.b * c.t; row++) {
      if (valid[row]) continue;
      for (let e = 0; e < C; e++) {
        assert.equal(gdk[row * C + e], 0, `dK of masked key row ${row} (seed ${seed})`);
        assert.equal(gdv[row * C + e], 0, `dV of masked key row ${row} (seed ${seed})`);
      }
    }
    [qt, kt, vt, dot, mt, out, probs, dq, dk, dv].forEach((t) => rt.release(t));
  });
}

Deno.test("softmax rows: forward/backward vs float64, −∞ entries and all −∞ rows", async () => {
  const rt = await nn();
  const seed = freshSeed();
  const r = rng(seed);
  for (const [rows, n] of [[1, 1], [7, 33], [33, 130], [3, 513]]) {
    const x = toF32(randn(rows * n, r, 5));
    for (let i = 0; i < x.length; i++) if (r() < 0.1) x[i] = -Infinity;
    if (rows > 1) { for (let j = 0; j < n; j++) x[n + j] = -Infinity; // row 1 entirely −∞
     }
    const dy = toF32(randn(rows * n, r));
    const xt = up(rt, x, [rows, n], "x"), dyt = up(rt, dy, [rows, n], "dy");
    const y = poisoned(rt, [rows, n], "y"), dx = poisoned(rt, [rows, n], "dx");
    softmaxForward(rt, xt, y);
    softmaxBackward(rt, y, dyt, dx);
    const [gy, gdx] = await rt.readMany([y, dx]);
    const ry = softmaxRows(x, rows, n);
    assertClose(relErr(gy, ry), 2e-5, `softmax ${rows}x${n}`, seed);
    // backward checked on the GPU's own y so only the backward arithmetic is measured
    assertClose(
      relErr(gdx, softmaxRowsBackward(gy, dy, rows, n)),
      2e-5,
      `dsoftmax ${rows}x${n}`,
      seed,
    );
    [xt, dyt, y, dx].forEach((t) => rt.release(t));
  }
});

Deno.test("reference softmax backward matches finite differences", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const x = randn(12, r), w = randn(12, r);
  const f = (z: Float64Array) => softmaxRows(z, 2, 6).reduce((s, v, i) => s + w[i] * v, 0);
  const an = softmaxRowsBackward(softmaxRows(x, 2, 6), w, 2, 6);
  assertClose(relErr(an, finiteDiff(f, x)), 1e-8, "softmax backward", seed);
});

Deno.test("attention: shape errors name the tensor", async () => {
  const rt = await nn();
  const q = rt.empty([2, 3, 8], "q"), p = rt.empty([2, 2, 3, 3], "p");
  const bad = rt.empty([3], "lens", "u32");
  assert.throws(
    () =>
      attentionForward(rt, {
        q,
        k: q,
        v: q,
        mask: { lengths: bad },
        numHeads: 2,
        out: q,
        probs: p,
      }),
    /tensor "lengths" \(lens\)/,
  );
  assert.throws(
    () =>
      attentionForward(rt, {
        q,
        k: q,
        v: q,
        mask: { lengths: bad },
        numHeads: 3,
        out: q,
        probs: p,
      }),
    /not divisible by numHeads 3/,
  );
  [q, p, bad].forEach((t) => rt.release(t));
});
