/**
 * One Raft server's state, shared by the modules that implement the protocol (election.ts,
 * replication.ts, snapshot.ts, reconfiguration.ts), and the primitives they all use: persisting
 * the term, the vote and entries, tracking the configuration, arming the election timer, and
 * following a leader.
 *
 * Every durable change is a persist op of the same step as the messages it justifies; the host
 * writes persist ops before it sends (§5.1, Figure 2: "updated on stable storage before
 * responding to RPCs"). A server counts its own vote and its own log locally; it never sends to
 * itself.
 */
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { Outputs, type CoreOptions } from '../consensus/core.js';
import { invariant } from '../consensus/errors.js';
import { TERM_KEY, VOTE_KEY, entryKey, loadDurable } from './durable.js';
import { Executor } from './executor.js';
import type { LeaderState } from './leader.js';
import { RaftLog } from './log.js';
import { configurationsAt, type Configuration } from './membership.js';
import { entryBytes, type RaftEntry, type RaftMessage, type SnapshotMeta } from './messages.js';
import type { ResolvedRaftOptions } from './options.js';

/** Fires when a follower has heard from no leader for an election timeout. */
export const ELECTION_TIMER = 'election';
/** Fires on a leader every heartbeat interval. */
export const HEARTBEAT_TIMER = 'heartbeat';

/** A Raft server's role in the election protocol; a server outside its configuration reports 'learner'. */
export type ElectionRole = 'leader' | 'follower' | 'candidate' | 'pre-candidate';

/** The commit rule a leader applies to an entry of `entryTerm` in `currentTerm` (§5.4.2). */
export type CommitRule = (entryTerm: number, currentTerm: number) => boolean;

/** A Raft server's state and its shared primitives. */
export class RaftServer {
  readonly config: ConsensusConfig;
  readonly options: ResolvedRaftOptions;
  /** This server's id. */
  readonly self: NodeId;
  /** What the current step asks the host to do. */
  readonly out = new Outputs<RaftMessage>();
  readonly executor: Executor;
  readonly log: RaftLog;
  /** §5.4.2's rule, or a broken one under test (`RaftCore.mayCommit`). */
  readonly mayCommit: CommitRule;
  /** Figure 2's currentTerm (durable). */
  term: number;
  /** Figure 2's votedFor, in `term` (durable). */
  vote: NodeId | null;
  role: ElectionRole = 'follower';
  /** The leader of `term` this server follows, if it knows one. */
  leader: NodeId | null = null;
  /** Heard from a current leader since this server's election timer last fired (thesis §4.2.3, §9.6). */
  leaderContact = false;
  /** Votes (or pre-votes) granted to this server in its current campaign, its own included. */
  readonly votes = new Set<NodeId>();
  /** Numbers this server's pre-votes (volatile), so that a grant answering a superseded one is not counted. */
  preVoteAttempt = 0;
  /** The leader's per-term state while this server leads. */
  lead: LeaderState | undefined;
  /** Figure 2's commitIndex: the highest index known to be committed. */
  commitIndex: number;
  /** The latest time seen (ms), which stamps new entries. */
  clock: number;
  /**
   * Commands that may still be executed in the current step: the core sets it to
   * `executionSlice` when a step begins and back to no limit when it ends, so that calls outside
   * steps (a membership change) execute everything they commit.
   */
  executionBudget = Number.POSITIVE_INFINITY;
  /** What the latest snapshot covers; its state is stored and sent to followers whose next entries were compacted. */
  snapshot: SnapshotMeta | undefined;
  /** The configuration the log's entries start from: the snapshot's, or the initial one. */
  base: Configuration;
  /** The latest configuration in the log, in force whether committed or not (thesis §4.1). */
  current: Configuration;
  /** The configuration before `current`, if the log (past `base`) holds one. */
  previous: Configuration | undefined;
  /** The lowest index that may have a stored entry; compaction erases from here. */
  durableFrom: number;
  /**
   * Entries up to this index were in the log when this incarnation started. An earlier one may
   * have executed and answered them, so executing them again answers no client; a client still
   * waiting retries and is answered from the client table (thesis §6.3).
   */
  inheritedTo: number;

  /**
   * Loads a server from its durable records (none on a first start).
   * @throws {ConsensusError} `CORRUPT_STATE` when the records are malformed or contradict each
   * other, or the state machine cannot restore the snapshot.
   */
  constructor(options: CoreOptions, raftOptions: ResolvedRaftOptions, mayCommit: CommitRule) {
    this.config = options.config;
    this.options = raftOptions;
    this.self = options.config.nodeId;
    this.mayCommit = mayCommit;
    const durable = loadDurable(options.durable, options.config.n);
    this.term = durable.term;
    this.vote = durable.vote;
    const snapshot = durable.snapshot;
    this.snapshot = snapshot;
    this.log = new RaftLog(durable.compacted.index, durable.compacted.term, durable.entries);
    this.durableFrom = durable.lowestStored;
    this.inheritedTo = this.log.lastIndex;
    this.base = snapshot === undefined ? { members: raftOptions.initialMembers, index: 0 } : { members: snapshot.members, index: snapshot.index };
    const { current, previous } = configurationsAt(this.log, this.base);
    this.current = current;
    this.previous = previous;
    this.commitIndex = snapshot?.index ?? 0;
    this.executor = new Executor(options.stateMachine, this.out, snapshot, durable.archive);
    this.clock = snapshot?.timestamp ?? 0;
    for (const entry of durable.entries) this.clock = Math.max(this.clock, entry.timestamp);
  }

