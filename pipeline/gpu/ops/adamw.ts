/**
 * Optimizer steps (shaders/adamw.wgsl), in place on GPU tensors: AdamW (PyTorch semantics:
 * decoupled weight decay, bias correction) and SGD with optional momentum. `gradScale`
 * multiplies the gradient first (DP: 1 / the *expected* batch size qN, never the realised one).
 */
import { params, type Runtime } from "../runtime.ts";
import type { GpuTensor } from "../tensor.ts";
import { expectSame, linearGrid } from "./elementwise.ts";

const FILE = "adamw.wgsl";

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count (for bias correction). */
  step: number;
  /** Gradient multiplier (default 1). */
  gradScale?: number;
}

export interface AdamWState {
  param: GpuTensor;
  grad: GpuTensor;
  /** first moment, zero-initialised, same shape as param */
  m: GpuTensor;
  /** second moment, zero-initialised, same shape as param */
  v: GpuTensor;
}

function finite(op: string, fields: Record<string, number>): void {
  for (const [k, v] of Object.entries(fields)) {
    if (!Number.isFinite(v)) throw new RangeError(`${op}: ${k} = ${v} is not finite`);
  }
}

export function adamwStep(rt: Runtime, s: AdamWState, h: AdamWHyper): void {
  const op = "adamwStep";
  for (const [name, t] of [["grad", s.grad], ["m", s.m], ["v", s.v]] as const) {
    expectSame(op, name, t, s.param);
  }
  const gradScale = h.gradScale ?? 1;
  finite(op, { lr: h.lr, eps: h.eps, weightDecay: h.weightDecay, gradScale });
  if (!Number.isInteger(h.step) || h.step < 1) {
    throw new RangeError(`${op}: step ${h.step} must be an integer ≥ 1`);
  }
  for (const [k, b] of [["beta1", h.beta1], ["beta2", h.beta2]] as const) {
    if (!(b >= 0 && b < 1)) throw new RangeError(`${op}: ${k} = ${b} must be in [0, 1)`);
  }
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  rt.dispatch({
    shader: FILE,
    entry: "adamw",
    bindings: { 1: s.grad, 2: s.param, 3: s.m, 4: s.v },
    params: params([s.param.size], [
      h.lr,
      h.beta1,
      h.beta2,
      h.eps,
      h.weightDecay,
      h.lr / bc1,
      Math.sqrt(bc2),
      gradScale,
      1 - h.beta1,
      1 - h.beta2,
    ]),
    workgroups: linearGrid(s.param.size),
  });
}

export interface SgdHyper {
  lr: number;
  /** 0 = plain SGD (no buffer needed). */
  momentum?: number;
  weightDecay?: number;
  gradScale?: number;
}

/** SGD step; `momentumBuffer` (zero-initialised) is required when momentum > 0. */
export function sgdStep(
  rt: Runtime,
  param: GpuTensor,
  grad: GpuTensor,
  h: SgdHyper,
  momentumBuffer?: GpuTensor,
): void {
  const op = "sgdStep";
  expectSame(op, "grad", grad, param);
  const momentum = h.momentum ?? 0, wd = h.weightDecay ?? 0, gs = h.gradScale ?? 1;
  finite(op, { lr: h.lr, momentum, weightDecay: wd, gradScale: gs });
  const u = params([param.size], [h.lr, momentum, wd, gs]);
  if (momentum === 0) {
    rt.dispatch({
      shader: FILE,
      entry: "sgd",
      bindings: { 1: grad, 2: param },
      params: u,
      workgroups: linearGrid(param.size),
    });
    return;
  }
  if (!momentumBuffer) throw new RangeError(`${op}: momentum ${momentum} needs a momentumBuffer`);
  expectSame(op, "momentumBuffer", momentumBuffer, param);
  rt.dispatch({
    shader: FILE,
    entry: "sgd_momentum",
    bindings: { 1: grad, 2: param, 5: momentumBuffer },
    params: u,
    workgroups: linearGrid(param.size),
  });
}
