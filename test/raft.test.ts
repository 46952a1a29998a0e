/**
 * Unit tests of the Raft core, driving `step`/`ready` by hand: a small in-test harness delivers
 * messages and fires timers explicitly, so each test stages exactly the situation a rule is about.
 */
import test from 'ava';
import { SchemaError } from '../schema/errors.js';
import { command, consensusConfig, decode, encode, hex, KvStateMachine, kvPayload, ConsensusError, type Applied, type Command, type NodeId, type ReadState, type Ready, type Signed } from '../protocols/consensus/index.js';
import { RaftCore, raft, raftMessageSchema, type RaftEntry, type RaftMessage, type RaftOptions } from '../protocols/raft/index.js';

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly body: RaftMessage;
}

type CoreFactory = (options: ConstructorParameters<typeof RaftCore>[0], raftOptions: RaftOptions) => RaftCore;

/**
 * n cores, a FIFO of messages in flight, durable maps that persist ops are written to (through
 * msgpack, as a real store would), and per-node records of timers, applied steps, reads and replies.
 */
class Harness {
  readonly cores: RaftCore[];
  readonly durable: Map<string, unknown>[];
  readonly inflight: Envelope[] = [];
  readonly timers: Set<string>[];
  readonly applied: Applied[][];
  readonly reads: ReadState[][];
  readonly readies: Ready<RaftMessage>[][];
  /** Nodes whose messages, in and out, are dropped. */
  readonly cut = new Set<NodeId>();
  readonly #options: (id: NodeId) => RaftOptions;
  readonly #create: CoreFactory;
  #now = 0;

  constructor(n: number, options: RaftOptions | ((id: NodeId) => RaftOptions) = {}, create: CoreFactory = (o, r) => new RaftCore(o, r), durable?: Map<string, unknown>[]) {
    this.#options = typeof options === 'function' ? options : () => options;
    this.#create = create;
    this.durable = durable ?? Array.from({ length: n }, () => new Map());
    this.timers = Array.from({ length: n }, () => new Set());
    this.applied = Array.from({ length: n }, () => []);
    this.reads = Array.from({ length: n }, () => []);
    this.readies = Array.from({ length: n }, () => []);
    this.cores = Array.from({ length: n }, (_, id) => this.#boot(id));
  }

  #boot(id: NodeId): RaftCore {
    const core = this.#create(
      { config: consensusConfig({ nodeId: id, n: this.durable.length, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map(this.durable[id]) },
      this.#options(id),
    );
    this.#collect(id, core);
    return core;
  }

  /** Replaces node `id` with a fresh core built from its durable records (a crash and restart). */
  restart(id: NodeId): RaftCore {
    this.inflight.splice(0, this.inflight.length, ...this.inflight.filter((m) => m.to !== id && m.from !== id));
    this.timers[id]!.clear();
    this.applied[id] = [];
    const core = this.#boot(id);
    this.cores[id] = core;
    return core;
  }

  #collect(id: NodeId, core: RaftCore): Ready<RaftMessage> {
    const ready = core.ready();
    this.readies[id]!.push(ready);
    const durable = this.durable[id]!;
    for (const op of ready.persist) {
      if (op.value === undefined) durable.delete(op.key);
      else durable.set(op.key, decode(encode(op.value)));
    }
    for (const out of ready.messages) {
      for (const to of out.to) if (!this.cut.has(id) && !this.cut.has(to)) this.inflight.push({ from: id, to, body: out.body });
    }
    for (const op of ready.timers) {
      if (op.kind === 'set') this.timers[id]!.add(op.timer);
      else this.timers[id]!.delete(op.timer);
    }
    this.applied[id]!.push(...ready.applied);
    this.reads[id]!.push(...ready.reads);
    return ready;
  }

