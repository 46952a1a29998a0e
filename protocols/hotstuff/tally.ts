/**
 * Counting signed votes (or timeouts) per view. A replica's first vote in a view is the one that
 * counts: a second one for another value is kept as proof of a double vote, never counted, and a
 * repeat of the first (a duplicate or a replay) changes nothing.
 */
import type { NodeSignature, Signed } from '../consensus/certificate.js';
import type { NodeId } from '../consensus/config.js';
import { invariant } from '../consensus/errors.js';

/** What adding one signed vote did. */
export type TallyResult<B> =
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

/** Signed votes by view and value. */
export class Tally<B> {
  readonly #quorum: number;
  readonly #views = new Map<number, ViewTally<B>>();

  /** A tally whose certificates need `quorum` distinct signers. */
  constructor(quorum: number) {
    this.#quorum = quorum;
  }

  /** Adds `signed`, a vote for `value` (a key) in `view`. */
  add(view: number, value: string, signed: Signed<B>): TallyResult<B> {
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

  /** Forgets views below `view`. */
  forgetBelow(view: number): void {
    for (const v of this.#views.keys()) if (v < view) this.#views.delete(v);
  }
}
