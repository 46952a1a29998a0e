/**
 * Raft membership (thesis §4): the pure helpers in membership.ts, and single-server changes as a
 * leader carries them out — when a change may start, a new server's catch-up, and removed servers
 * learning that their removal committed.
 */
import test from 'ava';
import { RaftLog } from '../protocols/raft/log.js';
import { CatchUp, configurationsAt, majorityMatch } from '../protocols/raft/membership.js';
import type { RaftEntry } from '../protocols/raft/index.js';
import { Harness, put } from './helpers/raft.js';

test('majorityMatch: the highest index a majority of the members holds', (t) => {
  const matches = new Map([[0, 5], [1, 3], [2, 9], [3, 4]]);
  const of = (id: number): number => matches.get(id) ?? 0;
  t.is(majorityMatch([0, 1, 2], of), 5, '5 and 9 are two of three');
  t.is(majorityMatch([0, 1, 2, 3], of), 4, 'three of four hold 4 (5, 9 and 4)');
  t.is(majorityMatch([1], of), 3, 'a single member is its own majority');
  t.is(majorityMatch([0, 1, 2, 7], of), 3, 'a member never heard from holds 0');
});

test('configurationsAt: the latest configuration up to an index and the one before it, never reading below the base', (t) => {
  const noop: RaftEntry = { type: 'noop', term: 1, timestamp: 0 };
  const config = (members: number[]): RaftEntry => ({ type: 'config', term: 1, timestamp: 0, members });
  const log = new RaftLog(0, 0, [noop, config([0, 1]), noop, config([0, 1, 2, 3]), noop]);
  const initial = { members: [0, 1, 2], index: 0 };
  t.deepEqual(configurationsAt(log, initial), { current: { members: [0, 1, 2, 3], index: 4 }, previous: { members: [0, 1], index: 2 } });
  t.deepEqual(configurationsAt(log, initial, 3), { current: { members: [0, 1], index: 2 }, previous: initial });
  t.deepEqual(configurationsAt(log, initial, 1), { current: initial, previous: undefined });
  // A snapshot at 3 (its configuration [0, 1]) with entries 1–3 kept as a trailing window.
  const snapshotBase = { members: [0, 1], index: 3 };
  t.deepEqual(configurationsAt(log, snapshotBase, 3), { current: snapshotBase, previous: undefined }, 'the entry at 2 is superseded by the base');
  t.deepEqual(configurationsAt(log, snapshotBase), { current: { members: [0, 1, 2, 3], index: 4 }, previous: snapshotBase });
});

test('CatchUp: caught up once a round takes at most an election timeout, abandoned after its rounds (thesis §4.2.1)', (t) => {
  const quick = new CatchUp(3, 10, 6, 3);
  t.is(quick.progress(5, 10), 'waiting', 'the first round ends at the leader’s last index when it began');
  quick.tick();
  quick.tick();
  t.is(quick.progress(10, 12), 'caught-up', 'the round took 2 heartbeats ≤ 6');

  const slow = new CatchUp(3, 10, 6, 3);
  const ticks = (k: number): boolean[] => Array.from({ length: k }, () => slow.tick());
  ticks(7);
  t.is(slow.progress(10, 20), 'waiting', 'round 1 took 7 heartbeats: round 2 replicates up to 20');
  ticks(7);
  t.is(slow.progress(20, 30), 'waiting');
  t.deepEqual(ticks(7), [true, true, true, true, false, false, false], 'no catch-up lasts longer than its rounds’ worth of election timeouts (18 heartbeats)');
  t.is(slow.progress(30, 40), 'abandoned', 'the last round was slow too');

  const caughtUpToTheEnd = new CatchUp(3, 10, 6, 3);
  for (let i = 0; i < 10; i++) caughtUpToTheEnd.tick();
  t.is(caughtUpToTheEnd.progress(10, 10), 'caught-up', 'a slow round that reached the leader’s end still completes');
});

test('a new leader changes membership only after committing an entry of its term (the single-server change fix)', (t) => {
  const h = new Harness(4, { initialMembers: [0, 1, 2] });
  h.fire(0, 'election');
  h.deliverAll((m) => m.body.type !== 'append-entries');
  t.is(h.cores[0]!.status().role, 'leader');
  t.is(h.cores[0]!.knownCommitIndex, 0, 'its no-op is not committed yet');
  t.false(h.cores[0]!.proposeAddServer(3));
  t.false(h.cores[0]!.proposeRemoveServer(2));
  h.deliverAll();
  t.is(h.cores[0]!.knownCommitIndex, 1);
  t.true(h.cores[0]!.proposeRemoveServer(2));
});

