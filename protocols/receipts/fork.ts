/**
 * Fork detection: two tree heads of one cluster that cannot both describe one append-only log.
 * Correct replicas that executed the same positions sign identical tree heads, and a log only
 * grows, so each of these is proof that some replica (or the log it reported) is faulty:
 * - the same sequence with different tree heads (size, root, view, timestamp or policy differ);
 * - the same size with different roots;
 * - the larger log at the earlier sequence;
 * - a consistency proof from the smaller to the larger tree that fails. This is conclusive when
 *   the proof comes from a log that holds one of the two heads (a replica's own log, through
 *   `proveConsistency`): the other head is then not in that log's history.
 */
import { hex } from '../consensus/codec.js';
import { encodeTreeHead } from './canonical.js';
import { verifyConsistency, type ConsistencyProof } from './consistency.js';
import { ReceiptError } from './errors.js';
import { sameHash } from './merkle.js';
import type { SignedTreeHead } from './tree-head.js';

/** What kind of contradiction two tree heads show. */
export type ForkKind = 'same-sequence' | 'same-size' | 'out-of-order' | 'inconsistent';

/** Transferable evidence of a fork: the two signed heads (and the failing proof, if any). */
export interface ForkEvidence {
  readonly kind: ForkKind;
  readonly cluster: string;
  readonly reason: string;
  readonly first: SignedTreeHead;
  readonly second: SignedTreeHead;
  readonly proof?: ConsistencyProof;
}

/** The outcome of {@link compareTreeHeads}. */
export type TreeHeadComparison =
  | { readonly kind: 'consistent' }
  /** Nothing can be concluded: other clusters, or sizes differ and no proof for them was given. */
  | { readonly kind: 'undecided'; readonly reason: string }
  | { readonly kind: 'fork'; readonly evidence: ForkEvidence };

/** A fork, raised by {@link assertNoFork}; its evidence is what a replica reports as Byzantine. */
export class ForkError extends ReceiptError {
  readonly evidence: ForkEvidence;
  constructor(evidence: ForkEvidence) {
    super('FORK', `receipt log fork in cluster ${evidence.cluster}: ${evidence.reason}`);
    this.evidence = evidence;
  }
}

/**
 * Compares two signed tree heads of one cluster (from two replicas, or one replica at two
 * times). `proof`, when given, is the consistency proof between their sizes (smaller to larger).
 * Signatures are not checked: verify the heads first when they come from outside.
 */
export function compareTreeHeads(a: SignedTreeHead, b: SignedTreeHead, proof?: ConsistencyProof): TreeHeadComparison {
  const [x, y] = [a.treeHead, b.treeHead];
  if (x.cluster !== y.cluster) return { kind: 'undecided', reason: `tree heads of clusters ${x.cluster} and ${y.cluster}` };
  const fork = (kind: ForkKind, reason: string, withProof?: ConsistencyProof): TreeHeadComparison => ({
    kind: 'fork',
    evidence: { kind, cluster: x.cluster, reason, first: a, second: b, ...(withProof ? { proof: withProof } : {}) },
  });
  if (x.sequence === y.sequence) {
    if (hex(encodeTreeHead(x)) === hex(encodeTreeHead(y))) return { kind: 'consistent' };
    return fork('same-sequence', `two different tree heads for sequence ${x.sequence}`);
  }
  if (x.size === y.size) {
    return sameHash(x.root, y.root) ? { kind: 'consistent' } : fork('same-size', `two different roots for size ${x.size}`);
  }
  const [older, newer] = x.size < y.size ? [a, b] : [b, a];
  if (older.treeHead.sequence > newer.treeHead.sequence) {
    return fork('out-of-order', `size ${older.treeHead.size} at sequence ${older.treeHead.sequence} but size ${newer.treeHead.size} at the earlier sequence ${newer.treeHead.sequence}`);
  }
  if (proof === undefined || proof.firstSize !== older.treeHead.size || proof.secondSize !== newer.treeHead.size) {
    return { kind: 'undecided', reason: `sizes ${older.treeHead.size} and ${newer.treeHead.size} differ and no consistency proof between them was given` };
  }
  const verdict = verifyConsistency(older.treeHead, newer.treeHead, proof);
  return verdict.ok ? { kind: 'consistent' } : fork('inconsistent', verdict.reason, proof);
}

/**
 * Like {@link compareTreeHeads}, for callers that treat a fork as an error.
 * @throws {ForkError} carrying the evidence when the two heads fork.
 */
export function assertNoFork(a: SignedTreeHead, b: SignedTreeHead, proof?: ConsistencyProof): void {
  const comparison = compareTreeHeads(a, b, proof);
  if (comparison.kind === 'fork') throw new ForkError(comparison.evidence);
}
