/**
 * Dead letters: messages the runtime could not deliver. None disappears silently; each one is
 * reported to the system's dead-letter listeners (from whatever thread it occurred in).
 */
import type { SerializedError } from './behavior.js';

/** Why a message became a dead letter. */
export type DeadLetterReason =
  /** The target incarnation is not running (stopped, crashed, restarted, or never existed). */
  | 'not-running'
  /** The target thread is gone or cannot be reached. */
  | 'unreachable'
  /** The bytes did not decode, or the message failed its schema. */
  | 'invalid'
  /** The target's mailbox was full (policy `reject`). */
  | 'mailbox-full'
  /** Pushed out of a full mailbox by a newer message (policy `drop-oldest`). */
  | 'dropped-oldest'
  /** Still queued when its actor stopped or crashed. */
  | 'undelivered-at-exit'
  /** A reply that arrived after its ask timed out, or for an asker that is gone. */
  | 'late-reply';

/** One undeliverable message. */
export interface DeadLetter {
  /** Intended recipient as `name#incarnation` (`?` if the header itself was unreadable). */
  readonly to: string;
  /** Sender as `name#incarnation`, when known. */
  readonly from?: string;
  readonly reason: DeadLetterReason;
  /** The error behind it, for `invalid` and `mailbox-full`. */
  readonly error?: SerializedError;
  /** The decoded message, when it could be decoded. */
  readonly message?: unknown;
  /** The raw bytes, when it could not. */
  readonly bytes?: Uint8Array;
}

/** A dead-letter listener. */
export type DeadLetterListener = (letter: DeadLetter) => void;
