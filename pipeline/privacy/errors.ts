/** Errors raised by the privacy layer (sampling, DP step, ledger, budget). */

/**
 * A step would take the run past its privacy budget. Raised BEFORE the step is computed or
 * written to the ledger, so the spent budget never exceeds the target.
 */
export class PrivacyBudgetError extends Error {
  override name = "PrivacyBudgetError";
  constructor(
    /** ε spent by the steps already in the ledger. */
    readonly spent: number,
    /** ε after the refused step. */
    readonly next: number,
    /** The configured budget. */
    readonly target: number,
    message?: string,
  ) {
    super(
      message ??
        `privacy budget exhausted: the next step would reach ε = ${next.toPrecision(6)} ` +
          `> target ε = ${target} (already spent ε = ${spent.toPrecision(6)}). ` +
          `Stop here, or raise the budget in the config if that is what was approved.`,
    );
  }
}

/** The ledger file is corrupt or inconsistent; the message names the file and line. */
export class LedgerError extends Error {
  override name = "LedgerError";
}

/** The DP step machinery was used in a way that would break the guarantee (or a bad setting). */
export class DpConfigError extends Error {
  override name = "DpConfigError";
}
