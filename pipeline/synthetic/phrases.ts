/**
 * Paraphrase banks: one sentence for a finding in a given certainty (positive, uncertain, negated,
 * resolved). Every sentence carries the mentions it states, so labels come from the text. Banks are
 * wide on purpose: a keyword classifier must meet negation ("no", "without", "negative for",
 * "resolved"), hedging ("cannot exclude", "may represent", "suggestive of" → −1) and keyword-free
 * paraphrases ("the heart is mildly enlarged", "blunting of the costophrenic angle").
 */
import type { Prng } from "./prng.ts";
import type { Finding, Mention } from "./labels.ts";
import type { DeviceKind, FindingAttr, Side } from "./patient.ts";

export interface Sentence {
  text: string;
  mentions: Mention[];
}

/** How a present finding compares with the previous study (none = no prior study). */
export type Trend = "none" | "new" | "same" | "better" | "worse";

export function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function an(np: string): string {
  return (/^[aeiou]/.test(np) ? "an " : "a ") + np;
}

function sent(text: string, ...mentions: Array<[Finding, 1 | 0 | -1]>): Sentence {
  return { text, mentions: mentions.map(([finding, value]) => ({ finding, value })) };
}

interface Loc {
  adj: string;
  prep: string;
}

const LOCS: Record<Side, Loc[]> = {
  left: [
    { adj: "left lower lobe", prep: "in the left lower lobe" },
    { adj: "left basilar", prep: "at the left base" },
    { adj: "retrocardiac", prep: "in the retrocardiac region" },
    { adj: "lingular", prep: "in the lingula" },
    { adj: "left upper lobe", prep: "in the left upper lobe" },
    { adj: "left perihilar", prep: "in the left perihilar region" },
    { adj: "left mid lung", prep: "in the left mid lung zone" },
  ],
  right: [
    { adj: "right lower lobe", prep: "in the right lower lobe" },
    { adj: "right basilar", prep: "at the right base" },
    { adj: "right middle lobe", prep: "in the right middle lobe" },
    { adj: "right upper lobe", prep: "in the right upper lobe" },
    { adj: "right perihilar", prep: "in the right perihilar region" },
    { adj: "right infrahilar", prep: "in the right infrahilar region" },
  ],
  bilateral: [
    { adj: "bibasilar", prep: "at both lung bases" },
    { adj: "bilateral lower lobe", prep: "in both lower lobes" },
    { adj: "bilateral perihilar", prep: "in both perihilar regions" },
    { adj: "multifocal", prep: "in multiple lobes bilaterally" },
    { adj: "bilateral basilar", prep: "at the lung bases bilaterally" },
  ],
};

function loc(a: FindingAttr): Loc {
  const list = LOCS[a.side];
  return list[a.loc % list.length];
}

function sideWord(r: Prng, side: Side): string {
  if (side !== "bilateral") return side;
  return r.pick(["bilateral", "bilateral", "bibasilar"]);
}

