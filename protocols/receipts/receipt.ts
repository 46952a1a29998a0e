/**
 * Receipts: the proof, checkable offline, that a command was committed. A receipt is a body (the
 * leaf of the receipt log for that command), an inclusion proof of the leaf in a tree head, and
 * the tree head with the signatures of a quorum of distinct replicas. Every field is bound:
 * body → leaf hash → inclusion proof → root → signatures.
 */
import type { Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { ConsensusAlgorithm } from '../consensus/config.js';
import type { SignaturePolicy } from '../crypto/index.js';
import { receiptLeafInput } from './canonical.js';
import { ReceiptError } from './errors.js';
import { sameHash, sha256 } from './merkle.js';
import type { MerkleLog } from './merkle-log.js';
import type { SignedTreeHead, TreeHead, TreeHeadSignature } from './tree-head.js';

/** The format version of receipt bodies this code writes and reads. */
export const RECEIPT_VERSION = 1;

/** What a receipt says about one committed command; encoded canonically (canonical.ts) as a log leaf. */
export interface ReceiptBody {
  /** Format version: {@link RECEIPT_VERSION}. */
  readonly version: typeof RECEIPT_VERSION;
  /** The cluster's id. */
  readonly cluster: string;
  /** The replication protocol that committed the command. */
  readonly protocol: ConsensusAlgorithm;
  /** The consensus position of the command's batch (PBFT sequence, HotStuff height, Raft index). */
  readonly sequence: number;
  /** The view (HotStuff), term (Raft) or PBFT view the batch was first proposed in: the same at every replica (see `AppliedEntry.view`). */
  readonly view: number;
  /** The command's index within its batch. */
  readonly batchIndex: number;
  /** The client that submitted the command. */
  readonly client: string;
  /** The client's timestamp (request number) of the command. */
  readonly clientTimestamp: number;
  /** SHA-256 of the command's payload bytes ({@link commandHash}). */
  readonly commandHash: Digest;
  /** The state machine's hash before the batch executed. */
  readonly stateHashBefore: Digest;
  /** The state machine's hash after the batch executed. */
  readonly stateHashAfter: Digest;
  /** The time the protocol agreed for the batch, ms since the epoch. */
  readonly timestamp: number;
  /** The signature policy in force. */
  readonly policy: SignaturePolicy;
  /** The leaf's index in the receipt log. */
  readonly leafIndex: number;
}

/** A receipt: a body, its inclusion proof, and the signed tree head the proof leads to. */
export interface Receipt extends SignedTreeHead {
  readonly body: ReceiptBody;
  /** RFC 9162 §2.1.3 inclusion path of leaf `body.leafIndex` in the tree of `treeHead.size` leaves. */
  readonly inclusionProof: readonly Digest[];
  readonly treeHead: TreeHead;
  readonly signatures: readonly TreeHeadSignature[];
}

/** The hash a receipt gives a command: SHA-256 of the payload bytes the client submitted. */
export function commandHash(command: Pick<Command, 'payload'>): Digest {
  return sha256(command.payload);
}

/** The RFC 9162 leaf hash of a receipt body: HASH(0x00 ‖ canonical body). */
export function receiptLeafHash(body: ReceiptBody): Digest {
  return sha256(receiptLeafInput(body));
}

/**
 * Assembles the receipt of `body` from the log that holds it and a signed tree head of that log:
 * the inclusion proof is generated for the tree head's size. Signatures are taken as given (the
 * collector verified them); build with exactly a quorum of them, so that no signature is spare.
 * @throws {ReceiptError} `INCONSISTENT` when the body is not the log's leaf at its index, the
 * index is outside the tree head, or the tree head's root is not the log's root at its size.
 */
export function buildReceipt(body: ReceiptBody, log: MerkleLog, signed: SignedTreeHead): Receipt {
  const { treeHead, signatures } = signed;
  if (body.cluster !== treeHead.cluster) throw new ReceiptError('INCONSISTENT', `the body is of cluster ${body.cluster}, the tree head of ${treeHead.cluster}`);
  if (treeHead.size > log.size) throw new ReceiptError('INCONSISTENT', `the tree head has ${treeHead.size} leaves, the log only ${log.size}`);
  if (body.leafIndex >= treeHead.size) throw new ReceiptError('INCONSISTENT', `leaf ${body.leafIndex} is not in a tree of ${treeHead.size} leaves`);
  if (!sameHash(log.rootAt(treeHead.size), treeHead.root)) throw new ReceiptError('INCONSISTENT', `the tree head's root is not the log's root at size ${treeHead.size}`);
  if (!sameHash(log.leafHash(body.leafIndex), receiptLeafHash(body))) throw new ReceiptError('INCONSISTENT', `the log's leaf ${body.leafIndex} is not this body`);
  return { body, inclusionProof: log.inclusionProof(body.leafIndex, treeHead.size), treeHead, signatures };
}
