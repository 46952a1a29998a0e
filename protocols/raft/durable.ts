/**
 * Raft's durable records (§5.1, Figure 2 "persistent state on all servers"; §7 snapshots) and
 * their validation on restart.
 *
 * Keys: `raft/term` (current term), `raft/vote` ({ term, node }: the vote cast in that term),
 * `raft/log/<index>` (one entry each), `raft/snapshot` (what the latest snapshot covers), and
 * the state at its index, in the records of consensus/state-archive.ts.
 *
 * Entries after the snapshot's index continue it. Entries at or below it are either a trailing
 * window the server kept after compacting (a contiguous run ending at the snapshot's index with
 * the snapshot's term there), which is loaded, or leftovers of a log the snapshot replaced, which
 * are covered by the snapshot, ignored, and erased by the next compaction. Hosts write a step's
 * records in one transaction; the cores still order them so that every prefix of a step loads.
 */
import { t } from '../../schema/schema.js';
import type { NodeId } from '../consensus/config.js';
import { ConsensusError } from '../consensus/errors.js';
import { readArchive, type ArchiveRecords } from '../consensus/state-archive.js';
import { isMemberList } from './membership.js';
import { raftEntrySchema, snapshotMetaSchema, type RaftEntry, type SnapshotMeta } from './messages.js';

/** Prefix of every key Raft writes. */
const KEY_PREFIX = 'raft/';
/** The current term. */
export const TERM_KEY = 'raft/term';
/** The vote cast, with the term it was cast in. */
export const VOTE_KEY = 'raft/vote';
/** What the latest snapshot covers. */
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
  readonly snapshot: SnapshotMeta | undefined;
  /** The state at the snapshot's index, and leftovers of a compaction or installation cut short. */
  readonly archive: ArchiveRecords;
  /** The last index before `entries` (the compaction point) and its term. */
  readonly compacted: { readonly index: number; readonly term: number };
  /** The entries after `compacted.index`, in index order. */
  readonly entries: readonly RaftEntry[];
  /**
   * The lowest index that may have a stored entry (loaded or ignored): compaction erases from
   * there, so ignored leftovers do not outlive the next snapshot.
   */
  readonly lowestStored: number;
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
 * each other: a vote, snapshot or entry from a term later than the current term, a snapshot or
 * entry of term 0 (no leader ever had it), a gap in the log after the snapshot, terms decreasing
 * along it, an unknown key, a configuration that is not a non-empty list of distinct ids of [0, n),
 * state records that do not lead to the snapshot's index ({@link readArchive}).
 */
export function loadDurable(durable: ReadonlyMap<string, unknown>, n: number): DurableRaft {
  const term = durable.has(TERM_KEY) ? parse('term', t.uint(), durable.get(TERM_KEY)) : 0;
  const voteRecord = durable.has(VOTE_KEY) ? parse('vote', voteSchema, durable.get(VOTE_KEY)) : undefined;
  if (voteRecord !== undefined && (voteRecord.term > term || voteRecord.node >= n)) {
    corrupt(`vote for ${voteRecord.node} in term ${voteRecord.term} with current term ${term} in a cluster of ${n}`);
  }
  const snapshot = durable.has(SNAPSHOT_KEY) ? parse('snapshot', snapshotMetaSchema, durable.get(SNAPSHOT_KEY)) : undefined;
  if (snapshot !== undefined && (snapshot.term === 0 || snapshot.term > term || snapshot.index === 0 || !isMemberList(snapshot.members, n))) {
    corrupt(`snapshot at ${snapshot.index} of term ${snapshot.term} (current term ${term}) with members [${snapshot.members.join(', ')}]`);
  }
  const archive = readArchive(durable, snapshot?.index ?? 0, 'Raft');
  const stateAt = archive.changes.at(-1)?.position ?? archive.snapshot?.position;
  if (stateAt !== snapshot?.index) corrupt(`the stored state is at ${stateAt ?? 'no index'}, the snapshot at ${snapshot?.index ?? 'no index'}`);
  const base = snapshot?.index ?? 0;
  const stored = new Map<number, unknown>();
  for (const [key, value] of durable) {
    if (!key.startsWith(KEY_PREFIX) || key === TERM_KEY || key === VOTE_KEY || key === SNAPSHOT_KEY) continue;
    const suffix = key.startsWith(LOG_PREFIX) ? key.slice(LOG_PREFIX.length) : '';
    const index = /^[1-9][0-9]*$/.test(suffix) ? Number(suffix) : NaN;
    if (!Number.isSafeInteger(index)) corrupt(`unknown key ${JSON.stringify(key)}`);
    stored.set(index, value);
  }
  const entryAt = (index: number): RaftEntry => {
    const entry = parse(`log entry ${index}`, raftEntrySchema, stored.get(index));
    if (entry.term === 0 || entry.term > term) corrupt(`log entry ${index} has term ${entry.term} with current term ${term}`);
    if (entry.type === 'config' && !isMemberList(entry.members, n)) corrupt(`log entry ${index} configures members [${entry.members.join(', ')}]`);
    return entry;
  };

  const after: RaftEntry[] = [];
  let lastTerm = snapshot?.term ?? 0;
  for (let index = base + 1; stored.has(index); index++) {
    const entry = entryAt(index);
    if (entry.term < lastTerm) corrupt(`log entry ${index} has term ${entry.term} after term ${lastTerm}`);
    lastTerm = entry.term;
    after.push(entry);
  }
  let lowestStored = base + after.length + 1;
  for (const index of stored.keys()) {
    if (index > base + after.length) corrupt(`log has entries after ${base} up to ${base + after.length} but also entry ${index}`);
    lowestStored = Math.min(lowestStored, index);
  }

  const trailing = snapshot === undefined ? [] : trailingWindow(snapshot, stored, entryAt);
  // The first entry of a trailing window is kept only for its term: it is the compaction point.
  const compacted = trailing.length > 0 ? { index: base - trailing.length + 1, term: (trailing[0] as RaftEntry).term } : { index: base, term: snapshot?.term ?? 0 };
  return { term, vote: voteRecord !== undefined && voteRecord.term === term ? voteRecord.node : null, snapshot, archive, compacted, entries: [...trailing.slice(1), ...after], lowestStored };
}

/**
 * The contiguous run of stored entries ending at the snapshot's index, when it is a compacted
 * log's trailing window: it ends with the snapshot's term and its terms never decrease. Anything
 * else there is what remains of a log the snapshot replaced (its writer erased that log in the
 * same step), and is ignored.
 */
function trailingWindow(snapshot: SnapshotMeta, stored: ReadonlyMap<number, unknown>, entryAt: (index: number) => RaftEntry): RaftEntry[] {
  let low = snapshot.index + 1;
  while (low > 1 && stored.has(low - 1)) low--;
  const run: RaftEntry[] = [];
  for (let index = low; index <= snapshot.index; index++) run.push(entryAt(index));
  const ordered = run.every((entry, i) => i === 0 || entry.term >= (run[i - 1] as RaftEntry).term);
  return ordered && run.at(-1)?.term === snapshot.term ? run : [];
}
