/**
 * HotStuff's two certificates and the signed bodies inside them.
 *
 * A quorum certificate (QC, Yin et al. §4.1) on a block is a quorum of signatures over the vote
 * body {type: 'vote', view, block}. A timeout certificate (TC, in the LibraBFT/DiemBFT style the
 * paper's §5 pacemaker leaves open) is a quorum of signatures over {type: 'timeout', view}: proof
 * that a quorum gave up on `view`, which lets everyone enter view + 1. Both bodies are exactly the
 * messages replicas send, so the host verifies a certificate by rebuilding each signed body here.
 */
import { t } from '../../schema/schema.js';
import { checkQuorum, isQuorum, nodeSignatureSchema, type NodeSignature, type QuorumCert, type Signed } from '../consensus/certificate.js';
import { sameBytes, type Digest } from '../consensus/codec.js';
import type { ConsensusConfig } from '../consensus/config.js';
import { GENESIS_HASH } from './block.js';

/** The body a replica signs to vote for `block` in `view`. */
export interface VoteBody {
  readonly type: 'vote';
  readonly view: number;
  readonly block: Digest;
}

/** The body a replica signs to give up on `view`. */
export interface TimeoutBody {
  readonly type: 'timeout';
  readonly view: number;
}

/** A quorum of distinct replicas' timeouts for one view. */
export interface TimeoutCert {
  readonly view: number;
  readonly signatures: readonly NodeSignature[];
}

/** Schema of a {@link TimeoutCert}. */
export const timeoutCertSchema = t.object({ view: t.uint(), signatures: t.array(nodeSignatureSchema, { maxLength: 1 << 10 }) });

/** Builds a vote body with its fields in schema order. */
export function voteBody(view: number, block: Digest): VoteBody {
  return { type: 'vote', view, block };
}

/** Builds a timeout body with its fields in schema order. */
export function timeoutBody(view: number): TimeoutBody {
  return { type: 'timeout', view };
}

/** The signed votes a QC is made of, rebuilt for verification by the host or a third party. */
export function signedVotes(qc: QuorumCert): Signed<VoteBody>[] {
  return qc.signatures.map((s) => ({ from: s.node, body: voteBody(qc.view, qc.valueHash), signature: s.signature }));
}

/** The signed timeouts a TC is made of. */
export function signedTimeouts(tc: TimeoutCert): Signed<TimeoutBody>[] {
  return tc.signatures.map((s) => ({ from: s.node, body: timeoutBody(tc.view), signature: s.signature }));
}

/** True for the unsigned certificate on the genesis block. */
export function isGenesisQC(qc: QuorumCert): boolean {
  return qc.view === 0 && qc.signatures.length === 0 && sameBytes(qc.valueHash, GENESIS_HASH);
}

/**
 * Checks a QC's structure: the genesis QC, or a quorum of distinct members (signatures were
 * checked by the host).
 * @throws {ConsensusError} `INVALID_CERTIFICATE` or `QUORUM_NOT_REACHED`.
 */
export function checkQC(qc: QuorumCert, config: ConsensusConfig): void {
  if (isGenesisQC(qc)) return;
  checkQuorum(qc.signatures.map((s) => s.node), config);
}

/**
 * Checks a TC's structure: a quorum of distinct members.
 * @throws {ConsensusError} `INVALID_CERTIFICATE` or `QUORUM_NOT_REACHED`.
 */
export function checkTC(tc: TimeoutCert, config: ConsensusConfig): void {
  checkQuorum(tc.signatures.map((s) => s.node), config);
}

/** True when {@link checkQC} would accept `qc`. */
export function isValidQC(qc: QuorumCert, config: ConsensusConfig): boolean {
  return isGenesisQC(qc) || isQuorum(qc.signatures.map((s) => s.node), config);
}

/** Sorts certificate signatures by signer, so every replica builds the same bytes from the same votes. */
export function bySigner(signatures: Iterable<NodeSignature>): NodeSignature[] {
  return [...signatures].sort((a, b) => a.node - b.node);
}
