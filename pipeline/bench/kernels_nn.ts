/**
 * Benchmark cases for the NN kernels (`deno task bench kernels`): GELU, LayerNorm, attention,
 * embedding backward and AdamW at BERT-small shapes. Each case's relErr() recomputes a sample
 * of the output in float64 (full float64 recomputation of the large shapes would take minutes).
 */
import type { KernelBenchCase } from "./types.ts";
import type { Runtime } from "../gpu/runtime.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { activationBackward, activationForward } from "../gpu/ops/gelu.ts";
import { layerNormBackward, layerNormForward } from "../gpu/ops/layernorm.ts";
import { attentionBackward, attentionForward } from "../gpu/ops/attention.ts";
import { embeddingBackward } from "../gpu/ops/embedding.ts";
import { adamwStep } from "../gpu/ops/adamw.ts";

/** Deterministic pseudo-random f32 data in [-1, 1) (benchmarks need no statistical quality). */
function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

function relErr(pairs: [number, number][]): number {
  let num = 0, den = 0;
  for (const [got, want] of pairs) {
    if (!Number.isFinite(got)) return Infinity;
    num += (got - want) ** 2;
    den += want * want;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** erf in float64 (Taylor series; |x| < 3 is all the benchmark inputs reach). */
function erf(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-18; n++) {
    term *= -x * x / n;
    sum += term / (2 * n + 1);
  }
  return sum * 2 / Math.sqrt(Math.PI);
}

function releaseAll(rt: Runtime, ts: GpuTensor[]): void {
  for (const t of ts) rt.release(t);
}

function geluCase(backward: boolean): KernelBenchCase {
  const rows = 4096, cols = 2048, n = rows * cols;
  return {
    kernel: backward ? "gelu.backward" : "gelu.forward",
    shape: `${rows}x${cols}`,
    bytes: (backward ? 3 : 2) * n * 4,
    setup(rt: Runtime) {
      const hx = data(n, 1).map((v) => 3 * v), hdy = data(n, 2);
      const x = rt.upload(hx, [rows, cols], "x"), dy = rt.upload(hdy, [rows, cols], "dy");
      const y = rt.empty([rows, cols], "y");
      const run = () =>
        backward ? activationBackward(rt, x, dy, y, "gelu") : activationForward(rt, x, y, "gelu");
      return Promise.resolve({
        run,
        async relErr() {
          run();
          const got = await rt.read(y);
          const pairs: [number, number][] = [];
          for (let i = 0; i < n; i += 97) {
            const v = hx[i], cdf = 0.5 * (1 + erf(v / Math.SQRT2));
            const want = backward
              ? hdy[i] * (cdf + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI))
              : v * cdf;
            pairs.push([got[i], want]);
          }
          return relErr(pairs);
        },
        dispose: () => releaseAll(rt, [x, dy, y]),
      });
    },
  };
}

function layerNormCase(backward: boolean): KernelBenchCase {
  const rows = 4096, h = 512, n = rows * h, eps = 1e-12;
  return {
    kernel: backward ? "layernorm.backward" : "layernorm.forward",
    shape: `${rows}x${h}`,
    // forward: read x, write y; backward: x, dy read by both passes, dx written.
    bytes: (backward ? 5 : 2) * n * 4,
    setup(rt: Runtime) {
      const hx = data(n, 3), hg = data(h, 4).map((v) => 1 + 0.1 * v), hdy = data(n, 5);
      const x = rt.upload(hx, [rows, h], "x"), gamma = rt.upload(hg, [h], "gamma");
      const beta = rt.upload(data(h, 6), [h], "beta"), dy = rt.upload(hdy, [rows, h], "dy");
      const y = rt.empty([rows, h], "y"), mean = rt.empty([rows], "mean");
      const rstd = rt.empty([rows], "rstd"), dx = rt.empty([rows, h], "dx");
      const dg = rt.empty([h], "dgamma"), db = rt.empty([h], "dbeta");
      layerNormForward(rt, { x, gamma, beta, y, mean, rstd, eps });
      const run = () =>
        backward
          ? layerNormBackward(rt, { x, gamma, mean, rstd, dy, dx, dgamma: dg, dbeta: db })
          : layerNormForward(rt, { x, gamma, beta, y, mean, rstd, eps });
      return Promise.resolve({
        run,
        async relErr() {
          run();
          const got = await rt.read(backward ? dx : y);
          const pairs: [number, number][] = [];
          for (let r = 0; r < rows; r += 257) {
            const row = hx.subarray(r * h, (r + 1) * h);
            const m = row.reduce((s, v) => s + v, 0) / h;
            const s = 1 / Math.sqrt(row.reduce((a, v) => a + (v - m) ** 2, 0) / h + eps);
            let a = 0, b = 0;
            for (let j = 0; j < h; j++) {
              a += hdy[r * h + j] * hg[j];
              b += hdy[r * h + j] * hg[j] * (row[j] - m) * s;
            }
            for (let j = 0; j < h; j++) {
              const xh = (row[j] - m) * s;
              const want = backward
                ? s * (hdy[r * h + j] * hg[j] - a / h - xh * b / h)
                : xh * hg[j] + data(h, 6)[j];
              pairs.push([got[r * h + j], want]);
            }
          }
          return relErr(pairs);
        },
        dispose: () => releaseAll(rt, [x, gamma, beta, dy, y, mean, rstd, dx, dg, db]),
      });
    },
  };
}

