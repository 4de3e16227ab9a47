import { z } from 'zod';
import { CONFIG_DEFAULTS } from './defaults';

/**
 * Thrown when the environment is invalid. `message` is one line naming the variable and the
 * fix; `variable` is the variable at fault.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

/** An environment: `process.env` or a plain object standing in for it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** How one environment variable is parsed and described in its error message. */
export interface Variable<T> {
  readonly schema: z.ZodType<T, string>;
  /** What a valid value looks like, for the error message. */
  readonly expected: string;
  /** Never echo the value (it may carry a password). */
  readonly secret?: boolean;
  /**
   * What unsetting the variable gives, for the error message, where {@link CONFIG_DEFAULTS}
   * cannot say it alone (a default that depends on another variable, or none but a behaviour).
   */
  readonly unset?: string;
}

/** `"true"` or `"false"`, nothing else: a switch is never coerced. */
export const bool = z.enum(['true', 'false']).transform((v) => v === 'true');

/** The parsed values of a table of variables; `undefined` where unset (or empty). */
export type Parsed<S extends Record<string, Variable<unknown>>> = {
  [K in keyof S]: z.output<S[K]['schema']> | undefined;
};

function describeDefault(name: string, spec: Variable<unknown>): string {
  if (spec.unset !== undefined) return `unset it (${spec.unset})`;
  const d = (CONFIG_DEFAULTS as Record<string, unknown>)[name];
  return d === undefined ? 'unset it' : `unset it for the default (${String(d)})`;
}

/**
 * Parses the variables of `specs` from `env`, in the table's order, reading no other variable.
 * Throws {@link ConfigError} at the first malformed one.
 */
export function parseVariables<S extends Record<string, Variable<unknown>>>(specs: S, env: Env): Parsed<S> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(specs)) {
    const raw = env[name];
    // An empty value (`REDIS_URL=` in an env file) means unset.
    if (raw === undefined || raw === '') continue;
    const spec = specs[name] as Variable<unknown>;
    const result = spec.schema.safeParse(raw);
    if (!result.success) {
      const shown = spec.secret === true ? '' : `=${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}...` : raw)}`;
      throw new ConfigError(
        name,
        `${name}${shown} is invalid: expected ${spec.expected}. Fix: set ${name} to a valid value or ${describeDefault(name, spec)}.`,
      );
    }
    out[name] = result.data;
  }
  return out as Parsed<S>;
}
