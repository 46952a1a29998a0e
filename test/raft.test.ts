/**
 * Unit tests of the Raft core, driving `step`/`ready` by hand: a small in-test harness delivers
 * messages and fires timers explicitly, so each test stages exactly the situation a rule is about.
 */
import test from 'ava';
import { SchemaError } from '../schema/errors.js';
import { archivedSnapshotKey, consensusConfig, decode, hex, KvStateMachine, kvOperationSchema, ConsensusError, ReplicatedState, type ArchivedSnapshot, type Command, type NodeId, type ReadState, type Ready } from '../protocols/consensus/index.js';
import { RaftCore, raft, raftMessageSchema, type RaftEntry, type RaftMessage } from '../protocols/raft/index.js';
import { Progress } from '../protocols/raft/progress.js';
import { CountingRaft, durableWith, Harness, put, sent, type CoreFactory, type Envelope } from './helpers/raft.js';

test('a three-server cluster elects one leader, replicates and applies a command everywhere', (t) => {
  const h = new Harness(3);
  t.deepEqual(h.readies[0]![0]!.timers, [{ kind: 'set', timer: 'election', afterMs: 300, jitterMs: 300 }], 'a fresh member arms a randomized election timer (§5.2)');
  h.elect(0);
  t.is(h.leader(), 0);
  t.is(h.cores[0]!.term, 1);
  h.commit(0, [put('a')]);
  for (const core of h.cores) t.is(core.status().commitIndex, 2, 'the no-op and the command are applied');
  t.deepEqual(
    h.replies.map((replies) => replies.map((r) => ({ client: r.client, position: r.position, view: r.view }))),
    [0, 1, 2].map(() => [{ client: 'client', position: 2, view: 1 }]),
    'each server answers the command once, when it executes it',
  );
});

test('election restriction: a candidate with a stale log gets no vote (§5.4.1)', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(2, [1, 2, 2]), durableWith(2, [1, 2]), durableWith(2, [1, 1, 1, 1])]);
  const shorter = h.send(1, 0, { type: 'request-vote', term: 3, lastLogIndex: 2, lastLogTerm: 2 });
  t.deepEqual(sent(shorter, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'same last term, shorter log');
  const olderTerm = h.send(2, 0, { type: 'request-vote', term: 3, lastLogIndex: 4, lastLogTerm: 1 });
  t.deepEqual(sent(olderTerm, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'longer log, older last term');
  t.is(h.cores[0]!.votedFor, null);
  t.false(h.durable[0]!.has('raft/vote'));
  const upToDate = h.send(2, 0, { type: 'request-vote', term: 3, lastLogIndex: 3, lastLogTerm: 2 });
  t.deepEqual(sent(upToDate, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: true }]);
  t.is(h.cores[0]!.votedFor, 2);
  const twice = h.send(1, 0, { type: 'request-vote', term: 3, lastLogIndex: 9, lastLogTerm: 3 });
  t.deepEqual(sent(twice, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'one vote per term');
});

test('pre-vote: a partitioned server rejoining does not bump the term or disrupt the leader (thesis §9.6)', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.fire(0, 'heartbeat');
  h.deliverAll();
  const term = h.cores[0]!.term;
  h.cut.add(2);
  for (let i = 0; i < 5; i++) {
    h.fire(2, 'election');
    t.is(h.cores[2]!.status().role, 'pre-candidate');
  }
  t.is(h.cores[2]!.term, term, 'a pre-candidate never increments its term on its own');
  h.fire(0, 'heartbeat');
  h.deliverAll();
  h.cut.delete(2);
  const rejoin = h.fire(2, 'election');
  t.is(sent(rejoin, 'pre-vote').length, 1);
  h.deliverOne((m) => m.body.type === 'pre-vote');
  h.deliverOne((m) => m.body.type === 'pre-vote');
  t.deepEqual(
    h.inflight.filter((m) => m.body.type === 'pre-vote-reply').map((m) => m.body),
    [
      { type: 'pre-vote-reply', term, granted: false, attempt: 6 },
      { type: 'pre-vote-reply', term, granted: false, attempt: 6 },
    ],
    'servers that hear from the leader refuse',
  );
  h.deliverAll();
  t.is(h.leader(), 0);
  t.is(h.cores[0]!.term, term);
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.is(h.cores[2]!.status().role, 'follower', 'the rejoining server follows the leader again');
  t.is(h.cores[2]!.status().leader, 0);
});

test('a real RequestVote for a later term is ignored by a server that hears from its leader (thesis §4.2.3)', (t) => {
  const h = new Harness(3);
  h.elect(0);
  const term = h.cores[0]!.term;
  const ready = h.send(2, 1, { type: 'request-vote', term: term + 1, lastLogIndex: 100, lastLogTerm: term });
  t.is(ready.messages.length, 0);
  t.is(h.cores[1]!.term, term);
});

test('fast back-off: the leader finds the conflict point in fewer round trips than entries (§5.3)', (t) => {
  // Node 0 leads term 4 with 40 entries of term 3; node 1 holds 40 conflicting entries of term 2.
  const stale = Array.from({ length: 40 }, () => 2);
  const fresh = Array.from({ length: 40 }, () => 3);
  const h = new Harness(3, { maxEntriesPerMessage: 64 }, undefined, [durableWith(3, [1, ...fresh]), durableWith(3, [1, ...stale]), durableWith(3, [1])]);
  h.fire(0, 'election');
  h.deliverAll((m) => m.body.type !== 'append-entries' && m.body.type !== 'append-entries-reply');
  t.is(h.leader(), 0);
  const delivered = h.deliverAll();
  const rejections = delivered.filter((m) => m.from === 1 && m.body.type === 'append-entries-reply' && !m.body.success);
  t.true(rejections.length >= 1);
  t.true(rejections.length <= 2, `${rejections.length} rejections for 40 conflicting entries`);
  const hint = rejections[0]!.body;
  t.like(hint, { conflictTerm: 2, conflictIndex: 2 }, 'the follower names its conflicting term and where it starts');
  t.is(h.cores[1]!.lastLogIndex, 42);
  for (let i = 2; i <= 41; i++) t.is(h.cores[1]!.logTerm(i), 3);
  t.is(h.cores[1]!.logTerm(42), 4);
  t.is(h.cores[0]!.knownCommitIndex, 42);
});

test('a follower whose log is too short is told where its log ends', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(1, [1, 1, 1]), durableWith(1, [1]), durableWith(1, [1])]);
  const ready = h.send(0, 1, { type: 'append-entries', term: 1, prevLogIndex: 3, prevLogTerm: 1, entries: [], leaderCommit: 0, round: 0 });
  t.like(sent(ready, 'append-entries-reply')[0], { success: false, conflictTerm: 0, conflictIndex: 2 });
});

test('§5.4.2: an entry of an earlier term is not committed by counting replicas, only with one of the current term', (t) => {
  for (const [name, create, commitsEarly] of [
    ['correct', (o, r) => new RaftCore(o, r), false],
    ['counting', (o, r) => new CountingRaft(o, r), true],
  ] as [string, CoreFactory, boolean][]) {
    // Node 0 holds an entry of term 2 at index 2 that it never saw committed; it leads term 4.
    const h = new Harness(3, { maxEntriesPerMessage: 1 }, create, [durableWith(3, [1, 2]), durableWith(3, [1]), durableWith(3, [1])]);
    h.fire(0, 'election');
    h.deliverAll((m) => m.body.type !== 'append-entries' && m.body.type !== 'append-entries-reply');
    t.is(h.leader(), 0, name);
    t.is(h.cores[0]!.term, 4, name);
    // Node 1 catches up one entry at a time; stop once it holds index 2 (term 2) but not the no-op.
    h.cut.add(2);
    while (h.cores[1]!.lastLogIndex < 2) h.deliverOne();
    h.deliverOne((m) => m.body.type === 'append-entries-reply');
    t.is(h.cores[0]!.knownCommitIndex, commitsEarly ? 2 : 0, `${name}: index 2 is on a majority`);
    h.deliverAll();
    t.is(h.cores[0]!.knownCommitIndex, 3, `${name}: the no-op of term 4 commits, and index 2 with it`);
  }
});