test('a removed follower learns that its removal committed and stops campaigning', (t) => {
  const h = new Harness(4);
  h.elect(0);
  h.commit(0, [put('x')], [0]);
  t.true(h.cores[0]!.proposeRemoveServer(3));
  h.flush(0);
  h.deliverAll();
  h.beat(0);
  const removal = h.cores[0]!.lastLogIndex;
  t.deepEqual(h.cores[3]!.members, [0, 1, 2]);
  t.is(h.cores[3]!.knownCommitIndex, removal, 'the leader kept telling it until it had committed the removal');
  t.false(h.timers[3]!.has('election'));
  t.is(h.cores[3]!.status().role, 'learner');
  t.deepEqual(h.fire(3, 'election').messages, [], 'a stray timer firing does not make it campaign');
  h.fire(0, 'heartbeat');
  t.false(h.inflight.some((m) => m.to === 3), 'the leader no longer sends to it');
});

test('a new leader tells the servers its latest configuration removed, if its predecessor had not', (t) => {
  const h = new Harness(4);
  h.elect(0);
  h.beat(0);
  t.true(h.cores[0]!.proposeRemoveServer(3));
  h.flush(0);
  const removal = h.cores[0]!.lastLogIndex;
  // Node 3 stores the configuration but hears nothing more; the others commit it.
  h.deliverOne((m) => m.to === 3 && m.body.type === 'append-entries');
  h.cut.add(3);
  h.deliverAll();
  h.beat(0);
  t.true(h.timers[3]!.has('election'), 'node 3 holds the removal uncommitted: it may be needed, so it may campaign');
  // Node 0 crashes before telling node 3; node 1 leads term 2.
  h.cut.add(0);
  h.cut.delete(3);
  h.inflight.length = 0;
  h.fire(2, 'election');
  h.deliverAll();
  h.elect(1);
  t.is(h.cores[1]!.status().role, 'leader');
  h.beat(1);
  t.is(h.cores[3]!.knownCommitIndex, removal);
  t.false(h.timers[3]!.has('election'), 'node 1 told it, though the removal committed in node 0’s term');
  h.fire(1, 'heartbeat');
  t.false(h.inflight.some((m) => m.to === 3), 'and, once it knows, tells it no more');
});

test('a removed server that never answers is told for catchUpRounds election timeouts, then no more', (t) => {
  const h = new Harness(4, { catchUpRounds: 2 });
  h.elect(0);
  h.beat(0);
  h.cut.add(3);
  t.true(h.cores[0]!.proposeRemoveServer(3));
  h.flush(0);
  h.deliverAll();
  const toRemoved = (): boolean => h.fire(0, 'heartbeat').messages.some((m) => m.to.includes(3));
  const heartbeats: boolean[] = [];
  for (let i = 0; i < 14; i++) {
    heartbeats.push(toRemoved());
    h.deliverAll();
  }
  // Two catch-up rounds’ worth of election timeouts: 2 × 6 heartbeats.
  t.deepEqual(heartbeats, [...Array.from({ length: 11 }, () => true), false, false, false]);
});

test('an abandoned catch-up ends without a configuration change, which catchingUp shows', (t) => {
  const h = new Harness(4, { initialMembers: [0, 1, 2], catchUpRounds: 1 });
  h.elect(0);
  h.beat(0);
  h.cut.add(3);
  t.true(h.cores[0]!.proposeAddServer(3));
  h.flush(0);
  t.is(h.cores[0]!.catchingUp, 3);
  t.false(h.cores[0]!.proposeRemoveServer(2), 'one change at a time, a catch-up included');
  for (let i = 0; i < 6; i++) h.beat(0);
  t.is(h.cores[0]!.catchingUp, 3, 'one round’s election timeout of 6 heartbeats');
  h.beat(0);
  t.is(h.cores[0]!.catchingUp, undefined, 'abandoned, with no output: proposeAddServer returned long ago');
  t.deepEqual(h.cores[0]!.members, [0, 1, 2]);
  t.true(h.cores[0]!.proposeAddServer(3), 'another change may start');
});
