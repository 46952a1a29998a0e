/**
 * PBFT (Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI'99; section numbers below
 * are that paper's) as a sans-IO core: three-phase agreement with request batching, checkpoints
 * and watermarks, view changes carrying prepared certificates, and state transfer. Every message
 * is signed (the paper's signature variant), so certificates are transferable proofs.
 */
import { ANNOUNCE_TIMER, Announcements } from '../consensus/announcements.js';
import { sameBytes } from '../consensus/codec.js';
import { commandKey, type Command } from '../consensus/command.js';
import { peersOf, type ConsensusConfig, type NodeId } from '../consensus/config.js';
import type { Signed } from '../consensus/certificate.js';
import { Outputs, type Core, type CoreOptions, type Evidence, type Input, type NodeStatus, type Ready, type SignedPosition } from '../consensus/core.js';
import { ConsensusError, invariant } from '../consensus/errors.js';
import { StateArchive } from '../consensus/state-archive.js';
import { ExecutionRun, ReplicatedState, type ReplicatedView } from '../consensus/state-machine.js';
import { Checkpoints, genesisCheckpoint } from './checkpoints.js';
import { DURABLE_KEYS, preparedRecord, readDurable, SLOT_FACTS, slotKey } from './durable.js';
import {
  checkpoint,
  commit,
  prepare,
  prePrepare,
  proposalDigest,
  type Checkpoint,
  type Commit,
  type Committed,
  type FetchState,
  type NewView,
  type PbftMessage,
  type PrePrepare,
  type Prepare,
  type Relay,
  type Stable,
  type StableCheckpoint,
  type StateTransfer,
  type ViewChange,
} from './messages.js';
import { Slot } from './slot.js';
import { planNewView, primaryOf, validCheckpoint, validCommitted, validViewChange, ViewChangeLog, type Quorums } from './view-change.js';

/** Where a replica was at its last announcement, and whether one was heard since it started. */
interface AnnouncedFrom {
  readonly view: number;
  readonly executed: number;
  readonly low: number;
  readonly changing: boolean;
  readonly heard: boolean;
}

/** Tuning of a PBFT replica. */
export interface PbftOptions {
  /** K: a checkpoint every K sequence numbers (default 10). */
  readonly checkpointInterval?: number;
  /** L: sequence numbers accepted above the low watermark, a multiple of K (default 4K). */
  readonly logWindow?: number;
  /** Most requests per pre-prepare (default 32). */
  readonly batchSize?: number;
  /**
   * Most sequence numbers a primary has proposed but not executed (default 2). The primary
   * batches what arrives while the window is full (Castro & Liskov, TOCS 2002, request batching);
   * a deeper window splits the same requests into more, smaller batches, each costing every
   * replica two signatures. With signatures the dominant cost, 2 gave 25–45% more throughput than
   * 4 at n = 4 (classical and hybrid, batches of 64 and 512) and no less with native ML-DSA.
   */
  readonly pipeline?: number;
  /** How long a replica waits for a request to execute before starting a view change (default 500 ms); doubled per consecutive failed view change, up to 16×. */
  readonly requestTimeoutMs?: number;
  /** How far a proposal's timestamp may be from this replica's clock before it refuses to prepare it (default 5 000 ms). */
  readonly maxClockSkewMs?: number;
  /** Most requests waiting to be ordered; more are dropped until clients retry (default 10 000). */
  readonly maxPending?: number;
  /**
   * Most commands executed in one step of the normal case; the core then pauses until the host
   * steps `resume` (core.ts), so that a large batch executes over several turns of the host's
   * event loop (default, or `Infinity`: no limit).
   */
  readonly executionSlice?: number;
}

const VIEW_TIMER = 'view';
const NEW_VIEW_TIMER = 'new-view';
const RESEND_TIMER = 'view-change-resend';
/** The new-view wait stops doubling at 16× the request timeout, so a cluster healing after a long outage is not left waiting minutes. */
const MAX_BACKOFF_DOUBLINGS = 4;

const FETCH_TIMER = 'fetch-state';
/** Armed while an accepted proposal waits to execute; see `#watchStall`. */
const STALL_TIMER = 'stall';


/** A new primary's NEW-VIEW in the making: the view changes V it computed O from, and O's pre-prepares as they come back signed. */
interface NewViewPlan {
  readonly viewChanges: readonly Signed<ViewChange>[];
  readonly size: number;
  readonly signed: Signed<PrePrepare>[];
}

/** A PBFT replica. */
export class PbftCore implements Core<PbftMessage> {
  readonly config: ConsensusConfig;
  readonly #k: number;
  readonly #window: number;
  readonly #batchSize: number;
  readonly #pipeline: number;
  readonly #timeoutMs: number;
  readonly #skewMs: number;
  readonly #maxPending: number;
  readonly #executionSlice: number;
  readonly #out = new Outputs<PbftMessage>();
  readonly #state: ReplicatedState;
  readonly #slots = new Map<number, Slot>();
  readonly #checkpoints = new Checkpoints();
  readonly #viewChanges = new ViewChangeLog();
  /** Pre-prepares of the next view that arrived before its NEW-VIEW, by `view:sequence`. */
  readonly #early = new Map<string, Signed<PrePrepare>>();
  /**
   * Commit certificates for the log window after this one, by sequence. A replica catching up can
   * get them before what moves its window (a stable checkpoint's proof or messages): they are
   * taken once it moves, where dropping them could leave it short in an idle cluster.
   */
  readonly #committedAhead = new Map<number, Signed<Committed>>();
  /** Requests received and not yet executed, in arrival order. */
  readonly #pending = new Map<string, Command>();
  /** Requests in a pre-prepare of the current view that is not yet executed. */
  readonly #ordered = new Set<string>();
  /** The host's time at the current step. */
  #now = 0;
  #view = 0;
  #changing = false;
  #stable: StableCheckpoint;
  /** The state at the stable checkpoint (§4.3), stored and served to replicas behind it. */
  readonly #stableState: StateArchive;
  #executed = 0;
  /** The batch after {@link #executed} while its execution is paused part-way. */
  #running: ExecutionRun | undefined;
  #nextSequence = 1;
  #lastTimestamp = 0;
  #viewTimerArmed = false;
  #newViewTimerArmed = false;
  #failedViews = 0;
  #newViewPlan: NewViewPlan | undefined;
  /** The view-change quorum that let this replica leave its last view, relayed to peers that lost theirs. */
  #leftView: readonly Signed<ViewChange>[] = [];
  /** The NEW-VIEW of the last view this replica entered, to show replicas still in older views. */
  #newView: Signed<NewView> | undefined;
  /** When each peer was last relayed to or sent state, to bound what a peer can make this replica send. */
  readonly #lastServed = new Map<string, { at: number; what: number }>();
  /** Peers that sent a state that does not restore to the digest its checkpoint certifies. */
  readonly #liedAboutState = new Set<NodeId>();
  #fetching = 0;
  #fetchRound = 0;
  /** The fetch timer is armed because later sequence numbers committed while the next did not. */
  #gapArmed = false;
  #stallArmed = false;
  /** What this replica had executed when the stall timer was armed. */
  #executedAtStallArm = 0;
  /** Status announcements in a row that brought no progress: each doubles the wait before the next. */
  #unansweredStatus = 0;
  /** The status a starting replica repeats until one after it was heard brings nothing more (`#onAnnounceTimer`). */
  readonly #announcements: Announcements;
  /** Where this replica was at its last announcement (`#onAnnounceTimer`). */
  #announcedFrom: AnnouncedFrom = { view: 0, executed: 0, low: 0, changing: false, heard: false };

