// Activations: GELU (erf form, as BERT's "gelu"), GELU tanh approximation ("gelu_new"), ReLU.
// Forward y = act(x); backward dx = dy * act'(x) (recomputed from the saved input x).
//
// Layout: flat f32 arrays of p.n elements. Workgroup: 256 invocations, one element each;
// linear workgroup index wid.x + wid.y * nwg.x. The activation is the override constant ACT
// (0 = gelu erf, 1 = gelu tanh, 2 = relu), so each variant is its own cached pipeline.
//
// WGSL has no erf: gelu uses erfc from Numerical Recipes' Chebyshev fit (erfcc), whose
// *relative* error is < 1.2e-7 for all arguments, so 0.5·x·erfc(−x/√2) stays accurate in
// the negative tail where 1 + erf(x/√2) would cancel.

override ACT: u32 = 0u;

struct P { n: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const SQRT_2_OVER_PI: f32 = 0.79788456080286536;
const GELU_C: f32 = 0.044715;

// erfc(z) for z >= 0 (Numerical Recipes erfcc, fractional error < 1.2e-7).
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp(-z * z + poly);
}

// Φ(x) = 0.5 · erfc(−x/√2), the standard normal CDF.
fn phi_cdf(x: f32) -> f32 {
  let z = x * INV_SQRT2;
  if (z >= 0.0) { return 1.0 - 0.5 * erfc_pos(z); }
  return 0.5 * erfc_pos(-z);
}

// σ(2u) for the tanh form: 0.5(1 + tanh(u)) = 1 / (1 + e^(−2u)); no cancellation for u < 0,
// and e^(−2u) overflowing to +inf gives exactly 0.
fn sig2(u: f32) -> f32 {
  return 1.0 / (1.0 + exp(-2.0 * u));
}

fn act(v: f32) -> f32 {
  if (ACT == 0u) { return v * phi_cdf(v); }
  if (ACT == 1u) {
    return v * sig2(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
  }
  return max(v, 0.0);
}

fn dact(v: f32) -> f32 {
  if (ACT == 0u) { return phi_cdf(v) + v * INV_SQRT_2PI * exp(-0.5 * v * v); }
  if (ACT == 1u) {
    // Beyond |v| = 20 the derivative is exactly 0 or 1 in f32; the clamp avoids 0 · inf there.
    let c = clamp(v, -20.0, 20.0);
    let s = sig2(SQRT_2_OVER_PI * (c + GELU_C * c * c * c));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * c * c);
    return s + c * 2.0 * s * (1.0 - s) * du;
  }
  return select(0.0, 1.0, v > 0.0);
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < p.n) { y[i] = act(x[i]); }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < p.n) { y[i] = dy[i] * dact(x[i]); }
}
