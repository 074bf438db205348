/**
 * Thin typed wrappers over the kernels the encoder uses: dense contractions go to the shared
 * tuned GEMM (pipeline/gpu/ops/matmul.ts), attention to the shared attention kernels
 * (pipeline/gpu/ops/attention.ts); LayerNorm, activations, loss, residual adds, dropout and the
 * non-segmented reductions are called from the encoder straight on the shared ops
 * (pipeline/gpu/ops/{layernorm,gelu,loss,elementwise,reduce}.ts). What remains here on the
 * encoder's own shaders/enc_misc.wgsl has no shared equivalent (see that file's header).
 * Each wrapper checks its tensors. Sizes are passed explicitly because arena tensors are views
 * sized for the batch in flight. enc_misc.wgsl's uniform block is 4 u32s (params pads to 16 B).
 */
import { grid, params, type Runtime } from "../gpu/runtime.ts";
import { expectShape, GpuTensor } from "../gpu/tensor.ts";
import { ShapeError } from "../gpu/errors.ts";
import { matmul } from "../gpu/ops/matmul.ts";
import {
  attentionBackward as sharedAttentionBackward,
  attentionForward as sharedAttentionForward,
} from "../gpu/ops/attention.ts";

/** Every shader file the encoder dispatches (Runtime.create preloads exactly these). */
export const ENC_SHADERS = [
  "matmul.wgsl",
  "attention.wgsl",
  "layernorm.wgsl",
  "gelu.wgsl",
  "elementwise.wgsl",
  "loss.wgsl",
  "reduce.wgsl",
  "pooling.wgsl",
  "enc_misc.wgsl",
] as const;

/** A view of the first elements of `t` under a (smaller or equal) shape: arena slices. */
export function view(t: GpuTensor, shape: readonly number[], label = t.label): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n * 4 > t.buffer.size) {
    throw new ShapeError(`${label}: view [${shape}] exceeds buffer of ${t.label}`);
  }
  return new GpuTensor(t.buffer, [...shape], t.dtype, label);
}

function need(op: string, name: string, t: GpuTensor, elems: number): void {
  if (t.size < elems) {
    throw new ShapeError(`${op}: tensor "${name}" (${t.label}) has ${t.size} < ${elems} elements`);
  }
}

const lin = (n: number) => grid(Math.ceil(n / 64));

/** y[rows, out] (+)= alpha · x·Wᵀ (+ b), W in HF [out, in] layout (shared tuned GEMM). */
export function linearForward(
  rt: Runtime,
  x: GpuTensor,
  w: GpuTensor,
  b: GpuTensor | null,
  y: GpuTensor,
  rows: number,
  opt: { alpha?: number; acc?: boolean } = {},
): void {
  expectShape("linearForward", "w", w, [-1, -1]);
  const [out, inn] = w.shape;
  matmul(rt, view(x, [rows, inn]), w, {
    transB: true,
    bias: b ?? undefined,
    out: view(y, [rows, out]),
    accumulate: opt.acc,
    alpha: opt.alpha,
  });
}

/** dx[rows, in] (+)= alpha · dy·W. */
export function linearBackwardInput(
  rt: Runtime,
  dy: GpuTensor,
  w: GpuTensor,
  dx: GpuTensor,
  rows: number,
  opt: { alpha?: number; acc?: boolean } = {},
): void {
  const [out, inn] = w.shape;
  matmul(rt, view(dy, [rows, out]), w, {
    out: view(dx, [rows, inn]),
    accumulate: opt.acc,
    alpha: opt.alpha,
  });
}

/**
 * Per-sample weight gradients: g[s, out, in] (+)= alpha · Σ_{t<T} dy[s·T+t, :]ᵀ ⊗ x[s·T+t, :]
 * for s < samples (one batched GEMM, batch = sample, contraction over the sample's rows).
 */
export function weightGradPerSample(
  rt: Runtime,
  dy: GpuTensor,
  x: GpuTensor,
  g: GpuTensor,
  dims: { samples: number; rowsPerSample: number; out: number; inn: number },
  opt: { alpha?: number; acc?: boolean } = {},
): void {
  const { samples, rowsPerSample: t, out, inn } = dims;
  matmul(rt, view(dy, [samples, t, out]), view(x, [samples, t, inn]), {
    transA: true,
    out: view(g, [samples, out, inn]),
    accumulate: opt.acc,
    alpha: opt.alpha,
  });
}

/** o[1, n] (+)= c[1, b]·G[b, n]: the book-keeping weighted sum of per-sample rows. */
export function weightedRows(
  rt: Runtime,
  c: GpuTensor,
  g: GpuTensor,
  o: GpuTensor,
  b: number,
  n: number,
  acc = false,
): void {
  matmul(rt, view(c, [1, b]), view(g, [b, n]), { out: view(o, [1, n]), accumulate: acc });
}

