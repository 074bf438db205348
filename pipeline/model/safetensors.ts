/**
 * safetensors reading and writing (https://github.com/huggingface/safetensors, format v0):
 * `u64le header length N` · `N bytes of JSON header` · `data`. Each header entry is
 * `{dtype, shape, data_offsets: [begin, end]}` with offsets relative to the data start;
 * `__metadata__` maps strings to strings.
 *
 * Reading is lazy per tensor (header validated up front, values converted on request) so a
 * checkpoint with tensors we ignore in dtypes we do not convert (e.g. BOOL masks) still loads.
 * Every value is handed out as f32 (HostTensor); F16/BF16/F64/I64/I32 are widened or narrowed.
 */
import type { HostTensor } from "./types.ts";
import { writeFileAtomic, writeJsonAtomic } from "../fs.ts";

/** A checkpoint/adapter file is missing, malformed or does not match what the model needs. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

export type SafetensorsDtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32";
/** Dtypes our writer produces. */
export type WriteDtype = "F32" | "F16" | "BF16";

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
const CONVERTIBLE = new Set<string>(["F32", "F16", "BF16", "F64", "I64", "I32"]);

/** Header entry of one tensor. */
export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute byte range of the tensor inside the file. */
  begin: number;
  end: number;
}

/** Guard against absurd headers before allocating (safetensors itself caps at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** An opened safetensors file: header parsed and validated, bytes in memory. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly bytes: Uint8Array,
    readonly infos: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Parse and validate a safetensors file held in memory (`path` only names it in errors). */
  static parse(path: string, bytes: Uint8Array): SafetensorsFile {
    const fail = (msg: string): never => {
      throw new CheckpointError(`${path}: ${msg}`);
    };
    if (bytes.length < 8) fail(`too short for a safetensors file (${bytes.length} bytes)`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    if (n > MAX_HEADER_BYTES || 8 + n > bytes.length) {
      fail(`header length ${n} does not fit the file size ${bytes.length}`);
    }
    let header: unknown;
    try {
      header = JSON.parse(
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)),
      );
    } catch (e) {
      fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      fail("header is not a JSON object");
    }
    const dataStart = 8 + n;
    const dataLen = bytes.length - dataStart;
    const infos = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const ranges: [number, number, string][] = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
          fail("__metadata__ is not an object of strings");
        }
        for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
          if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e !== "object" || e === null) fail(`tensor "${name}": entry is not an object`);
      if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_BYTES)) {
        fail(`tensor "${name}": unknown dtype ${JSON.stringify(e.dtype)}`);
      }
      const dtype = e.dtype as string;
      if (
        !Array.isArray(e.shape) ||
        !e.shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)
      ) {
        fail(`tensor "${name}": shape ${JSON.stringify(e.shape)} is not a list of sizes`);
      }
      const shape = e.shape as number[];
      const off = e.data_offsets;
      if (
        !Array.isArray(off) || off.length !== 2 ||
        !off.every((o: unknown) => Number.isSafeInteger(o) && (o as number) >= 0)
      ) {
        fail(`tensor "${name}": data_offsets ${JSON.stringify(off)} is not [begin, end]`);
      }
      const [b, en] = off as [number, number];
      if (b > en || en > dataLen) {
        fail(`tensor "${name}": data_offsets [${b}, ${en}] outside the data (${dataLen} bytes)`);
      }
      const want = numel(shape) * DTYPE_BYTES[dtype];
      if (en - b !== want) {
        fail(
          `tensor "${name}": ${en - b} bytes for ${dtype} [${shape.join(", ")}], expected ${want}`,
        );
      }
      infos.set(name, { dtype, shape: [...shape], begin: dataStart + b, end: dataStart + en });
      ranges.push([b, en, name]);
    }
    ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] < ranges[i - 1][1]) {
        fail(`tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`);
      }
    }
    return new SafetensorsFile(path, bytes, infos, metadata);
  }

  /** Read a file from disk and parse it. */
  static async open(path: string): Promise<SafetensorsFile> {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${path}: file not found`);
      throw e;
    }
    return SafetensorsFile.parse(path, bytes);
  }

  get names(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  /** The tensor's values widened/narrowed to f32. */
  tensor(name: string): HostTensor {
    const info = this.infos.get(name);
    if (!info) throw new CheckpointError(`${this.path}: no tensor "${name}"`);
    if (!CONVERTIBLE.has(info.dtype)) {
      throw new CheckpointError(
        `${this.path}: tensor "${name}" has dtype ${info.dtype}; supported: ${
          [...CONVERTIBLE].join(", ")
        }`,
      );
    }
    const raw = this.bytes.slice(info.begin, info.end); // own, aligned copy
    return { data: decode(info.dtype as SafetensorsDtype, raw), shape: [...info.shape] };
  }
}

function decode(dtype: SafetensorsDtype, raw: Uint8Array): Float32Array {
  if (!littleEndian) throw new CheckpointError("big-endian hosts are not supported");
  const buf = raw.buffer as ArrayBuffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf, raw.byteOffset, raw.byteLength / 4);
    case "F64":
      return Float32Array.from(new Float64Array(buf, raw.byteOffset, raw.byteLength / 8));
    case "I32":
      return Float32Array.from(new Int32Array(buf, raw.byteOffset, raw.byteLength / 4));
    case "I64": {
      const src = new BigInt64Array(buf, raw.byteOffset, raw.byteLength / 8);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    case "F16": {
      const src = new Uint16Array(buf, raw.byteOffset, raw.byteLength / 2);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]);
      return out;
    }
    case "BF16": {
      const src = new Uint16Array(buf, raw.byteOffset, raw.byteLength / 2);
      const out = new Float32Array(src.length);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
      return out;
    }
  }
}

/** IEEE binary16 bits → number (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** number → IEEE binary16 bits, round to nearest even (as torch's .half()). */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0];
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r++; // may carry into exponent: correct
  return sign | r;
}

/** number → bfloat16 bits, round to nearest even (NaN kept quiet). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0];
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff)) return (f >>> 16) | 0x40;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Round f32 values to what a `dtype` file stores (identity for F32). */
export function roundTo(dtype: WriteDtype, data: Float32Array): Float32Array {
  if (dtype === "F32") return Float32Array.from(data);
  const out = new Float32Array(data.length);
  if (dtype === "F16") {
    for (let i = 0; i < data.length; i++) out[i] = f16ToF32(f32ToF16(data[i]));
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < data.length; i++) u[i] = f32ToBf16(data[i]) << 16;
  }
  return out;
}

export interface WriteOptions {
  /** Storage dtype for every tensor (default F32). */
  dtype?: WriteDtype;
  /** `__metadata__` (HF writes `{"format": "pt"}`; we add it when absent). */
  metadata?: Record<string, string>;
}

/** Serialize tensors (in the given order) to safetensors bytes. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor>,
  opts: WriteOptions = {},
): Uint8Array {
  const dtype = opts.dtype ?? "F32";
  const bpe = DTYPE_BYTES[dtype];
  const header: Record<string, unknown> = { __metadata__: { format: "pt", ...opts.metadata } };
  let off = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new CheckpointError(`tensor name "${name}" is reserved`);
    if (t.data.length !== numel(t.shape)) {
      throw new CheckpointError(
        `tensor "${name}": ${t.data.length} values for shape [${t.shape.join(", ")}]`,
      );
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + t.data.length * bpe] };
    off += t.data.length * bpe;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data starts 8-byte aligned (what the reference writer does).
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const t of tensors.values()) {
    const n = t.data.length;
    if (dtype === "F32") {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, n * 4), pos);
    } else {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        h[i] = dtype === "F16" ? f32ToF16(t.data[i]) : f32ToBf16(t.data[i]);
      }
      out.set(new Uint8Array(h.buffer), pos);
    }
    pos += n * bpe;
  }
  return out;
}

/** Write one safetensors file atomically (temp + rename). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, HostTensor>,
  opts: WriteOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, opts));
}

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/**
 * Write `model.safetensors`, or — when `shards` > 1 — `model-0000k-of-0000n.safetensors` plus
 * `model.safetensors.index.json` (HF's layout: `{metadata: {total_size}, weight_map}`).
 * Shards are cut by count of bytes, keeping each tensor whole.
 */
export async function writeModelSafetensors(
  dir: string,
  tensors: ReadonlyMap<string, HostTensor>,
  opts: WriteOptions & { shards?: number } = {},
): Promise<string[]> {
  const shards = opts.shards ?? 1;
  if (shards <= 1) {
    await writeSafetensors(`${dir}/${SINGLE_FILE}`, tensors, opts);
    return [SINGLE_FILE];
  }
  const bpe = DTYPE_BYTES[opts.dtype ?? "F32"];
  const total = [...tensors.values()].reduce((s, t) => s + t.data.length * bpe, 0);
  const groups: Map<string, HostTensor>[] = [new Map()];
  let acc = 0;
  for (const [name, t] of tensors) {
    const cur = groups[groups.length - 1];
    if (cur.size > 0 && acc >= (total * groups.length) / shards && groups.length < shards) {
      groups.push(new Map());
    }
    groups[groups.length - 1].set(name, t);
    acc += t.data.length * bpe;
  }
  const pad = (k: number) => String(k).padStart(5, "0");
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < groups.length; k++) {
    const file = `model-${pad(k + 1)}-of-${pad(groups.length)}.safetensors`;
    await writeSafetensors(`${dir}/${file}`, groups[k], opts);
    for (const name of groups[k].keys()) weightMap[name] = file;
    files.push(file);
  }
  await writeJsonAtomic(`${dir}/${INDEX_FILE}`, {
    metadata: { total_size: total },
    weight_map: weightMap,
  });
  return [...files, INDEX_FILE];
}

/** A name → tensor source spanning one file or the shards of an index. */
export interface TensorSource {
  /** Where the tensors came from (for error messages). */
  readonly where: string;
  readonly names: string[];
  has(name: string): boolean;
  shape(name: string): number[];
  tensor(name: string): HostTensor;
}

/**
 * Open the model weights in `dir`: `model.safetensors.index.json` (sharded) if present, else
 * `model.safetensors`. A folder with only `pytorch_model.bin` gets an error saying how to convert.
 */
export async function openModelTensors(dir: string): Promise<TensorSource> {
  const indexPath = `${dir}/${INDEX_FILE}`;
  let indexText: string | undefined;
  try {
    indexText = await Deno.readTextFile(indexPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (indexText === undefined) {
    const single = `${dir}/${SINGLE_FILE}`;
    try {
      await Deno.stat(single);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      let hint = "";
      try {
        await Deno.stat(`${dir}/pytorch_model.bin`);
        hint = " (found pytorch_model.bin: pickle checkpoints are not read; convert with " +
          "`model.save_pretrained(dir, safe_serialization=True)`)";
      } catch { /* no .bin either */ }
      throw new CheckpointError(`${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found${hint}`);
    }
    const f = await SafetensorsFile.open(single);
    return {
      where: single,
      names: f.names,
      has: (n) => f.has(n),
      shape: (n) => [...f.infos.get(n)!.shape],
      tensor: (n) => f.tensor(n),
    };
  }
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(indexText);
  } catch (e) {
    throw new CheckpointError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const wm = index.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${indexPath}: field "weight_map" missing or not an object`);
  }
  const weightMap = wm as Record<string, unknown>;
  const files = new Map<string, SafetensorsFile>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) {
      throw new CheckpointError(`${indexPath}: weight_map["${name}"] is not a file name`);
    }
    if (!files.has(file)) files.set(file, await SafetensorsFile.open(`${dir}/${file}`));
    if (!files.get(file)!.has(name)) {
      throw new CheckpointError(
        `${indexPath}: weight_map puts "${name}" in ${file}, but ${file} has no such tensor`,
      );
    }
  }
  const fileOf = (n: string): SafetensorsFile => {
    const f = weightMap[n];
    if (typeof f !== "string") throw new CheckpointError(`${indexPath}: no tensor "${n}"`);
    return files.get(f)!;
  };
  return {
    where: indexPath,
    names: Object.keys(weightMap),
    has: (n) => typeof weightMap[n] === "string",
    shape: (n) => [...fileOf(n).infos.get(n)!.shape],
    tensor: (n) => fileOf(n).tensor(n),
  };
}
