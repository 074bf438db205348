/**
 * One YAML file → a validated, typed `PipelineConfig`.
 *
 * The schema below is the single source of truth: validation, defaults (`DEFAULTS`) and the
 * Markdown reference (`configReference()`) are all derived from it, so the README cannot drift
 * from the code. Keys keep their YAML snake_case names in the typed object so that an error, a
 * `--set` override and the documentation all use one name per setting.
 */
import { isMap, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument } from "yaml";
import type { Node as YamlNode } from "yaml";
import { ConfigError } from "./errors.ts";
import { LORA_TARGETS } from "./model/types.ts";
import type { HeadKind, LoraTarget } from "./model/types.ts";
import { CHEXPERT_LABELS as CHEXPERT } from "./data/chexpert.ts";

/** The 14 CheXpert labels in the column order of mimic-cxr-2.0.0-chexpert.csv. */
export const CHEXPERT_LABELS: readonly string[] = CHEXPERT;

/** Report sections the MIMIC-CXR reader can select (names after normalisation). */
export const REPORT_SECTIONS = [
  "findings",
  "impression",
  "indication",
  "comparison",
  "examination",
  "history",
  "technique",
  "last_paragraph",
] as const;
export type ReportSection = typeof REPORT_SECTIONS[number];

export const METRICS = [
  "weighted_f1",
  "macro_f1",
  "micro_f1",
  "per_label",
  "auroc",
  "prior_baseline",
] as const;
export type MetricName = typeof METRICS[number];

export type DataFormat = "mimic-cxr" | "csv" | "jsonl";
export type UncertainPolicy = "positive" | "negative" | "ignore";
export type SplitMode = "auto" | "given" | "random";
export type TrainMode = "full" | "lora" | "dp-lora";

export interface SplitFractions {
  train: number;
  validation: number;
  test: number;
}

export interface SplitConfig {
  /** auto: the source's split (official csv / split column) when it has one, else random. */
  mode: SplitMode;
  fractions: SplitFractions;
  seed: number;
}

export interface DataConfig {
  format: DataFormat;
  /** mimic-cxr: folder holding files/ and the CSVs (absolute after loading). */
  root?: string;
  reports_dir?: string;
  label_csv?: string;
  split_csv?: string;
  /** csv / jsonl: the one file of reports. */
  file?: string;
  sections: ReportSection[];
  text_columns: string[];
  id_column: string;
  patient_column?: string;
  split_column?: string;
  labels: string[];
  uncertain: UncertainPolicy;
  no_finding_rule: boolean;
  split: SplitConfig;
  max_length: number;
  on_error: "fail" | "skip";
}

export interface ModelConfig {
  checkpoint: string;
  mode: TrainMode;
  lora: { targets: LoraTarget[]; rank: number; alpha: number; dropout: number };
  train_layernorm: boolean;
  pooling: "cls" | "mean";
  head: HeadKind;
}

export interface TrainConfig {
  epochs: number;
  batch_size: number;
  physical_batch: number;
  lr: number;
  /** Peak learning rate of the classifier head; absent: `lr`. */
  head_lr?: number;
  schedule: "linear" | "constant";
  warmup_ratio: number;
  /** Decay of the weight average that is validated and exported; 0: the last iterate. */
  ema: number;
  weight_decay: number;
  optimizer: "adamw" | "sgd";
  seed: number;
  max_steps?: number;
}

export interface PrivacyConfig {
  target_epsilon?: number;
  noise_multiplier?: number;
  /** Absent: 1/N^1.1, resolved by `resolveDelta` once N is known. */
  delta?: number;
  max_grad_norm: number;
  accountant: "pld" | "prv" | "rdp";
  unit: "record" | "patient";
  clipping: "flat" | "per-layer";
}

export interface EvaluateConfig {
  threshold: number;
  metrics: MetricName[];
}

/**
 * Per-mode `key.path=value` overrides that `deno task sweep` applies to that mode's runs (after
 * the file, before the command line's --set-full / --set-lora / --set-dp): each mode keeps its own
 * tuned hyper-parameters in the same file. `deno task train` ignores this section.
 */
export interface SweepConfig {
  full: string[];
  lora: string[];
  dp_lora: string[];
}

export interface OutputConfig {
  dir: string;
  merged: boolean;
}

