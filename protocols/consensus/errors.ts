/**
 * Typed errors of the consensus layer. A misconfigured cluster is refused on construction; a
 * core that would break one of its safety invariants throws rather than continue (DESIGN.md:
 * "a core that would commit two different values at one sequence number ... throws").
 */
import { KnhkError } from '../../schema/errors.js';

/** Stable machine-readable codes of {@link ConsensusError}. */
export type ConsensusErrorCode =
  /** A configuration violates the protocol's fault model (for BFT, n < 3f+1) or is malformed. */
  | 'INVALID_CONFIG'
  /** Fewer than a quorum of distinct members vouched for a value. */
  | 'QUORUM_NOT_REACHED'
  /** An operation did not complete within its bound (simulator liveness checks, client waits). */
  | 'TIMEOUT'
  /** Two different values were about to be committed at one position. */
  | 'DOUBLE_COMMIT'
  /** A certificate is malformed, names a non-member, counts a signer twice or mixes values. */
  | 'INVALID_CERTIFICATE'
  /** A message names a sender that is not a member of the configuration. */
  | 'NOT_MEMBER'
  /** A message failed its schema. */
  | 'MALFORMED_MESSAGE'
  /** The simulator's safety checker saw correct replicas disagree (see SafetyViolation). */
  | 'SAFETY_VIOLATION'
  /** Durable state handed to a core on restart is inconsistent with itself. */
  | 'CORRUPT_STATE'
  /** A replica's state outgrew MAX_STATE_BYTES (state-machine.ts): it can be neither stored whole nor sent. */
  | 'STATE_TOO_LARGE'
  /** A state-machine entry its encoding cannot represent (text that is not well-formed Unicode). */
  | 'INVALID_ENTRY'
  /** An internal invariant of a core does not hold (a bug, never a peer's fault). */
  | 'INVARIANT';

/** An error raised by a consensus core, its configuration or the simulator. */
export class ConsensusError extends KnhkError {
  declare readonly code: ConsensusErrorCode;
  constructor(code: ConsensusErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * Asserts an invariant of a core. A failure is a bug in the core (or a broken variant under test),
 * so it throws and stops the replica instead of letting it continue in an unsafe state.
 */
export function invariant(condition: boolean, message: string, code: ConsensusErrorCode = 'INVARIANT'): asserts condition {
  if (!condition) throw new ConsensusError(code, message);
}
