/**
 * The pacemaker (Yin et al. §5): who leads a view, and how long a replica waits in a view before
 * giving up on it. HotStuff is live once views last long enough for an honest leader to drive a
 * QC after the network stabilises; not knowing how long that is, a replica doubles its view
 * timeout after every view that failed and returns to the base after a view that made progress
 * (the exponential back-off the paper's §5 and LibraBFT's round-state describe).
 */
import type { NodeId } from '../consensus/config.js';
import type { Block } from './block.js';

/**
 * The leader of `view`. Round robin (§5, "LeaderElection") unless the view follows a QC: with
 * `certified`, the block of view − 1 that the QC certifies, the first member in round-robin order
 * from `view` that signed `certified`'s own justify — a replica that voted a view or two ago
 * (Carousel, Cohen et al., "Be Aware of Your Leaders", FC'22). A crashed replica signs nothing, so
 * once the chain has moved on without it, it is no longer chosen and its views no longer have to
 * time out; a replica comes back into the rotation as soon as a QC counts its vote, or on a TC.
 * Every replica that votes for `certified` computes the same leader (a block's hash covers its
 * justify's signers), so that is where its vote goes. The signers were picked by the leader that
 * formed that QC; a quorum leaves out at most n − quorum members, so a faulty leader can move the
 * next leadership at most that many places along the rotation.
 */
export function leaderOf(view: number, n: number, certified?: Block): NodeId {
  const signers = certified !== undefined && certified.view === view - 1 ? certified.justify.signatures : [];
  if (signers.length === 0) return view % n;
  let best: NodeId | undefined;
  let bestDistance = n;
  for (const { node } of signers) {
    const distance = (((node - view) % n) + n) % n;
    if (distance < bestDistance) {
      best = node;
      bestDistance = distance;
    }
  }
  return best as NodeId;
}

/**
 * Whether `block`'s proposer may lead its view, as far as the block alone tells: after a QC the
 * leader depends on the certified parent's justify ({@link leaderOf}), which is checked once the
 * parent is known; after a TC it is round robin.
 */
export function mayLead(block: Block, n: number): boolean {
  return block.justify.view === block.view - 1 || block.proposer === leaderOf(block.view, n);
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
