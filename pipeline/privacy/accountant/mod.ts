/**
 * Privacy accountants for DP-SGD with Poisson sampling and Gaussian noise.
 *
 * @example
 * ```ts
 * import { calibrateNoise, computeEpsilon } from "./mod.ts";
 * computeEpsilon({ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5 }); // ≈ 1.83
 * calibrateNoise({ targetEpsilon: 1, sampleRate: 0.01, steps: 1000, delta: 1e-5 }).noiseMultiplier;
 * ```
 */
export { AccountantError } from "./errors.ts";
export {
  type AccountantName,
  ACCOUNTANTS,
  type AccountingParams,
  type HistoryParams,
  type Segment,
  type SingleParams,
} from "./types.ts";
export {
  DEFAULT_ORDERS,
  type RdpConversion,
  rdpCurve,
  rdpEpsilon,
  rdpEpsilonDetailed,
  type RdpOptions,
  rdpStep,
} from "./rdp.ts";
export { pldEpsilon, pldEpsilonDetailed, type PldOptions, type PldResult } from "./pld.ts";
export {
  calibrateNoise,
  type CalibrateNoiseParams,
  type CalibrateNoiseResult,
  computeEpsilon,
  maxStepsForBudget,
  type MaxStepsParams,
} from "./calibrate.ts";
