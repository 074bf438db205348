// Elementwise ops: residual add, scale, axpy, tanh (pooler) forward/backward, dropout
// forward/backward, fill.
//
// Layout: flat f32 arrays of p.n elements; ops that take two inputs require equal lengths.
// Workgroup: 256 invocations, one element each; the linear workgroup index is
// wid.x + wid.y * nwg.x (runtime.grid splits > 65535 workgroups over y).
// Dropout: the keep mask is never stored. It is recomputed from a counter-based hash of
// (seed, element index), so forward and backward agree as long as they get the same seed.
// The hash is a statistical RNG (not cryptographic): dropout is not a privacy mechanism.

struct P {
  n: u32,
  seed: u32,
  a: f32, // alpha / value / drop probability, depending on the entry point
  b: f32, // 1 / (1 - p) for dropout
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;

fn idx(wid: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + li;
}

// y = x + x2
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = x[i] + x2[i]; }
}

// y = a * x
@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = p.a * x[i]; }
}

// y += a * x (in place on y)
@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = fma(p.a, x[i], y[i]); }
}

// y = value
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = p.a; }
}

// y = tanh(x). The clamp keeps implementations that evaluate tanh as a ratio of exponentials
// from overflowing to NaN; tanh(±10) already rounds to ±1 in f32, so it changes no value.
@compute @workgroup_size(256)
fn tanh_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = tanh(clamp(x[i], -10.0, 10.0)); }
}

// dx = dy * (1 - t^2) where x = dy, x2 = t (the saved forward output). Written (1 - t)(1 + t):
// 1 - t is exact for t in [0.5, 1] (Sterbenz), so saturated units keep their small gradient's
// relative accuracy instead of losing it to the cancellation in 1 - t*t.
@compute @workgroup_size(256)
fn tanh_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) {
    let t = x2[i];
    y[i] = x[i] * ((1.0 - t) * (1.0 + t));
  }
}

// lowbias32 (Chris Wellons): a good 32-bit integer mixer.
fn mix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

// Keep element i with probability 1 - p.a: 24 uniform bits compared against the threshold.
fn keep(i: u32) -> bool {
  let h = mix32(i ^ mix32(p.seed));
  let u = f32(h >> 8u) * (1.0 / 16777216.0);
  return u >= p.a;
}

// y = keep ? x / (1 - p) : 0. Used for both forward (x = input) and backward (x = dy).
@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = idx(wid, nwg, li);
  if (i < p.n) { y[i] = select(0.0, x[i] * p.b, keep(i)); }
}
