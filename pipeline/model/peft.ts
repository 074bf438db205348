/**
 * LoRA adapters in Hugging Face PEFT's on-disk format, and merging them into the base weights.
 *
 * `adapter_model.safetensors` keys are the PeftModel state-dict keys with the adapter name
 * stripped (what `save_pretrained` writes): `base_model.model.<module>.lora_A.weight` [r, in],
 * `…lora_B.weight` [out, r]. The SEQ_CLS classifier is a `modules_to_save` module and is saved as
 * `base_model.model.classifier.weight` (PEFT drops `modules_to_save.default.` on save; we accept
 * both spellings on import). `target_modules` is a list of module-name suffixes, or — when no list
 * can select exactly our targets — a regex PEFT full-matches against module names.
 */
import type {
  EncoderConfig,
  EncoderWeights,
  HeadWeights,
  HostTensor,
  LayerWeights,
  Linear,
  LoraAdapter,
  LoraConfig,
  LoraTarget,
  LoraWeights,
  ModelType,
} from "./types.ts";
import { LORA_TARGETS } from "./types.ts";
import { CheckpointError, SafetensorsFile, writeSafetensors } from "./safetensors.ts";
import { basePrefix, layerModuleNames } from "./checkpoint.ts";
import { writeJsonAtomic } from "../fs.ts";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const ROOT = "base_model.model.";

const LAYER_FIELD: Record<LoraTarget, keyof LayerWeights> = {
  query: "query",
  key: "key",
  value: "value",
  "attention.output": "attnOut",
  intermediate: "inter",
  output: "out",
};

/** HF module name of `target` in layer (ALBERT: group) `i`, with the base prefix. */
export function targetModuleName(
  mt: ModelType,
  i: number,
  target: LoraTarget,
  prefix = basePrefix(mt),
): string {
  const names = layerModuleNames(mt, prefix, i);
  return names[LAYER_FIELD[target] as keyof typeof names];
}