/** Where a config came from; kept so `applyOverrides` can re-validate from the user's own text. */
export interface ConfigSource {
  /** The config file as named by the user (null for configs built from an object). */
  readonly file: string | null;
  /** Folder relative paths resolve against. */
  readonly dir: string;
  /** The user's values before defaults, so derived defaults recompute after an override. */
  readonly raw: Record<string, unknown>;
  /** Line of each key path in the file. */
  readonly lines: Readonly<Record<string, number>>;
  readonly overrides: readonly string[];
}

export interface PipelineConfig {
  data: DataConfig;
  model: ModelConfig;
  train: TrainConfig;
  /** Present iff the file has a privacy section. */
  privacy?: PrivacyConfig;
  evaluate: EvaluateConfig;
  sweep: SweepConfig;
  output: OutputConfig;
  /** Non-fatal findings (e.g. a privacy section that the mode ignores). */
  warnings: string[];
  source: ConfigSource;
}

// ---------------------------------------------------------------------------------------------
// Schema

type Check = (v: unknown) => { ok: true; value: unknown } | { ok: false; expected: string };

interface Leaf {
  kind: "leaf";
  doc: string;
  /** Rendered type for the reference table. */
  type: string;
  check: Check;
  default?: unknown;
  /** Text shown instead of a literal default (derived or resolved later). */
  defaultText?: string;
  required?: boolean;
  /** Relative values resolve against the config file's folder. */
  path?: boolean;
}

interface Section {
  kind: "section";
  doc: string;
  fields: Record<string, Leaf | Section>;
  /** Whole section may be absent (privacy). */
  optional?: boolean;
}

const ok = (value: unknown) => ({ ok: true as const, value });
const bad = (expected: string) => ({ ok: false as const, expected });

function oneOf<T extends string>(values: readonly T[]): Check {
  const expected = `one of ${values.join(" | ")}`;
  return (v) => typeof v === "string" && values.includes(v as T) ? ok(v) : bad(expected);
}
const posInt: Check = (v) =>
  Number.isInteger(v) && (v as number) > 0 ? ok(v) : bad("a positive integer");
const anyInt: Check = (v) =>
  Number.isInteger(v) && Math.abs(v as number) <= Number.MAX_SAFE_INTEGER
    ? ok(v)
    : bad("an integer");
const posNum: Check = (v) =>
  typeof v === "number" && Number.isFinite(v) && v > 0 ? ok(v) : bad("a positive number");
