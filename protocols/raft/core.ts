/**
 * The Raft core: leader election with pre-vote, log replication with fast back-off, commitment,
 * snapshots, ReadIndex reads and single-server membership changes, as a sans-IO state machine
 * (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm (Extended Version)";
 * Ongaro, "Consensus: Bridging Theory and Practice", cited as "thesis").
 *
 * Every durable change (term, vote, entries, snapshot) is a persist op of the same step as the
 * messages it justifies, and the host writes persist ops before it sends (§5.1, Figure 2: "updated
 * on stable storage before responding to RPCs"). A server counts its own vote and its own log
 * locally; it never sends to itself.
 */
import type { Command } from '../consensus/command.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { Outputs, type Core, type CoreOptions, type Input, type NodeStatus, type Ready, type Role } from '../consensus/core.js';
import { ConsensusError, invariant } from '../consensus/errors.js';
import { SNAPSHOT_KEY, TERM_KEY, VOTE_KEY, entryKey, loadDurable } from './durable.js';
import { Executor } from './executor.js';
import { LeaderState } from './leader.js';
import { RaftLog } from './log.js';
import { CatchUp, configurationsAt, hasMajority, majority, majorityMatch, withMember, withoutMember, type Configuration } from './membership.js';
import {
  appendEntries,
  appendReply,
  commandEntry,
  configEntry,
  installSnapshot,
  noopEntry,
  snapshotReply,
  voteReply,
  voteRequest,
  type RaftEntry,
  type RaftMessage,
  type RaftMessageOf,
  type SnapshotRecord,
} from './messages.js';
import { resolveRaftOptions, type RaftOptions, type ResolvedRaftOptions } from './options.js';

/** A Raft server's role in the election protocol; a server outside its configuration reports 'learner'. */
type ElectionRole = 'leader' | 'follower' | 'candidate' | 'pre-candidate';

/** Fires when a follower has heard from no leader for an election timeout. */
const ELECTION_TIMER = 'election';
/** Fires on a leader every heartbeat interval. */
const HEARTBEAT_TIMER = 'heartbeat';

/** A Raft server. Build it through `raft().create`, or directly with its options. */
export class RaftCore implements Core<RaftMessage> {
  /** The cluster configuration; `n` is the universe of server ids, not the voting members. */
  readonly config: ConsensusConfig;
  /** The resolved tuning and initial membership. */
  readonly options: ResolvedRaftOptions;
  readonly #out = new Outputs<RaftMessage>();
  readonly #executor: Executor;
  readonly #log: RaftLog;
  readonly #self: NodeId;
  #term: number;
  #vote: NodeId | null;
  #role: ElectionRole = 'follower';
  #leader: NodeId | null = null;
  /** Heard from a current leader since this server's election timer last fired (thesis §4.2.3, §9.6). */
  #leaderContact = false;
  readonly #votes = new Set<NodeId>();
  #lead: LeaderState | undefined;
  #commitIndex: number;
  #clock = 0;
  #snapshot: SnapshotRecord | undefined;
  /** The configuration the log's entries start from: the snapshot's, or the initial one. */
  #base: Configuration;
  #current: Configuration;
  #previous: Configuration | undefined;