test('persistence before reply: a vote or an acknowledgement leaves in the step that persists what justifies it (§5.1)', (t) => {
  const h = new Harness(3);
  const campaign = h.fire(0, 'election');
  t.deepEqual(campaign.persist, [], 'a pre-vote changes nothing durable');
  const preVote = h.send(1, 0, { type: 'pre-vote-reply', term: 1, granted: true, attempt: 1 });
  t.deepEqual(preVote.persist, [
    { key: 'raft/term', value: 1 },
    { key: 'raft/vote', value: { term: 1, node: 0 } },
  ]);
  t.is(sent(preVote, 'request-vote').length, 1, 'RequestVote leaves with the persisted term and self-vote');

  const vote = h.send(0, 1, { type: 'request-vote', term: 1, lastLogIndex: 0, lastLogTerm: 0 });
  t.deepEqual(vote.persist, [
    { key: 'raft/term', value: 1 },
    { key: 'raft/vote', value: { term: 1, node: 0 } },
  ]);
  t.deepEqual(sent(vote, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 1, granted: true }]);

  const entry: RaftEntry = { type: 'noop', term: 1, timestamp: 5 };
  const append = h.send(0, 1, { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [entry], leaderCommit: 0, round: 0 });
  t.deepEqual(append.persist, [{ key: 'raft/log/1', value: entry }]);
  t.like(sent(append, 'append-entries-reply')[0], { success: true, matchIndex: 1 });

  const overwrite: RaftEntry = { type: 'noop', term: 2, timestamp: 6 };
  const conflict = h.send(2, 1, { type: 'append-entries', term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [overwrite], leaderCommit: 0, round: 0 });
  t.deepEqual(conflict.persist, [{ key: 'raft/term', value: 2 }, { key: 'raft/log/1' }, { key: 'raft/log/1', value: overwrite }], 'term, truncation and the new entry');
  t.like(sent(conflict, 'append-entries-reply')[0], { term: 2, success: true, matchIndex: 1 });
});

test('restart from the durable map keeps term, vote and log, and replays the committed prefix', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.commit(0, ['a', 'b', 'c'].map((key) => put(key)));
  const before = h.cores[1]!;
  const snapshot = { term: before.term, vote: before.votedFor, last: before.lastLogIndex, terms: [1, 2, 3, 4].map((i) => before.logTerm(i)) };
  t.is(before.status().commitIndex, 4);
  const after = h.restart(1);
  t.deepEqual({ term: after.term, vote: after.votedFor, last: after.lastLogIndex, terms: [1, 2, 3, 4].map((i) => after.logTerm(i)) }, snapshot);
  t.is(after.status().commitIndex, 0, 'the commit index is volatile');
  t.is(after.status().role, 'follower');
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.is(after.status().commitIndex, 4, 'the leader tells it what is committed and it re-executes');
  t.deepEqual(h.applied[1]!.map((a) => a.position), [1, 2, 3, 4]);
  const leaderHash = h.applied[0]!.at(-1)!;
  const followerHash = h.applied[1]!.at(-1)!;
  t.is(hex(followerHash.kind === 'entry' ? followerHash.stateHash : new Uint8Array()), hex(leaderHash.kind === 'entry' ? leaderHash.stateHash : new Uint8Array()));
});

test('InstallSnapshot brings a far-behind follower up to date (§7)', (t) => {
  const h = new Harness(3, { snapshotInterval: 5 });
  h.elect(0);
  h.cut.add(2);
  h.submitEach('k', 0, 20);
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.true(h.cores[0]!.snapshotIndex >= 15, `leader compacted to ${h.cores[0]!.snapshotIndex}`);
  t.false([...h.durable[0]!.keys()].includes('raft/log/1'), 'compacted entries are erased from the durable map');
  t.true(h.durable[0]!.has('raft/snapshot'));
  h.cut.delete(2);
  // The snapshot may have left while the follower was cut off: it goes again after the snapshot
  // timeout (six heartbeats by default).
  const delivered: ReturnType<typeof h.deliverAll> = [];
  for (let beat = 0; beat < 8 && !delivered.some((m) => m.to === 2 && m.body.type === 'install-snapshot'); beat++) {
    h.fire(0, 'heartbeat');
    delivered.push(...h.deliverAll());
  }
  t.true(delivered.some((m) => m.to === 2 && m.body.type === 'install-snapshot'));
  const installed = h.applied[2]!.find((a) => a.kind === 'snapshot');
  t.truthy(installed, 'the follower reports the snapshot it jumped to');
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.is(h.cores[2]!.status().commitIndex, h.cores[0]!.status().commitIndex);
  t.is(h.cores[2]!.lastLogIndex, h.cores[0]!.lastLogIndex);
  const last = (id: NodeId): string => {
    const a = h.applied[id]!.at(-1)!;
    return hex(a.stateHash);
  };
  t.is(last(2), last(0), 'same state after the snapshot and the entries that follow');
  const restarted = h.restart(2);
  t.is(restarted.snapshotIndex, h.cores[2]!.snapshotIndex);
  t.is(h.applied[2]![0]!.kind, 'snapshot', 'a restart from a snapshot reports it first');
});

test('ReadIndex: a read is released only after the leader commits in its term and a majority confirms it (thesis §6.4)', (t) => {
  const h = new Harness(3);
  h.fire(0, 'election');
  h.deliverAll((m) => m.body.type !== 'append-entries');
  t.is(h.leader(), 0);
  t.false(h.cores[1]!.readIndex('on-follower'), 'a follower does not serve reads');
  t.true(h.cores[0]!.readIndex('early'));
  h.deliverAll((m) => m.body.type !== 'append-entries-reply');
  t.deepEqual(h.reads[0], [], 'the no-op of the term is not committed yet');
  h.deliverOne((m) => m.body.type === 'append-entries-reply');
  t.is(h.cores[0]!.knownCommitIndex, 1);
  t.deepEqual(h.reads[0], [], 'a heartbeat round must confirm leadership first');
  h.deliverAll();
  t.deepEqual(h.reads[0], [{ id: 'early', index: 1 }]);

  h.request(put('x'));
  h.deliverAll();
  h.cut.add(1);
  h.cut.add(2);
  t.true(h.cores[0]!.readIndex('isolated'));
  h.flush(0);
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.deepEqual(h.reads[0], [{ id: 'early', index: 1 }], 'a leader cut off from the majority releases nothing');
  h.cut.clear();
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.deepEqual(h.reads[0], [
    { id: 'early', index: 1 },
    { id: 'isolated', index: 2 },
  ]);
});

