/**
 * Resumable training state: every trainable tensor and its optimizer moments in one safetensors
 * file per checkpoint, plus `state.json` naming it. The tensors are written first and state.json
 * last (both atomically), so a crash leaves the previous complete checkpoint in force.
 */
import { readJsonIfExists, writeJsonAtomic } from "../fs.ts";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import type { HostTensor } from "../model/types.ts";

export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  /** Epochs completed (DP: in expected passes over the data). */
  epoch: number;
  totalSteps: number;
  mode: "full" | "lora" | "dp-lora";
  /** DP only: the schedule the run was started with. */
  sampleRate?: number;
  noiseMultiplier?: number;
  /** Hash of the config sections that shape training; a resume with other settings is refused. */
  configHash: string;
  tensorsFile: string;
  stoppedByBudget?: boolean;
}

const stateDir = (runDir: string) => `${runDir}/train/checkpoint`;

export function readTrainState(runDir: string): Promise<TrainState | undefined> {
  return readJsonIfExists<TrainState>(`${stateDir(runDir)}/state.json`);
}

/** Write tensors (`name`, `m:name`, `v:name`) then state.json; prune older tensor files. */
export async function writeTrainState(
  runDir: string,
  state: Omit<TrainState, "tensorsFile">,
  tensors: Map<string, HostTensor>,
): Promise<void> {
  const dir = stateDir(runDir);
  const file = `state-${String(state.step).padStart(7, "0")}.safetensors`;
  await writeSafetensors(`${dir}/${file}`, tensors);
  await writeJsonAtomic(`${dir}/state.json`, { ...state, tensorsFile: file });
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith("state-") && e.name !== file) {
      await Deno.remove(`${dir}/${e.name}`).catch(() => {});
    }
  }
}

export async function readTrainTensors(
  runDir: string,
  state: TrainState,
): Promise<SafetensorsFile> {
  return await SafetensorsFile.open(`${stateDir(runDir)}/${state.tensorsFile}`);
}