  /** Steps node `id` with `input` and returns what it asked for. */
  step(id: NodeId, input: Parameters<RaftCore['step']>[0]): Ready<RaftMessage> {
    this.#now += 1;
    this.cores[id]!.step(input, this.#now);
    return this.#collect(id, this.cores[id]!);
  }

  /** Takes the outputs of a direct call on node `id` (a read, a membership change). */
  flush(id: NodeId): Ready<RaftMessage> {
    return this.#collect(id, this.cores[id]!);
  }

  /** Fires a timer on node `id`. */
  fire(id: NodeId, timer: 'election' | 'heartbeat'): Ready<RaftMessage> {
    return this.step(id, { kind: 'timeout', timer });
  }

  /** Delivers one message from outside the FIFO. */
  send(from: NodeId, to: NodeId, body: RaftMessage): Ready<RaftMessage> {
    const signed: Signed<RaftMessage> = { from, body, signature: new Uint8Array(0) };
    return this.step(to, { kind: 'message', message: signed });
  }

  /** Delivers the first in-flight message that matches `match`. */
  deliverOne(match: (m: Envelope) => boolean = () => true): Envelope | undefined {
    const at = this.inflight.findIndex(match);
    if (at < 0) return undefined;
    const [m] = this.inflight.splice(at, 1) as [Envelope];
    if (!this.cut.has(m.to)) this.send(m.from, m.to, m.body);
    return m;
  }

  /** Delivers messages (and those they cause) until none is in flight; returns how many. */
  deliverAll(match: (m: Envelope) => boolean = () => true): Envelope[] {
    const delivered: Envelope[] = [];
    for (let m = this.deliverOne(match); m !== undefined; m = this.deliverOne(match)) {
      delivered.push(m);
      if (delivered.length > 100_000) throw new Error('message storm');
    }
    return delivered;
  }

  /** Submits a client command to every node. */
  request(cmd: Command): void {
    for (let id = 0; id < this.cores.length; id++) this.step(id, { kind: 'request', command: cmd });
  }

  /** Elects `id`: its election timer fires and every message is delivered. */
  elect(id: NodeId): void {
    this.fire(id, 'election');
    this.deliverAll();
  }

  /** The leader, if exactly one node claims to be. */
  leader(): NodeId | undefined {
    const leaders = this.cores.map((c, id) => (c.status().role === 'leader' ? id : -1)).filter((id) => id >= 0);
    return leaders.length === 1 ? leaders[0] : undefined;
  }
}

let nextTimestamp = 0;
function put(key: string, value = `v-${key}`): Command {
  return command('client', ++nextTimestamp, kvPayload({ type: 'put', key, value }));
}

/** Durable records holding `term`, an optional vote, and a log whose entries have `terms`. */
function durableWith(term: number, terms: readonly number[], vote?: NodeId): Map<string, unknown> {
  const durable = new Map<string, unknown>([['raft/term', term]]);
  if (vote !== undefined) durable.set('raft/vote', { term, node: vote });
  terms.forEach((entryTerm, i) => {
    const entry: RaftEntry = { type: 'command', term: entryTerm, timestamp: i, command: command(`c${entryTerm}`, i + 1, kvPayload({ type: 'put', key: `k${i}`, value: `t${entryTerm}` })) };
    durable.set(`raft/log/${i + 1}`, entry);
  });
  return durable;
}

function repliesOf(ready: Ready<RaftMessage>, type: RaftMessage['type']): RaftMessage[] {
  return ready.messages.filter((m) => m.body.type === type).map((m) => m.body);
}

test('a three-server cluster elects one leader, replicates and applies a command everywhere', (t) => {
  const h = new Harness(3);
  t.deepEqual(h.readies[0]![0]!.timers, [{ kind: 'set', timer: 'election', afterMs: 300, jitterMs: 300 }], 'a fresh member arms a randomized election timer (§5.2)');
  h.elect(0);
  t.is(h.leader(), 0);
  t.is(h.cores[0]!.term, 1);
  h.request(put('a'));
  h.deliverAll();
  h.fire(0, 'heartbeat');
  h.deliverAll();
  for (const core of h.cores) t.is(core.status().commitIndex, 2, 'the no-op and the command are applied');
  const replies = h.readies.flat().flatMap((r) => r.replies);
  t.true(replies.length >= 1);
});

test('election restriction: a candidate with a stale log gets no vote (§5.4.1)', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(2, [1, 2, 2]), durableWith(2, [1, 2]), durableWith(2, [1, 1, 1, 1])]);
  const shorter = h.send(1, 0, { type: 'request-vote', term: 3, lastLogIndex: 2, lastLogTerm: 2 });
  t.deepEqual(repliesOf(shorter, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'same last term, shorter log');
  const olderTerm = h.send(2, 0, { type: 'request-vote', term: 3, lastLogIndex: 4, lastLogTerm: 1 });
  t.deepEqual(repliesOf(olderTerm, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'longer log, older last term');
  t.is(h.cores[0]!.votedFor, null);
  t.false(h.durable[0]!.has('raft/vote'));
  const upToDate = h.send(2, 0, { type: 'request-vote', term: 3, lastLogIndex: 3, lastLogTerm: 2 });
  t.deepEqual(repliesOf(upToDate, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: true }]);
  t.is(h.cores[0]!.votedFor, 2);
  const twice = h.send(1, 0, { type: 'request-vote', term: 3, lastLogIndex: 9, lastLogTerm: 3 });
  t.deepEqual(repliesOf(twice, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 3, granted: false }], 'one vote per term');
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
  t.is(repliesOf(rejoin, 'pre-vote').length, 1);
  h.deliverOne((m) => m.body.type === 'pre-vote');
  h.deliverOne((m) => m.body.type === 'pre-vote');
  t.deepEqual(
    h.inflight.filter((m) => m.body.type === 'pre-vote-reply').map((m) => m.body),
    [
      { type: 'pre-vote-reply', term, granted: false },
      { type: 'pre-vote-reply', term, granted: false },
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
  t.is(h.cores[0]!.commitIndex, 42);
});

