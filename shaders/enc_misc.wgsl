// Encoder-private small ops (naive; workgroup 64 over a linear index unless stated):
// - embed_forward: x[r,:] = word[ids[r]] + pos[pids[r]] + type[tids[r]]          (n = rows·E)
// - scatter_ps: per-sample embedding-table grads, out[b, ids[r], e] += g[r, e] for rows r of
//   sample b; one invocation per (b, e) walks its rows in order, so no two invocations touch
//   the same output (no float atomics in WGSL). out must be zeroed first.
// - act_forward / act_backward: kind 0 GELU(erf), 1 GELU(tanh), 2 ReLU, 3 tanh; backward takes
//   the pre-activation x: dx = dy·act'(x).
// - add: o = a + b·alpha (alpha scales b); add_into: o += a·alpha.
// - seg_colsum: o[s, j] (+)= Σ_{t<len} in[(s·len + t)·n + j]   (flags bit0 accumulate)
// - rows_gather: o[b, :] = in[b·stride_rows, :];  rows_scatter: o[b·stride_rows, :] = in[b, :]
// - loss: one invocation per sample; kind 0 masked BCE-with-logits (mean over counted labels),
//   kind 1 softmax CE against a one-hot row; writes loss[b] and dlogits[b, :].
// - row_sumsq: o[b] (+)= Σ_j x[b·n + j]²   (one invocation per row; p.a = cols, p.c = flags)
// - dropout: keep with prob 1-p from a counter hash of (seed, index); o = keep ? x/(1-p) : 0.
// - rows_gather_idx: o[m, :] = x[ids[m], :]; rows_scatter_idx: o[ids[m], :] = x[m, :] (the row
//   indices must be distinct: one invocation per output element, no two write the same place).
// - mlm_ce: one invocation per predicted row m: softmax CE of logits x[m, :V] against class
//   ids[m]; loss o[m] = logsumexp − x[m, y], o2[m, :] = softmax − onehot (d loss[m] / d logits).
struct P { n: u32, a: u32, b: u32, c: u32, f: f32, g: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y2: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read> pids: array<u32>;
@group(0) @binding(6) var<storage, read> tids: array<u32>;
@group(0) @binding(7) var<storage, read> t1: array<f32>;
@group(0) @binding(8) var<storage, read> t2: array<f32>;
@group(0) @binding(9) var<storage, read> t3: array<f32>;
@group(0) @binding(10) var<storage, read_write> o2: array<f32>;

fn lin(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.x + wid.y * nwg.x) * 64u + li; }

// p.n = rows·E, p.a = E
@compute @workgroup_size(64)
fn embed_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let r = i / p.a; let e = i % p.a;
  o[i] = t1[ids[r] * p.a + e] + t2[pids[r] * p.a + e] + t3[tids[r] * p.a + e];
}

// p.n = B·E, p.a = E, p.b = T (rows per sample), p.c = V (table rows); x = g [B·T, E]
@compute @workgroup_size(64)
fn scatter_ps(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let e = i % p.a;
  for (var t = 0u; t < p.b; t++) {
    let r = bb * p.b + t;
    let dst = (bb * p.c + ids[r]) * p.a + e;
    o[dst] = o[dst] + x[r * p.a + e];
  }
}

// erf to ~1.5e-7 absolute (Abramowitz–Stegun 7.1.26): below f32 resolution of GELU's output.
fn erf_approx(z: f32) -> f32 {
  let s = sign(z); let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
          + 0.254829592) * t * exp(-a * a);
  return s * y;
}

fn act(kind: u32, v: f32) -> f32 {
  switch kind {
    case 0u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
    case 1u: { return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
    case 2u: { return max(v, 0.0); }
    default: { return tanh(v); }
  }
}

fn act_grad(kind: u32, v: f32) -> f32 {
  switch kind {
    case 0u: {
      let cdf = 0.5 * (1.0 + erf_approx(v * 0.70710678118654752));
      return cdf + v * 0.3989422804014327 * exp(-0.5 * v * v);
    }
    case 1u: {
      let c = 0.7978845608028654;
      let u = c * (v + 0.044715 * v * v * v);
      let th = tanh(u);
      return 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * c * (1.0 + 3.0 * 0.044715 * v * v);
    }
    case 2u: { return select(0.0, 1.0, v > 0.0); }
    default: { let th = tanh(v); return 1.0 - th * th; }
  }
}

// p.n = count, p.a = kind
@compute @workgroup_size(64)
fn act_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  o[i] = act(p.a, x[i]);
}

// x = pre-activation, y2 = upstream grad
@compute @workgroup_size(64)
fn act_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  o[i] = y2[i] * act_grad(p.a, x[i]);
}

// o = x + alpha·y2   (p.f = alpha)
@compute @workgroup_size(64)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  o[i] = x[i] + p.f * y2[i];
}

