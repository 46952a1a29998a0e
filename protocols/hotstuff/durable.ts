/**
 * What a HotStuff replica keeps on disk, and reading it back after a restart.
 *
 * Safety across a crash needs the last view voted in (a replica must never vote twice in a view)
 * and the lock (Yin et al. §4.3: lockedQC is part of a replica's state the safety proof relies on);
 * the view a leader last proposed in keeps a restarted leader from equivocating. The high QC,
 * current view and last TC spare a view change; the blocks, the committed block (with the QC that
 * decided it) and the replicated state as of a periodic snapshot height (consensus/state-archive.ts,
 * with the block it is at) let it rebuild what it executed without asking anyone.
 */
import { t } from '../../schema/schema.js';
import { quorumCertSchema, type QuorumCert } from '../consensus/certificate.js';
import { hex, readStored, type Digest } from '../consensus/codec.js';
import type { ConsensusConfig } from '../consensus/config.js';
import { ConsensusError } from '../consensus/errors.js';
import { readArchive, type ArchiveRecords } from '../consensus/state-archive.js';
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
  stateBlock: 'state-block',
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

const committedSchema = t.object({ height: t.uint(), hash: t.bytes({ length: 32 }), certificate: t.optional(quorumCertSchema) });
const stateBlockSchema = t.object({ block: blockSchema });

/** The replicated state as stored, right after executing `block` (the tree's root on restart). */
export interface StoredState {
  readonly block: Block;
  readonly archive: ArchiveRecords;
}

/** Everything an earlier incarnation persisted, validated. */
export interface DurableState {
  readonly view: number;
  readonly voted: number;
  readonly proposed: number;
  readonly locked: QuorumCert | undefined;
  readonly high: QuorumCert | undefined;
  readonly tc: TimeoutCert | undefined;
  readonly committed: CommittedRecord | undefined;
  readonly state: StoredState | undefined;
  /** Blocks by hash key. */
  readonly blocks: ReadonlyMap<string, Block>;
}


/**
 * Reads and validates the durable records.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that fails its schema, or a stored state
 * without the block it is at, or the reverse.
 */
export function readDurable(durable: ReadonlyMap<string, unknown>): DurableState {
  const blocks = new Map<string, Block>();
  for (const key of durable.keys()) {
    if (!key.startsWith(BLOCK_PREFIX)) continue;
    const block = readStored(durable, key, blockSchema, 'HotStuff') as Block;
    blocks.set(key.slice(BLOCK_PREFIX.length), block);
  }
  return {
    view: readStored(durable, DURABLE.view, t.uint(), 'HotStuff') ?? 1,
    voted: readStored(durable, DURABLE.voted, t.uint(), 'HotStuff') ?? 0,
    proposed: readStored(durable, DURABLE.proposed, t.uint(), 'HotStuff') ?? 0,
    locked: readStored(durable, DURABLE.locked, quorumCertSchema, 'HotStuff'),
    high: readStored(durable, DURABLE.high, quorumCertSchema, 'HotStuff'),
    tc: readStored(durable, DURABLE.tc, timeoutCertSchema, 'HotStuff'),
    committed: readStored(durable, DURABLE.committed, committedSchema, 'HotStuff'),
    state: readState(durable),
    blocks,
  };
}

/** The stored state and its block. A replica writes a step at once, so a record the block does not lead to is damage, not a torn step. */
function readState(durable: ReadonlyMap<string, unknown>): StoredState | undefined {
  const block = readStored(durable, DURABLE.stateBlock, stateBlockSchema, 'HotStuff')?.block;
  const archive = readArchive(durable, block?.height ?? 0, 'HotStuff');
  const { snapshot, changes, leftovers } = archive;
  if (block === undefined && snapshot === undefined && leftovers.length === 0) return undefined;
  const at = changes.at(-1)?.position ?? snapshot?.position;
  if (block === undefined || snapshot === undefined || at !== block.height || leftovers.length > 0) {
    throw new ConsensusError('CORRUPT_STATE', `the stored state (at height ${at ?? 'none'}, ${leftovers.length} records aside) is not at the block stored with it (height ${block?.height ?? 'none'})`);
  }
  return { block, archive };
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
