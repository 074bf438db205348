/** Learning-rate schedules: linear warm-up then linear decay to 0, or constant. */

export interface ScheduleConfig {
  lr: number;
  schedule: "linear" | "constant";
  warmupRatio: number;
  totalSteps: number;
}

/** Learning rate for optimizer step `step` (0-based). */
export function learningRate(s: ScheduleConfig, step: number): number {
  if (s.schedule === "constant") return s.lr;
  const warm = Math.floor(s.warmupRatio * s.totalSteps);
  if (step < warm) return s.lr * (step + 1) / warm;
  const rest = Math.max(1, s.totalSteps - warm);
  return s.lr * Math.max(0, (s.totalSteps - step) / rest);
}
