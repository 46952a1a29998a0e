/**
 * Raft's durable records under snapshots: the order of a step's writes (every prefix of them must
 * load, and never as a log that contradicts its snapshot), InstallSnapshot onto matching and
 * non-matching logs, the trailing window kept after compaction, and restarts after each.
 */
import test, { type ExecutionContext } from 'ava';
import { archivedSnapshotKey, ConsensusError, consensusConfig, hex, KvStateMachine, type ArchivedSnapshot, type ConsensusState, type PersistOp } from '../protocols/consensus/index.js';
import { RaftCore, type RaftEntry, type RaftMessage, type RaftOptions, type SnapshotMeta } from '../protocols/raft/index.js';
import { applyOps, coreFrom, Harness, put } from './helpers/raft.js';

/** The last state hash node `id` reported. */
function lastHash(h: Harness, id: number): string {
  return hex(h.applied[id]!.at(-1)!.stateHash);
}

/** The entries node `id` ever persisted, by index (the latest write of each). */
function persistedEntries(h: Harness, id: number): Map<number, RaftEntry> {
  const entries = new Map<number, RaftEntry>();
  for (const ready of h.readies[id]!) {
    for (const op of ready.persist) if (op.key.startsWith('raft/log/') && op.value !== undefined) entries.set(Number(op.key.slice('raft/log/'.length)), op.value as RaftEntry);
  }
  return entries;
}

/** The InstallSnapshot a leader would send, built from its durable snapshot (stored whole: the leader's first). */
function snapshotMessage(h: Harness, leader: number): RaftMessage {
  const snapshot = h.durable[leader]!.get('raft/snapshot') as SnapshotMeta;
  const state = h.durable[leader]!.get(archivedSnapshotKey(snapshot.index)) as ArchivedSnapshot;
  return { type: 'install-snapshot', term: h.cores[leader]!.term, lastIncludedIndex: snapshot.index, lastIncludedTerm: snapshot.term, members: snapshot.members, timestamp: snapshot.timestamp, data: state.snapshot, round: 0 };
}

/**
 * Loads server `id` from `before` plus every prefix of `ops` and checks each with `check`, which
 * gets the loaded core and the number of ops applied.
 */
function everyPrefix(t: ExecutionContext, before: ReadonlyMap<string, unknown>, ops: readonly PersistOp[], id: number, options: RaftOptions, check: (core: RaftCore, applied: number) => void): void {
  for (let k = 0; k <= ops.length; k++) {
    let core: RaftCore | undefined;
    t.notThrows(() => {
      core = coreFrom(applyOps(before, ops.slice(0, k)), id, 3, options);
    }, `the first ${k} of ${ops.length} writes: ${ops.slice(0, k).map((op) => `${op.value === undefined ? '−' : '+'}${op.key}`).join(' ')}`);
    if (core !== undefined) check(core, k);
  }
}

/** Node 2 holds nine entries of term 1 no one else has; node 0 leads term 2, has compacted, and sends it a snapshot at 5. */
function nonMatchingStaging(options: RaftOptions): { h: Harness; message: RaftMessage } {
  const durable = [new Map<string, unknown>([['raft/term', 1]]), new Map<string, unknown>([['raft/term', 1]]), new Map<string, unknown>([['raft/term', 1]])];
  for (let i = 1; i <= 9; i++) durable[2]!.set(`raft/log/${i}`, { type: 'noop', term: 1, timestamp: i });
  const h = new Harness(3, options, undefined, durable);
  h.cut.add(2);
  h.elect(0);
  h.submitEach('a', 0, 7, [0]);
  h.beat(0);
  h.cut.delete(2);
  return { h, message: snapshotMessage(h, 0) };
}

