/** A configured source → records with targets and masks under the label policy. */
import type { DataConfig } from "../config.ts";
import { ConfigError, DataError } from "../errors.ts";
import { applyLabelPolicy, applyNoFindingRule, NO_FINDING } from "./labels.ts";
import { readMimicSource } from "./mimic.ts";
import { RowErrors } from "./skips.ts";
import { readCsvSource, readJsonlSource, type SourceRows } from "./tabular.ts";
import type { LoadedDataset, ReportRecord } from "./types.ts";

function resolve(base: string, p: string | undefined): string | undefined {
  if (p === undefined || p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p)) return p;
  return `${base.replace(/[\\/]+$/, "")}/${p}`;
}

/**
 * Load every record of the configured source. Paths in a config from `loadConfig` are already
 * absolute; any still relative resolve against `baseDir`. Row errors fail or are skipped per
 * `on_error`; duplicate ids are row errors (the later row is the one reported/skipped).
 */
export async function loadDataset(data: DataConfig, baseDir = "."): Promise<LoadedDataset> {
  const cfg: DataConfig = {
    ...data,
    root: resolve(baseDir, data.root),
    reports_dir: resolve(baseDir, data.reports_dir),
    label_csv: resolve(baseDir, data.label_csv),
    split_csv: resolve(baseDir, data.split_csv),
    file: resolve(baseDir, data.file),
  };
  const labels = [...cfg.labels];
  if (cfg.no_finding_rule && !labels.includes(NO_FINDING)) {
    throw new ConfigError(`data.no_finding_rule: needs "${NO_FINDING}" among data.labels`);
  }
  const errs = new RowErrors(cfg.on_error);
  const textSources: Record<string, number> = {};
  let src: SourceRows;
  if (cfg.format === "mimic-cxr") src = await readMimicSource(cfg, labels, errs, textSources);
  else if (cfg.format === "csv") src = await readCsvSource(cfg, labels, errs);
  else src = await readJsonlSource(cfg, labels, errs);

  const firstSeen = new Map<string, string>();
  const records: ReportRecord[] = [];
  for (const r of src.rows) {
    try {
      const prev = firstSeen.get(r.id);
      if (prev !== undefined) {
        throw new DataError(r.where, "duplicate-id", `duplicate id "${r.id}" (first at ${prev})`);
      }
      firstSeen.set(r.id, r.where);
    } catch (e) {
      errs.handle(e);
      continue;
    }
    const raw = cfg.no_finding_rule ? applyNoFindingRule(r.raw, labels) : r.raw;
    const { target, mask } = applyLabelPolicy(raw, cfg.uncertain);
    records.push({ ...r, raw, target, mask });
  }
  return { records, skipped: errs.skipped, labelNames: labels, inputs: src.inputs, textSources };
}
