/**
 * PBFT (Castro & Liskov, "Practical Byzantine Fault Tolerance and Proactive Recovery", TOCS 2002)
 * as a sans-IO core: normal-case three-phase agreement with request batching, checkpoints and
 * watermarks, view changes carrying prepared certificates, and state transfer. Every message is
 * signed (§4's signature variant), so certificates are transferable proofs.
 */
import { t } from '../../schema/schema.js';
import { hashBytes, sameBytes } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { quorumCertSchema, signedSchema, type QuorumCert, type Signed } from '../consensus/certificate.js';
import { Outputs, type Core, type CoreOptions, type Evidence, type Input, type NodeStatus, type Ready } from '../consensus/core.js';
import { ConsensusError, invariant } from '../consensus/errors.js';
import { ReplicatedState } from '../consensus/state-machine.js';
import { Checkpoints, genesisCheckpoint } from './checkpoints.js';
import {
  checkpoint,
  commit,
  prepare,
  prePrepare,
  prePrepareSchema,
  preparedCertSchema,
  proposalDigest,
  stableCheckpointSchema,
  type Checkpoint,
  type Commit,
  type FetchState,
  type NewView,
  type PbftMessage,
  type PrePrepare,
  type Prepare,
  type StableCheckpoint,
  type StateTransfer,
  type ViewChange,
  viewChangeSchema,
  type Relay,
} from './messages.js';
import { Slot } from './slot.js';
import { planNewView, primaryOf, validCheckpoint, validViewChange, type Quorums } from './view-change.js';

/** Tuning of a PBFT replica. */
export interface PbftOptions {
  /** K: a checkpoint every K sequence numbers (default 10). */
  readonly checkpointInterval?: number;
  /** L: sequence numbers accepted above the low watermark, a multiple of K (default 4K). */
  readonly logWindow?: number;
  /** Most requests per pre-prepare (default 32). */
  readonly batchSize?: number;
  /** Most sequence numbers a primary has proposed but not executed (default 4). */
  readonly pipeline?: number;
  /** How long a backup waits for a request to execute before starting a view change (default 500 ms); doubled per consecutive view change. */
  readonly requestTimeoutMs?: number;
}

const VIEW_TIMER = 'view';
const NEW_VIEW_TIMER = 'new-view';
const RESEND_TIMER = 'view-change-resend';
/** The new-view wait stops doubling at 16× the request timeout, so a cluster healing after a long outage is not left waiting minutes. */
const MAX_BACKOFF_DOUBLINGS = 4;

const slotRecordSchema = t.object({
  prePrepare: t.optional(signedSchema(prePrepareSchema)),
  preparedCert: t.optional(preparedCertSchema),
  committed: t.optional(quorumCertSchema),
});
const viewRecordSchema = t.object({ view: t.uint(), changing: t.boolean() });
const stableRecordSchema = t.object({ checkpoint: stableCheckpointSchema, snapshot: t.bytes() });
const leftViewRecordSchema = t.object({ view: t.uint(), viewChanges: t.array(signedSchema(viewChangeSchema)) });

const slotKey = (sequence: number): string => `slot/${sequence.toString().padStart(16, '0')}`;
const commandKey = (cmd: Command): string => `${cmd.client}\u0000${cmd.timestamp}`;

