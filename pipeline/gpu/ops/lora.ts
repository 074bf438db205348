/**
 * LoRA projection y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (s = α/r), its backward, and the per-sample
 * pieces DP-SGD needs: per-sample dA_i/dB_i, their squared norms (materialised or ghost), and
 * the clipped weighted sum Σ_i c_i·g_i as one contraction (book-keeping).
 *
 * Layouts: x [T, in], W [out, in], bias [out], A [r, in], B [out, r]; per-sample functions take
 * the batch in padded layout [S, T, ·] (rows of padding must carry dY = 0, which masked
 * attention guarantees). Every function only records work.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";
import { matmul } from "./matmul.ts";
import { rowDot, rowSumSq } from "./reduce.ts";

export interface LoraParams {
  /** [out, in], frozen */
  w: GpuTensor;
  /** [out] */
  bias: GpuTensor;
  /** [r, in] */
  a: GpuTensor;
  /** [out, r] */
  b: GpuTensor;
  /** α / r */
  scale: number;
}

function sizes(op: string, p: LoraParams): { dIn: number; dOut: number; r: number } {
  if (p.w.shape.length !== 2) {
    throw new ShapeError(`${op}: tensor "w" (${p.w.label}) must be [out, in], got [${p.w.shape}]`);
  }
  const [dOut, dIn] = p.w.shape;
  expectShape(op, "bias", p.bias, [dOut]);
  if (p.a.shape.length !== 2) {
    throw new ShapeError(`${op}: tensor "a" (${p.a.label}) must be [r, in], got [${p.a.shape}]`);
  }
  const r = p.a.shape[0];
  expectShape(op, "a", p.a, [r, dIn]);
  expectShape(op, "b", p.b, [dOut, r]);
  return { dIn, dOut, r };
}

/** h = x·Aᵀ for x [rows, in] (any leading dims flattened) → [rows, r]. */
export function loraDown(rt: Runtime, x: GpuTensor, a: GpuTensor, out?: GpuTensor): GpuTensor {
  const [r, dIn] = a.shape;
  const rows = x.size / Math.max(dIn, 1);
  if (a.shape.length !== 2 || x.shape[x.shape.length - 1] !== dIn) {
    throw new ShapeError(
      `loraDown: tensor "x" (${x.label}) [${x.shape}] does not end in in = ${dIn} of "a" [${a.shape}]`,
    );
  }
  const h = out ?? rt.empty([...x.shape.slice(0, -1), r], "lora.h");
  expectShape("loraDown", "out", h, [...x.shape.slice(0, -1), r]);
  rt.dispatch({
    shader: "lora.wgsl",
    entry: "lora_down",
    bindings: { 1: x, 2: a, 3: h },
    params: params([rows, dIn, r, 0]),
    workgroups: [Math.ceil(rows / 64), Math.ceil(r / 4)],
  });
  return h;
}

/**
 * Forward: returns y [T, out] and h = x·Aᵀ [T, r] (save h for the backward).
 * Three dispatches: the base GEMM with bias, the skinny down-projection, and the rank-r
 * up-projection accumulated into y (β = 1, α = s).
 */
export function loraForward(
  rt: Runtime,
  x: GpuTensor,
  p: LoraParams,
  out?: { y?: GpuTensor; h?: GpuTensor },
): { y: GpuTensor; h: GpuTensor } {
  const { dIn, dOut } = sizes("loraForward", p);
  if (x.shape.length !== 2) {
    throw new ShapeError(`loraForward: tensor "x" (${x.label}) must be [T, in], got [${x.shape}]`);
  }
  expectShape("loraForward", "x", x, [-1, dIn]);
  const y = matmul(rt, x, p.w, { transB: true, bias: p.bias, out: out?.y, label: "lora.y" });
  expectShape("loraForward", "y", y, [x.shape[0], dOut]);
  const h = loraDown(rt, x, p.a, out?.h);
  matmul(rt, h, p.b, { transB: true, out: y, accumulate: true, alpha: p.scale });
  return { y, h };
}

export interface LoraBackward {
  /** dL/dx [T, in] (omitted when `needDx` is false) */
  dx?: GpuTensor;
  /** s·Gᵀ·X, [r, in] summed over the batch */
  da: GpuTensor;
  /** s·dYᵀ·H, [out, r] summed over the batch */
  db: GpuTensor;
  /** G = dY·B [T, r], reused by the per-sample functions */
  g: GpuTensor;
}

/**
 * Backward of {@link loraForward} given dy [T, out]: dX = dY·W + s·(dY·B)·A, dA = s·(dY·B)ᵀ·X,
 * dB = s·dYᵀ·(X·Aᵀ). The frozen W and bias get no gradient here.
 */
export function loraBackward(
  rt: Runtime,
  x: GpuTensor,
  h: GpuTensor,
  dy: GpuTensor,
  p: LoraParams,
  opts: { needDx?: boolean } = {},
): LoraBackward {
  const { dIn, dOut, r } = sizes("loraBackward", p);
  const T = x.shape[0];
  expectShape("loraBackward", "x", x, [T, dIn]);
  expectShape("loraBackward", "h", h, [T, r]);
  expectShape("loraBackward", "dy", dy, [T, dOut]);
  const g = matmul(rt, dy, p.b, { label: "lora.g" });
  const db = matmul(rt, dy, h, { transA: true, alpha: p.scale, label: "lora.db" });
  const da = matmul(rt, g, x, { transA: true, alpha: p.scale, label: "lora.da" });
  let dx: GpuTensor | undefined;
  if (opts.needDx ?? true) {
    dx = matmul(rt, dy, p.w, { label: "lora.dx" });
    matmul(rt, g, p.a, { out: dx, accumulate: true, alpha: p.scale });
  }
  return { dx, da, db, g };
}

