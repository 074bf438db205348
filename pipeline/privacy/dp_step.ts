/**
 * One DP-SGD step on the GPU for a list of trainable tensors: per-unit clipping, clipped sum,
 * Gaussian noise N(0, σ²C²) per coordinate, division by the EXPECTED batch size q·N (never the
 * realised one). Nothing is read back; the realised batch size never leaves the step.
 *
 * Interface to the model. For each micro-batch the model returns, for every trainable tensor (in
 * the order given to the constructor), a {@link PerSampleGrad}:
 *  - `{ kind: "materialized", grads }`: per-sample gradients [B, ...] (B records);
 *  - `{ kind: "norms", sqnorms, weightedGrad }` (book-keeping route): per-record squared norms [B]
 *    of this tensor's gradient, and `weightedGrad(c, accum)`, which must ADD Σ_r c[r]·g_r into
 *    `accum` (the tensor's accumulator); `c` is [B] f32 on the GPU.
 * The model implements {@link PerSampleSource}; `perSample(mb, pass)` is called
 *  - once per micro-batch with pass "single" when every unit lies inside one micro-batch
 *    (record units always; patient units when the splitter kept them together): norms, clip
 *    factors and the weighted sum follow at once;
 *  - twice per micro-batch otherwise: pass "norms" over all micro-batches (only norms are used),
 *    then clip factors, then pass "sums" over all micro-batches (only weighted sums are used).
 *    The model may recompute (a second forward/backward) or keep what it returned.
 *
 * What is clipped. A unit's contribution is c_u·Σ_{r∈u} g_r with c_u = min(1, C / N_u), where N_u
 * bounds ‖Σ_{r∈u} g_r‖: N_u = Σ over the unit's pieces (its records within one micro-batch) of the
 * piece's summed-gradient norm. That is exact for record units and for a patient inside one
 * micro-batch when every tensor is materialized (the rows are summed per unit on the GPU first);
 * it is a triangle-inequality upper bound (clips more, never less) when a patient spans
 * micro-batches, or when the book-keeping route gives only per-record norms for multi-record units.
 * Flat clipping: norms over all tensors. Per-layer clipping: tensor t belongs to group k with its
 * own bound C_k; the total sensitivity is C = sqrt(Σ_k C_k²), and that C scales the noise.
 *
 * The tensors returned by `finish()` / `run()` belong to DpStep and stay valid until the next
 * `begin()`; they hold (Σ clipped + σ·C·z) / (q·N), ready for the optimizer.
 */
import {
  addNoiseAndScale,
  addSq,
  clipFactors,
  gatherFactors,
  pieceSum,
  rowSqnorm,
  unitAccumulate,
  weightedSum,
} from "../gpu/ops/dp.ts";
import type { Runtime } from "../gpu/runtime.ts";
import { expectShape, GpuTensor, numel } from "../gpu/tensor.ts";
import { cryptoSource, freshKey, type RandomSource } from "./csprng.ts";
import { DpConfigError } from "./errors.ts";
import type { LogicalBatch, MicroBatch } from "./sampler.ts";

export type PerSampleGrad =
  | { kind: "materialized"; grads: GpuTensor }
  | {
    kind: "norms";
    sqnorms: GpuTensor;
    weightedGrad(c: GpuTensor, accum: GpuTensor): void;
  };

export type PerSamplePass = "single" | "norms" | "sums";

export interface PerSampleSource {
  perSample(mb: MicroBatch, pass: PerSamplePass): PerSampleGrad[] | Promise<PerSampleGrad[]>;
}

export interface TrainableSpec {
  name: string;
  shape: readonly number[];
  /** Clipping group (per-layer clipping); 0 for flat clipping. */
  group?: number;
}

export type ClipSpec =
  | { kind: "flat"; C: number }
  /** bounds[k] = C_k of group k; the total C is sqrt(Σ C_k²). */
  | { kind: "per-layer"; bounds: number[] };

export interface DpStepConfig {
  params: TrainableSpec[];
  clipping: ClipSpec;
  /** Noise multiplier σ (noise std on the clipped sum is σ·C). 0 only for tests/ablations. */
  sigma: number;
  /** Expected units per step, q·N: the constant divisor. */
  expectedUnits: number;
  /** Largest micro-batch (records). */
  maxRecords: number;
  /** Source of the per-step noise keys (the CSPRNG unless a test says otherwise). */
  rng?: RandomSource;
}

type Phase = "idle" | "open" | "norms" | "sums" | "done";