  constructor(options: CoreOptions, tuning: PbftOptions = {}) {
    this.config = options.config;
    this.#k = tuning.checkpointInterval ?? 10;
    this.#window = tuning.logWindow ?? 4 * this.#k;
    this.#batchSize = tuning.batchSize ?? 32;
    this.#pipeline = tuning.pipeline ?? 2;
    this.#timeoutMs = tuning.requestTimeoutMs ?? 500;
    this.#skewMs = tuning.maxClockSkewMs ?? 5_000;
    this.#maxPending = tuning.maxPending ?? 10_000;
    const positive = {
      checkpointInterval: this.#k,
      logWindow: this.#window,
      batchSize: this.#batchSize,
      pipeline: this.#pipeline,
      requestTimeoutMs: this.#timeoutMs,
      maxClockSkewMs: this.#skewMs,
      maxPending: this.#maxPending,
      ...(tuning.executionSlice === undefined || tuning.executionSlice === Number.POSITIVE_INFINITY ? {} : { executionSlice: tuning.executionSlice }),
    };
    for (const [name, v] of Object.entries(positive)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new ConsensusError('INVALID_CONFIG', `pbft ${name} must be a positive integer, got ${v}`);
    }
    this.#executionSlice = tuning.executionSlice ?? Number.POSITIVE_INFINITY;
    if (this.#window % this.#k !== 0) throw new ConsensusError('INVALID_CONFIG', `pbft logWindow (${this.#window}) must be a multiple of checkpointInterval (${this.#k})`);
    this.#announcements = new Announcements(this.#out, this.#timeoutMs, () => this.#announceStatus());
    this.#state = new ReplicatedState(options.stateMachine);
    this.#stableState = new StateArchive(this.#out);
    this.#stable = genesisCheckpoint(this.#state.freeze().digest);
    this.#recover(options.durable);
  }

  /**
   * Matching prepares from backups that, with the pre-prepare, prepare a request: quorum − 1 (2f
   * for n = 3f+1, §4.2). It also sets what a prepared certificate in a view change must hold.
   */
  protected prepareQuorum(): number {
    return this.config.quorumSize - 1;
  }

  /** Matching commits that commit a prepared request: a quorum (2f+1 for n = 3f+1, §4.2). */
  protected commitQuorum(): number {
    return this.config.quorumSize;
  }

  get #quorums(): Quorums {
    return { prepares: this.prepareQuorum(), checkpoint: this.config.quorumSize, commits: this.commitQuorum() };
  }

  get #primary(): NodeId {
    return primaryOf(this.#view, this.config.n);
  }

