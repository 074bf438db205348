/**
 * Mulberry32: a small seeded PRNG for everything that must be reproducible and is NOT a privacy
 * mechanism (test inputs, LoRA/head init, data order in the non-private modes). DP sampling and
 * noise use the CSPRNG in pipeline/privacy/csprng.ts instead.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
