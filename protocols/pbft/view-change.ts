/**
 * The view-change rules of Castro & Liskov §4.4 as pure functions: which certificates are valid,
 * and which pre-prepares a new primary must issue so that anything committed in an earlier view
 * is committed at the same sequence number in the new one.
 */
import { sameBytes } from '../consensus/codec.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { isQuorum, type QuorumCert, type Signed } from '../consensus/certificate.js';
import type { Command } from '../consensus/command.js';
import { proposalDigest, type PreparedCert, type PrePrepare, type StableCheckpoint, type ViewChange } from './messages.js';

/** The primary of a view: replicas take turns (§4.1, p = v mod |R|). */
export function primaryOf(view: number, n: number): NodeId {
  return view % n;
}

/** Quorum sizes a replica checks certificates against (see PbftCore's `prepareQuorum`). */
export interface Quorums {
  /** Matching prepares from backups that, with the pre-prepare, make a prepared certificate. */
  readonly prepares: number;
  /** Matching checkpoint messages that make a checkpoint stable. */
  readonly checkpoint: number;
  /** Matching commits that commit a prepared request. */
  readonly commits: number;
}

/** A checkpoint proof: a quorum of distinct members' checkpoint messages for its sequence and digest. */
export function validCheckpoint(cp: StableCheckpoint, config: ConsensusConfig, quorums: Quorums): boolean {
  if (cp.sequence === 0) return cp.proof.length === 0;
  return (
    cp.proof.every((m) => m.body.sequence === cp.sequence && sameBytes(m.body.stateDigest, cp.stateDigest)) &&
    isQuorum(cp.proof.map((m) => m.from), config, quorums.checkpoint)
  );
}

/** A prepared certificate: the view's primary's pre-prepare, whose digest matches its batch, and enough matching prepares from distinct backups. */
export function validPreparedCert(cert: PreparedCert, config: ConsensusConfig, quorums: Quorums): boolean {
  const pp = cert.prePrepare;
  const { view, sequence, digest } = pp.body;
  if (pp.from !== primaryOf(view, config.n) || pp.body.proposedIn > view || !sameBytes(digest, proposalDigest(pp.body))) return false;
  const matching = cert.prepares.every((p) => p.from !== pp.from && p.body.view === view && p.body.sequence === sequence && sameBytes(p.body.digest, digest));
  return matching && isQuorum(cert.prepares.map((p) => p.from), config, quorums.prepares);
}

/**
 * A retransmitted commit: a pre-prepare whose digest matches its batch, and a quorum of distinct
 * members' commits for that digest at its sequence. The commits may come from a later view than the
 * pre-prepare (a new primary re-proposes a committed batch under its own view), so only the digest
 * binds them; the host checked every signature against the sequence the pre-prepare names.
 */
export function validCommitted(pp: Signed<PrePrepare>, cert: QuorumCert, config: ConsensusConfig, quorums: Quorums): boolean {
  const { view, digest } = pp.body;
  if (pp.from !== primaryOf(view, config.n) || pp.body.proposedIn > view || !sameBytes(digest, proposalDigest(pp.body))) return false;
  return sameBytes(cert.valueHash, digest) && isQuorum(cert.signatures.map((s) => s.node), config, quorums.commits);
}

/** A view-change message: valid checkpoint, valid certificates for sequences above it and below its log window, from views before the one it asks for, one per sequence. */
export function validViewChange(vc: Signed<ViewChange>, config: ConsensusConfig, quorums: Quorums, logWindow: number): boolean {
  const { view, checkpoint, prepared } = vc.body;
  if (!validCheckpoint(checkpoint, config, quorums)) return false;
  const sequences = new Set<number>();
  for (const cert of prepared) {
    const { sequence, view: certView } = cert.prePrepare.body;
    if (sequence <= checkpoint.sequence || sequence > checkpoint.sequence + logWindow || certView >= view || sequences.has(sequence)) return false;
    sequences.add(sequence);
    if (!validPreparedCert(cert, config, quorums)) return false;
  }
  return true;
}

/** What a new view starts from: the latest stable checkpoint among the view changes, and one proposal per sequence after it. */
export interface NewViewPlan {
  readonly checkpoint: StableCheckpoint;
  readonly proposals: readonly { readonly sequence: number; readonly proposedIn: number; readonly timestamp: number; readonly batch: readonly Command[] }[];
}

/**
 * The new primary's computation of O (§4.4): min-s is the latest stable checkpoint in V, max-s
 * the highest prepared sequence; every sequence in between gets the batch of its prepared
 * certificate with the highest view, or a null request (an empty batch) when none prepared it.
 */
export function planNewView(viewChanges: readonly ViewChange[]): NewViewPlan {
  let checkpoint = (viewChanges[0] as ViewChange).checkpoint;
  for (const vc of viewChanges) if (vc.checkpoint.sequence > checkpoint.sequence) checkpoint = vc.checkpoint;
  const best = new Map<number, PreparedCert>();
  for (const vc of viewChanges) {
    for (const cert of vc.prepared) {
      const { sequence, view } = cert.prePrepare.body;
      if (sequence <= checkpoint.sequence) continue;
      const current = best.get(sequence);
      if (current === undefined || view > current.prePrepare.body.view) best.set(sequence, cert);
    }
  }
  const maxS = Math.max(checkpoint.sequence, ...best.keys());
  const newView = (viewChanges[0] as ViewChange).view;
  const proposals = [];
  for (let sequence = checkpoint.sequence + 1; sequence <= maxS; sequence++) {
    const cert = best.get(sequence)?.prePrepare.body;
    proposals.push(cert === undefined ? { sequence, proposedIn: newView, timestamp: 0, batch: [] } : { sequence, proposedIn: cert.proposedIn, timestamp: cert.timestamp, batch: cert.batch });
  }
  return { checkpoint, proposals };
}

/**
 * The view changes a replica holds: each replica's latest only (a later view replaces an earlier
 * one), so memory is bounded by the membership however many views a Byzantine replica asks for.
 */
export class ViewChangeLog {
  readonly #latest = new Map<NodeId, Signed<ViewChange>>();

  /** Records a valid view change unless its sender already asked for a later view. */
  add(vc: Signed<ViewChange>): void {
    const earlier = this.#latest.get(vc.from);
    if (earlier === undefined || earlier.body.view <= vc.body.view) this.#latest.set(vc.from, vc);
  }

  /** The view changes for `view`, by sender id. */
  forView(view: number): Signed<ViewChange>[] {
    return [...this.#latest.values()].filter((vc) => vc.body.view === view).sort((a, b) => a.from - b.from);
  }

  /** The replicas asking for a view above `view`, with the view each asks for (§4.5.2's f+1 rule counts them). */
  above(view: number): Map<NodeId, number> {
    const out = new Map<NodeId, number>();
    for (const [id, vc] of this.#latest) if (vc.body.view > view) out.set(id, vc.body.view);
    return out;
  }
}
