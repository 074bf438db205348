/**
 * run/report.md and run/report.html: one page a clinician-engineer can read offline — config,
 * data counts and prevalence, training curves, the privacy report, metrics tables, and the
 * label-prior baseline beside the model so a near-prior DP result is visible as such.
 */
import type { PipelineConfig } from "../config.ts";
import type { DataManifest } from "../data/cache.ts";
import type { Metrics } from "../eval/metrics.ts";
import { writeTextAtomic } from "../fs.ts";
import type { PrivacyReport } from "../stages/account.ts";
import type { EvaluationResult } from "../stages/evaluate.ts";
import type { TrainSummary } from "../stages/train.ts";
import { lineChart } from "./svg.ts";

export interface RunReportInput {
  config: PipelineConfig;
  manifest: DataManifest;
  summary?: TrainSummary;
  privacy?: PrivacyReport;
  evaluation: EvaluationResult;
}

interface EpochLine {
  kind: string;
  epoch: number;
  train_loss: number | null;
  val_loss: number | null;
  val_weighted_f1: number | null;
  epsilon: number | null;
}

const f = (x: number | null | undefined, d = 4) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d);

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function mdToHtmlTable(md: string): string {
  const lines = md.split("\n").filter((l) => l.startsWith("|"));
  const cells = (l: string) => l.slice(1, -1).split("|").map((c) => esc(c.trim()));
  const [h, , ...rest] = lines;
  return `<table><thead><tr>${cells(h).map((c) => `<th>${c}</th>`).join("")}</tr></thead><tbody>${
    rest.map((r) => `<tr>${cells(r).map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")
  }</tbody></table>`;
}

async function readEpochs(runDir: string): Promise<EpochLine[]> {
  try {
    const text = await Deno.readTextFile(`${runDir}/train/log.jsonl`);
    return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as EpochLine)
      .filter((e) => e.kind === "epoch");
  } catch {
    return [];
  }
}

function metricsRows(m: Metrics, prior: Metrics): string[][] {
  return m.perLabel.map((l, i) => [
    l.label,
    String(l.support),
    f(l.precision, 3),
    f(l.recall, 3),
    f(l.f1, 3),
    f(l.auroc, 3),
    f(prior.perLabel[i]?.f1, 3),
  ]);
}

export async function writeRunReport(runDir: string, r: RunReportInput): Promise<void> {
  const { config, manifest, summary, privacy, evaluation } = r;
  const m = evaluation.model, p = evaluation.prior;
  const epochs = await readEpochs(runDir);
  const sections: { title: string; md: string; html?: string }[] = [];

  sections.push({
    title: "Run",
    md: table(["setting", "value"], [
      ["mode", config.model.mode],
      ["checkpoint", config.model.checkpoint],
      [
        "LoRA",
        config.model.mode === "full"
          ? "–"
          : `r ${config.model.lora.rank}, α ${config.model.lora.alpha}, ${
            config.model.lora.targets.join("+")
          }`,
      ],
      [
        "epochs / batch / lr",
        `${config.train.epochs} / ${config.train.batch_size} / ${config.train.lr}`,
      ],
      ["steps", String(summary?.steps ?? "–")],
      ["training time", summary ? `${summary.seconds.toFixed(0)} s` : "–"],
      ["config overrides", config.source.overrides.join(" ") || "none"],
    ]),
  });

  const s = manifest.splits;
  sections.push({
    title: "Data",
    md: table(["split", "reports", "patients", "truncated"], [
      ["train", String(s.train.records), String(s.train.patients), String(s.train.truncated)],
      [
        "validation",
        String(s.validation.records),
        String(s.validation.patients),
        String(s.validation.truncated),
      ],
      ["test", String(s.test.records), String(s.test.patients), String(s.test.truncated)],
    ]) + "\n\n" +
      table(
        ["label", "train prevalence", "test prevalence"],
        manifest.labelNames.map((l) => [
          l,
          f(s.train.prevalence[l]?.rate, 3),
          f(s.test.prevalence[l]?.rate, 3),
        ]),
      ),
  });

  if (privacy) {
    sections.push({
      title: "Privacy",
      md: privacy.private
        ? table(["quantity", "value"], [
          [`ε (${privacy.accountant.toUpperCase()}, reported)`, f(privacy.epsilon)],
          ["ε (RDP, for comparison)", f(privacy.epsilon_rdp)],
          ["δ", privacy.delta!.toExponential(2)],
          ["noise multiplier σ", f(privacy.noise_multiplier)],
          ["sampling rate q", f(privacy.sample_rate, 6)],
          ["steps", String(privacy.steps)],
          ["clip norm C", String(privacy.max_grad_norm)],
          ["privacy unit", `${privacy.unit} (N = ${privacy.units})`],
          ["stopped by budget", privacy.stopped_by_budget ? "yes" : "no"],
        ]) + `\n\n${privacy.note}.`
        : privacy.note + ".",
    });
  }

  sections.push({
    title: "Test metrics",
    md: table(["", "model", "label-prior baseline"], [
      ["weighted F1", f(m.weightedF1), f(p.weightedF1)],
      ["macro F1", f(m.macroF1), f(p.macroF1)],
      ["micro F1", f(m.microF1), f(p.microF1)],
      ["macro AUROC", f(m.macroAuroc), "0.5 (constant score)"],
    ]) + "\n\n" +
      table(
        ["label", "support", "precision", "recall", "F1", "AUROC", "prior F1"],
        metricsRows(m, p),
      ),
  });

  if (epochs.length) {
    const svg = lineChart(
      [
        { name: "train loss", points: epochs.map((e) => ({ x: e.epoch, y: e.train_loss ?? NaN })) },
        { name: "val loss", points: epochs.map((e) => ({ x: e.epoch, y: e.val_loss ?? NaN })) },
        {
          name: "val weighted F1",
          points: epochs.map((e) => ({ x: e.epoch, y: e.val_weighted_f1 ?? NaN })),
        },
      ],
      { title: "Training curves", xLabel: "epoch", yLabel: "value" },
    );
    await writeTextAtomic(`${runDir}/train/curves.svg`, svg);
    sections.push({
      title: "Training curves",
      md: table(
        ["epoch", "train loss", "val loss", "val weighted F1", "ε spent"],
        epochs.map((e) => [
          String(e.epoch),
          f(e.train_loss),
          f(e.val_loss),
          f(e.val_weighted_f1),
          f(e.epsilon, 3),
        ]),
      ) + "\n\n![training curves](train/curves.svg)",
      html: svg,
    });
  }

  const title = `dplora run report — ${config.model.mode}`;
  const md = [`# ${title}`, "", ...sections.flatMap((x) => [`## ${x.title}`, "", x.md, ""])]
    .join("\n");
  await writeTextAtomic(`${runDir}/report.md`, md);
  const html = [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>`,
    "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}" +
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;" +
    "text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>",
    `<h1>${esc(title)}</h1>`,
    ...sections.map((x) => {
      const paras = x.md.split("\n\n").map((blk) =>
        blk.startsWith("|") ? mdToHtmlTable(blk) : blk.startsWith("![") ? "" : `<p>${esc(blk)}</p>`
      );
      return `<h2>${esc(x.title)}</h2>${paras.join("")}${x.html ?? ""}`;
    }),
    "</body></html>",
  ].join("\n");
  await writeTextAtomic(`${runDir}/report.html`, html);
}
