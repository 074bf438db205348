/**
 * Section extraction for free-text radiology reports, following the logic of the official
 * MIMIC-CXR section parser (MIT-LCP mimic-cxr/txt/section_parser.py): ALL-CAPS headers at the start
 * of a line end a section; names are normalised (e.g. "FINDINGS AND IMPRESSION" → impression,
 * "CONCLUSION" → impression); empty findings/impression sections are dropped; when a report has
 * neither, its final paragraph becomes "last_paragraph". The *last* section of a name wins.
 */
import { normalizeSpace } from "./text.ts";

export interface Section {
  name: string;
  text: string;
}

/** Header variants seen in MIMIC-CXR → canonical names (the official parser's frequent list). */
const NORMALIZE: Record<string, string> = {
  "impressions": "impression",
  "conclusion": "impression",
  "conclusions": "impression",
  "summary": "impression",
  "findings and impression": "impression",
  "impression and findings": "impression",
  "findings/impression": "impression",
  "findings / impression": "impression",
  "findings/ impression": "impression",
  "finding": "findings",
  "chest, two views": "findings",
  "reference findings": "findings",
  "comparisons": "comparison",
  "comparison exam": "comparison",
  "comparison film": "comparison",
  "reference exam": "comparison",
  "clinical history": "history",
  "clinical information": "history",
  "patient history": "history",
  "pfi": "history",
  "reason for examination": "indication",
  "reason for exam": "indication",
  "clinical indication": "indication",
  "exam": "examination",
  "type of examination": "examination",
  "recommendation": "recommendations",
  "recommendation(s)": "recommendations",
  "wetread": "wet read",
};

// A header: start of a line, optional indent, ALL-CAPS words (with spaces , ( ) / & -), then ":".
const HEADER = /(^|\n)[ \t]*([A-Z][A-Z ()/,&-]*[A-Z)])[ \t]*:/g;

function normalizeName(h: string): string {
  const n = h.toLowerCase().replace(/\s+/g, " ").trim();
  return NORMALIZE[n] ?? n;
}

/** Split a report into named sections (text whitespace-normalised, `___` kept). */
export function parseSections(report: string): Section[] {
  const text = report.replace(/\r\n?/g, "\n");
  const raw: { name: string; body: string }[] = [];
  const heads = [...text.matchAll(HEADER)];
  if (heads.length === 0) {
    raw.push({ name: "full_report", body: text });
  } else {
    raw.push({ name: "preamble", body: text.slice(0, heads[0].index!) });
    for (let k = 0; k < heads.length; k++) {
      const m = heads[k];
      const start = m.index! + m[0].length;
      const end = k + 1 < heads.length ? heads[k + 1].index! : text.length;
      raw.push({ name: normalizeName(m[2]), body: text.slice(start, end) });
    }
  }
  const kept = raw.filter((s) =>
    !((s.name === "findings" || s.name === "impression") && normalizeSpace(s.body) === "")
  );
  if (!kept.some((s) => s.name === "findings" || s.name === "impression") && kept.length > 0) {
    // Paragraphs are separated by a blank line; the last one usually holds the conclusion.
    const last = kept[kept.length - 1];
    const paras = last.body.split(/\n[ \t]*\n/).filter((p) => p.trim() !== "");
    if (paras.length > 1) {
      last.body = paras.slice(0, -1).join("\n\n");
      kept.push({ name: "last_paragraph", body: paras[paras.length - 1] });
    }
  }
  return kept.map((s) => ({ name: s.name, text: normalizeSpace(s.body) }));
}

/** Fall-back order when a report has none of the requested sections (official parser's order). */
export const FALLBACK_ORDER = ["impression", "findings", "last_paragraph", "comparison"] as const;

/**
 * The requested sections joined in the requested order (last non-empty occurrence of each).
 * If none is present: impression → findings → last_paragraph → comparison, then the whole text.
 * `source` says which rule produced the text ("sections", "fallback:<name>", "full_text").
 */
export function selectSections(
  sections: readonly Section[],
  wanted: readonly string[],
): { text: string; source: string } {
  const last = (name: string): string | undefined => {
    for (let i = sections.length - 1; i >= 0; i--) {
      if (sections[i].name === name && sections[i].text !== "") return sections[i].text;
    }
    return undefined;
  };
  const parts = wanted.map(last).filter((t): t is string => t !== undefined);
  if (parts.length > 0) return { text: parts.join(" "), source: "sections" };
  for (const name of FALLBACK_ORDER) {
    const t = last(name);
    if (t !== undefined) return { text: t, source: `fallback:${name}` };
  }
  const all = sections.map((s) => s.text).filter((t) => t !== "").join(" ");
  return { text: all, source: "full_text" };
}
