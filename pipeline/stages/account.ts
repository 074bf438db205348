/**
 * Account stage: the privacy ledger → ε at δ by the run's accountant (`privacy.accountant`, the one
 * that calibrated σ and guarded the budget; PLD by default) and by RDP for comparison →
 * run/privacy/report.json. Recomputed from the ledger (not from the trainer's plan), so the report
 * covers every step that was ever started, including steps lost to a crash.
 */
import { writeJsonAtomic } from "../fs.ts";
import { type AccountantName, ACCOUNTANTS, computeEpsilon } from "../privacy/accountant/mod.ts";
import { Ledger } from "../privacy/ledger.ts";
import type { TrainSummary } from "./train.ts";
import type { StageContext } from "./context.ts";
import { readJsonIfExists } from "../fs.ts";

export interface PrivacyReport {
  private: boolean;
  mode: string;
  epsilon: number | null;
  /** ε by RDP (the looser, classic bound), for comparison; equals `epsilon` when RDP is the accountant. */
  epsilon_rdp: number | null;
  /** The accountant that gave `epsilon`: pld, prv or rdp ("none" for a non-private run). */
  accountant: string;
  delta: number | null;
  noise_multiplier: number | null;
  sample_rate: number | null;
  steps: number;
  max_grad_norm: number | null;
  unit: string | null;
  units: number | null;
  target_epsilon: number | null;
  stopped_by_budget: boolean;
  segments: { q: number; sigma: number; steps: number }[];
  note: string;
}

export async function accountStage(ctx: StageContext): Promise<PrivacyReport> {
  const { config, runDir } = ctx;
  const summary = await readJsonIfExists<TrainSummary>(`${runDir}/train/summary.json`);
  if (!summary) throw new Error(`${runDir}/train/summary.json missing: run the train stage first`);
  let report: PrivacyReport;
  if (!summary.privacy) {
    report = {
      private: false,
      mode: summary.mode,
      epsilon: null,
      epsilon_rdp: null,
      accountant: "none",
      delta: null,
      noise_multiplier: null,
      sample_rate: null,
      steps: summary.steps,
      max_grad_norm: null,
      unit: null,
      units: null,
      target_epsilon: null,
      stopped_by_budget: false,
      segments: [],
      note: `mode ${summary.mode} is not differentially private: ε = ∞`,
    };
  } else {
    const p = summary.privacy;
    const ledger = await Ledger.open(`${runDir}/privacy/ledger.jsonl`);
    const segs = ledger.segments();
    ledger.close();
    const segments = segs.map((s) => ({
      sampleRate: s.q,
      noiseMultiplier: s.sigma,
      steps: s.steps,
    }));
    const steps = segs.reduce((a, s) => a + s.steps, 0);
    const accountant = accountantOf(p.accountant, runDir);
    const eps = (acc: AccountantName) =>
      steps === 0 ? 0 : computeEpsilon({ segments, delta: p.delta }, acc);
    // Only the run's own accountant is computed for the guarantee: PLD cannot discretise the
    // privacy loss of a near-zero σ (a diagnostic run) and would fail a run that asked for RDP.
    const spent = eps(accountant);
    const rdp = accountant === "rdp" ? spent : eps("rdp");
    report = {
      private: true,
      mode: summary.mode,
      epsilon: spent,
      epsilon_rdp: rdp,
      accountant,
      delta: p.delta,
      noise_multiplier: p.noiseMultiplier,
      sample_rate: p.sampleRate,
      steps,
      max_grad_norm: p.maxGradNorm,
      unit: p.unit,
      units: p.units,
      target_epsilon: config.privacy?.target_epsilon ?? null,
      stopped_by_budget: p.stoppedByBudget,
      segments: segs,
      note: `(ε, δ)-DP for each ${p.unit} with respect to the released adapter and head, ` +
        `Poisson-subsampled Gaussian mechanism; ε from the ledger by ${NOTE[accountant]}` +
        (accountant === "rdp" ? "" : "; RDP shown for comparison"),
    };
    if (report.target_epsilon !== null && spent > report.target_epsilon * (1 + 1e-9)) {
      throw new Error(
        `privacy: ε = ${spent} (${accountant}) from the ledger exceeds the target ${report.target_epsilon}`,
      );
    }
  }
  await writeJsonAtomic(`${runDir}/privacy/report.json`, report);
  ctx.progress({
    stage: "account",
    message: report.private
      ? `ε = ${report.epsilon!.toFixed(4)} (${report.accountant.toUpperCase()})` +
        (report.accountant === "rdp" ? "" : `, ${report.epsilon_rdp!.toFixed(4)} (RDP)`) +
        ` at δ = ${report.delta!.toExponential(2)} after ${report.steps} steps`
      : report.note,
  });
  return report;
}

const NOTE: Record<AccountantName, string> = {
  pld: "a PLD accountant (pessimistic discretisation, an upper bound)",
  prv: 'the PLD accountant ("prv" is its alias; pessimistic discretisation, an upper bound)',
  rdp: "an RDP accountant (Rényi DP converted to (ε, δ), an upper bound)",
};

function accountantOf(name: string, runDir: string): AccountantName {
  if ((ACCOUNTANTS as readonly string[]).includes(name)) return name as AccountantName;
  throw new Error(
    `${runDir}/train/summary.json: privacy.accountant "${name}" is not one of ${
      ACCOUNTANTS.join(", ")
    }`,
  );
}
