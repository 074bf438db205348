/**
 * `deno task fixtures`: regenerate the embedded default data, deterministically.
 *   fixtures/data/mimic-synth/   labelled synthetic MIMIC-CXR-style corpus (seed 1, 10k reports)
 *   fixtures/data/mimic-tiny/    the same generator, seed 3, 300 reports (fast end-to-end tests)
 *   fixtures/data/public-corpus.txt   unlabelled reports for MLM pretraining (seed 2, 20k)
 *   fixtures/tokenizer/          WordPiece vocab learned on the public corpus (+ tokenizer.json)
 *   fixtures/data/synthetic-stats.json   prevalence and keyword-baseline F1 (difficulty gauge)
 * Options shrink it for tests: --out DIR --reports N --tiny N --public N --vocab-size N.
 */
import { parseArgs } from "node:util";
import {
  generateCorpus,
  publicCorpusText,
  type SyntheticStudy,
} from "../pipeline/synthetic/corpus.ts";
import { writeMimicDataset, writePublicCorpus } from "../pipeline/synthetic/write.ts";
import { CHEXPERT_LABELS } from "../pipeline/synthetic/labels.ts";
import { binarise, keywordPredict, weightedF1 } from "../pipeline/synthetic/keyword_baseline.ts";
import { countWords, trainWordPiece } from "../pipeline/model/tokenizer/train_wordpiece.ts";
import { writeWordPieceTokenizer } from "../pipeline/model/tokenizer/tokenizer_json.ts";
import { writeJsonAtomic } from "../pipeline/fs.ts";

export interface FixtureOptions {
  out: string;
  reports: number;
  tiny: number;
  publicReports: number;
  vocabSize: number;
}

export const SEEDS = { synth: 1, public: 2, tiny: 3 } as const;

/** Prevalence of 1 / 0 / −1 per label and the keyword baseline's weighted F1. */
export function corpusStats(studies: readonly SyntheticStudy[]): Record<string, unknown> {
  const n = studies.length;
  const prevalence = Object.fromEntries(CHEXPERT_LABELS.map((l, j) => {
    const c = { pos: 0, neg: 0, unc: 0 };
    for (const s of studies) {
      const v = s.labels[j];
      if (v === 1) c.pos++;
      else if (v === 0) c.neg++;
      else if (v === -1) c.unc++;
    }
    const r = (x: number) => Math.round((x / n) * 10000) / 10000;
    return [l, { pos: r(c.pos), neg: r(c.neg), unc: r(c.unc) }];
  }));
  const pred = studies.map((s) => keywordPredict(s.labelledText));
  const f1 = (policy: "zeros" | "ones") =>
    Math.round(weightedF1(studies.map((s) => binarise(s.labels, policy)), pred).weighted * 10000) /
    10000;
  let changed = 0;
  for (const s of studies) {
    for (let j = 0; j < s.labels.length; j++) if (s.labels[j] !== s.cleanLabels[j]) changed++;
  }
  return {
    reports: n,
    patients: new Set(studies.map((s) => s.subjectId)).size,
    prevalence,
    keywordBaselineWeightedF1: {
      uncertainAsNegative: f1("zeros"),
      uncertainAsPositive: f1("ones"),
    },
    noisyCellFraction: Math.round((changed / (n * CHEXPERT_LABELS.length)) * 10000) / 10000,
  };
}

export async function makeFixtures(o: FixtureOptions): Promise<Record<string, unknown>> {
  const data = `${o.out}/data`;
  await Deno.mkdir(data, { recursive: true });
  const synth = generateCorpus({ seed: SEEDS.synth, reports: o.reports });
  await writeMimicDataset(`${data}/mimic-synth`, synth);
  const tiny = generateCorpus({ seed: SEEDS.tiny, reports: o.tiny });
  await writeMimicDataset(`${data}/mimic-tiny`, tiny);
  const pub = generateCorpus({ seed: SEEDS.public, reports: o.publicReports });
  await writePublicCorpus(`${data}/public-corpus.txt`, pub);

  const trained = trainWordPiece(countWords(publicCorpusText(pub).split("\n\n")), {
    vocabSize: o.vocabSize,
  });
  await writeWordPieceTokenizer(`${o.out}/tokenizer`, trained.vocab, { lowercase: true });
  const stats = {
    "mimic-synth": corpusStats(synth),
    "mimic-tiny": corpusStats(tiny),
    "public-corpus": { reports: pub.length, seed: SEEDS.public },
    tokenizer: {
      vocabSize: trained.vocab.length,
      merges: trained.merges,
      exhausted: trained.exhausted,
    },
  };
  await writeJsonAtomic(`${data}/synthetic-stats.json`, stats);
  return stats;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: "fixtures" },
      reports: { type: "string", default: "10000" },
      tiny: { type: "string", default: "300" },
      public: { type: "string", default: "20000" },
      "vocab-size": { type: "string", default: "4000" },
    },
  });
  const int = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      console.error(
        `make_fixtures: --${name} must be a positive integer, got ${JSON.stringify(v)}`,
      );
      Deno.exit(2);
    }
    return n;
  };
  const stats = await makeFixtures({
    out: values.out,
    reports: int("reports", values.reports),
    tiny: int("tiny", values.tiny),
    publicReports: int("public", values.public),
    vocabSize: int("vocab-size", values["vocab-size"]),
  });
  console.log(JSON.stringify(stats, null, 2));
}
