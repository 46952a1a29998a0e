/**
 * What a replica does with its receipt log when it has executed a batch (one consensus
 * position): one receipt body per command, appended as leaves, and the tree head to sign.
 * Deterministic: correct replicas that executed the same positions build the same leaves and
 * the same tree head, byte for byte, so their signatures are over the same bytes.
 */
import type { AppliedEntry } from '../consensus/core.js';
import type { ConsensusAlgorithm } from '../consensus/config.js';
import type { Digest } from '../consensus/codec.js';
import type { SignaturePolicy } from '../crypto/index.js';
import { encodeReceiptBody } from './canonical.js';
import { leafHash } from './merkle.js';
import type { MerkleLog } from './merkle-log.js';
import { RECEIPT_VERSION, commandHash, type ReceiptBody } from './receipt.js';
import { TREE_HEAD_VERSION, type TreeHead } from './tree-head.js';

/** The facts of a cluster that every receipt carries. */
export interface LogContext {
  readonly cluster: string;
  readonly protocol: ConsensusAlgorithm;
  readonly policy: SignaturePolicy;
}

/** The parts of an executed log position a receipt records. */
export type ExecutedBatch = Pick<AppliedEntry, 'position' | 'view' | 'commands' | 'stateHashBefore' | 'stateHash' | 'timestamp'>;

/** What appending a batch produced. */
export interface BatchRecord {
  /** One body per command, in batch order. */
  readonly bodies: readonly ReceiptBody[];
  /** Their leaf hashes, in the same order: what the replica persists to rebuild its log. */
  readonly leafHashes: readonly Digest[];
  /** The tree head after the batch: what the replica signs. */
  readonly treeHead: TreeHead;
}

/**
 * The receipt bodies of `batch`, numbered from leaf `firstLeaf`. The state hashes are the state
 * machine's before and after the whole batch: it hashes per position, not per command.
 */
export function receiptBodies(batch: ExecutedBatch, context: LogContext, firstLeaf: number): ReceiptBody[] {
  // Copies: the host's digests may be views into shared message buffers.
  const stateHashBefore = new Uint8Array(batch.stateHashBefore);
  const stateHashAfter = new Uint8Array(batch.stateHash);
  return batch.commands.map((command, batchIndex) => ({
    version: RECEIPT_VERSION,
    cluster: context.cluster,
    protocol: context.protocol,
    sequence: batch.position,
    view: batch.view,
    batchIndex,
    client: command.client,
    clientTimestamp: command.timestamp,
    commandHash: commandHash(command),
    stateHashBefore,
    stateHashAfter,
    timestamp: batch.timestamp,
    policy: context.policy,
    leafIndex: firstLeaf + batchIndex,
  }));
}

/**
 * Appends `batch`'s receipt bodies to `log` and returns them with the tree head to sign. A batch
 * without commands (a Raft no-op) appends nothing; its tree head restates the log at a new sequence.
 * @throws {ReceiptError} `NOT_ENCODABLE` for a command whose client id is not well-formed text.
 */
export function appendBatch(log: MerkleLog, batch: ExecutedBatch, context: LogContext): BatchRecord {
  const bodies = receiptBodies(batch, context, log.size);
  const leafHashes = bodies.map((body) => leafHash(encodeReceiptBody(body)));
  log.appendLeafHashes(leafHashes);
  const treeHead: TreeHead = {
    version: TREE_HEAD_VERSION,
    cluster: context.cluster,
    size: log.size,
    root: log.root(),
    sequence: batch.position,
    view: batch.view,
    timestamp: batch.timestamp,
    policy: context.policy,
  };
  return { bodies, leafHashes, treeHead };
}
