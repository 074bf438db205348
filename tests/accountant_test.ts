/**
 * Privacy accountants: published reference values, exact closed forms (the PLD must never report
 * less than the true ε), ordering tight ≤ RDP, monotonicity, calibration safety and tightness,
 * extreme regimes, argument validation and the `deno task account` CLI.
 */
import assert from "node:assert/strict";
import {
  AccountantError,
  calibrateNoise,
  computeEpsilon,
  DEFAULT_ORDERS,
  maxStepsForBudget,
  pldEpsilon,
  pldEpsilonDetailed,
  rdpEpsilon,
  rdpEpsilonDetailed,
  rdpStep,
} from "../pipeline/privacy/accountant/mod.ts";
import { erfc, logErfc, normCdf } from "../pipeline/privacy/accountant/special.ts";
import { runAccountCli } from "../tasks/account.ts";
import { freshSeed, rng } from "./helpers.ts";

const REF1 = { sampleRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5 };
const REF2 = { ...REF1, steps: 10000 };
const MNIST = {
  sampleRate: 256 / 60000,
  noiseMultiplier: 1.1,
  steps: Math.floor(60 * 60000 / 256),
  delta: 1e-5,
};

// ---- float64 references (independent of the accountants' code paths) -------------------------

/** Hockey-stick δ(ε) between N(μ,1) and N(0,1) (Balle & Wang 2018). */
function gaussDelta(eps: number, mu: number): number {
  return normCdf(-eps / mu + mu / 2) - Math.exp(eps) * normCdf(-eps / mu - mu / 2);
}

/** Exact single-step δ(ε) of the Poisson-subsampled Gaussian, worse of remove/add. */
function subsampledDelta(eps: number, q: number, sigma: number): number {
  const mu = 1 / sigma;
  const remove = q * gaussDelta(Math.log1p(Math.expm1(eps) / q), mu);
  const c = 1 - Math.exp(eps) * (1 - q);
  const add = c > 0 ? c * gaussDelta(Math.log((Math.exp(eps) * q) / c), mu) : 0;
  return Math.max(remove, add);
}

