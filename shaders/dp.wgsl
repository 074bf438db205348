// DP-SGD step kernels: per-unit norm bounds, clip factors, clipped (weighted) sums, and Gaussian
// noise from a ChaCha20 keystream with scaling by the expected batch size.
//
// Clipping unit and "pieces". A unit (record or patient) may have several records, spread over
// micro-batches. What must be bounded is the norm of the unit's SUMMED gradient g_u = sum_r g_r.
// Within one micro-batch the records of a unit form a "piece"; the unit's norm bound is
//   N_u = sum over its pieces of ||piece||   (>= ||g_u|| by the triangle inequality)
// and c_u = min(1, C / N_u), so ||c_u g_u|| <= C always. N_u is exact (= ||g_u||) when the unit
// lies in one micro-batch and its piece norm is computed from the summed rows (piece_sum), and
// for record units. Adding per-record SQUARED norms per unit would under-clip by up to sqrt(n_u).
// Flat clipping over several tensors: a piece's squared norms are summed over the tensors of a
// group first (piece_sq), then the square root is added to N_u (unit_accumulate).
//
// Layouts (all flat arrays):
//   g        [B, P] f32  per-sample gradients of ONE trainable tensor (row r = record r), or a
//                        vector [B] of per-record squared norms (add_sq)
//   unit_idx [B]    u32  step-local unit index of each record (records of a unit are contiguous)
//   piece_sq [K*B]  f32  per-piece squared norms, one row of B per clipping group k
//   unit_nrm [K*U]  f32  per-unit norm bounds N_u, accumulated over micro-batches (row per group)
//   bounds   [K]    f32  clipping bound C_k of each group (flat clipping: K = 1, C_0 = C)
//   factors  [K*U]  f32  c_u = min(1, C_k / (N_u + tiny)); 0 for a non-finite N_u
//   acc      [P]    f32  clipped-sum accumulator, turned in place into the noised mean gradient;
//                        piece_sum's output [Q, P] (Q pieces) also binds here
//   rec_c    [B]    f32  per-record factor (book-keeping route: handed to the model)
// Uniform block p: n = sizes, m = offsets / nonce, key0..1 = ChaCha20 key, f = float scalars;
// what each field means is given at each entry point.
// Workgroups: 256 invocations (64 for the ChaCha20 entries); the linear workgroup index is
// wid.x + wid.y * nwg.x (runtime.grid). row_sqnorm uses one workgroup per row; the rest one
// invocation per element. Assumptions: B * P < 2^32.
//
// Noise security argument. The noise must be unpredictable to anyone who sees the released model,
// or it can be subtracted. Each step uses a FRESH 256-bit key drawn from the host CSPRNG
// (crypto.getRandomValues) and uploaded as uniforms (no readback, never stored or logged). The
// normals are a deterministic function of ChaCha20(key, counter = block index, nonce = (tensor
// index, stream tag, 0)); ChaCha20 is a stream cipher whose keystream is computationally
// indistinguishable from uniform without the key (RFC 8439), so the per-coordinate uniforms are
// as good as CSPRNG output, independent across coordinates (distinct counters), tensors (distinct
// nonces) and steps (fresh keys; a 256-bit key repeats with probability ~ steps^2 * 2^-257).
// Box-Muller turns 2 words into u1 in (0, 1] with resolution 2^-64 near 0 (so |z| <= 9.42, not
// truncated at the 5.8 sigma that a 24-bit u1 gives: the missing tail has mass < 1e-20 per
// coordinate, negligible beside delta), and 1 word (24 bits) into the angle.
// Known limit: the sum acc + sigma*C*z is rounded to f32; floating-point "porous" outputs
// (Mironov 2012) are not mitigated here.

struct P {
  n: vec4u,
  m: vec4u,
  key0: vec4u,
  key1: vec4u,
  f: vec4f,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> unit_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> piece_sq: array<f32>;
@group(0) @binding(4) var<storage, read_write> unit_nrm: array<f32>;
@group(0) @binding(5) var<storage, read> bounds: array<f32>;
@group(0) @binding(6) var<storage, read_write> factors: array<f32>;
@group(0) @binding(7) var<storage, read_write> acc: array<f32>;
@group(0) @binding(8) var<storage, read_write> rec_c: array<f32>;
@group(0) @binding(9) var<storage, read_write> raw: array<u32>;

const WG: u32 = 256u;
// Added to the norm so that a zero gradient gives C / tiny = large, not NaN; min() then gives 1.
const TINY: f32 = 1e-30;

fn lin(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Inf or NaN, by bits: a compiler may assume finite math and drop `x != x`.
fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

var<workgroup> partial: array<f32, 256>;

// piece_sq[m.x + r] += sum_j g[r*P + j]^2 for rows r < n.x, n.y = P.
// Kahan-compensated per-invocation sums (~P/256 terms each), then a tree over the workgroup:
// relative error ~1e-7 instead of the (P/256)*6e-8 worst case of a naive loop.
@compute @workgroup_size(256)
fn row_sqnorm(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg);
  let nrows = p.n.x;
  let ncols = p.n.y;
  var s = 0.0;
  var comp = 0.0;
  if (r < nrows) {
    let base = r * ncols;
    for (var j = li; j < ncols; j += WG) {
      let v = g[base + j];
      let y = v * v - comp;
      let t = s + y;
      comp = (t - s) - y;
      s = t;
    }
  }
  partial[li] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w / 2u) {
    if (li < w) { partial[li] += partial[li + w]; }
    workgroupBarrier();
  }
  if (li == 0u && r < nrows) { piece_sq[p.m.x + r] += partial[0]; }
}

