/**
 * The account stage reports ε by the run's own accountant (the one that calibrated σ and guarded
 * the budget), recomputed from the ledger, and enforces the target with that same accountant.
 */
import assert from "node:assert/strict";
import type { PipelineConfig } from "../pipeline/config.ts";
import { accountStage } from "../pipeline/stages/account.ts";
import type { StageContext } from "../pipeline/stages/context.ts";
import type { TrainSummary } from "../pipeline/stages/train.ts";
import { Ledger } from "../pipeline/privacy/ledger.ts";
import { pldEpsilon, rdpEpsilon } from "../pipeline/privacy/accountant/mod.ts";

const DELTA = 1e-5;

/** A run folder holding a train summary and a ledger of `steps` steps at (q, σ). */
async function runWith(
  accountant: string,
  q: number,
  sigma: number,
  steps: number,
  targetEpsilon: number | null,
): Promise<{ ctx: StageContext; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "dplora-account-" });
  const summary: TrainSummary = {
    mode: "dp-lora",
    steps,
    epochs: 1,
    trainRecords: 100,
    seconds: 1,
    privacy: {
      sampleRate: q,
      noiseMultiplier: sigma,
      maxGradNorm: 1,
      delta: DELTA,
      unit: "patient",
      units: 100,
      plannedSteps: steps,
      epsilonPlanned: 0,
      accountant,
      stoppedByBudget: false,
    },
  } as TrainSummary;
  await Deno.mkdir(`${dir}/train`, { recursive: true });
  await Deno.writeTextFile(`${dir}/train/summary.json`, JSON.stringify(summary));
  const ledger = await Ledger.open(`${dir}/privacy/ledger.jsonl`);
  for (let i = 0; i < steps; i++) {
    ledger.append({ q, sigma, C: 1, unit: "patient", epoch: 0, rng: "insecure-test-seed" });
  }
  ledger.close();
  // The stage reads only privacy.target_epsilon from the config.
  const config = { privacy: { target_epsilon: targetEpsilon } } as unknown as PipelineConfig;
  const ctx: StageContext = {
    config,
    runDir: dir,
    progress: () => {},
    resume: false,
    gpu: () => Promise.reject(new Error("the account stage must not need a GPU")),
  };
  return { ctx, dir };
}

Deno.test("account: ε by the run's accountant; RDP alongside, never below the tight bound", async () => {
  const { ctx, dir } = await runWith("pld", 0.02, 1.1, 60, null);
  try {
    const r = await accountStage(ctx);
    const params = { sampleRate: 0.02, noiseMultiplier: 1.1, steps: 60, delta: DELTA };
    assert.equal(r.accountant, "pld");
    assert.ok(Math.abs(r.epsilon! - pldEpsilon(params)) <= 1e-12 * r.epsilon!);
    assert.ok(Math.abs(r.epsilon_rdp! - rdpEpsilon(params)) <= 1e-12 * r.epsilon_rdp!);
    assert.ok(r.epsilon_rdp! > r.epsilon!, "RDP is the looser bound here");
    const written = JSON.parse(await Deno.readTextFile(`${dir}/privacy/report.json`));
    assert.equal(written.epsilon, r.epsilon);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("account: an RDP run with a near-zero σ reports its (huge) ε instead of failing in PLD", async () => {
  // σ = 1e-6: the PLD grid cannot be fitted (it fails closed); RDP still gives an upper bound.
  const { ctx, dir } = await runWith("rdp", 0.01, 1e-6, 20, null);
  try {
    const r = await accountStage(ctx);
    const want = rdpEpsilon({ sampleRate: 0.01, noiseMultiplier: 1e-6, steps: 20, delta: DELTA });
    assert.equal(r.accountant, "rdp");
    assert.ok(r.epsilon! > 1e6, `ε ${r.epsilon} must say "no privacy"`);
    assert.ok(Math.abs(r.epsilon! - want) <= 1e-12 * want);
    assert.equal(r.epsilon_rdp, r.epsilon);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("account: the target is enforced with the run's accountant (RDP over target fails)", async () => {
  const params = { sampleRate: 0.02, noiseMultiplier: 1.1, steps: 60, delta: DELTA };
  const tight = pldEpsilon(params), loose = rdpEpsilon(params);
  assert.ok(tight < loose, "the case needs PLD < RDP");
  // A target between the two: within budget by PLD, over it by RDP, the run's accountant.
  const target = (tight + loose) / 2;
  const rdpRun = await runWith("rdp", 0.02, 1.1, 60, target);
  const pldRun = await runWith("pld", 0.02, 1.1, 60, target);
  try {
    await assert.rejects(() => accountStage(rdpRun.ctx), /exceeds the target.*/);
    assert.equal((await accountStage(pldRun.ctx)).epsilon, tight);
  } finally {
    await Deno.remove(rdpRun.dir, { recursive: true });
    await Deno.remove(pldRun.dir, { recursive: true });
  }
});

Deno.test("account: an unknown accountant in the summary is refused naming the file", async () => {
  const { ctx, dir } = await runWith("moments", 0.02, 1.1, 3, null);
  try {
    await assert.rejects(
      () => accountStage(ctx),
      /train\/summary\.json: privacy\.accountant "moments"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
