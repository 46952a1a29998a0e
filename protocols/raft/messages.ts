/**
 * Raft's log entries and messages (Ongaro & Ousterhout, Figure 2; Ongaro's thesis §4, §5, §9.6).
 *
 * Bodies carry no sender: the host wraps each in a `Signed` envelope naming it. Builders put the
 * fields in schema order, because a body's digest (what the host signs) depends on field order.
 */
import { t, type Infer } from '../../schema/schema.js';
import { MAX_BATCH_COMMANDS, commandSchema, type Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';
import { MAX_STATE_BYTES } from '../consensus/state-machine.js';
import { isMemberList } from './membership.js';

/** Most entries one AppendEntries may carry. */
export const MAX_ENTRIES_PER_MESSAGE = 4096;

/** Most servers a configuration may name. */
const MAX_MEMBERS = 1 << 10;

/** Schema of a configuration's member list. */
const membersSchema = t.array(t.uint(1 << 16), { maxLength: MAX_MEMBERS });

/**
 * Schema of one log entry: client commands, the no-op a leader appends when its term starts
 * (§8), or a configuration naming the servers of the cluster from then on (thesis §4.1).
 * `timestamp` is the leader's clock when it appended the entry. An entry holds the commands that
 * waited for a follower's window together (replication.ts), so under load one index, one
 * execution report and one state hash serve a batch, as a PBFT sequence or a HotStuff block does.
 */
export const raftEntrySchema = t.variants({
  commands: { term: t.uint(), timestamp: t.number(), commands: t.array(commandSchema, { maxLength: MAX_BATCH_COMMANDS }) },
  noop: { term: t.uint(), timestamp: t.number() },
  config: { term: t.uint(), timestamp: t.number(), members: membersSchema },
});

/** One entry of the replicated log. */
export type RaftEntry = Infer<typeof raftEntrySchema>;

const term = t.uint();
const index = t.uint();

/** Schema of Raft's message bodies. */
export const raftMessageSchema = t.variants({
  /**
   * Thesis §9.6: would you vote for me in `term` (my current term + 1)? Changes no one's term.
   * `attempt` numbers the sender's pre-votes within its term and is echoed in the reply, so a
   * grant that arrives after its pre-vote was superseded is not counted.
   */
  'pre-vote': { term, lastLogIndex: index, lastLogTerm: term, attempt: t.uint() },
  'pre-vote-reply': { term, granted: t.boolean(), attempt: t.uint() },
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
   * `term` is the replier's current term (Figure 2). `requestTerm`, `prevLogIndex` and `round`
   * echo the request: a leader counts the reply only for the term it was sent in (heartbeat rounds
   * restart with every leadership, so a round alone does not say which one), and ignores a
   * rejection of a request older than its last rewind. On success `matchIndex` is the last index
   * known to match the leader's log. On failure `conflictTerm` (0 when the follower's log is too
   * short) and `conflictIndex` let the leader skip a whole conflicting term per round trip (§5.3,
   * last paragraphs). `commitIndex` is the replier's, so a leader knows when a server it removed
   * has learnt that the removal committed.
   */
  'append-entries-reply': {
    term,
    requestTerm: term,
    prevLogIndex: index,
    round: t.uint(),
    success: t.boolean(),
    matchIndex: index,
    conflictTerm: term,
    conflictIndex: index,
    commitIndex: index,
  },
  /** §7, in one chunk: the state machine and configuration as of `lastIncludedIndex`. */
  'install-snapshot': {
    term,
    lastIncludedIndex: index,
    lastIncludedTerm: term,
    members: membersSchema,
    timestamp: t.number(),
    data: t.bytes({ maxLength: MAX_STATE_BYTES }),
    round: t.uint(),
  },
  /** `requestTerm` and `round` echo the request, as for AppendEntries. */
  'install-snapshot-reply': { term, requestTerm: term, round: t.uint(), matchIndex: index },
});

/** A Raft message body. */
export type RaftMessage = Infer<typeof raftMessageSchema>;

/** The body of a message of type `K`. */
export type RaftMessageOf<K extends RaftMessage['type']> = Extract<RaftMessage, { type: K }>;

/** An entry of client commands, fields in schema order. */
export function commandsEntry(term: number, timestamp: number, commands: readonly Command[]): RaftEntry {
  return { type: 'commands', term, timestamp, commands };
}

/** A no-op entry. */
export function noopEntry(term: number, timestamp: number): RaftEntry {
  return { type: 'noop', term, timestamp };
}

/** A configuration entry. */
export function configEntry(term: number, timestamp: number, members: readonly NodeId[]): RaftEntry {
  return { type: 'config', term, timestamp, members };
}

/** What a command, or an entry without commands, is charged beyond payloads and client ids: roughly its framing, so empty commands are not free. */
const FRAMING_BYTES = 64;

/** Bytes a command is charged in the leader's budgets: its payload and client id, plus the framing allowance. */
export function commandBytes(command: Command): number {
  return FRAMING_BYTES + command.payload.byteLength + command.client.length;
}

