/**
 * Write a synthetic corpus to disk in the MIMIC-CXR layout. The whole dataset folder is built
 * under a temporary sibling name and renamed into place, so a crash never leaves half a dataset
 * (per-file fsync for 10k reports would be slow, and a dataset is only valid as a whole).
 */
import { writeTextAtomic } from "../fs.ts";
import {
  chexpertCsv,
  publicCorpusText,
  reportPath,
  splitCsv,
  type SyntheticStudy,
} from "./corpus.ts";

export const CHEXPERT_CSV = "mimic-cxr-2.0.0-chexpert.csv";
export const SPLIT_CSV = "mimic-cxr-2.0.0-split.csv";

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** `dir`/files/pXX/pSUBJECT/sSTUDY.txt + the chexpert and split CSVs; replaces `dir` whole. */
export async function writeMimicDataset(
  dir: string,
  studies: readonly SyntheticStudy[],
): Promise<void> {
  const stage = `${dir}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const made = new Set<string>();
    for (const s of studies) {
      const rel = reportPath(s.subjectId, s.studyId);
      const folder = `${stage}/${rel.slice(0, rel.lastIndexOf("/"))}`;
      if (!made.has(folder)) {
        await Deno.mkdir(folder, { recursive: true });
        made.add(folder);
      }
      await Deno.writeTextFile(`${stage}/${rel}`, s.text);
    }
    await Deno.writeTextFile(`${stage}/${CHEXPERT_CSV}`, chexpertCsv(studies));
    await Deno.writeTextFile(`${stage}/${SPLIT_CSV}`, splitCsv(studies));
    const old = `${dir}.${crypto.randomUUID().slice(0, 8)}.old`;
    let moved = false;
    try {
      await Deno.rename(dir, old);
      moved = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await Deno.rename(stage, dir);
    if (moved) await removeIfExists(old);
  } catch (e) {
    await removeIfExists(stage);
    throw e;
  }
}

/** The unlabelled pretraining corpus: one report per paragraph (blank-line separated). */
export function writePublicCorpus(path: string, studies: readonly SyntheticStudy[]): Promise<void> {
  return writeTextAtomic(path, publicCorpusText(studies));
}
