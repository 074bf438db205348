/**
 * `deno task predict --run DIR --input FILE|FOLDER --output FILE [--threshold T]`
 *
 * Labels new reports with a trained run: a CSV or JSONL file (one report per row; `--id-column`,
 * `--text-column`, repeatable, joined in order) or a folder of `.txt` reports (MIMIC-CXR style:
 * the run's configured sections are extracted, with the usual fall-backs). Writes a CSV with
 * `id`, `<label>.prob`, `<label>.pred` per label.
 */
import { parseArgs } from "node:util";
import { parseCsv } from "../pipeline/data/csv.ts";
import { parseSections, selectSections } from "../pipeline/data/sections.ts";
import { readJsonIfExists } from "../pipeline/fs.ts";
import { writePredictionsCsv } from "../pipeline/eval/report.ts";
import { Runtime } from "../pipeline/gpu/runtime.ts";
import { loadTrainedModel } from "../pipeline/training/trained.ts";
import type { ModelConfig } from "../pipeline/config.ts";
import { runMain } from "./cli.ts";

const USAGE = `usage: deno task predict --run DIR --input FILE|FOLDER --output FILE
         [--id-column id] [--text-column text ...] [--threshold T] [--batch 32]`;

interface RunConfigJson {
  model: ModelConfig;
  data: { max_length: number; sections: string[] };
  evaluate: { threshold: number };
}

async function readReports(
  input: string,
  idCol: string,
  textCols: string[],
  sections: string[],
): Promise<{ ids: string[]; texts: string[] }> {
  const ids: string[] = [], texts: string[] = [];
  const st = await Deno.stat(input);
  if (st.isDirectory) {
    const names: string[] = [];
    for await (const e of Deno.readDir(input)) {
      if (e.isFile && e.name.endsWith(".txt")) names.push(e.name);
    }
    names.sort();
    for (const n of names) {
      const raw = await Deno.readTextFile(`${input}/${n}`);
      ids.push(n.replace(/\.txt$/, ""));
      texts.push(selectSections(parseSections(raw), sections).text);
    }
    return { ids, texts };
  }
  const text = await Deno.readTextFile(input);
  if (input.endsWith(".jsonl")) {
    text.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line);
      } catch (e) {
        throw new Error(`${input}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
      const missing = [idCol, ...textCols].find((c) => !(c in o));
      if (missing) throw new Error(`${input}:${i + 1}: field "${missing}" is missing`);
      ids.push(String(o[idCol]));
      texts.push(textCols.map((c) => String(o[c] ?? "")).join(" "));
    });
    return { ids, texts };
  }
  const table = parseCsv(text, input);
  const col = (name: string) => {
    const k = table.header.indexOf(name);
    if (k < 0) {
      throw new Error(
        `${input}:1: column "${name}" not found (columns: ${table.header.join(", ")})`,
      );
    }
    return k;
  };
  const ik = col(idCol), tk = textCols.map(col);
  for (const r of table.rows) {
    ids.push(r.cells[ik]);
    texts.push(tk.map((k) => r.cells[k]).join(" "));
  }
  return { ids, texts };
}

export async function main(args: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args,
      options: {
        run: { type: "string" },
        input: { type: "string" },
        output: { type: "string" },
        "id-column": { type: "string", default: "id" },
        "text-column": { type: "string", multiple: true },
        threshold: { type: "string" },
        batch: { type: "string", default: "32" },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`predict: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!v.run || !v.input || !v.output) {
    console.error(`predict: --run, --input and --output are required\n${USAGE}`);
    return 2;
  }
  const cfg = await readJsonIfExists<RunConfigJson>(`${v.run}/config.json`);
  const manifest = await readJsonIfExists<{ labelNames: string[] }>(`${v.run}/data/manifest.json`);
  if (!cfg || !manifest) {
    console.error(`predict: ${v.run} is not a finished run (config.json / data/manifest.json)`);
    return 2;
  }
  const threshold = v.threshold !== undefined ? Number(v.threshold) : cfg.evaluate.threshold;
  const batch = Number(v.batch);
  if (!(threshold > 0 && threshold < 1) || !(Number.isInteger(batch) && batch > 0)) {
    console.error("predict: --threshold must be in (0, 1) and --batch a positive integer");
    return 2;
  }
  const { ids, texts } = await readReports(
    v.input,
    v["id-column"]!,
    v["text-column"] ?? ["text"],
    cfg.data.sections,
  );
  const rt = await Runtime.create();
  const L = manifest.labelNames.length;
  const { encoder, tokenizer, maxLen } = await loadTrainedModel(
    rt,
    { ...cfg.model, maxLength: cfg.data.max_length },
    v.run,
    L,
    batch,
  );
  const probs = new Float32Array(ids.length * L);
  for (let i = 0; i < texts.length; i += batch) {
    const chunk = texts.slice(i, i + batch).map((t) => tokenizer.encode(t, maxLen));
    probs.set(await encoder.predict({ ids: chunk }), i * L);
  }
  await writePredictionsCsv(v.output, ids, manifest.labelNames, probs, threshold);
  console.log(`labelled ${ids.length} reports → ${v.output}`);
  rt.destroy();
  return 0;
}

if (import.meta.main) await runMain(main);