/** PEFT's matching rule: a list entry matches a name equal to it or ending in `.entry`; a string is a full-match regex. */
export function peftMatches(
  targetModules: string | readonly string[],
  moduleName: string,
): boolean {
  if (typeof targetModules === "string") {
    return new RegExp(`^(?:${targetModules})$`).test(moduleName);
  }
  return targetModules.some((t) => moduleName === t || moduleName.endsWith(`.${t}`));
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `target_modules` that selects exactly `targets` (checked against every target module name). */
export function peftTargetModules(
  mt: ModelType,
  targets: readonly LoraTarget[],
): string | string[] {
  // Suffixes after the layer index: the shortest unambiguous list entry per target.
  const suffix = (t: LoraTarget) => {
    const full = targetModuleName(mt, 0, t, "");
    return full.replace(/^encoder\.(layer\.0|albert_layer_groups\.0\.albert_layers\.0)\./, "");
  };
  // PEFT's customary entries: bare "query"/"key"/"value", else the path after the layer.
  const short = (t: LoraTarget) => t === "query" || t === "key" || t === "value" ? t : suffix(t);
  const list = [...new Set(targets.map(short))];
  if (selectedTargets(mt, list).join() === [...targets].sort().join()) return list;
  const layerRe = mt === "albert"
    ? String.raw`.*\.albert_layer_groups\.\d+\.albert_layers\.0\.`
    : String.raw`.*\.layer\.\d+\.`;
  return `${layerRe}(?:${targets.map((t) => escapeRe(suffix(t))).join("|")})`;
}

/** Which of our targets a PEFT `target_modules` selects (judged on layer 0's module names). */
export function selectedTargets(
  mt: ModelType,
  targetModules: string | readonly string[],
): LoraTarget[] {
  return LORA_TARGETS.filter((t) => peftMatches(targetModules, targetModuleName(mt, 0, t)))
    .slice().sort();
}

export interface PeftSaveOptions {
  /** adapter_config.json base_model_name_or_path (e.g. the HF id or folder of the base model). */
  baseModelNameOrPath?: string | null;
  /** Classification head, saved as a `modules_to_save` module named `classifier`. */
  head?: HeadWeights;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function parseKey(key: string): { layer: number; target: LoraTarget } {
  const dot = key.indexOf(".");
  const layer = Number(key.slice(0, dot));
  const target = key.slice(dot + 1) as LoraTarget;
  if (
    dot < 0 || !Number.isInteger(layer) || !(LORA_TARGETS as readonly string[]).includes(target)
  ) {
    throw new CheckpointError(`LoRA weights: key "${key}" is not "<layer>.<target>"`);
  }
  return { layer, target };
}

/** In/out sizes of the linear that `target` adapts. */
function linearDims(c: EncoderConfig, target: LoraTarget): { inp: number; out: number } {
  if (target === "intermediate") return { inp: c.hiddenSize, out: c.intermediateSize };
  if (target === "output") return { inp: c.intermediateSize, out: c.hiddenSize };
  return { inp: c.hiddenSize, out: c.hiddenSize };
}

function checkAdapter(
  c: EncoderConfig,
  lc: LoraConfig,
  key: string,
  a: LoraAdapter,
  where: string,
): void {
  const { layer, target } = parseKey(key);
  const n = c.modelType === "albert" ? c.numHiddenGroups : c.numLayers;
  if (layer >= n) {
    throw new CheckpointError(`${where}: adapter "${key}" but the model has ${n} layers`);
  }
  if (!lc.targets.includes(target)) {
    throw new CheckpointError(
      `${where}: adapter "${key}" targets ${target}, not in config targets`,
    );
  }
  const { inp, out } = linearDims(c, target);
  const ok = (t: HostTensor, s: number[], what: string) => {
    if (t.shape.join() !== s.join() || t.data.length !== s[0] * s[1]) {
      throw new CheckpointError(
        `${where}: ${what} of "${key}": expected ${shapeStr(s)}, found ${shapeStr(t.shape)}`,
      );
    }
  };
  ok(a.a, [lc.rank, inp], "lora_A");
  ok(a.b, [out, lc.rank], "lora_B");
}

/** The adapter_config.json object. */
export function peftAdapterConfig(
  c: EncoderConfig,
  lc: LoraConfig,
  opts: PeftSaveOptions = {},
): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "SEQ_CLS",
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    revision: null,
    r: lc.rank,
    lora_alpha: lc.alpha,
    lora_dropout: lc.dropout,
    target_modules: peftTargetModules(c.modelType, lc.targets),
    bias: "none",
    fan_in_fan_out: false,
    modules_to_save: opts.head ? ["classifier"] : null,
    inference_mode: true,
    init_lora_weights: true,
    use_rslora: false,
    use_dora: false,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
}

/** Adapter tensors under PEFT key names. */
export function peftTensors(
  c: EncoderConfig,
  lc: LoraConfig,
  lora: LoraWeights,
  head?: HeadWeights,
): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const keys = [...lora.keys()].sort((x, y) => {
    const a = parseKey(x), b = parseKey(y);
    return a.layer - b.layer || LORA_TARGETS.indexOf(a.target) - LORA_TARGETS.indexOf(b.target);
  });
  for (const key of keys) {
    const ad = lora.get(key)!;
    checkAdapter(c, lc, key, ad, "LoRA weights");
    const { layer, target } = parseKey(key);
    const mod = `${ROOT}${targetModuleName(c.modelType, layer, target)}`;
    out.set(`${mod}.lora_A.weight`, ad.a);
    out.set(`${mod}.lora_B.weight`, ad.b);
  }
  if (head) {
    if (
      head.w.shape.length !== 2 || head.w.shape[1] !== c.hiddenSize ||
      head.b.shape.join() !== String(head.w.shape[0])
    ) {
      throw new CheckpointError(
        `head: expected [numLabels, ${c.hiddenSize}] + [numLabels], found ${
          shapeStr(head.w.shape)
        } + ${shapeStr(head.b.shape)}`,
      );
    }
    out.set(`${ROOT}classifier.weight`, head.w);
    out.set(`${ROOT}classifier.bias`, head.b);
  }
  return out;
}

