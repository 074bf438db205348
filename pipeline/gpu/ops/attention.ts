/**
 * Scaled dot-product attention with a key-padding mask (shaders/attention.wgsl), and a
 * standalone row softmax. Q, K, V are [B, T, nh·dh] with heads interleaved as in HF; the
 * softmax P [B, nh, T, T] is saved by the forward for the backward.
 *
 * A sample whose every key is masked (length 0) gets P = 0 and output 0 (finite, documented
 * in the shader); padded query rows of other samples are ordinary rows.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "attention.wgsl";
/** Largest head size the kernels support (one Q/dO row is staged in workgroup memory). */
export const MAX_HEAD_DIM = 128;
/** Rows per workgroup of the dh % 4 == 0 fast path (R in attention.wgsl). */
const ROW_BLOCK = 8;

/** Key-padding mask: per-sample lengths u32 [B], or a u32 [B, T] key mask (nonzero = token). */
export type KeyMask = { lengths: GpuTensor } | { keyMask: GpuTensor };

export interface AttentionShape {
  batch: number;
  seqLen: number;
  numHeads: number;
  headDim: number;
}

function shapeOf(op: string, q: GpuTensor, numHeads: number): AttentionShape {
  if (q.shape.length !== 3) {
    throw new ShapeError(
      `${op}: tensor "q" (${q.label}) has shape [${q.shape}], expected [B, T, C]`,
    );
  }
  const [batch, seqLen, c] = q.shape;
  if (!Number.isInteger(numHeads) || numHeads < 1 || c % numHeads !== 0) {
    throw new ShapeError(`${op}: hidden size ${c} of "q" is not divisible by numHeads ${numHeads}`);
  }
  const headDim = c / numHeads;
  if (headDim > MAX_HEAD_DIM) {
    throw new ShapeError(`${op}: head size ${headDim} exceeds the supported ${MAX_HEAD_DIM}`);
  }
  return { batch, seqLen, numHeads, headDim };
}

function maskBinding(op: string, mask: KeyMask, s: AttentionShape): [GpuTensor, number] {
  if ("lengths" in mask) {
    expectShape(op, "lengths", mask.lengths, [s.batch], "u32");
    return [mask.lengths, 0];
  }
  expectShape(op, "keyMask", mask.keyMask, [s.batch, s.seqLen], "u32");
  return [mask.keyMask, 1];
}

function uniforms(s: AttentionShape, scale: number): ArrayBuffer {
  return params([s.batch, s.seqLen, s.numHeads, s.headDim], [scale]);
}

export interface AttentionForward {
  q: GpuTensor;
  k: GpuTensor;
  v: GpuTensor;
  mask: KeyMask;
  numHeads: number;
  /** [B, T, C] */
  out: GpuTensor;
  /** [B, nh, T, T], saved for the backward */
  probs: GpuTensor;
  /** Score scale (default 1/√dh). */
  scale?: number;
}

export function attentionForward(rt: Runtime, a: AttentionForward): void {
  const op = "attentionForward";
  const s = shapeOf(op, a.q, a.numHeads);
  expectShape(op, "k", a.k, a.q.shape);
  expectShape(op, "v", a.v, a.q.shape);
  expectShape(op, "out", a.out, a.q.shape);
  expectShape(op, "probs", a.probs, [s.batch, s.numHeads, s.seqLen, s.seqLen]);
  const [m, kind] = maskBinding(op, a.mask, s);
  const u = uniforms(s, a.scale ?? 1 / Math.sqrt(s.headDim));
  const rowsGrid = grid(s.batch * s.numHeads * s.seqLen);
  if (s.headDim % 4 === 0) {
    const blocks = grid(s.batch * s.numHeads * Math.ceil(s.seqLen / ROW_BLOCK));
    const dh4 = { MASK_KIND: kind, DH4_WG: Math.min(s.headDim / 4, 32) };
    rt.dispatch({
      shader: FILE,
      entry: "scores4",
      bindings: { 4: m, 5: a.probs, 14: a.q, 15: a.k },
      params: u,
      workgroups: blocks,
      constants: { MASK_KIND: kind },
    });
    rt.dispatch({
      shader: FILE,
      entry: "pv4",
      bindings: { 4: m, 8: a.probs, 16: a.v, 18: a.out },
      params: u,
      workgroups: blocks,
      constants: dh4,
    });
    return;
  }
  rt.dispatch({
    shader: FILE,
    entry: "scores_softmax",
    bindings: { 1: a.q, 2: a.k, 4: m, 5: a.probs },
    params: u,
    workgroups: rowsGrid,
    constants: { MASK_KIND: kind },
  });
  rt.dispatch({
    shader: FILE,
    entry: "pv",
    bindings: { 3: a.v, 6: a.out, 8: a.probs },
    params: u,
    workgroups: rowsGrid,
  });
}

