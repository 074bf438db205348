/**
 * BERT-style embeddings (shaders/embedding.wgsl): word[id] + position[t + offset] + type[tt],
 * and a deterministic backward that *adds* into the table gradients (zero them once per step;
 * micro-batches then accumulate). No float atomics: each table row is summed by one owner in
 * token order, so results are bit-reproducible.
 */
import { grid, params, type Runtime } from "../runtime.ts";
import { ShapeError } from "../errors.ts";
import { expectShape, type GpuTensor } from "../tensor.ts";

const FILE = "embedding.wgsl";

interface Tokens {
  /** u32 [B, T] token ids */
  ids: GpuTensor;
  /** u32 [B, T] token type (segment) ids; all zeros for single-segment input */
  typeIds: GpuTensor;
  /** First position row used (RoBERTa: padding_idx + 1; BERT/ALBERT: 0). */
  positionOffset: number;
}

export interface EmbeddingForward extends Tokens {
  /** [V, E] */
  word: GpuTensor;
  /** [P, E] */
  position: GpuTensor;
  /** [TV, E] */
  tokenType: GpuTensor;
  /** [B, T, E] */
  out: GpuTensor;
}

export interface EmbeddingBackward extends Tokens {
  /** [B, T, E] */
  dout: GpuTensor;
  /** Table gradients to add into; omit a table that is frozen. */
  dword?: GpuTensor;
  dposition?: GpuTensor;
  dtokenType?: GpuTensor;
}

function tokens(op: string, a: Tokens): [number, number] {
  if (a.ids.shape.length !== 2) {
    throw new ShapeError(
      `${op}: tensor "ids" (${a.ids.label}) has shape [${a.ids.shape}], expected [B, T]`,
    );
  }
  expectShape(op, "ids", a.ids, a.ids.shape, "u32");
  expectShape(op, "typeIds", a.typeIds, a.ids.shape, "u32");
  if (!Number.isInteger(a.positionOffset) || a.positionOffset < 0) {
    throw new RangeError(
      `${op}: positionOffset ${a.positionOffset} must be a non-negative integer`,
    );
  }
  return [a.ids.shape[0], a.ids.shape[1]];
}

function table(op: string, name: string, t: GpuTensor, e: number): number {
  if (t.shape.length !== 2 || t.shape[1] !== e || t.shape[0] < 1) {
    throw new ShapeError(
      `${op}: tensor "${name}" (${t.label}) has shape [${t.shape}], expected [*, ${e}]`,
    );
  }
  expectShape(op, name, t, t.shape);
  return t.shape[0];
}

function uniforms(
  b: number,
  t: number,
  e: number,
  rows: [number, number, number],
  offset: number,
): ArrayBuffer {
  return params([b * t, t, e, rows[0], rows[1], rows[2], offset]);
}

function checkPositions(op: string, t: number, offset: number, positions: number): void {
  if (t + offset > positions) {
    throw new ShapeError(
      `${op}: sequence length ${t} + position offset ${offset} exceeds the ${positions} position embeddings`,
    );
  }
}

export function embeddingForward(rt: Runtime, a: EmbeddingForward): void {
  const op = "embeddingForward";
  const [b, t] = tokens(op, a);
  const e = a.out.shape[2];
  expectShape(op, "out", a.out, [b, t, e]);
  const rows: [number, number, number] = [
    table(op, "word", a.word, e),
    table(op, "position", a.position, e),
    table(op, "tokenType", a.tokenType, e),
  ];
  checkPositions(op, t, a.positionOffset, rows[1]);
  rt.dispatch({
    shader: FILE,
    entry: "forward",
    bindings: { 1: a.ids, 2: a.typeIds, 3: a.word, 4: a.position, 5: a.tokenType, 6: a.out },
    params: uniforms(b, t, e, rows, a.positionOffset),
    workgroups: grid(b * t),
  });
}

export function embeddingBackward(rt: Runtime, a: EmbeddingBackward): void {
  const op = "embeddingBackward";
  const [b, t] = tokens(op, a);
  const e = a.dout.shape[2];
  expectShape(op, "dout", a.dout, [b, t, e]);
  const rows: [number, number, number] = [
    a.dword ? table(op, "dword", a.dword, e) : 1,
    a.dposition ? table(op, "dposition", a.dposition, e) : 1,
    a.dtokenType ? table(op, "dtokenType", a.dtokenType, e) : 1,
  ];
  if (a.dposition) checkPositions(op, t, a.positionOffset, rows[1]);
  const u = uniforms(b, t, e, rows, a.positionOffset);
  const n = b * t;
  if (a.dword) {
    const links = rt.empty([n], "embedding links", "u32");
    rt.dispatch({
      shader: FILE,
      entry: "bwd_links",
      bindings: { 1: a.ids, 8: links },
      params: u,
      workgroups: grid(Math.ceil(n / 64)),
    });
    rt.dispatch({
      shader: FILE,
      entry: "bwd_word",
      bindings: { 1: a.ids, 7: a.dout, 9: links, 10: a.dword },
      params: u,
      workgroups: grid(n),
    });
    rt.release(links); // later users are recorded after these reads
  }
  if (a.dposition) {
    rt.dispatch({
      shader: FILE,
      entry: "bwd_pos",
      bindings: { 7: a.dout, 11: a.dposition },
      params: u,
      workgroups: [Math.ceil(e / 64), t],
    });
  }
  if (a.dtokenType) {
    rt.dispatch({
      shader: FILE,
      entry: "bwd_type",
      bindings: { 2: a.typeIds, 7: a.dout, 12: a.dtokenType },
      params: u,
      workgroups: [Math.ceil(e / 64), rows[2]],
    });
  }
}
