/**
 * `deno task bench <kernels | model | privacy | train> [flags]`
 *
 * model | privacy | train: end-to-end benchmarks (pipeline/bench/cli.ts: --json, --quick,
 * --models tiny,small,medium, --batch, --seq, --reps, --warmup).
 *
 * kernels: every kernel benchmark case on this machine's adapter. Prints a table (adapter name
 * first) or, with --json, one JSON object per line per case: kernel, shape, gflops, gbps,
 * rel_err, adapter, ms (best), ms_median, reps, timer. Times come from timestamp queries when
 * the adapter has them (one timed pass per dispatch), else wall time around a submit + wait
 * (which includes the ≥ 11 ms synchronisation floor of software adapters). Never asserts.
 */
import { parseArgs } from "node:util";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import type { KernelBenchCase } from "../pipeline/bench/types.ts";
import { linalgCases } from "../pipeline/bench/kernels_linalg.ts";
import { nnCases } from "../pipeline/bench/kernels_nn.ts";
import { consoleIo, E2E_BENCHES, type E2eBench, e2eMain } from "../pipeline/bench/cli.ts";

const USAGE = "usage: deno task bench kernels [--json] [--filter SUBSTRING] [--reps N]\n" +
  "       deno task bench model|privacy|train [--json] [--quick] [--models tiny,small,medium]" +
  " [--batch N] [--seq N] [--reps N] [--warmup N]";

interface Row {
  kernel: string;
  shape: string;
  gflops: number | null;
  gbps: number | null;
  rel_err: number;
  adapter: string;
  ms: number;
  ms_median: number;
  reps: number;
  timer: "timestamp" | "wall";
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeOnce(rt: Runtime, run: () => void): Promise<[number, "timestamp" | "wall"]> {
  if (rt.beginProfile()) {
    run();
    const prof = await rt.endProfile();
    let ms = 0;
    for (const v of prof.values()) ms += v.ms;
    return [ms, "timestamp"];
  }
  const t0 = performance.now();
  run();
  await rt.sync();
  return [performance.now() - t0, "wall"];
}

async function benchCase(rt: Runtime, c: KernelBenchCase, reps: number): Promise<Row> {
  const s = await c.setup(rt);
  try {
    const relErr = await s.relErr(); // also warms the pipeline up
    const times: number[] = [];
    let timer: "timestamp" | "wall" = "wall";
    for (let i = 0; i < reps; i++) {
      const [ms, t] = await timeOnce(rt, s.run);
      times.push(ms);
      timer = t;
    }
    const best = Math.min(...times);
    return {
      kernel: c.kernel,
      shape: c.shape,
      gflops: c.flops ? c.flops / best / 1e6 : null,
      gbps: c.bytes ? c.bytes / best / 1e6 : null,
      rel_err: relErr,
      adapter: rt.info.adapterName,
      ms: best,
      ms_median: median(times),
      reps,
      timer,
    };
  } finally {
    s.dispose();
  }
}

function fmt(x: number | null, d = 1): string {
  return x === null ? "-" : x.toFixed(d);
}

async function kernels(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      filter: { type: "string" },
      reps: { type: "string", default: "5" },
    },
  });
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) {
    console.error(`bench: --reps must be a positive integer, got "${values.reps}"`);
    return 2;
  }
  const cases = [...linalgCases, ...nnCases].filter((c) =>
    !values.filter || `${c.kernel} ${c.shape}`.includes(values.filter)
  );
  const rt = await Runtime.create();
  if (!values.json) {
    console.log(`adapter: ${rt.info.adapterName} (fallback: ${rt.info.isFallback})`);
    console.log(
      "kernel".padEnd(24) + "shape".padEnd(18) + "GFLOP/s".padStart(9) + "GB/s".padStart(8) +
        "ms best".padStart(10) + "ms med".padStart(10) + "rel err".padStart(11),
    );
  }
  for (const c of cases) {
    const row = await benchCase(rt, c, reps);
    if (values.json) console.log(JSON.stringify(row));
    else {
      console.log(
        row.kernel.padEnd(24) + row.shape.padEnd(18) + fmt(row.gflops).padStart(9) +
          fmt(row.gbps).padStart(8) + fmt(row.ms, 2).padStart(10) +
          fmt(row.ms_median, 2).padStart(10) + row.rel_err.toExponential(1).padStart(11),
      );
    }
  }
  rt.destroy();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === "kernels") return await kernels(rest);
  if (what && (E2E_BENCHES as readonly string[]).includes(what)) {
    return await e2eMain(what as E2eBench, rest, consoleIo);
  }
  console.error(what ? `bench: unknown benchmark "${what}"\n${USAGE}` : USAGE);
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
