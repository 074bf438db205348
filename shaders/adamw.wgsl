// Optimizer updates, in place: AdamW (decoupled weight decay, bias-corrected moments) and SGD
// (coupled weight decay, optional momentum), both following PyTorch's formulas.
//
// Layout: param, grad, m, v, momentum buffer are flat f32 arrays of p.n elements (one
// parameter tensor, or a flat arena of many). Workgroup: 256 invocations, one element each;
// linear workgroup index wid.x + wid.y·nwg.x.
// The gradient is multiplied by grad_scale first (DP: 1 / expected batch size qN). Step-
// dependent scalars (lr / (1 − β1ᵗ), √(1 − β2ᵗ)) and 1 − β are computed on the host in float64.
//
// adamw:  p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
//         p ← p − step_size · m / (√v / √bc2 + eps)
// sgd:    g' = g + wd·p;  p ← p − lr·g'
// sgd_momentum: buf ← μ·buf + g';  p ← p − lr·buf   (buf = 0 before the first step)

struct Adam {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  wd: f32,
  step_size: f32, // lr / (1 − β1ᵗ)
  bc2_sqrt: f32,  // √(1 − β2ᵗ)
  grad_scale: f32,
  one_minus_beta1: f32, // from the host: 1 − f32(0.999) would be off by 1.3e-5 relative
  one_minus_beta2: f32,
}

struct Sgd {
  n: u32,
  lr: f32,
  momentum: f32,
  wd: f32,
  grad_scale: f32,
}

@group(0) @binding(0) var<uniform> a: Adam;
@group(0) @binding(0) var<uniform> s: Sgd;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read_write> buf: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= a.n) { return; }
  let g = grad[i] * a.grad_scale;
  let pw = param[i] * (1.0 - a.lr * a.wd);
  let m = a.beta1 * m1[i] + a.one_minus_beta1 * g;
  let v = a.beta2 * m2[i] + a.one_minus_beta2 * g * g;
  m1[i] = m;
  m2[i] = v;
  param[i] = pw - a.step_size * m / (sqrt(v) / a.bc2_sqrt + a.eps);
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= s.n) { return; }
  let w = param[i];
  param[i] = w - s.lr * (grad[i] * s.grad_scale + s.wd * w);
}

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= s.n) { return; }
  let w = param[i];
  let b = s.momentum * buf[i] + grad[i] * s.grad_scale + s.wd * w;
  buf[i] = b;
  param[i] = w - s.lr * b;
}
