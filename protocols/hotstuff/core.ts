/**
 * The chained HotStuff replica (Yin, Malkhi, Reiter, Gueta, Abraham, PODC'19): Algorithm 3 in the
 * event-driven form of Algorithm 4, with the §5 pacemaker made concrete in the LibraBFT/DiemBFT
 * style — view timers with back-off, signed timeouts, timeout certificates (view-sync.ts).
 *
 * Every block is a proposal in one view, carries the QC on its parent, and is voted for by
 * replicas that send their votes to the next view's leader, who turns a quorum of them into the QC
 * its own proposal carries. Processing a QC on b'' updates the high QC, locks on b' (a two-chain)
 * and commits b when b'' ← b' ← b are direct descendants (a three-chain).
 *
 * This file holds proposals, votes and the QC rule; view-sync.ts the views, executor.ts the
 * replicated state, sync.ts catching up, durable.ts what survives a restart. The core is sans-IO:
 * it signs nothing (every vote reaches a QC through the host's loopback), reads no clock, and
 * persists its votes, lock and blocks before the messages they justify leave.
 */
import { ANNOUNCE_TIMER } from '../consensus/announcements.js';
import type { QuorumCert, Signed } from '../consensus/certificate.js';
import { hex, sameBytes, type Digest } from '../consensus/codec.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { Outputs, type Core, type CoreOptions, type Input, type NodeStatus, type Ready, type SignedPosition } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';
import { GENESIS, GENESIS_QC, blockHash, makeBlock, type Block } from './block.js';
import { BlockTree, type TreeNode } from './block-tree.js';
import { bySigner, checkQC, checkTC, voteBody, type TimeoutBody, type TimeoutCert, type VoteBody } from './certificates.js';
import { DURABLE, blockKey, readDurable, restoreBlocks } from './durable.js';
import { Executor } from './executor.js';
import { proposalBody, type HotStuffMessage, type MessageOf } from './messages.js';
import { leaderOf, mayLead } from './pacemaker.js';
import { nextLock, safeNode } from './safety.js';
import { CatchUp, FETCH_TIMER, type CatchUpStats } from './sync.js';
import { AHEAD_VIEWS, Tally } from './tally.js';
import { VIEW_TIMER, ViewSync } from './view-sync.js';

/** Tuning of a HotStuff replica. Defaults suit a simulated LAN (1–5 ms links). */
export interface HotStuffOptions {
  /** View timeout after a view that made progress, ms (default 150). */
  readonly baseTimeoutMs?: number;
  /** Cap of the exponential back-off, ms (default 10 000). */
  readonly maxTimeoutMs?: number;
  /** Most client commands per block (default 256). */
  readonly batchSize?: number;
  /** Snapshot the replicated state every this many committed heights (default 64). */
  readonly snapshotInterval?: number;
  /** How long to wait for a missing block before asking every peer for it, ms (default 50). */
  readonly fetchRetryMs?: number;
  /** How far ahead of a voter's clock a proposal's timestamp may be, ms (default 1 000). */
  readonly maxClockSkewMs?: number;
  /** Most client requests waiting to be proposed (default 10 000). */
  readonly maxPending?: number;
  /**
   * Most commands executed in one step; the core then pauses and the host steps `resume` after a
   * turn of its event loop (core.ts), so that a decided chain of large blocks does not hold the
   * thread for its whole execution (default, or `Infinity`: no limit).
   */
  readonly executionSlice?: number;
}

/** Sizes of what a replica retains; each stays bounded whatever its peers send. */
export interface HotStuffStats extends CatchUpStats {
  /** Blocks in the tree (root to tips). */
  readonly blocks: number;
  /** Signed votes kept for QCs not yet formed. */
  readonly votes: number;
  /** Signed timeouts kept for TCs not yet formed. */
  readonly timeouts: number;
  /** First proposals kept per view, for equivocation checks. */
  readonly proposals: number;
  /** Client requests waiting to be proposed. */
  readonly pending: number;
}

const DEFAULTS: Required<HotStuffOptions> = {
  baseTimeoutMs: 150,
  maxTimeoutMs: 10_000,
  batchSize: 256,
  snapshotInterval: 64,
  fetchRetryMs: 50,
  maxClockSkewMs: 1_000,
  maxPending: 10_000,
  executionSlice: Number.POSITIVE_INFINITY,
};

type Proposal = MessageOf<'proposal'>;

