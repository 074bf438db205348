/**
 * Render one study's report text (MIMIC-CXR layout) from the latent state, and collect the
 * mentions it states. Labels are computed from those mentions only (labels.ts), so what the text
 * says and what the CSV says cannot drift apart, whatever the latent state was.
 */
import type { Prng } from "./prng.ts";
import {
  type Finding,
  FINDINGS,
  type LabelRow,
  labelsFromMentions,
  type Mention,
} from "./labels.ts";
import { HISTORIES, MEDICATIONS, PROCEDURES, QUESTIONS, SYMPTOMS } from "./clinical_terms.ts";
import { DEVICE_KINDS, type FindingAttr, type Profile, type StudyState } from "./patient.ts";
import {
  cap,
  device,
  deviceRemoved,
  distractor,
  findingSentence,
  GROUP_NEGATABLE,
  groupNegation,
  negation,
  resolved,
  type Sentence,
  type Trend,
} from "./phrases.ts";

type Mode = "pos" | "unc" | "neg" | "resolved" | "omit";

/** P(hedged) for a present finding: pneumonia is the most hedged label in MIMIC-CXR. */
const HEDGE_PRESENT: Record<Finding, number> = {
  "Atelectasis": 0.22,
  "Cardiomegaly": 0.06,
  "Consolidation": 0.15,
  "Edema": 0.15,
  "Enlarged Cardiomediastinum": 0.2,
  "Fracture": 0.12,
  "Lung Lesion": 0.2,
  "Lung Opacity": 0.06,
  "Pleural Effusion": 0.1,
  "Pleural Other": 0.15,
  "Pneumonia": 0.35,
  "Pneumothorax": 0.1,
  "Support Devices": 0,
};

/** P(explicitly negated) for an absent finding ("no pneumothorax", "heart size is normal"). */
export const NEGATE_ABSENT: Record<Finding, number> = {
  "Atelectasis": 0.02,
  "Cardiomegaly": 0.2,
  "Consolidation": 0.05,
  "Edema": 0.04,
  "Enlarged Cardiomediastinum": 0.15,
  "Fracture": 0.015,
  "Lung Lesion": 0.015,
  "Lung Opacity": 0.02,
  "Pleural Effusion": 0.07,
  "Pleural Other": 0.003,
  "Pneumonia": 0.03,
  "Pneumothorax": 0.06,
  "Support Devices": 0,
};

/** P(hedged although absent): radiologists hedge on normal films too. */
const HEDGE_ABSENT: Record<Finding, number> = {
  "Atelectasis": 0.015,
  "Cardiomegaly": 0.008,
  "Consolidation": 0.006,
  "Edema": 0.008,
  "Enlarged Cardiomediastinum": 0.004,
  "Fracture": 0.004,
  "Lung Lesion": 0.005,
  "Lung Opacity": 0.005,
  "Pleural Effusion": 0.008,
  "Pleural Other": 0.002,
  "Pneumonia": 0.03,
  "Pneumothorax": 0.004,
  "Support Devices": 0,
};

const LUNG: Finding[] = [
  "Atelectasis",
  "Consolidation",
  "Lung Opacity",
  "Pneumonia",
  "Edema",
  "Lung Lesion",
];
const PLEURA: Finding[] = ["Pleural Effusion", "Pneumothorax", "Pleural Other"];
const HEART: Finding[] = ["Cardiomegaly", "Enlarged Cardiomediastinum"];
const CHRONIC = new Set<Finding>(["Cardiomegaly", "Lung Lesion", "Pleural Other", "Fracture"]);

const NORMAL_IMPRESSIONS = [
  "No acute cardiopulmonary process.",
  "No acute intrathoracic abnormality.",
  "No acute cardiopulmonary abnormality.",
  "Normal chest radiograph.",
  "No evidence of acute disease.",
  "No radiographic evidence of acute cardiopulmonary disease.",
  "Unremarkable chest radiograph.",
  "No acute findings in the chest.",
];