/** A PBFT replica. */
export class PbftCore implements Core<PbftMessage> {
  readonly config: ConsensusConfig;
  readonly #k: number;
  readonly #window: number;
  readonly #batchSize: number;
  readonly #pipeline: number;
  readonly #timeoutMs: number;
  readonly #out = new Outputs<PbftMessage>();
  readonly #state: ReplicatedState;
  readonly #slots = new Map<number, Slot>();
  readonly #checkpoints = new Checkpoints();
  readonly #viewChanges = new Map<number, Map<NodeId, Signed<ViewChange>>>();
  readonly #futurePrePrepares = new Map<number, Signed<PrePrepare>>();
  /** Requests received and not yet executed, in arrival order. */
  readonly #pending = new Map<string, Command>();
  /** Requests in a pre-prepare of the current view that is not yet executed. */
  readonly #ordered = new Set<string>();
  #view = 0;
  #changing = false;
  #stable: StableCheckpoint;
  /** The state at the stable checkpoint, once this replica holds it (after a new view it may only know the digest). */
  #stableSnapshot: Uint8Array | undefined;
  #executed = 0;
  #nextSequence = 1;
  #lastTimestamp = 0;
  #viewTimerArmed = false;
  #failedViews = 0;
  /** Signed pre-prepares a new primary collects (by loopback) for its new-view message. */
  #newViewPrePrepares: Signed<PrePrepare>[] = [];
  #newViewPlanSize = -1;
  #newViewTimerArmed = false;
  /** The NEW-VIEW of the last view this replica entered, to show replicas still in older views. */
  #newView: Signed<NewView> | undefined;
  /** The view each peer was last shown {@link #newView} for. */
  readonly #shown = new Map<NodeId, number>();
  #fetching = 0;