test('every prefix of an InstallSnapshot step’s writes over a non-matching log loads, and never as a log contradicting the snapshot', (t) => {
  const options: RaftOptions = { snapshotInterval: 5 };
  const { h, message } = nonMatchingStaging(options);
  t.like(message, { lastIncludedIndex: 5, lastIncludedTerm: 2 });
  t.is(h.cores[2]!.logTerm(5), 1, 'node 2 holds another entry at 5');
  const before = new Map(h.durable[2]);
  const ops = h.send(0, 2, message).persist;
  t.deepEqual(
    ops.map((op) => `${op.value === undefined ? '−' : '+'}${op.key}`),
    ['+raft/term', '−raft/log/9', '−raft/log/8', '−raft/log/7', '−raft/log/6', '+snapshot/0000000000000005', '+raft/snapshot', '−raft/log/1', '−raft/log/2', '−raft/log/3', '−raft/log/4', '−raft/log/5'],
    'the contradicting tail goes first, last entry first; then the snapshot; then what it covers',
  );
  everyPrefix(t, before, ops, 2, options, (core, k) => {
    if (core.snapshotIndex === 5) t.is(core.lastLogIndex, 5, `after ${k} writes: nothing after the snapshot but its own continuation`);
    else for (let i = 1; i <= core.lastLogIndex; i++) t.is(core.logTerm(i), 1, `after ${k} writes: a prefix of the old log`);
  });
});

test('every prefix of a compaction step’s writes loads, with the same log', (t) => {
  const options: RaftOptions = { snapshotInterval: 5, snapshotTrailingEntries: 2 };
  const h = new Harness(3, options);
  h.elect(0);
  h.submitEach('c', 0, 3, [0]);
  h.request(put('c3'), [0]);
  const before = new Map(h.durable[0]);
  h.deliverAll((m) => m.body.type === 'append-entries');
  const ack = h.take((m) => m.to === 0 && m.body.type === 'append-entries-reply' && m.body.success && m.body.matchIndex === 5)!;
  const ops = h.send(ack.from, 0, ack.body).persist;
  t.deepEqual(
    ops.map((op) => `${op.value === undefined ? '−' : '+'}${op.key}`),
    ['+snapshot/0000000000000005', '+raft/snapshot', '−raft/log/1', '−raft/log/2'],
    'the snapshot first, then the entries below the trailing window, lowest first; entry 3 stays for its term',
  );
  everyPrefix(t, before, ops, 0, options, (core) => {
    t.is(core.lastLogIndex, 5);
    for (let i = 4; i <= 5; i++) t.is(core.logTerm(i), 1);
  });
  const restarted = h.restart(0);
  t.is(restarted.snapshotIndex, 5);
  t.is(restarted.compactedIndex, 3, 'the window survives the restart');
});

test('InstallSnapshot onto a longer matching log keeps the entries after it, and a restart loads the same log (§7)', (t) => {
  const options: RaftOptions = { snapshotInterval: 5 };
  const h = new Harness(3, options);
  h.elect(0);
  h.cut.add(2);
  h.submitEach('m', 0, 7, [0]);
  h.beat(0);
  h.cut.delete(2);
  const leader = h.cores[0]!;
  // Node 2 gets every entry, but with a commit index of 1: it is ahead in its log, behind in commitment.
  const entries = persistedEntries(h, 0);
  const all = Array.from({ length: leader.lastLogIndex }, (_, i) => entries.get(i + 1)!);
  h.send(0, 2, { type: 'append-entries', term: leader.term, prevLogIndex: 0, prevLogTerm: 0, entries: all, leaderCommit: 1, round: 0 });
  t.is(h.cores[2]!.lastLogIndex, 8);
  t.is(h.cores[2]!.knownCommitIndex, 1);
  const message = snapshotMessage(h, 0);
  t.like(message, { lastIncludedIndex: 5 });
  const before = new Map(h.durable[2]);
  const install = h.send(0, 2, message);
  t.deepEqual(
    install.persist.map((op) => `${op.value === undefined ? '−' : '+'}${op.key}`),
    ['+snapshot/0000000000000005', '+raft/snapshot', '−raft/log/1', '−raft/log/2', '−raft/log/3', '−raft/log/4', '−raft/log/5'],
    'nothing after the snapshot is erased',
  );
  everyPrefix(t, before, install.persist, 2, options, (core) => t.is(core.lastLogIndex, 8));
  t.like(install.messages[0]?.body, { type: 'install-snapshot-reply', matchIndex: 5 });
  const expected = { snapshot: 5, last: 8, terms: [6, 7, 8].map((i) => leader.logTerm(i)) };
  const follower = h.cores[2]!;
  t.deepEqual({ snapshot: follower.snapshotIndex, last: follower.lastLogIndex, terms: [6, 7, 8].map((i) => follower.logTerm(i)) }, expected);
  const restarted = h.restart(2);
  t.deepEqual({ snapshot: restarted.snapshotIndex, last: restarted.lastLogIndex, terms: [6, 7, 8].map((i) => restarted.logTerm(i)) }, expected);
  // The leader may still wait on a snapshot it sent while node 2 was cut off: it gives up on it
  // after the snapshot timeout (six heartbeats) and probes again.
  for (let beat = 0; beat < 8 && restarted.status().commitIndex < 8; beat++) h.beat(0);
  t.is(restarted.status().commitIndex, 8, 'the entries after the snapshot execute on top of it');
  t.is(lastHash(h, 2), lastHash(h, 0));
});