test('single-server membership changes: a learner is added after catching up, a leader removing itself steps down (thesis §4)', (t) => {
  const h = new Harness(4, { initialMembers: [0, 1, 2] });
  t.is(h.cores[3]!.status().role, 'learner');
  t.false(h.timers[3]!.has('election'), 'a learner never campaigns');
  h.elect(0);
  h.request(put('before'));
  h.deliverAll();
  t.false(h.cores[1]!.proposeAddServer(3), 'only the leader changes membership');
  t.false(h.cores[0]!.proposeAddServer(1), 'already a member');
  t.true(h.cores[0]!.proposeAddServer(3));
  t.false(h.cores[0]!.proposeRemoveServer(1), 'one change at a time');
  h.flush(0);
  h.deliverAll();
  h.fire(0, 'heartbeat');
  h.deliverAll();
  for (const core of h.cores) t.deepEqual(core.members, [0, 1, 2, 3]);
  t.is(h.cores[3]!.status().role, 'follower');
  t.true(h.timers[3]!.has('election'), 'the new member arms its election timer');
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.is(h.cores[3]!.status().commitIndex, h.cores[0]!.status().commitIndex);

  t.true(h.cores[0]!.proposeRemoveServer(0));
  h.flush(0);
  t.deepEqual(h.cores[0]!.members, [1, 2, 3], 'a configuration takes effect when appended');
  t.is(h.cores[0]!.status().role, 'leader', 'the leader manages the cluster until its removal commits');
  h.deliverAll();
  t.is(h.cores[0]!.status().role, 'learner', 'then steps down');
  t.false(h.timers[0]!.has('election'));
  h.fire(0, 'heartbeat');
  t.is(h.inflight.length, 0, 'a removed leader sends nothing');
  // The others' election timers fire too (a removed leader sends no heartbeats); their pre-votes are lost.
  h.fire(2, 'election');
  h.fire(3, 'election');
  h.inflight.length = 0;
  h.elect(1);
  t.is(h.leader(), 1);
  h.commit(1, [put('after')]);
  for (const id of [1, 2, 3]) t.is(h.cores[id]!.status().commitIndex, h.cores[1]!.status().commitIndex);
});

test('a server removed by a configuration that is not yet committed still campaigns, to get it committed (thesis §4.2.2)', (t) => {
  // Node 1 led [0, 1], appended [0] (removing itself) and restarted before node 0 had it.
  const noop: RaftEntry = { type: 'noop', term: 1, timestamp: 0 };
  const removal: RaftEntry = { type: 'config', term: 1, timestamp: 1, members: [0] };
  const leaderLog = new Map<string, unknown>([['raft/term', 1], ['raft/vote', { term: 1, node: 1 }], ['raft/log/1', noop], ['raft/log/2', removal]]);
  const h = new Harness(2, {}, undefined, [new Map<string, unknown>([['raft/term', 1], ['raft/log/1', noop]]), leaderLog]);
  t.deepEqual(h.cores[1]!.members, [0]);
  t.true(h.timers[1]!.has('election'), 'it may be needed: the removal is not committed');
  h.elect(1);
  t.is(h.cores[0]!.knownCommitIndex, 3, 'it won with node 0 alone (its own vote does not count) and committed the removal');
  t.deepEqual(h.cores[0]!.members, [0]);
  t.is(h.cores[1]!.status().role, 'learner', 'then stepped down');
  t.false(h.timers[1]!.has('election'));
  h.elect(0);
  t.is(h.leader(), 0);
  t.is(h.cores[0]!.knownCommitIndex, 4);
});

test('a configuration entry that is truncated away gives way to the previous configuration', (t) => {
  const h = new Harness(3);
  const config: RaftEntry = { type: 'config', term: 1, timestamp: 1, members: [0, 1] };
  h.send(0, 2, { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [config], leaderCommit: 0, round: 0 });
  t.deepEqual(h.cores[2]!.members, [0, 1]);
  t.is(h.cores[2]!.status().role, 'learner');
  h.send(1, 2, { type: 'append-entries', term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [{ type: 'noop', term: 2, timestamp: 2 }], leaderCommit: 0, round: 0 });
  t.deepEqual(h.cores[2]!.members, [0, 1, 2]);
  t.is(h.cores[2]!.status().role, 'follower');
});

test('corrupted durable state is a typed CORRUPT_STATE error', (t) => {
  /** A stored state at `position` whose digest is all zeros: no state has it. */
  const stored = (position: number, snapshot: Uint8Array): ArchivedSnapshot => ({ position, digest: new Uint8Array(32), snapshot });
  const build = (durable: Map<string, unknown>): RaftCore =>
    new RaftCore({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable });
  t.notThrows(() => build(durableWith(3, [1, 2, 3], 1)));
  const cases: [string, Map<string, unknown>][] = [
    ['vote from a later term', new Map<string, unknown>([['raft/term', 1], ['raft/vote', { term: 2, node: 1 }]])],
    ['vote for a non-member', new Map<string, unknown>([['raft/term', 1], ['raft/vote', { term: 1, node: 7 }]])],
    ['term is not a number', new Map<string, unknown>([['raft/term', 'three']])],
    ['entry from a later term', durableWith(2, [1, 3])],
    ['terms decrease along the log', durableWith(3, [2, 1])],
    ['gap in the log', ((d) => (d.delete('raft/log/2'), d))(durableWith(3, [1, 1, 1]))],
    ['malformed entry', ((d) => (d.set('raft/log/2', { type: 'noop', term: 1 }), d))(durableWith(3, [1, 1]))],
    ['unknown key', ((d) => (d.set('raft/log/x', 1), d))(durableWith(3, [1]))],
    ['snapshot of a later term', new Map<string, unknown>([['raft/term', 1], ['raft/snapshot', { index: 3, term: 2, members: [0, 1, 2], timestamp: 0 }], [archivedSnapshotKey(3), stored(3, new Uint8Array())]])],
    ['snapshot with bytes it cannot restore', new Map<string, unknown>([['raft/term', 2], ['raft/snapshot', { index: 3, term: 2, members: [0, 1, 2], timestamp: 0 }], [archivedSnapshotKey(3), stored(3, new Uint8Array([1, 2, 3]))]])],
    ['snapshot with the bytes of another state', new Map<string, unknown>([['raft/term', 2], ['raft/snapshot', { index: 3, term: 2, members: [0, 1, 2], timestamp: 0 }], [archivedSnapshotKey(3), stored(3, new ReplicatedState(new KvStateMachine()).snapshot())]])],
    ['configuration naming a non-member', ((d) => (d.set('raft/log/2', { type: 'config', term: 1, timestamp: 0, members: [0, 5] }), d))(durableWith(3, [1]))],
  ];
  const messages: Record<string, RegExp> = {
    'snapshot of a later term': /snapshot at 3 of term 2 \(current term 1\)/,
    'snapshot with bytes it cannot restore': /snapshot at position 3 does not restore/,
    'snapshot with the bytes of another state': /snapshot at position 3 does not restore to its digest/,
  };
  for (const [name, durable] of cases) {
    const error = t.throws(() => build(durable), { instanceOf: ConsensusError }, name);
    t.is(error?.code, 'CORRUPT_STATE', name);
    const message = messages[name];
    if (message !== undefined) t.regex(error?.message ?? '', message, name);
  }
});

test('malformed messages are rejected by the schema', (t) => {
  const good = { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [{ type: 'noop', term: 1, timestamp: 0 }], leaderCommit: 0, round: 0 };
  t.notThrows(() => raftMessageSchema.parse(structuredClone(good)));
  const bad: unknown[] = [
    { ...good, term: -1 },
    { ...good, term: 1.5 },
    { ...good, extra: true },
    { ...good, entries: [{ type: 'noop', term: 1 }] },
    { ...good, entries: [{ type: 'config', term: 1, timestamp: 0, members: 'all' }] },
    { type: 'request-vote', term: 1, lastLogIndex: 0 },
    { type: 'install-snapshot', term: 1, lastIncludedIndex: 1, lastIncludedTerm: 1, members: [0], timestamp: 0, data: 'bytes', round: 0 },
    { type: 'timeout-now', term: 1 },
    null,
  ];
  for (const value of bad) t.throws(() => raftMessageSchema.parse(value), { instanceOf: SchemaError });
});

test('the protocol definition: no nested signatures, proposals are AppendEntries with entries, no conflicting variants', (t) => {
  const def = raft();
  t.is(def.algorithm, 'raft');
  const heartbeat: RaftMessage = { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, round: 0 };
  const proposal: RaftMessage = { ...heartbeat, entries: [{ type: 'noop', term: 1, timestamp: 0 }] };
  t.false(def.adversary.isProposal(heartbeat));
  t.true(def.adversary.isProposal(proposal));
  t.is(def.adversary.conflicting(proposal, 1), undefined);
  t.deepEqual(def.nested(proposal), []);
  t.throws(() => def.create({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'pbft', f: 0 }), stateMachine: new KvStateMachine(), durable: new Map() }), { instanceOf: ConsensusError });
  t.throws(() => raft({ initialMembers: [0, 9] }).create({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map() }), { instanceOf: ConsensusError });
  t.throws(() => raft({ heartbeatMs: 500 }).create({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map() }), { instanceOf: ConsensusError });
});

