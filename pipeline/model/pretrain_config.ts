/**
 * The MLM pretraining recipe (YAML) → validated PretrainConfig. Relative paths resolve against
 * the YAML file's folder (as the pipeline config does). Errors are ConfigError naming the file,
 * the key path and, where the YAML parser knows it, the line.
 */
import { isMap, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "../errors.ts";

export interface PretrainConfig {
  /** Text corpus: one report per paragraph (blank-line separated). */
  corpus: string;
  /** Tokenizer folder (vocab.txt and/or tokenizer.json); with `init`, default: the init folder. */
  tokenizer: string;
  /**
   * Continue from this HF checkpoint folder (domain-adaptive pretraining): its config.json fixes
   * the architecture (so `model` must be absent), its encoder weights and, when present, its MLM
   * head are the starting point (a checkpoint without one gets a freshly initialised head).
   */
  init?: string;
  /** Final HF-layout model folder. */
  output: string;
  /** Per-epoch checkpoints go to `<checkpoints>/epoch-N` (default `<output>.checkpoints`). */
  checkpoints: string;
  /** The architecture of a model trained from scratch (absent with `init`). */
  model?: {
    layers: number;
    hidden: number;
    heads: number;
    intermediate: number;
    maxPositions: number;
    act: "gelu" | "gelu_new" | "relu";
  };
  train: {
    maxLen: number;
    batch: number;
    lr: number;
    warmup: number;
    epochs: number;
    /** Stop after this many optimizer steps (0: run all epochs). */
    maxSteps: number;
    weightDecay: number;
    maskProb: number;
    seed: number;
    /** Reports held out for the evaluation loss (fixed masks), taken before training. */
    holdout: number;
    logEvery: number;
    dtype: "f32" | "f16";
  };
}

type Node = Record<string, unknown>;

class Reader {
  constructor(
    readonly file: string,
    readonly root: Node,
    readonly lines: Map<string, number>,
  ) {}

  fail(key: string, msg: string): never {
    const line = this.lines.get(key);
    throw new ConfigError(`${this.file}${line ? `:${line}` : ""}: ${key}: ${msg}`);
  }

  raw(key: string): unknown {
    let cur: unknown = this.root;
    for (const part of key.split(".")) {
      if (cur === null || typeof cur !== "object") return undefined;
      cur = (cur as Node)[part];
    }
    return cur;
  }

  str(key: string, dflt?: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      this.fail(key, "is required (a string)");
    }
    if (typeof v !== "string" || v === "") this.fail(key, `must be a non-empty string, got ${v}`);
    return v;
  }

  num(key: string, dflt: number | undefined, check: (n: number) => boolean, what: string): number {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      this.fail(key, `is required (${what})`);
    }
    if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) {
      this.fail(key, `must be ${what}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  int(key: string, dflt: number | undefined, min: number): number {
    return this.num(key, dflt, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);
  }

  oneOf<T extends string>(key: string, dflt: T, options: readonly T[]): T {
    const v = this.raw(key) ?? dflt;
    if (!options.includes(v as T)) this.fail(key, `must be one of ${options.join(", ")}`);
    return v as T;
  }
}

const KNOWN: Record<string, readonly string[]> = {
  "": ["corpus", "tokenizer", "init", "output", "checkpoints", "model", "train"],
  model: ["layers", "hidden", "heads", "intermediate", "max_positions", "act"],
  train: [
    "max_len",
    "batch",
    "lr",
    "warmup",
    "epochs",
    "max_steps",
    "weight_decay",
    "mask_prob",
    "seed",
    "holdout",
    "log_every",
    "dtype",
  ],
};

function resolvePath(dir: string, p: string): string {
  return p.startsWith("/") ? p : `${dir}/${p}`;
}

/** Parse recipe text; `file` names it in errors, `dir` anchors relative paths. */
export function parsePretrainConfig(text: string, file: string, dir = "."): PretrainConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? "?"}: YAML: ${e.message}`);
  }
  const lines = new Map<string, number>();
  const walk = (node: unknown, path: string) => {
    if (!isMap(node)) return;
    for (const item of node.items) {
      const k = String((item.key as { value?: unknown })?.value ?? item.key);
      const key = path ? `${path}.${k}` : k;
      const range = (item.key as { range?: [number, number, number] })?.range;
      if (range) lines.set(key, lc.linePos(range[0]).line);
      walk(item.value, key);
    }
  };
  walk(doc.contents, "");
  const root = doc.toJS();
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new ConfigError(`${file}: expected a mapping at the top level`);
  }
  const r = new Reader(file, root as Node, lines);
  for (const [sect, keys] of Object.entries(KNOWN)) {
    const obj = sect ? r.raw(sect) : root;
    if (obj === undefined) continue;
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      r.fail(sect, "must be a mapping");
    }
    for (const k of Object.keys(obj as Node)) {
      if (!keys.includes(k)) {
        r.fail(sect ? `${sect}.${k}` : k, `unknown key (known: ${keys.join(", ")})`);
      }
    }
  }
  const output = resolvePath(dir, r.str("output"));
  const initRaw = r.raw("init") === undefined ? undefined : r.str("init");
  const init = initRaw === undefined ? undefined : resolvePath(dir, initRaw);
  let model: PretrainConfig["model"];
  let maxLen: number;
  if (init !== undefined) {
    if (r.raw("model") !== undefined) {
      r.fail("model", `must be absent with init (the architecture comes from ${initRaw})`);
    }
    // checked against the checkpoint's max_position_embeddings when it is loaded
    maxLen = r.int("train.max_len", 128, 3);
  } else {
    const hidden = r.int("model.hidden", undefined, 1);
    const heads = r.int("model.heads", undefined, 1);
    if (hidden % heads !== 0) r.fail("model.heads", `must divide model.hidden (${hidden})`);
    const maxPositions = r.int("model.max_positions", 512, 2);
    maxLen = r.int("train.max_len", Math.min(128, maxPositions), 3);
    if (maxLen > maxPositions) {
      r.fail("train.max_len", `exceeds model.max_positions ${maxPositions}`);
    }
    model = {
      layers: r.int("model.layers", undefined, 1),
      hidden,
      heads,
      intermediate: r.int("model.intermediate", 4 * hidden, 1),
      maxPositions,
      act: r.oneOf("model.act", "gelu", ["gelu", "gelu_new", "relu"] as const),
    };
  }
  const epochs = r.int("train.epochs", 1, 1);
  return {
    corpus: resolvePath(dir, r.str("corpus")),
    tokenizer: init !== undefined && r.raw("tokenizer") === undefined
      ? init
      : resolvePath(dir, r.str("tokenizer")),
    init,
    output,
    checkpoints: resolvePath(dir, r.str("checkpoints", `${r.str("output")}.checkpoints`)),
    model,
    train: {
      maxLen,
      batch: r.int("train.batch", undefined, 1),
      lr: r.num("train.lr", undefined, (n) => n > 0 && n < 1, "a number in (0, 1)"),
      warmup: r.int("train.warmup", 0, 0),
      epochs,
      maxSteps: r.int("train.max_steps", 0, 0),
      weightDecay: r.num("train.weight_decay", 0.01, (n) => n >= 0 && n < 1, "in [0, 1)"),
      maskProb: r.num("train.mask_prob", 0.15, (n) => n > 0 && n < 1, "in (0, 1)"),
      seed: r.int("train.seed", 0, 0),
      holdout: r.int("train.holdout", 0, 0),
      logEvery: r.int("train.log_every", 10, 1),
      dtype: r.oneOf("train.dtype", "f32", ["f32", "f16"] as const),
    },
  };
}

/** Read and parse a recipe file. */
export async function readPretrainConfig(path: string): Promise<PretrainConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read (${(e as Error).message})`);
  }
  const dir = path.includes("/") ? path.replace(/\/[^/]*$/, "") : ".";
  return parsePretrainConfig(text, path, dir);
}
