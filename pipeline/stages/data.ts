/**
 * Data stage: source → sections → labels under the policy → patient split → tokenized with the
 * checkpoint's tokenizer → run/data/{train,validation,test}.bin + manifest.json (content-keyed:
 * an unchanged input reuses the cache, a changed one rebuilds it).
 */
import { prepareData } from "../data/cache.ts";
import type { DataManifest } from "../data/cache.ts";
import { loadTokenizer } from "../model/tokenizer/load.ts";
import type { StageContext } from "./context.ts";

export async function dataStage(ctx: StageContext): Promise<DataManifest> {
  const { config, runDir } = ctx;
  const tokenizer = await loadTokenizer(config.model.checkpoint);
  const manifest = await prepareData(config.data, tokenizer, runDir, config.source.dir);
  const s = manifest.splits;
  ctx.progress({
    stage: "data",
    message: `${manifest.reused ? "reused" : "built"} token cache: train ${s.train.records}, ` +
      `validation ${s.validation.records}, test ${s.test.records} reports` +
      (manifest.skipped.count ? ` (${manifest.skipped.count} rows skipped)` : ""),
  });
  for (const w of manifest.warnings) ctx.progress({ stage: "data", message: `warning: ${w}` });
  return manifest;
}
