/**
 * Elementwise ops (shaders/elementwise.wgsl): residual add, scale, axpy, fill, tanh
 * forward/backward for the pooler, and dropout whose mask is recomputed from (seed, index).
 * Every wrapper only records; outputs are caller-provided so a model can use its arena.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "elementwise.wgsl";
/** Invocations per workgroup of the one-element-per-invocation kernels. */
export const LINEAR_WG = 256;

/** Workgroup grid for `n` elements at one element per invocation. */
export function linearGrid(n: number): [number, number] {
  return grid(Math.ceil(n / LINEAR_WG));
}

/** Check that `t` has exactly the shape of `ref` (both f32). */
export function expectSame(op: string, name: string, t: GpuTensor, ref: GpuTensor): void {
  expectShape(op, name, t, ref.shape);
}

function run(
  rt: Runtime,
  entry: string,
  n: number,
  bindings: Record<number, GpuTensor>,
  u32s: number[] = [0],
  f32s: number[] = [0, 0],
): void {
  rt.dispatch({
    shader: FILE,
    entry,
    bindings,
    params: params([n, ...u32s], f32s),
    workgroups: linearGrid(n),
  });
}

/** out = a + b (residual connection). `out` may alias neither input. */
export function add(rt: Runtime, a: GpuTensor, b: GpuTensor, out: GpuTensor): void {
  expectSame("add", "b", b, a);
  expectSame("add", "out", out, a);
  run(rt, "add", a.size, { 1: a, 2: b, 3: out });
}

/** out = alpha · x. */
export function scale(rt: Runtime, x: GpuTensor, alpha: number, out: GpuTensor): void {
  expectSame("scale", "out", out, x);
  run(rt, "scale", x.size, { 1: x, 3: out }, [0], [alpha, 0]);
}

/** y += alpha · x, in place on y. */
export function axpy(rt: Runtime, alpha: number, x: GpuTensor, y: GpuTensor): void {
  expectSame("axpy", "y", y, x);
  run(rt, "axpy", x.size, { 1: x, 3: y }, [0], [alpha, 0]);
}

/** Every element of `out` = value (recorded, unlike Runtime.fill which writes from the host). */
export function fillValue(rt: Runtime, out: GpuTensor, value: number): void {
  expectShape("fillValue", "out", out, out.shape);
  run(rt, "fill", out.size, { 3: out }, [0], [value, 0]);
}

/** out = tanh(x) (BERT pooler); keep `out` for the backward. */
export function tanhForward(rt: Runtime, x: GpuTensor, out: GpuTensor): void {
  expectSame("tanhForward", "out", out, x);
  run(rt, "tanh_fwd", x.size, { 1: x, 3: out });
}

/** dx = dy · (1 − y²) from the forward output y. */
export function tanhBackward(rt: Runtime, dy: GpuTensor, y: GpuTensor, dx: GpuTensor): void {
  expectSame("tanhBackward", "y", y, dy);
  expectSame("tanhBackward", "dx", dx, dy);
  run(rt, "tanh_bwd", dy.size, { 1: dy, 2: y, 3: dx });
}

function checkDrop(op: string, prob: number, seed: number): void {
  if (!(prob >= 0 && prob < 1)) {
    throw new RangeError(`${op}: drop probability ${prob} not in [0, 1)`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${op}: seed ${seed} is not a u32`);
  }
}

/**
 * Inverted dropout: out = keep ? x / (1 − prob) : 0 with keep drawn from hash(seed, index).
 * Use a different seed per layer and step; the backward must get the same seed.
 */
export function dropoutForward(
  rt: Runtime,
  x: GpuTensor,
  out: GpuTensor,
  prob: number,
  seed: number,
): void {
  checkDrop("dropoutForward", prob, seed);
  expectSame("dropoutForward", "out", out, x);
  run(rt, "dropout", x.size, { 1: x, 3: out }, [seed], [prob, 1 / (1 - prob)]);
}

/** dx = keep ? dy / (1 − prob) : 0, the same mask as the forward with this seed. */
export function dropoutBackward(
  rt: Runtime,
  dy: GpuTensor,
  dx: GpuTensor,
  prob: number,
  seed: number,
): void {
  checkDrop("dropoutBackward", prob, seed);
  expectSame("dropoutBackward", "dx", dx, dy);
  run(rt, "dropout", dy.size, { 1: dy, 3: dx }, [seed], [prob, 1 / (1 - prob)]);
}