test('a follower whose log is too short is told where its log ends', (t) => {
  const h = new Harness(3, {}, undefined, [durableWith(1, [1, 1, 1]), durableWith(1, [1]), durableWith(1, [1])]);
  const ready = h.send(0, 1, { type: 'append-entries', term: 1, prevLogIndex: 3, prevLogTerm: 1, entries: [], leaderCommit: 0, round: 0 });
  t.like(repliesOf(ready, 'append-entries-reply')[0], { success: false, conflictTerm: 0, conflictIndex: 2 });
});

/** A leader that commits entries of earlier terms by counting replicas: the Figure 8 bug. */
class CountingRaft extends RaftCore {
  protected override mayCommit(): boolean {
    return true;
  }
}

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
    t.is(h.cores[0]!.commitIndex, commitsEarly ? 2 : 0, `${name}: index 2 is on a majority`);
    h.deliverAll();
    t.is(h.cores[0]!.commitIndex, 3, `${name}: the no-op of term 4 commits, and index 2 with it`);
  }
});

test('persistence before reply: a vote or an acknowledgement leaves in the step that persists what justifies it (§5.1)', (t) => {
  const h = new Harness(3);
  const campaign = h.fire(0, 'election');
  t.deepEqual(campaign.persist, [], 'a pre-vote changes nothing durable');
  const preVote = h.send(1, 0, { type: 'pre-vote-reply', term: 1, granted: true });
  t.deepEqual(preVote.persist, [
    { key: 'raft/term', value: 1 },
    { key: 'raft/vote', value: { term: 1, node: 0 } },
  ]);
  t.is(repliesOf(preVote, 'request-vote').length, 1, 'RequestVote leaves with the persisted term and self-vote');

  const vote = h.send(0, 1, { type: 'request-vote', term: 1, lastLogIndex: 0, lastLogTerm: 0 });
  t.deepEqual(vote.persist, [
    { key: 'raft/term', value: 1 },
    { key: 'raft/vote', value: { term: 1, node: 0 } },
  ]);
  t.deepEqual(repliesOf(vote, 'request-vote-reply'), [{ type: 'request-vote-reply', term: 1, granted: true }]);

  const entry: RaftEntry = { type: 'noop', term: 1, timestamp: 5 };
  const append = h.send(0, 1, { type: 'append-entries', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [entry], leaderCommit: 0, round: 0 });
  t.deepEqual(append.persist, [{ key: 'raft/log/1', value: entry }]);
  t.like(repliesOf(append, 'append-entries-reply')[0], { success: true, matchIndex: 1 });

  const overwrite: RaftEntry = { type: 'noop', term: 2, timestamp: 6 };
  const conflict = h.send(2, 1, { type: 'append-entries', term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [overwrite], leaderCommit: 0, round: 0 });
  t.deepEqual(conflict.persist, [{ key: 'raft/term', value: 2 }, { key: 'raft/log/1' }, { key: 'raft/log/1', value: overwrite }], 'term, truncation and the new entry');
  t.like(repliesOf(conflict, 'append-entries-reply')[0], { term: 2, success: true, matchIndex: 1 });
});

