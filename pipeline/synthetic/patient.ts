/**
 * Latent clinical state of a synthetic patient across studies. The state is what is "really" on the
 * film; the report text is rendered from it (report.ts) and the labels are derived from the text
 * alone, never from this state. Prevalences and correlations are tuned towards MIMIC-CXR's
 * CheXpert label rates (edema with cardiomegaly and effusion, pneumonia with consolidation/opacity).
 */
import type { Prng } from "./prng.ts";
import type { Finding } from "./labels.ts";

export type Side = "left" | "right" | "bilateral";

/** Attributes of one present finding. `sev` 0..3 = trace/small/moderate/large (per finding words). */
export interface FindingAttr {
  side: Side;
  sev: number;
  /** which location word of the side's list (phrases.ts); fixed so findings and impression agree */
  loc: number;
}

export const DEVICE_KINDS = [
  "ett",
  "enteric",
  "cvc",
  "picc",
  "swan",
  "pacer",
  "sternotomy",
  "chestTube",
] as const;
export type DeviceKind = typeof DEVICE_KINDS[number];

/** What one study shows. Support Devices is carried by `devices`, not by `present`. */
export interface StudyState {
  present: Map<Finding, FindingAttr>;
  devices: Map<DeviceKind, Side>;
}

export interface Profile {
  chf: boolean;
  icu: boolean;
  infection: boolean;
  oncology: boolean;
  trauma: boolean;
  /** decades, for the indication text only */
  age: number;
  sex: "M" | "F";
}

export function drawProfile(r: Prng): Profile {
  return {
    chf: r.chance(0.2),
    icu: r.chance(0.1),
    infection: r.chance(0.16),
    oncology: r.chance(0.06),
    trauma: r.chance(0.02),
    age: r.range(2, 9),
    sex: r.chance(0.5) ? "M" : "F",
  };
}

function side(r: Prng, pBilateral: number): Side {
  return r.chance(pBilateral) ? "bilateral" : r.chance(0.5) ? "left" : "right";
}

/**
 * Draw the next study's state. Chronic findings (cardiomegaly, lesion, pleural thickening, healed
 * fractures, pacemakers, sternotomy wires) persist; acute ones follow a sticky Markov chain so that
 * comparisons ("unchanged", "interval resolution") occur in the text.
 */
export function nextState(r: Prng, p: Profile, prev: StudyState | null): StudyState {
  const present = new Map<Finding, FindingAttr>();
  const devices = new Map<DeviceKind, Side>();
  const was = (f: Finding) => prev?.present.get(f);
  const keepOr = (f: Finding, stay: number, onset: number, pBilat: number, sevMax = 3) => {
    const old = was(f);
    if (old && r.chance(stay)) {
      // severity drifts by at most one step so that trends in the text are plausible
      const sev = Math.max(0, Math.min(sevMax, old.sev + r.pick([-1, 0, 0, 1])));
      present.set(f, { side: old.side, sev, loc: old.loc });
    } else if (!old && r.chance(onset)) {
      present.set(f, { side: side(r, pBilat), sev: r.int(sevMax + 1), loc: r.int(1000) });
    }
  };

  keepOr("Cardiomegaly", 0.93, p.chf ? 0.55 : 0.06, 0, 2);
  keepOr("Edema", 0.45, p.chf ? 0.38 : p.icu ? 0.14 : 0.018, 1, 2);
  const edema = present.has("Edema");
  keepOr(
    "Pleural Effusion",
    0.6,
    edema ? 0.65 : p.chf ? 0.3 : p.icu ? 0.3 : p.oncology ? 0.3 : 0.08,
    edema ? 0.6 : 0.3,
  );
  keepOr("Atelectasis", 0.4, p.icu ? 0.45 : present.has("Pleural Effusion") ? 0.35 : 0.15, 0.45);
  keepOr("Pneumonia", 0.45, p.infection ? 0.4 : p.icu ? 0.14 : 0.02, 0.15);
  const pna = present.get("Pneumonia");
  if (pna && r.chance(0.4)) present.set("Consolidation", { ...pna });
  else keepOr("Consolidation", 0.3, 0.012, 0.1);
  const opacityOnset = pna ? 0.5 : present.has("Atelectasis") ? 0.2 : edema ? 0.15 : 0.055;
  if (pna && r.chance(opacityOnset)) present.set("Lung Opacity", { ...pna });
  else keepOr("Lung Opacity", 0.35, opacityOnset, 0.25);
  keepOr("Pneumothorax", 0.45, p.trauma ? 0.25 : p.icu ? 0.05 : 0.006, 0.02);
  keepOr("Lung Lesion", 0.9, p.oncology ? 0.6 : 0.012, 0.15);
  keepOr("Enlarged Cardiomediastinum", 0.7, p.trauma ? 0.1 : p.icu ? 0.04 : 0.015, 0);
  keepOr("Fracture", 0.7, p.trauma ? 0.5 : 0.006, 0.1);
  keepOr("Pleural Other", 0.85, p.oncology ? 0.06 : 0.005, 0.2);

  const dev = (k: DeviceKind, stay: number, onset: number, s: Side = "right") => {
    const old = prev?.devices.get(k);
    if (old !== undefined ? r.chance(stay) : r.chance(onset)) devices.set(k, old ?? s);
  };
  dev("ett", 0.55, p.icu ? 0.4 : 0.004);
  dev("enteric", 0.65, devices.has("ett") ? 0.8 : p.icu ? 0.15 : 0.008);
  dev("cvc", 0.65, p.icu ? 0.3 : 0.006, r.chance(0.75) ? "right" : "left");
  dev("picc", 0.7, p.infection ? 0.1 : 0.015, r.chance(0.6) ? "right" : "left");
  dev("swan", 0.4, p.icu && p.chf ? 0.3 : 0.002);
  dev("pacer", 1, p.chf ? 0.14 : 0.012, "left");
  dev("sternotomy", 1, p.chf ? 0.14 : 0.015);
  const ptx = present.get("Pneumothorax");
  dev(
    "chestTube",
    0.6,
    ptx ? 0.65 : p.icu ? 0.04 : 0.003,
    ptx && ptx.side !== "bilateral" ? ptx.side : "right",
  );
  return { present, devices };
}
