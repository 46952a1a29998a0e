/**
 * Leader election (§5.2, §5.4.1) with pre-vote (thesis §9.6), and a leader's upkeep: heartbeats,
 * which maintain its authority (§5.2), and check-quorum (thesis §6.2).
 */
import type { NodeId } from '../consensus/config.js';
import { invariant } from '../consensus/errors.js';
import { LeaderState } from './leader.js';
import { hasMajority } from './membership.js';
import { entryBytes, noopEntry, preVoteReply, preVoteRequest, voteReply, voteRequest, type RaftMessageOf } from './messages.js';
import { resumeDepartures } from './reconfiguration.js';
import { advanceCommit, appendWaiting, broadcast } from './replication.js';
import { ELECTION_TIMER, HEARTBEAT_TIMER, type RaftServer } from './server.js';

/**
 * Thesis §9.6: before disrupting the cluster with a new term, ask whether a majority would vote
 * for this log at all. Neither side changes its term, so a server rejoining from a partition
 * cannot force a working leader to step down.
 */
export function preVote(s: RaftServer): void {
  s.role = 'pre-candidate';
  s.leader = null;
  s.leaderContact = false;
  s.votes.clear();
  s.votes.add(s.self);
  s.preVoteAttempt++;
  s.armElection();
  if (wonVote(s)) return campaign(s);
  s.out.send(s.peers(), preVoteRequest(s.term + 1, s.log.lastIndex, s.log.lastTerm, s.preVoteAttempt));
}

/** §5.2: a new term, a vote for itself, RequestVote to the others. */
function campaign(s: RaftServer): void {
  s.setTerm(s.term + 1);
  s.castVote(s.self);
  s.role = 'candidate';
  s.votes.clear();
  s.votes.add(s.self);
  s.armElection();
  if (wonVote(s)) return becomeLeader(s);
  s.out.send(s.peers(), voteRequest(s.term, s.log.lastIndex, s.log.lastTerm));
}

/** Votes of a majority of the configuration; a server outside it does not count its own. */
function wonVote(s: RaftServer): boolean {
  invariant(s.votes.size <= s.config.n, `${s.votes.size} votes counted in a cluster of ${s.config.n}`);
  return hasMajority(s.current.members, (id) => s.votes.has(id));
}

/**
 * A pre-vote is granted for a term above ours to a log at least as up-to-date (§5.4.1), and only
 * when this server has not heard from a leader within an election timeout (thesis §9.6, §4.2.3).
 */
export function onPreVote(s: RaftServer, from: NodeId, m: RaftMessageOf<'pre-vote'>): void {
  const granted = m.term > s.term && !s.heardFromLeader() && s.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  s.out.send([from], preVoteReply(granted ? m.term : s.term, granted, m.attempt));
}

/** Counts a pre-vote grant; with a majority, campaigns for real. */
export function onPreVoteReply(s: RaftServer, from: NodeId, m: RaftMessageOf<'pre-vote-reply'>): void {
  if (s.role !== 'pre-candidate') return;
  if (!m.granted) {
    // A refusal from a later term: adopt that term and wait for its leader. The thesis leaves this
    // open; it is etcd's behaviour (raft.go, MsgPreVoteResp with a higher term). The term only
    // rises to one that exists already, so this disrupts no one.
    if (m.term > s.term) s.becomeFollower(m.term, null);
    return;
  }
  // Only grants of this pre-vote count: one of an earlier attempt may come from a server that
  // has heard from a leader since.
  if (m.term !== s.term + 1 || m.attempt !== s.preVoteAttempt) return;
  s.votes.add(from);
  if (wonVote(s)) campaign(s);
}

/** RequestVote receiver (Figure 2), with thesis §4.2.3's rule against disruptive servers. */
export function onRequestVote(s: RaftServer, from: NodeId, m: RaftMessageOf<'request-vote'>): void {
  // Thesis §4.2.3: a server that hears from a leader ignores RequestVote for a later term, so a
  // server removed from the configuration cannot disrupt the cluster.
  if (m.term > s.term && s.heardFromLeader()) return;
  if (m.term > s.term) s.becomeFollower(m.term, null);
  // Grant if not voted for another in this term and the candidate's log is at least as up-to-date (§5.4.1).
  const granted = m.term === s.term && (s.vote === null || s.vote === from) && s.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  if (granted) {
    if (s.vote === null) s.castVote(from);
    s.armElection();
  }
  s.out.send([from], voteReply(s.term, granted));
}

/** Counts a vote (§5.2); with a majority of the configuration, leads. A later term deposes. */
export function onVoteReply(s: RaftServer, from: NodeId, m: RaftMessageOf<'request-vote-reply'>): void {
  if (m.term > s.term) return s.becomeFollower(m.term, null);
  if (s.role !== 'candidate' || m.term !== s.term || !m.granted) return;
  s.votes.add(from);
  if (wonVote(s)) becomeLeader(s);
}

/**
 * A new leader appends a no-op (§8), so that it commits an entry of its own term promptly and
 * with it every earlier entry (§5.4.2), which ReadIndex and membership changes wait for.
 */
function becomeLeader(s: RaftServer): void {
  s.role = 'leader';
  s.leader = s.self;
  s.votes.clear();
  const lead = new LeaderState(s.log.lastIndex + 1, s.options.maxInflightAppends);
  for (let i = s.commitIndex + 1; i <= s.log.lastIndex; i++) {
    const entry = s.log.entry(i);
    lead.uncommittedBytes += entryBytes(entry);
    if (entry.type === 'commands') for (const command of entry.commands) lead.propose(command);
  }
  s.lead = lead;
  resumeDepartures(s, lead);
  s.appendLocal(noopEntry(s.term, s.clock));
  s.out.cancelTimer(ELECTION_TIMER);
  s.out.setTimer(HEARTBEAT_TIMER, s.options.heartbeatMs);
  broadcast(s, lead, false);
  advanceCommit(s, lead);
}

/**
 * Every heartbeat interval. Every election timeout's worth of them, a leader that has not heard
 * from a majority steps down (check-quorum, thesis §6.2), so clients stop waiting on a leader
 * that can no longer commit. Paused followers may be probed again and overdue snapshots resent.
 */
export function heartbeat(s: RaftServer, lead: LeaderState): void {
  if (lead.tick(s.electionTicks) && !lead.checkQuorum(s.current.members, s.self)) return s.becomeFollower(s.term, null);
  if (lead.catchUp !== undefined && !lead.catchUp.tick()) lead.catchUp = undefined;
  lead.tickDepartures();
  const snapshotTicks = s.heartbeatsIn(s.options.snapshotTimeoutMs);
  for (const progress of lead.everyProgress()) progress.tick(snapshotTicks);
  const appended = appendWaiting(s, lead);
  broadcast(s, lead, true);
  if (appended) {
    advanceCommit(s, lead);
    if (s.lead !== lead) return;
  }
  s.out.setTimer(HEARTBEAT_TIMER, s.options.heartbeatMs);
}
