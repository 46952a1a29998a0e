/**
 * Counting signed votes (or timeouts) per view. A replica's first vote in a view is the one that
 * counts: a second one for another value is kept as proof of a double vote, never counted, and a
 * repeat of the first (a duplicate or a replay) changes nothing.
 *
 * What is kept is bounded whatever peers send: only views in a window around the replica's own
 * are counted, and of the views ahead of it only one per sender — its newest. An honest replica
 * ahead of this one votes and times out in increasing views, so its newest is the one the others
 * ahead share; a Byzantine one can hold at most one entry per view of the window and one ahead.
 */
import type { NodeSignature, Signed } from '../consensus/certificate.js';
import type { NodeId } from '../consensus/config.js';
import { invariant } from '../consensus/errors.js';

/**
 * Views past its own a replica counts votes and timeouts for. A replica further behind learns
 * where the others are from their new-views (a QC or TC moves it at once), not from their votes.
 */
export const AHEAD_VIEWS = 64;

/** What adding one signed vote did. */
export type TallyResult<B> =
  /** Outside the window, or older than a later view its sender already showed: not kept. */
  | { readonly kind: 'ignored' }
  /** Already counted. */
  | { readonly kind: 'duplicate' }
  /** The signer already voted for another value in this view: `earlier` and the new one prove it. */
  | { readonly kind: 'conflict'; readonly earlier: Signed<B> }
  /** Counted: `count` signers back this value; `quorum` is set once, when the quorum is first reached. */
  | { readonly kind: 'counted'; readonly count: number; readonly quorum: readonly NodeSignature[] | undefined };

interface ViewTally<B> {
  readonly first: Map<NodeId, { value: string; signed: Signed<B> }>;
  readonly values: Map<string, Map<NodeId, NodeSignature>>;
  readonly certified: Set<string>;
}

/** Signed votes by view and value, within a window of views. */
export class Tally<B> {
  readonly #quorum: number;
  readonly #ahead: number;
  readonly #views = new Map<number, ViewTally<B>>();
  /** The one view ahead of `#current` each sender has an entry in. */
  readonly #future = new Map<NodeId, number>();
  #low = 0;
  #current = 0;

  /** A tally whose certificates need `quorum` distinct signers, counting views up to `ahead` past the current one. */
  constructor(quorum: number, ahead: number) {
    this.#quorum = quorum;
    this.#ahead = ahead;
  }

  /** Signed entries kept, over all views. */
  get size(): number {
    let size = 0;
    for (const tally of this.#views.values()) size += tally.first.size;
    return size;
  }

  /** Moves the window to views `low … current + ahead`, forgetting the views below `low`. */
  advance(low: number, current: number): void {
    this.#low = low;
    this.#current = current;
    for (const v of this.#views.keys()) if (v < low) this.#views.delete(v);
    for (const [from, v] of this.#future) if (v <= current) this.#future.delete(from);
  }

  /** Adds `signed`, a vote for `value` (a key) in `view`. */
  add(view: number, value: string, signed: Signed<B>): TallyResult<B> {
    if (view < this.#low || view > this.#current + this.#ahead) return { kind: 'ignored' };
    if (view > this.#current) {
      const held = this.#future.get(signed.from);
      if (held !== undefined && held > view) return { kind: 'ignored' };
      if (held !== undefined && held < view) this.#remove(held, signed.from);
      this.#future.set(signed.from, view);
    }
    let tally = this.#views.get(view);
    if (tally === undefined) {
      tally = { first: new Map(), values: new Map(), certified: new Set() };
      this.#views.set(view, tally);
    }
    const first = tally.first.get(signed.from);
    if (first !== undefined) return first.value === value ? { kind: 'duplicate' } : { kind: 'conflict', earlier: first.signed };
    tally.first.set(signed.from, { value, signed });
    const signers = tally.values.get(value) ?? new Map<NodeId, NodeSignature>();
    invariant(!signers.has(signed.from), `vote of ${signed.from} counted twice in view ${view}`);
    signers.set(signed.from, { node: signed.from, signature: signed.signature });
    tally.values.set(value, signers);
    const reached = signers.size >= this.#quorum && !tally.certified.has(value);
    if (reached) tally.certified.add(value);
    return { kind: 'counted', count: signers.size, quorum: reached ? [...signers.values()] : undefined };
  }

  /** Withdraws `from`'s entry in `view` (a view ahead it has moved past). */
  #remove(view: number, from: NodeId): void {
    const tally = this.#views.get(view);
    const first = tally?.first.get(from);
    if (tally === undefined || first === undefined) return;
    tally.first.delete(from);
    tally.values.get(first.value)?.delete(from);
    if (tally.first.size === 0) this.#views.delete(view);
  }
}
