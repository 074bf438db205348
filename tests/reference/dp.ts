/**
 * Float64 references for the DP step: ChaCha20 (RFC 8439), the Box–Muller map used by the noise
 * kernel, and the DP-SGD clipped mean computed sample by sample (units summed, then clipped).
 */

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

function rotl(v: number, k: number): number {
  return ((v << k) | (v >>> (32 - k))) >>> 0;
}

/** One ChaCha20 block: 16 words, key = 8 words, nonce = 3 words (RFC 8439 §2.3). */
export function chacha20Block(
  key: ArrayLike<number>,
  counter: number,
  nonce: readonly number[],
): Uint32Array {
  const init = new Uint32Array([...SIGMA, ...Array.from(key), counter, ...nonce]);
  const x = init.slice();
  const qr = (a: number, b: number, c: number, d: number) => {
    x[a] = x[a] + x[b];
    x[d] = rotl(x[d] ^ x[a], 16);
    x[c] = x[c] + x[d];
    x[b] = rotl(x[b] ^ x[c], 12);
    x[a] = x[a] + x[b];
    x[d] = rotl(x[d] ^ x[a], 8);
    x[c] = x[c] + x[d];
    x[b] = rotl(x[b] ^ x[c], 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12);
    qr(1, 5, 9, 13);
    qr(2, 6, 10, 14);
    qr(3, 7, 11, 15);
    qr(0, 5, 10, 15);
    qr(1, 6, 11, 12);
    qr(2, 7, 8, 13);
    qr(3, 4, 9, 14);
  }
  for (let i = 0; i < 16; i++) x[i] = x[i] + init[i];
  return x;
}

/** The kernel's Box–Muller map in float64: returns [z0, z1, r]. */
export function boxMuller(w0: number, w1: number, w2: number): [number, number, number] {
  const u1 = (w0 + (w1 + 0.5) * 2 ** -32) * 2 ** -32;
  const r = Math.sqrt(Math.max(0, -2 * Math.log(u1)));
  const theta = ((w2 >>> 8) + 0.5) * 2 ** -24 * 2 * Math.PI - Math.PI;
  return [r * Math.cos(theta), r * Math.sin(theta), r];
}

/** The n standard normals of stream (key, nonce) as the kernel lays them out, and their radii. */
export function noiseRef(
  key: ArrayLike<number>,
  nonce: readonly number[],
  n: number,
): { z: Float64Array; r: Float64Array } {
  const z = new Float64Array(n);
  const r = new Float64Array(n);
  for (let b = 0; b * 8 < n; b++) {
    const w = chacha20Block(key, b, nonce);
    for (let k = 0; k < 4; k++) {
      const [z0, z1, rad] = boxMuller(w[4 * k], w[4 * k + 1], w[4 * k + 2]);
      const j = 8 * b + 2 * k;
      if (j < n) [z[j], r[j]] = [z0, rad];
      if (j + 1 < n) [z[j + 1], r[j + 1]] = [z1, rad];
    }
  }
  return { z, r };
}

/**
 * DP-SGD mean without noise, sample by sample in float64.
 * grads[t][r] = record r's gradient of tensor t; unitOf[r] = its unit; pieceOf[r] = the piece it
 * belongs to within its unit (records of one unit with the same pieceOf are summed before their
 * norm is taken; use the micro-batch index for "exact within a micro-batch", the record index for
 * "per record"); groupOf[t] = clipping group of tensor t; bounds[k] = C_k.
 * Unit norm bound per group: N_u = Σ_pieces ‖Σ_{r∈piece} g_r‖ (over the group's tensors), which is
 * the exact norm of the unit's summed gradient when the unit is one piece. Factor min(1, C_k/N_u),
 * 0 if N_u is not finite. The scaled unit gradients c_u·Σ_{r∈u} g_r are summed and divided by
 * `expected` (q·N).
 */
export function clippedMeanRef(
  grads: Float64Array[][],
  unitOf: readonly number[],
  pieceOf: readonly number[],
  groupOf: readonly number[],
  bounds: readonly number[],
  expected: number,
): {
  mean: Float64Array[];
  /** Σ_u c_u·Σ_{r∈u} |g_r| / expected: the magnitude the mean's sums can cancel from (condErr). */
  absMean: Float64Array[];
  factors: Map<number, number[]>;
  unitGrads: Map<number, Float64Array[]>;
} {
  const units = [...new Set(unitOf)].sort((a, b) => a - b);
  const mean = grads.map((g) => new Float64Array(g[0]?.length ?? 0));
  const absMean = grads.map((g) => new Float64Array(g[0]?.length ?? 0));
  const factors = new Map<number, number[]>();
  const unitGrads = new Map<number, Float64Array[]>();
  const sumRows = (t: number, rs: number[]) => {
    const s = new Float64Array(mean[t].length);
    for (const r of rs) for (let j = 0; j < s.length; j++) s[j] += grads[t][r][j];
    return s;
  };
  for (const u of units) {
    const rs = unitOf.flatMap((v, r) => (v === u ? [r] : []));
    const pieces = [...new Set(rs.map((r) => pieceOf[r]))];
    const bound = bounds.map(() => 0);
    for (const pc of pieces) {
      const prs = rs.filter((r) => pieceOf[r] === pc);
      const sq = bounds.map(() => 0);
      grads.forEach((_, t) => {
        for (const v of sumRows(t, prs)) sq[groupOf[t]] += v * v;
      });
      sq.forEach((v, k) => (bound[k] += Math.sqrt(v)));
    }
    const f = bounds.map((c, k) => (Number.isFinite(bound[k]) ? Math.min(1, c / bound[k]) : 0));
    factors.set(u, f);
    const ug = grads.map((_, t) => sumRows(t, rs));
    unitGrads.set(u, ug);
    ug.forEach((s, t) => {
      const c = f[groupOf[t]];
      if (c > 0) { for (let j = 0; j < s.length; j++) mean[t][j] += c * s[j]; }
      if (c > 0) {
        for (const r of rs) {
          for (let j = 0; j < s.length; j++) absMean[t][j] += c * Math.abs(grads[t][r][j]);
        }
      }
    });
  }
  for (const m of [...mean, ...absMean]) for (let j = 0; j < m.length; j++) m[j] /= expected;
  return { mean, absMean, factors, unitGrads };
}
