/**
 * `deno task pretrain --config FILE`: masked-LM pretraining of a small BERT from a YAML recipe
 * (see fixtures/pretrain.yaml and pipeline/model/pretrain_config.ts for the keys).
 */
import { parseArgs } from "node:util";
import { readPretrainConfig } from "../pipeline/model/pretrain_config.ts";
import { runPretrain } from "../pipeline/model/pretrain.ts";
import { ConfigError, DataError } from "../pipeline/errors.ts";

const USAGE = "usage: deno task pretrain --config FILE [--max-steps N]";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      config: { type: "string" },
      "max-steps": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.config) {
    console.error(USAGE);
    return 2;
  }
  try {
    const cfg = await readPretrainConfig(values.config);
    if (values["max-steps"] !== undefined) {
      const n = Number(values["max-steps"]);
      if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--max-steps: not a count: ${n}`);
      cfg.train.maxSteps = n;
    }
    await runPretrain(cfg);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError || e instanceof DataError) {
      console.error(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

Deno.exit(await main());
