/**
 * Float64 references for the NN kernels (shaders/{gelu,layernorm,attention,embedding,loss,
 * adamw,elementwise}.wgsl). Plain loops, written for clarity: the GPU kernels are checked
 * against these, and these backward passes are checked against finite differences.
 */

// ------------------------------------------------------------------ activations

/** erf in float64: Taylor series for |x| < 3, Lentz continued fraction for erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= -ax * ax / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  return Math.sign(x) * (1 - erfcLarge(ax));
}

/** erfc(x) for x ≥ 3 via the continued fraction (modified Lentz). */
function erfcLarge(x: number): number {
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  let f = x, c = x, d = 0;
  for (let n = 1; n < 300; n++) {
    const a = n / 2;
    d = x + a * d;
    d = 1 / d;
    c = x + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export type Act = "gelu" | "gelu_new" | "relu";

export function act(x: number, kind: Act): number {
  if (kind === "gelu") return 0.5 * x * (1 + erf(x / Math.SQRT2));
  if (kind === "gelu_new") {
    const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
    return 0.5 * x * (1 + Math.tanh(u));
  }
  return Math.max(x, 0);
}

export function dact(x: number, kind: Act): number {
  if (kind === "gelu") {
    return 0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  }
  if (kind === "gelu_new") {
    const k = Math.sqrt(2 / Math.PI);
    const t = Math.tanh(k * (x + 0.044715 * x ** 3));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
  }
  return x > 0 ? 1 : 0;
}

// ------------------------------------------------------------------ dropout hash

/** lowbias32, bit-identical to mix32 in elementwise.wgsl. */
export function mix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The dropout keep decision for element i (same arithmetic as the kernel). */
export function dropoutKeep(i: number, seed: number, prob: number): boolean {
  const h = mix32((i ^ mix32(seed)) >>> 0);
  return Math.fround((h >>> 8) * (1 / 16777216)) >= Math.fround(prob);
}

// ------------------------------------------------------------------ layernorm

export interface LnOut {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function layerNorm(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  h: number,
  eps: number,
): LnOut {
  const y = new Float64Array(rows * h),
    mean = new Float64Array(rows),
    rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < h; j++) m += x[r * h + j];
    m /= h;
    let v = 0;
    for (let j = 0; j < h; j++) v += (x[r * h + j] - m) ** 2;
    v /= h;
    const s = 1 / Math.sqrt(v + eps);
    mean[r] = m;
    rstd[r] = s;
    for (let j = 0; j < h; j++) y[r * h + j] = (x[r * h + j] - m) * s * gamma[j] + beta[j];
  }
  return { y, mean, rstd };
}

/** dX, and dγ/dβ summed per group of `groupRows` consecutive rows ([rows/groupRows, h]). */
export function layerNormBackward(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  h: number,
  eps: number,
  groupRows = rows,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { mean, rstd } = layerNorm(x, gamma, new Float64Array(h), rows, h, eps);
  const groups = rows / groupRows;
  const dx = new Float64Array(rows * h);
  const dgamma = new Float64Array(groups * h), dbeta = new Float64Array(groups * h);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / groupRows);
    let a = 0, b = 0;
    for (let j = 0; j < h; j++) {
      const xh = (x[r * h + j] - mean[r]) * rstd[r];
      const d = dy[r * h + j] * gamma[j];
      a += d;
      b += d * xh;
      dgamma[g * h + j] += dy[r * h + j] * xh;
      dbeta[g * h + j] += dy[r * h + j];
    }
    a /= h;
    b /= h;
    for (let j = 0; j < h; j++) {
      const xh = (x[r * h + j] - mean[r]) * rstd[r];
      dx[r * h + j] = rstd[r] * (dy[r * h + j] * gamma[j] - a - xh * b);
    }
  }
  return { dx, dgamma, dbeta };
}

// ------------------------------------------------------------------ softmax / attention

/** Row softmax of [rows, n]; rows whose entries are all −∞ give all zeros. */
export function softmaxRows(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[r * n + j]);
    if (m === -Infinity) continue;
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(x[r * n + j] - m);
    for (let j = 0; j < n; j++) y[r * n + j] = Math.exp(x[r * n + j] - m) / s;
  }
  return y;
}

export function softmaxRowsBackward(
  y: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  n: number,
): Float64Array {
  const dx = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += y[r * n + j] * dy[r * n + j];
    for (let j = 0; j < n; j++) dx[r * n + j] = y[r * n + j] * (dy[r * n + j] - dot);
  }
  return dx;
}

export interface AttnShape {
  b: number;
  t: number;
  nh: number;
  dh: number;
}

/** keyValid[b*T + j] = 1 when key j of sample b is a real token. */
export function attention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  keyValid: ArrayLike<number>,
  s: AttnShape,
): { out: Float64Array; p: Float64Array } {
  const { b: B, t: T, nh, dh } = s;
  const C = nh * dh, scale = 1 / Math.sqrt(dh);
  const p = new Float64Array(B * nh * T * T), out = new Float64Array(B * T * C);
  const row = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let e = 0; e < dh; e++) {
            d += q[(b * T + i) * C + h * dh + e] * k[(b * T + j) * C + h * dh + e];
          }
          row[j] = keyValid[b * T + j] ? d * scale : -Infinity;
        }
        const pr = softmaxRows(row, 1, T);
        p.set(pr, ((b * nh + h) * T + i) * T);
        for (let e = 0; e < dh; e++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += pr[j] * v[(b * T + j) * C + h * dh + e];
          out[(b * T + i) * C + h * dh + e] = acc;
        }
      }
    }
  }
  return { out, p };
}

