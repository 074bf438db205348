/**
 * Poisson sampling of privacy units, and the split of a logical batch into physical micro-batches.
 *
 * The privacy unit is a record, or a patient (all of a patient's records join a step together and
 * are clipped as ONE unit). Each unit joins a step independently with probability q, drawn from a
 * {@link RandomSource} (the CSPRNG in production). Batch sizes vary; an empty batch is a valid step.
 * The realised batch size is private: it is never logged, and the DP step divides by the expected
 * size q·N instead.
 *
 * Data structure for patient units: every record of a logical batch carries `unitIndex`, the index
 * of its unit WITHIN THE STEP (0..numUnits-1). Micro-batches keep that index, so per-unit squared
 * norms can be accumulated across micro-batches before clipping.
 */
import { cryptoSource, type RandomSource, uniform53FromWords } from "./csprng.ts";
import { DpConfigError } from "./errors.ts";

export type PrivacyUnit = "record" | "patient";

/** Which records belong to which unit (CSR layout: records of unit u are `records[offsets[u]..offsets[u+1]]`). */
export class UnitTable {
  private constructor(
    readonly unit: PrivacyUnit,
    readonly offsets: Uint32Array,
    readonly records: Uint32Array,
  ) {}

  get numUnits(): number {
    return this.offsets.length - 1;
  }

  get numRecords(): number {
    return this.records.length;
  }

  /** Record-level privacy: unit i = record i. */
  static records(n: number): UnitTable {
    if (!Number.isInteger(n) || n < 0) throw new DpConfigError(`record count ${n} is not valid`);
    return new UnitTable(
      "record",
      Uint32Array.from({ length: n + 1 }, (_, i) => i),
      Uint32Array.from({ length: n }, (_, i) => i),
    );
  }

  /**
   * Patient-level privacy: `patientOf[r]` is the patient id of record r. Units are numbered in
   * order of first appearance; a unit's records keep their dataset order.
   */
  static patients(patientOf: ArrayLike<string | number>): UnitTable {
    const unitOfKey = new Map<string | number, number>();
    const unitOfRecord = new Uint32Array(patientOf.length);
    const counts: number[] = [];
    for (let r = 0; r < patientOf.length; r++) {
      const key = patientOf[r];
      if (key === "" || key === undefined || key === null) {
        throw new DpConfigError(`record ${r} has no patient id: patient-level privacy needs one`);
      }
      let u = unitOfKey.get(key);
      if (u === undefined) {
        u = counts.length;
        unitOfKey.set(key, u);
        counts.push(0);
      }
      unitOfRecord[r] = u;
      counts[u]++;
    }
    const offsets = new Uint32Array(counts.length + 1);
    for (let u = 0; u < counts.length; u++) offsets[u + 1] = offsets[u] + counts[u];
    const fillPos = offsets.slice(0, counts.length);
    const records = new Uint32Array(patientOf.length);
    for (let r = 0; r < patientOf.length; r++) records[fillPos[unitOfRecord[r]]++] = r;
    return new UnitTable("patient", offsets, records);
  }
}

/** One logical step's sample. Its sizes are private: never log them. */
export interface LogicalBatch {
  /** Dataset unit ids that joined this step, ascending. */
  units: Uint32Array;
  /** Dataset record ids, grouped by unit (unit order as in `units`). */
  records: Uint32Array;
  /** For each entry of `records`, the index of its unit within this step (into `units`). */
  unitIndex: Uint32Array;
}

/** A physical micro-batch of at most P records. */
export interface MicroBatch {
  /** Position in the step's micro-batch list. */
  index: number;
  /** Dataset record ids. */
  records: Uint32Array;
  /** Step-local unit index of each record (same length as `records`). */
  unitIndex: Uint32Array;
  /**
   * True when every unit present here has ALL its step records here, so this micro-batch can be
   * clipped on its own (single pass). False when some unit spans micro-batches.
   */
  selfContained: boolean;
}