export interface AttentionBackward {
  q: GpuTensor;
  k: GpuTensor;
  v: GpuTensor;
  /** the forward's P */
  probs: GpuTensor;
  /** the forward's mask */
  mask: KeyMask;
  numHeads: number;
  /** upstream gradient [B, T, C] */
  dout: GpuTensor;
  dq: GpuTensor;
  dk: GpuTensor;
  dv: GpuTensor;
  /** Scratch [B, nh, T, T] for the score gradient; taken from the pool when omitted. */
  dscores?: GpuTensor;
  /** Must equal the forward's scale (default 1/√dh). */
  scale?: number;
}

/** dQ, dK, dV (overwritten). Masked keys get zero dK/dV because their P is 0. */
export function attentionBackward(rt: Runtime, a: AttentionBackward): void {
  const op = "attentionBackward";
  const s = shapeOf(op, a.q, a.numHeads);
  for (
    const [name, t] of [["k", a.k], ["v", a.v], ["dout", a.dout], ["dq", a.dq], ["dk", a.dk], [
      "dv",
      a.dv,
    ]] as const
  ) expectShape(op, name, t, a.q.shape);
  const pShape = [s.batch, s.numHeads, s.seqLen, s.seqLen];
  expectShape(op, "probs", a.probs, pShape);
  const [m, kind] = maskBinding(op, a.mask, s);
  const ds = a.dscores ?? rt.empty(pShape, "attention dscores");
  expectShape(op, "dscores", ds, pShape);
  const u = uniforms(s, a.scale ?? 1 / Math.sqrt(s.headDim));
  const wg = grid(s.batch * s.numHeads * s.seqLen);
  if (s.headDim % 4 === 0) {
    const blocks = grid(s.batch * s.numHeads * Math.ceil(s.seqLen / ROW_BLOCK));
    const dh4 = { MASK_KIND: kind, DH4_WG: Math.min(s.headDim / 4, 32) };
    rt.dispatch({
      shader: FILE,
      entry: "bwd_ds4",
      bindings: { 4: m, 8: a.probs, 9: ds, 16: a.v, 17: a.dout },
      params: u,
      workgroups: blocks,
      constants: { MASK_KIND: kind },
    });
    rt.dispatch({
      shader: FILE,
      entry: "bwd_dq4",
      bindings: { 4: m, 13: ds, 15: a.k, 19: a.dq },
      params: u,
      workgroups: blocks,
      constants: dh4,
    });
    rt.dispatch({
      shader: FILE,
      entry: "bwd_dkv4",
      bindings: { 4: m, 8: a.probs, 13: ds, 14: a.q, 17: a.dout, 20: a.dk, 21: a.dv },
      params: u,
      workgroups: blocks,
      constants: dh4,
    });
  } else {
    rt.dispatch({
      shader: FILE,
      entry: "bwd_ds",
      bindings: { 3: a.v, 7: a.dout, 8: a.probs, 9: ds },
      params: u,
      workgroups: wg,
    });
    rt.dispatch({
      shader: FILE,
      entry: "bwd_dq",
      bindings: { 2: a.k, 10: a.dq, 13: ds },
      params: u,
      workgroups: wg,
    });
    rt.dispatch({
      shader: FILE,
      entry: "bwd_dkv",
      bindings: { 1: a.q, 4: m, 7: a.dout, 8: a.probs, 11: a.dk, 12: a.dv, 13: ds },
      params: u,
      workgroups: wg,
      constants: { MASK_KIND: kind },
    });
  }
  // Safe to pool now: any later user of this buffer is recorded (and runs) after these reads.
  if (!a.dscores) rt.release(ds);
}

function rowsCols(op: string, name: string, t: GpuTensor): [number, number] {
  if (t.shape.length < 1 || t.dtype !== "f32") {
    throw new ShapeError(`${op}: tensor "${name}" (${t.label}) must be f32 [..., n]`);
  }
  const n = t.shape[t.shape.length - 1];
  return [n === 0 ? 0 : t.size / n, n];
}

/** y = softmax over the last dimension of x (−∞ allowed; an all −∞ row gives zeros). */
export function softmaxForward(rt: Runtime, x: GpuTensor, y: GpuTensor): void {
  const [rows, n] = rowsCols("softmaxForward", "x", x);
  expectShape("softmaxForward", "y", y, x.shape);
  rt.dispatch({
    shader: FILE,
    entry: "softmax_fwd",
    bindings: { 1: x, 5: y },
    params: params([rows, n, 0, 0], [0]),
    workgroups: grid(rows),
  });
}

/** dx = y ⊙ (dy − Σ y·dy) over the last dimension. */
export function softmaxBackward(rt: Runtime, y: GpuTensor, dy: GpuTensor, dx: GpuTensor): void {
  const [rows, n] = rowsCols("softmaxBackward", "y", y);
  expectShape("softmaxBackward", "dy", dy, y.shape);
  expectShape("softmaxBackward", "dx", dx, y.shape);
  rt.dispatch({
    shader: FILE,
    entry: "softmax_bwd",
    bindings: { 7: dy, 8: y, 9: dx },
    params: params([rows, n, 0, 0], [0]),
    workgroups: grid(rows),
  });
}
