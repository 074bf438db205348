import assert from "node:assert/strict";
import { grid, params } from "../pipeline/gpu/runtime.ts";
import { ShapeError } from "../pipeline/gpu/errors.ts";
import { expectShape } from "../pipeline/gpu/tensor.ts";
import { gpu } from "./helpers.ts";

const SCALE = `
struct P { n: u32, a: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  if (i < p.n) { y[i] = p.a * x[i]; }
}`;

Deno.test("runtime: uniforms per dispatch stay distinct within one submit", async () => {
  const rt = await gpu();
  await rt.compile("test_scale.wgsl", SCALE);
  const n = 1000;
  const x = rt.upload(Float32Array.from({ length: n }, (_, i) => i), [n], "x");
  const ys = [0, 1, 2].map((k) => {
    const y = rt.empty([n], `y${k}`);
    rt.fill(y, NaN);
    return y;
  });
  ys.forEach((y, k) =>
    rt.dispatch({
      shader: "test_scale.wgsl",
      entry: "scale",
      bindings: { 1: x, 2: y },
      params: params([n], [k + 2]),
      workgroups: grid(Math.ceil(n / 64)),
    })
  );
  const out = await rt.readMany(ys);
  out.forEach((y, k) => y.forEach((v, i) => assert.equal(v, (k + 2) * i)));
  ys.forEach((y) => rt.release(y));
  rt.release(x);
});

Deno.test("runtime: a grid split over y covers every element", async () => {
  const rt = await gpu();
  await rt.compile("test_scale.wgsl", SCALE);
  const n = 64 * 70000 + 13; // > 65535 workgroups
  const x = rt.upload(new Float32Array(n).fill(1), [n], "x");
  const y = rt.empty([n], "y");
  rt.fill(y, NaN);
  const [gx, gy] = grid(Math.ceil(n / 64));
  assert.ok(gx <= 65535 && gy > 1);
  rt.dispatch({
    shader: "test_scale.wgsl",
    entry: "scale",
    bindings: { 1: x, 2: y },
    params: params([n], [3]),
    workgroups: [gx, gy],
  });
  const out = await rt.read(y);
  assert.ok(out.every((v) => v === 3));
  rt.release(x);
  rt.release(y);
});

Deno.test("runtime: shape checks name the op and the tensor", async () => {
  const rt = await gpu();
  const t = rt.empty([3, 4], "weights");
  assert.throws(() => expectShape("matmul", "b", t, [4, 3]), /matmul: tensor "b" \(weights\)/);
  assert.throws(() => t.reshape([5]), ShapeError);
  rt.release(t);
});

Deno.test("runtime: WGSL errors name the file and line", async () => {
  const rt = await gpu();
  await assert.rejects(() => rt.compile("broken.wgsl", "fn f( {"), /broken\.wgsl:1/);
});

Deno.test("runtime: params rejects non-u32 sizes", () => {
  assert.throws(() => params([-1]), RangeError);
  assert.throws(() => params([1.5]), RangeError);
});

Deno.test("runtime: no adapter → a DeviceError that names the package to install", async () => {
  const code = `import { acquireDevice } from "${
    new URL("../pipeline/gpu/device.ts", import.meta.url).href
  }";
try { await acquireDevice(); console.log("ADAPTER"); }
catch (e) { console.log(e.name + ": " + e.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    env: { DENO_WEBGPU_BACKEND: "", XDG_RUNTIME_DIR: "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /^DeviceError: .*mesa-vulkan-drivers.*DENO_WEBGPU_BACKEND/);
});
