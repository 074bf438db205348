/**
 * dplora: differentially private LoRA fine-tuning of transformer encoders on clinical text,
 * on WebGPU with hand-written WGSL.
 *
 * @example Run the whole pipeline from a YAML config
 * ```ts
 * import { applyOverrides, loadConfig, runPipeline } from "./mod.ts";
 * let config = await loadConfig("fixtures/default.yaml");
 * config = applyOverrides(config, ["train.epochs=1"]);
 * const { runDir } = await runPipeline(config);
 * ```
 *
 * @example Account a DP-SGD schedule, or calibrate σ for a target ε
 * ```ts
 * import { calibrateNoise, computeEpsilon } from "./mod.ts";
 * const eps = computeEpsilon({ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5 });
 * const { noiseMultiplier } = calibrateNoise({
 *   targetEpsilon: 1, sampleRate: 0.01, steps: 1000, delta: 1e-5,
 * });
 * ```
 * @module
 */

// ---- pipeline
/**
 * Load and validate a pipeline YAML; errors name the file, key path and line.
 * @example
 * ```ts
 * const config = await loadConfig("examples/mimic-cxr.yaml");
 * ```
 */
export {
  applyOverrides,
  configFromObject,
  configReference,
  loadConfig,
} from "./pipeline/config.ts";
export type { PipelineConfig } from "./pipeline/config.ts";
/**
 * Run data → train → account → evaluate; finished stages with the same settings are skipped.
 * @example
 * ```ts
 * const res = await runPipeline(config, { stages: ["evaluate"], onProgress: console.log });
 * ```
 */
export { runPipeline } from "./pipeline/run.ts";
export type { RunOptions, RunResult } from "./pipeline/run.ts";
export { dataStage } from "./pipeline/stages/data.ts";
export { trainStage } from "./pipeline/stages/train.ts";
export { accountStage } from "./pipeline/stages/account.ts";
export { evaluateStage } from "./pipeline/stages/evaluate.ts";
export type { StageContext, StageName } from "./pipeline/stages/context.ts";
export type { ProgressEvent, ProgressSink } from "./pipeline/progress.ts";
export { ConfigError, DataError } from "./pipeline/errors.ts";

// ---- privacy
/**
 * ε of a (q, σ, steps, δ) schedule by the tight PLD accountant (or "rdp").
 * @example
 * ```ts
 * computeEpsilon({ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5 }); // ≈ 1.83
 * ```
 */
export {
  calibrateNoise,
  computeEpsilon,
  maxStepsForBudget,
  pldEpsilon,
  rdpEpsilon,
} from "./pipeline/privacy/accountant/mod.ts";
export { LedgerError, PrivacyBudgetError } from "./pipeline/privacy/errors.ts";
export { Ledger } from "./pipeline/privacy/ledger.ts";
export { PoissonSampler, splitMicroBatches, UnitTable } from "./pipeline/privacy/sampler.ts";
export { DpStep } from "./pipeline/privacy/dp_step.ts";
/**
 * The encoder as a {@link DpStep} per-sample source for one step: LoRA-dropout masks keyed by
 * (step, micro-batch), so a patient split over micro-batches is clipped by the norm of the very
 * gradient that is summed (use it, not a bare `trainStep`, in a custom DP loop).
 * @example
 * ```ts
 * const micro = splitMicroBatches(batch, 32);
 * const grads = await dp.run(step, batch, micro, encoderSource(enc, step, (mb) => batchOf(mb)));
 * ```
 */
export { encoderSource } from "./pipeline/training/dp_source.ts";

// ---- model
/**
 * Load a Hugging Face BERT / ALBERT / RoBERTa folder (config.json, safetensors, tokenizer).
 * @example
 * ```ts
 * const { config, weights, tokenizer } = await loadCheckpoint("fixtures/models/radbert-mini");
 * const ids = tokenizer.encode("No pneumothorax. Small left pleural effusion.", 128);
 * ```
 */
export { loadCheckpoint, saveCheckpoint } from "./pipeline/model/checkpoint.ts";
export { loadPeftAdapter, mergeLora, savePeftAdapter } from "./pipeline/model/peft.ts";
export { loadTokenizer } from "./pipeline/model/tokenizer/load.ts";
/**
 * The GPU encoder with LoRA, classification heads and per-sample gradients for DP.
 * @example
 * ```ts
 * const rt = await Runtime.create();
 * const enc = await GpuEncoder.create(rt, config, weights, {
 *   mode: "lora", lora: { targets: ["query", "value"], rank: 8, alpha: 16, dropout: 0 },
 *   head: { kind: "multi-label", numLabels: 14 }, seed: 1, maxBatch: 32, maxLen: 128,
 * });
 * const probs = await enc.predict({ ids: [ids] });
 * ```
 */
export { GpuEncoder } from "./pipeline/model/encoder.ts";
export type * from "./pipeline/model/types.ts";

// ---- GPU runtime
/**
 * One WebGPU device, the WGSL library and a one-submit-per-step recorder.
 * @example
 * ```ts
 * const rt = await Runtime.create();
 * console.log(rt.info.adapterName);
 * ```
 */
export { grid, params, Runtime } from "./pipeline/gpu/runtime.ts";
export type { DispatchSpec } from "./pipeline/gpu/runtime.ts";
export { GpuTensor } from "./pipeline/gpu/tensor.ts";
export { DeviceError, ShapeError } from "./pipeline/gpu/errors.ts";