const ORDINALS = ["third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];

/** A generic positive sentence around a noun phrase, shaped by the comparison trend. */
function posAround(r: Prng, np: string, trend: Trend, count: boolean): string {
  const art = count ? an(np) : np;
  switch (trend) {
    case "same":
      return r.pick([
        `${cap(np)} is unchanged.`,
        `Unchanged ${np}.`,
        `Stable ${np}.`,
        `${cap(np)} is again seen.`,
        `Persistent ${np}.`,
        `${cap(np)} is similar to the prior study.`,
        `Redemonstration of ${art}.`,
        `${cap(np)} is not significantly changed.`,
      ]);
    case "better":
      return r.pick([
        `Improved ${np}.`,
        `${cap(np)} is slightly improved.`,
        `Decreased ${np}.`,
        `${cap(np)} is less pronounced than on the prior study.`,
        `Slight interval improvement in ${np}.`,
        `Improving ${np}.`,
      ]);
    case "worse":
      return r.pick([
        `Increased ${np}.`,
        `Worsening ${np}.`,
        `${cap(np)} is more pronounced than previously.`,
        `${cap(np)} has increased compared to the prior exam.`,
        `Interval worsening of ${np}.`,
      ]);
    case "new":
      return r.pick([
        `New ${np}.`,
        `Interval development of ${art}.`,
        `There is ${count ? "a new " + np : "new " + np}.`,
        `${cap(np)} is new since the prior study.`,
      ]);
    default:
      return r.pick([
        `There is ${art}.`,
        `${cap(np)} is present.`,
        `${cap(np)} is noted.`,
        `${cap(np)} is seen.`,
        `${cap(np)}.`,
        `${cap(np)} is demonstrated.`,
        `There is evidence of ${art}.`,
      ]);
  }
}

/** A generic hedged sentence (CheXpert uncertainty cues). */
function uncAround(r: Prng, np: string, count: boolean): string {
  const art = count ? an(np) : np;
  return r.pick([
    `Possible ${np}.`,
    `${cap(art)} cannot be excluded.`,
    `Cannot exclude ${art}.`,
    `Findings may represent ${art}.`,
    `Questionable ${np}.`,
    `${cap(art)} is not excluded.`,
    `Findings are suggestive of ${art}.`,
    `This could reflect ${art}.`,
    `Probable ${np}.`,
    `Likely ${np}.`,
    `Concern for ${art}.`,
    `${cap(art)} cannot be ruled out.`,
    `Findings are concerning for ${art}.`,
    `Suspected ${np}.`,
  ]);
}

/** Sentence stating a previously present finding is gone (label 0). */
function resolvedAround(r: Prng, np: string): string {
  return r.pick([
    `Interval resolution of ${np}.`,
    `The previously seen ${np} has resolved.`,
    `${cap(np)} has resolved.`,
    `${cap(np)} is no longer seen.`,
    `Resolved ${np}.`,
    `Previously noted ${np} is no longer visualized.`,
    `Interval clearing of ${np}.`,
  ]);
}

// ---- per-finding banks --------------------------------------------------------------------

const EFF_SEV = ["trace", "small", "moderate", "large"];
const PTX_SEV = ["tiny", "small", "moderate", "large"];
const MILD = ["mild", "moderate", "severe"];
const MILDLY = ["mildly", "moderately", "severely"];

function effusionNP(r: Prng, a: FindingAttr): string {
  const sev = a.sev === 1 && r.chance(0.2) ? "small to moderate" : EFF_SEV[a.sev];
  if (a.side === "bilateral") {
    return r.pick([
      `${sev} bilateral pleural effusions`,
      `bilateral ${sev} pleural effusions`,
      `${sev} bilateral effusions`,
    ]);
  }
  return r.pick([
    `${sev} ${a.side} pleural effusion`,
    `${sev} ${a.side} effusion`,
    `${sev} layering ${a.side} pleural effusion`,
    `${sev} ${a.side}-sided pleural effusion`,
  ]);
}

function positive(r: Prng, f: Finding, a: FindingAttr, trend: Trend): Sentence {
  const L = loc(a);
  switch (f) {
    case "Pleural Effusion": {
      if (trend === "none" && r.chance(0.2)) {
        const s = a.side === "bilateral"
          ? "both costophrenic angles"
          : `the ${a.side} costophrenic angle`;
        return r.pick([
          sent(`Blunting of ${s} is consistent with ${an(EFF_SEV[a.sev])} pleural effusion.`, [
            f,
            1,
          ]),
          sent(`There is ${EFF_SEV[a.sev]} ${sideWord(r, a.side)} pleural fluid.`, [f, 1]),
          sent(`Meniscus-shaped fluid blunts ${s}, representing an effusion.`, [f, 1]),
        ]);
      }
      return sent(posAround(r, effusionNP(r, a), trend, a.side !== "bilateral"), [f, 1]);
    }
    case "Pneumothorax": {
      const sev = PTX_SEV[a.sev];
      const s = sideWord(r, a.side === "bilateral" ? "right" : a.side);
      const np = r.pick([
        `${sev} ${s} pneumothorax`,
        `${sev} ${s} apical pneumothorax`,
        `${sev} ${s} basilar pneumothorax`,
      ]);
      if (trend === "none" && r.chance(0.15)) {
        return sent(
          `A ${s} pleural line is seen with no lung markings beyond it, consistent with ${an(np)}.`,
          [f, 1],
        );
      }
      return sent(posAround(r, np, trend, true), [f, 1]);
    }
    case "Consolidation": {
      const np = r.pick([
        `${L.adj} consolidation`,
        `dense ${L.adj} consolidation`,
        `airspace consolidation ${L.prep}`,
        `consolidation ${L.prep}`,
        `focal consolidation ${L.prep}`,
      ]);
      return sent(posAround(r, np, trend, false), [f, 1]);
    }
    case "Pneumonia": {
      return r.pick([
        () => sent(posAround(r, `${L.adj} pneumonia`, trend, false), [f, 1]),
        () => sent(`Findings are consistent with ${L.adj} pneumonia.`, [f, 1]),
        () =>
          sent(
            `${
              cap(r.pick(["opacity", "airspace opacity", "patchy opacity"]))
            } ${L.prep} is consistent with pneumonia.`,
            ["Lung Opacity", 1],
            [f, 1],
          ),
        () =>
          sent(`${cap(L.adj)} consolidation compatible with pneumonia.`, ["Consolidation", 1], [
            f,
            1,
          ]),
        () => sent(`${cap(L.adj)} pneumonia is present.`, [f, 1]),
        () => sent(`Airspace disease ${L.prep} reflecting pneumonia.`, ["Lung Opacity", 1], [f, 1]),
        () => sent(`${cap(L.adj)} infection.`, [f, 1]),
      ])();
    }
    case "Atelectasis": {
      const d = r.pick([
        "minimal",
        "mild",
        "subsegmental",
        "linear",
        "plate-like",
        "patchy",
        "streaky",
      ]);
      return r.pick([
        () => sent(posAround(r, `${d} ${L.adj} atelectasis`, trend, false), [f, 1]),
        () => sent(posAround(r, `${L.adj} atelectasis`, trend, false), [f, 1]),
        () => sent(`${cap(d)} atelectasis ${L.prep}.`, [f, 1]),
        () => sent(`Volume loss ${L.prep} is consistent with atelectasis.`, [f, 1]),
        () => sent(`${cap(L.adj)} collapse.`, [f, 1]),
        () =>
          sent(`${cap(d)} opacities ${L.prep} are compatible with atelectasis.`, [
            "Lung Opacity",
            1,
          ], [f, 1]),
      ])();
    }
    case "Lung Opacity": {
      const d = r.pick([
        "patchy",
        "hazy",
        "ill-defined",
        "streaky",
        "faint",
        "confluent",
        "increased",
      ]);
      return r.pick([
        () => sent(posAround(r, `${d} ${L.adj} opacity`, trend, true), [f, 1]),
        () => sent(posAround(r, `${L.adj} opacity`, trend, true), [f, 1]),
        () => sent(`${cap(d)} opacities ${L.prep}.`, [f, 1]),
        () => sent(posAround(r, `${L.adj} airspace disease`, trend, false), [f, 1]),
        () => sent(`There is ${an(L.adj)} infiltrate.`, [f, 1]),
        () => sent(`Increased density ${L.prep}.`, [f, 1]),
        () => sent(`${cap(d)} airspace opacification ${L.prep}.`, [f, 1]),
      ])();
    }
    case "Edema": {
      const sev = MILD[Math.min(a.sev, 2)];
      return r.pick([
        () => sent(posAround(r, `${sev} pulmonary edema`, trend, false), [f, 1]),
        () => sent(posAround(r, `${sev} interstitial edema`, trend, false), [f, 1]),
        () => sent(posAround(r, `${sev} pulmonary vascular congestion`, trend, false), [f, 1]),
        () =>
          sent(`${cap(sev)} pulmonary vascular congestion without frank alveolar edema.`, [f, 1]),
        () =>
          sent(`Perihilar haziness and vascular indistinctness consistent with ${sev} edema.`, [
            f,
            1,
          ]),
        () =>
          sent(`Findings are consistent with ${sev} fluid overload with interstitial edema.`, [
            f,
            1,
          ]),
        () => sent(`Pulmonary vascular engorgement compatible with congestion.`, [f, 1]),
      ])();
    }
    case "Cardiomegaly": {
      const sev = MILD[Math.min(a.sev, 2)];
      const adv = MILDLY[Math.min(a.sev, 2)];
      return r.pick([
        () => sent(posAround(r, `${sev} cardiomegaly`, trend, false), [f, 1]),
        () => sent(`The heart is ${adv} enlarged.`, [f, 1]),
        () =>
          sent(`Heart size is ${adv} enlarged${trend === "same" ? ", unchanged" : ""}.`, [f, 1]),
        () => sent(`${cap(sev)} enlargement of the cardiac silhouette.`, [f, 1]),
        () => sent(`The cardiac silhouette is ${adv} enlarged.`, [f, 1]),
        () => sent(`${cap(sev)} cardiomegaly${trend === "same" ? " is stable" : ""}.`, [f, 1]),
        () => sent(`The heart remains ${adv} enlarged.`, [f, 1]),
      ])();
    }
    case "Enlarged Cardiomediastinum":
      return r.pick([
        sent(`The mediastinum is widened.`, [f, 1]),
        sent(`${trend === "same" ? "Unchanged w" : "W"}idening of the mediastinum.`, [f, 1]),
        sent(`Mediastinal widening is present.`, [f, 1]),
        sent(`The cardiomediastinal silhouette is enlarged.`, [f, 1]),
        sent(`Enlarged cardiomediastinal silhouette.`, [f, 1]),
        sent(`Widened superior mediastinum.`, [f, 1]),
        sent(`The mediastinal contours are enlarged.`, [f, 1]),
      ]);
    case "Fracture": {
      const s = a.side === "bilateral" ? "right" : a.side;
      const o = r.pick(ORDINALS);
      return r.pick([
        sent(`Acute fracture of the ${s} ${o} rib.`, [f, 1]),
        sent(`Displaced fracture of the ${s} ${o} posterior rib.`, [f, 1]),
        sent(`Healed ${s} rib fractures.`, [f, 1]),
        sent(`Old healed fractures of the ${s} lateral ribs are noted.`, [f, 1]),
        sent(`Compression fracture of a mid thoracic vertebral body.`, [f, 1]),
        sent(`${cap(s)} clavicle fracture.`, [f, 1]),
        sent(`Nondisplaced ${s} anterior rib fractures.`, [f, 1]),
        sent(`${trend === "same" ? "Unchanged" : "Known"} ${s} rib fractures.`, [f, 1]),
      ]);
    }
    case "Lung Lesion": {
      const size = `${r.range(1, 4)}.${r.int(10)}`;
      return r.pick([
        sent(`${size} cm nodule ${L.prep}.`, [f, 1]),
        sent(`${cap(L.adj)} pulmonary nodule${trend === "same" ? " is unchanged" : ""}.`, [f, 1]),
        sent(`${size} cm ${L.adj} mass.`, [f, 1]),
        sent(`${cap(a.side === "bilateral" ? "right" : a.side)} hilar mass is again seen.`, [f, 1]),
        sent(`Multiple pulmonary nodules consistent with metastatic disease.`, [f, 1]),
        sent(`Known ${L.adj} mass is redemonstrated.`, [f, 1]),
        sent(`Spiculated ${L.adj} nodule measuring ${size} cm.`, [f, 1]),
        sent(`Cavitary lesion ${L.prep}.`, [f, 1]),
      ]);
    }
    case "Pleural Other": {
      const s = a.side === "bilateral" ? "bilateral" : a.side;
      return r.pick([
        sent(`${cap(s)} apical pleural thickening.`, [f, 1]),
        sent(`Calcified pleural plaques are noted.`, [f, 1]),
        sent(`${cap(s)} pleural thickening is unchanged.`, [f, 1]),
        sent(`Pleural scarring at the ${s === "bilateral" ? "lung apices" : s + " apex"}.`, [f, 1]),
        sent(`${cap(s)} fibrothorax.`, [f, 1]),
      ]);
    }
    case "Support Devices":
      throw new RangeError("positive(): Support Devices are rendered by device()");
  }
}

function uncertain(r: Prng, f: Finding, a: FindingAttr): Sentence {
  const L = loc(a);
  switch (f) {
    case "Pleural Effusion": {
      const s = a.side === "bilateral" ? "bilateral" : a.side;
      return r.pick([
        () => sent(uncAround(r, `small ${s} pleural effusion`, s !== "bilateral"), [f, -1]),
        () =>
          sent(
            `Blunting of the ${
              a.side === "bilateral" ? "" : s + " "
            }costophrenic angle may reflect a small effusion or pleural thickening.`,
            [f, -1],
            ["Pleural Other", -1],
          ),
        () => sent(`Questionable trace ${s} pleural effusion.`, [f, -1]),
        () => sent(`Trace ${s} effusion is not excluded.`, [f, -1]),
      ])();
    }
    case "Pneumothorax": {
      const s = a.side === "bilateral" ? "right" : a.side;
      return r.pick([
        () => sent(uncAround(r, `tiny ${s} apical pneumothorax`, true), [f, -1]),
        () => sent(`Subtle lucency at the ${s} apex may represent a small pneumothorax.`, [f, -1]),
        () => sent(`Questionable ${s} apical pneumothorax; recommend repeat imaging.`, [f, -1]),
      ])();
    }
    case "Consolidation":
      return r.pick([
        () => sent(uncAround(r, `${L.adj} consolidation`, false), [f, -1]),
        () => sent(`${cap(L.adj)} opacity, possibly consolidation.`, ["Lung Opacity", 1], [f, -1]),
        () => sent(`Early consolidation ${L.prep} cannot be excluded.`, [f, -1]),
      ])();
    case "Pneumonia":
      return r.pick([
        () => sent(`${cap(L.adj)} opacity concerning for pneumonia.`, ["Lung Opacity", 1], [f, -1]),
        () => sent(`Cannot exclude pneumonia.`, [f, -1]),
        () => sent(`Early pneumonia cannot be excluded.`, [f, -1]),
        () => sent(uncAround(r, `${L.adj} pneumonia`, false), [f, -1]),
        () =>
          sent(
            `${cap(L.adj)} opacity may represent atelectasis or pneumonia.`,
            ["Lung Opacity", 1],
            ["Atelectasis", -1],
            [f, -1],
          ),
        () => sent(`Infection ${L.prep} cannot be ruled out.`, [f, -1]),
        () =>
          sent(
            `Findings are suspicious for ${L.adj} pneumonia in the appropriate clinical setting.`,
            [f, -1],
          ),
        () =>
          sent(
            `Opacity ${L.prep} likely reflects atelectasis, though infection is not excluded.`,
            ["Lung Opacity", 1],
            ["Atelectasis", -1],
            [f, -1],
          ),
      ])();
    case "Atelectasis":
      return r.pick([
        () => sent(uncAround(r, `${L.adj} atelectasis`, false), [f, -1]),
        () =>
          sent(`${cap(L.adj)} opacity likely reflects atelectasis.`, ["Lung Opacity", 1], [f, -1]),
        () =>
          sent(`Streaky opacity ${L.prep}, which may represent atelectasis.`, ["Lung Opacity", 1], [
            f,
            -1,
          ]),
        () => sent(`Possible ${L.adj} atelectasis.`, [f, -1]),
      ])();
    case "Lung Opacity":
      return r.pick([
        () => sent(uncAround(r, `subtle ${L.adj} opacity`, true), [f, -1]),
        () => sent(`Questionable faint opacity ${L.prep}.`, [f, -1]),
        () =>
          sent(`Possible subtle opacity ${L.prep}, which may be due to overlying soft tissue.`, [
            f,
            -1,
          ]),
      ])();
    case "Edema":
      return r.pick([
        () => sent(uncAround(r, "mild interstitial edema", false), [f, -1]),
        () => sent(`Perihilar haziness may reflect mild edema.`, [f, -1]),
        () => sent(`Cannot exclude mild pulmonary edema.`, [f, -1]),
        () => sent(`Possible mild pulmonary vascular congestion.`, [f, -1]),
      ])();
    case "Cardiomegaly":
      return r.pick([
        () =>
          sent(
            `The heart is possibly mildly enlarged, though this may be accentuated by AP technique.`,
            [f, -1],
          ),
        () => sent(`Possible mild cardiomegaly.`, [f, -1]),
        () => sent(`Cardiomegaly cannot be excluded given the AP technique.`, [f, -1]),
        () => sent(`Heart size may be mildly enlarged.`, [f, -1]),
      ])();
    case "Enlarged Cardiomediastinum":
      return r.pick([
        sent(`Apparent widening of the mediastinum may be due to patient rotation.`, [f, -1]),
        sent(`Possible mediastinal widening.`, [f, -1]),
        sent(`The cardiomediastinal silhouette may be enlarged, possibly due to AP technique.`, [
          f,
          -1,
        ]),
      ]);
    case "Fracture": {
      const s = a.side === "bilateral" ? "left" : a.side;
      const o = r.pick(ORDINALS);
      return r.pick([
        sent(`Possible nondisplaced fracture of the ${s} ${o} rib.`, [f, -1]),
        sent(`Subtle cortical irregularity of the ${s} ${o} rib may represent a fracture.`, [
          f,
          -1,
        ]),
        sent(`Cannot exclude a nondisplaced rib fracture.`, [f, -1]),
      ]);
    }
    case "Lung Lesion":
      return r.pick([
        () => sent(uncAround(r, `${L.adj} nodule`, true), [f, -1]),
        () =>
          sent(
            `Nodular opacity ${L.prep} may represent a nipple shadow; repeat with nipple markers is recommended.`,
            ["Lung Opacity", 1],
            [f, -1],
          ),
        () => sent(`A ${L.adj} nodular density could represent a neoplasm.`, [f, -1]),
      ])();
    case "Pleural Other":
      return r.pick([
        sent(`Possible ${a.side === "bilateral" ? "bilateral" : a.side} pleural thickening.`, [
          f,
          -1,
        ]),
        sent(`Irregularity along the lateral pleura may represent pleural thickening.`, [f, -1]),
      ]);
    case "Support Devices":
      throw new RangeError("uncertain(): Support Devices are never hedged here");
  }
}

/** Noun phrases used inside grouped negations ("No focal consolidation, effusion, or pneumothorax"). */
const NEG_NP: Partial<Record<Finding, string[]>> = {
  "Pleural Effusion": [
    "pleural effusion",
    "effusion",
    "pleural effusions",
    "large pleural effusion",
  ],
  "Pneumothorax": ["pneumothorax", "pneumothorax", "pneumothorax"],
  "Consolidation": ["focal consolidation", "consolidation", "confluent consolidation"],
  "Edema": ["pulmonary edema", "edema", "pulmonary vascular congestion", "overt pulmonary edema"],
  "Pneumonia": ["pneumonia", "findings to suggest pneumonia"],
  "Lung Opacity": ["focal airspace opacity", "focal opacity", "airspace disease"],
  "Atelectasis": ["atelectasis"],
};

export const GROUP_NEGATABLE = new Set(Object.keys(NEG_NP) as Finding[]);

function joinList(r: Prng, items: string[]): string {
  if (items.length === 1) return items[0];
  const head = items.slice(0, -1).join(", ");
  return `${head}${items.length > 2 && r.chance(0.5) ? "," : ""} ${r.pick(["or", "or", "and"])} ${
    items[items.length - 1]
  }`;
}

/** One negation sentence covering several findings; `lungsClear` allows "The lungs are clear without …". */
export function groupNegation(r: Prng, fs: Finding[], lungsClear: boolean): Sentence {
  const nps = fs.map((f) => r.pick(NEG_NP[f] ?? [f.toLowerCase()]));
  const list = joinList(r, nps);
  const forms = [
    `No ${list}.`,
    `There is no ${list}.`,
    `No evidence of ${list}.`,
    `Negative for ${list}.`,
    `No ${list} is seen.`,
    `No ${list} is identified.`,
    `There is no evidence of ${list}.`,
    `No definite ${list}.`,
    `No ${list} is present.`,
  ];
  if (lungsClear) {
    forms.push(`The lungs are clear without ${list}.`, `Lungs are clear, without ${list}.`);
  }
  return { text: r.pick(forms), mentions: fs.map((finding) => ({ finding, value: 0 as const })) };
}

/** Stand-alone negation for a finding (label 0). */
export function negation(r: Prng, f: Finding): Sentence {
  switch (f) {
    case "Cardiomegaly":
      return r.pick([
        sent(`Heart size is normal.`, [f, 0]),
        sent(`The heart is normal in size.`, [f, 0]),
        sent(`No cardiomegaly.`, [f, 0]),
        sent(`Normal heart size.`, [f, 0]),
        sent(`The heart size is within normal limits.`, [f, 0]),
        sent(`Heart size and mediastinal contours are normal.`, [f, 0], [
          "Enlarged Cardiomediastinum",
          0,
        ]),
        sent(`The heart is not enlarged.`, [f, 0]),
      ]);
    case "Enlarged Cardiomediastinum":
      return r.pick([
        sent(`The cardiomediastinal silhouette is normal.`, [f, 0]),
        sent(`Normal cardiomediastinal silhouette.`, [f, 0]),
        sent(`Mediastinal contours are within normal limits.`, [f, 0]),
        sent(`The mediastinum is not widened.`, [f, 0]),
        sent(`Cardiomediastinal contours are unremarkable.`, [f, 0]),
      ]);
    case "Fracture":
      return r.pick([
        sent(`No displaced rib fracture is identified.`, [f, 0]),
        sent(`No acute fracture.`, [f, 0]),
        sent(`There is no displaced fracture.`, [f, 0]),
        sent(`No evidence of rib fracture.`, [f, 0]),
      ]);
    case "Lung Lesion":
      return r.pick([
        sent(`No suspicious pulmonary nodules or masses.`, [f, 0]),
        sent(`No focal lung lesion is identified.`, [f, 0]),
        sent(`There is no pulmonary mass.`, [f, 0]),
      ]);
    case "Pleural Other":
      return sent(`No pleural thickening.`, [f, 0]);
    default:
      return groupNegation(r, [f], false);
  }
}

export function resolved(r: Prng, f: Finding, a: FindingAttr): Sentence {
  const L = loc(a);
  const np: Record<Finding, () => string> = {
    "Pleural Effusion": () =>
      a.side === "bilateral" ? "bilateral pleural effusions" : `${a.side} pleural effusion`,
    "Pneumothorax": () => `${a.side === "bilateral" ? "right" : a.side} pneumothorax`,
    "Consolidation": () => `${L.adj} consolidation`,
    "Pneumonia": () => `${L.adj} pneumonia`,
    "Atelectasis": () => `${L.adj} atelectasis`,
    "Lung Opacity": () => `${L.adj} opacity`,
    "Edema": () => r.pick(["pulmonary edema", "interstitial edema", "edema"]),
    "Cardiomegaly": () => "cardiomegaly",
    "Enlarged Cardiomediastinum": () => "mediastinal widening",
    "Fracture": () => "fracture",
    "Lung Lesion": () => `${L.adj} nodule`,
    "Pleural Other": () => "pleural thickening",
    "Support Devices": () => "device",
  };
  return sent(resolvedAround(r, np[f]()), [f, 0]);
}

export function findingSentence(
  r: Prng,
  f: Finding,
  mode: "pos" | "unc",
  a: FindingAttr,
  trend: Trend,
): Sentence {
  return mode === "pos" ? positive(r, f, a, trend) : uncertain(r, f, a);
}

// ---- devices ------------------------------------------------------------------------------

const SD: Finding = "Support Devices";

/** A present device (label 1); `kept` = it was there on the prior study. */
export function device(r: Prng, k: DeviceKind, s: Side, kept: boolean): Sentence {
  const cm = `${r.range(2, 7)}${r.chance(0.3) ? ".5" : ""}`;
  const pos = kept
    ? r.pick(["in unchanged position", "unchanged in position", "in stable position"])
    : "";
  const bank: Record<DeviceKind, string[]> = {
    ett: [
      `Endotracheal tube terminates ${cm} cm above the carina.`,
      `The ET tube tip is ${cm} cm from the carina.`,
      `The endotracheal tube is in standard position${kept ? ", unchanged" : ""}.`,
      `Endotracheal tube ${pos || "in appropriate position"}.`,
    ],
    enteric: [
      `Enteric tube courses below the diaphragm with tip in the stomach.`,
      `Nasogastric tube tip is in the stomach.`,
      `An orogastric tube extends into the stomach.`,
      `Dobhoff tube tip projects over the duodenum.`,
      `Feeding tube ${pos || "terminates in the stomach"}.`,
    ],
    cvc: [
      `${cap(s)} internal jugular central venous catheter terminates in the mid SVC.`,
      `${cap(s)} subclavian central line tip at the cavoatrial junction.`,
      `${cap(s)} IJ line ${pos || "ends in the upper SVC"}.`,
    ],
    picc: [
      `${cap(s)} PICC line tip in the lower SVC.`,
      `${cap(s)}-sided PICC terminates at the cavoatrial junction.`,
      `${cap(s)} upper extremity PICC ${pos || "ends in the mid SVC"}.`,
    ],
    swan: [
      `Swan-Ganz catheter tip in the right pulmonary artery.`,
      `Pulmonary artery catheter ${pos || "terminates in the right main pulmonary artery"}.`,
    ],
    pacer: [
      `Left chest wall pacemaker with leads in the right atrium and right ventricle.`,
      `Dual-lead pacemaker/ICD device ${pos || "is in place"}.`,
      `Cardiac pacemaker leads are in standard position.`,
      `Left-sided pacemaker ${pos || "is present"}.`,
    ],
    sternotomy: [
      `Median sternotomy wires are intact.`,
      `Post-sternotomy changes with intact wires.`,
      `Sternal wires and mediastinal clips from prior CABG.`,
      `Intact median sternotomy wires and mediastinal surgical clips.`,
    ],
    chestTube: [
      `${cap(s === "bilateral" ? "right" : s)} chest tube ${pos || "in place"}.`,
      `${cap(s === "bilateral" ? "right" : s)} pigtail catheter at the base.`,
      `A ${s === "bilateral" ? "right" : s} basilar chest tube ${pos || "is present"}.`,
    ],
  };
  return sent(r.pick(bank[k]), [SD, 1]);
}

/** A device taken out since the prior study (label 0 unless another device is present). */
export function deviceRemoved(r: Prng, k: DeviceKind, s: Side): Sentence {
  const name: Record<DeviceKind, string[]> = {
    ett: ["endotracheal tube", "ET tube"],
    enteric: ["nasogastric tube", "enteric tube", "feeding tube"],
    cvc: [`${s} internal jugular line`, `${s} central venous catheter`],
    picc: [`${s} PICC line`, "PICC"],
    swan: ["Swan-Ganz catheter", "pulmonary artery catheter"],
    pacer: ["pacemaker"],
    sternotomy: ["sternotomy wires"],
    chestTube: [`${s === "bilateral" ? "right" : s} chest tube`],
  };
  const n = r.pick(name[k]);
  return sent(
    r.pick([
      `Interval removal of the ${n}.`,
      `The ${n} has been removed.`,
      `${cap(n)} has been removed.`,
      `Since the prior study, the ${n} has been removed.`,
    ]),
    [SD, 0],
  );
}

// ---- distractors, no labelled mention ------------------------------------------------------

export interface DistractorContext {
  lungsClear: boolean;
  bonesIntact: boolean;
  vesselsNormal: boolean;
}

export function distractor(r: Prng, c: DistractorContext): string {
  const always = [
    "Degenerative changes are seen in the thoracic spine.",
    "Atherosclerotic calcifications of the aortic knob.",
    "The aorta is tortuous.",
    "The visualized upper abdomen is unremarkable.",
    "Hilar contours are normal.",
    "The trachea is midline.",
    "Lung volumes are low.",
    "Low lung volumes accentuate the bronchovascular markings.",
    "Mild elevation of the right hemidiaphragm.",
    "Moderate hiatal hernia is noted.",
    "Exaggerated thoracic kyphosis.",
    "The patient is rotated to the right.",
    "Study is limited by patient positioning.",
    "Calcified granuloma in the right upper lobe.",
    "Lungs are hyperinflated with flattening of the diaphragms.",
    "Surgical clips project over the right upper quadrant.",
    "Calcification of the mitral annulus.",
    "Overlying EKG leads partially obscure the lung bases.",
    "Nipple shadows project over the lung bases.",
    "Gaseous distention of the stomach.",
    "Anterior osteophytes of the thoracic spine.",
    "Old granulomatous disease.",
    "Mild biapical scarring.",
    "The aortic arch is calcified.",
    "Air-fluid level in the esophagus.",
    "Single frontal view of the chest.",
    "Skin fold projects over the right hemithorax.",
  ];
  const lungs = [
    "The lungs are clear.",
    "Lungs are well expanded and clear.",
    "The lungs are clear bilaterally.",
    "Clear lungs.",
    "The lungs are well aerated.",
  ];
  const bones = [
    "Osseous structures are intact.",
    "No acute osseous abnormality.",
    "Bony structures are unremarkable.",
    "The visualized osseous structures are grossly intact.",
  ];
  const vessels = [
    "Pulmonary vasculature is normal.",
    "Pulmonary vascularity is within normal limits.",
  ];
  const pool = [...always];
  if (c.lungsClear) pool.push(...lungs, ...lungs);
  if (c.bonesIntact) pool.push(...bones);
  if (c.vesselsNormal) pool.push(...vessels);
  return r.pick(pool);
}