  get #isPrimary(): boolean {
    return this.#primary === this.config.nodeId;
  }

  /** The low watermark h: the last stable checkpoint. */
  get #low(): number {
    return this.#stable.sequence;
  }

  status(): NodeStatus {
    return {
      role: this.#changing ? 'view-change' : this.#isPrimary ? 'primary' : 'backup',
      view: this.#view,
      commitIndex: this.#executed,
      leader: this.#changing ? null : this.#primary,
    };
  }

  /**
   * The view it is in or changing to, made durable before anything naming it leaves (a VIEW-CHANGE
   * names the view it asks for), and its high watermark h + L: it prepares, commits and
   * checkpoints only inside its log window (§4.2, §4.3), and h, durable too, only grows.
   */
  signedThrough(): SignedPosition {
    return { view: this.#view, sequence: this.#low + this.#window };
  }

  ready(): Ready<PbftMessage> {
    return this.#out.drain();
  }

  get executionPaused(): boolean {
    return this.#running !== undefined;
  }

  step(input: Input<PbftMessage>, now: number): void {
    this.#now = now;
    if (input.kind === 'resume') {
      if (this.#running !== undefined) this.#execute(true);
      return;
    }
    // Any other input while paused: the batch is finished first (core.ts), so no rule below
    // ever sees one half executed.
    if (this.#running !== undefined) this.#execute();
    switch (input.kind) {
      case 'request':
        return this.#onRequest(input.command);
      case 'timeout':
        return this.#onTimeout(input.timer);
      case 'message':
        return this.#onMessage(input.message);
    }
  }

  #onTimeout(timer: string): void {
    if (timer === STALL_TIMER) return this.#onStall();
    if (timer === ANNOUNCE_TIMER) return this.#onAnnounceTimer();
    if (timer === FETCH_TIMER) {
      // No state came (or a gap stayed open): ask other replicas.
      this.#fetching = 0;
      this.#gapArmed = false;
      if (this.#executed < this.#low) this.#fetchState(this.#stable);
      else if (this.#committedBeyondNext()) this.#fetchAhead();
      return;
    }
    if (timer === VIEW_TIMER) this.#viewTimerArmed = false;
    if (timer === RESEND_TIMER && this.#changing) return this.#broadcastViewChange();
    if ((timer === VIEW_TIMER && !this.#changing) || (timer === NEW_VIEW_TIMER && this.#changing)) this.#startViewChange(this.#view + 1);
  }

  #onMessage(m: Signed<PbftMessage>): void {
    const body = m.body;
    if ('view' in body) this.#relayTo(m.from, body.view, body.type === 'view-change');
    switch (body.type) {
      case 'pre-prepare':
        return this.#onPrePrepare(m as Signed<PrePrepare>);
      case 'prepare':
      case 'commit':
        return this.#onVote(m as Signed<Prepare | Commit>);
      case 'checkpoint':
        return this.#onCheckpoint(m as Signed<Checkpoint>);
      case 'stable':
        return this.#onStable(m as Signed<Stable>);
      case 'view-change':
        return this.#onViewChange(m as Signed<ViewChange>);
      case 'new-view':
        return this.#onNewView(m as Signed<NewView>);
      case 'relay':
        return this.#onRelay(body as Relay);
      case 'fetch-state':
        return this.#onFetchState(m as Signed<FetchState>);
      case 'state':
        return this.#onState(m as Signed<StateTransfer>);
      case 'status':
        // The relay above moved the peer to this replica's view if it was behind; the state of a
        // stable checkpoint past what it executed moves it there, and the commits after it
        // bring it up to this replica. Those commits can reach the asker before the state does
        // (its verifier may finish them first), and are then past its window: the status it
        // sends from the checkpoint is a new question, answered even right after the first.
        if (body.executed < this.#low) return this.#bringUp(m.from);
        if (body.stable < this.#low) this.#sendStable(m.from);
        // A peer that got further: this replica's own status is the question it answers.
        if (body.executed > this.#executed) return void (this.#mayServe('status') && this.#announceStatus());
        return this.#retransmitCommitted(m.from, body.executed);
      case 'committed':
        return this.#onCommitted(m as Signed<Committed>);
    }
  }

  // ── Normal case (§4.2) ──────────────────────────────────────────────────────────────────

  #onRequest(cmd: Command): void {
    if (this.#state.executed(cmd)) {
      // §4.1: a retried request that was already executed is answered again, from the client table.
      const recorded = this.#state.cached(cmd);
      if (recorded !== undefined) this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, view: this.#view, ...recorded });
      return;
    }
    const key = commandKey(cmd);
    if (!this.#pending.has(key)) {
      if (this.#pending.size >= this.#maxPending) return;
      this.#pending.set(key, cmd);
    }
    this.#proposeIfPrimary();
    this.#armViewTimer();
  }

  /**
   * The primary orders pending requests in batches, within the pipeline and the high watermark
   * (§4.2, §4.3). The highest sequence proposed is made durable first, so a primary that crashes
   * and restarts never proposes a second batch under a sequence number it already used.
   */
  #proposeIfPrimary(): void {
    if (!this.#isPrimary || this.#changing) return;
    const first = this.#nextSequence;
    while (this.#nextSequence - 1 - this.#executed < this.#pipeline && this.#nextSequence <= this.#low + this.#window) {
      const batch: Command[] = [];
      for (const [key, cmd] of this.#pending) {
        if (batch.length >= this.#batchSize) break;
        if (this.#ordered.has(key)) continue;
        batch.push(cmd);
        this.#ordered.add(key);
      }
      if (batch.length === 0) break;
      this.#lastTimestamp = Math.max(this.#lastTimestamp, Math.floor(this.#now));
      this.#out.send(this.config.members, prePrepare(this.#view, this.#nextSequence++, this.#lastTimestamp, batch));
    }
    if (this.#nextSequence !== first) this.#out.persist(DURABLE_KEYS.proposed, { view: this.#view, sequence: this.#nextSequence - 1 });
  }

  #inWindow(sequence: number): boolean {
    return sequence > this.#low && sequence <= this.#low + this.#window;
  }

  /**
   * A message past the log window says the others moved on while this replica was away. Such a
   * message cannot be logged, and a replica restarted into a cluster that went idle meanwhile
   * hears nothing else: it says how far it got (thesis §5.2), at most once per half request
   * timeout, and peers answer with state and commits.
   */
  #behindIfPast(sequence: number): void {
    if (sequence > this.#low + this.#window && this.#mayServe('status')) this.#announceStatus();
  }

  #slot(sequence: number): Slot {
    let slot = this.#slots.get(sequence);
    if (slot === undefined) {
      slot = new Slot(sequence);
      this.#slots.set(sequence, slot);
    }
    return slot;
  }

  #onPrePrepare(m: Signed<PrePrepare>): void {
    const { view, proposedIn, sequence, digest, timestamp } = m.body;
    if (m.from !== primaryOf(view, this.config.n) || proposedIn > view || !sameBytes(digest, proposalDigest(m.body))) {
      return this.#evidence('invalid-proposal', m.from, `pre-prepare for ${view}:${sequence} from a non-primary, from a later view, or with a digest that does not match its batch`, [m]);
    }
    if (this.#changing && view === this.#view && m.from === this.config.nodeId) return this.#collectNewViewPrePrepare(m);
    // Only NEW-VIEW re-proposes a batch of an earlier view (§4.4); a plain proposal is new.
    if (proposedIn !== view) return this.#evidence('invalid-proposal', m.from, `pre-prepare for ${view}:${sequence} claims an earlier view outside a NEW-VIEW`, [m]);
    this.#behindIfPast(sequence);
    if (!this.#inWindow(sequence) || view < this.#view) return;
    // Only the next view's proposals are kept for later, one per sequence: what a Byzantine
    // future primary can make this replica hold is bounded by the log window.
    if (view > this.#view || this.#changing) {
      if (view <= this.#view + (this.#changing ? 0 : 1)) this.#early.set(`${view}:${sequence}`, m);
      return;
    }
    // The agreed time must be plausible: a primary cannot date a batch far from the backups' clocks.
    if (m.from !== this.config.nodeId && Math.abs(timestamp - this.#now) > this.#skewMs) return;
    this.#accept(m);
  }

  /**
   * Accepts a pre-prepare of the current view whose digest has been checked against its batch:
   * logs it and prepares it (backups only, §4.2).
   */
  #accept(m: Signed<PrePrepare>): void {
    const { sequence, digest } = m.body;
    const slot = this.#slot(sequence);
    if (slot.prePrepare !== undefined && slot.view === m.body.view) {
      if (!sameBytes(slot.prePrepare.body.digest, digest)) this.#evidence('equivocation', m.from, `two pre-prepares for view ${m.body.view}, sequence ${sequence}`, [slot.prePrepare, m]);
      return;
    }
    if (slot.certificate !== undefined) {
      // A proposal from a view before the one the sequence committed in is stale (a primary that
      // had not heard of the later view); from that view on, §4.4 makes every proposal carry the
      // committed batch.
      if (m.body.view < slot.certificate.view) return;
      invariant(sameBytes(slot.certificate.valueHash, digest), `a pre-prepare re-proposes committed sequence ${sequence} with another batch`, 'DOUBLE_COMMIT');
    }
    slot.prePrepare = m;
    for (const cmd of m.body.batch) this.#ordered.add(commandKey(cmd));
    this.#persistPrePrepare(slot);
    if (m.from !== this.config.nodeId) this.#out.send(this.config.members, prepare(m.body.view, sequence, digest));
    this.#checkPrepared(slot);
    this.#watchStall();
  }

  #onVote(m: Signed<Prepare | Commit>): void {
    const { view, sequence } = m.body;
    // Votes for this view or the next only: a vote for a far view cannot complete before this
    // replica gets there, and keeping it would let a Byzantine replica fill memory.
    this.#behindIfPast(sequence);
    if (view < this.#view || view > this.#view + 1 || !this.#inWindow(sequence)) return;
    if (m.body.type === 'prepare' && m.from === primaryOf(view, this.config.n)) return;
    const slot = this.#slot(sequence);
    const earlier = slot.vote(m);
    if (earlier !== undefined) return this.#evidence('double-vote', m.from, `two ${m.body.type}s for view ${view}, sequence ${sequence}`, [earlier, m]);
    if (view === this.#view && !this.#changing) this.#checkPrepared(slot);
    if (slot.prePrepare === undefined) this.#watchStall(slot);
  }

  /** prepared(m, v, n, i): the pre-prepare and enough matching prepares from distinct backups (§4.2). */
  #checkPrepared(slot: Slot): void {
    const pp = slot.prePrepare;
    if (pp === undefined || slot.view !== this.#view || this.#changing) return;
    if (!slot.commitSent) {
      const prepares = slot.matchingPrepares(this.#primary);
      if (prepares.length < this.prepareQuorum()) return;
      slot.preparedCert = { prePrepare: pp, prepares: prepares.sort((a, b) => a.from - b.from) };
      slot.commitSent = true;
      this.#out.persist(slotKey(slot.sequence, 'prepared'), preparedRecord(slot.preparedCert, slot.prePrepare));
      this.#out.send(this.config.members, commit(this.#view, slot.sequence, pp.body.digest));
    }
    this.#checkCommitted(slot);
  }

  /** committed-local(m, v, n, i): prepared and a quorum of matching commits (§4.2). */
  #checkCommitted(slot: Slot): void {
    if (slot.committed || !slot.commitSent) return;
    const commits = slot.matchingCommits();
    if (commits.length < this.commitQuorum()) return;
    slot.certificate = {
      view: slot.view,
      valueHash: slot.digest as Uint8Array,
      signatures: commits.sort((a, b) => a.from - b.from).map((c) => ({ node: c.from, signature: c.signature })),
    };
    this.#persistCommitted(slot);
    this.#execute(true);
  }

  /**
   * Executes committed batches in sequence order (§4.2: after all lower sequence numbers). In
   * `slices`, it pauses once it executed {@link PbftOptions.executionSlice} commands in this step,
   * leaving the rest to `resume`; the normal case and catching up execute so, while recovery and
   * state transfer, which act on the result at once, execute everything.
   */
  #execute(slices = false): void {
    let budget = slices ? this.#executionSlice : Number.POSITIVE_INFINITY;
    for (;;) {
      const slot = this.#slots.get(this.#executed + 1);
      if (slot?.certificate === undefined || slot.prePrepare === undefined) {
        invariant(this.#running === undefined, `the batch paused at ${this.#running?.position} is no longer committed in the log`);
        break;
      }
      const pp = slot.prePrepare.body;
      const run = (this.#running ??= new ExecutionRun(this.#state, pp.batch, slot.sequence, pp.timestamp));
      invariant(run.position === slot.sequence, `execution paused at ${run.position} resumed at ${slot.sequence}`);
      budget -= run.advance(budget);
      if (!run.done) return;
      this.#running = undefined;
      const responses = run.executions.map((execution) => execution.response);
      const stateHashBefore = run.stateHashBefore;
      this.#executed = slot.sequence;
      this.#out.applied({
        kind: 'entry',
        position: slot.sequence,
        // Not the view it committed in, which can differ between replicas around a view change.
        view: pp.proposedIn,
        commands: pp.batch,
        responses,
        failed: run.failed,
        stateHashBefore,
        stateHash: this.#state.hash(),
        timestamp: pp.timestamp,
        certificate: slot.certificate,
      });
      pp.batch.forEach((cmd, i) => {
        const key = commandKey(cmd);
        this.#pending.delete(key);
        this.#ordered.delete(key);
        // A repeat or an outdated command changed nothing and is not its client's answer: the
        // client was (or is, on retry, from the client table) answered for its one execution.
        if (run.executions[i]?.fresh === true) this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, position: slot.sequence, view: pp.view, response: responses[i] as Uint8Array });
      });
      if (slot.sequence % this.#k === 0) this.#takeCheckpoint(slot.sequence);
      this.#failedViews = 0;
    }
    // A retry can reach the pending set after its first copy executed under another sequence.
    for (const [key, cmd] of this.#pending) if (this.#state.executed(cmd)) this.#pending.delete(key);
    // Later sequence numbers committed but the next did not: this replica missed messages (it was
    // down, or cut off). If the gap is still open after a timeout, it fetches a newer stable
    // checkpoint instead of waiting for the next one to form (Castro's thesis §5.3.2).
    if (!this.#gapArmed && this.#fetching === 0 && this.#committedBeyondNext()) {
      this.#gapArmed = true;
      this.#out.setTimer(FETCH_TIMER, this.#timeoutMs);
    }
    this.#rearmViewTimer();
    this.#watchStall();
    this.#proposeIfPrimary();
  }

  /**
   * A proposal this replica accepted that does not execute within a request timeout may have
   * committed at the others through messages this replica never got. With an equivocating
   * primary, for one, a quorum can commit one variant while this replica holds the other, and
   * once clients stop sending, nothing else would tell it. Castro's thesis (§5.2) has replicas
   * send status periodically for this: here a replica does so only while it waits, and its peers
   * answer with what committed. Votes from f+1 replicas for a sequence count as waiting too: one
   * of them is correct, so the sequence is real, and this replica missed its pre-prepare (it was
   * cut off or restarting when it went out, and the cluster may be idle by now). Votes from fewer
   * do not (any member can send those). A wait that status does not end (no quorum anywhere) is
   * re-announced ever more rarely. With `changed`, only that slot is looked at: every other slot
   * was looked at when it last changed, and a waiting one armed the timer then.
   */
  #watchStall(changed?: Slot): void {
    if (this.#executed > this.#executedAtStallArm) this.#unansweredStatus = 0;
    if (this.#stallArmed || !(changed === undefined ? this.#waitingToExecute() : this.#waits(changed))) return;
    this.#stallArmed = true;
    this.#executedAtStallArm = this.#executed;
    this.#out.setTimer(STALL_TIMER, this.#timeoutMs * 2 ** Math.min(this.#unansweredStatus, MAX_BACKOFF_DOUBLINGS));
  }

  #onStall(): void {
    this.#stallArmed = false;
    if (this.#executed === this.#executedAtStallArm && this.#waitingToExecute() && this.#mayServe('status')) {
      this.#announceStatus();
      this.#unansweredStatus++;
    }
    this.#watchStall();
  }

  #waitingToExecute(): boolean {
    for (const slot of this.#slots.values()) if (this.#waits(slot)) return true;
    return false;
  }

  #waits(slot: Slot): boolean {
    return slot.sequence > this.#executed && (slot.prePrepare !== undefined || slot.certificate !== undefined || slot.voters > this.config.f);
  }

  // ── Checkpoints and garbage collection (§4.3) ──────────────────────────────────────────

  /** The state is frozen, not serialized: a checkpoint costs what changed since the last, not the state's size. */
  #takeCheckpoint(sequence: number): void {
    const view = this.#state.freeze();
    this.#checkpoints.recordOwn(sequence, view);
    this.#out.send(this.config.members, checkpoint(sequence, view.digest));
  }

  #onCheckpoint(m: Signed<Checkpoint>): void {
    if (m.body.sequence <= this.#low || m.body.sequence % this.#k !== 0) return;
    const stable = this.#checkpoints.add(m, this.config.quorumSize, this.#low + this.#window);
    if (stable === undefined) return;
    this.#makeStable(stable);
    this.#takeCommittedAhead();
    this.#proposeIfPrimary();
  }

  /**
   * A checkpoint became stable: move h, discard the log below it, and fetch its state if this
   * replica does not hold it. The proof is made durable before the log it replaces is erased
   * (same step, persisted first), so a restart never finds neither. It proposes nothing, though
   * the window moved: the caller decides when the primary may (not before a NEW-VIEW's O is in).
   */
  #makeStable(cp: StableCheckpoint, view?: ReplicatedView): void {
    if (cp.sequence <= this.#low) return;
    const own = view ?? this.#checkpoints.own(cp.sequence);
    this.#stable = cp;
    this.#out.persist(DURABLE_KEYS.stable, { checkpoint: cp });
    if (own !== undefined) this.#holdStable(cp, own);
    else this.#stableState.forget();
    this.#checkpoints.truncate(cp.sequence);
    for (const s of [...this.#slots.keys()]) {
      if (s <= cp.sequence) {
        this.#slots.delete(s);
        for (const fact of SLOT_FACTS) this.#out.erase(slotKey(s, fact));
      }
    }
    for (const [key, pp] of this.#early) if (pp.body.sequence <= cp.sequence) this.#early.delete(key);
    for (const sequence of this.#committedAhead.keys()) if (sequence <= cp.sequence) this.#committedAhead.delete(sequence);
    if (this.#executed < cp.sequence) this.#fetchState(cp);
    if (this.#nextSequence <= cp.sequence) this.#nextSequence = cp.sequence + 1;
  }

  /** `view` is the state at stable checkpoint `cp`: hold it, and store it in the same step as the proof. */
  #holdStable(cp: StableCheckpoint, view: ReplicatedView): void {
    invariant(sameBytes(view.digest, cp.stateDigest), `state at checkpoint ${cp.sequence} differs from the quorum's`, 'DOUBLE_COMMIT');
    this.#stableState.store(cp.sequence, view);
  }

  // ── State transfer ─────────────────────────────────────────────────────────────────────

  /** Asks f+1 of the checkpoint's signers (one of them correct), a different f+1 each round. */
  #fetchState(cp: StableCheckpoint): void {
    if (this.#fetching >= cp.sequence) return;
    this.#fetching = cp.sequence;
    const signers = cp.proof.map((m) => m.from).filter((id) => id !== this.config.nodeId);
    const start = this.#fetchRound++ % Math.max(1, signers.length);
    const ask = [...signers.slice(start), ...signers.slice(0, start)].slice(0, this.config.f + 1);
    this.#out.send(ask, { type: 'fetch-state', sequence: cp.sequence });
    this.#out.setTimer(FETCH_TIMER, this.#timeoutMs);
  }

  #committedBeyondNext(): boolean {
    for (const slot of this.#slots.values()) if (slot.sequence > this.#executed + 1 && slot.certificate !== undefined) return true;
    return false;
  }

  /** Asks f+1 peers, a different f+1 each round, for any stable checkpoint past what this replica executed. */
  #fetchAhead(): void {
    const wanted = this.#executed + 1;
    this.#fetching = wanted;
    const peers = peersOf(this.config);
    const start = this.#fetchRound++ % Math.max(1, peers.length);
    this.#out.send([...peers.slice(start), ...peers.slice(0, start)].slice(0, this.config.f + 1), { type: 'fetch-state', sequence: wanted });
    this.#out.setTimer(FETCH_TIMER, this.#timeoutMs);
  }

  #onFetchState(m: Signed<FetchState>): void {
    if (this.#low >= m.body.sequence) this.#serveState(m.from);
    else this.#retransmitCommitted(m.from, m.body.sequence - 1);
  }

  /**
   * Brings a peer that is behind the stable checkpoint up: its state, then the commits after it.
   * Every such request is the same question to the rate limit, or a peer could make this replica
   * resend the whole window for each number it names.
   */
  #bringUp(peer: NodeId): void {
    this.#serveState(peer);
    this.#retransmitCommitted(peer, this.#low, -1);
  }

  /**
   * A peer executed past this replica's stable checkpoint but never saw it become stable: it was
   * away when the checkpoint messages went out. Its log window ends where it is, so commits past
   * it cannot be logged and, in an idle cluster, nothing else would move it (thesis §5.2 has
   * replicas retransmit checkpoint messages for this). The proof, a quorum's signed checkpoint
   * messages, moves it alone, whichever stable checkpoint other peers hold.
   */
  #sendStable(peer: NodeId): void {
    if (this.#low === 0 || !this.#mayServe(`stable:${peer}`)) return;
    this.#out.send([peer], { type: 'stable', checkpoint: this.#stable });
  }

  #onStable(m: Signed<Stable>): void {
    const cp = m.body.checkpoint;
    if (cp.sequence <= this.#low || cp.sequence % this.#k !== 0) return;
    if (!validCheckpoint(cp, this.config, this.#quorums)) return this.#evidence('invalid-certificate', m.from, `stable checkpoint ${cp.sequence} without a quorum's proof`, [m]);
    this.#makeStable(cp);
    this.#takeCommittedAhead();
    this.#proposeIfPrimary();
  }

  #serveState(peer: NodeId): void {
    if (this.#stableState.view === undefined || this.#low === 0 || !this.#mayServe(`state:${peer}`)) return;
    const snapshot = this.#stableState.snapshot();
    if (snapshot !== undefined) this.#out.send([peer], { type: 'state', checkpoint: this.#stable, snapshot });
  }

  #onState(m: Signed<StateTransfer>): void {
    const cp = m.body.checkpoint;
    if (cp.sequence <= this.#executed || !validCheckpoint(cp, this.config, this.#quorums)) return;
    if (this.#liedAboutState.has(m.from)) return;
    const view = this.#state.adopt(m.body.snapshot, cp.stateDigest);
    if (view === undefined) {
      // Rejecting a state costs restoring it and the state it replaced: a peer gets to lie once.
      // A correct replica only sends a state it holds at a checkpoint a quorum certified.
      this.#liedAboutState.add(m.from);
      return this.#evidence('invalid-certificate', m.from, `state for checkpoint ${cp.sequence} does not match its digest`, [m]);
    }
    this.#executed = cp.sequence;
    this.#fetching = 0;
    this.#gapArmed = false;
    this.#out.cancelTimer(FETCH_TIMER);
    this.#out.applied({ kind: 'snapshot', position: cp.sequence, stateHash: view.stateHash });
    if (cp.sequence > this.#low) {
      this.#makeStable(cp, view);
      this.#proposeIfPrimary();
    } else if (cp.sequence === this.#low) this.#holdStable(cp, view);
    else this.#fetchState(this.#stable);
    for (const key of [...this.#ordered]) if (!this.#pending.has(key)) this.#ordered.delete(key);
    this.#takeCommittedAhead();
    this.#execute();
    // Sequences committed after the checkpoint may be all there is if the cluster went idle:
    // say how far this replica got, and peers send the commits it lacks.
    this.#announceStatus();
  }

  /**
   * Sends `peer` the commit certificates of the sequences it lacks after `after`, up to what this
   * replica executed. `asked` names the peer's question, for the rate limit: how far it said it
   * got, or -1 for anywhere below the stable checkpoint.
   */
  #retransmitCommitted(peer: NodeId, after: number, asked = after): void {
    if (after >= this.#executed || !this.#mayServe(`committed:${peer}`, asked)) return;
    for (let s = after + 1; s <= this.#executed; s++) {
      const slot = this.#slots.get(s);
      if (slot?.certificate === undefined || slot.prePrepare === undefined) continue;
      this.#out.send([peer], { type: 'committed', prePrepare: slot.prePrepare, certificate: slot.certificate });
    }
  }

  #onCommitted(m: Signed<Committed>): void {
    const { prePrepare: pp, certificate } = m.body;
    const sequence = pp.body.sequence;
    if (sequence <= this.#executed || sequence <= this.#low || sequence > this.#low + 2 * this.#window) return;
    if (!validCommitted(pp, certificate, this.config, this.#quorums)) return this.#evidence('invalid-certificate', m.from, `commit certificate for sequence ${sequence} does not hold`, [m]);
    if (!this.#inWindow(sequence)) return void this.#committedAhead.set(sequence, m);
    const slot = this.#slot(sequence);
    if (slot.certificate !== undefined) return;
    slot.prePrepare = pp;
    slot.certificate = certificate;
    for (const cmd of pp.body.batch) this.#ordered.add(commandKey(cmd));
    // A primary that has not yet heard of the view this committed in must not propose at it.
    if (this.#nextSequence <= sequence) this.#nextSequence = sequence + 1;
    this.#persistPrePrepare(slot);
    this.#persistCommitted(slot);
    this.#execute(true);
  }
  /** The window moved: the commit certificates held for it are taken now. */
  #takeCommittedAhead(): void {
    for (const [sequence, m] of this.#committedAhead) {
      if (!this.#inWindow(sequence)) continue;
      this.#committedAhead.delete(sequence);
      this.#onCommitted(m);
    }
  }


  /**
   * At most one relay, state transfer, retransmission, stable proof or status per key (most name
   * a peer) per half request timeout, unless the peer asks for something else (`what`: where its
   * retransmission starts).
   */
  #mayServe(key: string, what = 0): boolean {
    const last = this.#lastServed.get(key);
    if (last !== undefined && last.what === what && this.#now - last.at < this.#timeoutMs / 2) return false;
    this.#lastServed.set(key, { at: this.#now, what });
    return true;
  }

  // ── View change (§4.4, §4.5.2) ─────────────────────────────────────────────────────────

  /**
   * §4.4 arms the timer at backups waiting for a request; the primary arms it too, so a primary
   * that cannot get its own proposals committed (it missed commits, or was left in an old view)
   * asks for a view change instead of waiting forever.
   */
  #armViewTimer(): void {
    if (this.#viewTimerArmed || this.#changing || this.#pending.size === 0) return;
    this.#viewTimerArmed = true;
    this.#out.setTimer(VIEW_TIMER, this.#timeoutMs);
  }

  /** After executing: restart the timer if still waiting for a request, stop it otherwise (§4.4). */
  #rearmViewTimer(): void {
    if (this.#viewTimerArmed) {
      this.#viewTimerArmed = false;
      this.#out.cancelTimer(VIEW_TIMER);
    }
    this.#armViewTimer();
  }

  /** Moves to `view` (changing to it, or in it), durably, with every view timer disarmed. */
  #setView(view: number, changing: boolean): void {
    this.#view = view;
    this.#changing = changing;
    this.#viewTimerArmed = false;
    this.#newViewTimerArmed = false;
    this.#newViewPlan = undefined;
    for (const timer of [VIEW_TIMER, NEW_VIEW_TIMER, RESEND_TIMER]) this.#out.cancelTimer(timer);
    this.#out.persist(DURABLE_KEYS.view, { view, changing });
  }

  #startViewChange(view: number): void {
    if (view < this.#view || (view === this.#view && this.#changing)) return;
    this.#setView(view, true);
    this.#broadcastViewChange();
  }

  #broadcastViewChange(): void {
    const prepared = [...this.#slots.values()]
      .filter((s) => s.preparedCert !== undefined && s.sequence > this.#low)
      .sort((a, b) => a.sequence - b.sequence)
      .map((s) => s.preparedCert!);
    this.#out.send(this.config.members, { type: 'view-change', view: this.#view, checkpoint: this.#stable, prepared });
    // Retransmitted until the view starts: a view change lost to a partition must not stall it.
    this.#out.setTimer(RESEND_TIMER, this.#timeoutMs);
  }

  /**
   * Brings a peer that is behind up to date (Castro's thesis §5.2 retransmits what a lagging peer
   * lacks). Without this, a replica restarting into an old view, or whose view-change messages
   * were lost, could wait forever.
   */
  #relayTo(peer: NodeId, peerView: number, askingToChange: boolean): void {
    if (peer === this.config.nodeId) return;
    const nv = this.#newView;
    const behindEnteredView = nv !== undefined && (peerView < nv.body.view || (peerView === nv.body.view && askingToChange));
    if (behindEnteredView) {
      // The NEW-VIEW of the last view this replica entered moves the peer there.
      if (this.#mayServe(`relay:${peer}`)) this.#out.send([peer], { type: 'relay', viewChanges: [], newView: nv });
    } else if (this.#changing && askingToChange && peerView < this.#view) {
      // A peer still asking for an earlier view gets the quorum that let this replica leave it,
      // and the requests for this replica's view, so it can start its timer or see f+1 ahead.
      const held = [...this.#leftView, ...this.#viewChanges.forView(this.#view)];
      if (held.length > 0 && this.#mayServe(`relay:${peer}`)) this.#out.send([peer], { type: 'relay', viewChanges: held });
    }
  }

  #onRelay(relay: Relay): void {
    for (const vc of relay.viewChanges) this.#onViewChange(vc);
    // A relayed quorum for the view this replica is changing to counts even where the log kept a
    // sender's later request instead: it proves a quorum asked for this view.
    const forView = relay.viewChanges.filter((vc) => vc.body.view === this.#view && validViewChange(vc, this.config, this.#quorums, this.#window));
    if (new Set(forView.map((vc) => vc.from)).size >= this.config.quorumSize) this.#armNewViewTimer(forView);
    if (relay.newView !== undefined) this.#onNewView(relay.newView);
  }

  #onViewChange(m: Signed<ViewChange>): void {
    const view = m.body.view;
    if (view < this.#view || (view === this.#view && !this.#changing) || view === 0) return;
    if (!validViewChange(m, this.config, this.#quorums, this.#window)) return this.#evidence('invalid-certificate', m.from, `invalid view-change for view ${view}`, [m]);
    // A replica cut off while the others went on asks alone to leave their view, and once the
    // cluster is idle it hears nothing else. Its checkpoint shows it is behind a stable one: the
    // state and the commits after it bring it up, though it stays in its view change until the
    // others change view too (§4.5.2).
    if (m.body.checkpoint.sequence < this.#low) this.#bringUp(m.from);
    this.#viewChanges.add(m);
    const forView = this.#viewChanges.forView(this.#view);
    if (forView.length >= this.config.quorumSize) this.#armNewViewTimer(forView);
    // §4.5.2: f+1 replicas asking for later views include a correct one that timed out; join the smallest such view.
    const ahead = this.#viewChanges.above(this.#view);
    if (ahead.size >= this.config.f + 1) this.#startViewChange(Math.min(...ahead.values()));
    this.#maybeIssueNewView();
  }

  /**
   * §4.5.2: the new-view timer starts only once a quorum asks for the view, so a lone replica
   * cannot run through views; it doubles with each view change that fails to produce a view. The
   * quorum is kept: a peer whose copies were lost needs it relayed to follow, even after a restart.
   */
  #armNewViewTimer(quorum: readonly Signed<ViewChange>[]): void {
    if (!this.#changing || this.#newViewTimerArmed) return;
    this.#newViewTimerArmed = true;
    this.#leftView = quorum;
    this.#out.persist(DURABLE_KEYS.leftView, { view: this.#view, viewChanges: quorum });
    this.#out.setTimer(NEW_VIEW_TIMER, this.#timeoutMs * 2 ** Math.min(this.#failedViews, MAX_BACKOFF_DOUBLINGS));
    this.#failedViews++;
  }

  /**
   * The new primary, holding a quorum of view changes V, computes O (§4.4) and sends each of its
   * pre-prepares to itself, so the host signs them; the NEW-VIEW follows once all are back. V is
   * fixed here: view changes arriving meanwhile must not change the V that O was computed from.
   */
  #maybeIssueNewView(): void {
    if (!this.#changing || !this.#isPrimary || this.#newViewPlan !== undefined) return;
    const viewChanges = this.#viewChanges.forView(this.#view).slice(0, this.config.quorumSize);
    if (viewChanges.length < this.config.quorumSize) return;
    const plan = planNewView(viewChanges.map((vc) => vc.body));
    // §4.4: the primary makes min-s's checkpoint stable as it creates the NEW-VIEW, before signing
    // O, whose sequences run up to min-s + L: what it signs stays inside its log window.
    this.#makeStable(plan.checkpoint);
    this.#newViewPlan = { viewChanges, size: plan.proposals.length, signed: [] };
    for (const p of plan.proposals) this.#out.send([this.config.nodeId], prePrepare(this.#view, p.sequence, p.timestamp, p.batch, p.proposedIn));
    if (plan.proposals.length === 0) this.#sendNewView();
  }

  #collectNewViewPrePrepare(m: Signed<PrePrepare>): void {
    const plan = this.#newViewPlan;
    if (plan === undefined) return;
    plan.signed.push(m);
    if (plan.signed.length === plan.size) this.#sendNewView();
  }

  /** Sends NEW-VIEW, made durable first so a restart re-sends this one rather than computing another. */
  #sendNewView(): void {
    const plan = this.#newViewPlan as NewViewPlan;
    const body: NewView = { type: 'new-view', view: this.#view, viewChanges: plan.viewChanges, prePrepares: [...plan.signed].sort((a, b) => a.body.sequence - b.body.sequence) };
    this.#out.persist(DURABLE_KEYS.newViewSent, { body });
    this.#out.send(this.config.members, body);
  }

  /** A backup checks NEW-VIEW by recomputing O from V (§4.4), and each batch against its digest, before entering the view. */
  #onNewView(m: Signed<NewView>): void {
    const { view, viewChanges, prePrepares } = m.body;
    if (view < this.#view || (view === this.#view && !this.#changing) || m.from !== primaryOf(view, this.config.n)) return;
    const valid =
      viewChanges.every((vc) => vc.body.view === view && validViewChange(vc, this.config, this.#quorums, this.#window)) &&
      new Set(viewChanges.map((vc) => vc.from)).size === viewChanges.length &&
      viewChanges.length >= this.config.quorumSize;
    const plan = valid ? planNewView(viewChanges.map((vc) => vc.body)) : undefined;
    const matches =
      plan !== undefined &&
      plan.proposals.length === prePrepares.length &&
      plan.proposals.every((p, i) => {
        const pp = prePrepares[i] as Signed<PrePrepare>;
        const digest = proposalDigest(p);
        return (
          pp.from === m.from &&
          pp.body.view === view &&
          pp.body.sequence === p.sequence &&
          pp.body.timestamp === p.timestamp &&
          sameBytes(pp.body.digest, digest) &&
          sameBytes(proposalDigest(pp.body), digest)
        );
      });
    if (!matches) return this.#evidence('invalid-certificate', m.from, `new-view for view ${view} does not follow from its view changes`, [m]);
    this.#newView = m;
    this.#out.persist(DURABLE_KEYS.newView, m);
    this.#enterView(view, plan.checkpoint, prePrepares);
  }

  #enterView(view: number, cp: StableCheckpoint, prePrepares: readonly Signed<PrePrepare>[]): void {
    this.#setView(view, false);
    // No new proposal before O is accepted (§4.4): a new primary proposing as the checkpoint
    // became stable took a sequence that O re-proposes, with another batch.
    if (cp.sequence > this.#low) this.#makeStable(cp);
    for (const slot of this.#slots.values()) slot.resetForView(view);
    this.#ordered.clear();
    for (const pp of prePrepares) if (pp.body.sequence > this.#low) this.#accept(pp);
    // New proposals follow max-s (§4.4); a sequence above it that an old view used is free again.
    this.#nextSequence = Math.max(this.#low, ...prePrepares.map((pp) => pp.body.sequence)) + 1;
    const early = [...this.#early.values()].filter((pp) => pp.body.view === view);
    this.#early.clear();
    for (const pp of early) this.#onPrePrepare(pp);
    this.#proposeIfPrimary();
    this.#armViewTimer();
  }

  // ── Durability ─────────────────────────────────────────────────────────────────────────

  /**
   * Records the slot's accepted pre-prepare. A prepared certificate recorded as the slot's own
   * (without its pre-prepare) is rewritten whole when that pre-prepare is replaced.
   */
  #persistPrePrepare(slot: Slot): void {
    this.#out.persist(slotKey(slot.sequence), { prePrepare: slot.prePrepare });
    if (slot.preparedCert !== undefined && slot.preparedCert.prePrepare !== slot.prePrepare) {
      this.#out.persist(slotKey(slot.sequence, 'prepared'), preparedRecord(slot.preparedCert, slot.prePrepare));
    }
  }

  #persistCommitted(slot: Slot): void {
    this.#out.persist(slotKey(slot.sequence, 'committed'), { certificate: slot.certificate });
  }

  /**
   * Rebuilds from durable records (durable.ts): the latest state held at a checkpoint, the stable
   * checkpoint's proof, the view, and every logged slot, then re-executes the committed ones. A
   * replica never forgets a pre-prepare it accepted, a certificate it formed or a sequence it
   * proposed, so it cannot sign two values for one (view, sequence).
   */
  #recover(durable: ReadonlyMap<string, unknown>): void {
    const saved = readDurable(durable);
    if (saved.stable !== undefined) this.#stable = saved.stable.checkpoint;
    const recovered = this.#stableState.recover(this.#state, saved.archive);
    if (recovered !== undefined) {
      this.#executed = recovered.position;
      if (recovered.position !== this.#stable.sequence) this.#stableState.forget();
      else if (!sameBytes(recovered.view.digest, this.#stable.stateDigest)) {
        throw new ConsensusError('CORRUPT_STATE', `the stored state at sequence ${recovered.position} differs from the stable checkpoint's`);
      }
      if (this.#executed > 0) this.#out.applied({ kind: 'snapshot', position: this.#executed, stateHash: recovered.view.stateHash });
    }
    this.#nextSequence = this.#low + 1;
    if (saved.view !== undefined) {
      this.#view = saved.view.view;
      this.#changing = saved.view.changing;
    }
    if (saved.proposed !== undefined && saved.proposed.view === this.#view) this.#nextSequence = Math.max(this.#nextSequence, saved.proposed.sequence + 1);
    if (saved.leftView !== undefined) {
      this.#leftView = saved.leftView.viewChanges;
      for (const vc of saved.leftView.viewChanges) this.#viewChanges.add(vc);
    }
    this.#newView = saved.newView;
    for (const { sequence, record } of saved.slots) {
      if (sequence <= this.#low) continue;
      const slot = this.#slot(sequence);
      slot.prePrepare = record.prePrepare;
      slot.preparedCert = record.preparedCert;
      slot.certificate = record.committed;
      slot.resetForView(this.#view);
      slot.commitSent = record.preparedCert !== undefined && record.preparedCert.prePrepare.body.view === this.#view && slot.view === this.#view;
      if (slot.view === this.#view) {
        for (const cmd of slot.prePrepare?.body.batch ?? []) this.#ordered.add(commandKey(cmd));
        this.#nextSequence = Math.max(this.#nextSequence, sequence + 1);
      }
    }
    this.#execute();
    if (this.#executed < this.#low) this.#fetchState(this.#stable);
    const sent = saved.newViewSent?.body;
    if (this.#changing && sent !== undefined && sent.view === this.#view) {
      // It had sent its NEW-VIEW: send the same one again (a new V could yield another O).
      this.#out.send(this.config.members, sent);
    } else if (this.#changing) {
      // Its view change was lost with the crash: ask again.
      this.#broadcastViewChange();
    }
    // The others may have changed view or moved on while it was down; with no client traffic
    // nothing would tell it (consensus/announcements.ts). A view change the others answer by
    // relaying their view moves it there, but not past what they executed meanwhile.
    this.#announcedFrom = this.#whereNow(false);
    this.#announcements.start();
  }

  /**
   * Executing something, a moved window, a newer view, or the end of the view change it restarted
   * in shows the others heard; the announcements go on while each brings something, and end once
   * one brought nothing more. While this replica caught up on the commits its first status asked for, the
   * others may have committed a sequence whose pre-prepare and votes it missed, and then gone idle:
   * nothing but another status would tell it.
   */
  #onAnnounceTimer(): void {
    const from = this.#announcedFrom;
    const heard = this.#executed > from.executed || this.#low > from.low || this.#view !== from.view || (from.changing && !this.#changing);
    if (!heard && from.heard) return this.#announcements.stop();
    this.#announcedFrom = this.#whereNow(from.heard || heard);
    this.#announcements.onTimer(heard);
  }

  #whereNow(heard: boolean): AnnouncedFrom {
    return { view: this.#view, executed: this.#executed, low: this.#low, changing: this.#changing, heard };
  }

  #announceStatus(): void {
    this.#out.send(peersOf(this.config), { type: 'status', view: this.#view, executed: this.#executed, stable: this.#low });
  }

  #evidence(kind: Evidence['kind'], node: NodeId, detail: string, messages: readonly Signed<unknown>[]): void {
    this.#out.evidence({ kind, node, detail, messages });
  }
}
