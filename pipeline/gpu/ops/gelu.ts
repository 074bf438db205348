/**
 * Activation wrappers (shaders/gelu.wgsl): GELU erf form ("gelu"), tanh form ("gelu_new"),
 * ReLU. Backward recomputes the derivative from the saved pre-activation input.
 */
import { params, type Runtime } from "../runtime.ts";
import type { GpuTensor } from "../tensor.ts";
import type { Activation } from "../../model/types.ts";
import { expectSame, linearGrid } from "./elementwise.ts";

const ACT_CODE: Record<Activation, number> = { gelu: 0, gelu_new: 1, relu: 2 };

/** y = act(x). */
export function activationForward(
  rt: Runtime,
  x: GpuTensor,
  y: GpuTensor,
  act: Activation = "gelu",
): void {
  expectSame("activationForward", "y", y, x);
  rt.dispatch({
    shader: "gelu.wgsl",
    entry: "forward",
    bindings: { 1: x, 3: y },
    params: params([x.size]),
    workgroups: linearGrid(x.size),
    constants: { ACT: ACT_CODE[act] },
  });
}

/** dx = dy · act'(x), x being the forward input. */
export function activationBackward(
  rt: Runtime,
  x: GpuTensor,
  dy: GpuTensor,
  dx: GpuTensor,
  act: Activation = "gelu",
): void {
  expectSame("activationBackward", "dy", dy, x);
  expectSame("activationBackward", "dx", dx, x);
  rt.dispatch({
    shader: "gelu.wgsl",
    entry: "backward",
    bindings: { 1: x, 2: dy, 3: dx },
    params: params([x.size]),
    workgroups: linearGrid(x.size),
    constants: { ACT: ACT_CODE[act] },
  });
}
