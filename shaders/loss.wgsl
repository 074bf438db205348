// Losses with per-sample outputs (DP needs one loss scalar per sample, not a batch mean).
//
// bce: multi-label BCE-with-logits. logits, targets, mask are f32 [B, L]; mask weights each
// label (0 excludes it from loss *and* gradient, e.g. CheXpert uncertain labels under the
// "ignore" policy; a masked label's logit/target are never used, so garbage there is harmless).
//   loss[b]      = Σ_l m·(max(x, 0) − x·y + log1p(e^(−|x|)))      (numerically stable form)
//   dlogits[b,l] = scale · m · (σ(x) − y)
// ce: softmax cross-entropy. logits f32 [B, K], labels u32 [B]; label 0xFFFFFFFF = ignored
// sample (loss 0, gradient 0); any other label ≥ K gives a NaN loss (loud, not clamped).
//   loss[b]      = logsumexp(x) − x[label]
//   dlogits[b,k] = scale · (softmax(x)_k − [k = label])
// loss[b] is always the *unscaled* per-sample loss; dlogits is the gradient of
// scale · Σ_b loss[b] (scale = 1 for a sum — the DP per-sample case — or 1/B for a batch mean).
//
// Workgroup: 64 invocations per sample (linear workgroup index over a grid) striding over the
// L or K columns, with tree reductions in workgroup memory, so K can be a vocabulary (MLM).

struct P {
  b: u32,
  n: u32, // L or K
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read> labels: array<u32>;

const WG: u32 = 64u;
const IGNORE: u32 = 0xffffffffu;
var<workgroup> red: array<f32, 64>;

fn reduce(li: u32, a: f32, is_max: bool) -> f32 {
  red[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] = select(red[li] + red[li + s], max(red[li], red[li + s]), is_max);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

var<workgroup> red2: array<vec2f, 64>;

fn reduce2(li: u32, a: vec2f) -> vec2f {
  red2[li] = a;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red2[li] += red2[li + s]; }
    workgroupBarrier();
  }
  let r = red2[0];
  workgroupBarrier();
  return r;
}

// log(1 + z) for z ≥ 0, accurate to a few ulps (Goldberg's trick: the rounding of 1 + z is
// compensated by z / ((1 + z) − 1)).
fn log1p_pos(z: f32) -> f32 {
  let u = 1.0 + z;
  if (u == 1.0) { return z; }
  return log(u) * (z / (u - 1.0));
}

@compute @workgroup_size(64)
fn bce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= p.b) { return; }
  var acc = 0.0;
  for (var l = li; l < p.n; l += WG) {
    let i = b * p.n + l;
    let m = mask[i];
    var d = 0.0;
    if (m != 0.0) {
      let x = logits[i];
      let y = targets[i];
      let z = exp(-abs(x));
      acc += m * (max(x, 0.0) - x * y + log1p_pos(z));
      // σ(x) − y without cancellation for y ∈ {0, 1}: for x ≥ 0 use σ(x) = 1 − σ(−x), so a
      // confident correct label (σ ≈ y) keeps its small gradient's relative accuracy.
      let sneg = z / (1.0 + z); // σ(−|x|)
      d = p.scale * m * select(sneg - y, (1.0 - y) - sneg, x >= 0.0);
    }
    dlogits[i] = d;
  }
  let tot = reduce(li, acc, false);
  if (li == 0u) { loss[b] = tot; }
}

@compute @workgroup_size(64)
fn ce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
      @builtin(local_invocation_index) li: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= p.b) { return; }
  let label = labels[b];
  let base = b * p.n;
  var lm = -3.4028234663852886e38;
  for (var k = li; k < p.n; k += WG) { lm = max(lm, logits[base + k]); }
  let m = reduce(li, lm, true);
  // Sum of all exps and of the exps of the other classes (two sums, one reduction), so both
  // the label's gradient −Σ_other/Σ and a near-zero loss log1p(Σ_other) avoid cancellation.
  var s = vec2f(0.0);
  for (var k = li; k < p.n; k += WG) {
    let e = exp(logits[base + k] - m);
    s += vec2f(e, select(e, 0.0, k == label));
  }
  let tot = reduce2(li, s);
  let ignored = label == IGNORE;
  let inv = 1.0 / tot.x;
  for (var k = li; k < p.n; k += WG) {
    let g = select(exp(logits[base + k] - m) * inv, -tot.y * inv, k == label);
    dlogits[base + k] = select(p.scale * g, 0.0, ignored);
  }
  if (li == 0u) {
    var v = 0.0;
    if (!ignored) {
      let xl = logits[base + min(label, p.n - 1u)];
      // label is the max (e_label = 1): loss = log(1 + Σ_other) exactly.
      v = select(m + log(tot.x) - xl, log1p_pos(tot.y), xl == m);
      // Out-of-range label: NaN (0x7fc00000) so a data bug cannot train silently.
      v = select(bitcast<f32>(0x7fc00000u), v, label < p.n);
    }
    loss[b] = v;
  }
}