/**
 * Bytes an entry is charged in the leader's budgets (the uncommitted log, the size of one
 * AppendEntries): its commands' charges, or the framing allowance for an entry without any.
 */
export function entryBytes(entry: RaftEntry): number {
  if (entry.type !== 'commands' || entry.commands.length === 0) return FRAMING_BYTES;
  let bytes = 0;
  for (const command of entry.commands) bytes += commandBytes(command);
  return bytes;
}

/** A PreVote request for `term`, this server's `attempt`-th pre-vote in its term. */
export function preVoteRequest(term: number, lastLogIndex: number, lastLogTerm: number, attempt: number): RaftMessage {
  return { type: 'pre-vote', term, lastLogIndex, lastLogTerm, attempt };
}

/** A PreVote reply echoing the request's `attempt`. */
export function preVoteReply(term: number, granted: boolean, attempt: number): RaftMessage {
  return { type: 'pre-vote-reply', term, granted, attempt };
}

/** A RequestVote request. */
export function voteRequest(term: number, lastLogIndex: number, lastLogTerm: number): RaftMessage {
  return { type: 'request-vote', term, lastLogIndex, lastLogTerm };
}

/** A RequestVote reply. */
export function voteReply(term: number, granted: boolean): RaftMessage {
  return { type: 'request-vote-reply', term, granted };
}

/** An AppendEntries request. */
export function appendEntries(term: number, prevLogIndex: number, prevLogTerm: number, entries: readonly RaftEntry[], leaderCommit: number, round: number): RaftMessage {
  return { type: 'append-entries', term, prevLogIndex, prevLogTerm, entries, leaderCommit, round };
}

/** How a follower answered AppendEntries: the index it now matches up to, or where its log diverges. */
export type AppendOutcome = { readonly success: true; readonly matchIndex: number } | { readonly success: false; readonly conflictTerm: number; readonly conflictIndex: number };

/** An AppendEntries reply to `request` from a server in `term` whose commit index is `commitIndex`. */
export function appendReply(term: number, request: RaftMessageOf<'append-entries'>, outcome: AppendOutcome, commitIndex: number): RaftMessage {
  return {
    type: 'append-entries-reply',
    term,
    requestTerm: request.term,
    prevLogIndex: request.prevLogIndex,
    round: request.round,
    success: outcome.success,
    matchIndex: outcome.success ? outcome.matchIndex : 0,
    conflictTerm: outcome.success ? 0 : outcome.conflictTerm,
    conflictIndex: outcome.success ? 0 : outcome.conflictIndex,
    commitIndex,
  };
}

/**
 * What a snapshot covers (§7): the index and term of the last entry it replaces, and the
 * configuration and agreed time as of that entry. Stored beside the state it describes
 * (consensus/state-archive.ts), whose position is `index`.
 */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly members: readonly NodeId[];
  readonly timestamp: number;
}

/** Schema of a {@link SnapshotMeta}. */
export const snapshotMetaSchema = t.object({ index: t.uint(), term: t.uint(), members: membersSchema, timestamp: t.number() });

/** A snapshot as a leader sends it and a follower installs it: what it covers, and the state's bytes. */
export interface SnapshotRecord extends SnapshotMeta {
  readonly data: Uint8Array;
}

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

/** An InstallSnapshot reply to `request` from a server in `term`; 0 as `matchIndex` acknowledges nothing. */
export function snapshotReply(term: number, request: RaftMessageOf<'install-snapshot'>, matchIndex: number): RaftMessage {
  return { type: 'install-snapshot-reply', term, requestTerm: request.term, round: request.round, matchIndex };
}

/**
 * Whether an AppendEntries could come from a correct leader of a cluster of `n`: entry terms from
 * 1 up to the request's term and never decreasing (§5.3), starting no lower than `prevLogTerm`,
 * and configurations a loader would accept. A follower drops any other, rather than store records
 * it could not load after a restart.
 */
export function wellFormedAppend(m: RaftMessageOf<'append-entries'>, n: number): boolean {
  if (m.term === 0 || m.prevLogTerm > m.term || (m.prevLogIndex === 0) !== (m.prevLogTerm === 0)) return false;
  let last = m.prevLogTerm;
  for (const entry of m.entries) {
    if (entry.term < Math.max(last, 1) || entry.term > m.term) return false;
    if (entry.type === 'config' && !isMemberList(entry.members, n)) return false;
    if (entry.type === 'commands' && entry.commands.length === 0) return false;
    last = entry.term;
  }
  return true;
}

/** Whether an InstallSnapshot could come from a correct leader of a cluster of `n` (see {@link wellFormedAppend}). */
export function wellFormedSnapshot(m: RaftMessageOf<'install-snapshot'>, n: number): boolean {
  return m.lastIncludedIndex > 0 && m.lastIncludedTerm > 0 && m.lastIncludedTerm <= m.term && isMemberList(m.members, n);
}
