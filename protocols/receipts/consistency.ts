/**
 * Consistency between two tree heads of one cluster's receipt log (RFC 9162 §2.1.4): the newer
 * tree extends the older one, so nothing the older one vouched for was rewritten or removed.
 */
import type { Digest } from '../consensus/codec.js';
import { ReceiptError } from './errors.js';
import { sameHash, verifyConsistencyProof } from './merkle.js';
import type { MerkleLog } from './merkle-log.js';
import type { TreeHead } from './tree-head.js';

/** The format version of consistency-proof files. */
export const CONSISTENCY_PROOF_VERSION = 1;

/** A consistency proof between two sizes of a cluster's log: the form of a proof file. */
export interface ConsistencyProof {
  readonly version: typeof CONSISTENCY_PROOF_VERSION;
  readonly cluster: string;
  readonly firstSize: number;
  readonly secondSize: number;
  /** PROOF(firstSize, D[0:secondSize]) of RFC 9162 §2.1.4.1. */
  readonly proof: readonly Digest[];
}

/** The outcome of {@link verifyConsistency}. */
export type ConsistencyVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly check: 'cluster' | 'consistency'; readonly reason: string };

/**
 * The consistency proof from `older` to `newer`, generated from `log` (which must hold both).
 * @throws {ReceiptError} `INCONSISTENT` when the heads are of another cluster than `cluster`, out
 * of order, or their roots are not the log's at their sizes; `OUT_OF_RANGE` when the log is shorter.
 */
export function proveConsistency(log: MerkleLog, older: TreeHead, newer: TreeHead): ConsistencyProof {
  if (older.cluster !== newer.cluster) throw new ReceiptError('INCONSISTENT', `tree heads of clusters ${older.cluster} and ${newer.cluster}`);
  if (older.size > newer.size) throw new ReceiptError('INCONSISTENT', `the older tree head has ${older.size} leaves, the newer ${newer.size}`);
  for (const head of [older, newer]) {
    if (!sameHash(log.rootAt(head.size), head.root)) throw new ReceiptError('INCONSISTENT', `the tree head at size ${head.size} is not this log's`);
  }
  return {
    version: CONSISTENCY_PROOF_VERSION,
    cluster: older.cluster,
    firstSize: older.size,
    secondSize: newer.size,
    proof: log.consistencyProof(older.size, newer.size),
  };
}

/**
 * Whether `newer` extends `older` by `proof`: same cluster, the proof made for their two sizes,
 * sequences in order, and the RFC 9162 §2.1.4.2 verification. Signatures are not checked here
 * (see `verifyTreeHead`). Never throws.
 */
export function verifyConsistency(older: TreeHead, newer: TreeHead, proof: ConsistencyProof): ConsistencyVerdict {
  if (older.cluster !== newer.cluster || proof.cluster !== older.cluster) {
    return { ok: false, check: 'cluster', reason: `tree heads of ${older.cluster} and ${newer.cluster}, proof of ${proof.cluster}` };
  }
  if (proof.firstSize !== older.size || proof.secondSize !== newer.size) {
    return { ok: false, check: 'consistency', reason: `the proof is from size ${proof.firstSize} to ${proof.secondSize}, the tree heads have ${older.size} and ${newer.size}` };
  }
  if (older.sequence > newer.sequence) {
    return { ok: false, check: 'consistency', reason: `the older tree head is at sequence ${older.sequence}, after the newer one's ${newer.sequence}` };
  }
  if (!verifyConsistencyProof(older.size, newer.size, older.root, newer.root, proof.proof)) {
    return { ok: false, check: 'consistency', reason: `the tree of ${newer.size} leaves does not extend the tree of ${older.size} leaves by this proof` };
  }
  return { ok: true };
}