/** Write adapter_config.json + adapter_model.safetensors (each atomically). */
export async function savePeftAdapter(
  dir: string,
  c: EncoderConfig,
  lc: LoraConfig,
  lora: LoraWeights,
  opts: PeftSaveOptions = {},
): Promise<string[]> {
  const tensors = peftTensors(c, lc, lora, opts.head);
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(`${dir}/${ADAPTER_WEIGHTS}`, tensors);
  await writeJsonAtomic(`${dir}/${ADAPTER_CONFIG}`, peftAdapterConfig(c, lc, opts));
  return [ADAPTER_WEIGHTS, ADAPTER_CONFIG];
}

export interface LoadedPeftAdapter {
  loraConfig: LoraConfig;
  lora: LoraWeights;
  head?: HeadWeights;
  baseModelNameOrPath: string | null;
}

/** Read a PEFT LoRA adapter folder for a base model with config `c`. */
export async function loadPeftAdapter(dir: string, c: EncoderConfig): Promise<LoadedPeftAdapter> {
  const cfgFile = `${dir}/${ADAPTER_CONFIG}`;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(await Deno.readTextFile(cfgFile));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${cfgFile}: file not found`);
    throw new CheckpointError(`${cfgFile}: not valid JSON (${(e as Error).message})`);
  }
  const fail = (field: string, msg: string): never => {
    throw new CheckpointError(`${cfgFile}: field "${field}" ${msg}`);
  };
  if (j.peft_type !== "LORA") {
    fail("peft_type", `is ${JSON.stringify(j.peft_type)}; only "LORA" is supported`);
  }
  const r = j.r;
  if (!Number.isSafeInteger(r) || (r as number) < 1) {
    fail("r", `must be a positive integer, found ${JSON.stringify(r)}`);
  }
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !(alpha > 0)) fail("lora_alpha", `must be a positive number`);
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== "number" || dropout < 0 || dropout >= 1) {
    fail("lora_dropout", "must be in [0, 1)");
  }
  for (
    const [k, ok] of [["use_rslora", false], ["use_dora", false], [
      "fan_in_fan_out",
      false,
    ]] as const
  ) {
    if ((j[k] ?? false) !== ok) fail(k, `is ${JSON.stringify(j[k])}; only ${ok} is supported`);
  }
  for (const k of ["rank_pattern", "alpha_pattern"]) {
    const v = j[k];
    if (v && typeof v === "object" && Object.keys(v).length > 0) {
      fail(k, "must be empty (per-module ranks are not supported)");
    }
  }
  if ((j.bias ?? "none") !== "none") {
    fail("bias", `is ${JSON.stringify(j.bias)}; only "none" is supported`);
  }
  const tm = j.target_modules;
  if (!(typeof tm === "string" || (Array.isArray(tm) && tm.every((t) => typeof t === "string")))) {
    fail("target_modules", "must be a list of module names or a regex string");
  }
  const targets = selectedTargets(c.modelType, tm as string | string[]);
  if (targets.length === 0) {
    fail("target_modules", `${JSON.stringify(tm)} selects none of the encoder's linears`);
  }
  const loraConfig: LoraConfig = {
    targets,
    rank: r as number,
    alpha: alpha as number,
    dropout: dropout as number,
  };

  const f = await SafetensorsFile.open(`${dir}/${ADAPTER_WEIGHTS}`);
  const where = f.path;
  const prefixes = [basePrefix(c.modelType), ""];
  const lora: LoraWeights = new Map();
  const used = new Set<string>();
  const n = c.modelType === "albert" ? c.numHiddenGroups : c.numLayers;
  for (let i = 0; i < n; i++) {
    for (const t of targets) {
      const found = prefixes.map((p) => `${ROOT}${targetModuleName(c.modelType, i, t, p)}`)
        .find((m) => f.has(`${m}.lora_A.weight`));
      if (!found) {
        throw new CheckpointError(
          `${where}: tensor "${ROOT}${
            targetModuleName(c.modelType, i, t)
          }.lora_A.weight" is missing`,
        );
      }
      const get = (name: string): HostTensor => {
        if (!f.has(name)) throw new CheckpointError(`${where}: tensor "${name}" is missing`);
        used.add(name);
        return f.tensor(name);
      };
      const ad = { a: get(`${found}.lora_A.weight`), b: get(`${found}.lora_B.weight`) };
      checkAdapter(c, loraConfig, `${i}.${t}`, ad, where);
      lora.set(`${i}.${t}`, ad);
    }
  }
  let head: HeadWeights | undefined;
  for (const stem of [`${ROOT}classifier.`, `${ROOT}classifier.modules_to_save.default.`]) {
    if (f.has(`${stem}weight`)) {
      head = { w: f.tensor(`${stem}weight`), b: f.tensor(`${stem}bias`) };
      used.add(`${stem}weight`).add(`${stem}bias`);
      if (
        head.w.shape.length !== 2 || head.w.shape[1] !== c.hiddenSize ||
        head.b.shape.join() !== String(head.w.shape[0])
      ) {
        throw new CheckpointError(
          `${where}: classifier expected [numLabels, ${c.hiddenSize}] + [numLabels], found ${
            shapeStr(head.w.shape)
          } + ${shapeStr(head.b.shape)}`,
        );
      }
    }
  }
  const unexpected = f.names.filter((x) => !used.has(x));
  if (unexpected.length > 0) {
    throw new CheckpointError(
      `${where}: unexpected tensor(s) ${unexpected.slice(0, 5).map((x) => `"${x}"`).join(", ")}` +
        " (not selected by adapter_config.json target_modules, or not LoRA)",
    );
  }
  const base = j.base_model_name_or_path;
  return { loraConfig, lora, head, baseModelNameOrPath: typeof base === "string" ? base : null };
}