const nonNegNum: Check = (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? ok(v) : bad("a number ≥ 0");
const unitOpen: Check = (v) =>
  typeof v === "number" && v > 0 && v < 1 ? ok(v) : bad("a number in (0, 1)");
const unitHalfOpen: Check = (v) =>
  typeof v === "number" && v >= 0 && v < 1 ? ok(v) : bad("a number in [0, 1)");
const fraction: Check = (v) =>
  typeof v === "number" && v >= 0 && v <= 1 ? ok(v) : bad("a number in [0, 1]");
/** `key.path=value` overrides, parsed as --set parses them (run after the schema exists). */
const overrideList: Check = (v) => {
  const expected = "a list of key.path=value overrides (as for --set)";
  if (!Array.isArray(v)) return bad(expected);
  for (const x of v) {
    if (typeof x !== "string") return bad(`${expected}; got ${show(x)}`);
    const parsed = splitOverride(x);
    if (typeof parsed === "string") return bad(`${expected}; ${parsed}`);
    if (parsed.path.startsWith("sweep.")) return bad(`${expected}; ${parsed.path}: not per mode`);
  }
  return ok([...v]);
};
const bool: Check = (v) => typeof v === "boolean" ? ok(v) : bad("true or false");
const nonEmptyString: Check = (v) =>
  typeof v === "string" && v.trim() !== "" ? ok(v) : bad("a non-empty string");

function listOf(item: Check, itemExpected: string, unique = true): Check {
  const expected = `a non-empty list of ${itemExpected}`;
  return (v) => {
    if (!Array.isArray(v) || v.length === 0) return bad(expected);
    for (const x of v) if (!item(x).ok) return bad(`${expected} (bad item ${show(x)})`);
    if (unique && new Set(v).size !== v.length) return bad(`${expected} without duplicates`);
    return ok([...v]);
  };
}

const leaf = (l: Omit<Leaf, "kind">): Leaf => ({ kind: "leaf", ...l });

const SCHEMA: Section = {
  kind: "section",
  doc: "",
  fields: {
    data: {
      kind: "section",
      doc: "Where the reports and labels are, and how they become examples.",
      fields: {
        format: leaf({
          doc: "Source layout: the MIMIC-CXR folder, or one CSV / JSONL file of reports.",
          type: "mimic-cxr | csv | jsonl",
          check: oneOf(["mimic-cxr", "csv", "jsonl"]),
          required: true,
        }),
        root: leaf({
          doc: "mimic-cxr: folder holding `files/` and the label / split CSVs.",
          type: "path",
          check: nonEmptyString,
          path: true,
        }),
        reports_dir: leaf({
          doc: "mimic-cxr: the `files/pXX/pSUBJECT/sSTUDY.txt` tree.",
          type: "path",
          check: nonEmptyString,
          path: true,
          defaultText: "`<root>/files`",
        }),
        label_csv: leaf({
          doc: "mimic-cxr: CheXpert labels (subject_id, study_id, 14 labels).",
          type: "path",
          check: nonEmptyString,
          path: true,
          defaultText: "`<root>/mimic-cxr-2.0.0-chexpert.csv`",
        }),
        split_csv: leaf({
          doc: "mimic-cxr: official split (dicom_id, study_id, subject_id, split).",
          type: "path",
          check: nonEmptyString,
          path: true,
          defaultText: "`<root>/mimic-cxr-2.0.0-split.csv` when it exists",
        }),
        file: leaf({
          doc: "csv / jsonl: the file of reports, one report per row / line.",
          type: "path",
          check: nonEmptyString,
          path: true,
        }),
        sections: leaf({
          doc:
            "mimic-cxr: report sections joined in this order; a report with none of them falls " +
            "back to impression → findings → last paragraph → comparison → whole text.",
          type: `list of ${REPORT_SECTIONS.join(" | ")}`,
          check: listOf(oneOf(REPORT_SECTIONS), "section names"),
          default: ["findings", "impression"],
        }),
        text_columns: leaf({
          doc: "csv / jsonl: text columns joined in this order.",
          type: "list of strings",
          check: listOf(nonEmptyString, "column names"),
          default: ["text"],
        }),
        id_column: leaf({
          doc: "csv / jsonl: unique record id column.",
          type: "string",
          check: nonEmptyString,
          default: "id",
        }),
        patient_column: leaf({
          doc: "csv / jsonl: patient id column; without it every record is its own patient.",
          type: "string",
          check: nonEmptyString,
        }),
        split_column: leaf({
          doc: "csv / jsonl: split column (train / validate|validation|val / test), used as is.",
          type: "string",
          check: nonEmptyString,
        }),
        labels: leaf({
          doc: "Label columns (values 1 / 0 / −1 / blank).",
          type: "list of strings",
          check: listOf(nonEmptyString, "label names"),
          default: [...CHEXPERT_LABELS],
          defaultText: "the 14 CheXpert labels",
        }),
        uncertain: leaf({
          doc: "Uncertain (−1) labels: U-Ones, U-Zeros, or masked out of loss and metrics.",
          type: "positive | negative | ignore",
          check: oneOf(["positive", "negative", "ignore"]),
          default: "ignore",
        }),
        no_finding_rule: leaf({
          doc: "Recompute `No Finding` = 1 iff no other label except Support Devices is 1 or −1.",
          type: "bool",
          check: bool,
          default: false,
        }),
        split: {
          kind: "section",
          doc: "Train / validation / test split.",
          fields: {
            mode: leaf({
              doc: "auto: the source's split when present, else random by patient.",
              type: "auto | given | random",
              check: oneOf(["auto", "given", "random"]),
              default: "auto",
            }),
            fractions: {
              kind: "section",
              doc: "Patient fractions of a random split (must sum to 1).",
              fields: {
                train: leaf({ doc: "", type: "number", check: fraction, default: 0.8 }),
                validation: leaf({ doc: "", type: "number", check: fraction, default: 0.1 }),
                test: leaf({ doc: "", type: "number", check: fraction, default: 0.1 }),
              },
            },
            seed: leaf({
              doc: "Seed of the random patient split (independent of train.seed).",
              type: "integer",
              check: anyInt,
              default: 1234,
            }),
          },
        },
        max_length: leaf({
          doc: "Tokens per example including special tokens (longer reports are truncated).",
          type: "integer ≥ 3",
          check: (v) => Number.isInteger(v) && (v as number) >= 3 ? ok(v) : bad("an integer ≥ 3"),
          default: 128,
        }),
        on_error: leaf({
          doc: "Bad rows: stop with an error, or skip and count them in the manifest.",
          type: "fail | skip",
          check: oneOf(["fail", "skip"]),
          default: "fail",
        }),
      },
    },
    model: {
      kind: "section",
      doc: "Checkpoint and what is trained.",
      fields: {
        checkpoint: leaf({
          doc: "HF checkpoint folder (config.json, model.safetensors, vocab/tokenizer).",
          type: "path",
          check: nonEmptyString,
          path: true,
          required: true,
        }),
        mode: leaf({
          doc: "full fine-tuning, LoRA, or differentially private LoRA.",
          type: "full | lora | dp-lora",
          check: oneOf(["full", "lora", "dp-lora"]),
          default: "dp-lora",
        }),
        lora: {
          kind: "section",
          doc: "LoRA adapters (lora and dp-lora modes).",
          fields: {
            targets: leaf({
              doc: "Linear modules that get an adapter.",
              type: `list of ${LORA_TARGETS.join(" | ")}`,
              check: listOf(oneOf(LORA_TARGETS), "module names"),
              default: ["query", "value"],
            }),
            rank: leaf({ doc: "Adapter rank r.", type: "integer", check: posInt, default: 8 }),
            alpha: leaf({
              doc: "Scale alpha (update × alpha/r).",
              type: "number",
              check: posNum,
              default: 16,
            }),
            dropout: leaf({
              doc: "Dropout on the adapter input.",
              type: "number in [0, 1)",
              check: unitHalfOpen,
              default: 0.05,
            }),
          },
        },
        train_layernorm: leaf({
          doc: "Also train LayerNorm gains and biases (LoRA modes).",
          type: "bool",
          check: bool,
          default: false,
        }),
        pooling: leaf({
          doc: "Sentence features for the head: `cls` ([CLS], through the pooler when the " +
            "checkpoint has one, as HF does) or `mean` (mean of the token states; suits " +
            "MLM-only checkpoints, whose [CLS] was never trained).",
          type: "cls | mean",
          check: oneOf(["cls", "mean"] as const),
          default: "cls",
        }),
        head: leaf({
          doc: "multi-label: one sigmoid per label; multi-class: one softmax.",
          type: "multi-label | multi-class",
          check: oneOf(["multi-label", "multi-class"]),
          default: "multi-label",
        }),
      },
    },
    train: {
      kind: "section",
      doc: "Optimisation.",
      fields: {
        epochs: leaf({
          doc: "Passes over the training split.",
          type: "integer",
          check: posInt,
          default: 3,
        }),
        batch_size: leaf({
          doc: "Logical batch; for dp-lora the expected Poisson batch in privacy units (q = " +
            "batch_size / N, N = reports, or patients with privacy.unit: patient).",
          type: "integer",
          check: posInt,
          default: 32,
        }),
        physical_batch: leaf({
          doc: "Records run on the device at once (memory knob only): ≤ batch_size in the " +
            "non-private modes; under DP each Poisson batch is split into micro-batches of at " +
            "most this many records.",
          type: "integer",
          check: posInt,
          defaultText: "min(16, batch_size)",
        }),
        lr: leaf({ doc: "Peak learning rate.", type: "number", check: posNum, default: 5e-4 }),
        head_lr: leaf({
          doc: "Peak learning rate of the classifier head (head.w, head.b), same schedule; the " +
            "encoder's tensors (LoRA, or all in full mode) keep lr. Under DP with Adam every " +
            "coordinate moves about lr per step whatever the noise, so an lr that keeps noise " +
            "from eroding the encoder is too slow for a head that starts from zero.",
          type: "number",
          check: posNum,
          defaultText: "lr",
        }),
        schedule: leaf({
          doc: "linear: warm-up then linear decay to 0; constant.",
          type: "linear | constant",
          check: oneOf(["linear", "constant"]),
          default: "linear",
        }),
        warmup_ratio: leaf({
          doc: "Fraction of steps spent warming up (linear schedule).",
          type: "number in [0, 1)",
          check: unitHalfOpen,
          default: 0.06,
        }),
        ema: leaf({
          doc: "Validate and export an exponential moving average of the trained weights " +
            "(decay min(ema, (1 + t)/(10 + t)) at step t) instead of the last iterate; 0 turns " +
            "it off. Under DP it averages out the noise's random walk; it is post-processing " +
            "of the noisy iterates, so ε is unchanged.",
          type: "number in [0, 1)",
          check: unitHalfOpen,
          default: 0,
        }),
        weight_decay: leaf({
          doc: "Decoupled weight decay.",
          type: "number",
          check: nonNegNum,
          default: 0.01,
        }),
        optimizer: leaf({
          doc: "Optimizer.",
          type: "adamw | sgd",
          check: oneOf(["adamw", "sgd"]),
          default: "adamw",
        }),
        seed: leaf({
          doc: "Seed of initialisation and dropout (not of DP noise).",
          type: "integer",
          check: anyInt,
          default: 42,
        }),
        max_steps: leaf({
          doc: "Stop after this many optimizer steps (overrides epochs).",
          type: "integer",
          check: posInt,
        }),
      },
    },
    privacy: {
      kind: "section",
      optional: true,
      doc: "Differential privacy (required by dp-lora). Give target_epsilon or noise_multiplier.",
      fields: {
        target_epsilon: leaf({
          doc: "Calibrate σ so that the run spends at most this ε at δ.",
          type: "number",
          check: posNum,
        }),
        noise_multiplier: leaf({
          doc: "σ given directly (ε is then reported).",
          type: "number",
          check: posNum,
        }),
        delta: leaf({
          doc: "δ; must be well below 1/N (a warning is given when it is not).",
          type: "number in (0, 1)",
          check: unitOpen,
          defaultText: "1/N^1.1 (N = training records or patients)",
        }),
        max_grad_norm: leaf({
          doc: "Clipping bound C per unit.",
          type: "number",
          check: posNum,
          default: 1.0,
        }),
        accountant: leaf({
          doc: "Accountant whose ε is reported (RDP is always shown beside it).",
          type: "pld | prv | rdp",
          check: oneOf(["pld", "prv", "rdp"]),
          default: "pld",
        }),
        unit: leaf({
          doc: "Privacy unit: one record, or all records of one patient.",
          type: "record | patient",
          check: oneOf(["record", "patient"]),
          default: "record",
        }),
        clipping: leaf({
          doc: "flat: one bound over all parameters; per-layer: C split across layers.",
          type: "flat | per-layer",
          check: oneOf(["flat", "per-layer"]),
          default: "flat",
        }),
      },
    },
    evaluate: {
      kind: "section",
      doc: "Test-set evaluation.",
      fields: {
        threshold: leaf({
          doc: "Probability above which a label is predicted positive.",
          type: "number in (0, 1)",
          check: unitOpen,
          default: 0.5,
        }),
        metrics: leaf({
          doc: "Metrics written to metrics.json.",
          type: `list of ${METRICS.join(" | ")}`,
          check: listOf(oneOf(METRICS), "metric names"),
          default: [...METRICS],
        }),
      },
    },
    sweep: {
      kind: "section",
      doc: "Per-mode overrides for `deno task sweep` (ignored by `deno task train`): each mode's " +
        "runs get these `key.path=value` settings, so full fine-tuning, LoRA and DP-LoRA each " +
        "train with their own tuned hyper-parameters on the same data.",
      fields: {
        full: leaf({
          doc: "Overrides for the full fine-tuning runs (e.g. `[train.lr=3e-4]`).",
          type: "list of key.path=value",
          check: overrideList,
          default: [],
        }),
        lora: leaf({
          doc: "Overrides for the non-private LoRA runs.",
          type: "list of key.path=value",
          check: overrideList,
          default: [],
        }),
        dp_lora: leaf({
          doc: "Overrides for the DP-LoRA runs (privacy.target_epsilon comes from --epsilons).",
          type: "list of key.path=value",
          check: overrideList,
          default: [],
        }),
      },
    },
    output: {
      kind: "section",
      doc: "Artifacts.",
      fields: {
        dir: leaf({
          doc: "Run folder (data cache, checkpoints, ledger, reports).",
          type: "path",
          check: nonEmptyString,
          path: true,
          default: "run",
        }),
        merged: leaf({
          doc: "LoRA modes: also write `train/merged/`, the base checkpoint with the adapter " +
            "merged in (W + α/r·B·A) and the head, in HF layout.",
          type: "bool",
          check: bool,
          default: false,
        }),
      },
    },
  },
};

// ---------------------------------------------------------------------------------------------
// Defaults and reference

function defaultsOf(section: Section): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(section.fields)) {
    if (f.kind === "section") out[k] = defaultsOf(f);
    else if (f.default !== undefined) out[k] = structuredClone(f.default);
  }
  return out;
}

