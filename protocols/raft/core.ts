/**
 * The Raft core: leader election with pre-vote, log replication with fast back-off and flow
 * control, commitment, snapshots, ReadIndex reads and single-server membership changes, as a
 * sans-IO state machine (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm
 * (Extended Version)", cited by section and figure; Ongaro, "Consensus: Bridging Theory and
 * Practice", cited as "thesis").
 *
 * This file is the `Core` facade: it dispatches inputs to election.ts, replication.ts,
 * snapshot.ts and reconfiguration.ts, which share one `RaftServer` (server.ts), and offers the
 * operations a host calls directly (reads, membership changes, inspection).
 */
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import type { Core, CoreOptions, Input, NodeStatus, Ready, SignedPosition } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';
import { heartbeat, onPreVote, onPreVoteReply, onRequestVote, onVoteReply, preVote } from './election.js';
import { withoutMember } from './membership.js';
import type { RaftMessage } from './messages.js';
import { resolveRaftOptions, type RaftOptions, type ResolvedRaftOptions } from './options.js';
import { appendConfiguration, mayChangeMembership, startCatchUp } from './reconfiguration.js';
import { advanceCommit, broadcast, execute, onAppendEntries, onAppendReply, onSnapshotReply, request, sendAppend, startReads } from './replication.js';
import { ELECTION_TIMER, HEARTBEAT_TIMER, RaftServer } from './server.js';
import { onInstallSnapshot } from './snapshot.js';

/** A Raft server. Build it through `raft().create`, or directly with its options. */
export class RaftCore implements Core<RaftMessage> {
  /** The cluster configuration; `n` is the universe of server ids, not the voting members. */
  readonly config: ConsensusConfig;
  /** The resolved tuning and initial membership. */
  readonly options: ResolvedRaftOptions;
  readonly #s: RaftServer;

  /**
   * Builds a server, fresh or from an earlier incarnation's durable records.
   * @throws {ConsensusError} `INVALID_CONFIG` for a configuration of another algorithm or bad
   * options; `CORRUPT_STATE` when the durable records are malformed or contradict each other, or
   * the state machine cannot restore the stored snapshot.
   */
  constructor(options: CoreOptions, raftOptions: RaftOptions = {}) {
    const { config } = options;
    if (config.algorithm !== 'raft') throw new ConsensusError('INVALID_CONFIG', `a Raft core cannot run a ${config.algorithm} configuration`);
    this.config = config;
    this.options = resolveRaftOptions(raftOptions, config);
    this.#s = new RaftServer(options, this.options, (entryTerm, currentTerm) => this.mayCommit(entryTerm, currentTerm));
    this.#s.armElection();
  }

  /** Feeds a verified message, a client request or a timer firing; `now` only stamps proposals. */
  step(input: Input<RaftMessage>, now: number): void {
    const s = this.#s;
    s.clock = Math.max(s.clock, now);
    // Any other input while paused: the committed entries are executed first (core.ts), so no rule
    // below sees an entry half executed or a read waiting on what is already committed.
    if (input.kind !== 'resume' && this.executionPaused) execute(s);
    s.executionBudget = s.options.executionSlice;
    try {
      this.#stepWithin(input);
    } finally {
      s.executionBudget = Number.POSITIVE_INFINITY;
    }
  }

