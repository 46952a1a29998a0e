/**
 * Catching up: fetching the blocks a replica is missing, and state transfer past pruned history.
 *
 * A proposal or a certificate can name a block the replica has not seen (it was partitioned away,
 * crashed, or a message was lost). The replica asks a peer for the block and its ancestors, as
 * LibraBFT/DiemBFT's block retrieval does (a request names a block id and a number of blocks; the
 * answer walks down from that block). Blocks that arrive before their parent ("orphans"), QCs on
 * blocks not yet held and a proposal waiting for its parent are kept here until the gap closes.
 * A replica behind a peer's pruned history receives the peer's snapshot instead (DiemBFT leaves
 * this to state sync) and installs one once f+1 peers offered the same (block, state): at least
 * one of them is correct, so it is a committed state.
 *
 * Everything kept here is bounded whatever peers send: orphans per sender, by height (no higher
 * than a height known to exist, plus a window) and by age in views; answers per peer and time
 * (budget.ts); and responses or snapshots nobody asked for are dropped.
 */
import type { QuorumCert } from '../consensus/certificate.js';
import { hashBytes, hex, sameBytes, type Digest } from '../consensus/codec.js';
import { peersOf, type ConsensusConfig, type NodeId } from '../consensus/config.js';
import type { Outputs } from '../consensus/core.js';
import { blockHash, type Block } from './block.js';
import { validChild, type BlockTree, type TreeNode } from './block-tree.js';
import { PeerBudget } from './budget.js';
import { isValidQC } from './certificates.js';
import { blockKey } from './durable.js';
import type { Executor } from './executor.js';
import { MAX_BLOCKS_PER_RESPONSE, type HotStuffMessage, type MessageOf } from './messages.js';
import { mayLead } from './pacemaker.js';

/** Most blocks kept waiting for a parent, from all senders together. */
export const MAX_ORPHANS = 4096;

/** Fetch-retry periods between two snapshots sent to one peer. */
const SNAPSHOT_PERIODS = 20;

/**
 * Rounds of asking every peer for a block only a QC names before giving up on it (it was pruned
 * everywhere, and a leader waiting for it extends an older QC instead). A replica behind everyone's
 * pruned history gets snapshots instead, each peer sending one per {@link SNAPSHOT_PERIODS}: it asks
 * for three of those periods, so that the snapshots it needs are sent again if the first ones are
 * lost. A block an orphan waits for is still asked for while the orphan is kept; only the QC naming
 * it is given up (`onFetchTimer`).
 */
export const MAX_FETCH_ROUNDS = 3 * SNAPSHOT_PERIODS;

/** Views an orphan waits for its parent before it is dropped (it is fetched again if still needed). */
export const ORPHAN_VIEWS = 64;

/**
 * How far above the greatest height known to exist (a block held, or one a QC names) an orphan may
 * claim to be. A replica further behind learns the chain from the QCs it receives, whose blocks'
 * heights are known once they arrive.
 */
const ORPHAN_HEIGHTS = 4 * MAX_BLOCKS_PER_RESPONSE;

/** The fetch retry timer's name. */
export const FETCH_TIMER = 'fetch';

/** Blocks asked for in one request (the block and its ancestors). */
const FETCH_COUNT = 16;
/** Block responses one peer may get at once; then one per half fetch-retry period. */
const RESPONSE_BURST = 8;

/**
 * Most fetch-retry periods between two requests for one block. A block still missing is asked for
 * again after 1, 2, then every 4 periods, so a peer whose answers take longer than a period to
 * arrive (a slow link, or a large block behind others) is not sent the same request every period
 * until they do. Peers answer a replica behind their pruned history with a snapshot at most once
 * per {@link SNAPSHOT_PERIODS}: with requests at most 4 apart, the third snapshot still goes out
 * some 18 periods before the block is given up ({@link MAX_FETCH_ROUNDS}), time for it to arrive
 * over a slow link.
 */
const MAX_FETCH_GAP = 4;

/** A block named by a message, not yet held. Height 0 means unknown (the block was named by a QC). */
interface Wanted {
  readonly hash: Digest;
  readonly height: number;
  /** Fetch-retry periods since it was first wanted. */
  rounds: number;
  /** The round at which it is asked for again. */
  due: number;
  /** Periods from its last request to the next (doubling up to {@link MAX_FETCH_GAP}). */
  gap: number;
}

/** A block and its hash. */
interface HashedBlock {
  readonly block: Block;
  readonly hash: Digest;
}

