/**
 * Float64 special functions for the accountants, in log space so that Gaussian tails far below
 * the smallest double (e.g. erfc(40) ≈ 1e-697) keep full relative precision.
 *
 * erfc follows fdlibm's s_erf.c (Sun Microsystems, 1993: "Permission to use, copy, modify, and
 * distribute this software is freely granted, provided that this notice is preserved"); its
 * rational approximations are accurate to < 1 ulp. For x ≥ 1/0.35 the fdlibm form
 * erfc(x) = exp(−x² − 0.5625 + R/S)/x is evaluated as a logarithm, which never underflows; R/S
 * tends to log(1/√π) + 0.5625 as x → ∞, so the same branch stays accurate beyond x = 28.
 */

const ERX = 8.45062911510467529297e-01;
const PP = [
  1.28379167095512558561e-01,
  -3.25042107247001499370e-01,
  -2.84817495755985104766e-02,
  -5.77027029648944159157e-03,
  -2.37630166566501626084e-05,
];
const QQ = [
  1,
  3.97917223959155352819e-01,
  6.50222499887672944485e-02,
  5.08130628187576562776e-03,
  1.32494738004321644526e-04,
  -3.96022827877536812320e-06,
];
const PA = [
  -2.36211856075265944077e-03,
  4.14856118683748331666e-01,
  -3.72207876035701323847e-01,
  3.18346619901161753674e-01,
  -1.10894694282396677476e-01,
  3.54783043256182359371e-02,
  -2.16637559486879084300e-03,
];
const QA = [
  1,
  1.06420880400844228286e-01,
  5.40397917702171048937e-01,
  7.18286544141962662868e-02,
  1.26171219808761642112e-01,
  1.36370839120290507362e-02,
  1.19844998467991074170e-02,
];
const RA = [
  -9.86494403484714822705e-03,
  -6.93858572707181764372e-01,
  -1.05586262253232909814e+01,
  -6.23753324503260060396e+01,
  -1.62396669462573470355e+02,
  -1.84605092906711035994e+02,
  -8.12874355063065934246e+01,
  -9.81432934416914548592e+00,
];
const SA = [
  1,
  1.96512716674392571292e+01,
  1.37657754143519042600e+02,
  4.34565877475229228821e+02,
  6.45387271733267880336e+02,
  4.29008140027567833386e+02,
  1.08635005541779435134e+02,
  6.57024977031928170135e+00,
  -6.04244152148580987438e-02,
];
const RB = [
  -9.86494292470009928597e-03,
  -7.99283237680523006574e-01,
  -1.77579549177547519889e+01,
  -1.60636384855821916062e+02,
  -6.37566443368389627722e+02,
  -1.02509513161107724954e+03,
  -4.83519191608651397019e+02,
];
const SB = [
  1,
  3.03380607434824582924e+01,
  3.25792512996573918826e+02,
  1.53672958608443695994e+03,
  3.19985821950859553908e+03,
  2.55305040643316442583e+03,
  4.74528541206955367215e+02,
  -2.24409524465858183362e+01,
];

function poly(c: readonly number[], z: number): number {
  let r = 0;
  for (let i = c.length - 1; i >= 0; i--) r = r * z + c[i];
  return r;
}

/** log erfc(x) for x ≥ 1.25 (never underflows). */
function logErfcTail(x: number): number {
  const s = 1 / (x * x);
  const rs = x < 1 / 0.35 ? poly(RA, s) / poly(SA, s) : poly(RB, s) / poly(SB, s);
  // z has 24 significant bits, so z*z is exact; (z−x)(z+x) carries the remainder of −x².
  const z = Math.fround(x);
  return -z * z - 0.5625 + ((z - x) * (z + x) + rs) - Math.log(x);
}

/** erfc(x) in float64 (fdlibm accuracy). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 0.84375) {
    const z = x * x;
    const y = poly(PP, z) / poly(QQ, z);
    if (x < 0.25) return 1 - (x + x * y);
    return 0.5 - (x * y + (x - 0.5));
  }
  if (ax < 1.25) {
    const s = ax - 1;
    const pq = poly(PA, s) / poly(QA, s);
    return x > 0 ? 1 - ERX - pq : 1 + ERX + pq;
  }
  const t = ax === Infinity ? 0 : Math.exp(logErfcTail(ax));
  return x > 0 ? t : 2 - t;
}

/** log erfc(x), accurate in relative terms for all x (including x ≫ 27 where erfc underflows). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  if (x >= 1.25) return logErfcTail(x);
  return Math.log(erfc(x));
}

/** log Φ(z) of the standard normal CDF. */
export function logNormCdf(z: number): number {
  return logErfc(-z / Math.SQRT2) - Math.LN2;
}

/** Φ(z), accurate in the lower tail (use Φ(−z) for the upper tail). */
export function normCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** log(e^a + e^b). */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/** log(e^a − e^b) for a ≥ b (−∞ when equal). */
export function logSubExp(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (b > a) throw new RangeError(`logSubExp: ${b} > ${a}`);
  return a + log1mExp(b - a);
}

/** log(1 − e^x) for x ≤ 0, accurate near 0 and for very negative x. */
export function log1mExp(x: number): number {
  if (x > 0) return NaN;
  return x > -Math.LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x));
}
