// Encoder-private strided batched matmul (naive, one invocation per output element).
// out[o_off + bt*o_bs + i*n + j] = alpha * Σ_k A(bt,i,k)·B(bt,k,j) (+ bias[j]) (+ old out if ACC)
//   A(bt,i,k) = a[a_off + bt*a_bs + i*a_rs + k*a_cs]   (transposes and broadcasts via strides)
//   B(bt,k,j) = b[b_off + bt*b_bs + k*b_rs + j*b_cs]
// Workgroup 8×8 over (j, i); z = batch index. flags bit0 = accumulate into out.
// Why naive: the model must stay correct and testable before the tuned kernels land; used for
// the small per-sample/LoRA contractions and the tiny test configs.
struct P {
  m: u32, n: u32, k: u32, flags: u32,
  a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
  b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
  o_off: u32, o_bs: u32, _p0: u32, _p1: u32,
  alpha: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn dot_at(bt: u32, i: u32, j: u32) -> f32 {
  var s = 0.0;
  var ai = p.a_off + bt * p.a_bs + i * p.a_rs;
  var bi = p.b_off + bt * p.b_bs + j * p.b_cs;
  for (var k = 0u; k < p.k; k++) {
    s += a[ai] * b[bi];
    ai += p.a_cs;
    bi += p.b_rs;
  }
  return p.alpha * s;
}

@compute @workgroup_size(8, 8)
fn bmm(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let i = g.y; let bt = g.z;
  if (i >= p.m || j >= p.n) { return; }
  let idx = p.o_off + bt * p.o_bs + i * p.n + j;
  var v = dot_at(bt, i, j);
  if ((p.flags & 1u) != 0u) { v += o[idx]; }
  o[idx] = v;
}

@compute @workgroup_size(8, 8)
fn bmm_bias(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let i = g.y; let bt = g.z;
  if (i >= p.m || j >= p.n) { return; }
  let idx = p.o_off + bt * p.o_bs + i * p.n + j;
  var v = dot_at(bt, i, j) + bias[j];
  if ((p.flags & 1u) != 0u) { v += o[idx]; }
  o[idx] = v;
}