function cloneTensor(t: HostTensor): HostTensor {
  return { data: Float32Array.from(t.data), shape: [...t.shape] };
}
function cloneLinear(l: Linear): Linear {
  return { w: cloneTensor(l.w), b: cloneTensor(l.b) };
}

/**
 * W' = W + (alpha/rank)·B·A for every adapter, into a copy of `weights` (the input is untouched).
 * Accumulates in float64 and rounds once, so the merge adds no error beyond one f32 rounding.
 */
export function mergeLora(
  weights: EncoderWeights,
  lora: LoraWeights,
  lc: LoraConfig,
  config?: EncoderConfig,
): EncoderWeights {
  const out: EncoderWeights = structuredClone(weights);
  const s = lc.alpha / lc.rank;
  for (const [key, ad] of lora) {
    const { layer, target } = parseKey(key);
    const l = out.layers[layer];
    if (!l) {
      throw new CheckpointError(
        `mergeLora: adapter "${key}" but weights have ${out.layers.length} layers`,
      );
    }
    const lin = cloneLinear(l[LAYER_FIELD[target]] as Linear);
    const [O, I] = lin.w.shape;
    if (config) checkAdapter(config, lc, key, ad, "mergeLora");
    if (ad.a.shape.join() !== `${lc.rank},${I}` || ad.b.shape.join() !== `${O},${lc.rank}`) {
      throw new CheckpointError(
        `mergeLora: "${key}": lora_A ${shapeStr(ad.a.shape)} / lora_B ${
          shapeStr(ad.b.shape)
        } do not fit ` +
          `W ${shapeStr(lin.w.shape)} at rank ${lc.rank}`,
      );
    }
    const R = lc.rank, A = ad.a.data, B = ad.b.data, W = lin.w.data;
    const row = new Float64Array(I);
    for (let o = 0; o < O; o++) {
      row.fill(0);
      for (let k = 0; k < R; k++) {
        const bok = B[o * R + k];
        if (bok === 0) continue;
        for (let i = 0; i < I; i++) row[i] += bok * A[k * I + i];
      }
      for (let i = 0; i < I; i++) W[o * I + i] = W[o * I + i] + s * row[i];
    }
    (l as unknown as Record<string, Linear>)[LAYER_FIELD[target]] = lin;
  }
  return out;
}
