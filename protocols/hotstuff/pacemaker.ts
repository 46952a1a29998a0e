/**
 * The pacemaker (Yin et al. §5): who leads a view, and how long a replica waits in a view before
 * giving up on it. HotStuff is live once views last long enough for an honest leader to drive a
 * QC after the network stabilises; not knowing how long that is, a replica doubles its view
 * timeout after every view that failed and returns to the base after a view that made progress
 * (the exponential back-off the paper's §5 and LibraBFT's round-state describe).
 */
import type { NodeId } from '../consensus/config.js';

/** The leader of `view`: round robin, so a faulty leader holds at most one view in n (§5, "LeaderElection"). */
export function leaderOf(view: number, n: number): NodeId {
  return view % n;
}

/** Largest back-off exponent: 2^16 times the base is long past any timeout worth waiting for. */
const MAX_DOUBLINGS = 16;

/** A view timer's back-off. */
export class Pacemaker {
  readonly #baseMs: number;
  readonly #maxMs: number;
  #failures = 0;
  #lastFailed = -1;

  /** Views last `baseMs` after progress, doubling per failed view up to `maxMs`. */
  constructor(baseMs: number, maxMs: number) {
    this.#baseMs = baseMs;
    this.#maxMs = Math.max(baseMs, maxMs);
  }

  /** How long to wait in the current view. */
  get timeoutMs(): number {
    return Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(this.#failures, MAX_DOUBLINGS));
  }

  /** `view` ended without a QC (a local timeout or a TC). Each view counts once. */
  failed(view: number): void {
    if (view <= this.#lastFailed) return;
    this.#lastFailed = view;
    this.#failures++;
  }

  /** A QC formed: the next view starts from the base timeout again. */
  progressed(): void {
    this.#failures = 0;
  }
}
