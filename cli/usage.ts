/**
 * What every `knhk` subcommand shares about how it fails: a bad command line exits with status 2,
 * saying why above the usage; one of knhk's typed errors is told in a line, not a stack trace.
 */
import { CryptoError } from '../protocols/crypto/errors.js';
import { KnhkError } from '../schema/errors.js';

/** Arguments a command cannot run with (exit status 2). */
export class UsageError extends Error {}

/** Whether `error` says the command line is wrong: a {@link UsageError}, or one of `util.parseArgs`'s (unknown option, missing value). */
export function isUsageError(error: unknown): error is Error {
  return error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
}

/**
 * One of knhk's typed errors (each with a stable code) told for a user: its name, code and message,
 * and its causes one per line; undefined for any other error, whose stack is what helps.
 */
export function describeTypedError(error: unknown): string | undefined {
  if (!(error instanceof KnhkError || error instanceof CryptoError)) return undefined;
  const lines = [`${error.name} ${error.code}: ${error.message}`];
  for (let cause = error.cause; cause instanceof Error; cause = cause.cause) lines.push(`  because ${cause.name}${'code' in cause ? ` ${String(cause.code)}` : ''}: ${cause.message}`);
  return lines.join('\n');
}