/** A block waiting for its parent: who sent it (whose quota it uses) and the view it came in. */
interface Orphan extends HashedBlock {
  readonly from: NodeId;
  readonly view: number;
}

/** A peer's snapshot offer, keyed by (block hash, state hash). */
interface Offer extends HashedBlock {
  readonly key: string;
  readonly state: Uint8Array;
}

/** What catching up asks of the replica it runs in. */
export interface CatchUpHooks {
  /** Algorithm 4's update() on a QC that arrived with a block (its justify) or waited for it. */
  processQC(qc: QuorumCert, from: NodeId | undefined): void;
  /** Votes for a proposal whose block just joined the tree, if the voting rule allows. */
  tryVote(node: TreeNode): void;
}

/** Sizes of what catching up retains (see `HotStuffCore.stats`). */
export interface CatchUpStats {
  readonly orphans: number;
  readonly missing: number;
  readonly waitingCertificates: number;
  readonly waitingProposals: number;
  readonly snapshotOffers: number;
}

/** Missing blocks, orphans, block requests and responses, snapshot offers. */
export class CatchUp {
  readonly #config: ConsensusConfig;
  readonly #out: Outputs<HotStuffMessage>;
  readonly #tree: BlockTree;
  readonly #executor: Executor;
  readonly #hooks: CatchUpHooks;
  readonly #fetchRetryMs: number;
  readonly #missing = new Map<string, Wanted>();
  /** Orphans by their parent's key. */
  readonly #orphans = new Map<string, Map<string, Orphan>>();
  readonly #orphansFrom = new Map<NodeId, number>();
  /** The keys of the orphans: held, so never wanted. */
  readonly #orphanKeys = new Set<string>();
  readonly #quota: number;
  #orphanCount = 0;
  readonly #qcs = new Map<string, QuorumCert>();
  /** Proposals' blocks waiting for their parent, to vote once they join: key → view. */
  readonly #awaiting = new Map<string, number>();
  readonly #offers = new Map<NodeId, Offer>();
  readonly #blockAnswers: PeerBudget;
  readonly #snapshotAnswers: PeerBudget;
  #fetchArmed = false;
  #view: number;
  /** The greatest height known to exist: a block in the tree, an orphan a QC names, an installed snapshot. */
  #tallest: number;

  /** Catching up for a replica in `view` whose tree and executor are restored. */
  constructor(config: ConsensusConfig, out: Outputs<HotStuffMessage>, tree: BlockTree, executor: Executor, fetchRetryMs: number, view: number, hooks: CatchUpHooks) {
    this.#config = config;
    this.#out = out;
    this.#tree = tree;
    this.#executor = executor;
    this.#hooks = hooks;
    this.#fetchRetryMs = fetchRetryMs;
    this.#quota = Math.max(MAX_BLOCKS_PER_RESPONSE, Math.floor(MAX_ORPHANS / config.n));
    this.#blockAnswers = new PeerBudget(RESPONSE_BURST, fetchRetryMs / 2);
    this.#snapshotAnswers = new PeerBudget(1, fetchRetryMs * SNAPSHOT_PERIODS);
    this.#view = view;
    this.#tallest = tree.height;
  }

  /** Sizes of what is retained. */
  stats(): CatchUpStats {
    return {
      orphans: this.#orphanCount,
      missing: this.#missing.size,
      waitingCertificates: this.#qcs.size,
      waitingProposals: this.#awaiting.size,
      snapshotOffers: this.#offers.size,
    };
  }