/** Padded per-sample activations: x [S, T, in], h [S, T, r], dy [S, T, out], g [S, T, r]. */
export interface LoraSampleActs {
  x: GpuTensor;
  h: GpuTensor;
  dy: GpuTensor;
  g: GpuTensor;
  scale: number;
}

function sampleDims(op: string, s: LoraSampleActs) {
  if (s.x.shape.length !== 3) {
    throw new ShapeError(`${op}: tensor "x" (${s.x.label}) must be [S, T, in], got [${s.x.shape}]`);
  }
  const [S, T, dIn] = s.x.shape;
  const r = s.h.shape[2];
  expectShape(op, "h", s.h, [S, T, -1]);
  expectShape(op, "g", s.g, [S, T, r]);
  expectShape(op, "dy", s.dy, [S, T, -1]);
  return { S, T, dIn, r, dOut: s.dy.shape[2] };
}

/** Per-sample dA_i = s·G_iᵀX_i [S, r, in] and dB_i = s·dY_iᵀH_i [S, out, r] (batched GEMMs). */
export function loraPerSampleGrads(
  rt: Runtime,
  acts: LoraSampleActs,
): { da: GpuTensor; db: GpuTensor } {
  sampleDims("loraPerSampleGrads", acts);
  const da = matmul(rt, acts.g, acts.x, { transA: true, alpha: acts.scale, label: "lora.da_i" });
  const db = matmul(rt, acts.dy, acts.h, { transA: true, alpha: acts.scale, label: "lora.db_i" });
  return { da, db };
}

export type NormMethod = "materialize" | "ghost";

/**
 * Per-sample squared Frobenius norms ‖dA_i‖², ‖dB_i‖² → two [S] tensors.
 * - "materialize": form dA_i, dB_i (2·T·r·(in + out) flops per sample) and sum squares.
 * - "ghost": ‖s·UᵀV‖² = s²·⟨UUᵀ, VVᵀ⟩ with T×T Grams (T²·(in + out + 2r) flops per sample),
 *   cheaper only when T² < r·(in + out) roughly — i.e. rarely for LoRA (r small, T ≥ 64),
 *   which is why "materialize" is the default. Both are exact up to f32 rounding.
 */
export function loraPerSampleSqNorms(
  rt: Runtime,
  acts: LoraSampleActs,
  method: NormMethod = "materialize",
): { a: GpuTensor; b: GpuTensor } {
  const { S, T, dIn, r, dOut } = sampleDims("loraPerSampleSqNorms", acts);
  const s2 = acts.scale * acts.scale;
  if (method === "materialize") {
    const { da, db } = loraPerSampleGrads(rt, acts);
    const a = rowSumSq(rt, da.reshape([S, r * dIn]));
    const b = rowSumSq(rt, db.reshape([S, dOut * r]));
    rt.release(da);
    rt.release(db);
    return { a, b };
  }
  const gram = (u: GpuTensor, alpha: number) =>
    matmul(rt, u, u, { transB: true, alpha, label: "lora.gram" });
  const gg = gram(acts.g, s2);
  const xx = gram(acts.x, 1);
  const a = rowDot(rt, gg.reshape([S, T * T]), xx.reshape([S, T * T]));
  const dd = gram(acts.dy, s2);
  const hh = gram(acts.h, 1);
  const b = rowDot(rt, dd.reshape([S, T * T]), hh.reshape([S, T * T]));
  for (const t of [gg, xx, dd, hh]) rt.release(t);
  return { a, b };
}

/**
 * Book-keeping: Σ_i c_i·dA_i and Σ_i c_i·dB_i (c = per-sample clip factors, [S]) as one GEMM
 * each: Σ_i c_i·s·G_iᵀX_i = s·(diag(c)·G)ᵀ·X over all S·T rows. Writes into `out` (β = 0) or
 * adds into it with `accumulate`.
 */
export function loraWeightedGrads(
  rt: Runtime,
  acts: LoraSampleActs,
  coef: GpuTensor,
  out?: { da: GpuTensor; db: GpuTensor; accumulate?: boolean },
): { da: GpuTensor; db: GpuTensor } {
  const { S, T, dIn, r, dOut } = sampleDims("loraWeightedGrads", acts);
  expectShape("loraWeightedGrads", "coef", coef, [S]);
  const rows = S * T;
  const scaleRows = (u: GpuTensor, C: number) => {
    const o = rt.empty([rows, C], "lora.bk");
    rt.dispatch({
      shader: "lora.wgsl",
      entry: "rows_scale",
      bindings: { 1: u, 3: o, 4: coef },
      params: params([T, 0, rows, C]),
      workgroups: grid(Math.ceil((rows * C) / 64)),
    });
    return o;
  };
  const gc = scaleRows(acts.g, r);
  const dyc = scaleRows(acts.dy, dOut);
  const acc = out?.accumulate ?? false;
  const da = matmul(rt, gc, acts.x.reshape([rows, dIn]), {
    transA: true,
    alpha: acts.scale,
    out: out?.da,
    accumulate: acc,
    label: "lora.da_bk",
  });
  const db = matmul(rt, dyc, acts.h.reshape([rows, r]), {
    transA: true,
    alpha: acts.scale,
    out: out?.db,
    accumulate: acc,
    label: "lora.db_bk",
  });
  rt.release(gc);
  rt.release(dyc);
  return { da, db };
}
