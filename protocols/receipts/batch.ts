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
import type { MerkleLog, PendingLeaves } from './merkle-log.js';
import { ReceiptError } from './errors.js';
import { RECEIPT_VERSION, commandHash, receiptLeafHash, type ReceiptBody } from './receipt.js';
import { TREE_HEAD_VERSION, type TreeHead } from './tree-head.js';
import { policyAt, type PolicyMigrationPoint } from './trust.js';

/** The facts of a cluster that every receipt carries. */
export interface LogContext {
  readonly cluster: string;
  readonly protocol: ConsensusAlgorithm;
  /** The policy the cluster started under. */
  readonly policy: SignaturePolicy;
  /**
   * Its migrations so far, in order: a position's receipts and tree head are under the policy in
   * force there ({@link policyAt}). A replica passes its configuration's list, which grows as it
   * executes: a position is recorded after it executed, so its migration, if any, is listed.
   */
  readonly migrations?: readonly PolicyMigrationPoint[];
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
  const hashes = stateHashesOf(batch);
  return batch.commands.map((_, batchIndex) => receiptBody(batch, context, firstLeaf, batchIndex, hashes));
}

/** The batch's state hashes, copied: the host's digests may be views into shared message buffers. */
function stateHashesOf(batch: ExecutedBatch): readonly [Digest, Digest] {
  return [new Uint8Array(batch.stateHashBefore), new Uint8Array(batch.stateHash)];
}

function receiptBody(batch: ExecutedBatch, context: LogContext, firstLeaf: number, batchIndex: number, [stateHashBefore, stateHashAfter]: readonly [Digest, Digest]): ReceiptBody {
  const command = batch.commands[batchIndex] as ExecutedBatch['commands'][number];
  return {
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
    policy: policyAt(context, batch.position),
    leafIndex: firstLeaf + batchIndex,
  };
}

/**
 * A batch appended to a log in steps: {@link advance} builds and hashes the leaves of a few
 * commands at a time and the subtrees they complete, {@link finish} appends them all and makes the
 * tree head. A replica spreads a large batch over several turns of its event loop this way
 * (DESIGN.md "Time budgets"), with the same result, byte for byte, as {@link appendBatch}. The log
 * is left alone until `finish`, so a command that cannot be encoded leaves it as it was, and
 * receipts can be built from it meanwhile; nothing else may append to it in between.
 */
export class BatchAppend {
  readonly #log: MerkleLog;
  readonly #batch: ExecutedBatch;
  readonly #context: LogContext;
  readonly #firstLeaf: number;
  readonly #pending: PendingLeaves;
  readonly #hashes: readonly [Digest, Digest];
  readonly #bodies: ReceiptBody[] = [];
  readonly #leafHashes: Digest[] = [];

  constructor(log: MerkleLog, batch: ExecutedBatch, context: LogContext) {
    this.#log = log;
    this.#batch = batch;
    this.#context = context;
    this.#firstLeaf = log.size;
    this.#pending = log.pending();
    this.#hashes = stateHashesOf(batch);
  }

  /** True once every command's leaf is built. */
  get done(): boolean {
    return this.#bodies.length === this.#batch.commands.length;
  }

  /**
   * Builds and hashes the leaves of up to `count` more commands.
   * @throws {ReceiptError} `NOT_ENCODABLE` for a command whose client id is not well-formed text.
   */
  advance(count: number): void {
    const end = Math.min(this.#batch.commands.length, this.#bodies.length + count);
    for (let i = this.#bodies.length; i < end; i++) {
      const body = receiptBody(this.#batch, this.#context, this.#firstLeaf, i, this.#hashes);
      const leafHash = receiptLeafHash(body);
      this.#pending.push(leafHash);
      this.#leafHashes.push(leafHash);
      this.#bodies.push(body);
    }
  }

  /**
   * Appends the batch's leaves to the log and returns them with the tree head to sign.
   * @throws {ReceiptError} `INCONSISTENT` before every leaf is built, or when the log grew since
   *   the batch began (its leaf indexes would be wrong).
   */
  finish(): BatchRecord {
    if (!this.done) throw new ReceiptError('INCONSISTENT', `batch ${this.#batch.position} has ${this.#batch.commands.length - this.#bodies.length} leaves left to build`);
    this.#pending.commit();
    const batch = this.#batch;
    const treeHead: TreeHead = {
      version: TREE_HEAD_VERSION,
      cluster: this.#context.cluster,
      size: this.#log.size,
      root: this.#log.root(),
      sequence: batch.position,
      view: batch.view,
      timestamp: batch.timestamp,
      policy: policyAt(this.#context, this.#batch.position),
    };
    return { bodies: this.#bodies, leafHashes: this.#leafHashes, treeHead };
  }
}

/**
 * Appends `batch`'s receipt bodies to `log` and returns them with the tree head to sign. A batch
 * without commands (a Raft no-op) appends nothing; its tree head restates the log at a new sequence.
 * @throws {ReceiptError} `NOT_ENCODABLE` for a command whose client id is not well-formed text.
 */
export function appendBatch(log: MerkleLog, batch: ExecutedBatch, context: LogContext): BatchRecord {
  const append = new BatchAppend(log, batch, context);
  append.advance(batch.commands.length);
  return append.finish();
}
