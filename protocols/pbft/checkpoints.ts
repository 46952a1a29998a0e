/**
 * Checkpoints and the log's watermarks (Castro & Liskov §4.3). Every K sequence numbers a replica
 * records its state's digest and broadcasts it; a quorum of matching checkpoint messages makes the
 * checkpoint stable, which moves the low watermark h and lets the log below it be discarded.
 */
import { sameBytes, type Digest } from '../consensus/codec.js';
import type { NodeId } from '../consensus/config.js';
import type { Signed } from '../consensus/certificate.js';
import type { ReplicatedView } from '../consensus/state-machine.js';
import type { Checkpoint, StableCheckpoint } from './messages.js';

/** The genesis checkpoint: sequence 0, before any command, needing no proof. */
export function genesisCheckpoint(stateDigest: Digest): StableCheckpoint {
  return { sequence: 0, stateDigest, proof: [] };
}

/** Checkpoint messages received and this replica's own checkpoint states above the low watermark. */
export class Checkpoints {
  readonly #votes = new Map<number, Map<NodeId, Signed<Checkpoint>>>();
  readonly #own = new Map<number, ReplicatedView>();
  readonly #ahead = new Map<NodeId, Signed<Checkpoint>>();

  /** Remembers this replica's state at `sequence`, to store and serve once it is stable. */
  recordOwn(sequence: number, view: ReplicatedView): void {
    this.#own.set(sequence, view);
  }

  /** This replica's state at `sequence`, if it took a checkpoint there. */
  own(sequence: number): ReplicatedView | undefined {
    return this.#own.get(sequence);
  }

  /**
   * Records a checkpoint message; returns the proof once `quorum` distinct replicas agree on the
   * message's sequence and digest. Within the log window a replica's later message for a sequence
   * replaces its earlier one; above the high watermark `high` only each replica's latest counts,
   * which bounds memory by the membership and still shows this replica when it has fallen behind.
   */
  add(message: Signed<Checkpoint>, quorum: number, high: number): StableCheckpoint | undefined {
    const { sequence } = message.body;
    let votes: Map<NodeId, Signed<Checkpoint>>;
    if (sequence > high) {
      const earlier = this.#ahead.get(message.from);
      if (earlier !== undefined && earlier.body.sequence >= sequence) return undefined;
      votes = this.#ahead;
    } else {
      votes = this.#votes.get(sequence) ?? new Map();
      this.#votes.set(sequence, votes);
    }
    votes.set(message.from, message);
    const proof = [...votes.values()].filter((m) => m.body.sequence === sequence && sameBytes(m.body.stateDigest, message.body.stateDigest));
    return proof.length >= quorum ? { sequence, stateDigest: message.body.stateDigest, proof: proof.sort((a, b) => a.from - b.from) } : undefined;
  }

  /** Discards everything at or below a new stable sequence. */
  truncate(stable: number): void {
    for (const s of this.#votes.keys()) if (s <= stable) this.#votes.delete(s);
    for (const s of this.#own.keys()) if (s <= stable) this.#own.delete(s);
    for (const [id, m] of this.#ahead) if (m.body.sequence <= stable) this.#ahead.delete(id);
  }
}
