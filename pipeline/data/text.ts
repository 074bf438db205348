/**
 * Reading input files strictly: UTF-8 with fatal decoding (a non-UTF-8 byte is an error that
 * names the line, never a silent U+FFFD), plus the hashing used for cache keys.
 */
import { createHash } from "node:crypto";
import { DataError } from "../errors.ts";

const strict = new TextDecoder("utf-8", { fatal: true });

/** Line (1-based) holding the first byte sequence that is not valid UTF-8. */
function firstBadLine(bytes: Uint8Array): number {
  let line = 1, start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        strict.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}

/** Read a file's bytes; a missing or unreadable file is a DataError naming it. */
export async function readBytes(path: string, where = path): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(where, "unreadable", `file not found: ${path}`);
    }
    throw new DataError(where, "unreadable", `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Decode UTF-8 strictly (BOM dropped); a bad byte is a DataError naming `file:line`. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    const s = strict.decode(bytes);
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
  } catch {
    const line = firstBadLine(bytes);
    throw new DataError(`${file}:${line}`, "not-utf8", "not valid UTF-8 text");
  }
}

/** Collapse every whitespace run to one space and trim; `___` de-identification spans stay. */
export function normalizeSpace(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** An incremental digest over many files: path and length framed so boundaries cannot blur. */
export class FolderDigest {
  private h = createHash("sha256");
  files = 0;
  add(relPath: string, bytes: Uint8Array): void {
    this.h.update(`${relPath}\0${bytes.length}\0`);
    this.h.update(bytes);
    this.files++;
  }
  hex(): string {
    return this.h.digest("hex");
  }
}
