/** Float64 references for the linear-algebra kernels (matmul, LoRA, reductions). */

export interface RefMatmul {
  transA?: boolean;
  transB?: boolean;
  bias?: ArrayLike<number>;
  /** β = 1: add into `c` (length M·N). */
  c?: ArrayLike<number>;
  alpha?: number;
}

/** C[M,N] = α·op(A)·op(B) (+ bias) (+ c); A is [M,K] or [K,M] (transA); B is [K,N] or [N,K]. */
export function refMatmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  o: RefMatmul = {},
): Float64Array {
  const out = new Float64Array(M * N);
  const alpha = o.alpha ?? 1;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = o.transA ? a[k * M + m] : a[m * K + k];
        const bv = o.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      out[m * N + n] = alpha * s + (o.bias ? o.bias[n] : 0) + (o.c ? o.c[m * N + n] : 0);
    }
  }
  return out;
}

/** Transpose of a row-major [R, C] matrix. */
export function refTranspose(a: ArrayLike<number>, R: number, C: number): Float64Array {
  const t = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c];
  return t;
}

/** Per-row sum of squares of [R, C]. */
export function refRowSumSq(x: ArrayLike<number>, R: number, C: number): Float64Array {
  const o = new Float64Array(R);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) o[r] += x[r * C + c] ** 2;
  return o;
}

/** Per-row dot product of two [R, C] matrices. */
export function refRowDot(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  R: number,
  C: number,
): Float64Array {
  const o = new Float64Array(R);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) o[r] += x[r * C + c] * y[r * C + c];
  return o;
}

/** Column sums of [R, C]. */
export function refColSum(x: ArrayLike<number>, R: number, C: number): Float64Array {
  const o = new Float64Array(C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) o[c] += x[r * C + c];
  return o;
}

/** Segmented row sums: out[s, c] = Σ_{offsets[s] ≤ r < offsets[s+1]} x[r, c]. */
export function refSegmentSum(
  x: ArrayLike<number>,
  offsets: ArrayLike<number>,
  C: number,
): Float64Array {
  const S = offsets.length - 1;
  const o = new Float64Array(S * C);
  for (let s = 0; s < S; s++) {
    for (let r = offsets[s]; r < offsets[s + 1]; r++) {
      for (let c = 0; c < C; c++) o[s * C + c] += x[r * C + c];
    }
  }
  return o;
}

export interface RefLora {
  /** [T, in] */
  x: ArrayLike<number>;
  /** [out, in] */
  w: ArrayLike<number>;
  /** [out] */
  bias: ArrayLike<number>;
  /** [r, in] */
  a: ArrayLike<number>;
  /** [out, r] */
  b: ArrayLike<number>;
  scale: number;
  T: number;
  dIn: number;
  dOut: number;
  r: number;
}

/** y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ, [T, out]. */
export function refLoraForward(p: RefLora): Float64Array {
  const y = refMatmul(p.x, p.w, p.T, p.dOut, p.dIn, { transB: true, bias: p.bias });
  const h = refMatmul(p.x, p.a, p.T, p.r, p.dIn, { transB: true });
  return refMatmul(h, p.b, p.T, p.dOut, p.r, { transB: true, alpha: p.scale, c: y });
}

/** Gradients of L = Σ dy ⊙ y: dX [T,in], dA [r,in], dB [out,r] (closed form, float64). */
export function refLoraBackward(
  p: RefLora,
  dy: ArrayLike<number>,
): { dx: Float64Array; da: Float64Array; db: Float64Array } {
  const h = refMatmul(p.x, p.a, p.T, p.r, p.dIn, { transB: true });
  const g = refMatmul(dy, p.b, p.T, p.r, p.dOut); // dY·B  [T, r]
  const dxW = refMatmul(dy, p.w, p.T, p.dIn, p.dOut);
  const dx = refMatmul(g, p.a, p.T, p.dIn, p.r, { alpha: p.scale, c: dxW });
  const db = refMatmul(dy, h, p.dOut, p.r, p.T, { transA: true, alpha: p.scale });
  const da = refMatmul(g, p.x, p.r, p.dIn, p.T, { transA: true, alpha: p.scale });
  return { dx, da, db };
}
