/**
 * Raft's log entries and messages (Ongaro & Ousterhout, Figure 2; Ongaro's thesis §4, §5, §9.6).
 *
 * Bodies carry no sender: the host wraps each in a `Signed` envelope naming it. Builders put the
 * fields in schema order, because a body's digest (what the host signs) depends on field order.
 */
import { t, type Infer } from '../../schema/schema.js';
import { commandSchema, type Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';

/** Most entries one AppendEntries may carry. */
export const MAX_ENTRIES_PER_MESSAGE = 4096;

/** Most servers a configuration may name. */
const MAX_MEMBERS = 1 << 10;

/** Schema of a configuration's member list. */
const membersSchema = t.array(t.uint(1 << 16), { maxLength: MAX_MEMBERS });

/**
 * Schema of one log entry: a client command, the no-op a leader appends when its term starts
 * (§8), or a configuration naming the servers of the cluster from then on (thesis §4.1).
 * `timestamp` is the leader's clock when it appended the entry.
 */
export const raftEntrySchema = t.variants({
  command: { term: t.uint(), timestamp: t.number(), command: commandSchema },
  noop: { term: t.uint(), timestamp: t.number() },
  config: { term: t.uint(), timestamp: t.number(), members: membersSchema },
});

/** One entry of the replicated log. */
export type RaftEntry = Infer<typeof raftEntrySchema>;

const term = t.uint();
const index = t.uint();

/** Schema of Raft's message bodies. */
export const raftMessageSchema = t.variants({
  /** Thesis §9.6: would you vote for me in `term` (my current term + 1)? Changes no one's term. */
  'pre-vote': { term, lastLogIndex: index, lastLogTerm: term },
  'pre-vote-reply': { term, granted: t.boolean() },
  /** §5.2. */
  'request-vote': { term, lastLogIndex: index, lastLogTerm: term },
  'request-vote-reply': { term, granted: t.boolean() },
  /**
   * §5.3; an empty `entries` is a heartbeat. `round` numbers the leader's heartbeat rounds and is
   * echoed in the reply, so a leader knows which of its rounds a follower acknowledged (ReadIndex,
   * thesis §6.4).
   */
  'append-entries': {
    term,
    prevLogIndex: index,
    prevLogTerm: term,
    entries: t.array(raftEntrySchema, { maxLength: MAX_ENTRIES_PER_MESSAGE }),
    leaderCommit: index,
    round: t.uint(),
  },
  /**
   * On success `matchIndex` is the last index known to match the leader's log. On failure
   * `conflictTerm` (0 when the follower's log is too short) and `conflictIndex` let the leader
   * skip a whole conflicting term per round trip (§5.3, last paragraphs).
   */
  'append-entries-reply': { term, success: t.boolean(), matchIndex: index, conflictTerm: term, conflictIndex: index, round: t.uint() },
  /** §7, in one chunk: the state machine and configuration as of `lastIncludedIndex`. */
  'install-snapshot': {
    term,
    lastIncludedIndex: index,
    lastIncludedTerm: term,
    members: membersSchema,
    timestamp: t.number(),
    data: t.bytes(),
    round: t.uint(),
  },
  'install-snapshot-reply': { term, matchIndex: index, round: t.uint() },
});

/** A Raft message body. */
export type RaftMessage = Infer<typeof raftMessageSchema>;

/** The body of a message of type `K`. */
export type RaftMessageOf<K extends RaftMessage['type']> = Extract<RaftMessage, { type: K }>;

/** A command entry, fields in schema order. */
export function commandEntry(term: number, timestamp: number, command: Command): RaftEntry {
  return { type: 'command', term, timestamp, command };
}

/** A no-op entry. */
export function noopEntry(term: number, timestamp: number): RaftEntry {
  return { type: 'noop', term, timestamp };
}

/** A configuration entry. */
export function configEntry(term: number, timestamp: number, members: readonly NodeId[]): RaftEntry {
  return { type: 'config', term, timestamp, members };
}

/** A PreVote or RequestVote request. */
export function voteRequest(type: 'pre-vote' | 'request-vote', term: number, lastLogIndex: number, lastLogTerm: number): RaftMessage {
  return { type, term, lastLogIndex, lastLogTerm };
}

/** A PreVote or RequestVote reply. */
export function voteReply(type: 'pre-vote-reply' | 'request-vote-reply', term: number, granted: boolean): RaftMessage {
  return { type, term, granted };
}

/** An AppendEntries request. */
export function appendEntries(term: number, prevLogIndex: number, prevLogTerm: number, entries: readonly RaftEntry[], leaderCommit: number, round: number): RaftMessage {
  return { type: 'append-entries', term, prevLogIndex, prevLogTerm, entries, leaderCommit, round };
}

/** An AppendEntries reply. */
export function appendReply(term: number, success: boolean, matchIndex: number, conflictTerm: number, conflictIndex: number, round: number): RaftMessage {
  return { type: 'append-entries-reply', term, success, matchIndex, conflictTerm, conflictIndex, round };
}

/** A durable or transmitted snapshot: the state machine and configuration as of `index`. */
export interface SnapshotRecord {
  readonly index: number;
  readonly term: number;
  readonly members: readonly NodeId[];
  readonly timestamp: number;
  readonly data: Uint8Array;
}

/** Schema of a {@link SnapshotRecord}. */
export const snapshotRecordSchema = t.object({ index: t.uint(), term: t.uint(), members: membersSchema, timestamp: t.number(), data: t.bytes() });

/** An InstallSnapshot request carrying `snapshot`. */
export function installSnapshot(term: number, snapshot: SnapshotRecord, round: number): RaftMessage {
  return {
    type: 'install-snapshot',
    term,
    lastIncludedIndex: snapshot.index,
    lastIncludedTerm: snapshot.term,
    members: snapshot.members,
    timestamp: snapshot.timestamp,
    data: snapshot.data,
    round,
  };
}

/** An InstallSnapshot reply. */
export function snapshotReply(term: number, matchIndex: number, round: number): RaftMessage {
  return { type: 'install-snapshot-reply', term, matchIndex, round };
}
