#!/usr/bin/env node
// `rampart check-policies FILE...`: checks policies files offline with the parser the limiter
// uses (`checkPolicySet`, over the default policies), printing every mistake with its place, and
// each policy's Redis memory per identity (a warning above MEMORY_WARN_BYTES).
// Exit 0: every file is valid; 1: a file has mistakes; 2: usage, or a file cannot be read.
// `rampart peek|reset|block|unblock ...`: the operator's controls against REDIS_URL (operator-cli.ts).
import { readFileSync } from 'node:fs';
import { CONFIG_DEFAULTS, defaultPolicies } from '../config';
import { checkPolicySet, formatBytes, MEMORY_PER_IDENTITY, MEMORY_WARN_BYTES, memoryPerIdentity } from '../limit';
import { OPERATOR_COMMANDS, OPERATOR_USAGE, operatorMain } from './operator-cli';

const USAGE = 'usage: rampart check-policies FILE...';

/** Runs the command; returns the exit code. `out`/`err` receive whole lines. */
export function main(argv: readonly string[], out: (line: string) => void, err: (line: string) => void): number {
  const [command, ...files] = argv;
  if (command !== 'check-policies' || files.length === 0) {
    err(USAGE);
    if (command !== 'check-policies') err(OPERATOR_USAGE);
    return 2;
  }
  const defaults = defaultPolicies(CONFIG_DEFAULTS.RATE_LIMIT_DEFAULT_RPS, CONFIG_DEFAULTS.RATE_LIMIT_DEFAULT_BURST);
  let code = 0;
  for (const file of files) {
    let document: unknown;
    try {
      document = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      err(`${file}: ${e instanceof SyntaxError ? `not valid JSON (${reason})` : `cannot be read (${reason})`}`);
      code = Math.max(code, e instanceof SyntaxError ? 1 : 2);
      continue;
    }
    const { errors, set } = checkPolicySet(document, defaults);
    if (set === undefined) {
      for (const e of errors) err(`${file}: ${e.message}`);
      code = Math.max(code, 1);
      continue;
    }
    out(`${file}: ok (${Object.keys(set.policies).length} policies with the defaults, ${set.surfaces?.length ?? 0} surfaces)`);
    // What each policy keeps in Redis per identity, and a word where a million identities add up.
    for (const [name, policy] of Object.entries(set.policies)) {
      const bytes = memoryPerIdentity(policy);
      out(
        `  ${name}: ${policy.algorithm}, about ${formatBytes(bytes)} of Redis per identity (${formatBytes(bytes * 1_000_000)} per million)`,
      );
      if (bytes > MEMORY_WARN_BYTES) {
        const instead =
          policy.algorithm === 'sliding_window'
            ? `; "sliding_window_counter" keeps the same limit in ${formatBytes(MEMORY_PER_IDENTITY.integerKeyBytes)} (its bound: docs/rate-limiting.md)`
            : '';
        out(
          `  warning: policy "${name}" keeps about ${formatBytes(bytes)} per identity, above ${formatBytes(MEMORY_WARN_BYTES)}${instead}`,
        );
      }
    }
  }
  return code;
}

if (require.main === module) {
  const [command, ...rest] = process.argv.slice(2);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const err = (line: string) => process.stderr.write(`${line}\n`);
  if ((OPERATOR_COMMANDS as readonly string[]).includes(command ?? ''))
    void operatorMain(command as (typeof OPERATOR_COMMANDS)[number], rest, out, err).then((code) => {
      process.exitCode = code;
    });
  else process.exitCode = main(process.argv.slice(2), out, err);
}
