/**
 * View synchronisation: the part of the pacemaker (Yin et al. §5) that moves replicas to a common
 * view when a leader fails, made concrete as in LibraBFT/DiemBFT ("round synchronization"): a
 * view timer with exponential back-off (pacemaker.ts), signed timeouts, timeout certificates,
 * and the paper's NEW-VIEW message carrying a replica's high QC (DiemBFT's SyncInfo).
 *
 * Timeout certificates serve liveness only here: a TC for view v lets everyone enter v + 1 without
 * a QC on v, and lets v + 1's leader propose. Safety rests on the three-chain commit rule and the
 * lock alone (safety.ts), which never look at a TC (see README, "Timeout certificates").
 */
import type { QuorumCert, Signed } from '../consensus/certificate.js';
import { Announcements } from '../consensus/announcements.js';
import { peersOf, type ConsensusConfig, type NodeId } from '../consensus/config.js';
import type { Outputs } from '../consensus/core.js';
import { PeerBudget } from './budget.js';
import { bySigner, timeoutBody, type TimeoutBody, type TimeoutCert, type VoteBody } from './certificates.js';
import { DURABLE } from './durable.js';
import { newViewBody, type HotStuffMessage, type MessageOf } from './messages.js';
import type { Block } from './block.js';
import { leaderOf, Pacemaker } from './pacemaker.js';
import { AHEAD_VIEWS, Tally } from './tally.js';

/** The view timer's name. */
export const VIEW_TIMER = 'view';

/** What view synchronisation asks of the replica it runs in. */
export interface ViewSyncHooks {
  /** The replica's high QC (Algorithm 4's qc_high), which every new-view carries. */
  highQC(): QuorumCert;
  /** The leader the replica expects in `view` (pacemaker.ts). */
  leaderOf(view: number): NodeId;
  /** The replica entered `view`: per-view state below it can go. */
  entered(view: number): void;
}

/** The view, its timer, timeouts and timeout certificates. */
export class ViewSync {
  readonly #config: ConsensusConfig;
  readonly #out: Outputs<HotStuffMessage>;
  readonly #hooks: ViewSyncHooks;
  readonly #pacemaker: Pacemaker;
  readonly #timeouts: Tally<TimeoutBody>;
  /** Answers to lagging peers: one per peer per base timeout. */
  readonly #answers: PeerBudget;
  #view: number;
  #lastTC: TimeoutCert | undefined;
  /** The view the view timer runs for, or -1 when it is off (nothing to make progress on). */
  #timerView = -1;
  /** The highest view this replica sent a timeout for. */
  #timedOut = 0;
  /** This replica's last vote, re-broadcast when its view times out. */
  #lastVote: VoteBody | undefined;
  /** A restarted replica's announcement of its view and high QC, until it enters a newer view. */
  readonly #announcements: Announcements;
  /** Leaders whose last view this replica saw end in a TC, until one of their views ends in a QC. */
  readonly #failedLeaders = new Set<NodeId>();

  /** Starts in `view` (1 on a first start) with the last TC an earlier incarnation persisted. */
  constructor(
    config: ConsensusConfig,
    out: Outputs<HotStuffMessage>,
    timing: { readonly baseTimeoutMs: number; readonly maxTimeoutMs: number },
    resume: { readonly view: number; readonly tc: TimeoutCert | undefined },
    hooks: ViewSyncHooks,
  ) {
    this.#config = config;
    this.#out = out;
    this.#hooks = hooks;
    this.#pacemaker = new Pacemaker(timing.baseTimeoutMs, timing.maxTimeoutMs);
    this.#answers = new PeerBudget(1, timing.baseTimeoutMs);
    this.#timeouts = new Tally(config.quorumSize, AHEAD_VIEWS);
    this.#announcements = new Announcements(out, timing.baseTimeoutMs, () => this.#out.send(peersOf(config), this.#newView(this.#view)));
    this.#view = resume.view;
    this.#lastTC = resume.tc;
    this.#timeouts.advance(resume.view, resume.view);
  }

  /** The view this replica is in. */
  get view(): number {
    return this.#view;
  }

  /** The newest TC this replica processed. */
  get lastTC(): TimeoutCert | undefined {
    return this.#lastTC;
  }

  /** Signed timeouts kept. */
  get timeouts(): number {
    return this.#timeouts.size;
  }

  /** Records this replica's vote, to re-broadcast if its view times out. */
  voted(vote: VoteBody): void {
    this.#lastVote = vote;
  }