export class DpStep {
  private readonly specs: TrainableSpec[];
  private readonly groups: number;
  private readonly boundsHost: number[];
  /** Total clipping norm C (sensitivity of the clipped sum). */
  readonly C: number;
  readonly sigma: number;
  readonly expectedUnits: number;
  readonly maxRecords: number;
  private readonly rng: RandomSource;
  private readonly accs: GpuTensor[];
  private readonly bounds: GpuTensor;
  private readonly pieceSq: GpuTensor;
  private readonly recC: GpuTensor;
  private readonly unitIdx: GpuTensor;
  private unitNorm: GpuTensor;
  private factors: GpuTensor;
  private scratch: GpuTensor | null = null;
  private unitCap = 0;
  private units = 0;
  private phase: Phase = "idle";
  private stepIndex = -1;
  private normsSeen = new Set<number>();
  private uploadedFor: MicroBatch | null = null;
  private keysDrawn = 0;

  constructor(private readonly rt: Runtime, cfg: DpStepConfig) {
    if (!cfg.params.length) throw new DpConfigError("DpStep: no trainable tensors");
    if (!(cfg.sigma >= 0 && Number.isFinite(cfg.sigma))) {
      throw new DpConfigError(`DpStep: σ = ${cfg.sigma} must be finite and ≥ 0`);
    }
    if (!(cfg.expectedUnits > 0 && Number.isFinite(cfg.expectedUnits))) {
      throw new DpConfigError(`DpStep: expected batch size q·N = ${cfg.expectedUnits} must be > 0`);
    }
    if (!Number.isInteger(cfg.maxRecords) || cfg.maxRecords < 1) {
      throw new DpConfigError(`DpStep: maxRecords = ${cfg.maxRecords} must be a positive integer`);
    }
    this.boundsHost = cfg.clipping.kind === "flat" ? [cfg.clipping.C] : [...cfg.clipping.bounds];
    if (!this.boundsHost.length || this.boundsHost.some((c) => !(c > 0 && Number.isFinite(c)))) {
      throw new DpConfigError(
        `DpStep: clipping bounds [${this.boundsHost}] must be finite and > 0`,
      );
    }
    this.groups = this.boundsHost.length;
    this.specs = cfg.params.map((s) => ({ ...s, group: s.group ?? 0 }));
    for (const s of this.specs) {
      const g = s.group ?? 0;
      if (!Number.isInteger(g) || g < 0 || g >= this.groups) {
        throw new DpConfigError(`DpStep: tensor ${s.name} has group ${g}; ${this.groups} bounds`);
      }
      if (cfg.clipping.kind === "flat" && g !== 0) {
        throw new DpConfigError(`DpStep: tensor ${s.name} has group ${g} under flat clipping`);
      }
    }
    this.C = Math.sqrt(this.boundsHost.reduce((a, c) => a + c * c, 0));
    this.sigma = cfg.sigma;
    this.expectedUnits = cfg.expectedUnits;
    this.maxRecords = cfg.maxRecords;
    this.rng = cfg.rng ?? cryptoSource;
    this.accs = this.specs.map((s) => rt.empty(s.shape, `dp.grad.${s.name}`));
    this.bounds = rt.upload(Float32Array.from(this.boundsHost), [this.groups], "dp.bounds");
    this.pieceSq = rt.empty([this.groups * this.maxRecords], "dp.pieceSq");
    this.recC = rt.empty([this.maxRecords], "dp.recC");
    this.unitIdx = rt.empty([this.maxRecords], "dp.unitIdx", "u32");
    this.unitNorm = rt.empty([1], "dp.unitNorm");
    this.factors = rt.empty([1], "dp.factors");
  }

  /** False when the noise keys come from the insecure test source (recorded in the ledger). */
  get secure(): boolean {
    return this.rng.secure;
  }

  /** Standard deviation of the noise added to the clipped sum (σ·C). */
  get noiseStd(): number {
    return this.sigma * this.C;
  }

  /** Start logical step `step` with `numUnits` sampled units (0 is valid: noise only). */
  begin(step: number, numUnits: number): void {
    if (this.phase !== "idle" && this.phase !== "done") {
      throw new DpConfigError(`DpStep: begin(${step}) while step ${this.stepIndex} is unfinished`);
    }
    if (!Number.isInteger(step) || step <= this.stepIndex) {
      throw new DpConfigError(`DpStep: step ${step} does not follow step ${this.stepIndex}`);
    }
    if (!Number.isInteger(numUnits) || numUnits < 0) {
      throw new DpConfigError(`DpStep: unit count ${numUnits} is not valid`);
    }
    if (numUnits > this.unitCap) {
      this.rt.release(this.unitNorm);
      this.rt.release(this.factors);
      this.unitCap = Math.max(numUnits, 2 * this.unitCap, 64);
      this.unitNorm = this.rt.empty([this.groups * this.unitCap], "dp.unitNorm");
      this.factors = this.rt.empty([this.groups * this.unitCap], "dp.factors");
    }
    this.stepIndex = step;
    this.units = numUnits;
    this.rt.clear(this.unitNorm);
    for (const a of this.accs) this.rt.clear(a);
    this.normsSeen.clear();
    this.uploadedFor = null;
    this.phase = "open";
  }

