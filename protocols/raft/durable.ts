/**
 * Raft's durable records (§5.1, Figure 2 "persistent state on all servers"; §7 snapshots) and
 * their validation on restart.
 *
 * Keys: `raft/term` (current term), `raft/vote` ({ term, node }: the vote cast in that term),
 * `raft/log/<index>` (one entry each), `raft/snapshot` (the latest snapshot). Entries at or below
 * the snapshot's index may survive a crash between writing a snapshot and erasing them; they are
 * covered by the snapshot and ignored.
 */
import { t } from '../../schema/schema.js';
import type { NodeId } from '../consensus/config.js';
import { ConsensusError } from '../consensus/errors.js';
import { isMemberList } from './membership.js';
import { raftEntrySchema, snapshotRecordSchema, type RaftEntry, type SnapshotRecord } from './messages.js';

/** Prefix of every key Raft writes. */
const KEY_PREFIX = 'raft/';
/** The current term. */
export const TERM_KEY = 'raft/term';
/** The vote cast, with the term it was cast in. */
export const VOTE_KEY = 'raft/vote';
/** The latest snapshot. */
export const SNAPSHOT_KEY = 'raft/snapshot';
const LOG_PREFIX = 'raft/log/';

/** The key of the log entry at `index`. */
export function entryKey(index: number): string {
  return `${LOG_PREFIX}${index}`;
}

/** A vote cast in `term`: `{ term, node }`. */
const voteSchema = t.object({ term: t.uint(), node: t.uint(1 << 16) });

/** What an earlier incarnation left behind. */
export interface DurableRaft {
  readonly term: number;
  /** The vote cast in `term`, if any. */
  readonly vote: NodeId | null;
  readonly snapshot: SnapshotRecord | undefined;
  /** The entries after the snapshot, in index order. */
  readonly entries: readonly RaftEntry[];
}

function corrupt(message: string, cause?: unknown): never {
  throw new ConsensusError('CORRUPT_STATE', `raft durable state: ${message}`, cause === undefined ? undefined : { cause });
}

function parse<T>(what: string, parser: { parse(value: unknown): T }, value: unknown): T {
  try {
    return parser.parse(value);
  } catch (cause) {
    return corrupt(`${what} is malformed`, cause);
  }
}

/**
 * Reads and cross-checks the records of a server of a cluster of `n`.
 * @throws {ConsensusError} `CORRUPT_STATE` when a record is malformed or the records contradict
 * each other: a vote or an entry from a term later than the current term, a gap in the log,
 * terms decreasing along the log, an unknown key, a configuration naming non-members.
 */
export function loadDurable(durable: ReadonlyMap<string, unknown>, n: number): DurableRaft {
  const term = durable.has(TERM_KEY) ? parse('term', t.uint(), durable.get(TERM_KEY)) : 0;
  const voteRecord = durable.has(VOTE_KEY) ? parse('vote', voteSchema, durable.get(VOTE_KEY)) : undefined;
  if (voteRecord !== undefined && (voteRecord.term > term || voteRecord.node >= n)) {
    corrupt(`vote for ${voteRecord.node} in term ${voteRecord.term} with current term ${term} in a cluster of ${n}`);
  }
  const snapshot = durable.has(SNAPSHOT_KEY) ? parse('snapshot', snapshotRecordSchema, durable.get(SNAPSHOT_KEY)) : undefined;
  if (snapshot !== undefined && (snapshot.term > term || snapshot.index === 0 || !isMemberList(snapshot.members, n))) {
    corrupt(`snapshot at ${snapshot.index} of term ${snapshot.term} (current term ${term}) with members [${snapshot.members.join(', ')}]`);
  }
  const base = snapshot?.index ?? 0;
  const byIndex = new Map<number, unknown>();
  for (const [key, value] of durable) {
    if (!key.startsWith(KEY_PREFIX) || key === TERM_KEY || key === VOTE_KEY || key === SNAPSHOT_KEY) continue;
    const suffix = key.startsWith(LOG_PREFIX) ? key.slice(LOG_PREFIX.length) : '';
    const index = /^[1-9][0-9]*$/.test(suffix) ? Number(suffix) : NaN;
    if (!Number.isSafeInteger(index)) corrupt(`unknown key ${JSON.stringify(key)}`);
    if (index > base) byIndex.set(index, value);
  }
  const entries: RaftEntry[] = [];
  let lastTerm = snapshot?.term ?? 0;
  for (let index = base + 1; index <= base + byIndex.size; index++) {
    if (!byIndex.has(index)) corrupt(`log has ${byIndex.size} entries after ${base} but no entry ${index}`);
    const entry = parse(`log entry ${index}`, raftEntrySchema, byIndex.get(index));
    if (entry.term < lastTerm || entry.term > term) corrupt(`log entry ${index} has term ${entry.term} after term ${lastTerm} with current term ${term}`);
    if (entry.type === 'config' && !isMemberList(entry.members, n)) corrupt(`log entry ${index} configures members [${entry.members.join(', ')}]`);
    lastTerm = entry.term;
    entries.push(entry);
  }
  return { term, vote: voteRecord !== undefined && voteRecord.term === term ? voteRecord.node : null, snapshot, entries };
}