test('a retried command is appended once and a retry of an executed one is answered from the client table', (t) => {
  const h = new Harness(3);
  h.elect(0);
  const cmd = put('once');
  h.commit(0, [cmd, cmd]);
  t.is(h.cores[0]!.lastLogIndex, 2, 'one no-op and one command');
  const retry = h.step(1, { kind: 'request', command: cmd });
  t.is(retry.replies.length, 1);
  t.like(retry.replies[0], { client: cmd.client, timestamp: cmd.timestamp, position: 2, view: 1 });
});

test('ReadIndex: a reply to a request of an earlier term confirms no read of a later one, though rounds restart with each leadership', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.beat(0);
  t.true(h.cores[0]!.readIndex('term-1'));
  h.flush(0);
  h.deliverAll();
  // Node 0's heartbeat of term 1, round 1, to node 2 is held up in the network.
  h.fire(0, 'heartbeat');
  const stale = h.take((m) => m.to === 2 && m.body.type === 'append-entries');
  t.like(stale?.body, { term: 1, round: 1 });
  h.deliverAll();
  // Node 1 leads term 2 while node 0 is cut off (node 2's timer fires first, so it grants pre-votes).
  h.cut.add(0);
  h.fire(2, 'election');
  h.deliverAll();
  h.elect(1);
  h.beat(1);
  // Node 0 rejoins and follows node 1; then node 1 is cut off and node 0 leads term 3.
  h.cut.delete(0);
  h.beat(1);
  h.cut.add(1);
  h.fire(2, 'election');
  h.deliverAll();
  h.elect(0);
  h.beat(0);
  t.is(h.cores[0]!.term, 3);
  t.is(h.leader(), undefined, 'node 1 still believes it leads term 2');
  // The term-1 heartbeat reaches node 2 at last; node 2 (term 3) rejects it, and that reply is held up too.
  h.send(0, 2, stale!.body);
  const reply = h.take((m) => m.from === 2 && m.to === 0);
  t.like(reply?.body, { type: 'append-entries-reply', term: 3, requestTerm: 1, round: 1, success: false });
  // Nodes 1 and 2 move on to term 4 without node 0 and commit W.
  h.cut.delete(1);
  h.cut.add(0);
  h.beat(1);
  h.elect(2);
  h.commit(2, [put('W', 'new')], [2]);
  t.is(h.cores[2]!.term, 4);
  const committedW = h.cores[2]!.knownCommitIndex;
  // Node 0 still leads term 3 in its own eyes; a read there must not be confirmed by the old reply.
  t.true(h.cores[0]!.readIndex('after-W'));
  h.flush(0);
  h.send(2, 0, reply!.body);
  t.deepEqual(
    h.reads[0]!.filter((r) => r.id === 'after-W'),
    [],
    `a read released at ${h.cores[0]!.knownCommitIndex} would miss W, committed at ${committedW} in term 4`,
  );
});

test('ReadIndex: reads pending when the leader steps down are dropped, and a deposed leader accepts none', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.beat(0);
  t.true(h.cores[0]!.readIndex('pending'));
  h.flush(0);
  const round = h.inflight.splice(0);
  // A reply from a later term deposes the leader before any acknowledgement of the read's round.
  h.send(1, 0, { type: 'append-entries-reply', term: 5, requestTerm: 1, prevLogIndex: 1, round: 1, success: false, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, commitIndex: 1 });
  t.is(h.cores[0]!.status().role, 'follower');
  t.is(h.cores[0]!.term, 5);
  for (const m of round) h.send(m.from, m.to, m.body);
  h.deliverAll();
  t.deepEqual(h.reads[0], [], 'the read is never released: the host must fail it when the term or role changes');
  t.false(h.cores[0]!.readIndex('after'), 'a follower refuses reads');
});

test('pre-vote: a stale log is refused, an up-to-date one granted, and neither changes anything durable (§5.4.1, thesis §9.6)', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(2, [1, 2]), durableWith(2, [1, 2, 2]), durableWith(2, [1])]);
  const shorter = h.send(0, 1, { type: 'pre-vote', term: 3, lastLogIndex: 2, lastLogTerm: 2, attempt: 1 });
  t.deepEqual(sent(shorter, 'pre-vote-reply'), [{ type: 'pre-vote-reply', term: 2, granted: false, attempt: 1 }], 'same last term, shorter log');
  const older = h.send(2, 1, { type: 'pre-vote', term: 3, lastLogIndex: 9, lastLogTerm: 1, attempt: 4 });
  t.deepEqual(sent(older, 'pre-vote-reply'), [{ type: 'pre-vote-reply', term: 2, granted: false, attempt: 4 }], 'longer log, older last term');
  const upToDate = h.send(0, 1, { type: 'pre-vote', term: 3, lastLogIndex: 3, lastLogTerm: 2, attempt: 2 });
  t.deepEqual(sent(upToDate, 'pre-vote-reply'), [{ type: 'pre-vote-reply', term: 3, granted: true, attempt: 2 }]);
  t.deepEqual([...shorter.persist, ...older.persist, ...upToDate.persist], []);
  t.is(h.cores[1]!.term, 2);
  t.is(h.cores[1]!.votedFor, null);
});

test('pre-vote: a grant answering an earlier pre-vote of the same term is not counted', (t) => {
  const h = new Harness(3);
  h.fire(0, 'election');
  h.deliverOne((m) => m.to === 1 && m.body.type === 'pre-vote');
  const late = h.take((m) => m.body.type === 'pre-vote-reply');
  t.like(late?.body, { granted: true, attempt: 1 });
  h.inflight.length = 0;
  h.fire(0, 'election');
  t.is(h.cores[0]!.status().role, 'pre-candidate');
  h.send(late!.from, 0, late!.body);
  t.is(h.cores[0]!.status().role, 'pre-candidate', 'a majority with the late grant, but it answered attempt 1 and this is attempt 2');
  t.is(h.cores[0]!.term, 0);
  h.deliverOne((m) => m.to === 1 && m.body.type === 'pre-vote');
  h.deliverOne((m) => m.body.type === 'pre-vote-reply');
  t.is(h.cores[0]!.status().role, 'candidate', 'a grant of this attempt counts');
  t.is(h.cores[0]!.term, 1);
});

test('pre-vote: a pre-candidate refused by a server of a later term adopts that term (etcd behaviour)', (t) => {
  const h = new Harness(3);
  h.fire(0, 'election');
  const refusal = h.send(1, 0, { type: 'pre-vote-reply', term: 5, granted: false, attempt: 1 });
  t.deepEqual(refusal.persist, [{ key: 'raft/term', value: 5 }]);
  t.is(h.cores[0]!.status().role, 'follower');
  t.is(h.cores[0]!.status().leader, null);
  t.is(h.cores[0]!.votedFor, null);
});

test('check-quorum: a leader that hears from no majority for an election timeout steps down; one that hears from a majority stays (thesis §6.2)', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.beat(0);
  h.cut.add(2);
  for (let i = 0; i < 24; i++) h.beat(0);
  t.is(h.cores[0]!.status().role, 'leader', 'one follower and itself are a majority of three');
  h.cut.add(1);
  const roles: string[] = [];
  for (let i = 0; i < 12; i++) {
    h.beat(0);
    roles.push(h.cores[0]!.status().role);
  }
  // An election timeout is 6 heartbeats; the period running when node 1 was cut had heard from it.
  const steppedDownAt = roles.indexOf('follower') + 1;
  t.true(steppedDownAt > 6 && steppedDownAt <= 12, `stepped down after ${steppedDownAt} heartbeats without a majority`);
  t.is(h.cores[0]!.status().leader, null);
  t.is(h.cores[0]!.term, 1, 'stepping down changes no term');
  t.true(h.timers[0]!.has('election'));
  t.false(h.timers[0]!.has('heartbeat'));
});

