/**
 * dplora: differentially private LoRA fine-tuning of transformer encoders on WebGPU.
 *
 * @example
 * ```ts
 * import { Runtime } from "./mod.ts";
 * const rt = await Runtime.create();
 * console.log(rt.info.adapterName);
 * ```
 * @module
 */
export { grid, params, Runtime } from "./pipeline/gpu/runtime.ts";
export type { DispatchSpec } from "./pipeline/gpu/runtime.ts";
export { GpuTensor } from "./pipeline/gpu/tensor.ts";
export { DeviceError, ShapeError } from "./pipeline/gpu/errors.ts";