  #stepWithin(input: Input<RaftMessage>): void {
    const s = this.#s;
    switch (input.kind) {
      case 'resume':
        return execute(s);
      case 'message':
        return this.#receive(input.message.from, input.message.body);
      case 'request':
        return request(s, input.command);
      case 'timeout':
        if (input.timer === HEARTBEAT_TIMER && s.lead !== undefined) heartbeat(s, s.lead);
        else if (input.timer === ELECTION_TIMER && s.lead === undefined && s.mayCampaign()) preVote(s);
        return;
    }
  }

  /** True while committed entries wait to be executed in later stretches (`executionSlice`): step `resume` next. */
  get executionPaused(): boolean {
    return this.#s.executor.lastApplied < this.#s.commitIndex;
  }

  /** Takes the outputs accumulated since the last call; the host persists before it sends. */
  ready(): Ready<RaftMessage> {
    return this.#s.out.drain();
  }

  /** Role ('learner' outside the configuration), term, highest executed index, leader. */
  status(): NodeStatus {
    const s = this.#s;
    return { role: s.role === 'follower' && !s.isMember() ? 'learner' : s.role, view: s.term, commitIndex: s.executor.lastApplied, leader: s.leader };
  }

  /**
   * Its term, durable before anything naming it leaves (Figure 2's currentTerm), and never lower
   * afterwards. Log indexes are left out: a follower's log can shrink (§5.3). No Raft message
   * carries another server's signed one, so this bounds nothing today.
   */
  signedThrough(): SignedPosition {
    return { view: this.#s.term };
  }

  /** The current term. */
  get term(): number {
    return this.#s.term;
  }

  /** The server voted for in the current term, if any. */
  get votedFor(): NodeId | null {
    return this.#s.vote;
  }

  /**
   * Figure 2's commitIndex: the highest index this server knows to be committed. Not to be
   * confused with `status().commitIndex`, the highest index executed (Figure 2's lastApplied).
   */
  get knownCommitIndex(): number {
    return this.#s.commitIndex;
  }

  /** Index of the last log entry. */
  get lastLogIndex(): number {
    return this.#s.log.lastIndex;
  }

  /** The index the latest snapshot covers (0 without one). */
  get snapshotIndex(): number {
    return this.#s.snapshot?.index ?? 0;
  }

  /** The last index compacted out of the log; entries from the next one on are held (trailing window included). */
  get compactedIndex(): number {
    return this.#s.log.compactedIndex;
  }

  /** The voting members of the latest configuration in the log. */
  get members(): readonly NodeId[] {
    return this.#s.current.members;
  }

  /** The server a leader is catching up before adding it, if any; it is unset once added or abandoned. */
  get catchingUp(): NodeId | undefined {
    return this.#s.lead?.catchUp?.server;
  }

  /** The term of the entry at `index`, if held (or `index` is the compaction point). */
  logTerm(index: number): number | undefined {
    return this.#s.log.termAt(index);
  }

  /**
   * Starts a linearizable read (thesis §6.4). On a leader, once it has committed an entry of its
   * term and a majority has acknowledged a heartbeat round started after this call, the read is
   * released as `Outputs.read({ id, index })`: serving it from a state that has applied `index`
   * is linearizable. Returns false on a server that is not the leader (ask `status().leader`
   * instead) or one already holding `maxPendingReads` reads.
   *
   * A read that was accepted is dropped, without any output, if this server stops leading before
   * releasing it (a higher term, check-quorum). The contract has no "read failed" output, so a
   * host fails its outstanding reads itself when `status()` shows another term or role.
   */
  readIndex(id: string): boolean {
    const s = this.#s;
    const lead = s.lead;
    if (lead === undefined || lead.pendingReads >= s.options.maxPendingReads) return false;
    if (s.commitIndex < lead.termStart) lead.awaitCommit(id);
    else startReads(s, lead, [id]);
    return true;
  }

  /**
   * Adds server `id` (thesis §4.1, §4.2.1): it first catches up as a non-voting learner, then the
   * leader appends the new configuration. Returns false unless this server is the leader, `id` is
   * an id of [0, n) outside the configuration, and no other change is in progress. A server that
   * does not catch up within `catchUpRounds` rounds is abandoned silently: watch `catchingUp`
   * and `members`.
   */
  proposeAddServer(id: NodeId): boolean {
    const s = this.#s;
    const lead = s.lead;
    if (lead === undefined || !mayChangeMembership(s, lead) || !Number.isSafeInteger(id) || id < 0 || id >= this.config.n || s.current.members.includes(id)) return false;
    startCatchUp(s, lead, id);
    sendAppend(s, lead, id, true);
    return true;
  }

  /**
   * Removes server `id` (thesis §4.1): the leader appends the configuration without it, which
   * takes effect at once; a leader that removes itself steps down once that entry commits
   * (thesis §4.2.2). Returns false unless this server is the leader, `id` is a member other than
   * the last, and no other change is in progress.
   */
  proposeRemoveServer(id: NodeId): boolean {
    const s = this.#s;
    const lead = s.lead;
    if (lead === undefined || !mayChangeMembership(s, lead) || !s.current.members.includes(id) || s.current.members.length === 1) return false;
    appendConfiguration(s, lead, withoutMember(s.current.members, id));
    broadcast(s, lead, false);
    advanceCommit(s, lead);
    return true;
  }

  /**
   * Whether a leader may commit, by counting replicas, an entry of `entryTerm` in `currentTerm`.
   * §5.4.2: only entries of the leader's current term are committed that way; earlier ones are
   * committed indirectly, by the Log Matching Property (Figure 8 shows why). Tests override it to
   * show that the simulator catches the broken rule.
   */
  protected mayCommit(entryTerm: number, currentTerm: number): boolean {
    return entryTerm === currentTerm;
  }

  #receive(from: NodeId, body: RaftMessage): void {
    const s = this.#s;
    if (from === s.self || from < 0 || from >= this.config.n) return;
    switch (body.type) {
      case 'pre-vote':
        return onPreVote(s, from, body);
      case 'pre-vote-reply':
        return onPreVoteReply(s, from, body);
      case 'request-vote':
        return onRequestVote(s, from, body);
      case 'request-vote-reply':
        return onVoteReply(s, from, body);
      case 'append-entries':
        return onAppendEntries(s, from, body);
      case 'append-entries-reply':
        return onAppendReply(s, from, body);
      case 'install-snapshot':
        return onInstallSnapshot(s, from, body);
      case 'install-snapshot-reply':
        return onSnapshotReply(s, from, body);
    }
  }
}