function checkOptions(options: HotStuffOptions): Required<HotStuffOptions> {
  const merged = { ...DEFAULTS, ...options };
  for (const [name, value] of Object.entries(merged)) {
    if (!((Number.isFinite(value) || name === 'executionSlice') && value > 0)) throw new ConsensusError('INVALID_CONFIG', `hotstuff option ${name} must be positive, got ${value}`);
  }
  const { batchSize, snapshotInterval, executionSlice } = merged;
  if (!Number.isSafeInteger(batchSize) || !Number.isSafeInteger(snapshotInterval) || !(Number.isSafeInteger(executionSlice) || executionSlice === Number.POSITIVE_INFINITY)) {
    throw new ConsensusError('INVALID_CONFIG', 'hotstuff batchSize, snapshotInterval and executionSlice must be integers');
  }
  return merged;
}

/** A chained HotStuff replica: the sans-IO core a host drives with `step` and drains with `ready`. */
export class HotStuffCore implements Core<HotStuffMessage> {
  readonly config: ConsensusConfig;
  readonly #options: Required<HotStuffOptions>;
  readonly #out = new Outputs<HotStuffMessage>();
  readonly #tree: BlockTree;
  readonly #executor: Executor;
  readonly #views: ViewSync;
  readonly #catchUp: CatchUp;
  readonly #votes: Tally<VoteBody>;
  /**
   * The first proposal seen from each proposer in each recent view: a second one is an
   * equivocation. Per proposer, because a view can have two leaders (pacemaker.ts): the one its
   * QC names and, for replicas that entered it on a TC, the round-robin one.
   */
  readonly #firstProposals = new Map<number, Map<NodeId, { signed: Signed<Proposal>; hash: Digest; reported: boolean }>>();
  #lastVoted: number;
  #proposed: number;
  #locked: QuorumCert;
  #high: QuorumCert;
  #now = 0;