// piece_sq[m.x + r] += g[r] for r < n.x: per-record squared norms computed by the model.
@compute @workgroup_size(256)
fn add_sq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg) * WG + li;
  if (r < p.n.x) { piece_sq[p.m.x + r] += g[r]; }
}

// acc[i*P + j] = sum over records r with unit_idx[r] == n.z + i of g[r*P + j], for i < n.w
// (the units [n.z, n.z + n.w) of this micro-batch), j < n.y = P, records r < n.x.
// Assumes unit_idx is non-decreasing with no gaps (DpStep checks it): each piece is a run of
// consecutive records, summed in registers and written once. One invocation per 4 columns owns
// those columns of every piece: no races, no atomics.
@compute @workgroup_size(256)
fn piece_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
  let j = (lin(wid, nwg) * WG + li) * 4u;
  let ncols = p.n.y;
  if (j >= ncols || p.n.x == 0u) { return; }
  let w = min(4u, ncols - j);
  var s = vec4f(0.0);
  for (var r = 0u; r < p.n.x; r++) {
    let base = r * ncols + j;
    var v = vec4f(0.0);
    v.x = g[base];
    if (w > 1u) { v.y = g[base + 1u]; }
    if (w > 2u) { v.z = g[base + 2u]; }
    if (w > 3u) { v.w = g[base + 3u]; }
    s += v;
    let u = unit_idx[r];
    if (r + 1u == p.n.x || unit_idx[r + 1u] != u) {
      let o = (u - p.n.z) * ncols + j;
      acc[o] = s.x;
      if (w > 1u) { acc[o + 1u] = s.y; }
      if (w > 2u) { acc[o + 2u] = s.z; }
      if (w > 3u) { acc[o + 3u] = s.w; }
      s = vec4f(0.0);
    }
  }
}

// unit_nrm[m.x + u] += sum of sqrt(piece_sq[m.y + piece]) over the pieces of unit u, for units
// u in [n.y, n.y + n.z). n.w = 0: pieces are records r < n.x, unit = unit_idx[r];
// n.w = 1: piece i is unit n.y + i (one piece per unit, from piece_sum).
// One invocation per unit, so no two invocations write one unit (no atomics, deterministic).
@compute @workgroup_size(256)
fn unit_accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg) * WG + li;
  if (i >= p.n.z) { return; }
  let u = p.n.y + i;
  var s = 0.0;
  if (p.n.w == 1u) {
    s = sqrt(piece_sq[p.m.y + i]);
  } else {
    for (var r = 0u; r < p.n.x; r++) {
      if (unit_idx[r] == u) { s += sqrt(piece_sq[p.m.y + r]); }
    }
  }
  unit_nrm[p.m.x + u] += s;
}

// factors[i] = min(1, C_k / (unit_nrm[i] + TINY)) for i < n.x * n.y, k = i / n.x.
// n.x = U, n.y = K. A non-finite norm gives factor 0: that unit contributes nothing (its gradient
// is dropped, not propagated as NaN/Inf into the update, which would reveal it).
@compute @workgroup_size(256)
fn clip_factors(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg) * WG + li;
  if (i >= p.n.x * p.n.y) { return; }
  let s = unit_nrm[i];
  let c = bounds[i / p.n.x];
  if (non_finite(s)) {
    factors[i] = 0.0;
  } else {
    factors[i] = min(1.0, c / (s + TINY));
  }
}

// rec_c[r] = factors[m.x + unit_idx[r]] for r < n.x (book-keeping route).
@compute @workgroup_size(256)
fn gather_factors(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg) * WG + li;
  if (r < p.n.x) { rec_c[r] = factors[p.m.x + unit_idx[r]]; }
}