test('AppendEntries receiver rule 5: a follower commits up to min(leaderCommit, its last new entry), not past what the request vouches for (Figure 2)', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(2, [1]), durableWith(2, [1, 1, 1, 1]), durableWith(2, [1])]);
  const heartbeat = h.send(0, 1, { type: 'append-entries', term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommit: 3, round: 0 });
  t.like(sent(heartbeat, 'append-entries-reply')[0], { success: true, matchIndex: 1, commitIndex: 1 });
  t.is(h.cores[1]!.knownCommitIndex, 1, 'entries 2–4 of term 1 may differ from the leader’s entries 2–3');
  const entry: RaftEntry = { type: 'noop', term: 2, timestamp: 9 };
  h.send(0, 1, { type: 'append-entries', term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [entry], leaderCommit: 3, round: 0 });
  t.is(h.cores[1]!.lastLogIndex, 2, 'the conflicting entries were truncated');
  t.is(h.cores[1]!.knownCommitIndex, 2);
});

test('a lost AppendEntries under pipelining costs one resend, not one per request that followed it', (t) => {
  const h = new Harness(3, { maxInflightAppends: 64 });
  h.elect(0);
  h.beat(0);
  for (let i = 0; i < 20; i++) h.request(put(`p${i}`), [0]);
  t.truthy(h.take((m) => m.to === 2 && m.body.type === 'append-entries'), 'the first pipelined request to node 2 is lost');
  const delivered = h.deliverAll();
  const toNode2 = delivered.filter((m) => m.to === 2 && m.body.type === 'append-entries');
  const carried = toNode2.reduce((sum, m) => sum + (m.body.type === 'append-entries' ? m.body.entries.length : 0), 0);
  t.is(h.cores[2]!.lastLogIndex, 21);
  t.true(carried <= 19 + 20, `${carried} entries sent to carry 20 (19 delivered, then one resend)`);
  const rejections = delivered.filter((m) => m.from === 2 && m.body.type === 'append-entries-reply' && !m.body.success);
  t.is(rejections.length, 19, 'every request after the lost one is rejected…');
  t.is(toNode2.length, 20, '…but only the first rejection rewinds and resends; the others are older than that rewind');
});

test('flow control: at most maxInflightAppends requests in flight per follower; commands proposed meanwhile leave together as one entry; a heartbeat frees the window', (t) => {
  const h = new Harness(3, { maxInflightAppends: 2 });
  h.elect(0);
  h.beat(0);
  const toNode1 = (): Envelope[] => h.inflight.filter((m) => m.to === 1 && m.body.type === 'append-entries');
  for (let i = 0; i < 10; i++) h.request(put(`w${i}`), [0]);
  t.is(toNode1().length, 2, 'two requests in flight, the other eight commands wait');
  h.deliverOne((m) => m.to === 1 && m.body.type === 'append-entries');
  h.deliverOne((m) => m.from === 1 && m.body.type === 'append-entries-reply');
  const next = toNode1();
  t.is(next.length, 2, 'an acknowledgement frees one place…');
  const last = next.at(-1)?.body;
  const entries = last?.type === 'append-entries' ? last.entries : [];
  t.is(entries.length, 1, '…and what waited leaves in one request…');
  t.is(entries[0]?.type === 'commands' ? entries[0].commands.length : 0, 8, '…as one entry of the eight commands');
  // Both requests in flight are lost: the window stays full until a heartbeat frees it.
  h.inflight.splice(0, h.inflight.length, ...h.inflight.filter((m) => !(m.to === 1 && m.body.type === 'append-entries')));
  h.request(put('stuck'), [0]);
  t.is(toNode1().length, 0, 'nothing goes while the window is full');
  h.beat(0);
  h.beat(0);
  t.is(h.cores[1]!.lastLogIndex, h.cores[0]!.lastLogIndex, 'after a heartbeat the follower catches up');
  t.is(h.cores[0]!.knownCommitIndex, h.cores[0]!.lastLogIndex);
});

test('commands that waited are split into entries of at most maxCommandsPerEntry and maxBytesPerMessage, executed in order, one state hash each', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1, maxCommandsPerEntry: 3 });
  h.elect(0);
  h.beat(0);
  const before = h.cores[0]!.lastLogIndex;
  for (let i = 0; i < 9; i++) h.request(put(`b${i}`), [0]);
  h.beat(0);
  h.beat(0);
  const entries = Array.from({ length: h.cores[0]!.lastLogIndex - before }, (_, k) => h.durable[0]!.get(`raft/log/${before + 1 + k}`) as RaftEntry | undefined);
  t.deepEqual(
    entries.map((e) => (e?.type === 'commands' ? e.commands.length : 0)),
    [1, 3, 3, 2],
    'the first goes at once, the eight that waited behind it in entries of three',
  );
  t.deepEqual(
    entries.flatMap((e) => (e?.type === 'commands' ? e.commands.map((c) => c.timestamp) : [])),
    [...entries.flatMap((e) => (e?.type === 'commands' ? e.commands.map((c) => c.timestamp) : []))].sort((a, b) => a - b),
    'in the order they arrived',
  );
  for (const core of h.cores) t.is(core.status().commitIndex, h.cores[0]!.lastLogIndex);
  const positions = h.applied[1]!.flatMap((a) => (a.kind === 'entry' && a.position > before ? [a] : []));
  t.deepEqual(positions.map((p) => p.commands.length), [1, 3, 3, 2], 'one execution report per entry');
  t.true(positions.every((p, i) => i === 0 || hex(p.stateHashBefore) === hex(positions[i - 1]!.stateHash)), 'state hashes chain from entry to entry');
  // Commands of about 290 bytes each: two would exceed a 500-byte message, so each waits for an entry of its own.
  const small = new Harness(3, { maxInflightAppends: 1, maxCommandsPerEntry: 3, maxBytesPerMessage: 500 });
  small.elect(0);
  small.beat(0);
  const start = small.cores[0]!.lastLogIndex;
  for (let i = 0; i < 4; i++) small.request(put(`big${i}`, 'x'.repeat(200)), [0]);
  small.beat(0);
  small.beat(0);
  t.is(small.cores[0]!.lastLogIndex - start, 4, 'entries stay within maxBytesPerMessage');
  t.is(small.cores[1]!.knownCommitIndex, small.cores[0]!.lastLogIndex);
  for (const maxCommandsPerEntry of [0, 1.5, 5000]) {
    t.is(
      t.throws(() => raft({ maxCommandsPerEntry }).create({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map() }), { instanceOf: ConsensusError })?.code,
      'INVALID_CONFIG',
      `maxCommandsPerEntry ${maxCommandsPerEntry}`,
    );
  }
});

test('a leader that is a majority alone appends and commits at once, whoever else it replicates to', (t) => {
  // A one-member configuration with an unreachable learner catching up: the learner's window is
  // no reason to hold a command, and a command appended at a heartbeat commits there.
  const learner = new Harness(2, { initialMembers: [0] });
  learner.elect(0);
  learner.cut.add(1);
  learner.cores[0]!.proposeAddServer(1);
  learner.flush(0);
  const a = put('alone');
  learner.request(a, [0]);
  learner.fire(0, 'heartbeat');
  t.is(learner.cores[0]!.knownCommitIndex, learner.cores[0]!.lastLogIndex);
  t.true(learner.replies[0]!.some((r) => r.client === a.client && r.timestamp === a.timestamp), 'the client is answered with no further command');
  // A departing server that never answers: the same.
  const departing = new Harness(2);
  departing.elect(0);
  departing.beat(0);
  departing.cores[0]!.proposeRemoveServer(1);
  departing.flush(0);
  departing.deliverAll();
  departing.cut.add(1);
  departing.fire(0, 'heartbeat');
  const b = put('left alone');
  departing.request(b, [0]);
  for (let i = 0; i < 3; i++) departing.fire(0, 'heartbeat');
  t.is(departing.cores[0]!.knownCommitIndex, departing.cores[0]!.lastLogIndex);
  t.true(departing.replies[0]!.some((r) => r.client === b.client && r.timestamp === b.timestamp));
});