/** Every literal default, nested as in the file (derived defaults are documented, not listed). */
export const DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze(defaultsOf(SCHEMA));

/** The configuration reference as Markdown (one table per section), for the README. */
export function configReference(): string {
  const lines: string[] = ["# Configuration reference", ""];
  const walk = (s: Section, prefix: string) => {
    const leaves = Object.entries(s.fields).filter(([, f]) => f.kind === "leaf") as [
      string,
      Leaf,
    ][];
    if (leaves.length > 0) {
      lines.push(`## \`${prefix}\``, "");
      if (s.doc) lines.push(s.doc + (s.optional ? " (optional section)" : ""), "");
      lines.push("| key | type | default | meaning |", "|---|---|---|---|");
      for (const [k, f] of leaves) {
        const def = f.required ? "**required**" : f.defaultText ??
          (f.default === undefined ? "—" : `\`${JSON.stringify(f.default)}\``);
        lines.push(`| \`${prefix}.${k}\` | ${f.type.replaceAll("|", "\\|")} | ${def} | ${f.doc} |`);
      }
      lines.push("");
    }
    for (const [k, f] of Object.entries(s.fields)) {
      if (f.kind === "section") walk(f, prefix ? `${prefix}.${k}` : k);
    }
  };
  for (const [k, f] of Object.entries(SCHEMA.fields)) walk(f as Section, k);
  lines.push(
    "Cross-field rules: dp-lora needs a privacy section with exactly one of target_epsilon and " +
      "noise_multiplier; physical_batch ≤ batch_size (non-private modes); split fractions sum " +
      "to 1; mimic-cxr needs data.root, csv/jsonl need data.file; privacy.unit patient needs " +
      "patients (mimic-cxr, or data.patient_column).",
    "",
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Errors with locations

function show(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v) || typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

function allLeafPaths(s: Section, prefix = ""): string[] {
  const out: string[] = [];
  for (const [k, f] of Object.entries(s.fields)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (f.kind === "section") out.push(p, ...allLeafPaths(f, p));
    else out.push(p);
  }
  return out;
}

function didYouMean(key: string, siblings: string[], parentPath: string): string {
  let best = "", bestD = Infinity;
  for (const s of siblings) {
    const d = editDistance(key.toLowerCase(), s.toLowerCase());
    if (d < bestD) [best, bestD] = [s, d];
  }
  if (bestD <= Math.max(2, Math.floor(key.length / 3))) {
    return ` (did you mean ${parentPath ? parentPath + "." : ""}${best}?)`;
  }
  // The key may belong to another section (e.g. `rank` under train instead of model.lora).
  const elsewhere = allLeafPaths(SCHEMA).filter((p) => p.split(".").pop() === key);
  if (elsewhere.length > 0) return ` (did you mean ${elsewhere.join(" or ")}?)`;
  return ` (known keys here: ${siblings.join(", ")})`;
}

/** Turns a key path into the prefix of an error message (`file:line` or `--set …`). */
type Locator = (path: string) => string;

class Validator {
  warnings: string[] = [];
  constructor(private locate: Locator, private dir: string) {}

  fail(path: string, msg: string): never {
    throw new ConfigError(`${this.locate(path)} ${path}: ${msg}`);
  }

  section(
    s: Section,
    raw: unknown,
    path: string,
  ): Record<string, unknown> {
    if (raw !== null && raw !== undefined && (typeof raw !== "object" || Array.isArray(raw))) {
      this.fail(path || "(top level)", `expected a mapping of keys, got ${show(raw)}`);
    }
    const obj = (raw ?? {}) as Record<string, unknown>;
    const keys = Object.keys(s.fields);
    for (const k of Object.keys(obj)) {
      if (!(k in s.fields)) {
        const p = path ? `${path}.${k}` : k;
        this.fail(p, `unknown key${didYouMean(k, keys, path)}`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, f] of Object.entries(s.fields)) {
      const p = path ? `${path}.${k}` : k;
      const v = obj[k];
      if (f.kind === "section") {
        if (f.optional && !(k in obj)) continue;
        out[k] = this.section(f, v, p);
        continue;
      }
      if (v === undefined || v === null) {
        if (f.required) this.fail(p, `missing required key: ${f.doc}`);
        if (f.default !== undefined) {
          const d = structuredClone(f.default);
          out[k] = f.path ? resolvePath(this.dir, d as string) : d;
        }
        continue;
      }
      const r = f.check(v);
      if (!r.ok) this.fail(p, `expected ${r.expected}, got ${show(v)}`);
      out[k] = f.path ? resolvePath(this.dir, r.value as string) : r.value;
    }
    return out;
  }
}

function resolvePath(dir: string, p: string): string {
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p)) return p;
  const joined = `${dir.replace(/[\\/]+$/, "")}/${p}`;
  // Normalise "." and ".." so that cache keys and messages show one spelling per file.
  const parts: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "." || (seg === "" && parts.length > 0)) continue;
    if (seg === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else parts.push(seg);
  }
  return parts.join("/") || "/";
}

