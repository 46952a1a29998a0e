/**
 * Typed errors of the receipt layer. Verification never throws for a bad receipt, tree head or
 * proof (it returns a verdict naming the failed check); these errors are for misuse by the caller
 * (an index outside the log, a body that does not belong to the tree head it is proved against)
 * and for the fork a replica must report.
 */
import { KnhkError } from '../../schema/errors.js';

/** Stable machine-readable codes of {@link ReceiptError}. */
export type ReceiptErrorCode =
  /** A leaf index or tree size is outside the log, or sizes are out of order (m > n). */
  | 'OUT_OF_RANGE'
  /** A value cannot be encoded canonically (a string that is not well-formed UTF-16, an integer above 2^53 − 1). */
  | 'NOT_ENCODABLE'
  /** A receipt cannot be built: the body, the log and the tree head do not agree. */
  | 'INCONSISTENT'
  /** A trust description is malformed: members and n disagree, a node is listed twice, n < 3f+1. */
  | 'INVALID_TRUST'
  /** Two tree heads of one cluster cannot both be honest: a fork of the receipt log. */
  | 'FORK'
  /** No replica produced a valid receipt for a command in time. */
  | 'UNAVAILABLE';

/** A misuse of the receipt layer, or a detected fork, with a stable {@link ReceiptErrorCode}. */
export class ReceiptError extends KnhkError {
  declare readonly code: ReceiptErrorCode;
  constructor(code: ReceiptErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