export interface RenderedStudy {
  /** Full report text in the MIMIC-CXR layout. */
  text: string;
  /** FINDINGS + IMPRESSION bodies joined by a blank line (what the labels are derived from). */
  labelledText: string;
  mentions: Mention[];
  /** Labels derived from the mentions, before labeler noise. */
  labels: LabelRow;
  /** Portable single view (1 image) or PA + lateral (2–3 images). */
  portable: boolean;
}

function wrap(text: string, width = 76): string[] {
  const out: string[] = [];
  let line = "";
  for (const w of text.split(" ")) {
    if (line && line.length + 1 + w.length > width) {
      out.push(" " + line);
      line = w;
    } else line = line ? line + " " + w : w;
  }
  if (line) out.push(" " + line);
  return out;
}

/** Sex-specific history terms, kept consistent with the patient. */
const FEMALE_ONLY = /ovarian|hysterectomy|mastectomy|lumpectomy|breast/;
const MALE_ONLY = /prostat/;

function indication(r: Prng, p: Profile): string {
  const who = r.pick([
    `___-year-old ${p.sex === "M" ? "man" : "woman"}`,
    `___ year old ${p.sex === "M" ? "male" : "female"}`,
    `___${p.sex}`,
    `${p.sex === "M" ? "Male" : "Female"} patient`,
    `History: ___${p.sex}`,
  ]);
  const hx: string[] = [];
  if (p.chf) {
    hx.push(
      r.pick(["CHF", "heart failure with reduced ejection fraction", "ischemic cardiomyopathy"]),
    );
  }
  if (p.icu) {
    hx.push(
      r.pick([
        "respiratory failure requiring intubation",
        "septic shock",
        "respiratory failure",
        "ARDS",
        "s/p cardiac arrest",
      ]),
    );
  }
  if (p.infection) {
    hx.push(r.pick(["fever", "productive cough", "leukocytosis", "sepsis", "aspiration risk"]));
  }
  if (p.oncology) {
    hx.push(
      r.pick([
        p.sex === "F" ? "metastatic breast cancer" : "metastatic prostate cancer",
        "lung adenocarcinoma",
        "lymphoma",
        "metastatic melanoma",
        "renal cell carcinoma",
      ]),
    );
  }
  if (p.trauma) {
    hx.push(
      r.pick(["s/p fall", "motor vehicle collision", "chest wall trauma", "rib pain after fall"]),
    );
  }
  hx.push(r.pick(HISTORIES.filter((h) => !(p.sex === "M" ? FEMALE_ONLY : MALE_ONLY).test(h))));
  if (r.chance(0.35)) {
    hx.push(
      `s/p ${r.pick(PROCEDURES.filter((h) => !(p.sex === "M" ? FEMALE_ONLY : MALE_ONLY).test(h)))}${
        r.chance(0.5) ? " ___" : ""
      }`,
    );
  }
  if (r.chance(0.25)) hx.push(`on ${r.pick(MEDICATIONS)}`);
  const complaint = r.chance(0.3)
    ? `${r.pick(SYMPTOMS)} and ${r.pick(SYMPTOMS)}`
    : r.pick(SYMPTOMS);
  const question = r.pick(QUESTIONS);
  const hist = hx.length > 1 ? hx.slice(0, -1).join(", ") + " and " + hx[hx.length - 1] : hx[0];
  return r.pick([
    `${who} with ${hist}, now with ${complaint}. // ${question}`,
    `${who} with ${complaint}. ${cap(hist)}. // ${question}`,
    `${who} with ${hist} // ${question}`,
    `${cap(complaint)}. ${question}`,
  ]);
}

export interface RenderInput {
  state: StudyState;
  prev: StudyState | null;
  profile: Profile;
}

