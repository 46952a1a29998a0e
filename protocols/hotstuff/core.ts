/**
 * The chained HotStuff replica (Yin, Malkhi, Reiter, Gueta, Abraham, PODC'19): Algorithm 3 in the
 * event-driven form of Algorithm 4, with the §5 pacemaker made concrete in the LibraBFT/DiemBFT
 * style — view timers with back-off, signed timeouts, timeout certificates.
 *
 * Every block is a proposal in one view, carries the QC on its parent, and is voted for by
 * replicas that send their votes to the next view's leader, who turns a quorum of them into the QC
 * its own proposal carries. Processing a QC on b'' updates the high QC, locks on b' (a two-chain)
 * and commits b when b'' ← b' ← b are direct descendants (a three-chain).
 *
 * The core is sans-IO: it signs nothing (every vote reaches a QC through the host's loopback),
 * reads no clock, and persists its votes, lock and blocks before the messages they justify leave.
 */
import type { QuorumCert, Signed } from '../consensus/certificate.js';
import { hex, sameBytes, type Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { Outputs, type Core, type CoreOptions, type Input, type NodeStatus, type Ready, type Reply } from '../consensus/core.js';
import { ConsensusError, invariant } from '../consensus/errors.js';
import { ReplicatedState } from '../consensus/state-machine.js';
import { GENESIS, GENESIS_QC, blockHash, makeBlock, type Block } from './block.js';
import { BlockTree, linkError, type TreeNode } from './block-tree.js';
import { bySigner, checkQC, checkTC, timeoutBody, voteBody, type TimeoutBody, type TimeoutCert, type VoteBody } from './certificates.js';
import { DURABLE, blockKey, readDurable, type SnapshotRecord } from './durable.js';
import { MAX_BLOCKS_PER_RESPONSE, type HotStuffMessage, type MessageOf } from './messages.js';
import { Pacemaker, leaderOf } from './pacemaker.js';
import { nextLock, safeNode } from './safety.js';
import { BlockSync, type HashedBlock } from './sync.js';
import { Tally } from './tally.js';

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
}

const DEFAULTS: Required<HotStuffOptions> = {
  baseTimeoutMs: 150,
  maxTimeoutMs: 10_000,
  batchSize: 256,
  snapshotInterval: 64,
  fetchRetryMs: 50,
  maxClockSkewMs: 1_000,
  maxPending: 10_000,
};

/** Blocks asked for in one request (the block and its ancestors). */
const FETCH_COUNT = 16;
/** Views of first proposals kept for equivocation checks, behind the current one. */
const PROPOSAL_MEMORY = 4;

const VIEW_TIMER = 'view';
const FETCH_TIMER = 'fetch';

type Proposal = MessageOf<'proposal'>;

function checkOptions(options: HotStuffOptions): Required<HotStuffOptions> {
  const merged = { ...DEFAULTS, ...options };
  for (const [name, value] of Object.entries(merged)) {
    if (!(Number.isFinite(value) && value > 0)) throw new ConsensusError('INVALID_CONFIG', `hotstuff option ${name} must be positive, got ${value}`);
  }
  if (!Number.isSafeInteger(merged.batchSize) || !Number.isSafeInteger(merged.snapshotInterval)) {
    throw new ConsensusError('INVALID_CONFIG', 'hotstuff batchSize and snapshotInterval must be integers');
  }
  return merged;
}

function commandKey(cmd: Command): string {
  return `${cmd.client}\u0000${cmd.timestamp}`;
}

/** A chained HotStuff replica: the sans-IO core a host drives with `step` and drains with `ready`. */
export class HotStuffCore implements Core<HotStuffMessage> {
  readonly config: ConsensusConfig;
  readonly #options: Required<HotStuffOptions>;
  readonly #out = new Outputs<HotStuffMessage>();
  readonly #state: ReplicatedState;
  readonly #pacemaker: Pacemaker;
  readonly #tree: BlockTree;
  readonly #sync = new BlockSync();
  readonly #votes: Tally<VoteBody>;
  readonly #timeouts: Tally<TimeoutBody>;
  readonly #pending = new Map<string, Command>();
  readonly #firstProposals = new Map<number, { signed: Signed<Proposal>; hash: Digest; reported: boolean }>();
  readonly #synced = new Map<NodeId, number>();
  readonly #lastReply = new Map<string, Reply>();
  #view: number;
  #lastVoted: number;
  #proposed: number;
  #locked: QuorumCert;
  #high: QuorumCert;
  #lastTC: TimeoutCert | undefined;
  #committed: TreeNode;
  #snapshot: SnapshotRecord | undefined;
  #now = 0;
  /** The view the view timer runs for, or -1 when it is off (nothing to make progress on). */
  #timerView = -1;
  /** The highest view this replica sent a timeout for. */
  #timedOut = 0;
  #fetchArmed = false;
  /** This replica's last vote, re-broadcast when its view times out. */
  #lastVote: VoteBody | undefined;