export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  p: ArrayLike<number>,
  dout: ArrayLike<number>,
  s: AttnShape,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { b: B, t: T, nh, dh } = s;
  const C = nh * dh, scale = 1 / Math.sqrt(dh);
  const dq = new Float64Array(B * T * C), dk = new Float64Array(B * T * C);
  const dv = new Float64Array(B * T * C);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < T; i++) {
        const pr = ((b * nh + h) * T + i) * T;
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let e = 0; e < dh; e++) {
            d += dout[(b * T + i) * C + h * dh + e] * v[(b * T + j) * C + h * dh + e];
            dv[(b * T + j) * C + h * dh + e] += p[pr + j] * dout[(b * T + i) * C + h * dh + e];
          }
          dp[j] = d;
        }
        const ds = softmaxRowsBackward(
          Float64Array.from({ length: T }, (_, j) => p[pr + j]),
          dp,
          1,
          T,
        );
        for (let j = 0; j < T; j++) {
          for (let e = 0; e < dh; e++) {
            dq[(b * T + i) * C + h * dh + e] += scale * ds[j] * k[(b * T + j) * C + h * dh + e];
            dk[(b * T + j) * C + h * dh + e] += scale * ds[j] * q[(b * T + i) * C + h * dh + e];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

// ------------------------------------------------------------------ embedding

export function embedding(
  word: ArrayLike<number>,
  pos: ArrayLike<number>,
  type: ArrayLike<number>,
  ids: ArrayLike<number>,
  types: ArrayLike<number>,
  b: number,
  t: number,
  e: number,
  posOffset: number,
): Float64Array {
  const out = new Float64Array(b * t * e);
  for (let r = 0; r < b * t; r++) {
    const pr = (r % t) + posOffset;
    for (let c = 0; c < e; c++) {
      out[r * e + c] = word[ids[r] * e + c] + pos[pr * e + c] + type[types[r] * e + c];
    }
  }
  return out;
}

/** Gradients of Σ dOut⊙embedding w.r.t. the three tables (shapes of the tables). */
export function embeddingBackward(
  dout: ArrayLike<number>,
  ids: ArrayLike<number>,
  types: ArrayLike<number>,
  sizes: { vocab: number; positions: number; typeVocab: number },
  b: number,
  t: number,
  e: number,
  posOffset: number,
): { dword: Float64Array; dpos: Float64Array; dtype: Float64Array } {
  const dword = new Float64Array(sizes.vocab * e), dpos = new Float64Array(sizes.positions * e);
  const dtype = new Float64Array(sizes.typeVocab * e);
  for (let r = 0; r < b * t; r++) {
    const pr = (r % t) + posOffset;
    for (let c = 0; c < e; c++) {
      dword[ids[r] * e + c] += dout[r * e + c];
      dpos[pr * e + c] += dout[r * e + c];
      dtype[types[r] * e + c] += dout[r * e + c];
    }
  }
  return { dword, dpos, dtype };
}

// ------------------------------------------------------------------ losses

/** Per-sample masked BCE-with-logits summed over labels, and d(scale·Σ loss)/d logits. */
export function bceWithLogits(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  mask: ArrayLike<number>,
  b: number,
  l: number,
  scale: number,
): { loss: Float64Array; dx: Float64Array } {
  const loss = new Float64Array(b), dx = new Float64Array(b * l);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < l; j++) {
      const z = x[i * l + j], t = y[i * l + j], m = mask[i * l + j];
      if (!m) continue;
      loss[i] += m * (Math.max(z, 0) - z * t + Math.log1p(Math.exp(-Math.abs(z))));
      dx[i * l + j] = scale * m * (1 / (1 + Math.exp(-z)) - t);
    }
  }
  return { loss, dx };
}

export const IGNORE_LABEL = 0xffffffff;

/** Per-sample softmax cross-entropy and d(scale·Σ loss)/d logits; IGNORE_LABEL rows give 0. */
export function crossEntropy(
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  b: number,
  k: number,
  scale: number,
): { loss: Float64Array; dx: Float64Array } {
  const loss = new Float64Array(b), dx = new Float64Array(b * k);
  for (let i = 0; i < b; i++) {
    if (labels[i] === IGNORE_LABEL) continue;
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, x[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(x[i * k + j] - m);
    const xl = x[i * k + labels[i]];
    // When the label is the max, log1p keeps a near-zero loss accurate (log(1 + tiny) = 0).
    let other = 0;
    for (let j = 0; j < k; j++) if (j !== labels[i]) other += Math.exp(x[i * k + j] - m);
    loss[i] = xl === m ? Math.log1p(other) : m + Math.log(s) - xl;
    for (let j = 0; j < k; j++) {
      dx[i * k + j] = scale * (Math.exp(x[i * k + j] - m) / s - (j === labels[i] ? 1 : 0));
    }
  }
  return { loss, dx };
}

// ------------------------------------------------------------------ optimizers

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  gradScale: number;
}

/** One PyTorch-style AdamW step in place on (param, m, v). */
export function adamw(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  o: AdamWHyper,
): void {
  const bc1 = 1 - o.beta1 ** o.step, bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * o.gradScale;
    param[i] *= 1 - o.lr * o.weightDecay;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    param[i] -= o.lr * (m[i] / bc1) / (Math.sqrt(v[i] / bc2) + o.eps);
  }
}

/** One PyTorch-style SGD step (coupled weight decay, optional momentum buffer, no dampening). */
export function sgd(
  param: Float64Array,
  grad: ArrayLike<number>,
  buf: Float64Array | null,
  o: { lr: number; momentum: number; weightDecay: number; gradScale: number },
): void {
  for (let i = 0; i < param.length; i++) {
    let g = grad[i] * o.gradScale + o.weightDecay * param[i];
    if (buf) {
      buf[i] = o.momentum * buf[i] + g;
      g = buf[i];
    }
    param[i] -= o.lr * g;
  }
}