function crossChecks(v: Validator, c: PipelineConfig, raw: Record<string, unknown>): void {
  const d = c.data;
  if (d.format === "mimic-cxr") {
    if (!d.root) {
      v.fail("data.root", "missing required key: format mimic-cxr needs the MIMIC-CXR folder");
    }
  } else if (!d.file) {
    v.fail("data.file", `missing required key: format ${d.format} needs the file of reports`);
  }
  const fr = d.split.fractions;
  const sum = fr.train + fr.validation + fr.test;
  if (Math.abs(sum - 1) > 1e-9) {
    v.fail("data.split.fractions", `train + validation + test must be 1, got ${sum}`);
  }
  if (fr.train === 0) v.fail("data.split.fractions.train", "expected a fraction > 0, got 0");
  const rawTrain = (raw.train ?? {}) as Record<string, unknown>;
  if (rawTrain.physical_batch === undefined || rawTrain.physical_batch === null) {
    c.train.physical_batch = Math.min(16, c.train.batch_size);
  } else if (c.model.mode !== "dp-lora" && c.train.physical_batch > c.train.batch_size) {
    // Under DP batch_size is an expected count of units (patients hold several reports) and a
    // Poisson batch has no fixed size: physical_batch only caps the records per micro-batch.
    v.fail(
      "train.physical_batch",
      `must be ≤ train.batch_size (${c.train.batch_size}), got ${c.train.physical_batch}`,
    );
  }
  const p = c.privacy;
  if (c.model.mode === "dp-lora") {
    if (!p) {
      v.fail("privacy", "missing required section: model.mode dp-lora needs a privacy section");
    }
    const hasEps = p.target_epsilon !== undefined, hasSigma = p.noise_multiplier !== undefined;
    if (hasEps && hasSigma) {
      v.fail(
        "privacy.noise_multiplier",
        "give either privacy.target_epsilon or privacy.noise_multiplier, not both",
      );
    }
    if (!hasEps && !hasSigma) {
      v.fail(
        "privacy",
        "missing required key: give privacy.target_epsilon or privacy.noise_multiplier",
      );
    }
    if (p.unit === "patient" && d.format !== "mimic-cxr" && !d.patient_column) {
      v.fail("privacy.unit", "patient needs data.patient_column (which column names the patient)");
    }
  } else if (p) {
    v.warnings.push(
      `privacy section ignored: model.mode is ${c.model.mode}, which trains WITHOUT privacy`,
    );
  }
  if (c.model.head === "multi-class" && d.uncertain === "ignore") {
    // A masked label has no defined class, so a softmax target cannot be formed.
    v.fail("data.uncertain", "ignore cannot be used with model.head multi-class");
  }
}