/**
 * o[s, j] (+)= Σ_{t<rowsPerSample} x[s·rowsPerSample + t, j]: per-sample bias gradients. Kept
 * because it accumulates (ALBERT's shared layers add every application into one [B, P] row) and
 * needs no offsets buffer; the shared segmentSum overwrites. One segment = use reduce.colSum.
 */
export function segColSum(
  rt: Runtime,
  x: GpuTensor,
  o: GpuTensor,
  segments: number,
  rowsPerSeg: number,
  cols: number,
  acc = false,
): void {
  need("segColSum", "x", x, segments * rowsPerSeg * cols);
  need("segColSum", "out", o, segments * cols);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "seg_colsum",
    bindings: { 1: x, 3: o },
    params: params([segments * cols, cols, rowsPerSeg, acc ? 1 : 0]),
    workgroups: lin(segments * cols),
  });
}

/**
 * x[r, :] = word[ids[r]] + pos[pids[r]] + type[tids[r]] with explicit position ids: the shared
 * embeddingForward derives the position from the row (r mod T + offset), which cannot express
 * RoBERTa's padding-aware ids (HF create_position_ids_from_input_ids).
 */
export function embedForward(
  rt: Runtime,
  ids: GpuTensor,
  pids: GpuTensor,
  tids: GpuTensor,
  word: GpuTensor,
  pos: GpuTensor,
  type: GpuTensor,
  out: GpuTensor,
  rows: number,
): void {
  const e = word.shape[1];
  for (const [n, t] of [["ids", ids], ["positionIds", pids], ["typeIds", tids]] as const) {
    expectShape("embedForward", n, t, [-1], "u32");
    need("embedForward", n, t, rows);
  }
  need("embedForward", "out", out, rows * e);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "embed_forward",
    bindings: { 3: out, 4: ids, 5: pids, 6: tids, 7: word, 8: pos, 9: type },
    params: params([rows * e, e]),
    workgroups: lin(rows * e),
  });
}

/**
 * Per-sample embedding-table grads: out[s, ids[r], :] += g[r, :] (out zeroed by the caller).
 * The shared embeddingBackward sums over the batch only, and its word-table pass (O(N²) links)
 * measured 2–8x slower than this even for the sum (B 32, T 40/96, E 128/512), so the summed
 * route uses this kernel too (one segment).
 */
export function embedScatterPerSample(
  rt: Runtime,
  ids: GpuTensor,
  g: GpuTensor,
  out: GpuTensor,
  dims: { samples: number; rowsPerSample: number; tableRows: number; e: number },
): void {
  const { samples, rowsPerSample, tableRows, e } = dims;
  need("embedScatterPerSample", "ids", ids, samples * rowsPerSample);
  need("embedScatterPerSample", "out", out, samples * tableRows * e);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "scatter_ps",
    bindings: { 1: g, 3: out, 4: ids },
    params: params([samples * e, e, rowsPerSample, tableRows]),
    workgroups: lin(samples * e),
  });
}

/** o[b, :] = x[b·stride, :] (e.g. the [CLS] row of each sample). */
export function rowsGather(
  rt: Runtime,
  x: GpuTensor,
  o: GpuTensor,
  b: number,
  cols: number,
  stride: number,
) {
  need("rowsGather", "x", x, ((b - 1) * stride + 1) * cols);
  need("rowsGather", "out", o, b * cols);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "rows_gather",
    bindings: { 1: x, 3: o },
    params: params([b * cols, cols, stride]),
    workgroups: lin(b * cols),
  });
}

/** o[b·stride, :] = x[b, :] (other rows untouched). */
export function rowsScatter(
  rt: Runtime,
  x: GpuTensor,
  o: GpuTensor,
  b: number,
  cols: number,
  stride: number,
) {
  need("rowsScatter", "x", x, b * cols);
  need("rowsScatter", "out", o, ((b - 1) * stride + 1) * cols);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "rows_scatter",
    bindings: { 1: x, 3: o },
    params: params([b * cols, cols, stride]),
    workgroups: lin(b * cols),
  });
}

export interface AttnDims {
  b: number;
  t: number;
  heads: number;
  hidden: number;
}

