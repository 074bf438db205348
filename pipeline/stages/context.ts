/** What every stage receives: the validated config, the run folder, progress and cancellation. */
import type { PipelineConfig } from "../config.ts";
import type { ProgressSink } from "../progress.ts";
import type { Runtime } from "../gpu/runtime.ts";

export type StageName = "data" | "train" | "account" | "evaluate";
export const STAGES: readonly StageName[] = ["data", "train", "account", "evaluate"];

export interface StageContext {
  config: PipelineConfig;
  /** Absolute or cwd-relative run folder (config.output.dir unless overridden). */
  runDir: string;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** Continue an interrupted stage from its last checkpoint instead of starting it over. */
  resume: boolean;
  /** The GPU runtime, created on first use and shared by the stages of one run. */
  gpu(): Promise<Runtime>;
}