  /** Heartbeat intervals in `ms`, rounded up. */
  heartbeatsIn(ms: number): number {
    return Math.ceil(ms / this.options.heartbeatMs);
  }

  /** Heartbeat intervals in an election timeout. */
  get electionTicks(): number {
    return this.heartbeatsIn(this.options.electionTimeoutMs);
  }

  /** Whether this server votes in the latest configuration. */
  isMember(): boolean {
    return this.current.members.includes(this.self);
  }

  /**
   * Members campaign. So does a server that an uncommitted configuration removed (thesis §4.2.2):
   * it may still be needed to commit that configuration, though its own vote does not count.
   * Servers that were never members (learners) wait to be added.
   */
  mayCampaign(): boolean {
    if (this.isMember()) return true;
    return this.previous !== undefined && this.current.index > this.commitIndex && this.previous.members.includes(this.self);
  }

  /** The other members of the configuration. */
  peers(): NodeId[] {
    return this.current.members.filter((id) => id !== this.self);
  }

  /** Whether this server leads, or heard from a leader since its election timer last fired. */
  heardFromLeader(): boolean {
    return this.role === 'leader' || this.leaderContact;
  }

  /** §5.2: election timeouts are randomized (the host draws the jitter) so split votes are rare. */
  armElection(): void {
    if (this.mayCampaign()) this.out.setTimer(ELECTION_TIMER, this.options.electionTimeoutMs, this.options.electionJitterMs);
    else this.out.cancelTimer(ELECTION_TIMER);
  }

  /** Moves to a later term, with no vote in it yet (Figure 2, "Rules for Servers"). */
  setTerm(term: number): void {
    invariant(term > this.term, `term moves from ${this.term} to ${term}`);
    this.term = term;
    this.vote = null;
    this.out.persist(TERM_KEY, term);
  }

  /** Votes for `node` in the current term: at most once per term (§5.2). */
  castVote(node: NodeId): void {
    invariant(this.vote === null, `second vote in term ${this.term}`);
    this.vote = node;
    this.out.persist(VOTE_KEY, { term: this.term, node });
  }

  /** Re-reads the configuration after the log changed; a server that may now (no longer) campaign re-arms its timer. */
  refreshConfiguration(): void {
    const campaigned = this.mayCampaign();
    const { current, previous } = configurationsAt(this.log, this.base);
    this.current = current;
    this.previous = previous;
    if (this.role !== 'leader' && campaigned !== this.mayCampaign()) this.armElection();
  }

  /**
   * Appends `entry` and persists it; a configuration takes effect at once (thesis §4.1). A leader
   * charges it to its uncommitted budget. Returns its index.
   */
  appendLocal(entry: RaftEntry): number {
    const index = this.log.append(entry);
    this.out.persist(entryKey(index), entry);
    if (this.lead !== undefined) this.lead.uncommittedBytes += entryBytes(entry);
    this.clock = Math.max(this.clock, entry.timestamp);
    if (entry.type === 'config') this.refreshConfiguration();
    return index;
  }

  /**
   * Drops the entries from `index` on, last first, so that a store holding a prefix of the erasures
   * still holds a contiguous log. Only uncommitted entries are ever dropped (§5.3).
   */
  truncateFrom(index: number): void {
    invariant(index > this.commitIndex, `truncating committed entry ${index} (commit index ${this.commitIndex})`);
    for (let i = this.log.lastIndex; i >= index; i--) this.out.erase(entryKey(i));
    this.log.truncateFrom(index);
    this.inheritedTo = Math.min(this.inheritedTo, index - 1);
    if (this.current.index >= index) this.refreshConfiguration();
  }

  /** Erases the stored entries up to `index`, lowest first, after a snapshot covering them was persisted. */
  eraseStoredThrough(index: number): void {
    for (let i = this.durableFrom; i <= index; i++) this.out.erase(entryKey(i));
    this.durableFrom = Math.max(this.durableFrom, index + 1);
  }

  /** Stops leading or campaigning: follows `leader` (or no one yet) in `term`, adopting it if later. */
  becomeFollower(term: number, leader: NodeId | null): void {
    if (term > this.term) this.setTerm(term);
    if (this.role === 'leader') this.out.cancelTimer(HEARTBEAT_TIMER);
    this.role = 'follower';
    this.leader = leader;
    this.leaderContact = leader !== null;
    this.lead = undefined;
    this.votes.clear();
    this.armElection();
  }

  /** Follows `leader` of `term` (≥ ours), which just proved itself with AppendEntries or InstallSnapshot. */
  follow(term: number, leader: NodeId): void {
    invariant(!(this.role === 'leader' && term === this.term), `servers ${this.self} and ${leader} both lead term ${term}`);
    if (term > this.term || this.role !== 'follower') return this.becomeFollower(term, leader);
    this.leader = leader;
    this.leaderContact = true;
    this.armElection();
  }
}