function attnViews(d: AttnDims, lens: GpuTensor) {
  expectShape("attention", "lens", lens, [-1], "u32");
  need("attention", "lens", lens, d.b);
  const x = (t: GpuTensor, n: string) => {
    need("attention", n, t, d.b * d.t * d.hidden);
    return view(t, [d.b, d.t, d.hidden]);
  };
  const pv = (t: GpuTensor, n: string) => {
    need("attention", n, t, d.b * d.heads * d.t * d.t);
    return view(t, [d.b, d.heads, d.t, d.t]);
  };
  return { x, pv, mask: { lengths: view(lens, [d.b]) } };
}

/**
 * ctx = softmax(q·kᵀ/√dh + key-padding mask)·v per head; probs saved for backward. Runs on the
 * shared attention kernels (shaders/attention.wgsl: register-blocked rows, ~3x faster here
 * than the encoder's first naive per-row kernels at T 96).
 */
export function attentionForward(
  rt: Runtime,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  lens: GpuTensor,
  probs: GpuTensor,
  ctx: GpuTensor,
  d: AttnDims,
) {
  const { x, pv, mask } = attnViews(d, lens);
  sharedAttentionForward(rt, {
    q: x(q, "q"),
    k: x(k, "k"),
    v: x(v, "v"),
    mask,
    numHeads: d.heads,
    out: x(ctx, "ctx"),
    probs: pv(probs, "probs"),
  });
}

export function attentionBackward(
  rt: Runtime,
  saved: { q: GpuTensor; k: GpuTensor; v: GpuTensor; lens: GpuTensor; probs: GpuTensor },
  dctx: GpuTensor,
  scratchDs: GpuTensor,
  out: { dq: GpuTensor; dk: GpuTensor; dv: GpuTensor },
  d: AttnDims,
) {
  const { x, pv, mask } = attnViews(d, saved.lens);
  sharedAttentionBackward(rt, {
    q: x(saved.q, "q"),
    k: x(saved.k, "k"),
    v: x(saved.v, "v"),
    probs: pv(saved.probs, "probs"),
    mask,
    numHeads: d.heads,
    dout: x(dctx, "dctx"),
    dq: x(out.dq, "dq"),
    dk: x(out.dk, "dk"),
    dv: x(out.dv, "dv"),
    dscores: pv(scratchDs, "ds"),
  });
}

/** o[m, :] = x[idx[m], :] for m < count (idx: distinct row indices, u32). */
export function rowsGatherIdx(
  rt: Runtime,
  x: GpuTensor,
  idx: GpuTensor,
  o: GpuTensor,
  count: number,
  cols: number,
) {
  expectShape("rowsGatherIdx", "idx", idx, [-1], "u32");
  need("rowsGatherIdx", "idx", idx, count);
  need("rowsGatherIdx", "out", o, count * cols);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "rows_gather_idx",
    bindings: { 1: x, 3: o, 4: idx },
    params: params([count * cols, cols]),
    workgroups: lin(count * cols),
  });
}

/** o[idx[m], :] = x[m, :] for m < count; other rows of o untouched (idx must be distinct). */
export function rowsScatterIdx(
  rt: Runtime,
  x: GpuTensor,
  idx: GpuTensor,
  o: GpuTensor,
  count: number,
  cols: number,
) {
  expectShape("rowsScatterIdx", "idx", idx, [-1], "u32");
  need("rowsScatterIdx", "idx", idx, count);
  need("rowsScatterIdx", "x", x, count * cols);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "rows_scatter_idx",
    bindings: { 1: x, 3: o, 4: idx },
    params: params([count * cols, cols]),
    workgroups: lin(count * cols),
  });
}

/**
 * MLM softmax cross-entropy (one invocation per predicted row). Kept because the shared
 * crossEntropy (a workgroup tree reduction per row) measured 2–2.6x slower at V 3717 and 1.8x
 * at V 30522 (M ≈ 0.15·B·T rows) on the software adapter, where barriers dominate.
 * Softmax cross-entropy per row against class ids (u32): loss[m] = logsumexp(z_m) − z_m[y_m],
 * dlogits[m, :] = softmax(z_m) − onehot(y_m) (the gradient of loss[m]).
 */
export function classCrossEntropy(
  rt: Runtime,
  logits: GpuTensor,
  targets: GpuTensor,
  loss: GpuTensor,
  dlogits: GpuTensor,
  rows: number,
  classes: number,
) {
  expectShape("classCrossEntropy", "targets", targets, [-1], "u32");
  need("classCrossEntropy", "targets", targets, rows);
  need("classCrossEntropy", "logits", logits, rows * classes);
  need("classCrossEntropy", "dlogits", dlogits, rows * classes);
  need("classCrossEntropy", "loss", loss, rows);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "mlm_ce",
    bindings: { 1: logits, 3: loss, 4: targets, 10: dlogits },
    params: params([rows, classes]),
    workgroups: lin(rows),
  });
}