function attentionCase(backward: boolean, padded: boolean): KernelBenchCase {
  const B = 32, T = 128, nh = 8, dh = 64, C = nh * dh, n = B * T * C;
  return {
    kernel: `attention.${backward ? "backward" : "forward"}${padded ? ".padded" : ""}`,
    shape: `${B}x${T}x${nh}x${dh}`,
    // Useful FLOPs with every key valid (QKᵀ and PV: 2 GEMMs; backward: 4).
    flops: (backward ? 4 : 2) * 2 * B * nh * T * T * dh,
    setup(rt: Runtime) {
      const hq = data(n, 7), hk = data(n, 8), hv = data(n, 9), hdo = data(n, 10);
      // padded: lengths spread over 32..128 like a batch of reports; else all T.
      const lens = Uint32Array.from({ length: B }, (_, b) => (padded ? 32 + ((b * 37) % 97) : T));
      const q = rt.upload(hq, [B, T, C], "q"), k = rt.upload(hk, [B, T, C], "k");
      const v = rt.upload(hv, [B, T, C], "v"), dout = rt.upload(hdo, [B, T, C], "dout");
      const lengths = rt.upload(lens, [B], "lengths");
      const out = rt.empty([B, T, C], "out"), probs = rt.empty([B, nh, T, T], "probs");
      const ds = rt.empty([B, nh, T, T], "dscores");
      const dq = rt.empty([B, T, C], "dq"), dk = rt.empty([B, T, C], "dk");
      const dv = rt.empty([B, T, C], "dv");
      const mask = { lengths };
      attentionForward(rt, { q, k, v, mask, numHeads: nh, out, probs });
      const run = () =>
        backward
          ? attentionBackward(rt, {
            q,
            k,
            v,
            probs,
            mask,
            numHeads: nh,
            dout,
            dq,
            dk,
            dv,
            dscores: ds,
          })
          : attentionForward(rt, { q, k, v, mask, numHeads: nh, out, probs });
      return Promise.resolve({
        run,
        async relErr() {
          run();
          const [go, gdq, gdk, gdv] = await rt.readMany([out, dq, dk, dv]);
          // Recompute one (sample, head) block in float64: the last sample, head nh − 1.
          const b = B - 1, h = nh - 1, L = lens[b], sc = 1 / Math.sqrt(dh);
          const at = (a: ArrayLike<number>, t: number, e: number) =>
            a[(b * T + t) * C + h * dh + e];
          const P: number[][] = [];
          for (let i = 0; i < T; i++) {
            const s = Array.from({ length: L }, (_, j) => {
              let d = 0;
              for (let e = 0; e < dh; e++) d += at(hq, i, e) * at(hk, j, e);
              return d * sc;
            });
            const m = Math.max(...s), z = s.reduce((a, x) => a + Math.exp(x - m), 0);
            P.push(s.map((x) => Math.exp(x - m) / z));
          }
          const pairs: [number, number][] = [];
          const dQ = new Float64Array(T * dh), dK = new Float64Array(T * dh);
          const dV = new Float64Array(T * dh);
          for (let i = 0; i < T; i++) {
            const dp = P[i].map((_, j) => {
              let d = 0;
              for (let e = 0; e < dh; e++) d += at(hdo, i, e) * at(hv, j, e);
              return d;
            });
            const dot = dp.reduce((a, x, j) => a + x * P[i][j], 0);
            for (let j = 0; j < L; j++) {
              const g = sc * P[i][j] * (dp[j] - dot);
              for (let e = 0; e < dh; e++) {
                dQ[i * dh + e] += g * at(hk, j, e);
                dK[j * dh + e] += g * at(hq, i, e);
                dV[j * dh + e] += P[i][j] * at(hdo, i, e);
              }
            }
            for (let e = 0; e < dh && !backward; e++) {
              const want = P[i].reduce((a, p, j) => a + p * at(hv, j, e), 0);
              pairs.push([at(go, i, e), want]);
            }
          }
          for (let t = 0; t < T && backward; t++) {
            for (let e = 0; e < dh; e++) {
              pairs.push([at(gdq, t, e), dQ[t * dh + e]]);
              pairs.push([at(gdk, t, e), dK[t * dh + e]]);
              pairs.push([at(gdv, t, e), dV[t * dh + e]]);
            }
          }
          return relErr(pairs);
        },
        dispose: () => releaseAll(rt, [q, k, v, dout, lengths, out, probs, ds, dq, dk, dv]),
      });
    },
  };
}

