/** Turning cached splits into encoder batches, and seeded shuffles for the non-private modes. */
import type { SplitData } from "../data/cache.ts";
import type { EncoderBatch, LabeledBatch } from "../model/encoder.ts";
import { mulberry32 } from "../random.ts";

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