test('InstallSnapshot onto a non-matching log replaces the whole log, and a restart agrees (§7)', (t) => {
  const options: RaftOptions = { snapshotInterval: 5 };
  const { h, message } = nonMatchingStaging(options);
  h.send(0, 2, message);
  t.is(h.cores[2]!.snapshotIndex, 5);
  t.is(h.cores[2]!.lastLogIndex, 5, 'the entries of term 1 after 5 contradicted the snapshot');
  t.deepEqual([...h.durable[2]!.keys()].filter((k) => k.startsWith('raft/log/')), []);
  const restarted = h.restart(2);
  t.is(restarted.snapshotIndex, 5);
  t.is(restarted.lastLogIndex, 5);
  // The leader never heard the acknowledgement (lost in the restart): it waits out the snapshot
  // timeout, an election timeout of 6 heartbeats, then resends.
  for (let i = 0; i < 7; i++) h.beat(0);
  t.is(restarted.status().commitIndex, h.cores[0]!.status().commitIndex);
  t.is(lastHash(h, 2), lastHash(h, 0));
});

test('a leader keeps a trailing window after compacting: a follower just behind gets entries, one further behind the snapshot', (t) => {
  const h = new Harness(3, { snapshotInterval: 10, snapshotTrailingEntries: 5 });
  h.elect(0);
  h.submitEach('w', 0, 4, [0]);
  h.cut.add(2);
  h.submitEach('w', 4, 11, [0]);
  t.is(h.cores[0]!.snapshotIndex, 10);
  t.is(h.cores[0]!.compactedIndex, 5, 'entries 6–12 are still held');
  t.is(h.cores[2]!.lastLogIndex, 5);
  h.cut.delete(2);
  h.fire(0, 'heartbeat');
  const delivered = h.deliverAll();
  t.true(delivered.some((m) => m.to === 2 && m.body.type === 'append-entries' && m.body.prevLogIndex === 5 && m.body.entries.length === 7), 'entries 6–12 from the window');
  t.false(delivered.some((m) => m.body.type === 'install-snapshot'));
  h.beat(0);
  t.is(h.cores[2]!.status().commitIndex, 12);
  t.false(h.applied[2]!.some((a) => a.kind === 'snapshot'), 'it executed the entries itself');

  const restarted = h.restart(0);
  t.is(restarted.compactedIndex, 5, 'the window survives a restart of the leader');
  t.is(restarted.lastLogIndex, 12);

  const far = new Harness(3, { snapshotInterval: 10, snapshotTrailingEntries: 5 });
  far.elect(0);
  far.cut.add(2);
  far.submitEach('f', 0, 11, [0]);
  far.cut.delete(2);
  far.fire(0, 'heartbeat');
  t.true(far.deliverAll().some((m) => m.body.type === 'install-snapshot'), 'node 2 holds only entry 1, below the window');
  far.beat(0);
  t.is(far.cores[2]!.status().commitIndex, 12);
});

