/**
 * DP-SGD kernels (shaders/dp.wgsl): per-record and per-unit squared norms, clip factors, the
 * clipped weighted sum, and ChaCha20-keyed Gaussian noise with scaling by the expected batch size.
 * Every wrapper only records dispatches (no readback). Buffers that hold per-unit or per-group rows
 * may be larger than needed (capacity buffers reused across steps): wrappers check "at least".
 */
import { ShapeError } from "../errors.ts";
import { grid, params, type Runtime } from "../runtime.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "dp.wgsl";
const WG = 256;
const NOISE_WG = 64;
/** Normals produced per ChaCha20 block (4 Box–Muller pairs). */
export const NORMALS_PER_BLOCK = 8;
/** Nonce word 2 of the noise stream ("nois"), so noise never shares a stream with a test hook. */
export const NOISE_STREAM_TAG = 0x6e6f6973;

function expectVector(
  op: string,
  name: string,
  t: GpuTensor,
  minLen: number,
  dtype: "f32" | "u32" = "f32",
): void {
  expectShape(op, name, t, [-1], dtype);
  if (t.size < minLen) {
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has ${t.size} elements, needs ≥ ${minLen}`,
    );
  }
}

/** Any shape with exactly `n` f32 elements (trainable tensors keep their own shapes). */
function expectNumel(op: string, name: string, t: GpuTensor, n: number): void {
  expectShape(op, name, t, t.shape);
  if (t.size !== n) {
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has ${t.size} elements, expected ${n}`,
    );
  }
}

