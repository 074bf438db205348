/**
 * Thin typed wrappers over the kernels the encoder uses: dense contractions go to the shared
 * tuned GEMM (pipeline/gpu/ops/matmul.ts), attention to the shared attention kernels
 * (pipeline/gpu/ops/attention.ts); the rest are the encoder's own naive kernels
 * (shaders/enc_*.wgsl, one invocation per output element/row), written before the shared
 * layernorm/attention/loss kernels existed. Each wrapper checks its tensors.
 * Sizes are passed explicitly because arena tensors are views sized for the batch in flight.
 * enc_misc.wgsl's uniform block has 4 u32 fields before its f32s: always pass 4 u32s there.
 */
import { grid, params, type Runtime } from "../gpu/runtime.ts";
import { expectShape, GpuTensor } from "../gpu/tensor.ts";
import { ShapeError } from "../gpu/errors.ts";
import { matmul } from "../gpu/ops/matmul.ts";
import {
  attentionBackward as sharedAttentionBackward,
  attentionForward as sharedAttentionForward,
} from "../gpu/ops/attention.ts";

export const ENC_SHADERS = [
  "matmul.wgsl",
  "attention.wgsl",
  "enc_norm.wgsl",
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

/** o[s, j] (+)= Σ_{t<rowsPerSample} x[s·rowsPerSample + t, j]. */
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

/** o[r] (+)= Σ_j x[r, j]². */
export function rowSumSq(
  rt: Runtime,
  x: GpuTensor,
  o: GpuTensor,
  rows: number,
  cols: number,
  acc = false,
): void {
  need("rowSumSq", "x", x, rows * cols);
  need("rowSumSq", "out", o, rows);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "row_sumsq",
    bindings: { 1: x, 3: o },
    params: params([rows, cols, 0, acc ? 1 : 0]),
    workgroups: lin(rows),
  });
}

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

/** Per-sample embedding-table grads: out[s, ids[r], :] += g[r, :] (out zeroed by the caller). */
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

export const ACT_KIND = { gelu: 0, gelu_new: 1, relu: 2, tanh: 3 } as const;
export type ActName = keyof typeof ACT_KIND;

export function actForward(rt: Runtime, kind: ActName, x: GpuTensor, y: GpuTensor, n: number) {
  need("actForward", "x", x, n);
  need("actForward", "y", y, n);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "act_forward",
    bindings: { 1: x, 3: y },
    params: params([n, ACT_KIND[kind]]),
    workgroups: lin(n),
  });
}

/** dx = dy · act'(x), x = the pre-activation. */
export function actBackward(
  rt: Runtime,
  kind: ActName,
  x: GpuTensor,
  dy: GpuTensor,
  dx: GpuTensor,
  n: number,
) {
  need("actBackward", "x", x, n);
  need("actBackward", "dy", dy, n);
  need("actBackward", "dx", dx, n);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "act_backward",
    bindings: { 1: x, 2: dy, 3: dx },
    params: params([n, ACT_KIND[kind]]),
    workgroups: lin(n),
  });
}

/** o = a + alpha·b */
export function add(rt: Runtime, a: GpuTensor, b: GpuTensor, o: GpuTensor, n: number, alpha = 1) {
  need("add", "a", a, n);
  need("add", "b", b, n);
  need("add", "out", o, n);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "add",
    bindings: { 1: a, 2: b, 3: o },
    params: params([n, 0, 0, 0], [alpha]),
    workgroups: lin(n),
  });
}

/** o += alpha·x */
export function addInto(rt: Runtime, x: GpuTensor, o: GpuTensor, n: number, alpha = 1) {
  need("addInto", "x", x, n);
  need("addInto", "out", o, n);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "add_into",
    bindings: { 1: x, 3: o },
    params: params([n, 0, 0, 0], [alpha]),
    workgroups: lin(n),
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

export function layerNormForward(
  rt: Runtime,
  x: GpuTensor,
  g: GpuTensor,
  b: GpuTensor,
  y: GpuTensor,
  mean: GpuTensor,
  rstd: GpuTensor,
  rows: number,
  eps: number,
) {
  const n = g.size;
  need("layerNormForward", "x", x, rows * n);
  need("layerNormForward", "y", y, rows * n);
  need("layerNormForward", "mean", mean, rows);
  need("layerNormForward", "rstd", rstd, rows);
  rt.dispatch({
    shader: "enc_norm.wgsl",
    entry: "forward",
    bindings: { 1: x, 2: g, 3: b, 4: y, 5: mean, 6: rstd },
    params: params([rows, n], [eps]),
    workgroups: lin(rows),
  });
}

/** dx from dy; with `rowGrads` also per-row dγ rows (dy·x̂) and dβ rows (dy). */
export function layerNormBackward(
  rt: Runtime,
  x: GpuTensor,
  g: GpuTensor,
  mean: GpuTensor,
  rstd: GpuTensor,
  dy: GpuTensor,
  dx: GpuTensor,
  rows: number,
  rowGrads?: { dg: GpuTensor; db: GpuTensor },
) {
  const n = g.size;
  need("layerNormBackward", "dy", dy, rows * n);
  need("layerNormBackward", "dx", dx, rows * n);
  const bindings: Record<number, GpuTensor> = { 1: x, 2: g, 7: dy, 8: mean, 9: rstd, 10: dx };
  if (rowGrads) {
    need("layerNormBackward", "dgRows", rowGrads.dg, rows * n);
    need("layerNormBackward", "dbRows", rowGrads.db, rows * n);
    bindings[11] = rowGrads.dg;
    bindings[12] = rowGrads.db;
  }
  rt.dispatch({
    shader: "enc_norm.wgsl",
    entry: rowGrads ? "backward_params" : "backward",
    bindings,
    params: params([rows, n]),
    workgroups: lin(rows),
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

/** Per-sample loss[b] and dlogits (kind 0: masked BCE mean over counted labels; 1: CE). */
export function lossForward(
  rt: Runtime,
  kind: 0 | 1,
  logits: GpuTensor,
  targets: GpuTensor,
  mask: GpuTensor,
  loss: GpuTensor,
  dlogits: GpuTensor,
  b: number,
  labels: number,
) {
  for (const [n, t] of [["logits", logits], ["targets", targets], ["mask", mask]] as const) {
    need("lossForward", n, t, b * labels);
  }
  need("lossForward", "loss", loss, b);
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "loss",
    bindings: { 1: logits, 3: loss, 7: targets, 8: mask, 10: dlogits },
    params: params([b, labels, kind]),
    workgroups: lin(b),
  });
}

/** o = keep(seed, i) ? x/(1-p) : 0 — linear in x, so the same call is its own backward. */
export function dropout(
  rt: Runtime,
  x: GpuTensor,
  o: GpuTensor,
  n: number,
  p: number,
  seed: number,
) {
  need("dropout", "x", x, n);
  need("dropout", "out", o, n);
  const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  rt.dispatch({
    shader: "enc_misc.wgsl",
    entry: "dropout",
    bindings: { 1: x, 3: o },
    params: params([n, seed >>> 0, threshold, 0], [1 / (1 - p)]),
    workgroups: lin(n),
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
