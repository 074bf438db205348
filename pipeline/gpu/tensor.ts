/** A typed view of a GPU storage buffer: the buffer, its logical shape and element type. */
import { ShapeError } from "./errors.ts";

export type DType = "f32" | "u32" | "i32";

export class GpuTensor {
  constructor(
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly label: string,
  ) {}

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes holding the elements (the buffer may be larger: pooled buffers are bucketed). */
  get byteLength(): number {
    return this.size * 4;
  }

  /** A view of the same buffer under another shape with the same element count. */
  reshape(shape: readonly number[], label = this.label): GpuTensor {
    if (numel(shape) !== this.size) {
      throw new ShapeError(
        `${this.label}: cannot reshape [${this.shape}] (${this.size} elements) to [${shape}]`,
      );
    }
    return new GpuTensor(this.buffer, [...shape], this.dtype, label);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Check a tensor's shape at an op boundary. `expected` entries may be `-1` (any size).
 * The error names the op and the tensor so the caller knows which argument is wrong.
 */
export function expectShape(
  op: string,
  name: string,
  t: GpuTensor,
  expected: readonly number[],
  dtype: DType = "f32",
): void {
  const ok = t.shape.length === expected.length &&
    expected.every((d, i) => d === -1 || d === t.shape[i]);
  if (!ok) {
    const want = expected.map((d) => (d === -1 ? "*" : String(d))).join(", ");
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has shape [${t.shape}], expected [${want}]`,
    );
  }
  if (t.dtype !== dtype) {
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has dtype ${t.dtype}, expected ${dtype}`,
    );
  }
}