export function renderStudy(r: Prng, { state, prev, profile }: RenderInput): RenderedStudy {
  const modes = new Map<Finding, Mode>();
  const trend = new Map<Finding, Trend>();
  for (const f of FINDINGS) {
    if (f === "Support Devices") continue;
    const a = state.present.get(f);
    const old = prev?.present.get(f);
    if (a) {
      modes.set(f, r.chance(0.03) ? "omit" : r.chance(HEDGE_PRESENT[f]) ? "unc" : "pos");
      let t: Trend = "none";
      if (prev) {
        if (!old) t = r.chance(0.5) ? "new" : "none";
        else if (a.sev > old.sev) t = "worse";
        else if (a.sev < old.sev) t = "better";
        else t = r.chance(0.8) ? "same" : "none";
      }
      trend.set(f, t);
    } else if (old) {
      modes.set(f, r.chance(0.35) ? "resolved" : r.chance(NEGATE_ABSENT[f]) ? "neg" : "omit");
    } else {
      modes.set(f, r.chance(NEGATE_ABSENT[f]) ? "neg" : r.chance(HEDGE_ABSENT[f]) ? "unc" : "omit");
    }
  }
  const attrOf = (f: Finding): FindingAttr =>
    state.present.get(f) ?? prev?.present.get(f) ?? {
      side: r.pick(["left", "right", "bilateral"] as const),
      sev: 1,
      loc: r.int(1000),
    };
  const isAbnormal = (f: Finding) => modes.get(f) === "pos" || modes.get(f) === "unc";
  const lungsClear = !LUNG.some(isAbnormal) && !isAbnormal("Pleural Effusion");

  // ---- FINDINGS body, grouped by anatomy ----
  const deviceS: Sentence[] = [];
  for (const k of DEVICE_KINDS) {
    const s = state.devices.get(k);
    const had = prev?.devices.get(k);
    if (s !== undefined) {
      if (!r.chance(0.05)) deviceS.push(device(r, k, s, had !== undefined));
    } else if (had !== undefined && r.chance(0.6)) deviceS.push(deviceRemoved(r, k, had));
  }
  const group = (fs: Finding[]): Sentence[] => {
    const out: Sentence[] = [];
    for (const f of fs) {
      const m = modes.get(f);
      if (m === "pos" || m === "unc") {
        out.push(findingSentence(r, f, m, attrOf(f), trend.get(f) ?? "none"));
      } else if (m === "resolved") out.push(resolved(r, f, attrOf(f)));
      else if (m === "neg" && !GROUP_NEGATABLE.has(f)) out.push(negation(r, f));
    }
    return out;
  };
  const negs = FINDINGS.filter((f) => modes.get(f) === "neg" && GROUP_NEGATABLE.has(f));
  r.shuffle(negs);
  const negS: Sentence[] = [];
  if (negs.length > 0) {
    const cut = negs.length > 2 && r.chance(0.3) ? r.range(1, negs.length - 1) : negs.length;
    negS.push(groupNegation(r, negs.slice(0, cut), lungsClear));
    if (cut < negs.length) negS.push(groupNegation(r, negs.slice(cut), false));
  }
  const ctx = {
    lungsClear,
    bonesIntact: !isAbnormal("Fracture"),
    vesselsNormal: !isAbnormal("Edema"),
  };
  const extra: Sentence[] = [];
  for (let i = r.weighted([0.25, 0.4, 0.25, 0.1]); i > 0; i--) {
    extra.push({ text: distractor(r, ctx), mentions: [] });
  }
  let body: Sentence[] = [
    ...deviceS,
    ...group(LUNG),
    ...group(PLEURA),
    ...negS,
    ...group(HEART),
    ...group(["Fracture"]),
    ...extra,
  ];
  if (r.chance(0.35)) body = r.shuffle(body);
  // drop exact duplicate sentences (two distractors may coincide)
  body = body.filter((s, i) => body.findIndex((t) => t.text === s.text) === i);

  // ---- IMPRESSION ----
  const imp: Sentence[] = [];
  const abnormal = FINDINGS.filter(isAbnormal);
  if (abnormal.length === 0) {
    imp.push({
      text: r.pick(
        prev && r.chance(0.2)
          ? ["No significant interval change.", ...NORMAL_IMPRESSIONS]
          : NORMAL_IMPRESSIONS,
      ),
      mentions: [],
    });
  } else {
    const order = [...abnormal].sort((x, y) => Number(CHRONIC.has(x)) - Number(CHRONIC.has(y)));
    for (const f of order) {
      if (imp.length > 0 && r.chance(0.3)) continue;
      imp.push(
        findingSentence(r, f, modes.get(f) as "pos" | "unc", attrOf(f), trend.get(f) ?? "none"),
      );
    }
    if (abnormal.every((f) => CHRONIC.has(f)) && r.chance(0.5)) {
      imp.push({ text: r.pick(NORMAL_IMPRESSIONS.slice(0, 3)), mentions: [] });
    }
    if (modes.get("Pneumothorax") === "neg" && r.chance(0.3)) {
      imp.push(groupNegation(r, ["Pneumothorax"], false));
    }
  }
  if (deviceS.length > 0 && r.chance(0.3)) imp.unshift(deviceS[0]);

  // ---- sections ----
  const hasFindings = !r.chance(0.08);
  const hasImpression = !hasFindings || !r.chance(0.12);
  const findingsBody = hasFindings ? body : [];
  const impressionBody = hasFindings
    ? (hasImpression ? imp : [])
    : [...body.filter((s) => s.mentions.length > 0), ...imp];
  const mentions = [...findingsBody, ...impressionBody].flatMap((s) => s.mentions);

  const portable = profile.icu || deviceS.length > 0 ? r.chance(0.85) : r.chance(0.2);
  const lines: string[] = ["                                 FINAL REPORT"];
  const section = (head: string, content: string[], inline: boolean) => {
    if (lines.length > 1) lines.push(" ");
    if (inline) {
      const w = wrap(`${head}:  ${content.join(" ")}`);
      lines.push(...w);
    } else {
      lines.push(` ${head}: `, " ");
      for (const c of content) lines.push(...wrap(c));
    }
  };
  section("EXAMINATION", [
    portable
      ? r.pick(["CHEST (PORTABLE AP)", "CHEST (PORTABLE AP)", "CHEST PORT. LINE PLACEMENT"])
      : r.pick(["CHEST (PA AND LAT)", "CHEST (PA AND LAT)", "CHEST PA AND LATERAL"]),
  ], true);
  if (!r.chance(0.05)) section("INDICATION", [indication(r, profile)], true);
  if (r.chance(0.3)) {
    section("TECHNIQUE", [
      portable
        ? r.pick(["Portable AP chest radiograph.", "Single frontal view of the chest."])
        : "Chest PA and lateral.",
    ], true);
  }
  if (!r.chance(0.1)) {
    section("COMPARISON", [
      prev
        ? r.pick([
          "___",
          "Chest radiograph from ___.",
          "Prior chest radiographs ___ through ___.",
          "Multiple prior studies, most recently ___.",
        ])
        : r.pick(["None.", "None", "No prior studies available."]),
    ], true);
  }
  const paragraph = (ss: Sentence[]) => ss.map((s) => s.text).join(" ");
  const numbered = impressionBody.length > 1 && r.chance(0.3);
  if (hasFindings) section("FINDINGS", [paragraph(findingsBody)], r.chance(0.25));
  if (impressionBody.length > 0) {
    section(
      "IMPRESSION",
      numbered ? impressionBody.map((s, i) => `${i + 1}. ${s.text}`) : [paragraph(impressionBody)],
      !numbered && r.chance(0.25),
    );
  }
  const labelledText = [paragraph(findingsBody), paragraph(impressionBody)].filter((t) => t).join(
    "\n\n",
  );
  return {
    text: lines.join("\n") + "\n",
    labelledText,
    mentions,
    labels: labelsFromMentions(mentions),
    portable,
  };
}
