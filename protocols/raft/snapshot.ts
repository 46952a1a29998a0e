/**
 * Snapshots (§7): compacting the log behind a snapshot of the state machine, and a follower
 * installing the snapshot its leader sent.
 *
 * Both order their writes so that a store holding any prefix of a step's writes still loads
 * (durable.ts): entries that contradict the snapshot go first, last entry first; then the state
 * (consensus/state-archive.ts), the record of what the snapshot covers, and the state records it
 * supersedes; then the entries it covers, lowest first.
 */
import { entryKey } from './durable.js';
import { configurationsAt } from './membership.js';
import { snapshotReply, wellFormedSnapshot, type RaftMessageOf, type SnapshotMeta } from './messages.js';
import type { RaftServer } from './server.js';

/**
 * §7: every `snapshotInterval` executed entries, snapshots the state machine and drops the log
 * prefix, except a trailing window of `snapshotTrailingEntries` entries. The entry at the new
 * compaction point stays stored (only for its term), so a restart finds the same window.
 */
export function compactIfDue(s: RaftServer): void {
  const index = s.executor.lastApplied;
  if (index - (s.snapshot?.index ?? 0) < s.options.snapshotInterval) return;
  const term = s.log.termAt(index) as number;
  const { current } = configurationsAt(s.log, s.base, index);
  const snapshot: SnapshotMeta = { index, term, members: current.members, timestamp: s.log.entry(index).timestamp };
  s.executor.store(snapshot);
  const keepFrom = Math.max(s.log.compactedIndex, index - s.options.snapshotTrailingEntries);
  s.eraseStoredThrough(keepFrom === index ? index : keepFrom - 1);
  s.log.compactTo(keepFrom, s.log.termAt(keepFrom) as number);
  s.snapshot = snapshot;
  s.base = { members: current.members, index };
  s.refreshConfiguration();
}

/**
 * InstallSnapshot receiver (§7, Figure 13): a snapshot from a current leader replaces the state
 * when it is ahead of this server's commit index. A snapshot that could not come from a correct
 * leader is dropped unanswered (see `wellFormedSnapshot`).
 */
export function onInstallSnapshot(s: RaftServer, from: number, m: RaftMessageOf<'install-snapshot'>): void {
  if (!wellFormedSnapshot(m, s.config.n)) return;
  if (m.term < s.term) return s.out.send([from], snapshotReply(s.term, m, 0));
  s.follow(m.term, from);
  if (m.lastIncludedIndex > s.commitIndex) {
    install(s, { index: m.lastIncludedIndex, term: m.lastIncludedTerm, members: m.members, timestamp: m.timestamp }, m.data);
  }
  // Entries up to a snapshot are committed, so the log matches the leader's up to its index.
  s.out.send([from], snapshotReply(s.term, m, m.lastIncludedIndex));
}

/** §7: keeps the log after the snapshot if it continues it (Figure 13 step 6), otherwise drops the whole log (step 7). */
function install(s: RaftServer, snapshot: SnapshotMeta, data: Uint8Array): void {
  s.executor.install(snapshot, data, 'MALFORMED_MESSAGE');
  const keeps = s.log.termAt(snapshot.index) === snapshot.term;
  if (!keeps) {
    // Before the snapshot is stored, entries after its index would load as continuing it.
    for (let i = s.log.lastIndex; i > snapshot.index; i--) s.out.erase(entryKey(i));
    s.inheritedTo = Math.min(s.inheritedTo, snapshot.index);
  }
  s.executor.store(snapshot, data);
  s.eraseStoredThrough(Math.min(s.log.lastIndex, snapshot.index));
  s.durableFrom = snapshot.index + 1;
  s.log.compactTo(snapshot.index, snapshot.term);
  s.snapshot = snapshot;
  s.base = { members: snapshot.members, index: snapshot.index };
  s.commitIndex = snapshot.index;
  s.clock = Math.max(s.clock, snapshot.timestamp);
  s.refreshConfiguration();
}
