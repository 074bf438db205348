/**
 * The GPU runtime: one device, the WGSL library, a buffer pool, and a recorder that packs many
 * dispatches into one command encoder (one compute pass) so that a training step costs one submit.
 *
 * Why this shape: on the software adapter every submit+await or mapAsync costs >= 11 ms, and a
 * dispatch in an open pass ~27 us, so ops only *record*; `flush()` submits and `read()` is the only
 * place that waits.
 *
 * Conventions for op wrappers (see pipeline/gpu/ops/*.ts):
 * - storage tensors are bound in group 0 at the binding numbers the wrapper gives;
 * - small scalar parameters (sizes, scales) go through `params`, bound at binding 0 as a uniform
 *   slot of a per-flush ring buffer (256-byte slots), so no buffer is created per dispatch;
 * - pipelines use `layout: "auto"`, so a wrapper binds exactly what its entry point uses.
 */
import { acquireDevice, type GpuInfo } from "./device.ts";
import { DeviceError, ShapeError } from "./errors.ts";
import { type DType, GpuTensor, numel } from "./tensor.ts";

const SHADER_DIR = new URL("../../shaders/", import.meta.url);
const SLOT = 256; // minUniformBufferOffsetAlignment upper bound in the spec
const RING_SLOTS = 4096;
const MAX_WG = 65535;

export interface DispatchSpec {
  /** WGSL file under shaders/, e.g. "matmul.wgsl". */
  shader: string;
  entry: string;
  /** Storage bindings: binding number → tensor or raw buffer. */
  bindings: Record<number, GpuTensor | GPUBuffer>;
  /** Uniform parameters bound at binding 0 (≤ 256 bytes). */
  params?: ArrayBuffer;
  workgroups: readonly [number, number?, number?];
  /** Pipeline-overridable constants (part of the cache key). */
  constants?: Record<string, number>;
}

/** Build a uniform block: u32 fields first, then f32 fields, each 4 bytes, in the order given. */
export function params(u32s: readonly number[], f32s: readonly number[] = []): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((u32s.length + f32s.length) * 4 / 16) * 16));
  const dv = new DataView(buf);
  u32s.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(`uniform u32 field ${i} = ${v} is not a u32`);
    }
    dv.setUint32(i * 4, v, true);
  });
  f32s.forEach((v, i) => dv.setFloat32((u32s.length + i) * 4, v, true));
  return buf;
}

/**
 * Split `n` workgroups over x and y so neither exceeds 65535. Shaders recover the linear
 * workgroup index as `wid.x + wid.y * nwg.x`.
 */
export function grid(n: number): [number, number] {
  if (n <= MAX_WG) return [Math.max(1, n), 1];
  const y = Math.ceil(n / MAX_WG);
  return [Math.ceil(n / y), y];
}

interface TimedDispatch {
  label: string;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly info: GpuInfo;
  private sources = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();
  private pool = new Map<number, GPUBuffer[]>();
  private stagingPool = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private ring: GPUBuffer;
  private ringCpu = new Uint8Array(SLOT * RING_SLOTS);
  private ringUsed = 0;
  private errors: string[] = [];
  private lastLabels: string[] = [];
  private lost: string | null = null;
  /** Bytes currently allocated in GPU buffers by this runtime (live + pooled). */
  allocatedBytes = 0;
  /** High-water mark of `allocatedBytes`. */
  peakBytes = 0;
  private profiling:
    | { qs: GPUQuerySet; buf: GPUBuffer; items: TimedDispatch[]; cap: number }
    | null = null;

  private constructor(device: GPUDevice, info: GpuInfo) {
    this.device = device;
    this.info = info;
    this.ring = device.createBuffer({
      label: "uniform-ring",
      size: SLOT * RING_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      const recent = this.lastLabels.slice(-4).join(", ");
      this.errors.push(`${err.message} (recent dispatches: ${recent || "none"})`);
    });
    device.lost.then((info) => {
      if (info.reason !== "destroyed") this.lost = info.message || String(info.reason);
    });
  }

