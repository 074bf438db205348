/**
 * Masked mean pooling (shaders/pooling.wgsl): sentence features as the mean of a sample's token
 * states. Small encoders pretrained by MLM alone have no trained [CLS] summary; the mean of the
 * contextual states carries the report's content from step 0, which is what a DP run with few
 * noisy steps can still use.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "pooling.wgsl";

function checkLens(op: string, lens: GpuTensor, b: number): void {
  if (lens.dtype !== "u32" || lens.size < b) {
    throw new ShapeError(`${op}: tensor "lens" (${lens.label}) must be u32 with ≥ ${b} entries`);
  }
}

/** out[b, :] = mean over t < lens[b] of x[b, t, :]. x [B, T, H] → out [B, H]. */
export function meanPoolForward(
  rt: Runtime,
  x: GpuTensor,
  lens: GpuTensor,
  out: GpuTensor,
): void {
  const [b, t, h] = x.shape;
  expectShape("meanPoolForward", "x", x, [-1, -1, -1]);
  expectShape("meanPoolForward", "out", out, [b, h]);
  checkLens("meanPoolForward", lens, b);
  rt.dispatch({
    shader: FILE,
    entry: "mean_pool",
    bindings: { 1: x, 2: lens, 3: out },
    params: params([b, t, h]),
    workgroups: grid(Math.ceil((b * h) / 64)),
  });
}

/** dx[b, t, :] = dout[b, :] / lens[b] for valid t, 0 for padding (dx is overwritten). */
export function meanPoolBackward(
  rt: Runtime,
  dout: GpuTensor,
  lens: GpuTensor,
  dx: GpuTensor,
): void {
  const [b, t, h] = dx.shape;
  expectShape("meanPoolBackward", "dx", dx, [-1, -1, -1]);
  expectShape("meanPoolBackward", "dout", dout, [b, h]);
  checkLens("meanPoolBackward", lens, b);
  rt.dispatch({
    shader: FILE,
    entry: "mean_pool_back",
    bindings: { 1: dout, 2: lens, 3: dx },
    params: params([b, t, h]),
    workgroups: grid(Math.ceil((b * t * h) / 64)),
  });
}