test('restart from the durable map keeps term, vote and log, and replays the committed prefix', (t) => {
  const h = new Harness(3);
  h.elect(0);
  for (const key of ['a', 'b', 'c']) h.request(put(key));
  h.deliverAll();
  h.fire(0, 'heartbeat');
  h.deliverAll();
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
  for (let i = 0; i < 20; i++) {
    h.request(put(`k${i}`));
    h.deliverAll();
  }
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.true(h.cores[0]!.snapshotIndex >= 15, `leader compacted to ${h.cores[0]!.snapshotIndex}`);
  t.false([...h.durable[0]!.keys()].includes('raft/log/1'), 'compacted entries are erased from the durable map');
  t.true(h.durable[0]!.has('raft/snapshot'));
  h.cut.delete(2);
  h.fire(0, 'heartbeat');
  const delivered = h.deliverAll();
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
  t.is(h.cores[0]!.commitIndex, 1);
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
  h.request(put('after'));
  h.deliverAll();
  h.fire(1, 'heartbeat');
  h.deliverAll();
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
  t.is(h.cores[0]!.commitIndex, 3, 'it won with node 0 alone (its own vote does not count) and committed the removal');
  t.deepEqual(h.cores[0]!.members, [0]);
  t.is(h.cores[1]!.status().role, 'learner', 'then stepped down');
  t.false(h.timers[1]!.has('election'));
  h.elect(0);
  t.is(h.leader(), 0);
  t.is(h.cores[0]!.commitIndex, 4);
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
    ['snapshot of a later term', new Map<string, unknown>([['raft/term', 1], ['raft/snapshot', { index: 3, term: 2, members: [0, 1, 2], timestamp: 0, data: new Uint8Array() }]])],
    ['snapshot with bytes it cannot restore', new Map<string, unknown>([['raft/term', 2], ['raft/snapshot', { index: 3, term: 2, members: [0, 1, 2], timestamp: 0, data: new Uint8Array([1, 2, 3]) }]])],
    ['configuration naming a non-member', ((d) => (d.set('raft/log/2', { type: 'config', term: 1, timestamp: 0, members: [0, 5] }), d))(durableWith(3, [1]))],
  ];
  for (const [name, durable] of cases) {
    const error = t.throws(() => build(durable), { instanceOf: ConsensusError }, name);
    t.is(error?.code, 'CORRUPT_STATE', name);
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
  h.request(cmd);
  h.request(cmd);
  h.deliverAll();
  h.fire(0, 'heartbeat');
  h.deliverAll();
  t.is(h.cores[0]!.lastLogIndex, 2, 'one no-op and one command');
  const retry = h.step(1, { kind: 'request', command: cmd });
  t.is(retry.replies.length, 1);
  t.like(retry.replies[0], { client: cmd.client, timestamp: cmd.timestamp, position: 2, view: 1 });
});
