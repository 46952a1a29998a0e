/**
 * One sequence number's agreement state (Castro & Liskov §4.2): the pre-prepare accepted for it,
 * the prepares and commits received per view, and the latest prepared certificate, which survives
 * view changes (§4.4: a view change carries it).
 */
import { sameBytes, type Digest } from '../consensus/codec.js';
import type { NodeId } from '../consensus/config.js';
import type { QuorumCert, Signed } from '../consensus/certificate.js';
import type { Commit, PreparedCert, PrePrepare, Prepare } from './messages.js';

interface Votes {
  readonly prepares: Map<NodeId, Signed<Prepare>>;
  readonly commits: Map<NodeId, Signed<Commit>>;
}

/** Agreement state of one sequence number. */
export class Slot {
  readonly sequence: number;
  /** The pre-prepare accepted in the slot's current view. */
  prePrepare: Signed<PrePrepare> | undefined;
  /** The highest-view prepared certificate this replica holds for the sequence. */
  preparedCert: PreparedCert | undefined;
  /** This replica has sent its commit in the current pre-prepare's view. */
  commitSent = false;
  /** The certificate of the commit quorum, once the sequence is committed-local (prepared and a quorum of commits). */
  certificate: QuorumCert | undefined;
  readonly #votes = new Map<number, Votes>();

  constructor(sequence: number) {
    this.sequence = sequence;
  }

  /** The view of the accepted pre-prepare, or -1. */
  get view(): number {
    return this.prePrepare?.body.view ?? -1;
  }

  /** The digest of the accepted pre-prepare. */
  get digest(): Digest | undefined {
    return this.prePrepare?.body.digest;
  }

  #in(view: number): Votes {
    let votes = this.#votes.get(view);
    if (votes === undefined) {
      votes = { prepares: new Map(), commits: new Map() };
      this.#votes.set(view, votes);
    }
    return votes;
  }

  /**
   * Records a prepare or commit. Returns the earlier vote of the same kind by the same replica in
   * the same view when it names another digest (a double vote), which is not recorded.
   */
  vote(message: Signed<Prepare | Commit>): Signed<Prepare | Commit> | undefined {
    const votes = this.#in(message.body.view);
    const map = (message.body.type === 'prepare' ? votes.prepares : votes.commits) as Map<NodeId, Signed<Prepare | Commit>>;
    const earlier = map.get(message.from);
    if (earlier !== undefined) return sameBytes(earlier.body.digest, message.body.digest) ? undefined : earlier;
    map.set(message.from, message);
    return undefined;
  }

  /** Prepares in the pre-prepare's view matching its digest, from replicas other than `primary`. */
  matchingPrepares(primary: NodeId): Signed<Prepare>[] {
    const d = this.digest;
    if (d === undefined) return [];
    return [...this.#in(this.view).prepares.values()].filter((p) => p.from !== primary && sameBytes(p.body.digest, d));
  }

  /** Commits in the pre-prepare's view matching its digest. */
  matchingCommits(): Signed<Commit>[] {
    const d = this.digest;
    if (d === undefined) return [];
    return [...this.#in(this.view).commits.values()].filter((c) => sameBytes(c.body.digest, d));
  }

  /** Forgets votes of views before `view` (they can no longer complete). */
  dropVotesBefore(view: number): void {
    for (const v of this.#votes.keys()) if (v < view) this.#votes.delete(v);
  }

  /** How many replicas sent a prepare or commit for the sequence, in the views whose votes are kept. */
  get voters(): number {
    const voters = new Set<NodeId>();
    for (const { prepares, commits } of this.#votes.values()) {
      for (const node of prepares.keys()) voters.add(node);
      for (const node of commits.keys()) voters.add(node);
    }
    return voters.size;
  }

  /** True once committed-local. */
  get committed(): boolean {
    return this.certificate !== undefined;
  }

  /**
   * Moves the slot into a new view: an uncommitted pre-prepare of an older view is void (its
   * batch survives in the prepared certificate, if it prepared). A committed slot keeps it: the
   * decision is final, its batch may still await execution, and the new view re-proposes it.
   */
  resetForView(view: number): void {
    if (!this.committed && this.prePrepare !== undefined && this.prePrepare.body.view < view) this.prePrepare = undefined;
    this.commitSent = false;
    this.dropVotesBefore(view);
  }
}