/** Smallest ε ≥ 0 with δ(ε) ≤ target (δ decreasing), by bisection to 1e-12. */
function solveEps(delta: (e: number) => number, target: number): number {
  if (delta(0) <= target) return 0;
  let lo = 0, hi = 1;
  while (delta(hi) > target) hi *= 2;
  while (hi - lo > 1e-12 * hi) {
    const mid = 0.5 * (lo + hi);
    if (delta(mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}

function near(got: number, want: number, tol: number, what: string): void {
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want} ± ${tol}`);
}

// ---- special functions ------------------------------------------------------------------------

Deno.test("erfc matches known values; log erfc stays accurate where erfc underflows", () => {
  // Values to 17+ digits from standard tables; fdlibm's erfc is < 1 ulp, we allow 4e-15 relative.
  const known: [number, number][] = [
    [0.1, 0.88753708398171510159],
    [0.5, 0.47950012218695346232],
    [1, 0.15729920705028513066],
    [2, 0.00467773498104726584],
    [3, 2.2090496998585441373e-5],
    [-1, 1.84270079294971486934],
  ];
  for (const [x, v] of known) near(erfc(x) / v, 1, 4e-15, `erfc(${x})`);
  // Asymptotic series log erfc(x) = −x² − log(x√π) + log Σ_k (−1)^k (2k−1)!!/(2x²)^k.
  for (const x of [30, 45, 200]) {
    let s = 1, t = 1;
    for (let k = 1; k < 20; k++) s += t *= -(2 * k - 1) / (2 * x * x);
    const want = -x * x - Math.log(x) - 0.5 * Math.log(Math.PI) + Math.log(s);
    near(logErfc(x) / want, 1, 1e-14, `logErfc(${x})`);
  }
});

// ---- RDP --------------------------------------------------------------------------------------

Deno.test("RDP reproduces published ε (δ = 1e-5)", () => {
  near(rdpEpsilon(REF1), 2.10, 0.03, "q=0.01 σ=1 1000 steps");
  near(rdpEpsilon(REF2), 6.71, 0.03, "q=0.01 σ=1 10000 steps");
  // The MNIST tutorial's ε ≈ 3.0 was computed with the classic conversion log(1/δ)/(α−1); the
  // improved conversion (our default) certifies a smaller ε ≈ 2.60 from the same RDP curve.
  near(rdpEpsilon(MNIST, { conversion: "classic" }), 3.0, 0.03, "MNIST classic");
  near(rdpEpsilon(MNIST), 2.60, 0.03, "MNIST improved");
});

Deno.test("RDP fractional-order series agrees with the integer expansion and a quadrature", () => {
  for (const [q, sigma] of [[0.01, 1], [0.2, 0.7], [0.5, 3]]) {
    for (const a of [2, 3, 7]) {
      const int = rdpStep(q, sigma, a), frac = rdpStep(q, sigma, a + 1e-9);
      near(frac / int, 1, 1e-6, `q=${q} σ=${sigma} α=${a}`);
    }
    // A_α = E_{N(0,σ²)}[((1−q) + q·e^{(2x−1)/(2σ²)})^α] by the trapezoid rule, α = 2.5.
    const alpha = 2.5, n = 20000, lo = -20 * sigma, hi = 1 + 40 * sigma, dx = (hi - lo) / n;
    let s = 0;
    for (let k = 0; k <= n; k++) {
      const x = lo + k * dx;
      const ratio = 1 - q + q * Math.exp((2 * x - 1) / (2 * sigma * sigma));
      const w = (k === 0 || k === n ? 0.5 : 1) * Math.exp(-0.5 * (x / sigma) ** 2);
      s += w * ratio ** alpha;
    }
    const rdp = Math.log((s * dx) / (sigma * Math.sqrt(2 * Math.PI))) / (alpha - 1);
    near(rdpStep(q, sigma, alpha) / rdp, 1, 1e-8, `quadrature q=${q} σ=${sigma}`);
  }
  near(rdpStep(1, 2, 5), 5 / 8, 1e-15, "q = 1 closed form α/(2σ²)");
});

Deno.test("RDP orders reach far enough to certify small ε", () => {
  const r = rdpEpsilonDetailed({ ...REF1, noiseMultiplier: 100 });
  assert.ok(r.epsilon < 0.02, `ε = ${r.epsilon}`);
  assert.ok(r.order > 64, `optimal order ${r.order} should be far above 64`);
});

// ---- PLD --------------------------------------------------------------------------------------

Deno.test("PLD reproduces published tight ε (δ = 1e-5)", () => {
  near(pldEpsilon(REF1), 1.83, 0.05, "q=0.01 σ=1 1000 steps");
  near(pldEpsilon(REF2), 6.19, 0.05, "q=0.01 σ=1 10000 steps");
});

Deno.test("PLD at q = 1 upper-bounds the exact Gaussian (ε,δ) curve, within 0.2%", () => {
  for (const [sigma, steps] of [[1, 1], [10, 100], [3, 7], [0.5, 33], [40, 130]]) {
    for (const delta of [1e-5, 1e-10]) {
      const mu = Math.sqrt(steps) / sigma;
      const exact = solveEps((e) => gaussDelta(e, mu), delta);
      const got = pldEpsilon({ sampleRate: 1, noiseMultiplier: sigma, steps, delta });
      const what = `σ=${sigma} steps=${steps} δ=${delta}: pld ${got} vs exact ${exact}`;
      assert.ok(got >= exact - 1e-9, `below the exact ε (not an upper bound): ${what}`);
      assert.ok(got <= exact * (1 + 2e-3) + 1e-4, `too loose: ${what}`);
    }
  }
});

Deno.test("PLD for one subsampled step upper-bounds the exact curve (both directions)", () => {
  for (const [q, sigma] of [[0.01, 0.8], [0.3, 2], [0.7, 0.5], [0.05, 5]]) {
    for (const delta of [1e-3, 1e-6]) {
      const exact = solveEps((e) => subsampledDelta(e, q, sigma), delta);
      const got = pldEpsilon({ sampleRate: q, noiseMultiplier: sigma, steps: 1, delta });
      const what = `q=${q} σ=${sigma} δ=${delta}: pld ${got} vs exact ${exact}`;
      assert.ok(got >= exact - 1e-9, `below the exact ε: ${what}`);
      assert.ok(got <= exact * (1 + 2e-3) + 1e-4, `too loose: ${what}`);
    }
  }
});

/** [P(L ≤ l), P(L > l)] of one subsampled-Gaussian step, L = log(P/Q) under P, each accurate. */
function lossCdfPair(dir: "remove" | "add", q: number, sigma: number, l: number): [number, number] {
  // remove: L = log(1−q + q·e^{(x−½)/σ²}) increasing in x, x ~ (1−q)N(0,σ²) + qN(1,σ²);
  // add: L = −log(1−q + q·e^{(x−½)/σ²}) decreasing in x, x ~ N(0,σ²). x at which L crosses ±l:
  const cross = (v: number): number => {
    const w = Math.expm1(v) + q;
    return w > 0 ? 0.5 + sigma * sigma * Math.log(w / q) : -Infinity;
  };
  if (dir === "remove") {
    const x = cross(l);
    const le = (1 - q) * normCdf(x / sigma) + q * normCdf((x - 1) / sigma);
    const gt = (1 - q) * normCdf(-x / sigma) + q * normCdf((1 - x) / sigma);
    return [le, gt];
  }
  const x = cross(-l);
  return [normCdf(-x / sigma), normCdf(x / sigma)];
}

/**
 * Bracket [lower, upper] on the exact ε(δ) of `steps` compositions of one direction: every loss
 * rounded down (mass below the grid dropped to −∞) resp. up (mass above it put at +∞) to a grid
 * of `points` bins, composed by direct float64 convolution (no FFT, no tilting). δ(ε) =
 * E_P[(1 − e^{ε−ΣL})₊] is increasing in every L, so the two roundings bracket the true ε.
 */
function epsBracket(
  dir: "remove" | "add",
  p: { sampleRate: number; noiseMultiplier: number; steps: number; delta: number },
  points: number,
): [number, number] {
  const { sampleRate: q, noiseMultiplier: sigma, steps, delta } = p;
  const pair = (l: number) => lossCdfPair(dir, q, sigma, l);
  const cut = (1e-7 * delta) / steps; // loss mass cut off per step, far below δ
  // Range [a, b]: the bounded end is the support end, the other where the tail falls to `cut`.
  let a: number, b: number;
  if (dir === "remove") {
    a = Math.log1p(-q);
    b = solveEps((l) => pair(l)[1], cut);
  } else {
    b = -Math.log1p(-q);
    a = -solveEps((m) => pair(-m)[0], cut);
  }
  const h = (b - a) / points;
  const down = new Float64Array(points + 1), up = new Float64Array(points + 1);
  let prev = pair(a);
  up[0] = prev[0]; // loss ≤ a: rounded up to a; rounded down it is −∞ (dropped)
  for (let i = 1; i <= points; i++) {
    const cur = pair(a + i * h);
    const m = prev[1] <= 0.5 ? prev[1] - cur[1] : cur[0] - prev[0];
    up[i] += m;
    down[i - 1] += m;
    prev = cur;
  }
  down[points] += prev[1]; // loss > b: rounded down to b, or up to +∞
  const infUp = -Math.expm1(steps * Math.log1p(-prev[1]));
  const compose = (base: Float64Array): Float64Array => {
    let acc = Float64Array.from(base);
    for (let s = 1; s < steps; s++) {
      const out = new Float64Array(acc.length + base.length - 1);
      for (let i = 0; i < acc.length; i++) {
        if (acc[i] === 0) continue;
        for (let j = 0; j < base.length; j++) out[i + j] += acc[i] * base[j];
      }
      acc = out;
    }
    return acc;
  };
  const solve = (pmf: Float64Array, inf: number): number => {
    const d = (eps: number): number => {
      let s = inf;
      for (let k = 0; k < pmf.length; k++) {
        const l = steps * a + k * h;
        if (l > eps) s += pmf[k] * -Math.expm1(eps - l);
      }
      return s;
    };
    return solveEps(d, delta);
  };
  return [solve(compose(down), 0), solve(compose(up), infUp)];
}

Deno.test("PLD of a few subsampled steps at small δ lies inside an exact direct-convolution bracket", () => {
  // Regression: with few steps, σ < 1 and tiny δ, the tilt chosen for round-off put the tilted
  // composed mass far above the FFT window; cyclic aliasing then inflated ε by up to 40% (it
  // exceeded RDP: 5.35 vs 4.47 for the first case, DPLORA_TEST_SEED=1535579716). The bracket
  // comes from a direct convolution of rounded-down / rounded-up losses (1500 bins per step;
  // its width ~ steps·bin is far below those errors), independent of pld.ts.
  const cases = [
    {
      sampleRate: 0.031068156919691465,
      noiseMultiplier: 0.8753036553040147,
      steps: 9,
      delta: 2.7556133557618065e-10,
    },
    { sampleRate: 0.0072, noiseMultiplier: 1.07, steps: 2, delta: 3.8e-8 }, // was 0.671 vs 0.432
    { sampleRate: 0.0014, noiseMultiplier: 2.06, steps: 3, delta: 3.4e-5 }, // was 0.0042 vs 0.0026
    { sampleRate: 0.073, noiseMultiplier: 3.1, steps: 8, delta: 1.2e-12 }, // was 0.772 > rdp 0.688
  ];
  for (const p of cases) {
    const [lr, ur] = epsBracket("remove", p, 1500), [la, ua] = epsBracket("add", p, 1500);
    const lower = Math.max(lr, la), upper = Math.max(ur, ua);
    const got = pldEpsilon(p);
    const what = `${JSON.stringify(p)}: pld ${got}, exact ∈ [${lower}, ${upper}]`;
    assert.ok(got >= lower - 1e-9, `below the exact ε (not an upper bound): ${what}`);
    assert.ok(got <= upper, `looser than the rounded-up direct convolution: ${what}`);
    assert.ok(got <= rdpEpsilon(p), `above RDP: ${what}`);
  }
});

Deno.test("PLD converges as the grid is refined, from above", () => {
  const r = pldEpsilonDetailed(REF1);
  const fine = pldEpsilon(REF1, { interval: r.interval / 4 });
  const coarse = pldEpsilon(REF1, { interval: r.interval * 4 });
  // Connect-the-dots error is second order in h: ×4 coarser must be visibly looser, the default
  // within 1e-3 relative of a 4× finer grid.
  assert.ok(coarse > r.epsilon && r.epsilon > fine, `${coarse} > ${r.epsilon} > ${fine}`);
  near(r.epsilon / fine, 1, 1e-3, "default vs 4× finer");
});

Deno.test("tight ≤ RDP and monotone in steps, q, σ (fixed and seeded random grid)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const grid = [
    { sampleRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5 },
    { sampleRate: 0.1, noiseMultiplier: 2, steps: 130, delta: 1e-8 },
    { sampleRate: 0.001, noiseMultiplier: 0.7, steps: 7, delta: 1e-6 },
    // Regression (drawn by DPLORA_TEST_SEED=1535579716): FFT aliasing made pld 5.35 > rdp 4.47.
    {
      sampleRate: 0.031068156919691465,
      noiseMultiplier: 0.8753036553040147,
      steps: 9,
      delta: 2.7556133557618065e-10,
    },
  ];
  for (let i = 0; i < 3; i++) {
    grid.push({
      sampleRate: 10 ** (-3 + 2.5 * r()),
      noiseMultiplier: 0.6 + 4 * r(),
      steps: 1 + Math.floor(10 ** (3.3 * r())),
      delta: 10 ** (-4 - 6 * r()),
    });
  }
  for (const p of grid) {
    const what = `${JSON.stringify(p)} (DPLORA_TEST_SEED=${seed})`;
    const tight = pldEpsilon(p), loose = rdpEpsilon(p);
    assert.ok(tight > 0 && tight <= loose, `pld ${tight} vs rdp ${loose}: ${what}`);
    const more = [
      { ...p, steps: p.steps * 2 },
      { ...p, sampleRate: Math.min(1, p.sampleRate * 1.5) },
      { ...p, noiseMultiplier: p.noiseMultiplier / 1.2 },
    ];
    for (const m of more) {
      assert.ok(pldEpsilon(m) > tight, `pld not monotone: ${JSON.stringify(m)} vs ${what}`);
      assert.ok(rdpEpsilon(m) > loose, `rdp not monotone: ${JSON.stringify(m)} vs ${what}`);
    }
  }
});

Deno.test("heterogeneous histories compose like the concatenated run", () => {
  const a = { sampleRate: 0.01, noiseMultiplier: 1, steps: 400 };
  const b = { sampleRate: 0.01, noiseMultiplier: 1, steps: 600 };
  const split = { segments: [a, b], delta: 1e-5 };
  near(rdpEpsilon(split), rdpEpsilon(REF1), 1e-12, "rdp split == whole");
  near(pldEpsilon(split) / pldEpsilon(REF1), 1, 2e-3, "pld split ≈ whole");
  const mixed = { segments: [a, { ...b, noiseMultiplier: 2 }], delta: 1e-5 };
  const lo = pldEpsilon({ ...REF1, noiseMultiplier: 2 }), hi = pldEpsilon(REF1);
  const m = pldEpsilon(mixed);
  assert.ok(lo < m && m < hi, `mixed ${m} not between ${lo} and ${hi}`);
  assert.ok(m <= rdpEpsilon(mixed));
  assert.equal(pldEpsilon({ segments: [], delta: 1e-5 }), 0);
  assert.equal(computeEpsilon({ ...REF1, steps: 0 }), 0);
});

Deno.test("extreme regimes finish quickly with finite, sane ε", () => {
  const cases = [
    { sampleRate: 0.5, noiseMultiplier: 0.3, steps: 1000, delta: 1e-5 }, // huge ε
    { sampleRate: 0.01, noiseMultiplier: 1, steps: 100000, delta: 1e-10 }, // 10⁵ steps, δ=1e-10
    { sampleRate: 0.01, noiseMultiplier: 81, steps: 1000, delta: 1e-5 }, // ε ≈ 0.01
  ];
  for (const p of cases) {
    const t0 = performance.now();
    const tight = pldEpsilon(p);
    const ms = performance.now() - t0;
    const loose = rdpEpsilon(p);
    const what = `${JSON.stringify(p)}: pld ${tight}, rdp ${loose}, ${ms.toFixed(0)} ms`;
    assert.ok(Number.isFinite(tight) && tight > 0 && tight <= loose, what);
    assert.ok(tight >= 0.7 * loose, `implausibly far below RDP: ${what}`);
    assert.ok(ms < 10000, `too slow: ${what}`);
  }
  assert.ok(pldEpsilon(cases[2]) <= 0.01, "σ = 81 must certify ε ≤ 0.01 (q=0.01, 1000 steps)");
});

// ---- calibration ------------------------------------------------------------------------------

Deno.test("calibrateNoise: ε(σ) ≤ target and ε(σ·(1−2e-3)) > target", () => {
  const cases = [
    { targetEpsilon: 1, accountant: "pld" as const },
    { targetEpsilon: 0.01, accountant: "pld" as const },
    { targetEpsilon: 1, accountant: "rdp" as const },
  ];
  for (const c of cases) {
    const p = { ...c, sampleRate: 0.01, steps: 1000, delta: 1e-5 };
    const r = calibrateNoise(p);
    const at = (s: number) =>
      computeEpsilon(
        { sampleRate: 0.01, noiseMultiplier: s, steps: 1000, delta: 1e-5 },
        c.accountant,
      );
    const what = `${JSON.stringify(c)} → σ=${r.noiseMultiplier}`;
    assert.ok(r.epsilon <= c.targetEpsilon && at(r.noiseMultiplier) <= c.targetEpsilon, what);
    assert.ok(at(r.noiseMultiplier * (1 - 2e-3)) > c.targetEpsilon, `not tight: ${what}`);
  }
  // ε = 0.01 needs σ ≈ 77–81 with a tight accountant (an accountant padding ε by 0.01 asks ≈ 1280).
  const s = calibrateNoise({ targetEpsilon: 0.01, sampleRate: 0.01, steps: 1000, delta: 1e-5 });
  assert.ok(s.noiseMultiplier > 60 && s.noiseMultiplier < 85, `σ = ${s.noiseMultiplier}`);
});

Deno.test("calibrateNoise: clear error when the target is unreachable", () => {
  assert.throws(
    () =>
      calibrateNoise({
        targetEpsilon: 1e-7,
        sampleRate: 1,
        steps: 100000,
        delta: 1e-12,
        accountant: "rdp",
      }),
    (e) =>
      e instanceof AccountantError && e.field === "targetEpsilon" && /unreachable/.test(e.message),
  );
  assert.throws(
    () => calibrateNoise({ targetEpsilon: 0, sampleRate: 0.1, steps: 10, delta: 1e-5 }),
    AccountantError,
  );
});

Deno.test("maxStepsForBudget returns the largest steps within the budget", () => {
  for (const accountant of ["pld", "rdp"] as const) {
    const p = { sampleRate: 0.01, noiseMultiplier: 1, delta: 1e-5, accountant };
    const r = maxStepsForBudget({ ...p, targetEpsilon: 2 });
    const at = (steps: number) => computeEpsilon({ ...p, steps }, accountant);
    assert.ok(r.steps > 100, `${accountant}: ${r.steps}`);
    assert.ok(at(r.steps) <= 2 && at(r.steps + 1) > 2, `${accountant}: ${r.steps} not maximal`);
  }
  const none = maxStepsForBudget({
    targetEpsilon: 0.01,
    sampleRate: 1,
    noiseMultiplier: 1,
    delta: 1e-5,
  });
  assert.equal(none.steps, 0);
});

Deno.test("invalid arguments raise AccountantError naming the field", () => {
  const bad: [Record<string, number>, string][] = [
    [{ sampleRate: 0 }, "sampleRate"],
    [{ sampleRate: 1.5 }, "sampleRate"],
    [{ noiseMultiplier: 0 }, "noiseMultiplier"],
    [{ noiseMultiplier: -1 }, "noiseMultiplier"],
    [{ steps: -1 }, "steps"],
    [{ steps: 1.5 }, "steps"],
    [{ delta: 0 }, "delta"],
    [{ delta: 1 }, "delta"],
  ];
  for (const [patch, field] of bad) {
    for (const acc of ["pld", "rdp"] as const) {
      assert.throws(
        () => computeEpsilon({ ...REF1, ...patch }, acc),
        (e) => e instanceof AccountantError && e.field === field,
        `${JSON.stringify(patch)} (${acc})`,
      );
    }
  }
  assert.throws(
    () => computeEpsilon({ segments: [REF1, { ...REF1, sampleRate: 2 }], delta: 1e-5 }),
    (e) => e instanceof AccountantError && e.field === "segments[1].sampleRate",
  );
});

// ---- CLI --------------------------------------------------------------------------------------

const BASE = ["--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5"];

Deno.test("account CLI: ε, --json, calibration, prv alias note", () => {
  const r = runAccountCli([...BASE, "--noise-multiplier", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(o).sort(), [
    "accountant",
    "delta",
    "epsilon",
    "noise_multiplier",
    "sample_rate",
    "steps",
  ]);
  assert.equal(o.accountant, "pld");
  assert.equal(o.epsilon, pldEpsilon(REF1));
  const rdp = JSON.parse(
    runAccountCli([...BASE, "--noise-multiplier", "1", "--json", "--accountant", "rdp"]).stdout,
  );
  assert.equal(rdp.epsilon, rdpEpsilon(REF1));
  const prv = runAccountCli([...BASE, "--noise-multiplier", "1", "--accountant", "prv"]);
  assert.equal(prv.code, 0);
  assert.match(prv.stderr, /alias of the PLD/);
  assert.match(prv.stdout, /ε = 1\.8/);
  const cal = runAccountCli([...BASE, "--target-epsilon", "1", "--json"]);
  assert.equal(cal.code, 0, cal.stderr);
  const c = JSON.parse(cal.stdout);
  assert.ok(c.epsilon <= 1 && c.noise_multiplier > 1 && c.noise_multiplier < 2, cal.stdout);
});

Deno.test("account CLI: bad arguments exit 2 with a message", () => {
  const cases: [string[], RegExp][] = [
    [[...BASE, "--noise-multiplier", "0"], /noise-multiplier/],
    [
      ["--sample-rate", "0", "--steps", "10", "--delta", "1e-5", "--noise-multiplier", "1"],
      /sample-rate/,
    ],
    [
      ["--sample-rate", "1.2", "--steps", "10", "--delta", "1e-5", "--noise-multiplier", "1"],
      /sample-rate/,
    ],
    [
      ["--sample-rate", "0.1", "--steps", "-1", "--delta", "1e-5", "--noise-multiplier", "1"],
      /steps/,
    ],
    [["--sample-rate", "0.1", "--steps", "10", "--delta", "1", "--noise-multiplier", "1"], /delta/],
    [
      ["--sample-rate", "0.1", "--steps", "10", "--delta", "abc", "--noise-multiplier", "1"],
      /delta/,
    ],
    [[...BASE, "--noise-multiplier", "1", "--bogus"], /bogus/],
    [[...BASE], /noise-multiplier/],
    [["--steps", "10", "--delta", "1e-5", "--noise-multiplier", "1"], /missing.*sample-rate/],
    [[...BASE, "--noise-multiplier", "1", "--target-epsilon", "1"], /exactly one/],
    [[...BASE, "--noise-multiplier", "1", "--accountant", "gdp"], /accountant/],
  ];
  for (const [args, re] of cases) {
    const r = runAccountCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: code ${r.code}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, re, args.join(" "));
  }
});

const canRun = (await Deno.permissions.query({ name: "run" })).state === "granted";

Deno.test({
  name: "account CLI as a subprocess: exit codes and one JSON object on stdout",
  // `deno task test` does not grant --allow-run; the in-process tests above cover the logic.
  ignore: !canRun,
  fn: async () => {
    const script = new URL("../tasks/account.ts", import.meta.url).pathname;
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", script, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run([...BASE, "--noise-multiplier", "1", "--json"]);
    assert.equal(ok.code, 0);
    const o = JSON.parse(new TextDecoder().decode(ok.stdout));
    near(o.epsilon, 1.83, 0.05, "cli ε");
    const bad = await run([...BASE, "--noise-multiplier", "-1"]);
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /noise-multiplier/);
  },
});

Deno.test("rdp: less noise never certifies a smaller ε, down to σ = 1e-6", () => {
  // At tiny σ the binomial terms of A_α reach ~1e17, where a cut-off test `t > max − 60` rounds
  // to `t > max` and dropped every term: log A_α = −∞ at the large orders, reported as ε = 0 for
  // σ ≤ 1e-4 — a useless model certified as perfectly private. ε(σ) must be non-increasing.
  const q = 0.01035, steps = 290, delta = 1.45e-4;
  const sigmas = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 2, 8];
  const eps = sigmas.map((s) => rdpEpsilon({ sampleRate: q, noiseMultiplier: s, steps, delta }));
  for (let k = 1; k < sigmas.length; k++) {
    assert.ok(
      eps[k] <= eps[k - 1],
      `ε(σ = ${sigmas[k]}) = ${eps[k]} > ε(σ = ${sigmas[k - 1]}) = ${eps[k - 1]}`,
    );
  }
  for (let k = 0; k < 4; k++) assert.ok(eps[k] > 1e3, `σ = ${sigmas[k]}: ε = ${eps[k]}`);
  // Every order on its own: RDP ≥ 0 and finite or +∞, never −∞ or NaN.
  for (const a of DEFAULT_ORDERS) {
    const r = rdpStep(q, 1e-4, a);
    assert.ok(r >= 0, `rdpStep(σ = 1e-4, α = ${a}) = ${r}`);
  }
});
