/**
 * LayerNorm over the last dimension (shaders/layernorm.wgsl). The forward saves per-row mean
 * and rstd; the backward gives dX and, when asked, dγ/dβ summed over rows (or over groups of
 * rows, e.g. per sample for DP), written or accumulated.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "layernorm.wgsl";
/** Rows per workgroup of forward / backward_x (one invocation per row). */
const ROWS_PER_WG = 64;

function rowsOf(op: string, name: string, t: GpuTensor, h: number): number {
  if (t.shape.length < 1 || t.shape[t.shape.length - 1] !== h || t.dtype !== "f32") {
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has shape [${t.shape}] ${t.dtype}, expected f32 [..., ${h}]`,
    );
  }
  return t.size / h;
}

export interface LayerNormForward {
  /** [..., H] */
  x: GpuTensor;
  /** [H] */
  gamma: GpuTensor;
  /** [H] */
  beta: GpuTensor;
  /** same shape as x */
  y: GpuTensor;
  /** [rows] saved for the backward */
  mean: GpuTensor;
  /** [rows] saved for the backward */
  rstd: GpuTensor;
  eps: number;
}

export function layerNormForward(rt: Runtime, a: LayerNormForward): void {
  const h = a.gamma.shape[0];
  expectShape("layerNormForward", "gamma", a.gamma, [h]);
  expectShape("layerNormForward", "beta", a.beta, [h]);
  const rows = rowsOf("layerNormForward", "x", a.x, h);
  expectShape("layerNormForward", "y", a.y, a.x.shape);
  expectShape("layerNormForward", "mean", a.mean, [rows]);
  expectShape("layerNormForward", "rstd", a.rstd, [rows]);
  if (!(a.eps > 0)) throw new RangeError(`layerNormForward: eps ${a.eps} must be > 0`);
  rt.dispatch({
    shader: FILE,
    entry: "forward",
    bindings: { 1: a.x, 2: a.gamma, 3: a.beta, 4: a.y, 5: a.mean, 6: a.rstd },
    params: params([rows, h, rows, 0], [a.eps]),
    workgroups: grid(Math.ceil(rows / ROWS_PER_WG)),
  });
}

export interface LayerNormBackward {
  /** forward input [..., H] */
  x: GpuTensor;
  gamma: GpuTensor;
  mean: GpuTensor;
  rstd: GpuTensor;
  /** upstream gradient, shape of x */
  dy: GpuTensor;
  /** gradient w.r.t. x, shape of x (may not alias dy) */
  dx: GpuTensor;
  /** [G, H] (or [H] when G = 1): omit both to skip the parameter gradients (frozen LayerNorm). */
  dgamma?: GpuTensor;
  dbeta?: GpuTensor;
  /** Add into dgamma/dbeta instead of overwriting (default false). */
  accumulate?: boolean;
  /** Rows per parameter-gradient group (default: all rows, G = 1). */
  groupRows?: number;
}

export function layerNormBackward(rt: Runtime, a: LayerNormBackward): void {
  const op = "layerNormBackward";
  const h = a.gamma.shape[0];
  expectShape(op, "gamma", a.gamma, [h]);
  const rows = rowsOf(op, "x", a.x, h);
  expectShape(op, "dy", a.dy, a.x.shape);
  expectShape(op, "dx", a.dx, a.x.shape);
  expectShape(op, "mean", a.mean, [rows]);
  expectShape(op, "rstd", a.rstd, [rows]);
  const groupRows = a.groupRows ?? rows;
  const u = params([rows, h, Math.max(groupRows, 1), a.accumulate ? 1 : 0], [0]);
  rt.dispatch({
    shader: FILE,
    entry: "backward_x",
    bindings: { 1: a.x, 2: a.gamma, 7: a.dy, 8: a.dx, 11: a.mean, 12: a.rstd },
    params: u,
    workgroups: grid(Math.ceil(rows / ROWS_PER_WG)),
  });
  if (!a.dgamma && !a.dbeta) return;
  if (!a.dgamma || !a.dbeta) throw new ShapeError(`${op}: give both dgamma and dbeta, or neither`);
  if (!Number.isInteger(groupRows) || groupRows < 1 || rows % groupRows !== 0) {
    throw new ShapeError(`${op}: groupRows ${groupRows} does not divide the ${rows} rows`);
  }
  const groups = rows / groupRows;
  for (const [name, t] of [["dgamma", a.dgamma], ["dbeta", a.dbeta]] as const) {
    if (t.size !== groups * h || t.shape[t.shape.length - 1] !== h) {
      throw new ShapeError(
        `${op}: tensor "${name}" (${t.label}) has shape [${t.shape}], expected [${groups}, ${h}]`,
      );
    }
  }
  rt.dispatch({
    shader: FILE,
    entry: "backward_params",
    bindings: { 1: a.x, 7: a.dy, 9: a.dgamma, 10: a.dbeta, 11: a.mean, 12: a.rstd },
    params: u,
    workgroups: [Math.ceil(h / 64), groups],
  });
}
