/** Shared ending of every CLI: exit code from main, typed errors as one actionable line. */

const KNOWN = new Set([
  "ConfigError",
  "DataError",
  "DeviceError",
  "PrivacyBudgetError",
  "CheckpointError",
  "TokenizerError",
  "AccountantError",
  "LedgerError",
]);

/** Run `main(Deno.args)` and exit with its code; unexpected errors also print their stack. */
export async function runMain(main: (args: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    const err = e as Error;
    console.error(`${KNOWN.has(err.name) ? err.name : "error"}: ${err.message}`);
    if (!KNOWN.has(err.name)) console.error(err.stack);
    Deno.exit(1);
  }
}
