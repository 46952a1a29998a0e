/**
 * What every `knhk` subcommand shares about its command line: a bad one exits with status 2,
 * saying why above the usage.
 */

/** Arguments a command cannot run with (exit status 2). */
export class UsageError extends Error {}

/** Whether `error` says the command line is wrong: a {@link UsageError}, or one of `util.parseArgs`'s (unknown option, missing value). */
export function isUsageError(error: unknown): error is Error {
  return error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
}