// acc[j] += sum_r c_{unit(r)} * g[r*P + j].   n.x = B, n.y = P, m.x = factor row offset (k * U).
// Records with factor 0 (non-finite norm) are skipped, so 0 * Inf never makes a NaN.
// Each invocation owns 4 consecutive columns: the factor lookup (two dependent loads) is paid
// once per record for 4 columns (llvmpipe is bound by per-lane loads, see WEBGPU_ON_CPU.md).
@compute @workgroup_size(256)
fn weighted_sum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let j = (lin(wid, nwg) * WG + li) * 4u;
  let ncols = p.n.y;
  if (j >= ncols) { return; }
  let w = min(4u, ncols - j);
  var s = vec4f(0.0);
  for (var r = 0u; r < p.n.x; r++) {
    let c = factors[p.m.x + unit_idx[r]];
    if (c > 0.0) {
      let base = r * ncols + j;
      var v = vec4f(0.0);
      v.x = g[base];
      if (w > 1u) { v.y = g[base + 1u]; }
      if (w > 2u) { v.z = g[base + 2u]; }
      if (w > 3u) { v.w = g[base + 3u]; }
      s += c * v;
    }
  }
  acc[j] += s.x;
  if (w > 1u) { acc[j + 1u] += s.y; }
  if (w > 2u) { acc[j + 2u] += s.z; }
  if (w > 3u) { acc[j + 3u] += s.w; }
}

// ---------------------------------------------------------------- ChaCha20 (RFC 8439)

fn rotl(v: vec4u, k: u32) -> vec4u {
  return (v << vec4u(k)) | (v >> vec4u(32u - k));
}

// The 16 output words of block `counter` under (key, nonce), as 4 rows (SIMD formulation: a
// column round on rows, then a diagonal round by rotating rows b, c, d by 1, 2, 3 lanes).
fn chacha20_block(counter: u32, nonce: vec3u) -> array<vec4u, 4> {
  let a0 = vec4u(0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u);
  let b0 = p.key0;
  let c0 = p.key1;
  let d0 = vec4u(counter, nonce.x, nonce.y, nonce.z);
  var a = a0;
  var b = b0;
  var c = c0;
  var d = d0;
  for (var i = 0u; i < 10u; i++) {
    a += b; d ^= a; d = rotl(d, 16u);
    c += d; b ^= c; b = rotl(b, 12u);
    a += b; d ^= a; d = rotl(d, 8u);
    c += d; b ^= c; b = rotl(b, 7u);
    b = b.yzwx; c = c.zwxy; d = d.wxyz;
    a += b; d ^= a; d = rotl(d, 16u);
    c += d; b ^= c; b = rotl(b, 12u);
    a += b; d ^= a; d = rotl(d, 8u);
    c += d; b ^= c; b = rotl(b, 7u);
    b = b.wxyz; c = c.zwxy; d = d.yzwx;
  }
  return array<vec4u, 4>(a + a0, b + b0, c + c0, d + d0);
}

// raw[16*b + w] = word w of block (m.x + b), nonce m.yzw, for b < n.x. Test hook (RFC vectors).
@compute @workgroup_size(64)
fn chacha_raw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let b = lin(wid, nwg) * 64u + li;
  if (b >= p.n.x) { return; }
  let blk = chacha20_block(p.m.x + b, p.m.yzw);
  for (var k = 0u; k < 4u; k++) {
    raw[16u * b + 4u * k + 0u] = blk[k].x;
    raw[16u * b + 4u * k + 1u] = blk[k].y;
    raw[16u * b + 4u * k + 2u] = blk[k].z;
    raw[16u * b + 4u * k + 3u] = blk[k].w;
  }
}

const TWO_M32: f32 = 2.3283064365386963e-10; // 2^-32
const TWO_M24: f32 = 5.9604644775390625e-8; // 2^-24
const PI: f32 = 3.14159265358979;

// Two standard normals from 4 keystream words (the 4th is unused).
// u1 = (w0 + (w1 + 1/2) / 2^32) / 2^32 in (0, 1]: never 0, so log is finite; fine near 0.
// theta = 2*pi*((w2 >> 8) + 1/2) / 2^24 - pi in (-pi, pi), where sin/cos are most accurate.
fn box_muller(w: vec4u) -> vec2f {
  let t = (f32(w.y) + 0.5) * TWO_M32;
  let u1 = (f32(w.x) + t) * TWO_M32;
  let r = sqrt(max(0.0, -2.0 * log(u1)));
  let theta = (f32(w.z >> 8u) + 0.5) * TWO_M24 * (2.0 * PI) - PI;
  return vec2f(r * cos(theta), r * sin(theta));
}

// acc[j] = (acc[j] + f.x * z_j) * f.y for j < n.x, z_j ~ N(0, 1) from ChaCha20(key, block j / 8,
// nonce m.yzw). f.x = sigma * C (std of the noise on the clipped SUM), f.y = 1 / (q * N_expected).
// One invocation per block of 8 coordinates.
@compute @workgroup_size(64)
fn add_noise_and_scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) li: u32) {
  let b = lin(wid, nwg) * 64u + li;
  let n = p.n.x;
  if (b * 8u >= n) { return; }
  let blk = chacha20_block(b, p.m.yzw);
  for (var k = 0u; k < 4u; k++) {
    let z = box_muller(blk[k]);
    let j = 8u * b + 2u * k;
    if (j < n) { acc[j] = (acc[j] + p.f.x * z.x) * p.f.y; }
    if (j + 1u < n) { acc[j + 1u] = (acc[j + 1u] + p.f.x * z.y) * p.f.y; }
  }
}