test('commands held by a leader that loses its leadership are retried to the next one and executed once', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1 });
  h.elect(0);
  h.beat(0);
  const commands = Array.from({ length: 6 }, (_, i) => put(`held${i}`));
  for (const command of commands) h.request(command, [0]);
  h.depose(0, 1, 2);
  t.is(h.cores[1]!.status().role, 'leader');
  h.cut.delete(0);
  h.beat(1);
  h.commit(1, commands, [0, 1, 2]);
  // One round more, so that executed once below also means not executed again later.
  h.beat(1);
  for (const command of commands) {
    const executions = h.applied[1]!.flatMap((a) => (a.kind === 'entry' ? a.commands.filter((c) => c.client === command.client && c.timestamp === command.timestamp) : []));
    t.is(executions.length, 1, `${command.timestamp} executed once`);
  }
  t.is(h.cores[0]!.status().role, 'follower');
  t.is(h.cores[0]!.status().commitIndex, h.cores[1]!.status().commitIndex, 'the old leader dropped what it held and follows');
  const lastHash = (id: NodeId): string => {
    const entries = h.applied[id]!.filter((a) => a.kind === 'entry');
    const last = entries[entries.length - 1];
    return last?.kind === 'entry' ? hex(last.stateHash) : '';
  };
  t.is(lastHash(0), lastHash(1));
});

/** The commands of each entry node `id` executed after `after`, as keys put. */
function entriesAfter(h: Harness, id: NodeId, after: number): string[][] {
  return h.applied[id]!.flatMap((a) => (a.kind === 'entry' && a.position > after && a.commands.length > 0 ? [a.commands.map((c) => keyOf(c))] : []));
}

function keyOf(command: Command): string {
  return kvOperationSchema.parse(decode(command.payload)).key;
}

test('held commands count against maxUncommittedBytes: past the budget a command is dropped, not held', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1, maxUncommittedBytes: 1000 });
  h.elect(0);
  h.beat(0);
  const before = h.cores[0]!.lastLogIndex;
  // Each command is charged about 290 bytes (see the budgets test): three fit 1000, a fourth does not.
  const big = (k: string): Command => put(k, 'x'.repeat(200));
  const [first, second, third, fourth] = ['h0', 'h1', 'h2', 'h3'].map(big) as [Command, Command, Command, Command];
  h.request(first, [0]);
  h.request(second, [0]);
  h.request(third, [0]);
  t.is(h.cores[0]!.lastLogIndex, before + 1, 'the first is appended, the next two are held behind the full windows');
  h.commit(0, [fourth], [0]);
  t.deepEqual(entriesAfter(h, 1, before), [['h0'], ['h1', 'h2']], 'the fourth was dropped, not held for later');
  h.commit(0, [fourth], [0]);
  t.deepEqual(entriesAfter(h, 1, before), [['h0'], ['h1', 'h2'], ['h3']], 'its retry is taken once the budget has room');
  for (const core of h.cores) t.is(core.status().commitIndex, h.cores[0]!.lastLogIndex);
});

test('one entry may carry two commands of a client and a retry of neither: they execute in order, each answered once', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1 });
  h.elect(0);
  h.beat(0);
  const before = h.cores[0]!.lastLogIndex;
  const gate = put('gate');
  h.request(gate, [0]);
  const older = put('same', 'one', 'pipelining');
  const newer = put('same', 'two', 'pipelining');
  h.commit(0, [older, newer, older, newer], [0]);
  t.deepEqual(entriesAfter(h, 0, before), [['gate'], ['same', 'same']], 'the retries were not held again');
  const entry = h.applied[1]!.find((a) => a.kind === 'entry' && a.commands.length === 2);
  t.deepEqual(entry?.kind === 'entry' ? entry.commands.map((c) => c.timestamp) : [], [older.timestamp, newer.timestamp], 'in the order they arrived');
  const answered = (id: NodeId): number[] => h.replies[id]!.filter((r) => r.client === 'pipelining').map((r) => r.timestamp);
  for (const id of [0, 1, 2]) t.deepEqual(answered(id), [older.timestamp, newer.timestamp], `node ${id} answers each once`);
  const read = h.applied[1]!.at(-1);
  t.is(read?.kind, 'entry');
  const machine = new KvStateMachine();
  for (const command of [gate, older, newer]) machine.apply(command);
  t.is(hex(read?.kind === 'entry' ? read.stateHash : new Uint8Array()), hex(machine.hash()), 'the later value stands');
});

test('a restart replays entries of several commands: the same state hash, and no client answered again', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1, maxCommandsPerEntry: 4 });
  h.elect(0);
  h.beat(0);
  const before = h.cores[0]!.lastLogIndex;
  h.commit(0, Array.from({ length: 9 }, (_, i) => put(`r${i}`)), [0]);
  t.deepEqual(entriesAfter(h, 1, before).map((keys) => keys.length), [1, 4, 4]);
  const lastHash = (id: NodeId): string => {
    const last = h.applied[id]!.filter((a) => a.kind === 'entry').at(-1);
    return last?.kind === 'entry' ? hex(last.stateHash) : '';
  };
  const leaderHash = lastHash(0);
  h.restart(1);
  h.beat(0);
  t.deepEqual(entriesAfter(h, 1, before).map((keys) => keys.length), [1, 4, 4], 'the restarted node executes the same entries again');
  t.is(lastHash(1), leaderHash);
  t.deepEqual(h.replies[1], []);
});

test('while every follower is paused (one window full, one sent a snapshot) commands are held, and leave when the snapshot is acknowledged', (t) => {
  const h = new Harness(3, { snapshotInterval: 5, maxInflightAppends: 1 });
  h.elect(0);
  h.cut.add(2);
  h.submitEach('s', 0, 12, [0]);
  h.cut.delete(2);
  h.fire(0, 'heartbeat');
  h.deliverAll((m) => m.body.type !== 'install-snapshot');
  t.is(h.inflight.filter((m) => m.to === 2 && m.body.type === 'install-snapshot').length, 1, 'node 2 is sent the snapshot');
  h.request(put('fills-1'), [0]);
  t.is(h.inflight.filter((m) => m.to === 1 && m.body.type === 'append-entries').length, 1, "node 1's window of one is full");
  const before = h.cores[0]!.lastLogIndex;
  h.request(put('held-a'), [0]);
  h.request(put('held-b'), [0]);
  t.is(h.cores[0]!.lastLogIndex, before, 'no follower could be sent them: they are held');
  h.cut.add(1);
  h.deliverOne((m) => m.to === 2 && m.body.type === 'install-snapshot');
  t.is(h.cores[0]!.lastLogIndex, before, 'still held until the leader hears the snapshot arrived');
  h.deliverOne((m) => m.from === 2 && m.body.type === 'install-snapshot-reply');
  t.is(h.cores[0]!.lastLogIndex, before + 1, 'the acknowledgement opens node 2: both leave as one entry');
  h.deliverAll();
  t.is(h.cores[0]!.knownCommitIndex, before + 1, 'the leader and node 2 commit it without node 1');
  h.beat(0);
  t.deepEqual(entriesAfter(h, 2, before - 1), [['fills-1'], ['held-a', 'held-b']]);
});

