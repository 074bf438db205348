/** Errors of the tokenizer loaders. */

/** A tokenizer file is missing or malformed, or lacks a special token the model needs. */
export class TokenizerError extends Error {
  override name = "TokenizerError";
}
