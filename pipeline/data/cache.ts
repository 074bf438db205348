/**
 * Token cache under `<runDir>/data/`: tokenize once, store compact binaries per split plus a
 * manifest. The manifest's key is sha256(input digests + tokenizer fingerprint + data settings),
 * so a changed report, label file, tokenizer or setting never silently reuses stale tokens.
 * Binaries are written first and the manifest last (each atomically): the manifest commits them.
 *
 * <split>.bin layout (little-endian):
 *   u32[8] header: magic "DPLD", version, n, numLabels, tokenWidth (2|4), totalTokens, nUnits,
 *                  jsonBytes
 *   u32[n+1] offsets into tokens; tokens as u16/u32 (padded to 4 bytes);
 *   i8[n·numLabels] labels: 0 / 1, −1 = masked (padded to 4 bytes);
 *   u32[n] unit index of each record (patients numbered by first appearance in this split);
 *   UTF-8 JSON {recordIds: string[], units: string[]}.
 */
import type { DataConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import { readJsonIfExists, writeFileAtomic, writeJsonAtomic } from "../fs.ts";
import type { Tokenizer } from "../model/types.ts";
import { loadDataset } from "./dataset.ts";
import { splitRecords } from "./split.ts";
import { sha256Hex } from "./text.ts";
import {
  type InputDigest,
  type LoadedDataset,
  type ReportRecord,
  SPLIT_NAMES,
  type SplitName,
} from "./types.ts";

const MAGIC = 0x444c5044; // "DPLD"
const VERSION = 1;

export interface LabelPrevalence {
  positive: number;
  negative: number;
  masked: number;
  /** positive / (positive + negative); null when every value is masked. */
  rate: number | null;
}

export interface SplitStats {
  records: number;
  patients: number;
  tokens: number;
  /** Records whose text filled max_length (likely truncated). */
  truncated: number;
  prevalence: Record<string, LabelPrevalence>;
}

export interface DataManifest {
  version: number;
  key: string;
  created: string;
  tokenizer: string;
  labelNames: string[];
  maxLength: number;
  tokenWidth: 2 | 4;
  inputs: InputDigest[];
  settings: DataConfig;
  splitSource: "given" | "random";
  splits: Record<SplitName, SplitStats>;
  /** sha256 of each .bin, checked before reuse. */
  files: Record<SplitName, string>;
  skipped: {
    count: number;
    byKind: Record<string, number>;
    rows: { where: string; kind: string; message: string }[];
  };
  textSources: Record<string, number>;
  warnings: string[];
}

/** One split as the trainer consumes it. */
export interface SplitData {
  n: number;
  numLabels: number;
  labelNames: string[];
  /** Token ids of all records back to back; record i is ids[offsets[i]..offsets[i+1]). */
  ids: Uint32Array;
  offsets: Uint32Array;
  /** [n·numLabels] 0/1 targets (0 where masked). */
  labels: Float32Array;
  /** [n·numLabels] 1 = counts, 0 = masked. */
  mask: Float32Array;
  recordIds: string[];
  /** Unit (patient) index of each record, into `units`. */
  unitIds: Uint32Array;
  units: string[];
}

const dataDir = (runDir: string) => `${runDir}/data`;
const binPath = (runDir: string, s: SplitName) => `${dataDir(runDir)}/${s}.bin`;
const manifestPath = (runDir: string) => `${dataDir(runDir)}/manifest.json`;

/** The cache key: any change in inputs, tokenizer or data settings changes it. */
export function cacheKey(
  inputs: readonly InputDigest[],
  tokenizerFingerprint: string,
  settings: DataConfig,
): string {
  return sha256Hex(
    JSON.stringify({ v: VERSION, inputs, tokenizer: tokenizerFingerprint, settings }),
  );
}

function stats(
  records: readonly ReportRecord[],
  labelNames: readonly string[],
  tokens: number,
  truncated: number,
): SplitStats {
  const prevalence: Record<string, LabelPrevalence> = {};
  labelNames.forEach((name, j) => {
    let positive = 0, negative = 0, masked = 0;
    for (const r of records) {
      if (!r.mask[j]) masked++;
      else if (r.target[j]) positive++;
      else negative++;
    }
    prevalence[name] = {
      positive,
      negative,
      masked,
      rate: positive + negative > 0 ? positive / (positive + negative) : null,
    };
  });
  return {
    records: records.length,
    patients: new Set(records.map((r) => r.patient)).size,
    tokens,
    truncated,
    prevalence,
  };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Encode one split's records; returns the bytes and the token statistics. */
function encodeSplit(
  records: readonly ReportRecord[],
  tokenizer: Tokenizer,
  numLabels: number,
  maxLength: number,
  width: 2 | 4,
): { bytes: Uint8Array; tokens: number; truncated: number } {
  const seqs = records.map((r) => {
    const ids = tokenizer.encode(r.text, maxLength);
    if (ids.length > maxLength) {
      throw new Error(`tokenizer returned ${ids.length} ids for max_length ${maxLength}`);
    }
    return ids;
  });
  const total = seqs.reduce((a, s) => a + s.length, 0);
  const truncated = seqs.filter((s) => s.length === maxLength).length;
  const unitOf = new Map<string, number>();
  const units: string[] = [];
  const unitIds = records.map((r) => {
    let u = unitOf.get(r.patient);
    if (u === undefined) {
      u = units.length;
      unitOf.set(r.patient, u);
      units.push(r.patient);
    }
    return u;
  });
  const json = new TextEncoder().encode(
    JSON.stringify({ recordIds: records.map((r) => r.id), units }),
  );
  const n = records.length;
  const offBytes = 4 * (n + 1), tokBytes = align4(width * total), labBytes = align4(n * numLabels);
  const size = 32 + offBytes + tokBytes + labBytes + 4 * n + json.length;
  const buf = new ArrayBuffer(size);
  const dv = new DataView(buf);
  [MAGIC, VERSION, n, numLabels, width, total, units.length, json.length].forEach((v, i) =>
    dv.setUint32(4 * i, v, true)
  );
  let p = 32;
  let acc = 0;
  for (let i = 0; i <= n; i++) {
    dv.setUint32(p + 4 * i, acc, true);
    if (i < n) acc += seqs[i].length;
  }
  p += offBytes;
  let t = 0;
  for (const s of seqs) {
    for (const id of s) {
      if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) {
        throw new Error(`tokenizer returned id ${id} outside [0, ${tokenizer.vocabSize})`);
      }
      if (width === 2) dv.setUint16(p + 2 * t, id, true);
      else dv.setUint32(p + 4 * t, id, true);
      t++;
    }
  }
  p += tokBytes;
  records.forEach((r, i) => {
    for (let j = 0; j < numLabels; j++) {
      dv.setInt8(p + i * numLabels + j, r.mask[j] ? r.target[j] : -1);
    }
  });
  p += labBytes;
  unitIds.forEach((u, i) => dv.setUint32(p + 4 * i, u, true));
  p += 4 * n;
  new Uint8Array(buf, p).set(json);
  return { bytes: new Uint8Array(buf), tokens: total, truncated };
}

/** Read the manifest if present. */
export function readManifest(runDir: string): Promise<DataManifest | undefined> {
  return readJsonIfExists<DataManifest>(manifestPath(runDir));
}

/** The manifest when the cache holds exactly these inputs/tokenizer/settings and intact files. */
async function reusable(runDir: string, key: string): Promise<DataManifest | undefined> {
  const m = await readManifest(runDir);
  if (!m || m.key !== key || m.version !== VERSION) return undefined;
  for (const s of SPLIT_NAMES) {
    try {
      if (sha256Hex(await Deno.readFile(binPath(runDir, s))) !== m.files[s]) return undefined;
    } catch {
      return undefined;
    }
  }
  return m;
}

/**
 * Split, tokenize and write the cache for a loaded dataset, unless an intact cache with the same
 * key exists (then its manifest is returned and nothing is written).
 */
export async function buildTokenCache(
  dataset: LoadedDataset,
  tokenizer: Tokenizer,
  data: DataConfig,
  runDir: string,
): Promise<DataManifest & { reused: boolean }> {
  const key = cacheKey(dataset.inputs, tokenizer.fingerprint(), data);
  const old = await reusable(runDir, key);
  if (old) return { ...old, reused: true };
  if (dataset.records.length === 0) {
    throw new DataError(dataset.inputs[0]?.path ?? "data", "empty-text", "no usable records");
  }
  const split = splitRecords(dataset.records, data.split);
  const width: 2 | 4 = tokenizer.vocabSize <= 65536 ? 2 : 4;
  const L = dataset.labelNames.length;
  const splits = {} as Record<SplitName, SplitStats>;
  const files = {} as Record<SplitName, string>;
  for (const s of SPLIT_NAMES) {
    const recs = split.splits[s];
    const enc = encodeSplit(recs, tokenizer, L, data.max_length, width);
    await writeFileAtomic(binPath(runDir, s), enc.bytes);
    files[s] = sha256Hex(enc.bytes);
    splits[s] = stats(recs, dataset.labelNames, enc.tokens, enc.truncated);
  }
  const byKind: Record<string, number> = {};
  for (const k of dataset.skipped) byKind[k.kind] = (byKind[k.kind] ?? 0) + 1;
  const warnings = [...split.warnings];
  for (const s of SPLIT_NAMES) if (splits[s].records === 0) warnings.push(`split ${s} is empty`);
  const manifest: DataManifest = {
    version: VERSION,
    key,
    created: new Date().toISOString(),
    tokenizer: tokenizer.fingerprint(),
    labelNames: [...dataset.labelNames],
    maxLength: data.max_length,
    tokenWidth: width,
    inputs: dataset.inputs,
    settings: data,
    splitSource: split.source,
    splits,
    files,
    skipped: { count: dataset.skipped.length, byKind, rows: dataset.skipped.slice(0, 100) },
    textSources: dataset.textSources,
    warnings,
  };
  await writeJsonAtomic(manifestPath(runDir), manifest);
  return { ...manifest, reused: false };
}

/** Load the source and build (or reuse) the cache: the data stage in one call. */
export async function prepareData(
  data: DataConfig,
  tokenizer: Tokenizer,
  runDir: string,
  baseDir = ".",
): Promise<DataManifest & { reused: boolean }> {
  return buildTokenCache(await loadDataset(data, baseDir), tokenizer, data, runDir);
}

/** Read one split of the cache. A damaged file is a DataError naming it. */
export async function readSplit(runDir: string, split: SplitName): Promise<SplitData> {
  const path = binPath(runDir, split);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    throw new DataError(path, "unreadable", "token cache missing: run the data stage first");
  }
  const corrupt = (why: string) =>
    new DataError(path, "syntax", `corrupt token cache (${why}); delete it to rebuild`);
  if (bytes.length < 32) throw corrupt("short header");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = Array.from({ length: 8 }, (_, i) => dv.getUint32(4 * i, true));
  const [magic, version, n, L, width, total, nUnits, jsonLen] = h;
  if (magic !== MAGIC || version !== VERSION) throw corrupt("bad magic/version");
  if (width !== 2 && width !== 4) throw corrupt("bad token width");
  const offBytes = 4 * (n + 1), tokBytes = align4(width * total), labBytes = align4(n * L);
  if (bytes.length !== 32 + offBytes + tokBytes + labBytes + 4 * n + jsonLen) {
    throw corrupt("size mismatch");
  }
  let p = 32;
  const offsets = new Uint32Array(n + 1);
  for (let i = 0; i <= n; i++) offsets[i] = dv.getUint32(p + 4 * i, true);
  if (offsets[n] !== total) throw corrupt("offsets");
  p += offBytes;
  const ids = new Uint32Array(total);
  for (let t = 0; t < total; t++) {
    ids[t] = width === 2 ? dv.getUint16(p + 2 * t, true) : dv.getUint32(p + 4 * t, true);
  }
  p += tokBytes;
  const labels = new Float32Array(n * L), mask = new Float32Array(n * L);
  for (let k = 0; k < n * L; k++) {
    const v = dv.getInt8(p + k);
    if (v >= 0) {
      labels[k] = v;
      mask[k] = 1;
    }
  }
  p += labBytes;
  const unitIds = new Uint32Array(n);
  for (let i = 0; i < n; i++) unitIds[i] = dv.getUint32(p + 4 * i, true);
  p += 4 * n;
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(p))) as {
    recordIds: string[];
    units: string[];
  };
  if (meta.recordIds.length !== n || meta.units.length !== nUnits) throw corrupt("record table");
  const manifest = await readManifest(runDir);
  const labelNames = manifest?.labelNames ?? Array.from({ length: L }, (_, j) => `label${j}`);
  return {
    n,
    numLabels: L,
    labelNames,
    ids,
    offsets,
    labels,
    mask,
    recordIds: meta.recordIds,
    unitIds,
    units: meta.units,
  };
}
