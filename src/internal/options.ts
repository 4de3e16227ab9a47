/**
 * Checks of factory options. Factories run them once, when called, never per request; every
 * refusal is an {@link OptionsError} worded `<component>: <option> must be <expectation>, got <value>`.
 */

/** How a refused value is shown: strings quoted (`''` and `' 5'` stay visible), the rest as `String()` does. */
function show(value: unknown, depth = 0): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (depth > 2) return '…';
  if (Array.isArray(value)) return `[${value.map((v) => show(v, depth + 1)).join(', ')}]`;
  // A plain object (two options given together): its fields, not "[object Object]".
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype)
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${k}: ${show(v, depth + 1)}`)
      .join(', ')} }`;
  return String(value);
}

/**
 * A factory refused one of its options (misconfiguration, thrown when the factory is called).
 * A `TypeError`, as such refusals have always been; `.option` names the option, `.component`
 * the factory.
 */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';

  /**
   * @param component the factory, as messages name it (`loadShedder`, `lifecycle`, ...)
   * @param option the option, as the caller spelled it (`maxInFlight`, `cleanup "redis" timeoutMs`)
   * @param expectation what would have been accepted, after "must be" (`a positive integer`)
   * @param value what was given
   * @param problem instead of "must be …, got …", for a rule between options (`unknown policy "x"`)
   */
  constructor(
    readonly component: string,
    readonly option: string,
    expectation: string,
    value: unknown,
    problem?: string,
  ) {
    super(problem === undefined ? `${component}: ${option} must be ${expectation}, got ${show(value)}` : `${component}: ${problem}`);
  }
}

/** Checks that `value` is a number in a range, and returns it; else throws an {@link OptionsError}. */
export type NumberCheck = (component: string, option: string, value: unknown) => number;

function numberCheck(expectation: string, accepts: (value: number) => boolean): NumberCheck {
  return (component, option, value) => {
    if (typeof value !== 'number' || !accepts(value)) throw new OptionsError(component, option, expectation, value);
    return value;
  };
}

/** A finite number > 0. */
export const positiveNumber = numberCheck('a positive number', (v) => Number.isFinite(v) && v > 0);
/** A finite number ≥ 0. */
export const nonNegativeNumber = numberCheck('a non-negative number', (v) => Number.isFinite(v) && v >= 0);
/** An integer > 0. */
export const positiveInteger = numberCheck('a positive integer', (v) => Number.isInteger(v) && v > 0);
/** An integer ≥ 0. */
export const nonNegativeInteger = numberCheck('a non-negative integer', (v) => Number.isInteger(v) && v >= 0);