  /**
   * Adds `first` and every orphan that was waiting for it, processing each block's justify; with
   * `proposal`, `first` is a proposal to vote for once it joins. A block at or below the committed
   * height is refused: it can never be committed, only fill the tree and the disk.
   */
  insert(first: HashedBlock, from: NodeId, proposal: boolean): void {
    const queue: HashedBlock[] = [first];
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const { block, hash } = item;
      if (this.#tree.get(hash) !== undefined) continue;
      if (block.height <= this.#executor.committed.block.height) {
        this.#refuse(hex(hash));
        continue;
      }
      const parent = this.#tree.get(block.parent);
      if (parent === undefined) {
        if (!this.#keepOrphan(item, from)) continue;
        // Only a proposal that becomes an orphan waits: an invalid one is never kept.
        if (proposal && item === first) this.#awaiting.set(hex(hash), block.view);
        this.#fetch(block.parent, block.height - 1, from);
        continue;
      }
      if (!validChild(block, parent, this.#config)) {
        this.#refuse(hex(hash));
        continue;
      }
      const node = this.#tree.add(block, hash);
      this.#out.persist(blockKey(node.key), block);
      this.#tallest = Math.max(this.#tallest, block.height);
      this.#hooks.processQC(block.justify, from);
      queue.push(...this.#release(node, from, proposal && item === first));
    }
  }

  /** A QC on a block not held: keeps it for when the block arrives, and fetches the block. */
  awaitCertified(qc: QuorumCert, from: NodeId | undefined): void {
    this.#qcs.set(hex(qc.valueHash), qc);
    this.#fetch(qc.valueHash, 0, from);
  }

  /** True when a QC newer than `view` waits for its block. */
  waitingAbove(view: number): boolean {
    for (const qc of this.#qcs.values()) if (qc.view > view) return true;
    return false;
  }

  /** Forgets QCs no newer than `view` (the high QC): their blocks are no longer needed to extend. */
  supersede(view: number): void {
    for (const [key, qc] of this.#qcs) {
      if (qc.view > view) continue;
      this.#qcs.delete(key);
      if (this.#missing.get(key)?.height === 0) this.#missing.delete(key);
    }
  }

  /**
   * The fetch timer fired: asks every peer again for each missing block that is due (the gaps
   * between requests double, {@link MAX_FETCH_GAP}). A block wanted for too long is given up
   * (pruned everywhere, or never existed) together with the QC naming it, so a leader that waited
   * for it (`waitingAbove`) extends its high QC again; only the QC, when orphans wait for the block.
   */
  onFetchTimer(): void {
    this.#fetchArmed = false;
    for (const [key, w] of this.#missing) {
      if (++w.rounds > MAX_FETCH_ROUNDS) {
        this.#qcs.delete(key);
        // A block an orphan waits for is certified by the orphan's justify: it exists. If every peer
        // pruned it, only a snapshot gets past it, and peers send those only while it is asked for:
        // it is asked for as long as the orphan is kept (ORPHAN_VIEWS; in an idle cluster, until the
        // peers' snapshots agree).
        if (!this.#orphans.has(key)) {
          this.#missing.delete(key);
          continue;
        }
      }
      if (w.rounds >= w.due) {
        this.#out.send(peersOf(this.#config), { type: 'block-request', hash: w.hash, height: w.height, count: FETCH_COUNT });
        w.gap = Math.min(2 * w.gap, MAX_FETCH_GAP);
        w.due = w.rounds + w.gap;
      }
    }
    if (this.#missing.size > 0) this.#armFetch();
  }

  /**
   * Answers a peer's block request with the block and its ancestors down to the root, or — when
   * the height asked for is below the root, pruned here — with the snapshot at the root. Answers
   * to one peer are rationed by time (budget.ts): a small request can pull a large answer.
   */
  onBlockRequest(from: NodeId, body: MessageOf<'block-request'>, now: number): void {
    if (from === this.#config.nodeId) return;
    const root = this.#tree.root;
    const node = this.#tree.get(body.hash);
    if (node !== undefined) {
      if (!this.#blockAnswers.take(from, now)) return;
      const blocks = this.#tree.chain(node, root.block.height - 1).slice(0, Math.min(body.count, MAX_BLOCKS_PER_RESPONSE)).map((n) => n.block);
      this.#out.send([from], { type: 'block-response', blocks });
      return;
    }
    if (body.height > 0 && body.height < root.block.height && this.#snapshotAnswers.take(from, now)) {
      const snapshot = this.#executor.snapshot();
      if (snapshot !== undefined) this.#out.send([from], { type: 'snapshot', block: snapshot.block, state: snapshot.state });
    }
  }

  /** Takes the wanted blocks of a response; when it stops short of a held block, asks the sender for more. */
  onBlockResponse(from: NodeId, body: MessageOf<'block-response'>): void {
    let lowest: Block | undefined;
    for (const block of body.blocks) {
      const hash = blockHash(block);
      if (!this.#missing.has(hex(hash)) || this.#tree.get(hash) !== undefined) continue;
      if (this.#tree.get(block.parent) !== undefined) {
        this.insert({ block, hash }, from, false);
        continue;
      }
      // A block whose parent is held as an orphan continues a chain already fetched further down.
      if (!this.#keepOrphan({ block, hash }, from) || this.#orphanKeys.has(hex(block.parent))) continue;
      this.#want(block.parent, block.height - 1);
      lowest = block;
    }
    if (lowest !== undefined && this.#tree.get(lowest.parent) === undefined) {
      this.#out.send([from], { type: 'block-request', hash: lowest.parent, height: lowest.height - 1, count: FETCH_COUNT });
      this.#armFetch();
    }
  }

  /**
   * A peer's snapshot, taken only while this replica asks for blocks of known height (which a
   * peer that pruned them answers with its snapshot), above what it committed and certified by a
   * well-formed QC; installed once f+1 peers offered the same block and state.
   */
  onSnapshot(from: NodeId, body: MessageOf<'snapshot'>): void {
    const { block, state } = body;
    if (!this.#fetchingHistory() || block.height <= this.#executor.committed.block.height || !isValidQC(block.justify, this.#config)) return;
    const hash = blockHash(block);
    const key = `${hex(hash)}:${hex(hashBytes(state))}`;
    this.#offers.set(from, { key, block, hash, state });
    let agreeing = 0;
    for (const offer of this.#offers.values()) if (offer.key === key) agreeing++;
    if (agreeing < this.#config.f + 1) return;
    this.#offers.clear();
    this.#executor.install(block, hash, state);
    this.#tallest = Math.max(this.#tallest, block.height);
    // The root's orphans join before forget drops every orphan whose parent is at the committed height.
    for (const child of this.#release(this.#tree.root, from, false)) this.insert(child, from, false);
    this.forget(this.#view);
  }

  /**
   * Forgets what can no longer join the tree or is no longer needed: orphans on a fork off the
   * committed chain (their parent at or below the committed height, and every orphan above them),
   * orphans older than {@link ORPHAN_VIEWS} views, offers at or below the committed height,
   * proposals of views before `view` (the replica's, which it records), and wanted blocks that
   * neither a waiting QC nor a kept orphan needs any more (so what the fetch timer asks for stays
   * bounded too).
   */
  forget(view: number): void {
    this.#view = view;
    const height = this.#executor.committed.block.height;
    // Forks first: an orphan that expired between a forked one and younger ones above must not
    // hide them from the walk up.
    this.#drop(this.#orphansWhere((o) => o.block.height - 1 <= height), true);
    this.#drop(this.#orphansWhere((o) => o.view + ORPHAN_VIEWS < view), false);
    // Only once every orphan that expired is gone: whether a parent is itself an orphan decides.
    const needed = new Set(this.#qcs.keys());
    for (const [parent, siblings] of this.#orphans) {
      needed.add(parent);
      // The parent was an orphan itself and expired first (older): the chain below is asked for again.
      const child = siblings.values().next().value as Orphan;
      if (!this.#orphanKeys.has(parent) && this.#tree.get(child.block.parent) === undefined && this.#want(child.block.parent, child.block.height - 1)) this.#armFetch();
    }
    for (const key of this.#missing.keys()) if (!needed.has(key)) this.#missing.delete(key);
    for (const [key, v] of this.#awaiting) if (v < view) this.#awaiting.delete(key);
    for (const [peer, offer] of this.#offers) if (offer.block.height <= height) this.#offers.delete(peer);
  }

  /**
   * Keeps `item` until its parent arrives, if it may be kept: above the committed block's child,
   * no higher than {@link ORPHAN_HEIGHTS} above the greatest height known to exist, self-consistent
   * (its justify certifies its parent and is well formed, and its proposer may lead its view), and
   * within its sender's share of {@link MAX_ORPHANS}. A block that can never join (its parent, not
   * held, is at or below the committed height: a fork; or it is not self-consistent) is refused.
   * @returns true when the orphan is kept (or already was).
   */
  #keepOrphan(item: HashedBlock, from: NodeId): boolean {
    const { block, hash } = item;
    const key = hex(hash);
    // A QC names this hash, so a quorum saw the block: its height is real.
    if (this.#qcs.has(key)) this.#tallest = Math.max(this.#tallest, block.height);
    if (block.height - 1 <= this.#executor.committed.block.height || !sameBytes(block.justify.valueHash, block.parent) || !mayLead(block, this.#config.n) || !isValidQC(block.justify, this.#config)) {
      this.#refuse(key);
      return false;
    }
    if (block.height > this.#tallest + ORPHAN_HEIGHTS) return false;
    const parent = hex(block.parent);
    const siblings = this.#orphans.get(parent) ?? new Map<string, Orphan>();
    if (siblings.has(key)) return true;
    const sent = this.#orphansFrom.get(from) ?? 0;
    if (this.#orphanCount >= MAX_ORPHANS || sent >= this.#quota) return false;
    siblings.set(key, { block, hash, from, view: this.#view });
    this.#orphans.set(parent, siblings);
    // Held now, if not joined: asking for it again would pull in its ancestors again, from every
    // peer at every fetch round, until the round limit gave it up with its chain half fetched.
    this.#missing.delete(key);
    this.#orphanKeys.add(key);
    this.#orphansFrom.set(from, sent + 1);
    this.#orphanCount++;
    return true;
  }

  /**
   * The block `key` can never join the tree: it is no longer wanted, and the orphans waiting for it
   * (and every orphan above them) go, or they would keep it asked for as long as they are kept.
   */
  #refuse(key: string): void {
    this.#missing.delete(key);
    this.#drop(this.#orphans.get(key)?.values() ?? [], true);
  }

  /** The orphans `keep` is true of. */
  #orphansWhere(keep: (orphan: Orphan) => boolean): Orphan[] {
    const found: Orphan[] = [];
    for (const siblings of this.#orphans.values()) for (const o of siblings.values()) if (keep(o)) found.push(o);
    return found;
  }

  /** Drops `orphans` and, with `above`, every orphan waiting for one of them or for one above. */
  #drop(orphans: Iterable<Orphan>, above: boolean): void {
    const queue = [...orphans];
    for (let o = queue.pop(); o !== undefined; o = queue.pop()) {
      const parent = hex(o.block.parent);
      const siblings = this.#orphans.get(parent);
      if (siblings?.delete(hex(o.hash)) !== true) continue;
      if (siblings.size === 0) this.#orphans.delete(parent);
      this.#uncount(o);
      if (above) queue.push(...(this.#orphans.get(hex(o.hash))?.values() ?? []));
    }
  }

  #uncount(orphan: Orphan): void {
    this.#orphanCount--;
    this.#orphanKeys.delete(hex(orphan.hash));
    const sent = (this.#orphansFrom.get(orphan.from) ?? 1) - 1;
    if (sent > 0) this.#orphansFrom.set(orphan.from, sent);
    else this.#orphansFrom.delete(orphan.from);
  }

  /** `node` joined the tree: processes the QC that waited for it, votes if its proposal waited, and returns its orphans. */
  #release(node: TreeNode, from: NodeId, vote: boolean): HashedBlock[] {
    const key = node.key;
    this.#missing.delete(key);
    const qc = this.#qcs.get(key);
    this.#qcs.delete(key);
    if (qc !== undefined) this.#hooks.processQC(qc, from);
    if (this.#awaiting.delete(key) || vote) this.#hooks.tryVote(node);
    const children = [...(this.#orphans.get(key)?.values() ?? [])];
    this.#orphans.delete(key);
    for (const child of children) this.#uncount(child);
    return children;
  }

  /** True while a block of known height is asked for: what a peer that pruned it answers with a snapshot. */
  #fetchingHistory(): boolean {
    for (const w of this.#missing.values()) if (w.height > 0) return true;
    return false;
  }

  /** Asks `from` (or every peer) for `hash` and its ancestors, unless it is held or already asked for. */
  #fetch(hash: Digest, height: number, from: NodeId | undefined): void {
    if (this.#tree.get(hash) !== undefined || !this.#want(hash, height)) return;
    const to = from !== undefined && from !== this.#config.nodeId ? [from] : peersOf(this.#config);
    this.#out.send(to, { type: 'block-request', hash, height, count: FETCH_COUNT });
    this.#armFetch();
  }

  /** Marks `hash` as wanted (learning its height if it was unknown), unless held as an orphan; true when it was not wanted yet. */
  #want(hash: Digest, height: number): boolean {
    const key = hex(hash);
    if (this.#orphanKeys.has(key)) return false;
    const known = this.#missing.get(key);
    if (known !== undefined && (known.height > 0 || height === 0)) return false;
    // A height learned later makes the block one a peer that pruned it answers with a snapshot: ask soon.
    this.#missing.set(key, known === undefined ? { hash, height, rounds: 0, due: 1, gap: 1 } : { ...known, height, due: known.rounds + 1, gap: 1 });
    return known === undefined;
  }

  #armFetch(): void {
    if (this.#fetchArmed) return;
    this.#fetchArmed = true;
    this.#out.setTimer(FETCH_TIMER, this.#fetchRetryMs);
  }
}
