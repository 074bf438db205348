/**
 * CheXpert label conventions: values 1 / 0 / −1 / blank, the uncertainty policy, and the
 * labeler's "No Finding" rule. Policies produce a target and a MASK, so an ignored label is
 * excluded from the loss and from every metric rather than being silently called negative.
 */
import type { UncertainPolicy } from "../config.ts";

/** 1 positive, 0 negative, −1 uncertain, null = not mentioned (blank). */
export type RawLabel = 1 | 0 | -1 | null;

/**
 * Parse one label cell. Accepts numbers 1/0/−1, their strings ("1", "1.0", "-1.0", …), "" and
 * null (blank), and JSON booleans. Returns undefined for anything else (the caller names the row).
 */
export function parseLabel(v: unknown): RawLabel | undefined {
  if (v === null || v === undefined) return null;
  if (v === true) return 1;
  if (v === false) return 0;
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string") {
    const s = v.trim();
    if (s === "") return null;
    if (!/^[+-]?\d+(\.0*)?$/.test(s)) return undefined;
    n = Number(s);
  } else return undefined;
  if (n === 1 || n === 0 || n === -1) return (n === 0 ? 0 : n) as RawLabel;
  return undefined;
}

export const NO_FINDING = "No Finding";
export const SUPPORT_DEVICES = "Support Devices";

/**
 * CheXpert "No Finding": 1 iff no other label except Support Devices is 1 or −1; otherwise blank
 * (the labeler never emits 0 or −1 for it). Returns a new array; labels other than No Finding
 * are unchanged. Throws if `names` lacks "No Finding".
 */
export function applyNoFindingRule(raw: readonly RawLabel[], names: readonly string[]): RawLabel[] {
  const nf = names.indexOf(NO_FINDING);
  if (nf < 0) throw new Error(`the No Finding rule needs a "${NO_FINDING}" label`);
  const out = [...raw];
  let finding = false;
  for (let i = 0; i < raw.length; i++) {
    if (i === nf || names[i] === SUPPORT_DEVICES) continue;
    if (raw[i] === 1 || raw[i] === -1) finding = true;
  }
  out[nf] = finding ? null : 1;
  return out;
}

/** Targets and mask under a policy: blank → negative (counted), −1 → per policy. */
export function applyLabelPolicy(
  raw: readonly RawLabel[],
  policy: UncertainPolicy,
): { target: Uint8Array; mask: Uint8Array } {
  const target = new Uint8Array(raw.length);
  const mask = new Uint8Array(raw.length).fill(1);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (v === 1) target[i] = 1;
    else if (v === -1) {
      if (policy === "positive") target[i] = 1;
      else if (policy === "ignore") mask[i] = 0;
    }
  }
  return { target, mask };
}
