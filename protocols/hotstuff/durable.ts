/**
 * What a HotStuff replica keeps on disk, and reading it back after a restart.
 *
 * Safety across a crash needs the last view voted in (a replica must never vote twice in a view)
 * and the lock (Yin et al. §4.3: lockedQC is part of a replica's state the safety proof relies on);
 * the view a leader last proposed in keeps a restarted leader from equivocating. The high QC,
 * current view and last TC spare a view change; the blocks, the committed block (with the QC that
 * decided it) and a periodic snapshot of the replicated state let it rebuild what it executed
 * without asking anyone.
 */
import { t, type Schema } from '../../schema/schema.js';
import { quorumCertSchema, type QuorumCert } from '../consensus/certificate.js';
import { hex, type Digest } from '../consensus/codec.js';
import type { ConsensusConfig } from '../consensus/config.js';
import { ConsensusError } from '../consensus/errors.js';
import { blockHash, blockSchema, type Block } from './block.js';
import { validChild, type BlockTree } from './block-tree.js';
import { timeoutCertSchema, type TimeoutCert } from './certificates.js';

/** Durable record keys. Blocks are kept under {@link blockKey}. */
export const DURABLE = {
  view: 'view',
  voted: 'voted',
  proposed: 'proposed',
  locked: 'locked',
  high: 'high',
  tc: 'tc',
  committed: 'committed',
  snapshot: 'snapshot',
} as const;

const BLOCK_PREFIX = 'block/';

/** The key a block is kept under. */
export function blockKey(hashKey: string): string {
  return BLOCK_PREFIX + hashKey;
}

/** The committed block a replica had executed up to. */
export interface CommittedRecord {
  readonly height: number;
  readonly hash: Digest;
  /** The QC that decided it (on b'' of its three-chain); absent when it is an installed snapshot's block. */
  readonly certificate?: QuorumCert;
}

/** A snapshot of the replicated state right after executing `block`. */
export interface SnapshotRecord {
  readonly block: Block;
  readonly state: Uint8Array;
}

const committedSchema = t.object({ height: t.uint(), hash: t.bytes({ length: 32 }), certificate: t.optional(quorumCertSchema) });
const snapshotSchema = t.object({ block: blockSchema, state: t.bytes() });

/** Everything an earlier incarnation persisted, validated. */
export interface DurableState {
  readonly view: number;
  readonly voted: number;
  readonly proposed: number;
  readonly locked: QuorumCert | undefined;
  readonly high: QuorumCert | undefined;
  readonly tc: TimeoutCert | undefined;
  readonly committed: CommittedRecord | undefined;
  readonly snapshot: SnapshotRecord | undefined;
  /** Blocks by hash key. */
  readonly blocks: ReadonlyMap<string, Block>;
}

function read<T>(durable: ReadonlyMap<string, unknown>, key: string, schema: Schema<T>): T | undefined {
  const value = durable.get(key);
  if (value === undefined) return undefined;
  try {
    return schema.parse(value, key);
  } catch (cause) {
    throw new ConsensusError('CORRUPT_STATE', `durable record ${key} is malformed`, { cause });
  }
}

/**
 * Reads and validates the durable records.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that fails its schema.
 */
export function readDurable(durable: ReadonlyMap<string, unknown>): DurableState {
  const blocks = new Map<string, Block>();
  for (const key of durable.keys()) {
    if (!key.startsWith(BLOCK_PREFIX)) continue;
    const block = read(durable, key, blockSchema) as Block;
    blocks.set(key.slice(BLOCK_PREFIX.length), block);
  }
  return {
    view: read(durable, DURABLE.view, t.uint()) ?? 1,
    voted: read(durable, DURABLE.voted, t.uint()) ?? 0,
    proposed: read(durable, DURABLE.proposed, t.uint()) ?? 0,
    locked: read(durable, DURABLE.locked, quorumCertSchema),
    high: read(durable, DURABLE.high, quorumCertSchema),
    tc: read(durable, DURABLE.tc, timeoutCertSchema),
    committed: read(durable, DURABLE.committed, committedSchema),
    snapshot: read(durable, DURABLE.snapshot, snapshotSchema),
    blocks,
  };
}

/**
 * Adds the durable blocks that connect to the tree's root (in height order, each checked as a
 * peer's would be) to `tree`.
 * @returns the keys of the blocks that do not connect to the root (below it, or on no chain up
 * from it), for the caller to erase.
 * @throws {ConsensusError} `CORRUPT_STATE` when a block does not hash to its key.
 */
export function restoreBlocks(tree: BlockTree, blocks: ReadonlyMap<string, Block>, config: ConsensusConfig): string[] {
  const stale: string[] = [];
  const ordered = [...blocks].sort(([, a], [, b]) => a.height - b.height);
  for (const [key, block] of ordered) {
    const hash = blockHash(block);
    if (hex(hash) !== key) throw new ConsensusError('CORRUPT_STATE', `durable block ${key.slice(0, 16)} does not hash to its key`);
    const parent = tree.get(block.parent);
    if (block.height > tree.root.block.height && parent !== undefined && validChild(block, parent, config)) tree.add(block, hash);
    else if (tree.get(hash) === undefined) stale.push(key);
  }
  return stale;
}