  /**
   * Builds a server, fresh or from an earlier incarnation's durable records.
   * @throws {ConsensusError} `INVALID_CONFIG` for a configuration of another algorithm or bad
   * options; `CORRUPT_STATE` when the durable records are malformed or contradict each other.
   */
  constructor(options: CoreOptions, raftOptions: RaftOptions = {}) {
    const { config } = options;
    if (config.algorithm !== 'raft') throw new ConsensusError('INVALID_CONFIG', `a Raft core cannot run a ${config.algorithm} configuration`);
    this.config = config;
    this.#self = config.nodeId;
    this.options = resolveRaftOptions(raftOptions, config);
    invariant(this.options.initialMembers.length !== config.n || majority(config.n) === config.quorumSize, `raft quorum ${config.quorumSize} is not a majority of ${config.n}`, 'INVALID_CONFIG');
    const durable = loadDurable(options.durable, config.n);
    this.#term = durable.term;
    this.#vote = durable.vote;
    const snapshot = durable.snapshot;
    this.#log = new RaftLog(snapshot?.index ?? 0, snapshot?.term ?? 0, durable.entries);
    this.#base = snapshot === undefined ? { members: this.options.initialMembers, index: 0 } : { members: snapshot.members, index: snapshot.index };
    const { current, previous } = configurationsAt(this.#log, this.#base);
    this.#current = current;
    this.#previous = previous;
    this.#commitIndex = snapshot?.index ?? 0;
    this.#executor = new Executor(options.stateMachine, this.#out, snapshot);
    this.#snapshot = snapshot;
    this.#clock = snapshot?.timestamp ?? 0;
    for (const entry of durable.entries) this.#clock = Math.max(this.#clock, entry.timestamp);
    this.#armElection();
  }

  /** Feeds a verified message, a client request or a timer firing; `now` only stamps proposals. */
  step(input: Input<RaftMessage>, now: number): void {
    this.#clock = Math.max(this.#clock, now);
    switch (input.kind) {
      case 'message':
        return this.#receive(input.message.from, input.message.body);
      case 'request':
        return this.#request(input.command);
      case 'timeout':
        return this.#timeout(input.timer);
    }
  }

  /** Takes the outputs accumulated since the last call; the host persists before it sends. */
  ready(): Ready<RaftMessage> {
    return this.#out.drain();
  }

  /** Role ('learner' outside the configuration), term, highest executed index, leader. */
  status(): NodeStatus {
    const role: Role = this.#role === 'follower' && !this.#isMember() ? 'learner' : this.#role;
    return { role, view: this.#term, commitIndex: this.#executor.lastApplied, leader: this.#leader };
  }

  /** The current term. */
  get term(): number {
    return this.#term;
  }

  /** The server voted for in the current term, if any. */
  get votedFor(): NodeId | null {
    return this.#vote;
  }

  /** The highest index known committed. */
  get commitIndex(): number {
    return this.#commitIndex;
  }

  /** Index of the last log entry. */
  get lastLogIndex(): number {
    return this.#log.lastIndex;
  }

  /** The last index covered by the latest snapshot (0 without one). */
  get snapshotIndex(): number {
    return this.#log.snapshotIndex;
  }

  /** The voting members of the latest configuration in the log. */
  get members(): readonly NodeId[] {
    return this.#current.members;
  }

  /** The term of the entry at `index`, if held (or `index` is the snapshot's last). */
  logTerm(index: number): number | undefined {
    return this.#log.termAt(index);
  }

  /**
   * Starts a linearizable read (thesis §6.4). On a leader, once it has committed an entry of its
   * term and a majority has acknowledged a heartbeat round started after this call, the read is
   * released as `Outputs.read({ id, index })`: serving it from a state that has applied `index`
   * is linearizable. Returns false on a server that is not the leader (ask the leader instead).
   */
  readIndex(id: string): boolean {
    const lead = this.#lead;
    if (lead === undefined) return false;
    if (this.#commitIndex < lead.termStart) lead.awaitCommit(id);
    else this.#startReads(lead, [id]);
    return true;
  }

  /**
   * Adds server `id` (thesis §4.1, §4.2.1): it first catches up as a non-voting learner, then the
   * leader appends the new configuration. Returns false unless this server is the leader, `id` is
   * an id of [0, n) outside the configuration, and no other change is in progress.
   */
  proposeAddServer(id: NodeId): boolean {
    const lead = this.#lead;
    if (lead === undefined || !this.#mayChangeMembership(lead) || !Number.isSafeInteger(id) || id < 0 || id >= this.config.n || this.#current.members.includes(id)) {
      return false;
    }
    lead.catchUp = new CatchUp(id, this.#log.lastIndex, this.#electionTicks, this.options.catchUpRounds);
    this.#sendAppend(lead, id);
    return true;
  }

  /**
   * Removes server `id` (thesis §4.1): the leader appends the configuration without it, which
   * takes effect at once; a leader that removes itself steps down once that entry commits
   * (§4.2.2). Returns false unless this server is the leader, `id` is a member other than the
   * last, and no other change is in progress.
   */
  proposeRemoveServer(id: NodeId): boolean {
    const lead = this.#lead;
    if (lead === undefined || !this.#mayChangeMembership(lead) || !this.#current.members.includes(id) || this.#current.members.length === 1) return false;
    this.#appendConfiguration(lead, withoutMember(this.#current.members, id));
    return true;
  }

  /**
   * Whether a leader may commit, by counting replicas, an entry of `entryTerm` in `currentTerm`.
   * §5.4.2: only entries of the leader's current term are committed that way; earlier ones are
   * committed indirectly, by the Log Matching Property (Figure 8 shows why).
   */
  protected mayCommit(entryTerm: number, currentTerm: number): boolean {
    return entryTerm === currentTerm;
  }

  /** Heartbeat intervals in an election timeout. */
  get #electionTicks(): number {
    return Math.ceil(this.options.electionTimeoutMs / this.options.heartbeatMs);
  }

  #isMember(): boolean {
    return this.#current.members.includes(this.#self);
  }

  /**
   * Members campaign. So does a server that an uncommitted configuration removed (thesis §4.2.2):
   * it may still be needed to commit that configuration, though its own vote does not count.
   * Servers that were never members (learners) wait to be added.
   */
  #mayCampaign(): boolean {
    if (this.#isMember()) return true;
    return this.#previous !== undefined && this.#current.index > this.#commitIndex && this.#previous.members.includes(this.#self);
  }

  #peers(): NodeId[] {
    return this.#current.members.filter((id) => id !== this.#self);
  }

  #heardFromLeader(): boolean {
    return this.#role === 'leader' || this.#leaderContact;
  }

  /** §5.2: election timeouts are randomized (the host draws the jitter) so split votes are rare. */
  #armElection(): void {
    if (this.#mayCampaign()) this.#out.setTimer(ELECTION_TIMER, this.options.electionTimeoutMs, this.options.electionJitterMs);
    else this.#out.cancelTimer(ELECTION_TIMER);
  }

  #setTerm(term: number): void {
    invariant(term > this.#term, `term moves from ${this.#term} to ${term}`);
    this.#term = term;
    this.#vote = null;
    this.#out.persist(TERM_KEY, term);
  }

  #castVote(node: NodeId): void {
    invariant(this.#vote === null, `second vote in term ${this.#term}`);
    this.#vote = node;
    this.#out.persist(VOTE_KEY, { term: this.#term, node });
  }

  #refreshConfiguration(): void {
    const campaigned = this.#mayCampaign();
    const { current, previous } = configurationsAt(this.#log, this.#base);
    this.#current = current;
    this.#previous = previous;
    if (this.#role !== 'leader' && campaigned !== this.#mayCampaign()) this.#armElection();
  }

  #timeout(timer: string): void {
    if (timer === HEARTBEAT_TIMER) {
      if (this.#lead !== undefined) this.#heartbeat(this.#lead);
    } else if (timer === ELECTION_TIMER) {
      if (this.#lead === undefined && this.#mayCampaign()) this.#preVote();
    }
  }

  #receive(from: NodeId, body: RaftMessage): void {
    if (from === this.#self || from < 0 || from >= this.config.n) return;
    switch (body.type) {
      case 'pre-vote':
        return this.#onPreVote(from, body);
      case 'pre-vote-reply':
        return this.#onPreVoteReply(from, body);
      case 'request-vote':
        return this.#onRequestVote(from, body);
      case 'request-vote-reply':
        return this.#onVoteReply(from, body);
      case 'append-entries':
        return this.#onAppendEntries(from, body);
      case 'append-entries-reply':
        return this.#onAppendReply(from, body);
      case 'install-snapshot':
        return this.#onInstallSnapshot(from, body);
      case 'install-snapshot-reply':
        return this.#onSnapshotReply(from, body);
    }
  }

  // Elections.

  /**
   * Thesis §9.6: before disrupting the cluster with a new term, ask whether a majority would vote
   * for this log at all. Neither side changes its term, so a server rejoining from a partition
   * cannot force a working leader to step down.
   */
  #preVote(): void {
    this.#role = 'pre-candidate';
    this.#leader = null;
    this.#leaderContact = false;
    this.#votes.clear();
    this.#votes.add(this.#self);
    this.#armElection();
    if (this.#wonVote()) return this.#campaign();
    this.#out.send(this.#peers(), voteRequest('pre-vote', this.#term + 1, this.#log.lastIndex, this.#log.lastTerm));
  }

  /** §5.2: a new term, a vote for itself, RequestVote to the others. */
  #campaign(): void {
    this.#setTerm(this.#term + 1);
    this.#castVote(this.#self);
    this.#role = 'candidate';
    this.#votes.clear();
    this.#votes.add(this.#self);
    this.#armElection();
    if (this.#wonVote()) return this.#becomeLeader();
    this.#out.send(this.#peers(), voteRequest('request-vote', this.#term, this.#log.lastIndex, this.#log.lastTerm));
  }

  #wonVote(): boolean {
    invariant(this.#votes.size <= this.config.n, `${this.#votes.size} votes counted in a cluster of ${this.config.n}`);
    return hasMajority(this.#current.members, (id) => this.#votes.has(id));
  }

  /**
   * A pre-vote is granted for a term above ours to an up-to-date log (§5.4.1), and only when this
   * server has not heard from a leader within an election timeout (thesis §9.6, §4.2.3).
   */
  #onPreVote(from: NodeId, m: RaftMessageOf<'pre-vote'>): void {
    const granted = m.term > this.#term && !this.#heardFromLeader() && this.#log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    this.#out.send([from], voteReply('pre-vote-reply', granted ? m.term : this.#term, granted));
  }

  #onPreVoteReply(from: NodeId, m: RaftMessageOf<'pre-vote-reply'>): void {
    if (this.#role !== 'pre-candidate') return;
    if (!m.granted) {
      if (m.term > this.#term) this.#becomeFollower(m.term, null);
      return;
    }
    if (m.term !== this.#term + 1) return;
    this.#votes.add(from);
    if (this.#wonVote()) this.#campaign();
  }

  #onRequestVote(from: NodeId, m: RaftMessageOf<'request-vote'>): void {
    // Thesis §4.2.3: a server that hears from a leader ignores RequestVote for a later term, so a
    // server removed from the configuration cannot disrupt the cluster.
    if (m.term > this.#term && this.#heardFromLeader()) return;
    if (m.term > this.#term) this.#becomeFollower(m.term, null);
    const granted = m.term === this.#term && (this.#vote === null || this.#vote === from) && this.#log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (granted) {
      if (this.#vote === null) this.#castVote(from);
      this.#armElection();
    }
    this.#out.send([from], voteReply('request-vote-reply', this.#term, granted));
  }

  #onVoteReply(from: NodeId, m: RaftMessageOf<'request-vote-reply'>): void {
    if (m.term > this.#term) return this.#becomeFollower(m.term, null);
    if (this.#role !== 'candidate' || m.term !== this.#term || !m.granted) return;
    this.#votes.add(from);
    if (this.#wonVote()) this.#becomeLeader();
  }

  #becomeFollower(term: number, leader: NodeId | null): void {
    if (term > this.#term) this.#setTerm(term);
    if (this.#role === 'leader') this.#out.cancelTimer(HEARTBEAT_TIMER);
    this.#role = 'follower';
    this.#leader = leader;
    this.#leaderContact = leader !== null;
    this.#lead = undefined;
    this.#votes.clear();
    this.#armElection();
  }

  /** Follows `leader` of `term` (≥ ours), which just proved itself with AppendEntries or InstallSnapshot. */
  #follow(term: number, leader: NodeId): void {
    invariant(!(this.#role === 'leader' && term === this.#term), `servers ${this.#self} and ${leader} both lead term ${term}`);
    if (term > this.#term || this.#role !== 'follower') return this.#becomeFollower(term, leader);
    this.#leader = leader;
    this.#leaderContact = true;
    this.#armElection();
  }

  /**
   * A new leader appends a no-op (§8), so that it commits an entry of its own term promptly and
   * with it every earlier entry (§5.4.2), which ReadIndex and membership changes wait for.
   */
  #becomeLeader(): void {
    this.#role = 'leader';
    this.#leader = this.#self;
    this.#votes.clear();
    const lead = new LeaderState(this.#log.lastIndex + 1);
    this.#lead = lead;
    for (let i = this.#commitIndex + 1; i <= this.#log.lastIndex; i++) {
      const entry = this.#log.entry(i);
      if (entry.type === 'command') lead.propose(entry.command);
    }
    this.#appendLocal(noopEntry(this.#term, this.#clock));
    this.#out.cancelTimer(ELECTION_TIMER);
    this.#out.setTimer(HEARTBEAT_TIMER, this.options.heartbeatMs);
    this.#broadcast(lead);
    this.#advanceCommit(lead);
  }

  /**
   * Every heartbeat interval; every election timeout's worth of them, a leader that has not heard
   * from a majority steps down (thesis §6.2), so clients stop waiting on a deposed leader.
   */
  #heartbeat(lead: LeaderState): void {
    if (lead.tick(this.#electionTicks) && !lead.checkQuorum(this.#current.members, this.#self)) return this.#becomeFollower(this.#term, null);
    if (lead.catchUp !== undefined && !lead.catchUp.tick()) lead.catchUp = undefined;
    this.#broadcast(lead);
    this.#out.setTimer(HEARTBEAT_TIMER, this.options.heartbeatMs);
  }

  // Replication.

  #request(command: Command): void {
    if (this.#executor.answer(command)) return;
    const lead = this.#lead;
    if (lead === undefined || this.#executor.executed(command) || lead.proposed(command)) return;
    lead.propose(command);
    this.#appendLocal(commandEntry(this.#term, this.#clock, command));
    this.#broadcast(lead);
    this.#advanceCommit(lead);
  }

  #appendLocal(entry: RaftEntry): void {
    const index = this.#log.append(entry);
    this.#out.persist(entryKey(index), entry);
    this.#clock = Math.max(this.#clock, entry.timestamp);
    if (entry.type === 'config') this.#refreshConfiguration();
  }

  /**
   * The servers a leader replicates to: the configuration, the servers an uncommitted
   * configuration removed (so that they learn of it and stop campaigning), and a server catching up.
   */
  #targets(lead: LeaderState): NodeId[] {
    const targets = new Set(this.#current.members);
    if (this.#previous !== undefined && this.#current.index > this.#commitIndex) for (const id of this.#previous.members) targets.add(id);
    if (lead.catchUp !== undefined) targets.add(lead.catchUp.server);
    targets.delete(this.#self);
    return [...targets].sort((a, b) => a - b);
  }

  #broadcast(lead: LeaderState): void {
    for (const id of this.#targets(lead)) this.#sendAppend(lead, id);
  }

  /**
   * Sends `to` the entries from its next index, or the snapshot when they were compacted (§7).
   * The next index advances optimistically, so entries are pipelined; a lost message shows up as
   * a rejection and rewinds it.
   */
  #sendAppend(lead: LeaderState, to: NodeId): void {
    const progress = lead.progress(to, lead.termStart);
    if (progress.next <= this.#log.snapshotIndex) {
      const snapshot = this.#snapshot;
      invariant(snapshot !== undefined && snapshot.index === this.#log.snapshotIndex, `no snapshot at ${this.#log.snapshotIndex}`);
      this.#out.send([to], installSnapshot(this.#term, snapshot, lead.round));
      progress.next = snapshot.index + 1;
      return;
    }
    const prev = progress.next - 1;
    const prevTerm = this.#log.termAt(prev);
    invariant(prevTerm !== undefined, `next index ${progress.next} of ${to} is past the log's end ${this.#log.lastIndex}`);
    const last = Math.min(this.#log.lastIndex, prev + this.options.maxEntriesPerMessage);
    const entries = last > prev ? this.#log.slice(prev + 1, last) : [];
    this.#out.send([to], appendEntries(this.#term, prev, prevTerm, entries, this.#commitIndex, lead.round));
    progress.next = last + 1;
  }

  #onAppendEntries(from: NodeId, m: RaftMessageOf<'append-entries'>): void {
    if (m.term < this.#term) return this.#out.send([from], appendReply(this.#term, false, 0, 0, 0, m.round));
    this.#follow(m.term, from);
    let prev = m.prevLogIndex;
    let prevTerm = m.prevLogTerm;
    let entries = m.entries;
    const lastNew = m.prevLogIndex + m.entries.length;
    if (prev < this.#log.snapshotIndex) {
      // Entries up to the snapshot are committed, hence the leader's too (§5.4.3): skip them.
      const skip = this.#log.snapshotIndex - prev;
      if (entries.length < skip) return this.#out.send([from], appendReply(this.#term, true, lastNew, 0, 0, m.round));
      prevTerm = (entries[skip - 1] as RaftEntry).term;
      invariant(prevTerm === this.#log.snapshotTerm, `leader ${from} disagrees with committed entry ${this.#log.snapshotIndex}`);
      entries = entries.slice(skip);
      prev = this.#log.snapshotIndex;
    }
    const localPrevTerm = this.#log.termAt(prev);
    if (localPrevTerm === undefined) {
      return this.#out.send([from], appendReply(this.#term, false, 0, 0, this.#log.lastIndex + 1, m.round));
    }
    if (localPrevTerm !== prevTerm) {
      invariant(prev > this.#commitIndex, `leader ${from} disagrees with committed entry ${prev}`);
      return this.#out.send([from], appendReply(this.#term, false, 0, localPrevTerm, this.#log.firstIndexOfTerm(prev), m.round));
    }
    let index = prev;
    for (const entry of entries) {
      index++;
      const existing = this.#log.termAt(index);
      if (existing === entry.term) continue;
      // §5.3: a conflicting entry and all that follow it go; committed entries never conflict.
      if (existing !== undefined) this.#truncateFrom(index);
      this.#appendLocal(entry);
    }
    const commit = Math.min(m.leaderCommit, lastNew);
    if (commit > this.#commitIndex) this.#commitTo(commit);
    this.#out.send([from], appendReply(this.#term, true, lastNew, 0, 0, m.round));
  }

  #truncateFrom(index: number): void {
    invariant(index > this.#commitIndex, `truncating committed entry ${index} (commit index ${this.#commitIndex})`);
    for (let i = this.#log.lastIndex; i >= index; i--) this.#out.erase(entryKey(i));
    this.#log.truncateFrom(index);
    if (this.#current.index >= index) this.#refreshConfiguration();
  }

  #onAppendReply(from: NodeId, m: RaftMessageOf<'append-entries-reply'>): void {
    if (m.term > this.#term) return this.#becomeFollower(m.term, null);
    const lead = this.#lead;
    if (lead === undefined || m.term !== this.#term) return;
    lead.heardFrom(from, m.round);
    const progress = lead.tracked(from);
    if (progress === undefined) return;
    if (m.success) return this.#acknowledged(lead, from, m.matchIndex);
    // §5.3: skip the follower's whole conflicting term, or to the end of its log.
    const last = m.conflictTerm > 0 ? this.#log.lastIndexOfTerm(m.conflictTerm) : undefined;
    const hinted = last === undefined ? m.conflictIndex : last + 1;
    progress.next = Math.min(Math.max(hinted, progress.match + 1, 1), this.#log.lastIndex + 1);
    this.#releaseReads(lead);
    this.#sendAppend(lead, from);
  }

  #onInstallSnapshot(from: NodeId, m: RaftMessageOf<'install-snapshot'>): void {
    if (m.term < this.#term) return this.#out.send([from], snapshotReply(this.#term, 0, m.round));
    this.#follow(m.term, from);
    if (m.lastIncludedIndex > this.#commitIndex) {
      this.#installSnapshot({ index: m.lastIncludedIndex, term: m.lastIncludedTerm, members: m.members, timestamp: m.timestamp, data: m.data });
    }
    this.#out.send([from], snapshotReply(this.#term, m.lastIncludedIndex, m.round));
  }

  /** §7: keep the log after the snapshot if it continues it, otherwise drop the whole log. */
  #installSnapshot(snapshot: SnapshotRecord): void {
    this.#executor.install(snapshot);
    const keeps = this.#log.termAt(snapshot.index) === snapshot.term;
    this.#out.persist(SNAPSHOT_KEY, snapshot);
    const erasedTo = keeps ? snapshot.index : this.#log.lastIndex;
    for (let i = this.#log.snapshotIndex + 1; i <= erasedTo; i++) this.#out.erase(entryKey(i));
    this.#log.compactTo(snapshot.index, snapshot.term);
    this.#snapshot = snapshot;
    this.#base = { members: snapshot.members, index: snapshot.index };
    this.#commitIndex = snapshot.index;
    this.#clock = Math.max(this.#clock, snapshot.timestamp);
    this.#refreshConfiguration();
  }

  #onSnapshotReply(from: NodeId, m: RaftMessageOf<'install-snapshot-reply'>): void {
    if (m.term > this.#term) return this.#becomeFollower(m.term, null);
    const lead = this.#lead;
    if (lead === undefined || m.term !== this.#term) return;
    lead.heardFrom(from, m.round);
    if (lead.tracked(from) !== undefined) this.#acknowledged(lead, from, m.matchIndex);
  }

  /** `from`'s log matches the leader's up to `match`. */
  #acknowledged(lead: LeaderState, from: NodeId, match: number): void {
    const progress = lead.progress(from, lead.termStart);
    progress.match = Math.max(progress.match, match);
    progress.next = Math.max(progress.next, progress.match + 1);
    this.#advanceCommit(lead);
    if (this.#lead !== lead) return;
    this.#catchUpProgress(lead, from, progress.match);
    this.#releaseReads(lead);
    if (progress.next <= this.#log.lastIndex) this.#sendAppend(lead, from);
  }

  // Commitment and execution.

  /** §5.3, §5.4.2: commit the highest index a majority of the configuration holds, if {@link mayCommit}. */
  #advanceCommit(lead: LeaderState): void {
    const candidate = majorityMatch(this.#current.members, (id) => (id === this.#self ? this.#log.lastIndex : (lead.tracked(id)?.match ?? 0)));
    if (candidate <= this.#commitIndex || !this.mayCommit(this.#log.termAt(candidate) as number, this.#term)) return;
    this.#commitTo(candidate);
  }

  #commitTo(index: number): void {
    invariant(index > this.#commitIndex && index <= this.#log.lastIndex, `commit index moves from ${this.#commitIndex} to ${index} with log end ${this.#log.lastIndex}`);
    const campaigned = this.#mayCampaign();
    this.#commitIndex = index;
    while (this.#executor.lastApplied < this.#commitIndex) {
      const index = this.#executor.lastApplied + 1;
      const entry = this.#log.entry(index);
      this.#executor.apply(index, entry);
      if (entry.type === 'command') this.#lead?.settled(entry.command);
    }
    this.#compactIfDue();
    const lead = this.#lead;
    if (lead === undefined) {
      if (campaigned !== this.#mayCampaign()) this.#armElection();
      return;
    }
    // §4.2.2: a leader removed from the configuration steps down once the removal commits, after
    // telling the members that it is committed.
    if (!this.#isMember() && this.#current.index <= this.#commitIndex) {
      this.#broadcast(lead);
      return this.#becomeFollower(this.#term, null);
    }
    if (this.#commitIndex >= lead.termStart) {
      const waiting = lead.takeAwaiting();
      if (waiting.length > 0) this.#startReads(lead, waiting);
    }
  }

  /** §7: every `snapshotInterval` applied entries, snapshot the state machine and drop the log prefix. */
  #compactIfDue(): void {
    const index = this.#executor.lastApplied;
    if (index - this.#log.snapshotIndex < this.options.snapshotInterval) return;
    const term = this.#log.termAt(index) as number;
    const { current } = configurationsAt(this.#log, this.#base, index);
    const snapshot: SnapshotRecord = { index, term, members: current.members, timestamp: this.#log.entry(index).timestamp, data: this.#executor.snapshot() };
    this.#out.persist(SNAPSHOT_KEY, snapshot);
    for (let i = this.#log.snapshotIndex + 1; i <= index; i++) this.#out.erase(entryKey(i));
    this.#log.compactTo(index, term);
    this.#snapshot = snapshot;
    this.#base = { members: current.members, index };
    this.#refreshConfiguration();
  }

  // ReadIndex (thesis §6.4).

  /** Records the reads at the commit index and starts a heartbeat round to confirm leadership. */
  #startReads(lead: LeaderState, ids: readonly string[]): void {
    lead.nextRound();
    lead.addReads(ids, this.#commitIndex);
    this.#releaseReads(lead);
    this.#broadcast(lead);
  }

  #releaseReads(lead: LeaderState): void {
    for (const read of lead.releasable(this.#current.members, this.#self)) this.#out.read(read);
  }

  // Membership (thesis §4).

  /**
   * One change at a time (§4.1), and only after the leader has committed an entry of its term:
   * otherwise a change from an earlier term that it never saw committed could be overridden,
   * letting two disjoint majorities decide (the fix Ongaro posted to raft-dev in 2015).
   */
  #mayChangeMembership(lead: LeaderState): boolean {
    return lead.catchUp === undefined && this.#current.index <= this.#commitIndex && this.#commitIndex >= lead.termStart;
  }

  #catchUpProgress(lead: LeaderState, from: NodeId, match: number): void {
    const catchUp = lead.catchUp;
    if (catchUp === undefined || catchUp.server !== from) return;
    const progress = catchUp.progress(match, this.#log.lastIndex);
    if (progress === 'waiting') return;
    lead.catchUp = undefined;
    if (progress === 'caught-up') this.#appendConfiguration(lead, withMember(this.#current.members, from));
  }

  /** Appends a configuration, in force from now on (§4.1: servers use the latest one in their log). */
  #appendConfiguration(lead: LeaderState, members: readonly NodeId[]): void {
    this.#appendLocal(configEntry(this.#term, this.#clock, members));
    this.#broadcast(lead);
    this.#advanceCommit(lead);
  }
}
