/**
 * The sweep's run plan: which (mode, ε, seed) runs to train, each as a fully validated pipeline
 * config. Every run must see the same tokenized data, so a per-mode override that would change the
 * data stage's inputs (data.* or the checkpoint's tokenizer) is refused here, before any training.
 */
import { applyOverrides, type PipelineConfig, resolvedConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";

export type SweepMode = "full" | "lora" | "dp-lora";
export const SWEEP_MODES: readonly SweepMode[] = ["full", "lora", "dp-lora"];

export interface SweepPlanOptions {
  /** Target ε of each DP-LoRA run (positive, distinct). */
  epsilons: readonly number[];
  /** Seeds per setting: train.seed = base + k for k = 0 … seeds − 1. */
  seeds: number;
  /** `key.path=value` overrides applied to every run (before the per-mode ones). */
  setAll?: readonly string[];
  /**
   * Per-mode `key.path=value` overrides (e.g. non-private modes want a smaller batch and lr),
   * applied after the config file's own `sweep.<mode>` lists.
   */
  setMode?: Partial<Record<SweepMode, readonly string[]>>;
}

export interface RunSpec {
  mode: SweepMode;
  /** Target ε (DP-LoRA only); null for the non-private modes. */
  epsilon: number | null;
  /** Index of the seed (0-based) and the train.seed it gives. */
  k: number;
  seed: number;
  /** Folder name under `<out>/runs/`: `<mode>-eps<ε|inf>-seed<k>`. */
  name: string;
  config: PipelineConfig;
}

/** Parse `0.01,0.1,1,10` into distinct positive finite numbers (sorted ascending). */
export function parseEpsilons(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new ConfigError(`--epsilons ${JSON.stringify(text)}: empty list`);
  const out: number[] = [];
  for (const p of parts) {
    const v = Number(p);
    if (!/^[0-9.eE+-]+$/.test(p) || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(`--epsilons: ${JSON.stringify(p)} is not a positive number`);
    }
    if (out.includes(v)) throw new ConfigError(`--epsilons: ${p} is listed twice`);
    out.push(v);
  }
  return out.sort((a, b) => a - b);
}

/** Folder name of one run; ε is written as JavaScript prints it (0.01, 1, 10, 1e-7). */
export function runName(mode: SweepMode, epsilon: number | null, k: number): string {
  return `${mode}-eps${epsilon === null ? "inf" : String(epsilon)}-seed${k}`;
}

/** The data stage's inputs (must be identical across the sweep's runs). */
export function dataIdentity(config: PipelineConfig): string {
  return JSON.stringify({ data: resolvedConfig(config).data, tokenizer: config.model.checkpoint });
}

/**
 * Drop the privacy section for a non-private mode: the trainer ignores it, and keeping it would
 * (a) print a warning per run and (b) make the full / LoRA runs' done-markers depend on the DP
 * settings, so editing the DP target in the file would needlessly retrain them.
 */
function withoutPrivacy(config: PipelineConfig): PipelineConfig {
  const raw = structuredClone(config.source.raw);
  delete raw.privacy;
  return { ...config, source: { ...config.source, raw } };
}

function modeSets(mode: SweepMode, epsilon: number | null): string[] {
  if (mode !== "dp-lora") return [`model.mode=${mode}`];
  // A σ given in the file would conflict with the target ε; `null` removes it.
  return [
    "model.mode=dp-lora",
    "privacy.noise_multiplier=null",
    `privacy.target_epsilon=${epsilon}`,
  ];
}

/** Where a mode's overrides come from, for error messages. */
function perMode(mode: SweepMode): string {
  return mode === "dp-lora" ? "sweep.dp_lora / --set-dp" : `sweep.${mode} / --set-${mode}`;
}

/**
 * One validated config per run, in the order they are trained: per seed, full, LoRA, then
 * DP-LoRA from the largest ε down (the cheapest-to-read results come first).
 */
export function planSweep(base: PipelineConfig, opts: SweepPlanOptions): RunSpec[] {
  if (!Number.isInteger(opts.seeds) || opts.seeds < 1) {
    throw new ConfigError(`--seeds: expected a positive integer, got ${opts.seeds}`);
  }
  if (opts.epsilons.length === 0) throw new ConfigError("--epsilons: at least one ε is needed");
  for (const e of opts.epsilons) {
    if (!(Number.isFinite(e) && e > 0)) throw new ConfigError(`--epsilons: ${e} is not positive`);
  }
  const all = opts.setAll ?? [];
  const shared = all.length ? applyOverrides(base, all) : base;
  const identity = dataIdentity(shared);
  const baseSeed = shared.train.seed;
  const settings: [SweepMode, number | null][] = [
    ["full", null],
    ["lora", null],
    ...[...opts.epsilons].sort((a, b) => b - a).map((e) => ["dp-lora", e] as [SweepMode, number]),
  ];
  const runs: RunSpec[] = [];
  for (let k = 0; k < opts.seeds; k++) {
    for (const [mode, epsilon] of settings) {
      const seed = baseSeed + k;
      const sets = [
        ...modeSets(mode, epsilon),
        ...shared.sweep[mode === "dp-lora" ? "dp_lora" : mode],
        ...(opts.setMode?.[mode] ?? []),
        `train.seed=${seed}`,
      ];
      const from = mode === "dp-lora" ? shared : withoutPrivacy(shared);
      let config: PipelineConfig;
      try {
        config = applyOverrides(from, sets);
      } catch (e) {
        if (e instanceof ConfigError) {
          throw new ConfigError(`sweep run ${runName(mode, epsilon, k)}: ${e.message}`);
        }
        throw e;
      }
      if (dataIdentity(config) !== identity) {
        throw new ConfigError(
          `${perMode(mode)}: changes data.* or model.checkpoint; every ` +
            "run of a sweep must share the same tokenized data (use --set for all modes)",
        );
      }
      if (config.model.mode !== mode) {
        throw new ConfigError(
          `${perMode(mode)}: model.mode cannot be overridden per mode`,
        );
      }
      if (mode === "dp-lora" && config.privacy?.target_epsilon !== epsilon) {
        throw new ConfigError(`${perMode(mode)}: privacy.target_epsilon is set by --epsilons`);
      }
      runs.push({ mode, epsilon, k, seed, name: runName(mode, epsilon, k), config });
    }
  }
  return runs;
}