// o += alpha·x
@compute @workgroup_size(64)
fn add_into(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  o[i] = o[i] + p.f * x[i];
}

// p.n = segments·cols, p.a = cols, p.b = rows per segment, p.c = flags (bit0 accumulate)
@compute @workgroup_size(64)
fn seg_colsum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let s = i / p.a; let j = i % p.a;
  var acc = 0.0;
  for (var t = 0u; t < p.b; t++) { acc += x[(s * p.b + t) * p.a + j]; }
  if ((p.c & 1u) != 0u) { acc += o[i]; }
  o[i] = acc;
}

// p.n = B·cols, p.a = cols, p.b = row stride (T)
@compute @workgroup_size(64)
fn rows_gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let j = i % p.a;
  o[i] = x[(bb * p.b) * p.a + j];
}

@compute @workgroup_size(64)
fn rows_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let bb = i / p.a; let j = i % p.a;
  o[(bb * p.b) * p.a + j] = x[i];
}

// p.n = B, p.a = labels L, p.b = kind; x = logits [B, L], t1 = targets, t2 = mask; o = loss [B],
// o2 = dlogits [B, L] (gradient of loss[b] w.r.t. its logits)
@compute @workgroup_size(64)
fn loss(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let bb = lin(wid, nwg, li);
  if (bb >= p.n) { return; }
  let base = bb * p.a;
  if (p.b == 0u) {
    var cnt = 0.0;
    for (var l = 0u; l < p.a; l++) { cnt += t2[base + l]; }
    let den = max(cnt, 1.0);
    var s = 0.0;
    for (var l = 0u; l < p.a; l++) {
      let z = x[base + l]; let m = t2[base + l]; let yv = t1[base + l];
      // softplus(z) − y·z, stable for large |z|
      let sp = max(z, 0.0) + log(1.0 + exp(-abs(z)));
      s += m * (sp - yv * z);
      o2[base + l] = m * (1.0 / (1.0 + exp(-z)) - yv) / den;
    }
    o[bb] = s / den;
  } else {
    var mx = -3.4e38;
    for (var l = 0u; l < p.a; l++) { mx = max(mx, x[base + l]); }
    var z = 0.0;
    for (var l = 0u; l < p.a; l++) { z += exp(x[base + l] - mx); }
    var s = 0.0;
    for (var l = 0u; l < p.a; l++) {
      let pr = exp(x[base + l] - mx) / z;
      s -= t1[base + l] * (x[base + l] - mx - log(z));
      o2[base + l] = pr - t1[base + l];
    }
    o[bb] = s;
  }
}

fn hash(a: u32, b: u32) -> u32 {
  var h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u);
  h ^= h >> 16u; h *= 0x85EBCA6Bu; h ^= h >> 13u; h *= 0xC2B2AE35u; h ^= h >> 16u;
  return h;
}

// p.n = count, p.a = seed, p.b = keep threshold (keep when hash >= p.b), p.f = 1/(1-p)
@compute @workgroup_size(64)
fn dropout(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  o[i] = select(0.0, x[i] * p.f, hash(p.a, i) >= p.b);
}

// p.n = rows, p.a = cols, p.c = flags (bit0 accumulate)
@compute @workgroup_size(64)
fn row_sumsq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
  let r = lin(wid, nwg, li);
  if (r >= p.n) { return; }
  var acc = 0.0;
  for (var j = 0u; j < p.a; j++) { let v = x[r * p.a + j]; acc += v * v; }
  if ((p.c & 1u) != 0u) { acc += o[r]; }
  o[r] = acc;
}

// p.n = M·cols, p.a = cols; ids = row indices [M]
@compute @workgroup_size(64)
fn rows_gather_idx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let m = i / p.a; let j = i % p.a;
  o[i] = x[ids[m] * p.a + j];
}

@compute @workgroup_size(64)
fn rows_scatter_idx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) li: u32) {
  let i = lin(wid, nwg, li);
  if (i >= p.n) { return; }
  let m = i / p.a; let j = i % p.a;
  o[ids[m] * p.a + j] = x[i];
}

// p.n = M rows, p.a = V classes; x = logits [M, V], ids = target class per row
@compute @workgroup_size(64)
fn mlm_ce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) li: u32) {
  let m = lin(wid, nwg, li);
  if (m >= p.n) { return; }
  let base = m * p.a;
  var mx = -3.4e38;
  for (var l = 0u; l < p.a; l++) { mx = max(mx, x[base + l]); }
  var z = 0.0;
  for (var l = 0u; l < p.a; l++) { z += exp(x[base + l] - mx); }
  let y = ids[m];
  for (var l = 0u; l < p.a; l++) {
    o2[base + l] = exp(x[base + l] - mx) / z - select(0.0, 1.0, l == y);
  }
  o[m] = mx + log(z) - x[base + y];
}
