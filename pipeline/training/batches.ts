/** Turning cached splits into encoder batches, and seeded shuffles for the non-private modes. */
import type { SplitData } from "../data/cache.ts";
import type { EncoderBatch, LabeledBatch } from "../model/encoder.ts";
import { mulberry32 } from "../random.ts";
import type { LogicalBatch } from "../privacy/sampler.ts";

/** Token ids of the given records (unpadded; the encoder pads to the longest). */
export function encoderBatch(split: SplitData, records: ArrayLike<number>): EncoderBatch {
  const ids: number[][] = [];
  for (let k = 0; k < records.length; k++) {
    const r = records[k];
    ids.push(Array.from(split.ids.subarray(split.offsets[r], split.offsets[r + 1])));
  }
  return { ids };
}

/** Token ids plus multi-label targets and label masks (or the class index for multi-class). */
export function labeledBatch(
  split: SplitData,
  records: ArrayLike<number>,
  multiClass: boolean,
): LabeledBatch {
  const L = split.numLabels;
  const labels: number[][] = [], labelMask: number[][] = [];
  for (let k = 0; k < records.length; k++) {
    const r = records[k];
    const row = Array.from(split.labels.subarray(r * L, (r + 1) * L));
    if (multiClass) {
      const c = row.indexOf(1);
      labels.push([c < 0 ? 0 : c]);
      labelMask.push([1]);
    } else {
      labels.push(row);
      labelMask.push(Array.from(split.mask.subarray(r * L, (r + 1) * L)));
    }
  }
  return { ...encoderBatch(split, records), labels, labelMask };
}

/** A permutation of 0..n-1 fixed by (seed, epoch), so a resumed run replays the same order. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const r = mulberry32((seed * 1000003 + epoch * 7919) >>> 0);
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Consecutive chunks of at most `size`. */
export function chunks(a: Uint32Array, size: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (let i = 0; i < a.length; i += size) out.push(a.subarray(i, Math.min(a.length, i + size)));
  return out;
}

/**
 * Micro-batches are padded to their longest member, so grouping similar lengths cuts the padded
 * work (reports here vary 10–128 tokens). Only the grouping changes: the step's sum of clipped
 * gradients — and so the privacy analysis — is the same for any arrangement of the sample.
 */
export function sortByLength(records: Uint32Array, split: SplitData): Uint32Array {
  const len = (r: number) => split.offsets[r + 1] - split.offsets[r];
  return Uint32Array.from(records).sort((a, b) => len(a) - len(b));
}

/** The logical batch with its units ordered by their longest record (records stay grouped). */
export function byLength(batch: LogicalBatch, split: SplitData): LogicalBatch {
  const n = batch.units.length;
  const longest = new Float64Array(n);
  for (let k = 0; k < batch.records.length; k++) {
    const r = batch.records[k], u = batch.unitIndex[k];
    longest[u] = Math.max(longest[u], split.offsets[r + 1] - split.offsets[r]);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => longest[a] - longest[b]);
  const rank = new Uint32Array(n);
  order.forEach((u, i) => (rank[u] = i));
  const idx = Array.from(batch.records.keys()).sort((a, b) =>
    rank[batch.unitIndex[a]] - rank[batch.unitIndex[b]] || a - b
  );
  return {
    units: Uint32Array.from(order, (u) => batch.units[u]),
    records: Uint32Array.from(idx, (k) => batch.records[k]),
    unitIndex: Uint32Array.from(idx, (k) => rank[batch.unitIndex[k]]),
  };
}
