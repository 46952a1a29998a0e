/**
 * Log replication (§5.3): a leader's AppendEntries and InstallSnapshot to each follower, paced by
 * progress.ts; the receiver rules of AppendEntries (Figure 2); commitment (§5.3, §5.4.2) and
 * execution; and ReadIndex rounds (thesis §6.4), which ride on AppendEntries.
 */
import type { Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';
import { invariant } from '../consensus/errors.js';
import type { LeaderState } from './leader.js';
import { hasMajority, majorityMatch } from './membership.js';
import {
  appendEntries,
  appendReply,
  commandBytes,
  commandsEntry,
  entryBytes,
  installSnapshot,
  wellFormedAppend,
  type RaftEntry,
  type RaftMessageOf,
} from './messages.js';
import { catchUpProgress } from './reconfiguration.js';
import type { RaftServer } from './server.js';
import { compactIfDue } from './snapshot.js';

/**
 * A client command. A retry of an executed command is answered from the client table (thesis
 * §6.3); a leader holds a new one unless it already has it or its uncommitted log is over budget,
 * and appends it (appendWaiting) with whatever else is held. A follower drops it: the client finds
 * the leader by retrying or through `status().leader`.
 */
export function request(s: RaftServer, command: Command): void {
  if (s.executor.answer(command, s.term)) return;
  const lead = s.lead;
  if (lead === undefined || s.executor.executed(command) || lead.proposed(command)) return;
  // etcd's MaxUncommittedEntriesSize: an empty budget takes any command, so a large one can still commit.
  const held = lead.uncommittedBytes + lead.waitingBytes;
  if (held > 0 && held + commandBytes(command) > s.options.maxUncommittedBytes) return;
  lead.hold(command);
  if (!appendWaiting(s, lead)) return;
  broadcast(s, lead, false);
  advanceCommit(s, lead);
}

/**
 * Appends the held commands, up to `maxCommandsPerEntry` and `maxBytesPerMessage` to an entry,
 * once a voting peer could be sent them now or the leader alone is a majority; returns whether it
 * appended. While every voting peer's window is full they are held, so that under load each entry,
 * and each AppendEntries, carries many: a log position costs a persisted record, an execution
 * report, a state hash and a receipt leaf set whatever it holds. Learners and departing servers do
 * not count: nothing commits sooner for reaching them.
 */
export function appendWaiting(s: RaftServer, lead: LeaderState): boolean {
  if (!lead.hasWaiting) return false;
  const alone = hasMajority(s.current.members, (id) => id === s.self);
  if (!alone && s.peers().every((id) => lead.tracked(id)?.paused ?? false)) return false;
  const take = (): Command[] => lead.takeWaiting(s.options.maxCommandsPerEntry, s.options.maxBytesPerMessage);
  for (let batch = take(); batch.length > 0; batch = take()) s.appendLocal(commandsEntry(s.term, s.clock, batch));
  return true;
}

/**
 * The servers a leader replicates to: the configuration, the servers a configuration removed
 * until they learn that it committed, and a server catching up.
 */
function targets(s: RaftServer, lead: LeaderState): NodeId[] {
  const ids = new Set(s.current.members);
  for (const id of lead.departing()) ids.add(id);
  if (lead.catchUp !== undefined) ids.add(lead.catchUp.server);
  ids.delete(s.self);
  return [...ids].sort((a, b) => a - b);
}

/** Sends every target what it is due; with `heartbeat`, every target gets a message (§5.2: heartbeats maintain authority). */
export function broadcast(s: RaftServer, lead: LeaderState, heartbeat: boolean): void {
  for (const id of targets(s, lead)) sendAppend(s, lead, id, heartbeat);
}

/**
 * Sends `to` the entries from its next index, or the snapshot when they were compacted (§7).
 * A follower that is paused (a probe or a snapshot in flight) gets only a heartbeat, and only
 * with `heartbeat`: an empty AppendEntries at an index it is known to hold, or has in its
 * snapshot, so it resets its election timer and acknowledges the round without rewinding anything.
 */
export function sendAppend(s: RaftServer, lead: LeaderState, to: NodeId, heartbeat: boolean): void {
  const progress = lead.progress(to);
  if (progress.paused) {
    if (!heartbeat) return;
    const prev = Math.max(progress.match, s.log.compactedIndex);
    s.out.send([to], appendEntries(s.term, prev, s.log.termAt(prev) as number, [], s.commitIndex, lead.round));
    return;
  }
  if (progress.next <= s.log.compactedIndex) {
    const snapshot = s.snapshot;
    invariant(snapshot !== undefined && snapshot.index >= s.log.compactedIndex, `entries up to ${s.log.compactedIndex} compacted without a snapshot covering them`);
    const data = s.executor.storedState();
    // A state too large to send stays unsent; the leader stops when it next stores it whole (MAX_STATE_BYTES).
    if (data === undefined) return;
    s.out.send([to], installSnapshot(s.term, { ...snapshot, data }, lead.round));
    progress.sentSnapshot(snapshot.index);
    return;
  }
  const prev = progress.next - 1;
  const prevTerm = s.log.termAt(prev);
  invariant(prevTerm !== undefined, `next index ${progress.next} of ${to} is past the log's end ${s.log.lastIndex}`);
  const entries = batchFrom(s, progress.next);
  // A follower in step with nothing new waits for entries or the heartbeat; a probe always goes,
  // empty or not, as it is how the leader finds where the logs match.
  if (entries.length === 0 && !heartbeat && progress.state === 'replicate') return;
  s.out.send([to], appendEntries(s.term, prev, prevTerm, entries, s.commitIndex, lead.round));
  progress.sentEntries(prev + entries.length);
}

/** The entries from `first` that fit one AppendEntries: at most `maxEntriesPerMessage`, and `maxBytesPerMessage` unless a single entry is larger. */
function batchFrom(s: RaftServer, first: number): RaftEntry[] {
  const last = Math.min(s.log.lastIndex, first + s.options.maxEntriesPerMessage - 1);
  const entries: RaftEntry[] = [];
  let bytes = 0;
  for (let i = first; i <= last; i++) {
    const entry = s.log.entry(i);
    bytes += entryBytes(entry);
    if (entries.length > 0 && bytes > s.options.maxBytesPerMessage) break;
    entries.push(entry);
  }
  return entries;
}

/**
 * AppendEntries receiver (Figure 2). A request that could not come from a correct leader is
 * dropped unanswered (see `wellFormedAppend`).
 */
export function onAppendEntries(s: RaftServer, from: NodeId, m: RaftMessageOf<'append-entries'>): void {
  if (!wellFormedAppend(m, s.config.n)) return;
  // Rule 1: reply false if term < currentTerm.
  if (m.term < s.term) return s.out.send([from], appendReply(s.term, m, { success: false, conflictTerm: 0, conflictIndex: 0 }, s.commitIndex));
  s.follow(m.term, from);
  let prev = m.prevLogIndex;
  let prevTerm = m.prevLogTerm;
  let entries = m.entries;
  const lastNew = m.prevLogIndex + m.entries.length;
  if (prev < s.log.compactedIndex) {
    // Entries up to the compaction point are committed, hence the leader's too (§5.4.3): skip them.
    const skip = s.log.compactedIndex - prev;
    if (entries.length < skip) return s.out.send([from], appendReply(s.term, m, { success: true, matchIndex: lastNew }, s.commitIndex));
    prevTerm = (entries[skip - 1] as RaftEntry).term;
    invariant(prevTerm === s.log.compactedTerm, `leader ${from} disagrees with committed entry ${s.log.compactedIndex}`);
    entries = entries.slice(skip);
    prev = s.log.compactedIndex;
  }
  // Rule 2: reply false if the log has no entry at prevLogIndex whose term matches prevLogTerm.
  const localPrevTerm = s.log.termAt(prev);
  if (localPrevTerm === undefined) {
    return s.out.send([from], appendReply(s.term, m, { success: false, conflictTerm: 0, conflictIndex: s.log.lastIndex + 1 }, s.commitIndex));
  }
  if (localPrevTerm !== prevTerm) {
    invariant(prev > s.commitIndex, `leader ${from} disagrees with committed entry ${prev}`);
    return s.out.send([from], appendReply(s.term, m, { success: false, conflictTerm: localPrevTerm, conflictIndex: s.log.firstIndexOfTerm(prev) }, s.commitIndex));
  }
  // Rules 3 and 4: a conflicting entry and all that follow it go (committed entries never
  // conflict); entries not already in the log are appended.
  let index = prev;
  for (const entry of entries) {
    index++;
    const existing = s.log.termAt(index);
    if (existing === entry.term) continue;
    if (existing !== undefined) s.truncateFrom(index);
    s.appendLocal(entry);
  }
  // Rule 5: commitIndex = min(leaderCommit, index of the last new entry). Not the log's end: past
  // lastNew this log may still hold entries of an old term that the leader has not overwritten.
  const commit = Math.min(m.leaderCommit, lastNew);
  if (commit > s.commitIndex) commitTo(s, commit);
  s.out.send([from], appendReply(s.term, m, { success: true, matchIndex: lastNew }, s.commitIndex));
}

/**
 * A follower's answer to AppendEntries. It counts for this leadership only if it answers a
 * request of this term: heartbeat rounds restart with every leadership, and a rejection of an
 * older term's request carries the follower's newer term, so a server leading again could
 * otherwise take it as confirming a read of its new term.
 */
export function onAppendReply(s: RaftServer, from: NodeId, m: RaftMessageOf<'append-entries-reply'>): void {
  if (m.term > s.term) return s.becomeFollower(m.term, null);
  const lead = s.lead;
  if (lead === undefined || m.requestTerm !== s.term) return;
  lead.heardFrom(from, m.round);
  const progress = lead.tracked(from);
  if (progress === undefined) return;
  lead.departedUpTo(from, m.commitIndex);
  if (m.success) return acknowledged(s, lead, from, m.matchIndex);
  releaseReads(s, lead);
  // §5.3: skip the follower's whole conflicting term, or to the end of its log.
  const last = m.conflictTerm > 0 ? s.log.lastIndexOfTerm(m.conflictTerm) : undefined;
  const resumeAt = Math.min(last === undefined ? m.conflictIndex : last + 1, s.log.lastIndex + 1);
  if (progress.rejected(m.prevLogIndex, resumeAt)) sendAppend(s, lead, from, false);
}

/** A follower's answer to InstallSnapshot, counted under the same rule as {@link onAppendReply}. */
export function onSnapshotReply(s: RaftServer, from: NodeId, m: RaftMessageOf<'install-snapshot-reply'>): void {
  if (m.term > s.term) return s.becomeFollower(m.term, null);
  const lead = s.lead;
  if (lead === undefined || m.requestTerm !== s.term) return;
  lead.heardFrom(from, m.round);
  if (lead.tracked(from) === undefined) return;
  // A follower that took the snapshot has committed up to its index.
  lead.departedUpTo(from, m.matchIndex);
  acknowledged(s, lead, from, m.matchIndex);
}

/** `from`'s log matches the leader's up to `match`. */
function acknowledged(s: RaftServer, lead: LeaderState, from: NodeId, match: number): void {
  const progress = lead.progress(from);
  progress.acknowledged(match);
  appendWaiting(s, lead);
  advanceCommit(s, lead);
  if (s.lead !== lead) return;
  if (catchUpProgress(s, lead, from, progress.match)) {
    broadcast(s, lead, false);
    advanceCommit(s, lead);
    if (s.lead !== lead) return;
  }
  releaseReads(s, lead);
  if (progress.next <= s.log.lastIndex) sendAppend(s, lead, from, false);
}

/**
 * §5.3, §5.4.2: commits the highest index a majority of the configuration holds, if the commit
 * rule allows it (only entries of the current term are committed by counting replicas).
 */
export function advanceCommit(s: RaftServer, lead: LeaderState): void {
  const candidate = majorityMatch(s.current.members, (id) => (id === s.self ? s.log.lastIndex : (lead.tracked(id)?.match ?? 0)));
  if (candidate <= s.commitIndex || !s.mayCommit(s.log.termAt(candidate) as number, s.term)) return;
  commitTo(s, candidate);
}

/**
 * Commits up to `index` and executes what a stretch allows (`execute`); then a leader releases
 * reads waiting for its term's first commit, or steps down if removed.
 */
function commitTo(s: RaftServer, index: number): void {
  invariant(index > s.commitIndex && index <= s.log.lastIndex, `commit index moves from ${s.commitIndex} to ${index} with log end ${s.log.lastIndex}`);
  const campaigned = s.mayCampaign();
  s.commitIndex = index;
  execute(s);
  const lead = s.lead;
  if (lead === undefined) {
    if (campaigned !== s.mayCampaign()) s.armElection();
    return;
  }
  // Thesis §4.2.2: a leader removed from the configuration steps down once the removal commits,
  // after telling the members that it is committed.
  if (!s.isMember() && s.current.index <= s.commitIndex) {
    broadcast(s, lead, true);
    return s.becomeFollower(s.term, null);
  }
  if (s.commitIndex >= lead.termStart) {
    const waiting = lead.takeAwaiting();
    if (waiting.length > 0) startReads(s, lead, waiting);
  }
}

/**
 * ReadIndex (thesis §6.4) steps 2–3: records the reads at the commit index and starts a heartbeat
 * round; they are released once a majority has acknowledged that round.
 */
export function startReads(s: RaftServer, lead: LeaderState, ids: readonly string[]): void {
  lead.nextRound();
  lead.addReads(ids, s.commitIndex);
  releaseReads(s, lead);
  broadcast(s, lead, true);
}

/**
 * §5.3's "apply log[lastApplied] to state machine" for every committed entry, within the step's
 * `executionBudget`: a core that executes in slices (core.ts, `resume`) leaves the rest, even half
 * an entry, for the next step. Snapshots are taken, and reads released once the state reached
 * their index, only between entries.
 */
export function execute(s: RaftServer): void {
  const lead = s.lead;
  while (s.executor.lastApplied < s.commitIndex && s.executionBudget > 0) {
    const next = s.executor.lastApplied + 1;
    const entry = s.log.entry(next);
    s.executionBudget -= s.executor.apply(next, entry, next > s.inheritedTo, s.executionBudget);
    if (s.executor.midEntry) return;
    if (lead === undefined) continue;
    lead.uncommittedBytes -= entryBytes(entry);
    if (entry.type === 'commands') for (const command of entry.commands) lead.settled(command);
  }
  compactIfDue(s);
  if (lead !== undefined) releaseReads(s, lead);
}

/**
 * Thesis §6.4 step 4: a read confirmed by a majority is served once the state has reached its
 * index, and never while an entry is executed part-way (the host reads the state as it is).
 */
function releaseReads(s: RaftServer, lead: LeaderState): void {
  if (s.executor.midEntry) return;
  for (const read of lead.releasable(s.current.members, s.self, s.executor.lastApplied)) s.out.read(read);
}