test('a held command larger than maxBytesPerMessage is appended in an entry of its own, and commits', (t) => {
  const h = new Harness(3, { maxInflightAppends: 1, maxBytesPerMessage: 500 });
  h.elect(0);
  h.beat(0);
  const before = h.cores[0]!.lastLogIndex;
  h.commit(0, [put('small-1'), put('large', 'x'.repeat(2000)), put('small-2')], [0]);
  // One round more, so that the entries checked below are all there will be.
  h.beat(0);
  t.deepEqual(entriesAfter(h, 1, before), [['small-1'], ['large'], ['small-2']], 'the large one alone, the next after it');
  const carriers = h.readies[0]!.flatMap((r) => sent(r, 'append-entries')).filter((m) => m.entries.some((e) => e.type === 'commands' && e.commands.some((c) => keyOf(c) === 'large')));
  t.true(carriers.length > 0 && carriers.every((m) => m.entries.length === 1), 'its AppendEntries carries nothing else');
  for (const core of h.cores) t.is(core.status().commitIndex, h.cores[0]!.lastLogIndex);
});

/** What a follower is sent: entries of `sizes` commands (0: a no-op), all committed. */
function committedEntries(sizes: readonly number[]): RaftMessage {
  let key = 0;
  const entries = sizes.map((size, i): RaftEntry =>
    size === 0 ? { type: 'noop', term: 1, timestamp: i } : { type: 'commands', term: 1, timestamp: i, commands: Array.from({ length: size }, () => put(`x${key++}`)) },
  );
  return { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries, leaderCommit: entries.length, round: 0 };
}

test('with an execution slice, committed entries execute a slice per step, even part of an entry, resumed until done, as at once', (t) => {
  const append = committedEntries([5, 0, 1]);
  const atOnce = new Harness(2).send(0, 1, append);
  const sliced = new Harness(2, { executionSlice: 2 });
  const first = sliced.send(0, 1, append);
  const core = sliced.cores[1]!;
  t.true(core.executionPaused, 'two of five commands executed: paused');
  t.is(first.applied.length + first.replies.length, 0, 'nothing is reported of an entry half executed');
  t.is(core.status().commitIndex, 0);
  t.is(core.knownCommitIndex, 3);
  t.deepEqual(sent(first, 'append-entries-reply'), sent(atOnce, 'append-entries-reply'), 'the leader hears the same: stored and known committed');
  const outputs: Ready<RaftMessage>[] = [];
  while (core.executionPaused) outputs.push(sliced.step(1, { kind: 'resume' }));
  t.is(outputs.length, 2, '2 + 2 commands, then the last of the entry, the no-op and the last entry');
  t.deepEqual(outputs.flatMap((ready) => ready.applied), atOnce.applied, 'the same execution: responses and state hashes');
  t.deepEqual(outputs.flatMap((ready) => ready.replies), atOnce.replies);
  t.is(core.status().commitIndex, 3);
  t.deepEqual(sliced.step(1, { kind: 'resume' }).applied, [], 'resume with nothing paused does nothing');
});