  /** Add one micro-batch's per-unit norm bounds (two-pass mode, pass 1). */
  accumulateNorms(mb: MicroBatch, grads: PerSampleGrad[]): void {
    if (this.phase !== "open" && this.phase !== "norms") {
      throw new DpConfigError(`DpStep: norms for micro-batch ${mb.index} after clipping began`);
    }
    this.phase = "norms";
    this.addNorms(mb, grads);
    this.normsSeen.add(mb.index);
  }

  /** Clip factors from the accumulated norms; call once all micro-batches' norms are in. */
  computeFactors(): void {
    if (this.phase !== "norms" && this.phase !== "open") {
      throw new DpConfigError("DpStep: computeFactors() outside the norms phase");
    }
    clipFactors(this.rt, this.unitNorm, this.bounds, this.factors, this.unitCap, this.groups);
    this.phase = "sums";
  }

  /** Add one micro-batch's clipped gradients (two-pass mode, pass 2). */
  accumulateClipped(mb: MicroBatch, grads: PerSampleGrad[]): void {
    if (this.phase !== "sums") {
      throw new DpConfigError("DpStep: accumulateClipped() before computeFactors()");
    }
    if (!this.normsSeen.has(mb.index)) {
      throw new DpConfigError(`DpStep: micro-batch ${mb.index} was not in the norms pass`);
    }
    this.addSums(mb, grads);
  }

  /**
   * Single-pass micro-batch: norms → factors → weighted sum. Only valid when no unit of this
   * micro-batch has records elsewhere (otherwise the unit would be under-clipped): checked.
   */
  singlePass(mb: MicroBatch, grads: PerSampleGrad[]): void {
    if (!mb.selfContained) {
      throw new DpConfigError(
        `DpStep: micro-batch ${mb.index} shares a unit with another micro-batch; ` +
          "use the two-pass route (accumulateNorms → computeFactors → accumulateClipped)",
      );
    }
    if (this.phase !== "open" && this.phase !== "sums") {
      throw new DpConfigError("DpStep: singlePass() mixed with the two-pass route");
    }
    this.addNorms(mb, grads);
    clipFactors(this.rt, this.unitNorm, this.bounds, this.factors, this.unitCap, this.groups);
    this.phase = "sums";
    this.addSums(mb, grads);
  }

  /** Add noise with a fresh CSPRNG key and divide by q·N; returns the gradient tensors. */
  finish(): GpuTensor[] {
    if (this.phase === "norms") {
      throw new DpConfigError("DpStep: finish() after norms but before the clipped sums");
    }
    if (this.phase !== "open" && this.phase !== "sums") {
      throw new DpConfigError("DpStep: finish() without begin()");
    }
    const key = freshKey(256, this.rng);
    this.keysDrawn++;
    this.accs.forEach((acc, t) =>
      addNoiseAndScale(this.rt, acc, {
        key,
        stream: t,
        noiseStd: this.noiseStd,
        scale: 1 / this.expectedUnits,
      })
    );
    this.rt.flush(); // the key now lives only in the submitted uniforms
    key.fill(0);
    this.phase = "done";
    return this.accs;
  }

  /** Whole step: begin → (single pass | two passes) over the micro-batches → finish. */
  async run(
    step: number,
    batch: LogicalBatch,
    micro: readonly MicroBatch[],
    model: PerSampleSource,
  ): Promise<GpuTensor[]> {
    this.begin(step, batch.units.length);
    if (micro.every((mb) => mb.selfContained)) {
      for (const mb of micro) this.singlePass(mb, await model.perSample(mb, "single"));
    } else {
      for (const mb of micro) this.accumulateNorms(mb, await model.perSample(mb, "norms"));
      this.computeFactors();
      for (const mb of micro) this.accumulateClipped(mb, await model.perSample(mb, "sums"));
    }
    return this.finish();
  }

  /** Release GPU buffers. */
  dispose(): void {
    for (const t of [...this.accs, this.bounds, this.pieceSq, this.recC, this.unitIdx]) {
      this.rt.release(t);
    }
    this.rt.release(this.unitNorm);
    this.rt.release(this.factors);
    if (this.scratch) this.rt.release(this.scratch);
  }

  // ---------------------------------------------------------------- internals