function embeddingBackwardCase(): KernelBenchCase {
  const B = 32, T = 128, E = 512, V = 30522, n = B * T;
  return {
    kernel: "embedding.backward",
    shape: `${B}x${T}x${E} V=${V}`,
    bytes: 3 * n * E * 4, // dout read by the word, position and type passes
    setup(rt: Runtime) {
      // Zipf-like ids: many repeats of frequent tokens, as in real text.
      const hid = Uint32Array.from(data(n, 11), (u) => Math.floor(V * ((u + 1) / 2) ** 4));
      const ids = rt.upload(hid, [B, T], "ids");
      const types = rt.upload(new Uint32Array(n), [B, T], "types");
      const hdo = data(n * E, 12);
      const dout = rt.upload(hdo, [B, T, E], "dout");
      const dword = rt.zeros([V, E], "dword"), dpos = rt.zeros([T, E], "dpos");
      const dtype = rt.zeros([2, E], "dtype");
      const run = () =>
        embeddingBackward(rt, {
          ids,
          typeIds: types,
          positionOffset: 0,
          dout,
          dword,
          dposition: dpos,
          dtokenType: dtype,
        });
      return Promise.resolve({
        run,
        async relErr() {
          rt.clear(dword);
          run();
          const got = await rt.read(dword);
          const pairs: [number, number][] = [];
          for (const id of [hid[0], hid[1], hid[n - 1]]) {
            for (let e = 0; e < E; e++) {
              let s = 0;
              for (let r = 0; r < n; r++) if (hid[r] === id) s += hdo[r * E + e];
              pairs.push([got[id * E + e], s]);
            }
          }
          return relErr(pairs);
        },
        dispose: () => releaseAll(rt, [ids, types, dout, dword, dpos, dtype]),
      });
    },
  };
}

function adamwCase(): KernelBenchCase {
  const n = 1 << 20;
  return {
    kernel: "adamw",
    shape: `${n}`,
    bytes: 7 * n * 4, // read grad, param, m, v; write param, m, v
    setup(rt: Runtime) {
      const hp = data(n, 13), hg = data(n, 14);
      const param = rt.upload(hp, [n], "param"), grad = rt.upload(hg, [n], "grad");
      const m = rt.zeros([n], "m"), v = rt.zeros([n], "v");
      const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
      const run = () => adamwStep(rt, { param, grad, m, v }, h);
      return Promise.resolve({
        run,
        async relErr() {
          rt.write(param, hp);
          rt.clear(m);
          rt.clear(v);
          run();
          const got = await rt.read(param);
          const pairs: [number, number][] = [];
          for (let i = 0; i < n; i += 101) {
            const g = hg[i], mm = 0.1 * g, vv = 0.001 * g * g;
            const step = (1e-3 / 0.1) * mm / (Math.sqrt(vv) / Math.sqrt(0.001) + 1e-8);
            pairs.push([got[i], hp[i] * (1 - 1e-5) - step]);
          }
          return relErr(pairs);
        },
        dispose: () => releaseAll(rt, [param, grad, m, v]),
      });
    },
  };
}

export const nnCases: KernelBenchCase[] = [
  geluCase(false),
  geluCase(true),
  layerNormCase(false),
  layerNormCase(true),
  attentionCase(false, false),
  attentionCase(true, false),
  attentionCase(false, true),
  attentionCase(true, true),
  embeddingBackwardCase(),
  adamwCase(),
];
