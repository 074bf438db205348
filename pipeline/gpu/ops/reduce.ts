/**
 * Reductions used by the backward pass and the DP step: per-row squared norms and dot products
 * (per-sample gradient norms), column sums (bias gradients), segmented row sums (token rows →
 * samples) and a full sum. Record only; no sync.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const SHADER = "reduce.wgsl";

function dims(op: string, name: string, x: GpuTensor): [number, number] {
  if (x.shape.length !== 2) {
    throw new ShapeError(`${op}: tensor "${name}" (${x.label}) must be [R, C], got [${x.shape}]`);
  }
  expectShape(op, name, x, [-1, -1]);
  return [x.shape[0], x.shape[1]];
}

/** out[r] = Σ_c x[r,c]², x [R, C] → [R]. */
export function rowSumSq(rt: Runtime, x: GpuTensor, out?: GpuTensor): GpuTensor {
  const [R, C] = dims("rowSumSq", "x", x);
  const o = out ?? rt.empty([R], "rowSumSq.out");
  expectShape("rowSumSq", "out", o, [R]);
  rt.dispatch({
    shader: SHADER,
    entry: "row_sumsq",
    bindings: { 1: x, 3: o },
    params: params([R, C, 0]),
    workgroups: grid(Math.ceil(R / 64)),
  });
  return o;
}

/** out[r] = Σ_c x[r,c]·y[r,c], x and y [R, C] → [R]. */
export function rowDot(rt: Runtime, x: GpuTensor, y: GpuTensor, out?: GpuTensor): GpuTensor {
  const [R, C] = dims("rowDot", "x", x);
  expectShape("rowDot", "y", y, [R, C]);
  const o = out ?? rt.empty([R], "rowDot.out");
  expectShape("rowDot", "out", o, [R]);
  rt.dispatch({
    shader: SHADER,
    entry: "row_dot",
    bindings: { 1: x, 2: y, 3: o },
    params: params([R, C, 0]),
    workgroups: grid(Math.ceil(R / 64)),
  });
  return o;
}

/** out[c] = Σ_r x[r,c] (bias gradient); with `accumulate`, adds into `out`. x [R, C] → [C]. */
export function colSum(
  rt: Runtime,
  x: GpuTensor,
  opts: { out?: GpuTensor; accumulate?: boolean } = {},
): GpuTensor {
  const [R, C] = dims("colSum", "x", x);
  if (opts.accumulate && !opts.out) {
    throw new ShapeError(`colSum: accumulate needs an existing "out" tensor`);
  }
  const o = opts.out ?? rt.empty([C], "colSum.out");
  expectShape("colSum", "out", o, [C]);
  rt.dispatch({
    shader: SHADER,
    entry: "col_sum",
    bindings: { 1: x, 3: o },
    params: params([R, C, 0]),
    workgroups: grid(Math.ceil(C / 64)),
    constants: { ACC: opts.accumulate ? 1 : 0 },
  });
  return o;
}

/**
 * out[s,c] = Σ of rows offsets[s] ≤ r < offsets[s+1] of x [R, C] → [S, C]. `offsets` is u32
 * [S+1], non-decreasing with offsets[S] ≤ R (checked on the host when `hostOffsets` is given;
 * the GPU tensor itself cannot be checked without a read-back).
 */
export function segmentSum(
  rt: Runtime,
  x: GpuTensor,
  offsets: GpuTensor,
  opts: { out?: GpuTensor; hostOffsets?: ArrayLike<number> } = {},
): GpuTensor {
  const [R, C] = dims("segmentSum", "x", x);
  if (offsets.shape.length !== 1 || offsets.shape[0] < 1) {
    throw new ShapeError(`segmentSum: tensor "offsets" (${offsets.label}) must be [S+1]`);
  }
  expectShape("segmentSum", "offsets", offsets, [-1], "u32");
  const S = offsets.shape[0] - 1;
  const h = opts.hostOffsets;
  if (h) {
    if (h.length !== S + 1) {
      throw new ShapeError(`segmentSum: hostOffsets has ${h.length} ≠ ${S + 1}`);
    }
    for (let i = 0; i <= S; i++) {
      if (!(h[i] >= (i ? h[i - 1] : 0)) || h[i] > R) {
        throw new ShapeError(`segmentSum: offsets[${i}] = ${h[i]} is not sorted within [0, ${R}]`);
      }
    }
  }
  const o = opts.out ?? rt.empty([S, C], "segmentSum.out");
  expectShape("segmentSum", "out", o, [S, C]);
  rt.dispatch({
    shader: SHADER,
    entry: "segment_sum",
    bindings: { 1: x, 3: o, 4: offsets },
    params: params([R, C, S]),
    workgroups: grid(Math.ceil((S * C) / 64)),
  });
  return o;
}

/** out[0] = Σ x over every element (any shape) → [1]. */
export function sumAll(rt: Runtime, x: GpuTensor, out?: GpuTensor): GpuTensor {
  expectShape("sumAll", "x", x, x.shape.map(() => -1));
  const o = out ?? rt.empty([1], "sumAll.out");
  expectShape("sumAll", "out", o, [1]);
  rt.dispatch({
    shader: SHADER,
    entry: "sum_all",
    bindings: { 1: x, 3: o },
    params: params([x.size, 1, 0]),
    workgroups: [1],
  });
  return o;
}
