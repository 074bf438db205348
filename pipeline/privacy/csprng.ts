/**
 * Randomness for privacy: every draw that the DP guarantee depends on (Poisson sampling, noise
 * keys) comes from a {@link RandomSource}. The production source is the platform CSPRNG
 * (`crypto.getRandomValues`). A seeded deterministic source exists for tests only; it can only be
 * obtained by calling {@link insecureSeedForTests} in code (no config field leads to it), it is
 * branded `secure: false`, and the DP step and ledger record that brand so it is never silent.
 */

export interface RandomSource {
  /** False only for the test source; recorded in the ledger (`rng`). */
  readonly secure: boolean;
  /** Fill `out` with uniform 32-bit words and return it. */
  fill(out: Uint32Array): Uint32Array;
}

/** crypto.getRandomValues refuses more than 65536 bytes per call. */
const MAX_WORDS_PER_CALL = 16384;

/** The platform CSPRNG. */
export const cryptoSource: RandomSource = Object.freeze({
  secure: true,
  fill(out: Uint32Array): Uint32Array {
    for (let i = 0; i < out.length; i += MAX_WORDS_PER_CALL) {
      crypto.getRandomValues(out.subarray(i, Math.min(out.length, i + MAX_WORDS_PER_CALL)));
    }
    return out;
  },
});

/** `n` uniform u32 words. */
export function randomU32(n: number, src: RandomSource = cryptoSource): Uint32Array {
  return src.fill(new Uint32Array(n));
}

/** Uniform f64 in [0, 1) with 53 random bits (every multiple of 2^-53 equally likely). */
export function uniform53(src: RandomSource = cryptoSource): number {
  const w = src.fill(new Uint32Array(2));
  return uniform53FromWords(w[0], w[1]);
}

/** 53-bit uniform from two words: 27 high bits of `a`, 26 high bits of `b`. */
export function uniform53FromWords(a: number, b: number): number {
  return ((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992;
}

/** `n` uniforms in [0, 1) with 53 bits each (one bulk draw). */
export function uniforms53(n: number, src: RandomSource = cryptoSource): Float64Array {
  const w = src.fill(new Uint32Array(2 * n));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = uniform53FromWords(w[2 * i], w[2 * i + 1]);
  return out;
}

/** A fresh key of `bits` bits (multiple of 32; 128 by default) as u32 words. */
export function freshKey(bits = 128, src: RandomSource = cryptoSource): Uint32Array {
  if (bits % 32 !== 0 || bits < 128) throw new RangeError(`key size ${bits} bits: use ≥128, /32`);
  return src.fill(new Uint32Array(bits / 32));
}

/**
 * INSECURE: a deterministic source (xoshiro128**, seeded by splitmix32) so that tests can replay
 * a sampling or a noise draw. Never use it for training: its output is predictable from the seed,
 * which voids the DP guarantee. Anything built with it carries `secure: false` into the ledger.
 */
export function insecureSeedForTests(seed: number): RandomSource {
  let x = seed >>> 0;
  const split = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = new Uint32Array([split(), split(), split(), split()]);
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  const next = () => {
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  };
  return Object.freeze({
    secure: false,
    fill(out: Uint32Array): Uint32Array {
      for (let i = 0; i < out.length; i++) out[i] = next();
      return out;
    },
  });
}

function rotl(v: number, k: number): number {
  return ((v << k) | (v >>> (32 - k))) >>> 0;
}