test('Raft: any input other than resume while execution is paused executes the committed entries first; snapshots wait for a whole entry', (t) => {
  const h = new Harness(2, { executionSlice: 3, snapshotInterval: 1 });
  h.send(0, 1, committedEntries([2, 3, 1]));
  t.true(h.cores[1]!.executionPaused);
  t.is(h.cores[1]!.status().commitIndex, 1, 'the first entry and one command of the second executed');
  t.is(h.cores[1]!.snapshotIndex, 0, 'no snapshot at 1: the state holds a command of entry 2 as well');
  const ready = h.fire(1, 'election');
  t.false(h.cores[1]!.executionPaused);
  t.is(ready.applied.length, 2, 'the other entries were executed before the timer was handled');
  t.is(h.cores[1]!.snapshotIndex, 3);
  t.is(t.throws(() => raft({ executionSlice: 0 }).create({ config: consensusConfig({ nodeId: 0, n: 3, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map() }), { instanceOf: ConsensusError })?.code, 'INVALID_CONFIG');
});

test('a ReadIndex read is released only once the state reached its index (thesis §6.4 step 4), executed in slices', (t) => {
  const first = new Harness(1);
  first.elect(0);
  for (let i = 0; i < 4; i++) first.request(put(`r${i}`));
  // Restarted, the lone server commits its log again with its new term's no-op and executes it a command per step.
  const h = new Harness(1, { executionSlice: 1 }, undefined, first.durable);
  h.elect(0);
  t.true(h.cores[0]!.executionPaused);
  t.true(h.cores[0]!.readIndex('read'));
  t.deepEqual(h.flush(0).reads, [], 'confirmed at once (a majority alone), but the state is behind its index');
  const released: ReadState[] = [];
  while (h.cores[0]!.executionPaused) {
    t.deepEqual(released, []);
    released.push(...h.step(0, { kind: 'resume' }).reads);
  }
  t.deepEqual(released, [{ id: 'read', index: h.cores[0]!.knownCommitIndex }]);
});

test('a read confirmed by the acknowledgement that commits an entry is released once that entry has executed whole', (t) => {
  const h = new Harness(3, { executionSlice: 1, maxInflightAppends: 1 });
  h.elect(0);
  const leader = h.cores[0]!;
  h.request(put('a'), [0]);
  for (const key of ['b', 'c', 'd']) h.request(put(key), [0]);
  t.true(leader.readIndex('read'));
  h.flush(0);
  // Node 1 acknowledges entry 2 ([a]); the heartbeat of the read's round to it is lost.
  h.deliverOne((m) => m.to === 1 && m.body.type === 'append-entries' && m.body.entries.length === 1);
  h.deliverOne((m) => m.to === 0);
  t.truthy(h.take((m) => m.to === 1 && m.body.type === 'append-entries' && m.body.entries.length === 0));
  // Entry 3 ([b, c, d]) reaches node 1, sent after the read: its acknowledgement commits it and confirms the round.
  h.deliverOne((m) => m.to === 1 && m.body.type === 'append-entries' && m.body.entries.length === 1);
  h.deliverOne((m) => m.to === 0 && m.from === 1);
  t.true(leader.executionPaused, 'entry 3 executes a command per step');
  t.deepEqual(h.readies[0]!.at(-1)?.reads, [], 'not released while the state holds one command of entry 3');
  const released: ReadState[] = [];
  while (leader.executionPaused) released.push(...h.step(0, { kind: 'resume' }).reads);
  t.deepEqual(released.map((r) => r.id), ['read']);
});

test('a snapshot in flight is not re-sent on heartbeats or proposals, only after the snapshot timeout', (t) => {
  const h = new Harness(3, { snapshotInterval: 5, maxInflightAppends: 64 });
  h.elect(0);
  h.cut.add(2);
  h.submitEach('s', 0, 12, [0]);
  h.beat(0);
  h.cut.delete(2);
  const inFlight = (): number => h.inflight.filter((m) => m.body.type === 'install-snapshot').length;
  const heartbeatsUntilResent = (): number => {
    for (let k = 1; k <= 100; k++) {
      h.fire(0, 'heartbeat');
      h.deliverAll((m) => m.body.type !== 'install-snapshot');
      if (inFlight() > 1) return k;
    }
    return Infinity;
  };
  h.fire(0, 'heartbeat');
  h.deliverAll((m) => m.body.type !== 'install-snapshot');
  t.is(inFlight(), 1);
  for (let i = 0; i < 5; i++) {
    h.request(put(`more${i}`), [0]);
    h.deliverAll((m) => m.body.type !== 'install-snapshot');
  }
  t.is(inFlight(), 1, 'proposals send node 2 nothing while its snapshot is pending');
  t.is(h.cores[2]!.status().leader, 0, 'heartbeats still reach it, so it does not campaign');
  // The snapshot timeout defaults to the election timeout: 6 heartbeats.
  t.is(heartbeatsUntilResent(), 6);
  h.take((m) => m.body.type === 'install-snapshot');
  t.is(heartbeatsUntilResent(), 6);
  h.deliverAll();
  h.beat(0);
  t.is(h.cores[2]!.status().commitIndex, h.cores[0]!.status().commitIndex, 'once acknowledged, entries follow');
  h.request(put('last'), [0]);
  t.is(h.deliverAll().filter((m) => m.body.type === 'install-snapshot').length, 0);
});

test('a new leader keeps an earlier leader’s command appended once when a client retries it across the change', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.beat(0);
  const cmd = put('dup');
  h.request(cmd, [0]);
  h.deliverOne((m) => m.to === 1 && m.body.type === 'append-entries');
  h.depose(0, 1, 2);
  t.is(h.cores[1]!.status().role, 'leader');
  h.commit(1, [cmd], [1, 2]);
  const executions = h.applied[1]!.filter((a) => a.kind === 'entry' && a.commands.some((c) => c.timestamp === cmd.timestamp));
  t.is(executions.length, 1);
  t.is(h.cores[1]!.lastLogIndex, 3, 'no-op of term 1, the command, no-op of term 2');
  const retry = h.step(2, { kind: 'request', command: cmd });
  // Where the command executed, from the client table, in the term the server is in.
  t.like(retry.replies, [{ client: cmd.client, timestamp: cmd.timestamp, position: 2, view: 2 }]);
});

test('incoming entries, configurations and snapshots that no correct leader sends are dropped unanswered and unstored', (t) => {
  const h = new Harness(3);
  const noop = (term: number): RaftEntry => ({ type: 'noop', term, timestamp: 0 });
  const bad: [string, RaftMessage][] = [
    ['a configuration with no members', { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [{ type: 'config', term: 1, timestamp: 0, members: [] }], leaderCommit: 0, round: 0 }],
    ['a configuration naming a server outside [0, n)', { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [{ type: 'config', term: 1, timestamp: 0, members: [0, 7] }], leaderCommit: 0, round: 0 }],
    ['an entry of term 0', { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [noop(0)], leaderCommit: 0, round: 0 }],
    ['an entry of no commands', { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [{ type: 'commands', term: 1, timestamp: 0, commands: [] }], leaderCommit: 0, round: 0 }],
    ['an entry from a term after the request’s', { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [noop(2)], leaderCommit: 0, round: 0 }],
    ['entries whose terms decrease', { type: 'append-entries', term: 3, prevLogIndex: 0, prevLogTerm: 0, entries: [noop(2), noop(1)], leaderCommit: 0, round: 0 }],
    ['a snapshot with no members', { type: 'install-snapshot', term: 1, lastIncludedIndex: 3, lastIncludedTerm: 1, members: [], timestamp: 0, data: new Uint8Array(), round: 0 }],
    ['a snapshot of term 0', { type: 'install-snapshot', term: 1, lastIncludedIndex: 3, lastIncludedTerm: 0, members: [0, 1, 2], timestamp: 0, data: new Uint8Array(), round: 0 }],
  ];
  for (const [name, body] of bad) {
    const ready = h.send(0, 1, body);
    t.deepEqual([ready.persist, ready.messages], [[], []], name);
  }
  t.is(h.cores[1]!.term, 0);
  t.is(h.cores[1]!.lastLogIndex, 0);
});

test('budgets: a full uncommitted log drops proposals, pending reads are capped, AppendEntries respects its byte budget', (t) => {
  const h = new Harness(3, { maxUncommittedBytes: 1000, maxPendingReads: 2, maxBytesPerMessage: 500, maxInflightAppends: 64 });
  h.elect(0);
  h.beat(0);
  h.cut.add(1);
  h.cut.add(2);
  const big = (k: string): ReturnType<typeof put> => put(k, 'x'.repeat(200));
  for (let i = 0; i < 10; i++) h.request(big(`u${i}`), [0]);
  // Each command is charged about 290 bytes: its ~220-byte payload, its client id and 64 of framing.
  const appended = h.cores[0]!.lastLogIndex - 1;
  t.is(appended, 3, 'three commands fit 1000 uncommitted bytes, a fourth would not');
  t.true(h.cores[0]!.readIndex('r1'));
  t.true(h.cores[0]!.readIndex('r2'));
  t.false(h.cores[0]!.readIndex('r3'), 'a third pending read is refused');
  h.flush(0);
  h.inflight.length = 0;
  h.cut.clear();
  h.fire(0, 'heartbeat');
  // The followers reject a heartbeat past their logs' ends, and the leader resends from there.
  const batches = h.deliverAll().flatMap((m) => (m.body.type === 'append-entries' && m.body.entries.length > 0 ? [m.body.entries.length] : []));
  t.deepEqual(batches, [1, 1, 1, 1, 1, 1], 'one command per message for each follower: two would exceed 500 bytes');
  h.beat(0);
  t.is(h.cores[0]!.knownCommitIndex, h.cores[0]!.lastLogIndex);
  h.request(big('after'), [0]);
  t.is(h.cores[0]!.lastLogIndex, appended + 2, 'once committed, the budget takes proposals again');
  t.deepEqual(h.reads[0]!.map((r) => r.id), ['r1', 'r2']);
});

test('a restart answers no client for the entries it replays, only for entries new to this incarnation', (t) => {
  const h = new Harness(3);
  h.elect(0);
  h.commit(0, ['a', 'b', 'c'].map((key) => put(key)), [0]);
  t.is(h.replies[1]!.length, 3);
  h.restart(1);
  h.beat(0);
  t.is(h.cores[1]!.status().commitIndex, 4, 'the log is executed again…');
  t.deepEqual(h.replies[1], [], '…but its commands were answered by the previous incarnation');
  const fresh = put('d');
  h.commit(0, [fresh], [0]);
  t.like(h.replies[1], [{ timestamp: fresh.timestamp, position: 5 }]);
});

test('Progress (etcd flow control): a probe at a time, pipelining once matched, stale rejections ignored, snapshots paused', (t) => {
  const p = new Progress(11);
  t.is(p.state, 'probe');
  p.sentEntries(12);
  t.true(p.paused, 'one probe in flight');
  t.false(p.rejected(15, 13), 'a rejection of another request than the probe changes nothing');
  t.true(p.rejected(10, 8));
  t.is(p.next, 8);
  t.false(p.paused);
  p.sentEntries(9);
  p.acknowledged(9);
  t.is(p.state, 'replicate');
  t.is(p.next, 10);
  p.sentEntries(12);
  p.sentEntries(14);
  t.false(p.paused, 'pipelined');
  t.is(p.next, 15);
  t.false(p.rejected(9, 5), 'a rejection at or below the match index is stale');
  t.true(p.rejected(12, 10));
  t.is(p.state, 'probe');
  t.is(p.next, 10, 'never below match + 1');
  p.sentSnapshot(30);
  t.true(p.paused);
  p.acknowledged(20);
  t.is(p.state, 'snapshot', 'an acknowledgement short of the snapshot leaves it pending');
  for (let i = 0; i < 3; i++) p.tick(3);
  t.is(p.state, 'probe', 'given up after the timeout');
  t.is(p.next, 21);
  p.sentSnapshot(30);
  p.acknowledged(30);
  t.is(p.state, 'replicate');
  t.is(p.next, 31);
});

test('a command older than its client\'s last, committed after it, is not answered: its client was answered for its one execution', (t) => {
  const h = new Harness(3);
  h.elect(0);
  const older = put('older', 'v', 'late');
  const newer = put('newer', 'v', 'late');
  h.commit(0, [newer, older]);
  t.is(h.cores[0]!.lastLogIndex, 3, 'one no-op and both commands, the newer first');
  for (const replies of h.replies) t.deepEqual(replies.filter((r) => r.client === 'late').map((r) => r.timestamp), [newer.timestamp]);
});