  /** Acquire a device and load every shader in `shaders/` (compiled and checked once). */
  static async create(shaderFiles?: string[]): Promise<Runtime> {
    const { device, info } = await acquireDevice();
    const rt = new Runtime(device, info);
    const files = shaderFiles ?? await listShaders();
    await Promise.all(files.map((f) => rt.load(f)));
    return rt;
  }

  /** Load and compile one WGSL file; compile errors name the file, line and message. */
  async load(file: string): Promise<void> {
    if (this.sources.has(file)) return;
    const url = new URL(file, SHADER_DIR);
    let code: string;
    try {
      code = url.protocol === "file:"
        ? await Deno.readTextFile(url)
        : await (await fetch(url)).text();
    } catch (e) {
      throw new DeviceError(`cannot read shader ${url.href}: ${(e as Error).message}`);
    }
    await this.compile(file, code);
  }

  /** Compile WGSL given as a string under a file-like name (used by tests and embedders). */
  async compile(file: string, code: string): Promise<void> {
    const module = this.device.createShaderModule({ label: file, code });
    const info = await module.getCompilationInfo();
    const errs = info.messages.filter((m) => m.type === "error");
    if (errs.length) {
      const msg = errs.map((m) => `${file}:${m.lineNum}:${m.linePos}: ${m.message}`).join("\n");
      throw new DeviceError(`WGSL compile error\n${msg}`);
    }
    this.sources.set(file, module);
  }

