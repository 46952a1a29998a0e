/**
 * Typed errors of the actor runtime. Every failure a caller can observe carries a stable
 * `code`, so programs branch on codes rather than on message text.
 */

export { KnhkError, SchemaError } from '../schema/errors.js';
import { KnhkError, SchemaError } from '../schema/errors.js';

/** An `ask` received no reply within its timeout. */
export class AskTimeout extends KnhkError {
  /** The timeout that elapsed, in milliseconds. */
  readonly timeoutMs: number;
  constructor(target: string, timeoutMs: number) {
    super('ASK_TIMEOUT', `no reply from ${target} within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** Bytes received from another thread or the network could not be decoded into a valid message. */
export class DecodeError extends KnhkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DECODE_ERROR', message, options);
  }
}

/** An encoded message exceeded the configured frame limit. */
export class MessageTooLarge extends KnhkError {
  constructor(size: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** The receiver's mailbox was full and its overflow policy is `reject`. */
export class MailboxFull extends KnhkError {
  constructor(target: string) {
    super('MAILBOX_FULL', `mailbox of ${target} is full`);
  }
}

/** The target incarnation is not running (stopped, crashed, or never existed). */
export class ActorNotRunning extends KnhkError {
  constructor(target: string, reason: string) {
    super('ACTOR_NOT_RUNNING', `${target} is not running (${reason})`);
  }
}

/**
 * Spawning an actor failed (missing export, bad arguments, duplicate name, start hook threw). Its
 * `cause` is what the start hook threw; for an actor in a worker thread, that error as it crossed
 * the thread: a plain `{ name, message, code?, stack? }`.
 */
export class SpawnError extends KnhkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SPAWN_ERROR', message, options);
  }
}

/** An option passed to the runtime is invalid. */
export class ConfigError extends KnhkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_ERROR', message, options);
  }
}

/** The actor system has been stopped (or its root supervisor gave up). */
export class SystemStopped extends KnhkError {
  constructor() {
    super('SYSTEM_STOPPED', 'the actor system is stopped');
  }
}

/** A handler replied with a value its behavior's reply schema rejects. */
export class ReplyRejected extends KnhkError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('REPLY_REJECTED', `${target} replied with an invalid value`, options);
  }
}

/** An actor's handler failed while processing an `ask`; the asker receives this. */
export class RemoteFailure extends KnhkError {
  constructor(target: string, message: string) {
    super('REMOTE_FAILURE', `${target} failed while handling the request: ${message}`);
  }
}

/** Largest delay a Node timer honours (2³¹−1 ms); longer ones would silently fire at once. */
export const MAX_DELAY_MS = 0x7fffffff;

/** Throws `ConfigError` unless `ms` is a delay a timer can honour. */
export function checkDelay(ms: number, what: string): void {
  if (!(ms >= 0 && ms <= MAX_DELAY_MS)) throw new ConfigError(`${what} must be between 0 and ${MAX_DELAY_MS} ms, got ${ms}`);
}

const BY_CODE = new Map<string, { prototype: KnhkError; name: string }>([
  ['ASK_TIMEOUT', AskTimeout],
  ['DECODE_ERROR', DecodeError],
  ['SCHEMA_ERROR', SchemaError],
  ['MESSAGE_TOO_LARGE', MessageTooLarge],
  ['MAILBOX_FULL', MailboxFull],
  ['ACTOR_NOT_RUNNING', ActorNotRunning],
  ['SPAWN_ERROR', SpawnError],
  ['CONFIG_ERROR', ConfigError],
  ['SYSTEM_STOPPED', SystemStopped],
  ['REPLY_REJECTED', ReplyRejected],
  ['REMOTE_FAILURE', RemoteFailure],
]);

/**
 * Rebuilds an error that crossed a thread boundary as `{ code, message }`, with its original
 * class when the code is one of ours (so `instanceof MailboxFull` works on the asker's side).
 * Any other error becomes a {@link RemoteFailure} whose message keeps the original code and text.
 */
export function reviveError(raw: { readonly code?: string | undefined; readonly message: string }): KnhkError {
  const cls = raw.code === undefined ? undefined : BY_CODE.get(raw.code);
  const known = cls !== undefined;
  const error = new KnhkError(known ? (raw.code as string) : 'REMOTE_FAILURE', known || raw.code === undefined ? raw.message : `${raw.code}: ${raw.message}`);
  const target = cls ?? RemoteFailure;
  Object.setPrototypeOf(error, target.prototype);
  error.name = target.name;
  return error;
}