function validate(
  raw: unknown,
  locate: Locator,
  source: Omit<ConfigSource, "raw">,
): PipelineConfig {
  const v = new Validator(locate, source.dir);
  const obj = v.section(SCHEMA, raw, "") as unknown as PipelineConfig;
  obj.warnings = v.warnings;
  crossChecks(v, obj, (raw ?? {}) as Record<string, unknown>);
  obj.source = { ...source, raw: structuredClone((raw ?? {}) as Record<string, unknown>) };
  return obj;
}

// ---------------------------------------------------------------------------------------------
// Loading

function lineMap(root: YamlNode | null, lc: LineCounter): Record<string, number> {
  const lines: Record<string, number> = {};
  const walk = (n: unknown, path: string) => {
    if (!isMap(n)) return;
    for (const pair of n.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const p = path ? `${path}.${key}` : key;
      const keyNode = pair.key as YamlNode | null;
      const valNode = pair.value as YamlNode | null;
      // Point at the value when it is a scalar on the line (that is what is wrong), else the key.
      const at = (isScalar(valNode) || isSeq(valNode)) && valNode?.range
        ? valNode.range[0]
        : keyNode?.range?.[0];
      if (at !== undefined) lines[p] = lc.linePos(at).line;
      walk(valNode, p);
    }
  };
  walk(root, "");
  return lines;
}