/** Draws Poisson batches: each unit joins independently with probability q. */
export class PoissonSampler {
  constructor(
    readonly table: UnitTable,
    readonly q: number,
    private readonly src: RandomSource = cryptoSource,
  ) {
    if (!(q > 0 && q <= 1)) throw new DpConfigError(`sampling rate q = ${q} must be in (0, 1]`);
  }

  /** True unless the sampler was built with the insecure test source. */
  get secure(): boolean {
    return this.src.secure;
  }

  /** Expected number of units per step, q·N (the DP step's divisor). */
  get expectedUnits(): number {
    return this.q * this.table.numUnits;
  }

  /** One step's sample. A unit joins when its 53-bit uniform u < q (P = q up to 2^-53). */
  sample(): LogicalBatch {
    const n = this.table.numUnits;
    const words = this.src.fill(new Uint32Array(2 * n));
    const chosen: number[] = [];
    for (let u = 0; u < n; u++) {
      if (uniform53FromWords(words[2 * u], words[2 * u + 1]) < this.q) chosen.push(u);
    }
    words.fill(0);
    return this.batchOf(Uint32Array.from(chosen));
  }

  /** The logical batch for a given set of units (ascending dataset unit ids). */
  batchOf(units: Uint32Array): LogicalBatch {
    const { offsets, records: all } = this.table;
    let total = 0;
    for (const u of units) total += offsets[u + 1] - offsets[u];
    const records = new Uint32Array(total);
    const unitIndex = new Uint32Array(total);
    let k = 0;
    units.forEach((u, i) => {
      for (let j = offsets[u]; j < offsets[u + 1]; j++) {
        records[k] = all[j];
        unitIndex[k++] = i;
      }
    });
    return { units, records, unitIndex };
  }
}

/**
 * Split a logical batch into micro-batches of at most `maxRecords` records.
 * With `keepUnitsTogether` (default) a unit never spans micro-batches unless it alone has more
 * than `maxRecords` records, so most steps can be clipped in a single pass; without it the records
 * are cut into contiguous chunks (a unit may span; then the DP step needs two passes).
 */
export function splitMicroBatches(
  batch: LogicalBatch,
  maxRecords: number,
  opts: { keepUnitsTogether?: boolean } = {},
): MicroBatch[] {
  if (!Number.isInteger(maxRecords) || maxRecords < 1) {
    throw new DpConfigError(`micro-batch size ${maxRecords} must be a positive integer`);
  }
  const keep = opts.keepUnitsTogether ?? true;
  const n = batch.records.length;
  const cuts: number[] = [0];
  if (keep) {
    let start = 0;
    let i = 0;
    while (i < n) {
      let j = i;
      while (j < n && batch.unitIndex[j] === batch.unitIndex[i]) j++;
      // unit occupies [i, j)
      if (j - start > maxRecords && i > start) {
        cuts.push(i);
        start = i;
      }
      while (j - start > maxRecords) {
        start += maxRecords;
        cuts.push(start);
      }
      i = j;
    }
  } else {
    for (let s = maxRecords; s < n; s += maxRecords) cuts.push(s);
  }
  if (cuts[cuts.length - 1] !== n) cuts.push(n);
  const out: MicroBatch[] = [];
  for (let m = 0; m + 1 < cuts.length; m++) {
    const a = cuts[m], b = cuts[m + 1];
    if (a === b) continue;
    const unitIndex = batch.unitIndex.slice(a, b);
    const spansBefore = a > 0 && batch.unitIndex[a - 1] === batch.unitIndex[a];
    const spansAfter = b < n && batch.unitIndex[b] === batch.unitIndex[b - 1];
    out.push({
      index: out.length,
      records: batch.records.slice(a, b),
      unitIndex,
      selfContained: !spansBefore && !spansAfter,
    });
  }
  return out;
}
