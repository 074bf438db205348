/**
 * Embedding gather and deterministic scatter-add backward vs the float64 reference.
 * Tolerances: the forward adds three f32 values (≤ 2 roundings: 1.2e-7 of the terms), so 1e-6
 * relative Frobenius. The backward sums at most N = 132 f32 terms per table entry in a fixed
 * order (≤ N·2⁻²⁴ ≈ 8e-6 worst case), so 1e-5 — and bit-identical across runs.
 */
import assert from "node:assert/strict";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { GpuTensor } from "../pipeline/gpu/tensor.ts";
import { embeddingBackward, embeddingForward } from "../pipeline/gpu/ops/embedding.ts";
import { assertClose, finiteDiff, freshSeed, randn, relErr, rng, toF32 } from "./helpers.ts";
import { embedding, embeddingBackward as refBackward } from "./reference/nn.ts";

let shared: Promise<Runtime> | null = null;
function nn(): Promise<Runtime> {
  shared ??= Runtime.create(["embedding.wgsl"]);
  return shared;
}

function poisoned(rt: Runtime, shape: number[], label: string): GpuTensor {
  const t = rt.empty(shape, label);
  rt.fill(t, NaN);
  return t;
}

const up = (rt: Runtime, a: ArrayLike<number>, shape: number[], label: string) =>
  rt.upload(Float32Array.from(a), shape, label);

Deno.test("reference embedding backward matches finite differences (repeated ids)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const b = 2, t = 3, e = 2, sizes = { vocab: 3, positions: 5, typeVocab: 2 }, off = 1;
  const ids = [0, 2, 0, 0, 1, 2], types = [0, 1, 1, 0, 0, 1];
  const word = randn(6, r), pos = randn(10, r), typ = randn(4, r), w = randn(12, r);
  const f = (ww: Float64Array, pp: Float64Array, tt: Float64Array) =>
    embedding(ww, pp, tt, ids, types, b, t, e, off).reduce((s, v, i) => s + w[i] * v, 0);
  const g = refBackward(w, ids, types, sizes, b, t, e, off);
  assertClose(relErr(g.dword, finiteDiff((z) => f(z, pos, typ), word)), 1e-8, "dword", seed);
  assertClose(relErr(g.dpos, finiteDiff((z) => f(word, z, typ), pos)), 1e-8, "dpos", seed);
  assertClose(relErr(g.dtype, finiteDiff((z) => f(word, pos, z), typ)), 1e-8, "dtype", seed);
});

for (const [b, t, e, vocab, off] of [[1, 1, 1, 1, 0], [3, 7, 33, 5, 2], [4, 33, 130, 11, 0]]) {
  const name = `embedding B=${b} T=${t} E=${e} V=${vocab} offset=${off}`;
  Deno.test(`${name}: forward, accumulating backward, determinism`, async () => {
    const rt = await nn();
    const seed = freshSeed();
    const r = rng(seed);
    const n = b * t, positions = t + off + 2, typeVocab = 3;
    // Few distinct ids → many repeats per table row (the scatter's hard case).
    const ids = Uint32Array.from({ length: n }, () => Math.floor(r() * vocab));
    const types = Uint32Array.from({ length: n }, () => Math.floor(r() * 2));
    const word = toF32(randn(vocab * e, r)), pos = toF32(randn(positions * e, r));
    const typ = toF32(randn(typeVocab * e, r)), dout = toF32(randn(n * e, r));
    const prior = [
      toF32(randn(vocab * e, r)),
      toF32(randn(positions * e, r)),
      toF32(randn(typeVocab * e, r)),
    ];
    const idt = rt.upload(ids, [b, t], "ids"), tyt = rt.upload(types, [b, t], "types");
    const wt = up(rt, word, [vocab, e], "word"), pt = up(rt, pos, [positions, e], "pos");
    const tt = up(rt, typ, [typeVocab, e], "type"), dt = up(rt, dout, [b, t, e], "dout");
    const out = poisoned(rt, [b, t, e], "out");
    const grads = [[vocab, e], [positions, e], [typeVocab, e]].map((s, i) =>
      [0, 1].map((k) => up(rt, prior[i], s, `grad${i}.${k}`))
    );
    const tok = { ids: idt, typeIds: tyt, positionOffset: off };
    embeddingForward(rt, { ...tok, word: wt, position: pt, tokenType: tt, out });
    for (const k of [0, 1]) {
      embeddingBackward(rt, {
        ...tok,
        dout: dt,
        dword: grads[0][k],
        dposition: grads[1][k],
        dtokenType: grads[2][k],
      });
    }
    const got = await rt.readMany([out, ...grads.flat()]);
    assertClose(
      relErr(got[0], embedding(word, pos, typ, ids, types, b, t, e, off)),
      1e-6,
      `${name} out`,
      seed,
    );
    const ref = refBackward(dout, ids, types, { vocab, positions, typeVocab }, b, t, e, off);
    const want = [ref.dword, ref.dpos, ref.dtype].map((g, i) => g.map((v, j) => v + prior[i][j]));
    ["dword", "dposition", "dtokenType"].forEach((what, i) => {
      assertClose(relErr(got[1 + 2 * i], want[i]), 1e-5, `${name} ${what}`, seed);
      assert.deepEqual(got[1 + 2 * i], got[2 + 2 * i], `${what} must be bit-identical across runs`);
    });
    [idt, tyt, wt, pt, tt, dt, out, ...grads.flat()].forEach((x) => rt.release(x));
  });
}

Deno.test("embedding: an id outside the vocabulary gives a NaN row, not a silent clamp", async () => {
  const rt = await nn();
  const ids = rt.upload(Uint32Array.from([1, 7]), [1, 2], "ids");
  const types = rt.upload(new Uint32Array(2), [1, 2], "types");
  const word = rt.upload(new Float32Array(3 * 4).fill(1), [3, 4], "word");
  const pos = rt.upload(new Float32Array(2 * 4), [2, 4], "pos");
  const typ = rt.upload(new Float32Array(4), [1, 4], "type");
  const out = poisoned(rt, [1, 2, 4], "out");
  embeddingForward(rt, {
    ids,
    typeIds: types,
    positionOffset: 0,
    word,
    position: pos,
    tokenType: typ,
    out,
  });
  const o = await rt.read(out);
  assert.deepEqual([...o.slice(0, 4)], [1, 1, 1, 1]);
  assert.ok(o.slice(4).every(Number.isNaN));
  assert.throws(
    () =>
      embeddingForward(rt, {
        ids,
        typeIds: types,
        positionOffset: 1,
        word,
        position: pos,
        tokenType: typ,
        out,
      }),
    /exceeds the 2 position embeddings/,
  );
  [ids, types, word, pos, typ, out].forEach((x) => rt.release(x));
});
