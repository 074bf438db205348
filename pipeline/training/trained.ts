/** Load what the train stage wrote (PEFT adapter or full model) back into a GPU encoder. */
import type { ModelConfig } from "../config.ts";
import type { Runtime } from "../gpu/runtime.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { GpuEncoder } from "../model/encoder.ts";
import { loadPeftAdapter } from "../model/peft.ts";
import type { HeadWeights, Tokenizer } from "../model/types.ts";

export interface TrainedModel {
  encoder: GpuEncoder;
  tokenizer: Tokenizer;
  maxLen: number;
}

/** What the run's config says about the model: from a PipelineConfig or a run's config.json. */
export type TrainedModelSpec = Pick<ModelConfig, "mode" | "checkpoint" | "head" | "pooling"> & {
  maxLength: number;
};

export async function loadTrainedModel(
  rt: Runtime,
  spec: TrainedModelSpec,
  runDir: string,
  numLabels: number,
  maxBatch: number,
): Promise<TrainedModel> {
  const full = spec.mode === "full";
  const dir = full ? `${runDir}/train/model` : spec.checkpoint;
  const ckpt = await loadCheckpoint(dir, { keepHeads: full });
  const c = ckpt.config;
  const maxLen = Math.min(spec.maxLength, c.maxPositions - Math.max(0, c.positionOffset));
  const head = { kind: spec.head, numLabels };
  if (full) {
    const w = ckpt.extras.get("classifier.weight"), b = ckpt.extras.get("classifier.bias");
    if (!w || !b) throw new Error(`${dir}: the fine-tuned model has no classifier.* head`);
    const headWeights: HeadWeights = { w, b };
    const encoder = await GpuEncoder.create(rt, c, ckpt.weights, {
      mode: "full",
      head,
      seed: 0,
      maxBatch,
      maxLen,
      headWeights,
      perSample: false,
      pooling: spec.pooling,
    });
    return { encoder, tokenizer: ckpt.tokenizer, maxLen };
  }
  const ad = await loadPeftAdapter(`${runDir}/train/adapter`, c);
  if (!ad.head) throw new Error(`${runDir}/train/adapter: the adapter has no classifier head`);
  const encoder = await GpuEncoder.create(rt, c, ckpt.weights, {
    mode: "lora",
    lora: ad.loraConfig,
    head,
    seed: 0,
    maxBatch,
    maxLen,
    loraWeights: ad.lora,
    headWeights: ad.head,
    perSample: false,
    pooling: spec.pooling,
  });
  return { encoder, tokenizer: ckpt.tokenizer, maxLen };
}