  /** Upload the micro-batch's unit indices; returns [records, unitLo, unitCount, oneRecordPerUnit]. */
  private upload(mb: MicroBatch): [number, number, number, boolean] {
    const b = mb.unitIndex.length;
    if (b !== mb.records.length) {
      throw new DpConfigError(
        `DpStep: micro-batch ${mb.index} has ${mb.records.length} records, ${b} unit indices`,
      );
    }
    if (b > this.maxRecords) {
      throw new DpConfigError(
        `DpStep: micro-batch ${mb.index} has ${b} records > ${this.maxRecords}`,
      );
    }
    let single = true;
    for (let r = 0; r < b; r++) {
      const u = mb.unitIndex[r];
      if (u >= this.units) {
        throw new DpConfigError(
          `DpStep: micro-batch ${mb.index} record ${r} has unit ${u} ≥ ${this.units}`,
        );
      }
      if (r > 0 && u !== mb.unitIndex[r - 1]) {
        if (u !== mb.unitIndex[r - 1] + 1) {
          throw new DpConfigError(
            `DpStep: micro-batch ${mb.index}: records not grouped by consecutive unit indices`,
          );
        }
      } else if (r > 0) single = false;
    }
    const lo = b ? mb.unitIndex[0] : 0;
    const count = b ? mb.unitIndex[b - 1] - lo + 1 : 0;
    if (this.uploadedFor !== mb && b) {
      this.rt.write(this.unitIdx, mb.unitIndex);
      this.uploadedFor = mb;
    }
    return [b, lo, count, single];
  }

  private view(t: GpuTensor, shape: number[], label: string): GpuTensor {
    return new GpuTensor(t.buffer, shape, t.dtype, label);
  }

  private check(mb: MicroBatch, grads: PerSampleGrad[], b: number): void {
    if (grads.length !== this.specs.length) {
      throw new DpConfigError(
        `DpStep: ${grads.length} per-sample entries for ${this.specs.length} tensors`,
      );
    }
    grads.forEach((pg, t) => {
      const s = this.specs[t];
      const what = `per-sample ${s.name} (micro-batch ${mb.index})`;
      if (pg.kind === "materialized") {
        expectShape("DpStep", what, pg.grads, [b, ...s.shape]);
      } else {
        expectShape("DpStep", what, pg.sqnorms, [b]);
      }
    });
  }

  private addNorms(mb: MicroBatch, grads: PerSampleGrad[]): void {
    const [b, lo, count, single] = this.upload(mb);
    this.check(mb, grads, b);
    if (!b) return;
    const unitIdx = this.view(this.unitIdx, [b], "dp.unitIdx");
    const exactPieces = !single && grads.every((pg) => pg.kind === "materialized");
    this.rt.clear(this.pieceSq);
    grads.forEach((pg, t) => {
      const s = this.specs[t];
      const row = (s.group ?? 0) * this.maxRecords;
      if (pg.kind === "norms") {
        addSq(this.rt, pg.sqnorms, this.pieceSq, b, row);
        return;
      }
      const p = numel(s.shape);
      const rows = pg.grads.reshape([b, p]);
      if (!exactPieces) {
        rowSqnorm(this.rt, rows, this.pieceSq, row);
        return;
      }
      const scratch = this.scratchFor(count * p);
      const pieces = this.view(scratch, [count, p], "dp.pieces");
      pieceSum(this.rt, rows, unitIdx, scratch, lo, count);
      rowSqnorm(this.rt, pieces, this.pieceSq, row);
    });
    for (let k = 0; k < this.groups; k++) {
      unitAccumulate(this.rt, this.pieceSq, unitIdx, this.unitNorm, {
        records: b,
        unitLo: lo,
        unitCount: count,
        piecesAreUnits: exactPieces,
        unitOffset: k * this.unitCap,
        pieceOffset: k * this.maxRecords,
      });
    }
  }

  private addSums(mb: MicroBatch, grads: PerSampleGrad[]): void {
    const [b] = this.upload(mb);
    this.check(mb, grads, b);
    if (!b) return;
    const unitIdx = this.view(this.unitIdx, [b], "dp.unitIdx");
    grads.forEach((pg, t) => {
      const s = this.specs[t];
      const off = (s.group ?? 0) * this.unitCap;
      if (pg.kind === "materialized") {
        const p = numel(s.shape);
        weightedSum(this.rt, pg.grads.reshape([b, p]), unitIdx, this.factors, this.accs[t], off);
      } else {
        const c = this.view(this.recC, [b], "dp.recC");
        gatherFactors(this.rt, this.factors, unitIdx, c, b, off);
        pg.weightedGrad(c, this.accs[t]);
      }
    });
  }

  private scratchFor(n: number): GpuTensor {
    if (!this.scratch || this.scratch.size < n) {
      if (this.scratch) this.rt.release(this.scratch);
      this.scratch = this.rt.empty([n], "dp.pieceScratch");
    }
    return this.scratch;
  }
}