function u32Field(op: string, what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${op}: ${what} = ${v} is not a u32`);
  }
  return v;
}

function dpParams(
  n: readonly number[],
  m: readonly number[] = [],
  key: ArrayLike<number> = [],
  f: readonly number[] = [],
): ArrayBuffer {
  const pad = (a: ArrayLike<number>, len: number) =>
    Array.from({ length: len }, (_, i) => (i < a.length ? a[i] : 0));
  return params([...pad(n, 4), ...pad(m, 4), ...pad(key, 8)], pad(f, 4));
}

function linear(n: number, wg = WG): [number, number] {
  return grid(Math.ceil(n / wg));
}

/** Check a [B, P] per-sample gradient tensor; B·P must index in u32 and fit one binding. */
function expectGrads(op: string, g: GpuTensor): [number, number] {
  expectShape(op, "g", g, [-1, -1]);
  const [b, p] = g.shape;
  if (b * p >= 2 ** 32) {
    throw new ShapeError(`${op}: g (${g.label}) [${b}, ${p}] exceeds 2^32 elements`);
  }
  return [b, p];
}

/** pieceSq[rowOffset + r] += ‖g[r, :]‖² for every row r of the [rows, P] tensor `g`. */
export function rowSqnorm(rt: Runtime, g: GpuTensor, pieceSq: GpuTensor, rowOffset = 0): void {
  const [b, p] = expectGrads("rowSqnorm", g);
  expectVector("rowSqnorm", "pieceSq", pieceSq, rowOffset + b);
  rt.dispatch({
    shader: FILE,
    entry: "row_sqnorm",
    bindings: { 1: g, 3: pieceSq },
    params: dpParams([b, p], [u32Field("rowSqnorm", "rowOffset", rowOffset)]),
    workgroups: grid(b),
  });
}

/** pieceSq[rowOffset + r] += sq[r] for r < records: per-record squared norms from the model. */
export function addSq(
  rt: Runtime,
  sq: GpuTensor,
  pieceSq: GpuTensor,
  records: number,
  rowOffset = 0,
): void {
  expectVector("addSq", "sqnorms", sq, records);
  expectVector("addSq", "pieceSq", pieceSq, rowOffset + records);
  rt.dispatch({
    shader: FILE,
    entry: "add_sq",
    bindings: { 1: sq, 3: pieceSq },
    params: dpParams([records], [rowOffset]),
    workgroups: linear(records),
  });
}

/**
 * out[i, :] = Σ_{r: unitIdx[r] = unitLo + i} g[r, :] for the `unitCount` units [unitLo, ...) of
 * the micro-batch: each unit's piece gradient (its records here, summed). out is [≥ unitCount·P].
 * `unitIdx` must be non-decreasing without gaps (every unit in the range has a record here).
 */
export function pieceSum(
  rt: Runtime,
  g: GpuTensor,
  unitIdx: GpuTensor,
  out: GpuTensor,
  unitLo: number,
  unitCount: number,
): void {
  const [b, p] = expectGrads("pieceSum", g);
  expectVector("pieceSum", "unitIdx", unitIdx, b, "u32");
  expectVector("pieceSum", "out", out, unitCount * p);
  rt.dispatch({
    shader: FILE,
    entry: "piece_sum",
    bindings: { 1: g, 2: unitIdx, 7: out },
    params: dpParams([b, p, unitLo, unitCount]),
    workgroups: linear(Math.ceil(p / 4)),
  });
}

/**
 * unitNorm[unitOffset + u] += Σ over the pieces of u of sqrt(pieceSq[pieceOffset + piece]), for
 * units u in [unitLo, unitLo + unitCount). With `piecesAreUnits` piece i is unit unitLo + i
 * (from {@link pieceSum}); otherwise pieces are the `records` records, unit = unitIdx[r].
 */
export function unitAccumulate(
  rt: Runtime,
  pieceSq: GpuTensor,
  unitIdx: GpuTensor,
  unitNorm: GpuTensor,
  opts: {
    records: number;
    unitLo: number;
    unitCount: number;
    piecesAreUnits: boolean;
    unitOffset?: number;
    pieceOffset?: number;
  },
): void {
  const { records, unitLo, unitCount, piecesAreUnits, unitOffset = 0, pieceOffset = 0 } = opts;
  expectVector("unitAccumulate", "unitIdx", unitIdx, records, "u32");
  expectVector(
    "unitAccumulate",
    "pieceSq",
    pieceSq,
    pieceOffset + (piecesAreUnits ? unitCount : records),
  );
  expectVector("unitAccumulate", "unitNorm", unitNorm, unitOffset + unitLo + unitCount);
  rt.dispatch({
    shader: FILE,
    entry: "unit_accumulate",
    bindings: { 2: unitIdx, 3: pieceSq, 4: unitNorm },
    params: dpParams([records, unitLo, unitCount, piecesAreUnits ? 1 : 0], [
      unitOffset,
      pieceOffset,
    ]),
    workgroups: linear(unitCount),
  });
}

/**
 * factors[k·U + u] = min(1, bounds[k] / (N_u + tiny)) from the norm bounds unitNorm[k·U + u], for
 * K groups of U units; 0 where N_u is Inf/NaN (the unit is dropped rather than poisoning the sum).
 */
export function clipFactors(
  rt: Runtime,
  unitNorm: GpuTensor,
  bounds: GpuTensor,
  factors: GpuTensor,
  units: number,
  groups: number,
): void {
  expectVector("clipFactors", "unitNorm", unitNorm, units * groups);
  expectVector("clipFactors", "bounds", bounds, groups);
  expectVector("clipFactors", "factors", factors, units * groups);
  rt.dispatch({
    shader: FILE,
    entry: "clip_factors",
    bindings: { 4: unitNorm, 5: bounds, 6: factors },
    params: dpParams([units, groups]),
    workgroups: linear(units * groups),
  });
}

/** recC[r] = factors[factorOffset + unitIdx[r]] for r < records (per-record factor for the model). */
export function gatherFactors(
  rt: Runtime,
  factors: GpuTensor,
  unitIdx: GpuTensor,
  recC: GpuTensor,
  records: number,
  factorOffset = 0,
): void {
  expectVector("gatherFactors", "unitIdx", unitIdx, records, "u32");
  expectVector("gatherFactors", "recC", recC, records);
  expectVector("gatherFactors", "factors", factors, factorOffset + 1);
  rt.dispatch({
    shader: FILE,
    entry: "gather_factors",
    bindings: { 2: unitIdx, 6: factors, 8: recC },
    params: dpParams([records], [factorOffset]),
    workgroups: linear(records),
  });
}

/** acc[j] += Σ_r factors[factorOffset + unitIdx[r]] · g[r, j] (records with factor 0 skipped). */
export function weightedSum(
  rt: Runtime,
  g: GpuTensor,
  unitIdx: GpuTensor,
  factors: GpuTensor,
  acc: GpuTensor,
  factorOffset = 0,
): void {
  const [b, p] = expectGrads("weightedSum", g);
  expectVector("weightedSum", "unitIdx", unitIdx, b, "u32");
  expectNumel("weightedSum", "acc", acc, p);
  expectVector("weightedSum", "factors", factors, factorOffset + (b ? 1 : 0));
  rt.dispatch({
    shader: FILE,
    entry: "weighted_sum",
    bindings: { 1: g, 2: unitIdx, 6: factors, 7: acc },
    params: dpParams([b, p], [factorOffset]),
    workgroups: linear(Math.ceil(p / 4)),
  });
}

export interface NoiseSpec {
  /** 8 u32 words: the ChaCha20 key. Fresh from the CSPRNG every step. */
  key: Uint32Array;
  /** Distinguishes the tensors noised under one key (ChaCha20 nonce word 0). */
  stream: number;
  /** Standard deviation of the noise added to the clipped sum: σ·C. */
  noiseStd: number;
  /** Multiplier applied after the noise: 1 / (q·N_expected). */
  scale: number;
}

/** acc[j] = (acc[j] + σC·z_j) · scale, z_j ~ N(0, 1) from ChaCha20(key, j / 8, (stream, tag, 0)). */
export function addNoiseAndScale(rt: Runtime, acc: GpuTensor, spec: NoiseSpec): void {
  expectNumel("addNoiseAndScale", "acc", acc, acc.size);
  if (spec.key.length !== 8) {
    throw new RangeError(`addNoiseAndScale: key has ${spec.key.length} words, needs 8`);
  }
  if (!(spec.noiseStd >= 0 && Number.isFinite(spec.noiseStd))) {
    throw new RangeError(`addNoiseAndScale: noise std ${spec.noiseStd} must be finite and ≥ 0`);
  }
  if (!(spec.scale > 0 && Number.isFinite(spec.scale))) {
    throw new RangeError(`addNoiseAndScale: scale ${spec.scale} must be finite and > 0`);
  }
  const blocks = Math.ceil(acc.size / NORMALS_PER_BLOCK);
  rt.dispatch({
    shader: FILE,
    entry: "add_noise_and_scale",
    bindings: { 7: acc },
    params: dpParams(
      [acc.size],
      [0, u32Field("addNoiseAndScale", "stream", spec.stream), NOISE_STREAM_TAG, 0],
      spec.key,
      [spec.noiseStd, spec.scale],
    ),
    workgroups: linear(blocks, NOISE_WG),
  });
}

/** Test hook: raw ChaCha20 blocks counter..counter+n-1 into out[16n] (u32). */
export function chachaRaw(
  rt: Runtime,
  out: GpuTensor,
  key: Uint32Array,
  counter: number,
  nonce: readonly [number, number, number],
): void {
  expectShape("chachaRaw", "out", out, [-1], "u32");
  if (out.size % 16 !== 0) throw new ShapeError(`chachaRaw: out (${out.label}) length not /16`);
  const n = out.size / 16;
  rt.dispatch({
    shader: FILE,
    entry: "chacha_raw",
    bindings: { 9: out },
    params: dpParams([n], [counter, ...nonce], key),
    workgroups: linear(n, NOISE_WG),
  });
}