function fileLocator(file: string, lines: Record<string, number>): Locator {
  return (path) => {
    // A missing key is reported at its closest present ancestor.
    let p = path;
    while (p && lines[p] === undefined) p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "";
    return `${file}:${p ? lines[p] : 1}`;
  };
}

/** Parse and validate config text. `file` names it in errors; `dir` anchors relative paths. */
export function parseConfig(text: string, file: string, dir: string): PipelineConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
    throw new ConfigError(`${file}:${line}: YAML syntax error: ${e.message.split("\n")[0]}`);
  }
  const lines = lineMap(doc.contents as YamlNode | null, lc);
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  return validate(raw, fileLocator(file, lines), { file, dir, lines, overrides: [] });
}

/** Read, parse and validate a config file; relative paths resolve against its folder. */
export async function loadConfig(path: string): Promise<PipelineConfig> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new ConfigError(`${path}: config file not found`);
    if (e instanceof TypeError) throw new ConfigError(`${path}: config file is not UTF-8 text`);
    throw new ConfigError(`${path}: cannot read config file: ${(e as Error).message}`);
  }
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  return parseConfig(text, path, dir);
}

/** Validate a config given as a plain object (library use); errors name `<object>`. */
export function configFromObject(raw: Record<string, unknown>, dir = "."): PipelineConfig {
  return validate(raw, () => "<object>", { file: null, dir, lines: {}, overrides: [] });
}