  /**
   * Builds a replica, fresh or from `options.durable`: restores the last snapshot, re-executes the
   * committed blocks above it, and resumes in the view, with the vote, lock and high QC it had.
   * @throws {ConsensusError} `CORRUPT_STATE` when the durable records contradict each other;
   * `INVALID_CONFIG` for a bad option.
   */
  constructor(options: CoreOptions, tuning: HotStuffOptions = {}) {
    this.config = options.config;
    this.#options = checkOptions(tuning);
    this.#state = new ReplicatedState(options.stateMachine);
    this.#pacemaker = new Pacemaker(this.#options.baseTimeoutMs, this.#options.maxTimeoutMs);
    this.#votes = new Tally(this.config.quorumSize);
    this.#timeouts = new Tally(this.config.quorumSize);
    const durable = readDurable(options.durable);
    this.#snapshot = durable.snapshot;
    const root = durable.snapshot?.block ?? GENESIS;
    this.#tree = new BlockTree(root, blockHash(root));
    this.#committed = this.#tree.root;
    if (durable.snapshot !== undefined) {
      this.#state.restore(durable.snapshot.state);
      this.#out.applied({ kind: 'snapshot', position: root.height, stateHash: this.#state.hash() });
    }
    this.#view = durable.view;
    this.#lastVoted = durable.voted;
    this.#proposed = durable.proposed;
    this.#locked = durable.locked ?? GENESIS_QC;
    this.#high = durable.high ?? GENESIS_QC;
    this.#lastTC = durable.tc;
    this.#restoreBlocks(durable.blocks);
    if (durable.committed !== undefined && durable.committed.height > root.height) {
      const top = this.#tree.get(durable.committed.hash);
      if (top === undefined) throw new ConsensusError('CORRUPT_STATE', `committed block at height ${durable.committed.height} is not among the durable blocks`);
      this.#commit(top, this.#childOf(top));
    }
  }

