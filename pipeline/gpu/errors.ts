/** Errors raised by the GPU layer. */

/** No usable WebGPU adapter/device, or the device was lost. The message says what to install. */
export class DeviceError extends Error {
  override name = "DeviceError";
}

/** A tensor passed to an op has the wrong shape or dtype; the message names the tensor. */
export class ShapeError extends Error {
  override name = "ShapeError";
}