  /**
   * Builds a replica, fresh or from `options.durable`: restores the last snapshot, re-executes the
   * committed blocks above it, and resumes in the view, with the vote, lock and high QC it had —
   * and, holding an uncommitted batch, with its view timer running, so the batch commits even if
   * no client asks again. A restarted replica says where it is, so that peers of a cluster that
   * went idle meanwhile bring it up.
   * @throws {ConsensusError} `CORRUPT_STATE` when the durable records contradict each other;
   * `INVALID_CONFIG` for a bad option.
   */
  constructor(options: CoreOptions, tuning: HotStuffOptions = {}) {
    this.config = options.config;
    this.#options = checkOptions(tuning);
    const durable = readDurable(options.durable);
    const root = durable.state?.block ?? GENESIS;
    this.#tree = new BlockTree(root, blockHash(root));
    this.#executor = new Executor(options.stateMachine, this.#tree, this.#out, this.#options, durable.state);
    this.#lastVoted = durable.voted;
    this.#proposed = durable.proposed;
    this.#locked = durable.locked ?? GENESIS_QC;
    this.#high = durable.high ?? GENESIS_QC;
    this.#votes = new Tally(this.config.quorumSize, AHEAD_VIEWS);
    this.#votes.advance(durable.view - 1, durable.view);
    this.#views = new ViewSync(this.config, this.#out, this.#options, durable, {
      highQC: () => this.#high,
      leaderOf: (view) => this.#leaderOf(view),
      entered: (view) => this.#entered(view),
    });
    for (const key of restoreBlocks(this.#tree, durable.blocks, this.config)) this.#out.erase(blockKey(key));
    if (durable.committed !== undefined && durable.committed.height > root.height) {
      const top = this.#tree.get(durable.committed.hash);
      if (top === undefined) throw new ConsensusError('CORRUPT_STATE', `committed block at height ${durable.committed.height} is not among the durable blocks`);
      this.#executor.commit(top, durable.committed.certificate);
    }
    this.#catchUp = new CatchUp(this.config, this.#out, this.#tree, this.#executor, this.#options.fetchRetryMs, durable.view, {
      processQC: (qc, from) => this.#processQC(qc, from),
      tryVote: (node) => this.#tryVote(node),
    });
    // The host drains ready() right after building a core: the timer leaves with the restored state.
    this.#views.syncTimer(this.#wantsProgress());
    if (options.durable.size > 0) this.#views.announce();
  }

  /** The view this replica is in. */
  get view(): number {
    return this.#views.view;
  }

  /** The highest view this replica voted in. */
  get lastVotedView(): number {
    return this.#lastVoted;
  }

  /** The QC this replica is locked on (Algorithm 4's b_lock, as its certificate). */
  get lockedQC(): QuorumCert {
    return this.#locked;
  }

  /** The highest QC this replica knows (Algorithm 4's qc_high). */
  get highQC(): QuorumCert {
    return this.#high;
  }

  /** The last committed block's height and hash (`status().commitIndex` is the last one executed). */
  get committedBlock(): { readonly height: number; readonly hash: Digest } {
    const committed = this.#executor.committed;
    return { height: committed.block.height, hash: committed.hash };
  }

  /** The block with `hash`, if this replica holds it in its tree. */
  block(hash: Digest): Block | undefined {
    return this.#tree.get(hash)?.block;
  }

  /**
   * Sizes of what this replica retains — blocks, orphans, votes, timeouts, proposals, requests —
   * for tests and diagnostics: each stays bounded whatever peers send.
   */
  stats(): HotStuffStats {
    return {
      blocks: this.#tree.size,
      ...this.#catchUp.stats(),
      votes: this.#votes.size,
      timeouts: this.#views.timeouts,
      proposals: [...this.#firstProposals.values()].reduce((sum, byProposer) => sum + byProposer.size, 0),
      pending: this.#executor.pending,
    };
  }

  /** True while a decided chain is executed part-way (`executionSlice`): step `resume` next. */
  get executionPaused(): boolean {
    return this.#executor.paused;
  }

  step(input: Input<HotStuffMessage>, now: number): void {
    this.#now = Math.max(this.#now, now);
    // Any other input while paused: the decided blocks are executed first (core.ts), so no rule
    // below sees a block half executed.
    if (input.kind !== 'resume') this.#executor.advance();
    this.#executor.budget = this.#options.executionSlice;
    try {
      this.#stepWithin(input);
    } finally {
      this.#executor.budget = Number.POSITIVE_INFINITY;
    }
  }

  #stepWithin(input: Input<HotStuffMessage>): void {
    switch (input.kind) {
      case 'resume':
        this.#executor.advance();
        break;
      case 'request':
        this.#executor.request(input.command);
        break;
      case 'timeout':
        if (input.timer === VIEW_TIMER) this.#views.onTimer(this.#wantsProgress());
        else if (input.timer === FETCH_TIMER) this.#catchUp.onFetchTimer();
        else if (input.timer === ANNOUNCE_TIMER) this.#views.onAnnounceTimer();
        break;
      case 'message':
        this.#onMessage(input.message);
        break;
    }
    this.#maybePropose();
    this.#views.syncTimer(this.#wantsProgress());
  }

  ready(): Ready<HotStuffMessage> {
    return this.#out.drain();
  }

  status(): NodeStatus {
    const view = this.#views.view;
    const leader = this.#leaderOf(view);
    return { role: leader === this.config.nodeId ? 'leader' : 'replica', view, commitIndex: this.#executor.executed.block.height, leader };
  }

  /**
   * Its view, made durable on entering it: it votes, proposes and times out in the view it is in
   * only. HotStuff's signed bodies name views, never heights.
   */
  signedThrough(): SignedPosition {
    return { view: this.#views.view };
  }

  /**
   * The voting rule (safety.ts): `block` extends the locked block, or its justify is newer than
   * the lock. Protected so that a test can build a replica without it and watch safety fail.
   */
  protected safeNode(block: Block, justify: QuorumCert): boolean {
    const locked = this.#tree.get(this.#locked.valueHash);
    const parent = this.#tree.get(block.parent);
    return safeNode(justify, this.#locked, locked !== undefined && parent !== undefined && this.#tree.extends(parent, locked));
  }

  #onMessage(signed: Signed<HotStuffMessage>): void {
    const body = signed.body;
    switch (body.type) {
      case 'proposal':
        return this.#onProposal(signed as Signed<Proposal>);
      case 'vote':
        return this.#onVote(signed as Signed<VoteBody>);
      case 'timeout':
        return this.#views.onTimeout(signed as Signed<TimeoutBody>, this.#now);
      case 'new-view':
        return this.#onNewView(signed as Signed<MessageOf<'new-view'>>);
      case 'block-request':
        return this.#catchUp.onBlockRequest(signed.from, body, this.#now);
      case 'block-response':
        return this.#catchUp.onBlockResponse(signed.from, body);
      case 'snapshot':
        return this.#catchUp.onSnapshot(signed.from, body);
    }
  }

  #onProposal(signed: Signed<Proposal>): void {
    const { block, tc } = signed.body;
    const from = signed.from;
    const parent = this.#tree.get(block.parent);
    // After a QC, who leads depends on the parent (pacemaker.ts): a proposal whose parent is
    // missing is checked again when the parent arrives (validChild).
    const certified = block.justify.view === block.view - 1 ? parent?.block : undefined;
    const leads = parent === undefined ? mayLead(block, this.config.n) : leaderOf(block.view, this.config.n, certified) === from;
    if (block.proposer !== from || !leads) return;
    // Nothing older than the previous view: it can no longer be voted for, and if a QC names its
    // block the block is fetched then. Without this floor a leader could grow every replica's
    // tree and disk with forks of its old views.
    if (block.view + 1 < this.#views.view) return;
    if (!this.#certificatesValid(signed, block.justify, tc)) return;
    // A leader enters its view with a QC on the previous view or a TC for it (§5, DiemBFT's rule),
    // and extends the block its QC certifies (Algorithm 3's createLeaf(genericQC.node, …)).
    const problem = !sameBytes(block.justify.valueHash, block.parent)
      ? 'its justify does not certify its parent'
      : block.view !== block.justify.view + 1 && tc?.view !== block.view - 1
        ? `it has neither a QC nor a TC for view ${block.view - 1}`
        : undefined;
    if (problem !== undefined) {
      this.#out.evidence({ kind: 'invalid-proposal', node: from, detail: `proposal for view ${block.view}: ${problem}`, messages: [signed] });
      return;
    }
    const hash = blockHash(block);
    if (!this.#firstProposal(signed, hash)) return;
    if (tc !== undefined) this.#views.processTC(tc);
    const known = this.#tree.get(hash);
    if (known !== undefined) return this.#tryVote(known);
    // With its parent missing, the block waits; its justify is news all the same (a laggard
    // learns the QC, enters its view and fetches the parent it names).
    if (parent === undefined) this.#processQC(block.justify, from);
    this.#catchUp.insert({ block, hash }, from, true);
  }

  /**
   * Keeps one proposal per view and proposer (its first): true for it and its repeats. Another one
   * is an equivocation, reported once with both signed proposals, and dropped.
   */
  #firstProposal(signed: Signed<Proposal>, hash: Digest): boolean {
    const view = signed.body.block.view;
    const byProposer = this.#firstProposals.get(view) ?? new Map<NodeId, { signed: Signed<Proposal>; hash: Digest; reported: boolean }>();
    this.#firstProposals.set(view, byProposer);
    const first = byProposer.get(signed.from);
    if (first === undefined) {
      byProposer.set(signed.from, { signed, hash, reported: false });
      return true;
    }
    if (sameBytes(first.hash, hash)) return true;
    if (!first.reported) {
      first.reported = true;
      this.#out.evidence({ kind: 'equivocation', node: signed.from, detail: `two different proposals for view ${view}`, messages: [first.signed, signed] });
    }
    return false;
  }

  /** Votes for a proposal's block if it is this view's, not voted in yet, and safe (Algorithm 3, "as a replica"). */
  #tryVote(node: TreeNode): void {
    const block = node.block;
    if (block.view !== this.#views.view || block.view <= this.#lastVoted) return;
    if (block.timestamp > this.#now + this.#options.maxClockSkewMs) return;
    if (!this.safeNode(block, block.justify)) return;
    this.#lastVoted = block.view;
    this.#out.persist(DURABLE.voted, this.#lastVoted);
    const vote = voteBody(block.view, node.hash);
    this.#views.voted(vote);
    this.#out.send(this.#views.voteRecipients(block), vote);
  }

  #onVote(signed: Signed<VoteBody>): void {
    const { view, block } = signed.body;
    if (view < this.#high.view) return;
    const result = this.#votes.add(view, hex(block), signed);
    if (result.kind === 'conflict') {
      this.#out.evidence({ kind: 'double-vote', node: signed.from, detail: `votes for two blocks in view ${view}`, messages: [result.earlier, signed] });
      return;
    }
    if (result.kind === 'counted' && result.quorum !== undefined) {
      this.#processQC({ view, valueHash: block, signatures: bySigner(result.quorum) }, undefined);
    }
  }

  #onNewView(signed: Signed<MessageOf<'new-view'>>): void {
    const { body, from } = signed;
    if (!this.#certificatesValid(signed, body.highQC, body.tc)) return;
    if (body.tc !== undefined) this.#views.processTC(body.tc);
    this.#processQC(body.highQC, from);
    if (body.view < this.#views.view || body.highQC.view < this.#high.view) this.#views.lagging(from, this.#now);
  }

  /**
   * Algorithm 4's update() on a QC for b'': raise the high QC, lock on b' (two-chain), commit b
   * when b'' ← b' ← b is a three-chain, and enter the next view.
   */
  #processQC(qc: QuorumCert, from: NodeId | undefined): void {
    const node = this.#tree.get(qc.valueHash);
    if (node === undefined) {
      if (qc.view > this.#high.view) this.#catchUp.awaitCertified(qc, from);
      this.#views.enter(qc.view + 1, 'qc');
      return;
    }
    if (node.block.view !== qc.view) return;
    if (qc.view > this.#high.view) {
      this.#high = qc;
      this.#out.persist(DURABLE.high, qc);
      this.#catchUp.supersede(qc.view);
    }
    const lock = nextLock(node.block, this.#locked);
    if (lock !== this.#locked && this.#tree.get(lock.valueHash) !== undefined) {
      this.#locked = lock;
      this.#out.persist(DURABLE.locked, lock);
    }
    const decided = this.#tree.committedBy(node);
    if (decided !== undefined && this.#executor.commit(decided, qc)) this.#catchUp.forget(this.#views.view);
    this.#views.enter(qc.view + 1, 'qc', node.block.proposer);
  }

  #maybePropose(): void {
    const view = this.#views.view;
    if (this.#leaderOf(view) !== this.config.nodeId || this.#proposed >= view) return;
    const lastTC = this.#views.lastTC;
    const tc = this.#high.view === view - 1 ? undefined : lastTC?.view === view - 1 ? lastTC : null;
    if (tc === null) return;
    // A newer QC whose block is still being fetched: extend that one rather than a stale high QC.
    if (this.#catchUp.waitingAbove(this.#high.view)) return;
    const parent = this.#tree.get(this.#high.valueHash);
    if (parent === undefined) return;
    const batch = this.#executor.batch(parent);
    // An idle leader proposes only while a batch on its chain is not known to be committed by
    // everyone: each block carries the QC that moves the commit point up (three more blocks).
    if (batch.length === 0 && parent.lastFilled <= parent.certifiedCommit) return;
    const block = makeBlock({
      parent: parent.hash,
      height: parent.block.height + 1,
      view,
      proposer: this.config.nodeId,
      timestamp: Math.max(Math.floor(this.#now), parent.block.timestamp),
      commands: batch,
      justify: this.#high,
    });
    this.#proposed = view;
    this.#out.persist(DURABLE.proposed, view);
    this.#out.send(this.config.members, proposalBody(block, tc));
  }

  /**
   * The leader this replica expects in `view`: the one named by the block of view − 1 its high QC
   * certifies, when it has both (pacemaker.ts); round robin otherwise — as after a TC.
   */
  #leaderOf(view: number): NodeId {
    const certified = this.#high.view === view - 1 ? this.#tree.get(this.#high.valueHash)?.block : undefined;
    return leaderOf(view, this.config.n, certified);
  }

  /** The replica entered `view`: votes, first proposals and catch-up state below it go. */
  #entered(view: number): void {
    this.#votes.advance(view - 1, view);
    for (const v of this.#firstProposals.keys()) if (v < view - 1) this.#firstProposals.delete(v);
    this.#catchUp.forget(view);
  }

  /**
   * True while this replica has something to make progress on: a request, an uncommitted batch,
   * or — as the leader — a batch that its proposal, carrying the high QC, would still leave
   * uncommitted by the chain's own QCs. The last follows the idle leader's rule (`#maybePropose`):
   * a replica can commit on a QC carried by a fork that others never saw, and leaders propose
   * until the chain commits the batch for everyone. If such a proposal is lost, the leader's
   * timeout and a left-behind replica's make the f + 1 that bring the others into the view
   * change; without it the left-behind replica would time out alone, for ever.
   */
  #wantsProgress(): boolean {
    const high = this.#tree.get(this.#high.valueHash);
    if (this.#executor.wantsProgress(high)) return true;
    if (high === undefined || this.#leaderOf(this.#views.view) !== this.config.nodeId) return false;
    return high.lastFilled > Math.max(high.certifiedCommit, this.#tree.committedBy(high)?.block.height ?? 0);
  }

  /**
   * Checks the structure of the certificates a message carries. A bad one in a message signed by
   * its sender is evidence against the sender.
   */
  #certificatesValid(signed: Signed<HotStuffMessage>, qc: QuorumCert, tc: TimeoutCert | undefined): boolean {
    try {
      checkQC(qc, this.config);
      if (tc !== undefined) checkTC(tc, this.config);
      return true;
    } catch (error) {
      if (!(error instanceof ConsensusError)) throw error;
      this.#out.evidence({ kind: 'invalid-certificate', node: signed.from, detail: error.message, messages: [signed] });
      return false;
    }
  }
}
