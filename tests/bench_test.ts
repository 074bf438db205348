/**
 * Smoke tests of the end-to-end benchmarks (`deno task bench model | privacy | train --json`),
 * run in-process on the tiniest configuration (BERT-tiny, batch 2, seq 16, one timed run):
 * every JSON line parses and carries the fields the issue promises. No timing assertions.
 */
import assert from "node:assert/strict";
import { type BenchIo, e2eMain } from "../pipeline/bench/cli.ts";
import { median } from "../pipeline/bench/stats.ts";
import { renderTable } from "../pipeline/bench/table.ts";
import { parseModels } from "../pipeline/bench/shapes.ts";

const TINY = [
  "--json",
  "--models",
  "tiny",
  "--batch",
  "2",
  "--seq",
  "16",
  "--reps",
  "1",
  "--warmup",
  "1",
];

async function run(
  what: "model" | "privacy" | "train",
  args: string[],
): Promise<{ code: number; rows: Record<string, unknown>[]; err: string[] }> {
  const out: string[] = [], err: string[] = [];
  const io: BenchIo = { out: (l) => out.push(l), err: (l) => err.push(l) };
  const code = await e2eMain(what, args, io);
  return { code, rows: out.map((l) => JSON.parse(l)), err };
}

function fields(row: Record<string, unknown>, spec: Record<string, string>): void {
  for (const [k, type] of Object.entries(spec)) {
    assert.ok(k in row, `missing field ${k} in ${JSON.stringify(row)}`);
    assert.equal(typeof row[k], type, `field ${k} of ${JSON.stringify(row)}`);
  }
  assert.ok((row.adapter as string).length > 0, "adapter name is empty");
}

function positive(row: Record<string, unknown>, ...keys: string[]): void {
  for (const k of keys) {
    const v = row[k] as number;
    assert.ok(Number.isFinite(v) && v > 0, `${k} = ${v} in ${JSON.stringify(row)}`);
  }
}

const STEP_FIELDS = {
  model: "string",
  op: "string",
  seq: "number",
  batch: "number",
  samples_per_s: "number",
  step_ms: "number",
  peak_bytes: "number",
  adapter: "string",
  per_sample: "boolean",
};

/** samples/s must be the batch over the step time (catches a mixed-up field). */
function consistent(r: Record<string, unknown>): void {
  const want = (r.batch as number) / ((r.step_ms as number) / 1000);
  assert.ok(Math.abs((r.samples_per_s as number) / want - 1) < 0.01, JSON.stringify(r));
}

Deno.test("bench model --json: one line per (model, op) with the promised fields", async () => {
  const { code, rows } = await run("model", TINY);
  assert.equal(code, 0);
  assert.deepEqual(rows.map((r) => r.op), ["forward", "lora", "full"]);
  for (const r of rows) {
    fields(r, STEP_FIELDS);
    assert.equal(r.model, "bert-tiny");
    assert.equal(r.batch, 2);
    assert.equal(r.seq, 16);
    positive(r, "samples_per_s", "step_ms", "peak_bytes");
    consistent(r);
    // non-private steps must not pay for per-sample gradients
    assert.equal(r.per_sample, false, `${r.op} materialised per-sample gradients`);
  }
  const [, lora, full] = rows;
  assert.ok((full.trainable_params as number) > (lora.trainable_params as number));
});

Deno.test("bench train --json: full / LoRA / DP-LoRA lines and a kernel breakdown", async () => {
  const { code, rows } = await run("train", TINY);
  assert.equal(code, 0);
  const configs = rows.filter((r) => r.kind === "config");
  assert.deepEqual(configs.map((r) => r.op), ["full", "lora", "dp-lora"]);
  for (const r of configs) {
    fields(r, STEP_FIELDS);
    positive(r, "samples_per_s", "step_ms", "peak_bytes", "trainable_params");
    consistent(r);
    assert.equal(r.per_sample, r.op === "dp-lora", `${r.op}: per_sample ${r.per_sample}`);
  }
  assert.equal(configs[0].lora_rank, null);
  assert.equal(configs[2].lora_rank, 8);
  assert.deepEqual(configs[2].lora_targets, ["query", "value"]);
  const kernels = rows.filter((r) => r.kind === "kernels");
  assert.equal(kernels.length, 1, "one breakdown (the profiled model's DP-LoRA step)");
  const k = kernels[0];
  fields(k, { model: "string", op: "string", adapter: "string", dispatches: "number" });
  assert.equal(k.op, "dp-lora");
  assert.equal(k.truncated, false);
  const list = k.kernels as { kernel: string; calls: number; ms: number; share: number }[];
  assert.ok(list.length > 0);
  assert.ok(list.some((x) => x.kernel.startsWith("matmul.wgsl:")), "GEMMs are in the step");
  for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].ms >= list[i].ms, "sorted");
  const shares = list.reduce((s, x) => s + x.share, 0);
  assert.ok(shares > 0 && shares <= 1.001, `shares sum ${shares}`);
  assert.ok(list.reduce((s, x) => s + x.calls, 0) <= (k.dispatches as number));
});

Deno.test("bench privacy --json: DP/non-private ratio and accountant timings", async () => {
  const { code, rows } = await run("privacy", [...TINY, "--accountant-reps", "1"]);
  assert.equal(code, 0);
  const steps = rows.filter((r) => r.kind === "step");
  assert.equal(steps.length, 1);
  const s = steps[0];
  fields(s, { model: "string", nonprivate_ms: "number", dp_ms: "number", ratio: "number" });
  positive(s, "nonprivate_ms", "dp_ms", "ratio", "dp_peak_bytes", "nonprivate_peak_bytes");
  // ratio is computed from the unrounded medians; the printed ms are rounded to 0.1 ms, so the
  // ratio of the printed values may differ by up to ratio·(0.05/dp + 0.05/np) (+ ratio rounding).
  const dp = s.dp_ms as number, np = s.nonprivate_ms as number, ratio = s.ratio as number;
  assert.ok(Math.abs(ratio - dp / np) <= ratio * (0.05 / dp + 0.05 / np) + 1e-3, JSON.stringify(s));
  assert.equal(s.nonprivate_per_sample, false);
  const acc = rows.filter((r) => r.kind === "accountant");
  assert.equal(acc.length, 8, "4 regimes × (pld, rdp)");
  for (const r of acc) {
    fields(r, { op: "string", accountant: "string", epsilon: "number", ms: "number" });
    positive(r, "epsilon", "ms", "sigma");
    if (r.op === "calibrateNoise") {
      assert.ok((r.epsilon as number) <= (r.target_epsilon as number), JSON.stringify(r));
    }
  }
});

Deno.test("bench CLI: bad flags are usage errors (exit 2) naming the flag", async () => {
  for (
    const [args, flag] of [
      [["--batch", "0"], "--batch"],
      [["--models", "huge"], "--models"],
      [["--reps", "x"], "--reps"],
    ] as const
  ) {
    const { code, err } = await run("model", [...args]);
    assert.equal(code, 2, args.join(" "));
    assert.ok(err.some((l) => l.includes(flag)), err.join("\n"));
  }
});

Deno.test("bench helpers: median, model names, table alignment", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.deepEqual(parseModels("tiny, bert-medium"), ["bert-tiny", "bert-medium"]);
  const t = renderTable([{ title: "name", cell: (r: [string, number]) => r[0], left: true }, {
    title: "v",
    cell: (r: [string, number]) => r[1].toFixed(1),
  }], [["a", 10], ["bbb", 2]]);
  assert.deepEqual(t.split("\n"), ["name     v", "a     10.0", "bbb    2.0"]);
});
