/** Typed error for invalid accountant arguments or an unreachable privacy target. */
export class AccountantError extends Error {
  /** The argument (or CLI flag) at fault, when there is one. */
  readonly field?: string;
  constructor(message: string, field?: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = "AccountantError";
    this.field = field;
  }
}
