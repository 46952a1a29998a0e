/**
 * Per-peer answer budgets: a token bucket per peer, refilled with the host's time (the `now` each
 * step carries). A replica answers what peers ask for — blocks, snapshots, where it is — and an
 * answer can be far larger than the question (a 76-byte block request can pull a snapshot of
 * megabytes), so answers to one peer are rationed: a Byzantine peer asking in a loop gets at most
 * `burst` answers at once and one per `everyMs` after that, while an honest one, which asks again
 * only after a retry period, never notices.
 */
import type { NodeId } from '../consensus/config.js';

/** Token buckets, one per peer (at most n of them). */
export class PeerBudget {
  readonly #burst: number;
  readonly #everyMs: number;
  readonly #buckets = new Map<NodeId, { tokens: number; at: number }>();

  /** Up to `burst` answers at once, then one per `everyMs`. */
  constructor(burst: number, everyMs: number) {
    this.#burst = burst;
    this.#everyMs = everyMs;
  }

  /** Spends one of `peer`'s answers at time `now` (ms); false when it has none left. */
  take(peer: NodeId, now: number): boolean {
    const bucket = this.#buckets.get(peer);
    const refilled = bucket === undefined ? this.#burst : Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.at) / this.#everyMs);
    const granted = refilled >= 1;
    this.#buckets.set(peer, { tokens: granted ? refilled - 1 : refilled, at: now });
    return granted;
  }
}