test('leftovers of a replaced log below the snapshot are ignored on load and erased by the next compaction', (t) => {
  const h = new Harness(3, { snapshotInterval: 5, snapshotTrailingEntries: 0 });
  h.elect(0);
  h.fire(2, 'election');
  h.deliverAll();
  h.elect(1);
  t.is(h.cores[1]!.status().role, 'leader');
  t.is(h.cores[1]!.term, 2);
  h.submitEach('l', 0, 4, [1]);
  h.beat(1);
  const snapshotAt = h.cores[2]!.snapshotIndex;
  t.true(snapshotAt >= 5);
  // Entries of term 1 below node 2's snapshot of term 2, as a host that wrote only part of an
  // InstallSnapshot step could leave them.
  for (let i = 2; i <= snapshotAt; i++) h.durable[2]!.set(`raft/log/${i}`, { type: 'noop', term: 1, timestamp: 0 });
  h.durable[2]!.set('raft/log/3', { type: 'noop', term: 0, timestamp: 0 });
  t.throws(() => h.restart(2), { instanceOf: ConsensusError, message: /term 0/ }, 'a stored entry of term 0 is corrupt, wherever it is');
  h.durable[2]!.set('raft/log/3', { type: 'noop', term: 1, timestamp: 0 });
  const restarted = h.restart(2);
  t.is(restarted.compactedIndex, snapshotAt, 'the run below the snapshot does not end in its term: ignored');
  h.submitEach('n', 0, 5, [1]);
  h.beat(1);
  const next = h.cores[2]!.snapshotIndex;
  t.true(next > snapshotAt);
  const stored = [...h.durable[2]!.keys()].filter((k) => k.startsWith('raft/log/')).map((k) => Number(k.slice('raft/log/'.length)));
  t.deepEqual(stored.filter((i) => i <= next), [], 'everything up to the new snapshot is erased, leftovers included');
});

test('durable records that no correct server writes are CORRUPT_STATE: term 0, empty configurations, a state machine refusing the snapshot', (t) => {
  const build = (durable: Map<string, unknown>, stateMachine: ConsensusState = new KvStateMachine()): RaftCore =>
    new RaftCore({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine, durable });
  const h = new Harness(3, { snapshotInterval: 2, snapshotTrailingEntries: 0 });
  h.elect(0);
  h.request(put('s'), [0]);
  h.deliverAll();
  const good = new Map(h.durable[0]);
  t.notThrows(() => build(good));
  const snapshot = good.get('raft/snapshot') as Record<string, unknown>;
  const cases: [string, Map<string, unknown>, ConsensusState?][] = [
    ['an entry of term 0', new Map<string, unknown>([['raft/term', 1], ['raft/log/1', { type: 'noop', term: 0, timestamp: 0 }]])],
    ['a snapshot of term 0', new Map<string, unknown>([...good, ['raft/snapshot', { ...snapshot, term: 0 }]])],
    ['a snapshot with no members', new Map<string, unknown>([...good, ['raft/snapshot', { ...snapshot, members: [] }]])],
    ['a configuration with no members', new Map<string, unknown>([['raft/term', 1], ['raft/log/1', { type: 'config', term: 1, timestamp: 0, members: [] }]])],
    ['an entry past a gap after the snapshot', new Map<string, unknown>([...good, ['raft/log/4', { type: 'noop', term: 1, timestamp: 0 }]])],
    ['a snapshot without its state', new Map<string, unknown>([...good].filter(([key]) => !key.startsWith('snapshot/')))],
    [
      'a state machine that cannot restore the snapshot',
      good,
      {
        apply: () => new Uint8Array(),
        hash: () => new Uint8Array(32),
        snapshot: () => new Uint8Array(),
        restore: () => {
          throw new Error('not my format');
        },
      },
    ],
  ];
  for (const [name, durable, machine] of cases) {
    const error = t.throws(() => build(durable, machine), { instanceOf: ConsensusError }, name);
    t.is(error?.code, 'CORRUPT_STATE', name);
  }
});