  /** The view this replica is in. */
  get view(): number {
    return this.#view;
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

  /** The last committed block's height and hash. */
  get committedBlock(): { readonly height: number; readonly hash: Digest } {
    return { height: this.#committed.block.height, hash: this.#committed.hash };
  }

  /** The block with `hash`, if this replica holds it. */
  block(hash: Digest): Block | undefined {
    return this.#tree.get(hash)?.block;
  }

  step(input: Input<HotStuffMessage>, now: number): void {
    this.#now = Math.max(this.#now, now);
    switch (input.kind) {
      case 'request':
        this.#onRequest(input.command);
        break;
      case 'timeout':
        if (input.timer === VIEW_TIMER) this.#onViewTimer();
        else if (input.timer === FETCH_TIMER) this.#onFetchTimer();
        break;
      case 'message':
        this.#onMessage(input.message);
        break;
    }
    this.#maybePropose();
    this.#syncTimer();
  }

  ready(): Ready<HotStuffMessage> {
    return this.#out.drain();
  }

  status(): NodeStatus {
    const leader = leaderOf(this.#view, this.config.n);
    return { role: leader === this.config.nodeId ? 'leader' : 'replica', view: this.#view, commitIndex: this.#committed.block.height, leader };
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
        return this.#onTimeout(signed as Signed<TimeoutBody>);
      case 'new-view':
        return this.#onNewView(signed as Signed<MessageOf<'new-view'>>);
      case 'block-request':
        return this.#onBlockRequest(signed.from, body);
      case 'block-response':
        return this.#onBlockResponse(signed.from, body);
      case 'snapshot':
        return this.#onSnapshot(signed.from, body);
    }
  }

  // ── proposals and votes ────────────────────────────────────────────────────────────────────

  #onProposal(signed: Signed<Proposal>): void {
    const { block, tc } = signed.body;
    const from = signed.from;
    if (block.proposer !== from || leaderOf(block.view, this.config.n) !== from) return;
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
    this.#checkEquivocation(signed, hash);
    if (tc !== undefined) this.#processTC(tc);
    const known = this.#tree.get(hash);
    if (known !== undefined) return this.#tryVote(known);
    this.#sync.awaitBlock(hex(hash), signed);
    this.#insert({ block, hash }, from);
  }

  #checkEquivocation(signed: Signed<Proposal>, hash: Digest): void {
    const view = signed.body.block.view;
    const first = this.#firstProposals.get(view);
    if (first === undefined) {
      this.#firstProposals.set(view, { signed, hash, reported: false });
      return;
    }
    if (sameBytes(first.hash, hash) || first.reported) return;
    first.reported = true;
    this.#out.evidence({ kind: 'equivocation', node: signed.from, detail: `two different proposals for view ${view}`, messages: [first.signed, signed] });
  }

  /** Votes for a proposal's block if it is this view's, not voted in yet, and safe (Algorithm 3, "as a replica"). */
  #tryVote(node: TreeNode): void {
    const block = node.block;
    if (block.view !== this.#view || block.view <= this.#lastVoted) return;
    if (block.timestamp > this.#now + this.#options.maxClockSkewMs) return;
    if (!this.safeNode(block, block.justify)) return;
    invariant(block.view > this.#lastVoted, `replica ${this.config.nodeId} would vote twice in view ${block.view}`);
    this.#lastVoted = block.view;
    this.#out.persist(DURABLE.voted, this.#lastVoted);
    this.#lastVote = voteBody(block.view, node.hash);
    // Votes go to the next leader, who builds the QC its proposal carries (Algorithm 3).
    this.#out.send([leaderOf(block.view + 1, this.config.n)], this.#lastVote);
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

  /**
   * Algorithm 4's update() on a QC for b'': raise the high QC, lock on b' (two-chain), commit b
   * when b'' ← b' ← b is a three-chain, and enter the next view.
   */
  #processQC(qc: QuorumCert, from: NodeId | undefined): void {
    const node = this.#tree.get(qc.valueHash);
    if (node === undefined) {
      if (qc.view > this.#high.view) {
        this.#sync.certificate(qc);
        this.#fetch(qc.valueHash, 0, from);
      }
      this.#enterView(qc.view + 1, 'qc');
      return;
    }
    if (node.block.view !== qc.view) return;
    if (qc.view > this.#high.view) {
      this.#high = qc;
      this.#out.persist(DURABLE.high, qc);
      this.#sync.supersede(qc.view);
    }
    const lock = nextLock(node.block, this.#locked);
    if (lock !== this.#locked && this.#tree.get(lock.valueHash) !== undefined) {
      this.#locked = lock;
      this.#out.persist(DURABLE.locked, lock);
    }
    const decided = this.#tree.committedBy(node);
    if (decided !== undefined && decided.block.height > this.#committed.block.height) this.#commit(decided, this.#tree.parent(node));
    this.#enterView(qc.view + 1, 'qc');
  }

  #maybePropose(): void {
    const view = this.#view;
    if (leaderOf(view, this.config.n) !== this.config.nodeId || this.#proposed >= view) return;
    const tc = this.#high.view === view - 1 ? undefined : this.#lastTC?.view === view - 1 ? this.#lastTC : null;
    if (tc === null) return;
    // A newer QC whose block is still being fetched: extend that one rather than a stale high QC.
    if (this.#sync.waitingAbove(this.#high.view)) return;
    const parent = this.#tree.get(this.#high.valueHash);
    if (parent === undefined) return;
    const batch = this.#batch(parent);
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
    this.#out.send(this.config.members, tc === undefined ? { type: 'proposal', block } : { type: 'proposal', block, tc });
  }

  /** Pending commands not already on the uncommitted chain below `parent`, up to a batch. */
  #batch(parent: TreeNode): Command[] {
    const onChain = new Set<string>();
    for (const node of this.#tree.chain(parent, this.#committed.block.height)) for (const cmd of node.block.commands) onChain.add(commandKey(cmd));
    const batch: Command[] = [];
    for (const [key, cmd] of this.#pending) {
      if (batch.length >= this.#options.batchSize) break;
      if (!onChain.has(key)) batch.push(cmd);
    }
    return batch;
  }

  // ── pacemaker ──────────────────────────────────────────────────────────────────────────────

  #enterView(view: number, via: 'qc' | 'tc'): void {
    if (view <= this.#view) return;
    if (via === 'qc') this.#pacemaker.progressed();
    this.#view = view;
    this.#out.persist(DURABLE.view, view);
    this.#votes.forgetBelow(view - 1);
    this.#timeouts.forgetBelow(view);
    for (const v of this.#firstProposals.keys()) if (v < view - PROPOSAL_MEMORY) this.#firstProposals.delete(v);
    this.#sync.forget(this.#committed.block.height, view);
  }

  /** True while this replica has something to make progress on: a request, or an uncommitted batch. */
  #wantsProgress(): boolean {
    if (this.#pending.size > 0) return true;
    const high = this.#tree.get(this.#high.valueHash);
    return high !== undefined && high.lastFilled > this.#committed.block.height;
  }

  /** Runs the view timer while there is work, stops it when idle (no empty views in an idle cluster). */
  #syncTimer(): void {
    const wanted = this.#wantsProgress();
    if (wanted && this.#timerView !== this.#view) {
      const ms = this.#pacemaker.timeoutMs;
      this.#out.setTimer(VIEW_TIMER, ms, ms / 8);
      this.#timerView = this.#view;
    } else if (!wanted && this.#timerView !== -1) {
      this.#out.cancelTimer(VIEW_TIMER);
      this.#timerView = -1;
    }
  }

  #onViewTimer(): void {
    this.#timerView = -1;
    if (this.#wantsProgress()) this.#localTimeout(this.#view);
  }

  /**
   * Gives up on `view`: broadcasts the high QC (the paper's NEW-VIEW), a signed timeout, and the
   * vote cast in `view` if any. Broadcasting the vote lets any replica form the QC a crashed or
   * silent next leader sat on (LibraBFT's timeout votes); without it, round-robin leaders with one
   * silent replica in four never see the four consecutive correct views a commit needs.
   */
  #localTimeout(view: number): void {
    this.#timedOut = Math.max(this.#timedOut, view);
    this.#pacemaker.failed(view);
    this.#out.send(this.config.members, this.#newView(view));
    if (this.#lastVote?.view === view) this.#out.send(this.config.members, this.#lastVote);
    this.#out.send(this.config.members, timeoutBody(view));
  }

  #newView(view: number): MessageOf<'new-view'> {
    const tc = this.#lastTC;
    return tc !== undefined && tc.view > this.#high.view ? { type: 'new-view', view, highQC: this.#high, tc } : { type: 'new-view', view, highQC: this.#high };
  }

  #onTimeout(signed: Signed<TimeoutBody>): void {
    const view = signed.body.view;
    if (view < this.#view) return this.#syncPeer(signed.from);
    const result = this.#timeouts.add(view, '', signed);
    if (result.kind !== 'counted') return;
    // f+1 timeouts include a correct replica's: join them, so a TC forms even where this replica
    // saw nothing wrong (DiemBFT's timeout amplification).
    if (result.count >= this.config.f + 1 && view > this.#timedOut) this.#localTimeout(view);
    if (result.quorum !== undefined) this.#processTC({ view, signatures: bySigner(result.quorum) });
  }

  #processTC(tc: TimeoutCert): void {
    if (tc.view < this.#view) return;
    this.#lastTC = tc;
    this.#out.persist(DURABLE.tc, tc);
    this.#pacemaker.failed(tc.view);
    this.#enterView(tc.view + 1, 'tc');
  }

  #onNewView(signed: Signed<MessageOf<'new-view'>>): void {
    const { body, from } = signed;
    if (!this.#certificatesValid(signed, body.highQC, body.tc)) return;
    if (body.tc !== undefined) this.#processTC(body.tc);
    this.#processQC(body.highQC, from);
    if (body.view < this.#view) this.#syncPeer(from);
  }

  /** Tells a peer seen in an older view where this replica is, once per peer and view. */
  #syncPeer(peer: NodeId): void {
    if (peer === this.config.nodeId || this.#synced.get(peer) === this.#view) return;
    this.#synced.set(peer, this.#view);
    this.#out.send([peer], this.#newView(this.#view));
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

  // ── requests, commit and execution ────────────────────────────────────────────────────────

  #onRequest(cmd: Command): void {
    const cached = this.#state.cached(cmd);
    if (cached !== undefined) {
      const last = this.#lastReply.get(cmd.client);
      const c = this.#committed.block;
      this.#out.reply(last?.timestamp === cmd.timestamp ? last : { client: cmd.client, timestamp: cmd.timestamp, position: c.height, view: c.view, response: cached });
      return;
    }
    const key = commandKey(cmd);
    if (this.#state.executed(cmd) || this.#pending.has(key) || this.#pending.size >= this.#options.maxPending) return;
    this.#pending.set(key, cmd);
  }

  /** Commits `decided` and its uncommitted ancestors; `certifier` is its child on the chain, whose justify certifies it. */
  #commit(decided: TreeNode, certifier: TreeNode | undefined): void {
    this.#execute(decided, certifier);
    this.#out.persist(DURABLE.committed, { height: this.#committed.block.height, hash: this.#committed.hash });
    for (const key of this.#tree.prune(this.#committed)) this.#out.erase(blockKey(key));
    this.#sync.forget(this.#committed.block.height, this.#view);
    for (const [key, cmd] of this.#pending) if (this.#state.executed(cmd)) this.#pending.delete(key);
  }

  /** Executes the chain from just above the committed block up to `top`, in height order. */
  #execute(top: TreeNode, certifier: TreeNode | undefined): void {
    const chain = this.#tree.chain(top, this.#committed.block.height).reverse();
    invariant(
      chain.length > 0 && sameBytes(chain[0]!.block.parent, this.#committed.hash),
      `block ${top.key.slice(0, 16)} at height ${top.block.height} does not extend the committed block at height ${this.#committed.block.height}`,
      'DOUBLE_COMMIT',
    );
    chain.forEach((node, i) => {
      const qc = (chain[i + 1] ?? certifier)?.block.justify;
      this.#apply(node, qc);
    });
  }

  #apply(node: TreeNode, certificate: QuorumCert | undefined): void {
    const block = node.block;
    const stateHashBefore = this.#state.hash();
    const responses: Uint8Array[] = [];
    for (const cmd of block.commands) {
      const { response } = this.#state.execute(cmd);
      responses.push(response);
      this.#pending.delete(commandKey(cmd));
      const reply: Reply = { client: cmd.client, timestamp: cmd.timestamp, position: block.height, view: block.view, response };
      this.#lastReply.set(cmd.client, reply);
      this.#out.reply(reply);
    }
    this.#out.applied({
      kind: 'entry',
      position: block.height,
      view: block.view,
      commands: block.commands,
      responses,
      stateHashBefore,
      stateHash: this.#state.hash(),
      timestamp: block.timestamp,
      ...(certificate === undefined ? {} : { certificate }),
    });
    this.#committed = node;
    if (block.height % this.#options.snapshotInterval === 0) {
      this.#snapshot = { block, state: this.#state.snapshot() };
      this.#out.persist(DURABLE.snapshot, this.#snapshot);
      this.#tree.reroot(node);
    }
  }

  // ── block sync and state transfer ──────────────────────────────────────────────────────────

  /** Adds `first` and every orphan that was waiting for it, processing each block's justify. */
  #insert(first: HashedBlock, from: NodeId | undefined): void {
    const queue: HashedBlock[] = [first];
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const { block, hash } = item;
      if (this.#tree.get(hash) !== undefined) continue;
      const parent = this.#tree.get(block.parent);
      if (parent === undefined) {
        if (block.height - 1 > this.#committed.block.height) {
          this.#sync.orphan(block, hash);
          this.#fetch(block.parent, block.height - 1, from);
        }
        continue;
      }
      if (!this.#validChild(block, parent)) continue;
      const node = this.#tree.add(block, hash);
      this.#out.persist(blockKey(node.key), block);
      this.#processQC(block.justify, from);
      const arrival = this.#sync.arrived(node.key);
      if (arrival.qc !== undefined) this.#processQC(arrival.qc, from);
      if (arrival.proposal !== undefined) this.#tryVote(node);
      queue.push(...arrival.children);
    }
  }

  #validChild(block: Block, parent: TreeNode): boolean {
    if (linkError(block, parent) !== undefined || block.proposer !== leaderOf(block.view, this.config.n)) return false;
    try {
      checkQC(block.justify, this.config);
      return true;
    } catch {
      return false;
    }
  }

  #fetch(hash: Digest, height: number, from: NodeId | undefined): void {
    if (this.#tree.get(hash) !== undefined || !this.#sync.want(hash, height)) return;
    const to = from !== undefined && from !== this.config.nodeId ? [from] : this.#peers();
    this.#out.send(to, { type: 'block-request', hash, height, count: FETCH_COUNT });
    this.#armFetch();
  }

  #armFetch(): void {
    if (this.#fetchArmed) return;
    this.#fetchArmed = true;
    this.#out.setTimer(FETCH_TIMER, this.#options.fetchRetryMs);
  }

  #onFetchTimer(): void {
    this.#fetchArmed = false;
    const missing = this.#sync.retry();
    for (const { hash, height } of missing) this.#out.send(this.#peers(), { type: 'block-request', hash, height, count: FETCH_COUNT });
    if (missing.length > 0) this.#armFetch();
  }

  #peers(): NodeId[] {
    return this.config.members.filter((id) => id !== this.config.nodeId);
  }

  #onBlockRequest(from: NodeId, body: MessageOf<'block-request'>): void {
    if (from === this.config.nodeId) return;
    const node = this.#tree.get(body.hash);
    if (node !== undefined) {
      const blocks = this.#tree.chain(node, this.#tree.root.block.height - 1).slice(0, Math.min(body.count, MAX_BLOCKS_PER_RESPONSE)).map((n) => n.block);
      this.#out.send([from], { type: 'block-response', blocks });
    } else if (body.height > 0 && body.height < this.#tree.root.block.height && this.#snapshot !== undefined) {
      this.#out.send([from], { type: 'snapshot', block: this.#snapshot.block, state: this.#snapshot.state });
    }
  }

  #onBlockResponse(from: NodeId, body: MessageOf<'block-response'>): void {
    let lowest: Block | undefined;
    for (const block of body.blocks) {
      const hash = blockHash(block);
      const key = hex(hash);
      if (!this.#sync.wanted(key) || this.#tree.get(hash) !== undefined) continue;
      if (this.#tree.get(block.parent) !== undefined) {
        this.#insert({ block, hash }, from);
        continue;
      }
      if (block.height - 1 <= this.#committed.block.height) continue;
      this.#sync.orphan(block, hash);
      this.#sync.want(block.parent, block.height - 1);
      lowest = block;
    }
    // The response stopped short of a block held: keep walking down from the lowest one.
    if (lowest !== undefined && this.#tree.get(lowest.parent) === undefined) {
      this.#out.send([from], { type: 'block-request', hash: lowest.parent, height: lowest.height - 1, count: FETCH_COUNT });
      this.#armFetch();
    }
  }

  #onSnapshot(from: NodeId, body: MessageOf<'snapshot'>): void {
    const { block, state } = body;
    if (block.height <= this.#committed.block.height) return;
    try {
      checkQC(block.justify, this.config);
    } catch {
      return;
    }
    const agreed = this.#sync.offer(from, block, blockHash(block), state, this.config.f + 1);
    if (agreed === undefined) return;
    this.#state.restore(agreed.state);
    for (const key of this.#tree.replaceRoot(agreed.block, agreed.hash)) this.#out.erase(blockKey(key));
    this.#committed = this.#tree.root;
    this.#snapshot = { block: agreed.block, state: agreed.state };
    this.#out.persist(DURABLE.snapshot, this.#snapshot);
    this.#out.persist(DURABLE.committed, { height: agreed.block.height, hash: agreed.hash });
    this.#out.applied({ kind: 'snapshot', position: agreed.block.height, stateHash: this.#state.hash() });
    this.#sync.forget(agreed.block.height, this.#view);
    for (const [key, cmd] of this.#pending) if (this.#state.executed(cmd)) this.#pending.delete(key);
    for (const child of this.#sync.arrived(this.#committed.key).children) this.#insert(child, from);
  }

  // ── restart ────────────────────────────────────────────────────────────────────────────────

  /** Rebuilds the tree from the durable blocks that connect to the root; drops the others. */
  #restoreBlocks(blocks: ReadonlyMap<string, Block>): void {
    const ordered = [...blocks].sort(([, a], [, b]) => a.height - b.height);
    for (const [key, block] of ordered) {
      const hash = blockHash(block);
      if (hex(hash) !== key) throw new ConsensusError('CORRUPT_STATE', `durable block ${key.slice(0, 16)} does not hash to its key`);
      const parent = this.#tree.get(block.parent);
      if (block.height > this.#tree.root.block.height && parent !== undefined && this.#validChild(block, parent)) this.#tree.add(block, hash);
      else if (this.#tree.get(hash) === undefined) this.#out.erase(blockKey(key));
    }
  }

  #childOf(node: TreeNode): TreeNode | undefined {
    for (const candidate of this.#tree.nodes()) if (sameBytes(candidate.block.parent, node.hash)) return candidate;
    return undefined;
  }
}