  /** A cached compute pipeline for (file, entry point, constants). */
  pipeline(file: string, entry: string, constants?: Record<string, number>): GPUComputePipeline {
    const key = `${file}|${entry}|${constants ? JSON.stringify(constants) : ""}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    const module = this.sources.get(file);
    if (!module) {
      throw new DeviceError(`shader ${file} is not loaded (await runtime.load("${file}"))`);
    }
    p = this.device.createComputePipeline({
      label: `${file}:${entry}`,
      layout: "auto",
      compute: { module, entryPoint: entry, constants },
    });
    this.pipelines.set(key, p);
    return p;
  }

  // ---------------------------------------------------------------- buffers

  private rawBuffer(bytes: number, label: string): GPUBuffer {
    const size = bucket(bytes);
    const free = this.pool.get(size);
    const b = free?.pop();
    if (b) return b;
    this.allocatedBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** A tensor from the pool; contents are unspecified (use `fill`/`zeros` when it matters). */
  empty(shape: readonly number[], label: string, dtype: DType = "f32"): GpuTensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${label}: bad shape [${shape}]`);
    }
    return new GpuTensor(this.rawBuffer(numel(shape) * 4, label), [...shape], dtype, label);
  }

  /** A zero-filled tensor (the clear is recorded, not executed immediately). */
  zeros(shape: readonly number[], label: string, dtype: DType = "f32"): GpuTensor {
    const t = this.empty(shape, label, dtype);
    this.clear(t);
    return t;
  }

  /** Upload host data into a new tensor. */
  upload(
    data: Float32Array | Uint32Array | Int32Array,
    shape: readonly number[],
    label: string,
  ): GpuTensor {
    if (data.length !== numel(shape)) {
      throw new ShapeError(`${label}: ${data.length} values for shape [${shape}]`);
    }
    const dtype: DType = data instanceof Float32Array
      ? "f32"
      : data instanceof Uint32Array
      ? "u32"
      : "i32";
    const t = this.empty(shape, label, dtype);
    this.write(t, data);
    return t;
  }

  /**
   * Write host data into a tensor. Ordered on the queue: it takes effect before the commands
   * recorded so far are submitted, so we flush recorded work first to keep program order.
   */
  write(t: GpuTensor, data: Float32Array | Uint32Array | Int32Array, elementOffset = 0): void {
    if (elementOffset + data.length > t.size) {
      throw new ShapeError(
        `${t.label}: writing ${data.length} values at ${elementOffset} overflows ${t.size}`,
      );
    }
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(
      t.buffer,
      elementOffset * 4,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Fill with a constant bit pattern (e.g. NaN to poison outputs in tests). */
  fill(t: GpuTensor, value: number): void {
    const a = t.dtype === "f32"
      ? new Float32Array(t.size).fill(value)
      : new Uint32Array(t.size).fill(value);
    this.write(t, a);
  }

  /** Record a clear of the whole tensor to zero. */
  clear(t: GpuTensor): void {
    this.endPass();
    this.enc().clearBuffer(t.buffer, 0, Math.ceil(t.byteLength / 4) * 4);
  }

  /** Record a copy of `src` into `dst` (element counts must match). */
  copy(src: GpuTensor, dst: GpuTensor, srcOffset = 0, dstOffset = 0, count = src.size): void {
    if (srcOffset + count > src.size || dstOffset + count > dst.size) {
      throw new ShapeError(`copy ${src.label} → ${dst.label}: ${count} elements out of range`);
    }
    this.endPass();
    this.enc().copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, count * 4);
  }

  /** Return a tensor's buffer to the pool. The tensor must not be used afterwards. */
  release(t: GpuTensor): void {
    const size = t.buffer.size;
    const list = this.pool.get(size) ?? [];
    list.push(t.buffer);
    this.pool.set(size, list);
  }

  /** Destroy pooled buffers (frees GPU memory); live tensors are untouched. */
  trim(): void {
    for (const list of this.pool.values()) {
      for (const b of list) {
        this.allocatedBytes -= b.size;
        b.destroy();
      }
    }
    this.pool.clear();
  }

  // ---------------------------------------------------------------- recording

  private enc(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: "dplora-step" });
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Record one compute dispatch. */
  dispatch(spec: DispatchSpec): void {
    const label = `${spec.shader}:${spec.entry}`;
    const pipeline = this.pipeline(spec.shader, spec.entry, spec.constants);
    const entries: GPUBindGroupEntry[] = [];
    if (spec.params) {
      if (spec.params.byteLength > SLOT) {
        throw new RangeError(`${label}: params exceed ${SLOT} bytes`);
      }
      if (this.ringUsed >= RING_SLOTS) this.flush();
      const off = this.ringUsed * SLOT;
      this.ringCpu.set(new Uint8Array(spec.params), off);
      this.ringUsed++;
      entries.push({ binding: 0, resource: { buffer: this.ring, offset: off, size: SLOT } });
    }
    for (const [k, v] of Object.entries(spec.bindings)) {
      const buffer = v instanceof GpuTensor ? v.buffer : v;
      entries.push({ binding: Number(k), resource: { buffer } });
    }
    const bindGroup = this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x > MAX_WG || y > MAX_WG || z > MAX_WG) {
      throw new RangeError(`${label}: workgroup grid [${x}, ${y}, ${z}] exceeds ${MAX_WG}`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    let pass: GPUComputePassEncoder;
    if (this.profiling) {
      this.endPass();
      const p = this.profiling;
      const i = p.items.length;
      if (i < p.cap) {
        p.items.push({ label });
        pass = this.enc().beginComputePass({
          timestampWrites: {
            querySet: p.qs,
            beginningOfPassWriteIndex: 2 * i,
            endOfPassWriteIndex: 2 * i + 1,
          },
        });
      } else pass = this.enc().beginComputePass();
      this.pass = pass;
    } else {
      if (!this.pass) this.pass = this.enc().beginComputePass({ label: "dplora-pass" });
      pass = this.pass;
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiling) this.endPass();
    this.lastLabels.push(label);
    if (this.lastLabels.length > 64) this.lastLabels.splice(0, 32);
  }

  /** Submit everything recorded so far (does not wait). */
  flush(): void {
    this.endPass();
    if (this.ringUsed) {
      this.device.queue.writeBuffer(this.ring, 0, this.ringCpu.buffer, 0, this.ringUsed * SLOT);
      this.ringUsed = 0;
    }
    if (this.encoder) {
      const cb = this.encoder.finish();
      this.encoder = null;
      this.device.queue.submit([cb]);
    }
  }

  /** Submit and wait until the GPU is idle; surfaces GPU errors. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.raise();
  }

  private raise(): void {
    if (this.lost) throw new DeviceError(`GPU device lost: ${this.lost}`);
    if (this.errors.length) {
      const msg = this.errors.join("\n");
      this.errors = [];
      throw new DeviceError(`GPU error: ${msg}`);
    }
  }

  /** Read tensors back to the host (one submit + one wait for all of them). */
  async readMany(ts: GpuTensor[]): Promise<(Float32Array | Uint32Array | Int32Array)[]> {
    this.endPass();
    const stagings = ts.map((t) => {
      const size = Math.max(4, t.byteLength);
      const list = this.stagingPool.get(size);
      const s = list?.pop() ?? this.device.createBuffer({
        label: `staging:${t.label}`,
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      if (t.byteLength) this.enc().copyBufferToBuffer(t.buffer, 0, s, 0, t.byteLength);
      return s;
    });
    this.flush();
    await Promise.all(stagings.map((s) => s.mapAsync(GPUMapMode.READ)));
    this.raise();
    return ts.map((t, i) => {
      const s = stagings[i];
      const copy = s.getMappedRange(0, Math.max(4, t.byteLength)).slice(0, t.byteLength);
      s.unmap();
      const list = this.stagingPool.get(s.size) ?? [];
      list.push(s);
      this.stagingPool.set(s.size, list);
      return t.dtype === "f32"
        ? new Float32Array(copy)
        : t.dtype === "u32"
        ? new Uint32Array(copy)
        : new Int32Array(copy);
    });
  }

  /** Read one f32 tensor back. */
  async read(t: GpuTensor): Promise<Float32Array> {
    const [a] = await this.readMany([t]);
    if (!(a instanceof Float32Array)) {
      throw new ShapeError(`${t.label}: read() expects f32, got ${t.dtype}`);
    }
    return a;
  }

  // ---------------------------------------------------------------- profiling

  /**
   * Time every dispatch recorded until `endProfile()` with timestamp queries (one pass per
   * dispatch, so the numbers include a little pass overhead). Returns null when the adapter
   * has no timestamp queries.
   */
  beginProfile(capacity = 2048): boolean {
    if (!this.info.hasTimestamps) return false;
    this.flush();
    const qs = this.device.createQuerySet({ type: "timestamp", count: capacity * 2 });
    const buf = this.device.createBuffer({
      size: capacity * 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    this.profiling = { qs, buf, items: [], cap: capacity };
    return true;
  }

  /** Stop profiling; returns milliseconds per dispatch label, summed. */
  async endProfile(): Promise<Map<string, { ms: number; count: number }>> {
    const p = this.profiling;
    this.profiling = null;
    const out = new Map<string, { ms: number; count: number }>();
    if (!p) return out;
    this.endPass();
    const n = p.items.length;
    if (n) this.enc().resolveQuerySet(p.qs, 0, n * 2, p.buf, 0);
    const t = new GpuTensor(p.buf, [n * 4], "u32", "timestamps");
    const [raw] = await this.readMany([t]);
    const ts = new BigUint64Array(raw.buffer, 0, n * 2);
    for (let i = 0; i < n; i++) {
      const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
      const e = out.get(p.items[i].label) ?? { ms: 0, count: 0 };
      e.ms += ms;
      e.count++;
      out.set(p.items[i].label, e);
    }
    p.qs.destroy();
    p.buf.destroy();
    return out;
  }

  /** Release the device. */
  destroy(): void {
    this.flush();
    this.device.destroy();
  }
}

function bucket(bytes: number): number {
  // 256-byte granularity below 64 KiB, then powers of two by eighths: bounded waste (≤ 12.5%)
  // while letting similar shapes share buffers across micro-batches of different lengths.
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

async function listShaders(): Promise<string[]> {
  if (SHADER_DIR.protocol !== "file:") {
    throw new DeviceError("remote import: pass the shader file list to Runtime.create(files)");
  }
  const out: string[] = [];
  for await (const e of Deno.readDir(SHADER_DIR)) {
    if (e.isFile && e.name.endsWith(".wgsl")) out.push(e.name);
  }
  return out.sort();
}