test('later compactions store the state’s changes, one that outgrows them the whole state again; every prefix of each step loads, and a restart comes back to the same state', (t) => {
  const options: RaftOptions = { snapshotInterval: 2, snapshotTrailingEntries: 0 };
  const h = new Harness(3, options);
  // Follower 1's archive is watched, and it is the one restarted: leader 0 goes on leading.
  h.elect(0);
  // A large state first, so that a few puts later change little of it.
  for (let i = 0; i < 300; i++) h.request(put(`bulk-${i}`), [0]);
  h.deliverAll();
  const archive = (): string[] => [...h.durable[1]!.keys()].filter((k) => k.startsWith('snapshot/') || k.startsWith('state-changes/')).sort();
  const stepStoring = (prefix: string, submit: () => void): { before: Map<string, unknown>; ops: readonly PersistOp[] } => {
    const before = new Map(h.durable[1]);
    const from = h.readies[1]!.length;
    submit();
    const at = h.readies[1]!.slice(from).findIndex((r) => r.persist.some((op) => op.key.startsWith(prefix) && op.value !== undefined));
    t.true(at >= 0, `a step stored ${prefix}: ${archive().join(' ')}`);
    // The durable records as they were just before that step.
    const ops = h.readies[1]!.slice(from, from + at).flatMap((r) => r.persist);
    return { before: applyOps(before, ops), ops: h.readies[1]![from + at]!.persist };
  };
  const archiveIn = (durable: ReadonlyMap<string, unknown>): string[] => [...durable.keys()].filter((k) => k.startsWith('snapshot/') || k.startsWith('state-changes/')).sort();
  /** Every prefix of the step loads at the snapshot before it or the one it stores, to the state node 1 had there, and its first writes erase what lies outside that state's records. */
  const loadsEveryPrefix = ({ before, ops }: { before: Map<string, unknown>; ops: readonly PersistOp[] }): void => {
    const indices = [before, applyOps(before, ops)].map((durable) => coreFrom(durable, 1, 3, options).snapshotIndex);
    t.true(indices[1]! > indices[0]!, `the step stores a newer state: ${indices.join(' → ')}`);
    everyPrefix(t, before, ops, 1, options, (core, k) => {
      const ready = core.ready();
      const start = ready.applied[0];
      const seen = h.applied[1]!.findLast((a) => a.position === start?.position);
      t.true(start?.kind === 'snapshot' && indices.includes(start.position), `after ${k} writes: a snapshot at ${indices.join(' or ')} to start from, not ${start?.position}`);
      t.is(start && hex(start.stateHash), seen && hex(seen.stateHash), `after ${k} writes: the state node 1 had at ${start?.position}`);
      const left = archiveIn(applyOps(applyOps(before, ops.slice(0, k)), ready.persist));
      const chain = left.filter((key) => Number(key.slice(key.indexOf('/') + 1)) <= (start?.position ?? 0));
      t.deepEqual(left, chain, `after ${k} writes: records past the state are erased at the restart`);
    });
  };

  const first = archive();
  t.is(first.filter((k) => k.startsWith('snapshot/')).length, 1, `one whole snapshot: ${first.join(' ')}`);
  loadsEveryPrefix(stepStoring('state-changes/', () => h.submitEach('k', 0, 6, [0])));
  const changed = archive().filter((k) => k.startsWith('state-changes/'));
  t.true(changed.length >= 2, `changes stored: ${archive().join(' ')}`);
  /** Restarts node 1, caught up first, and checks that it comes back to the state it had at its snapshot, then to where it was. */
  const restartsToTheSameState = (): void => {
    h.beat(0);
    const at = h.cores[1]!.snapshotIndex;
    const atSnapshot = h.applied[1]!.find((a) => a.position === at)?.stateHash;
    const last = lastHash(h, 1);
    t.is(h.restart(1).snapshotIndex, at);
    t.like(h.applied[1]![0], { kind: 'snapshot', position: at });
    t.is(hex(h.applied[1]![0]!.stateHash), atSnapshot === undefined ? '' : hex(atSnapshot), 'the snapshot and its changes rebuild the state at the snapshot');
    h.beat(0);
    t.is(lastHash(h, 1), last, 'and the log after it the rest');
  };
  restartsToTheSameState();

  const big = 'x'.repeat(200);
  loadsEveryPrefix(
    stepStoring('snapshot/', () => h.commit(0, Array.from({ length: 300 }, (_, i) => put(`bulk-${i}`, big)), [0])),
  );
  const after = archive();
  t.is(after.length, 1, `changes that outgrow the snapshot store the state whole and drop the records before it: ${after.join(' ')}`);
  restartsToTheSameState();
});
