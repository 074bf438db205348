// Encoder-private multi-head self-attention with a key-padding mask (naive, one invocation per
// (sample, head, row)). q, k, v, ctx: [B·T, H] row-major, head h owns columns h·dh .. h·dh+dh-1.
// lens[b] = number of real tokens of sample b (keys j >= lens[b] get probability 0).
// probs, ds: [B, nh, T, T]. Query rows past lens[b] are computed too (finite values, unused).
// Workgroup 64, linear index over B·nh·T (forward, backward_q) or B·nh·T keys (backward_kv).
struct P { nb: u32, t: u32, nh: u32, dh: u32, h: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> lens: array<u32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;
@group(0) @binding(6) var<storage, read_write> ctx: array<f32>;
// backward bindings
@group(0) @binding(7) var<storage, read> pr: array<f32>;
@group(0) @binding(8) var<storage, read> dctx: array<f32>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;
@group(0) @binding(10) var<storage, read_write> dq: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<f32>;
@group(0) @binding(12) var<storage, read_write> dv: array<f32>;

fn lin(wid: vec3u, nwg: vec3u, li: u32) -> u32 { return (wid.x + wid.y * nwg.x) * 64u + li; }

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let id = lin(wid, nwg, li);
  if (id >= p.nb * p.nh * p.t) { return; }
  let i = id % p.t; let hd = (id / p.t) % p.nh; let bb = id / (p.t * p.nh);
  let len = lens[bb];
  let qb = (bb * p.t + i) * p.h + hd * p.dh;
  let pb = id * p.t;
  var mx = -3.4e38;
  for (var j = 0u; j < len; j++) {
    let kb = (bb * p.t + j) * p.h + hd * p.dh;
    var s = 0.0;
    for (var u = 0u; u < p.dh; u++) { s += q[qb + u] * k[kb + u]; }
    s *= p.scale;
    probs[pb + j] = s;
    mx = max(mx, s);
  }
  var z = 0.0;
  for (var j = 0u; j < len; j++) {
    let e = exp(probs[pb + j] - mx);
    probs[pb + j] = e;
    z += e;
  }
  for (var j = 0u; j < p.t; j++) {
    if (j < len) { probs[pb + j] = probs[pb + j] / z; } else { probs[pb + j] = 0.0; }
  }
  for (var u = 0u; u < p.dh; u++) {
    var acc = 0.0;
    for (var j = 0u; j < len; j++) { acc += probs[pb + j] * v[(bb * p.t + j) * p.h + hd * p.dh + u]; }
    ctx[qb + u] = acc;
  }
}

// dS = P ∘ (dP − rowsum(P ∘ dP)), dP = dctx·vᵀ;  dq = scale · dS·k
@compute @workgroup_size(64)
fn backward_q(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
  let id = lin(wid, nwg, li);
  if (id >= p.nb * p.nh * p.t) { return; }
  let i = id % p.t; let hd = (id / p.t) % p.nh; let bb = id / (p.t * p.nh);
  let len = lens[bb];
  let qb = (bb * p.t + i) * p.h + hd * p.dh;
  let pb = id * p.t;
  var rd = 0.0;
  for (var j = 0u; j < p.t; j++) {
    var d = 0.0;
    if (j < len) {
      let vb = (bb * p.t + j) * p.h + hd * p.dh;
      for (var u = 0u; u < p.dh; u++) { d += dctx[qb + u] * v[vb + u]; }
    }
    ds[pb + j] = d;
    rd += pr[pb + j] * d;
  }
  for (var j = 0u; j < p.t; j++) { ds[pb + j] = pr[pb + j] * (ds[pb + j] - rd); }
  for (var u = 0u; u < p.dh; u++) {
    var acc = 0.0;
    for (var j = 0u; j < len; j++) { acc += ds[pb + j] * k[(bb * p.t + j) * p.h + hd * p.dh + u]; }
    dq[qb + u] = p.scale * acc;
  }
}

// dv_j = Σ_i P_ij dctx_i;  dk_j = scale · Σ_i dS_ij q_i   (reads ds written by backward_q)
@compute @workgroup_size(64)
fn backward_kv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
  let id = lin(wid, nwg, li);
  if (id >= p.nb * p.nh * p.t) { return; }
  let j = id % p.t; let hd = (id / p.t) % p.nh; let bb = id / (p.t * p.nh);
  let kb = (bb * p.t + j) * p.h + hd * p.dh;
  let base = (bb * p.nh + hd) * p.t * p.t;
  for (var u = 0u; u < p.dh; u++) {
    var av = 0.0;
    var ak = 0.0;
    for (var i = 0u; i < p.t; i++) {
      let rb = (bb * p.t + i) * p.h + hd * p.dh + u;
      av += pr[base + i * p.t + j] * dctx[rb];
      ak += ds[base + i * p.t + j] * q[rb];
    }
    dv[kb + u] = av;
    dk[kb + u] = p.scale * ak;
  }
}