const OVERRIDE_PATHS = new Set(allLeafPaths(SCHEMA));

/**
 * Apply `--set key.path=value` overrides (values parsed as YAML scalars or flow lists) and
 * re-validate the whole config, so derived defaults and cross-field rules see the new value.
 */
/**
 * `key.path=value` → its parts, or the error text (`<what>: <why>`, with a did-you-mean hint for
 * an unknown key). Shared by --set and the file's `sweep` lists.
 */
function splitOverride(s: string): { path: string; text: string } | string {
  const eq = s.indexOf("=");
  if (eq <= 0) return `${s}: expected key.path=value`;
  const path = s.slice(0, eq).trim(), text = s.slice(eq + 1);
  if (!OVERRIDE_PATHS.has(path)) {
    const parts = path.split(".");
    const parent = parts.slice(0, -1).join(".");
    const siblings = [...OVERRIDE_PATHS].filter((p) =>
      p.startsWith(parent ? parent + "." : "") && p.split(".").length === parts.length
    ).map((p) => p.split(".").pop()!);
    const hint = siblings.length > 0 ? didYouMean(parts[parts.length - 1], siblings, parent) : "";
    return `${path}: unknown key${hint}`;
  }
  return { path, text };
}

export function applyOverrides(config: PipelineConfig, sets: readonly string[]): PipelineConfig {
  const raw = structuredClone(config.source.raw);
  const setPaths = new Set<string>();
  for (const s of sets) {
    const parsed = splitOverride(s);
    if (typeof parsed === "string") throw new ConfigError(`--set ${parsed}`);
    const { path, text } = parsed;
    let value: unknown;
    try {
      value = parseYaml(text);
    } catch (e) {
      throw new ConfigError(
        `--set ${path}: cannot parse value ${JSON.stringify(text)}: ${(e as Error).message}`,
      );
    }
    let node = raw;
    const parts = path.split(".");
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (next === null || next === undefined || typeof next !== "object" || Array.isArray(next)) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
    setPaths.add(path);
  }
  const base: Locator = config.source.file
    ? fileLocator(config.source.file, config.source.lines as Record<string, number>)
    : () => "<object>";
  const locate: Locator = (path) => {
    for (const p of setPaths) if (p === path || p.startsWith(path + ".")) return "--set";
    return base(path);
  };
  return validate(raw, locate, {
    file: config.source.file,
    dir: config.source.dir,
    lines: config.source.lines,
    overrides: [...config.source.overrides, ...sets],
  });
}

/**
 * δ for N training units: the configured value, else N^-1.1. Warns when δ ≥ 1/N, where a
 * mechanism that publishes one whole record would still satisfy the definition.
 */
export function resolveDelta(
  privacy: PrivacyConfig,
  n: number,
): { delta: number; warnings: string[] } {
  if (!Number.isInteger(n) || n <= 0) {
    throw new ConfigError(`privacy.delta: cannot resolve for ${n} training units`);
  }
  const delta = privacy.delta ?? Math.pow(n, -1.1);
  const warnings = delta >= 1 / n
    ? [
      `privacy.delta = ${delta} is not below 1/N = ${1 / n} (N = ${n}); use ≤ ${
        Math.pow(n, -1.1).toExponential(2)
      }`,
    ]
    : [];
  return { delta, warnings };
}

/** The resolved config (without its source bookkeeping), for writing beside a run. */
export function resolvedConfig(config: PipelineConfig): Record<string, unknown> {
  const { source: _source, warnings: _warnings, ...rest } = config;
  return structuredClone(rest) as Record<string, unknown>;
}