  /**
   * Runs the view timer while `wanted` (there is work), stops it otherwise: an idle cluster sends
   * nothing. A restarted replica calls it at once, so an uncommitted tail it holds gets a timer.
   */
  syncTimer(wanted: boolean): void {
    if (wanted && this.#timerView !== this.#view) {
      const ms = this.#pacemaker.timeoutMs;
      this.#out.setTimer(VIEW_TIMER, ms, ms / 8);
      this.#timerView = this.#view;
    } else if (!wanted && this.#timerView !== -1) {
      this.#out.cancelTimer(VIEW_TIMER);
      this.#timerView = -1;
    }
  }

  /** The view timer fired; `wanted` says whether there is still work. */
  onTimer(wanted: boolean): void {
    this.#timerView = -1;
    if (wanted) this.#localTimeout(this.#view);
  }

  /** A peer's signed timeout. */
  onTimeout(signed: Signed<TimeoutBody>, now: number): void {
    const view = signed.body.view;
    if (view < this.#view) return this.lagging(signed.from, now);
    const result = this.#timeouts.add(view, '', signed);
    if (result.kind !== 'counted') return;
    // f+1 timeouts include a correct replica's: join them, so a TC forms even where this replica
    // saw nothing wrong (DiemBFT's timeout amplification).
    if (result.count >= this.#config.f + 1 && view > this.#timedOut) this.#localTimeout(view);
    if (result.quorum !== undefined) this.processTC({ view, signatures: bySigner(result.quorum) });
  }

  /** A structurally valid TC (from a tally, a proposal or a new-view): enter the view after it. */
  processTC(tc: TimeoutCert): void {
    if (tc.view < this.#view) return;
    this.#lastTC = tc;
    this.#out.persist(DURABLE.tc, tc);
    this.#pacemaker.failed(tc.view);
    this.#failedLeaders.add(this.#hooks.leaderOf(tc.view));
    this.enter(tc.view + 1, 'tc');
  }

  /**
   * Who gets this replica's vote for `block`: the leader of the next view, as a QC on `block`
   * would name it (pacemaker.ts), who builds the QC its proposal carries (Algorithm 3) — or
   * everyone, when that leader's last view ended in a TC. Until the chain has moved on without a
   * crashed replica, it can still be named; the QC that would complete a three-chain, sent to it
   * alone, would then wait for its view to time out (and the votes to be re-broadcast).
   */
  voteRecipients(block: Block): readonly NodeId[] {
    const next = leaderOf(block.view + 1, this.#config.n, block);
    return this.#failedLeaders.has(next) ? this.#config.members : [next];
  }

  /**
   * Enters `view` if it is newer, on a QC (progress: back to the base timeout; `leader`, when
   * known, proposed the block it certifies) or a TC.
   */
  enter(view: number, via: 'qc' | 'tc', leader?: NodeId): void {
    if (view <= this.#view) return;
    if (via === 'qc') {
      this.#pacemaker.progressed();
      if (leader !== undefined) this.#failedLeaders.delete(leader);
    }
    this.#announcements.stop();
    this.#view = view;
    this.#out.persist(DURABLE.view, view);
    this.#timeouts.advance(view, view);
    this.#hooks.entered(view);
  }

  /**
   * A peer showed it is behind — a timeout or new-view for an older view, or an older high QC:
   * tells it where this replica is (its high QC and TC bring the peer up). Every such message is
   * answered, at most once per peer per base timeout: a laggard keeps timing out until it hears
   * back, so one lost answer costs it a retry, not its place in the cluster.
   */
  lagging(peer: NodeId, now: number): void {
    if (peer === this.#config.nodeId || !this.#answers.take(peer, now)) return;
    this.#out.send([peer], this.#newView(this.#view));
  }

  /**
   * Tells the others this replica's view and high QC, repeatedly, until it enters a newer view
   * (consensus/announcements.ts). Peers ahead of it answer as to any laggard ({@link lagging}).
   */
  announce(): void {
    this.#announcements.start();
  }

  /** The announcement timer fired. */
  onAnnounceTimer(): void {
    this.#announcements.onTimer();
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
    this.#out.send(this.#config.members, this.#newView(view));
    if (this.#lastVote?.view === view) this.#out.send(this.#config.members, this.#lastVote);
    this.#out.send(this.#config.members, timeoutBody(view));
  }

  /** A new-view for `view`: the high QC, and the last TC when it is newer (it is what moved this replica on). */
  #newView(view: number): MessageOf<'new-view'> {
    const high = this.#hooks.highQC();
    const tc = this.#lastTC;
    return newViewBody(view, high, tc !== undefined && tc.view > high.view ? tc : undefined);
  }
}