  constructor(options: CoreOptions, tuning: PbftOptions = {}) {
    this.config = options.config;
    this.#k = tuning.checkpointInterval ?? 10;
    this.#window = tuning.logWindow ?? 4 * this.#k;
    this.#batchSize = tuning.batchSize ?? 32;
    this.#pipeline = tuning.pipeline ?? 4;
    this.#timeoutMs = tuning.requestTimeoutMs ?? 500;
    for (const [name, v] of [['checkpointInterval', this.#k], ['logWindow', this.#window], ['batchSize', this.#batchSize], ['pipeline', this.#pipeline], ['requestTimeoutMs', this.#timeoutMs]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new ConsensusError('INVALID_CONFIG', `pbft ${name} must be a positive integer, got ${v}`);
    }
    if (this.#window % this.#k !== 0) throw new ConsensusError('INVALID_CONFIG', `pbft logWindow (${this.#window}) must be a multiple of checkpointInterval (${this.#k})`);
    this.#state = new ReplicatedState(options.stateMachine);
    this.#stableSnapshot = this.#state.snapshot();
    this.#stable = genesisCheckpoint(hashBytes(this.#stableSnapshot));
    this.#recover(options.durable);
  }

  /** Matching prepares from backups that, with the pre-prepare, prepare a request: quorum − 1 (2f for n = 3f+1, §4.2). */
  protected prepareQuorum(): number {
    return this.config.quorumSize - 1;
  }

  /** Matching commits that commit a prepared request: a quorum (2f+1 for n = 3f+1, §4.2). */
  protected commitQuorum(): number {
    return this.config.quorumSize;
  }

  get #quorums(): Quorums {
    return { prepares: this.prepareQuorum(), checkpoint: this.config.quorumSize };
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

  ready(): Ready<PbftMessage> {
    return this.#out.drain();
  }

  step(input: Input<PbftMessage>, now: number): void {
    switch (input.kind) {
      case 'request':
        return this.#onRequest(input.command, now);
      case 'timeout':
        // A lost fetch is asked again after any timeout.
        this.#fetching = 0;
        if (input.timer === VIEW_TIMER) this.#viewTimerArmed = false;
        if (input.timer === RESEND_TIMER && this.#changing) return this.#broadcastViewChange();
        if ((input.timer === VIEW_TIMER && !this.#changing) || (input.timer === NEW_VIEW_TIMER && this.#changing)) this.#startViewChange(this.#view + 1);
        return;
      case 'message':
        return this.#onMessage(input.message, now);
    }
  }

  #onMessage(m: Signed<PbftMessage>, now: number): void {
    const body = m.body;
    if ('view' in body) this.#showCurrentView(m.from, body.view, body.type === 'view-change');
    switch (body.type) {
      case 'pre-prepare':
        return this.#onPrePrepare(m as Signed<PrePrepare>, now);
      case 'prepare':
      case 'commit':
        return this.#onVote(m as Signed<Prepare | Commit>);
      case 'checkpoint':
        return this.#onCheckpoint(m as Signed<Checkpoint>);
      case 'view-change':
        return this.#onViewChange(m as Signed<ViewChange>, now);
      case 'new-view':
        return this.#onNewView(m as Signed<NewView>, now);
      case 'relay':
        return this.#onRelay(body as Relay, now);
      case 'fetch-state':
        return this.#onFetchState(m as Signed<FetchState>);
      case 'state':
        return this.#onState(m as Signed<StateTransfer>);
    }
  }

  // ── Normal case (§4.2) ──────────────────────────────────────────────────────────────────

  #onRequest(cmd: Command, now: number): void {
    if (this.#state.executed(cmd)) {
      const response = this.#state.cached(cmd);
      if (response !== undefined) this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, position: this.#executed, view: this.#view, response });
      return;
    }
    const key = commandKey(cmd);
    if (!this.#pending.has(key)) this.#pending.set(key, cmd);
    if (this.#isPrimary && !this.#changing) this.#propose(now);
    else this.#armViewTimer();
  }

  /** The primary orders pending requests in batches, within the pipeline and the high watermark (§4.2, §4.3). */
  #propose(now: number): void {
    while (this.#nextSequence - 1 - this.#executed < this.#pipeline && this.#nextSequence <= this.#low + this.#window) {
      const batch: Command[] = [];
      for (const [key, cmd] of this.#pending) {
        if (batch.length >= this.#batchSize) break;
        if (this.#ordered.has(key)) continue;
        batch.push(cmd);
        this.#ordered.add(key);
      }
      if (batch.length === 0) return;
      this.#lastTimestamp = Math.max(this.#lastTimestamp, Math.floor(now));
      this.#out.send(this.config.members, prePrepare(this.#view, this.#nextSequence++, this.#lastTimestamp, batch));
    }
  }

  #inWindow(sequence: number): boolean {
    return sequence > this.#low && sequence <= this.#low + this.#window;
  }

  #slot(sequence: number): Slot {
    let slot = this.#slots.get(sequence);
    if (slot === undefined) {
      slot = new Slot(sequence);
      this.#slots.set(sequence, slot);
    }
    return slot;
  }

  #onPrePrepare(m: Signed<PrePrepare>, now: number): void {
    const { view, sequence, digest, timestamp, batch } = m.body;
    if (m.from !== primaryOf(view, this.config.n) || !sameBytes(digest, proposalDigest(timestamp, batch))) {
      return this.#evidence('invalid-proposal', m.from, `pre-prepare for ${view}:${sequence} from a non-primary or with a digest that does not match its batch`, [m]);
    }
    if (this.#changing && view === this.#view && m.from === this.config.nodeId) return this.#collectNewViewPrePrepare(m, now);
    if (view > this.#view || (view === this.#view && this.#changing)) {
      if (sequence > this.#low) this.#futurePrePrepares.set(sequence, m);
      return;
    }
    if (view < this.#view || !this.#inWindow(sequence)) return;
    this.#accept(m);
  }

  /** Accepts a pre-prepare of the current view: logs it and prepares (backups only, §4.2). */
  #accept(m: Signed<PrePrepare>): void {
    const { sequence, digest } = m.body;
    const slot = this.#slot(sequence);
    if (slot.prePrepare !== undefined && slot.view === m.body.view) {
      if (!sameBytes(slot.prePrepare.body.digest, digest)) this.#evidence('equivocation', m.from, `two pre-prepares for view ${m.body.view}, sequence ${sequence}`, [slot.prePrepare, m]);
      return;
    }
    if (slot.certificate !== undefined) {
      invariant(sameBytes(slot.certificate.valueHash, digest), `a pre-prepare re-proposes committed sequence ${sequence} with another batch`, 'DOUBLE_COMMIT');
    }
    slot.prePrepare = m;
    for (const cmd of m.body.batch) this.#ordered.add(commandKey(cmd));
    this.#persistSlot(slot);
    if (m.from !== this.config.nodeId) this.#out.send(this.config.members, prepare(m.body.view, sequence, digest));
    this.#checkPrepared(slot);
  }

  #onVote(m: Signed<Prepare | Commit>): void {
    const { view, sequence } = m.body;
    if (view < this.#view || !this.#inWindow(sequence)) return;
    if (m.body.type === 'prepare' && m.from === primaryOf(view, this.config.n)) return;
    const slot = this.#slot(sequence);
    const earlier = slot.vote(m);
    if (earlier !== undefined) return this.#evidence('double-vote', m.from, `two ${m.body.type}s for view ${view}, sequence ${sequence}`, [earlier, m]);
    if (view === this.#view && !this.#changing) this.#checkPrepared(slot);
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
      this.#persistSlot(slot);
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
    this.#persistSlot(slot);
    this.#execute();
  }

  /** Executes committed batches in sequence order (§4.2: after all lower sequence numbers). */
  #execute(): void {
    for (;;) {
      const slot = this.#slots.get(this.#executed + 1);
      if (slot?.certificate === undefined || slot.prePrepare === undefined) break;
      const pp = slot.prePrepare.body;
      const stateHashBefore = this.#state.hash();
      const responses = pp.batch.map((cmd) => this.#state.execute(cmd).response);
      this.#executed = slot.sequence;
      this.#out.applied({
        kind: 'entry',
        position: slot.sequence,
        view: pp.view,
        commands: pp.batch,
        responses,
        stateHashBefore,
        stateHash: this.#state.hash(),
        timestamp: pp.timestamp,
        certificate: slot.certificate,
      });
      pp.batch.forEach((cmd, i) => {
        const key = commandKey(cmd);
        this.#pending.delete(key);
        this.#ordered.delete(key);
        this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, position: slot.sequence, view: pp.view, response: responses[i] as Uint8Array });
      });
      if (slot.sequence % this.#k === 0) this.#takeCheckpoint(slot.sequence);
      this.#failedViews = 0;
    }
    this.#dropExecutedPending();
    this.#rearmViewTimer();
  }

  /** A request can reach the pending set after a retry was executed under another sequence; forget those. */
  #dropExecutedPending(): void {
    for (const [key, cmd] of this.#pending) if (this.#state.executed(cmd)) this.#pending.delete(key);
  }

  // ── Checkpoints and garbage collection (§4.3) ──────────────────────────────────────────

  #takeCheckpoint(sequence: number): void {
    const snapshot = this.#state.snapshot();
    const digest = hashBytes(snapshot);
    this.#checkpoints.recordOwn(sequence, digest, snapshot);
    this.#out.send(this.config.members, checkpoint(sequence, digest));
  }

  #onCheckpoint(m: Signed<Checkpoint>): void {
    if (m.body.sequence <= this.#low || m.body.sequence % this.#k !== 0) return;
    const stable = this.#checkpoints.add(m, this.config.quorumSize);
    if (stable !== undefined) this.#makeStable(stable);
  }

  /** A checkpoint became stable: move h, discard the log below it, and fetch its state if this replica is behind. */
  #makeStable(cp: StableCheckpoint, snapshot?: Uint8Array): void {
    if (cp.sequence <= this.#low) return;
    const own = snapshot ?? this.#checkpoints.own(cp.sequence)?.snapshot;
    if (own !== undefined) invariant(sameBytes(hashBytes(own), cp.stateDigest), `state at checkpoint ${cp.sequence} differs from the quorum's`, 'DOUBLE_COMMIT');
    this.#stableSnapshot = own;
    this.#stable = cp;
    this.#checkpoints.truncate(cp.sequence);
    for (const s of [...this.#slots.keys()]) {
      if (s <= cp.sequence) {
        this.#slots.delete(s);
        this.#out.erase(slotKey(s));
      }
    }
    for (const s of [...this.#futurePrePrepares.keys()]) if (s <= cp.sequence) this.#futurePrePrepares.delete(s);
    if (own !== undefined) this.#out.persist('stable', { checkpoint: cp, snapshot: own });
    if (this.#executed < cp.sequence) this.#fetchState(cp);
    if (this.#nextSequence <= cp.sequence) this.#nextSequence = cp.sequence + 1;
  }

  // ── State transfer ─────────────────────────────────────────────────────────────────────

  #fetchState(cp: StableCheckpoint): void {
    if (this.#fetching >= cp.sequence) return;
    this.#fetching = cp.sequence;
    const from = cp.proof.map((m) => m.from).filter((id) => id !== this.config.nodeId);
    this.#out.send(from, { type: 'fetch-state', sequence: cp.sequence });
  }

  #onFetchState(m: Signed<FetchState>): void {
    if (this.#stableSnapshot !== undefined && this.#low >= m.body.sequence && this.#low > 0) {
      this.#out.send([m.from], { type: 'state', checkpoint: this.#stable, snapshot: this.#stableSnapshot });
    }
  }

  #onState(m: Signed<StateTransfer>): void {
    const cp = m.body.checkpoint;
    if (cp.sequence <= this.#executed || !validCheckpoint(cp, this.config, this.#quorums)) return;
    if (!sameBytes(hashBytes(m.body.snapshot), cp.stateDigest)) return this.#evidence('invalid-certificate', m.from, `state for checkpoint ${cp.sequence} does not match its digest`, [m]);
    this.#state.restore(m.body.snapshot);
    this.#executed = cp.sequence;
    this.#fetching = 0;
    this.#out.applied({ kind: 'snapshot', position: cp.sequence, stateHash: this.#state.hash() });
    if (cp.sequence > this.#low) this.#makeStable(cp, m.body.snapshot);
    else if (cp.sequence === this.#low) {
      this.#stableSnapshot = m.body.snapshot;
      this.#out.persist('stable', { checkpoint: cp, snapshot: m.body.snapshot });
    } else this.#fetchState(this.#stable);
    for (const key of [...this.#ordered]) if (!this.#pending.has(key)) this.#ordered.delete(key);
    this.#execute();
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

  #startViewChange(view: number): void {
    if (view < this.#view || (view === this.#view && this.#changing)) return;
    this.#view = view;
    this.#changing = true;
    this.#viewTimerArmed = false;
    this.#newViewTimerArmed = false;
    this.#newViewPrePrepares = [];
    this.#newViewPlanSize = -1;
    this.#out.cancelTimer(VIEW_TIMER);
    this.#out.cancelTimer(NEW_VIEW_TIMER);
    this.#out.persist('view', { view, changing: true });
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
   * lacks): a peer in an older view gets the NEW-VIEW of this replica's view; a peer still asking
   * for an older view gets the view changes this replica holds for that view and for its own, so
   * it can start its timer or see f+1 replicas ahead. Without this, a replica restarting into an
   * old view, or whose view changes were lost, could wait forever.
   */
  #showCurrentView(peer: NodeId, view: number, askingToChange: boolean): void {
    if (peer === this.config.nodeId) return;
    const nv = this.#newView;
    if (nv !== undefined && (view < nv.body.view || (view === nv.body.view && askingToChange))) {
      if (this.#shown.get(peer) === nv.body.view && !askingToChange) return;
      this.#shown.set(peer, nv.body.view);
      this.#out.send([peer], { type: 'relay', viewChanges: [], newView: nv });
    } else if (this.#changing && askingToChange && view < this.#view) {
      const held = [...(this.#viewChanges.get(view)?.values() ?? []), ...(this.#viewChanges.get(this.#view)?.values() ?? [])];
      if (held.length > 0) this.#out.send([peer], { type: 'relay', viewChanges: held });
    }
  }

  #onRelay(relay: Relay, now: number): void {
    for (const vc of relay.viewChanges) this.#onViewChange(vc, now);
    if (relay.newView !== undefined) this.#onNewView(relay.newView, now);
  }

  #onViewChange(m: Signed<ViewChange>, now: number): void {
    const view = m.body.view;
    if (view < this.#view || (view === this.#view && !this.#changing) || view === 0) return;
    if (!validViewChange(m, this.config, this.#quorums, this.#window)) return this.#evidence('invalid-certificate', m.from, `invalid view-change for view ${view}`, [m]);
    let forView = this.#viewChanges.get(view);
    if (forView === undefined) {
      forView = new Map();
      this.#viewChanges.set(view, forView);
    }
    forView.set(m.from, m);
    // §4.5.2: the new-view timer starts only once a quorum asks for the view, so a lone replica
    // cannot run through views; it doubles with each view change that fails to produce a view.
    if (this.#changing && view === this.#view && forView.size >= this.config.quorumSize && !this.#newViewTimerArmed) {
      this.#newViewTimerArmed = true;
      // The quorum that lets this replica leave the view is kept: a peer whose copies were lost
      // needs them relayed to follow, even after this replica restarts.
      this.#out.persist('left-view', { view, viewChanges: [...forView.values()] });
      this.#out.setTimer(NEW_VIEW_TIMER, this.#timeoutMs * 2 ** Math.min(this.#failedViews, MAX_BACKOFF_DOUBLINGS));
      this.#failedViews++;
    }
    // §4.5.2: f+1 replicas asking for later views include a correct one that timed out; join the smallest such view.
    const ahead = new Map<NodeId, number>();
    for (const [v, vcs] of this.#viewChanges) {
      if (v > this.#view) for (const id of vcs.keys()) ahead.set(id, Math.min(ahead.get(id) ?? Infinity, v));
    }
    if (ahead.size >= this.config.f + 1) this.#startViewChange(Math.min(...ahead.values()));
    this.#maybeIssueNewView(now);
  }

  /** The new primary, holding a quorum of view changes, re-proposes O by loopback so each pre-prepare is signed, then sends NEW-VIEW. */
  #maybeIssueNewView(now: number): void {
    if (!this.#changing || !this.#isPrimary || this.#newViewPlanSize >= 0) return;
    const vcs = this.#quorumOfViewChanges(this.#view);
    if (vcs === undefined) return;
    const plan = planNewView(vcs.map((vc) => vc.body));
    this.#newViewPlanSize = plan.proposals.length;
    for (const p of plan.proposals) this.#out.send([this.config.nodeId], prePrepare(this.#view, p.sequence, p.timestamp, p.batch));
    if (plan.proposals.length === 0) this.#sendNewView();
  }

  #quorumOfViewChanges(view: number): Signed<ViewChange>[] | undefined {
    const vcs = [...(this.#viewChanges.get(view)?.values() ?? [])].sort((a, b) => a.from - b.from);
    return vcs.length >= this.config.quorumSize ? vcs.slice(0, this.config.quorumSize) : undefined;
  }

  #collectNewViewPrePrepare(m: Signed<PrePrepare>, now: number): void {
    if (this.#newViewPlanSize < 0) return;
    this.#newViewPrePrepares.push(m);
    if (this.#newViewPrePrepares.length === this.#newViewPlanSize) this.#sendNewView();
  }

  #sendNewView(): void {
    const vcs = this.#quorumOfViewChanges(this.#view) as Signed<ViewChange>[];
    const prePrepares = [...this.#newViewPrePrepares].sort((a, b) => a.body.sequence - b.body.sequence);
    this.#out.send(this.config.members, { type: 'new-view', view: this.#view, viewChanges: vcs, prePrepares });
  }

  /** A backup checks NEW-VIEW by recomputing O from V (§4.4) before entering the view. */
  #onNewView(m: Signed<NewView>, now: number): void {
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
        return pp.from === m.from && pp.body.view === view && pp.body.sequence === p.sequence && pp.body.timestamp === p.timestamp && sameBytes(pp.body.digest, proposalDigest(p.timestamp, p.batch));
      });
    if (!matches) return this.#evidence('invalid-certificate', m.from, `new-view for view ${view} does not follow from its view changes`, [m]);
    this.#newView = m;
    this.#enterView(view, plan.checkpoint, prePrepares, now);
  }

  #enterView(view: number, cp: StableCheckpoint, prePrepares: readonly Signed<PrePrepare>[], now: number): void {
    this.#view = view;
    this.#changing = false;
    this.#newViewTimerArmed = false;
    this.#out.cancelTimer(NEW_VIEW_TIMER);
    this.#out.cancelTimer(RESEND_TIMER);
    this.#out.persist('view', { view, changing: false });
    for (const v of [...this.#viewChanges.keys()]) if (v <= view) this.#viewChanges.delete(v);
    if (cp.sequence > this.#low) this.#makeStable(cp);
    for (const slot of this.#slots.values()) slot.resetForView(view);
    this.#ordered.clear();
    for (const pp of prePrepares) if (pp.body.sequence > this.#low) this.#accept(pp);
    this.#nextSequence = Math.max(this.#low, ...prePrepares.map((pp) => pp.body.sequence)) + 1;
    const future = [...this.#futurePrePrepares.values()].filter((pp) => pp.body.view === view);
    this.#futurePrePrepares.clear();
    for (const pp of future) this.#onPrePrepare(pp, now);
    if (this.#isPrimary) this.#propose(now);
    this.#rearmViewTimer();
  }

  // ── Durability ─────────────────────────────────────────────────────────────────────────

  #persistSlot(slot: Slot): void {
    const record: Record<string, unknown> = {};
    if (slot.prePrepare !== undefined) record.prePrepare = slot.prePrepare;
    if (slot.preparedCert !== undefined) record.preparedCert = slot.preparedCert;
    if (slot.certificate !== undefined) record.committed = slot.certificate;
    this.#out.persist(slotKey(slot.sequence), record);
  }

  /**
   * Rebuilds from durable records: the stable checkpoint's state, the view, and every logged
   * slot, then re-executes the committed ones. A replica never forgets a pre-prepare it accepted
   * or a certificate it formed, so it cannot prepare two values for one (view, sequence).
   */
  #recover(durable: ReadonlyMap<string, unknown>): void {
    if (durable.size === 0) return;
    try {
      const stable = durable.get('stable');
      if (stable !== undefined) {
        const record = stableRecordSchema.parse(stable);
        if (!sameBytes(hashBytes(record.snapshot), record.checkpoint.stateDigest)) throw new ConsensusError('CORRUPT_STATE', 'stable checkpoint snapshot does not match its digest');
        this.#state.restore(record.snapshot);
        this.#stable = record.checkpoint;
        this.#stableSnapshot = record.snapshot;
        this.#executed = record.checkpoint.sequence;
        this.#nextSequence = this.#executed + 1;
        if (this.#executed > 0) this.#out.applied({ kind: 'snapshot', position: this.#executed, stateHash: this.#state.hash() });
      }
      const view = durable.get('view');
      if (view !== undefined) {
        const record = viewRecordSchema.parse(view);
        this.#view = record.view;
        this.#changing = record.changing;
      }
      const leftView = durable.get('left-view');
      if (leftView !== undefined) {
        const record = leftViewRecordSchema.parse(leftView);
        this.#viewChanges.set(record.view, new Map(record.viewChanges.map((vc) => [vc.from, vc])));
      }
      for (const [key, value] of durable) {
        if (!key.startsWith('slot/')) continue;
        const sequence = Number(key.slice(5));
        const record = slotRecordSchema.parse(value);
        if (sequence <= this.#low) continue;
        const slot = this.#slot(sequence);
        slot.prePrepare = record.prePrepare;
        slot.preparedCert = record.preparedCert;
        if (record.committed !== undefined) {
          if (record.prePrepare === undefined || !sameBytes(record.committed.valueHash, record.prePrepare.body.digest)) {
            throw new ConsensusError('CORRUPT_STATE', `slot ${sequence} is committed without its matching pre-prepare`);
          }
          slot.certificate = record.committed;
        }
        slot.resetForView(this.#view);
        slot.commitSent = record.preparedCert !== undefined && record.preparedCert.prePrepare.body.view === this.#view && slot.view === this.#view;
        this.#nextSequence = Math.max(this.#nextSequence, sequence + 1);
      }
    } catch (cause) {
      if (cause instanceof ConsensusError) throw cause;
      throw new ConsensusError('CORRUPT_STATE', 'durable PBFT state does not parse', { cause });
    }
    this.#execute();
    // Its view change was lost with the crash: ask again.
    if (this.#changing) this.#broadcastViewChange();
  }

  #evidence(kind: Evidence['kind'], node: NodeId, detail: string, messages: readonly Signed<unknown>[]): void {
    this.#out.evidence({ kind, node, detail, messages });
  }
}
