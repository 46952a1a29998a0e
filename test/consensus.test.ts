/**
 * The shared consensus types: configuration and quorum arithmetic, certificates, the key-value
 * reference machine and the exactly-once client table.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  ConsensusError,
  KvStateMachine,
  MAX_STATE_BYTES,
  Outputs,
  ReplicatedState,
  StateArchive,
  checkQuorum,
  command,
  consensusConfig,
  encode,
  hex,
  isQuorum,
  kvPayload,
  kvResponse,
  maxFaults,
  quorumSize,
  readArchive,
  standsWithin,
  type ConsensusState,
  type KvOperation,
} from '../protocols/consensus/index.js';
import { slotOf } from '../protocols/consensus/merkle-kv-map.js';
import { testSeed } from './helpers/seed.js';
import { BallastMachine, ballastPayload } from './fixtures/state-machines.js';

test('a BFT configuration with n < 3f+1 is a typed error; f and the quorums are derived', (t) => {
  const error = t.throws(() => consensusConfig({ nodeId: 0, n: 6, algorithm: 'pbft', f: 2 }), { instanceOf: ConsensusError });
  t.is(error?.code, 'INVALID_CONFIG');
  t.regex(error?.message ?? '', /n ≥ 3f\+1 = 7/);
  t.is(t.throws(() => consensusConfig({ nodeId: 0, n: 4, algorithm: 'raft', f: 2 }), { instanceOf: ConsensusError })?.code, 'INVALID_CONFIG');
  for (const bad of [{ nodeId: 4, n: 4 }, { nodeId: 0, n: 0 }, { nodeId: -1, n: 4 }, { nodeId: 0, n: 2.5 }]) {
    t.throws(() => consensusConfig({ ...bad, algorithm: 'hotstuff' }), { instanceOf: ConsensusError }, JSON.stringify(bad));
  }
  t.throws(() => consensusConfig({ nodeId: 0, n: 4, algorithm: 'paxos' as 'pbft' }), { instanceOf: ConsensusError });
  t.deepEqual(consensusConfig({ nodeId: 1, n: 4, algorithm: 'pbft' }), { nodeId: 1, n: 4, algorithm: 'pbft', f: 1, quorumSize: 3, replyQuorum: 2, members: [0, 1, 2, 3] });
  t.like(consensusConfig({ nodeId: 0, n: 5, algorithm: 'raft' }), { f: 2, quorumSize: 3, replyQuorum: 1 });
});

test('a signed body stands within a reach on every axis both name; one naming no axis stands within nothing', (t) => {
  const reach = { view: 3, sequence: 40 };
  t.true(standsWithin({ view: 3, sequence: 40 }, reach));
  t.true(standsWithin({ view: 0, sequence: 1 }, reach));
  t.true(standsWithin({ sequence: 40 }, reach), 'a checkpoint names no view');
  t.true(standsWithin({ view: 2 }, reach), 'a HotStuff vote names no sequence');
  t.false(standsWithin({ view: 4, sequence: 1 }, reach));
  t.false(standsWithin({ view: 1, sequence: 41 }, reach));
  t.false(standsWithin({ sequence: 41 }, reach));
  t.false(standsWithin({}, reach));
  t.false(standsWithin({}, {}));
  t.true(standsWithin({ view: 9, sequence: 1_000 }, { view: 9 }), 'a reach that leaves out an axis does not bound it');
});

test('test_pbft_quorum_intersection', (t) => {
  for (let n = 1; n <= 64; n++) {
    const f = maxFaults('pbft', n);
    const q = quorumSize('pbft', n, f);
    t.true(n >= 3 * f + 1, `n=${n}`);
    // Two quorums share at least f+1 replicas, so at least one correct one (Castro & Liskov §4.2).
    t.true(2 * q - n >= f + 1, `n=${n}: two quorums of ${q} meet in ${2 * q - n} < f+1 = ${f + 1}`);
    // A quorum is reachable with f replicas silent.
    t.true(q <= n - f, `n=${n}: quorum ${q} needs more than the n−f = ${n - f} correct replicas`);
    if (n === 3 * f + 1) t.is(q, 2 * f + 1, `n=${n}: the classic 2f+1`);
    const raftQ = quorumSize('raft', n, maxFaults('raft', n));
    t.true(2 * raftQ > n, `raft majority at n=${n}`);
  }
  const config = consensusConfig({ nodeId: 0, n: 4, algorithm: 'pbft' });
  t.is(t.throws(() => checkQuorum([0, 1], config), { instanceOf: ConsensusError })?.code, 'QUORUM_NOT_REACHED');
  t.is(t.throws(() => checkQuorum([0, 1, 1], config), { instanceOf: ConsensusError })?.code, 'INVALID_CERTIFICATE');
  t.is(t.throws(() => checkQuorum([0, 1, 9], config), { instanceOf: ConsensusError })?.code, 'INVALID_CERTIFICATE');
  t.true(isQuorum([3, 0, 2], config));
  t.false(isQuorum([0, 1], config));
});

test('the key-value machine applies puts, gets and deletes and rejects malformed payloads without changing state', (t) => {
  const kv = new KvStateMachine();
  const run = (op: KvOperation, ts: number): ReturnType<typeof kvResponse> => kvResponse(kv.apply(command('c', ts, kvPayload(op))));
  t.deepEqual(run({ type: 'put', key: 'a', value: '1' }, 1), { ok: true });
  t.deepEqual(run({ type: 'put', key: 'a', value: '2' }, 2), { ok: true, value: '1' });
  t.deepEqual(run({ type: 'get', key: 'a' }, 3), { ok: true, value: '2' });
  const before = hex(kv.hash());
  t.like(kvResponse(kv.apply(command('c', 4, new Uint8Array([0xc1])))), { ok: false });
  t.like(kvResponse(kv.apply(command('c', 5, encode({ type: 'put', key: 'a' })))), { ok: false });
  t.is(hex(kv.hash()), before, 'a rejected command changes nothing');
  t.deepEqual(run({ type: 'delete', key: 'a' }, 6), { ok: true, value: '2' });
  t.is(kv.size, 0);
  t.is(t.throws(() => kv.restore(encode({ not: 'a snapshot' })), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE');
});

test('the client table executes each (client, timestamp) once and answers retries from its cache', (t) => {
  const state = new ReplicatedState(new KvStateMachine());
  const put = command('alice', 1, kvPayload({ type: 'put', key: 'x', value: '1' }));
  const first = state.execute(put, 1, 0);
  t.true(first.fresh);
  const hash = hex(state.hash());
  const retry = state.execute(put, 1, 0);
  t.false(retry.fresh);
  t.deepEqual(retry.response, first.response);
  t.is(hex(state.hash()), hash, 'a retry is not applied again');
  t.deepEqual(state.cached(put), { response: first.response, position: 1 });
  const older = command('alice', 0, kvPayload({ type: 'put', key: 'x', value: 'stale' }));
  t.false(state.execute(older, 1, 0).fresh, 'a request older than the last one is not applied');
  t.true(state.executed(older));
  t.is(state.cached(older), undefined);
  const copy = new ReplicatedState(new KvStateMachine());
  copy.restore(state.snapshot());
  t.is(hex(copy.hash()), hash);
  t.false(copy.execute(put, 1, 0).fresh, 'a replica restored from a snapshot de-duplicates like its peers');
  t.is(t.throws(() => copy.restore(new Uint8Array([1, 2, 3])), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE');
});

const kvOp: fc.Arbitrary<KvOperation> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: fc.string({ maxLength: 4 }), value: fc.string({ maxLength: 8 }) }),
  fc.record({ type: fc.constant('delete' as const), key: fc.string({ maxLength: 4 }) }),
  fc.record({ type: fc.constant('get' as const), key: fc.string({ maxLength: 4 }) }),
);

test('a state hash depends only on the commands applied, and a snapshot restores it exactly', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(kvOp, { maxLength: 60, size: 'max' }), fc.nat(60), (ops, cut) => {
        const commands = ops.map((op, i) => command(`c${i % 3}`, i + 1, kvPayload(op)));
        const a = new ReplicatedState(new KvStateMachine());
        const b = new ReplicatedState(new KvStateMachine());
        const responsesA = commands.map((c) => hex(a.execute(c, 1, 0).response));
        const responsesB = commands.map((c) => hex(b.execute(c, 1, 0).response));
        if (hex(a.hash()) !== hex(b.hash()) || responsesA.join() !== responsesB.join()) return false;
        // A replica that restores a snapshot taken part-way and applies the rest ends in the same state.
        const c = new ReplicatedState(new KvStateMachine());
        const head = new ReplicatedState(new KvStateMachine());
        for (const cmd of commands.slice(0, cut)) head.execute(cmd, 1, 0);
        c.restore(head.snapshot());
        for (const cmd of commands.slice(cut)) c.execute(cmd, 1, 0);
        return hex(c.hash()) === hex(a.hash()) && hex(c.snapshot()) === hex(a.snapshot());
      }),
      { seed, numRuns: 200 },
    ),
  );
});

test('a frozen state keeps its snapshot and digest while commands execute, and its changes since an older view turn that view into it (property)', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(kvOp, { minLength: 1, maxLength: 80, size: 'max' }), fc.nat(80), (ops, cut) => {
        const commands = ops.map((op, i) => command(`c${i % 4}`, i + 1, kvPayload(op)));
        const live = new ReplicatedState(new KvStateMachine());
        for (const cmd of commands.slice(0, cut)) live.execute(cmd, 1, 0);
        const older = live.freeze();
        const olderSnapshot = live.snapshot();
        for (const cmd of commands.slice(cut)) live.execute(cmd, 1, 0);
        const newer = live.freeze();
        if (hex(older.snapshot()) !== hex(olderSnapshot)) return false;
        if (hex(newer.snapshot()) !== hex(live.snapshot()) || hex(newer.stateHash) !== hex(live.hash())) return false;
        const replica = new ReplicatedState(new KvStateMachine());
        replica.restore(olderSnapshot);
        if (hex(replica.freeze().digest) !== hex(older.digest)) return false;
        replica.applyChanges(newer.changesSince(older) as Uint8Array);
        // The client table came along: retries are answered as the live state answers them.
        return hex(replica.freeze().digest) === hex(newer.digest) && hex(replica.snapshot()) === hex(live.snapshot()) && commands.every((cmd) => replica.executed(cmd) === live.executed(cmd));
      }),
      { seed, numRuns: 150 },
    ),
  );
});

test('the client table is stored as what changed: changes since a view carry the sessions that executed, not every session', (t) => {
  const put = (session: number, timestamp: number): ReturnType<typeof command> => command(`session-${session}`, timestamp, kvPayload({ type: 'put', key: `k${session % 10}`, value: `v${timestamp}` }));
  const state = new ReplicatedState(new KvStateMachine());
  for (let i = 0; i < 2000; i++) state.execute(put(i, 1), 1, 0);
  const older = state.freeze();
  for (let i = 0; i < 10; i++) state.execute(put(i, 2), 2, 0);
  const newer = state.freeze();
  const changes = newer.changesSince(older) as Uint8Array;
  const whole = newer.snapshot();
  t.true(changes.length * 50 < whole.length, `changes of 10 sessions take ${changes.length} bytes, the snapshot of 2 000 ${whole.length}`);
  const replica = new ReplicatedState(new KvStateMachine());
  replica.restore(older.snapshot());
  replica.applyChanges(changes);
  t.is(hex(replica.freeze().digest), hex(newer.digest));
  t.true(replica.executed(put(3, 2)) && !replica.executed(put(30, 2)), 'the sessions that executed since, and only they, moved on');
  t.is(hex(replica.cached(put(3, 2))?.response ?? new Uint8Array()), hex(state.cached(put(3, 2))?.response ?? new Uint8Array(1)));
  t.is(replica.cached(put(3, 2))?.position, 2, 'a retry is answered with the position its command executed at');
  t.is(replica.cached(put(30, 1))?.position, 1);
  // An idle session's response outlives the record it came in: it must not hold that record's bytes.
  const restored = new ReplicatedState(new KvStateMachine());
  const snapshot = older.snapshot();
  restored.restore(snapshot);
  restored.applyChanges(changes);
  t.not(restored.cached(put(1999, 1))?.response.buffer, snapshot.buffer, 'a response restored from a snapshot is a copy');
  t.not(restored.cached(put(3, 2))?.response.buffer, changes.buffer, 'a response applied from changes is a copy');
});

test('a command whose client id is not well-formed text is answered empty and not executed, alike everywhere', (t) => {
  const state = new ReplicatedState(new KvStateMachine());
  const before = hex(state.freeze().digest);
  const execution = state.execute(command('lone \ud800', 1, kvPayload({ type: 'put', key: 'x', value: '1' })), 1, 0);
  t.deepEqual(execution, { response: new Uint8Array(0), fresh: false, failed: false });
  t.is(hex(state.freeze().digest), before);
});

test('a command the state machine throws on is answered empty and recorded as executed, and the state goes on', (t) => {
  const throwing: ConsensusState = {
    apply(cmd) {
      if (cmd.payload[0] === 0xff) throw new Error('a bug');
      return inner.apply(cmd);
    },
    hash: () => inner.hash(),
    snapshot: () => inner.snapshot(),
    restore: (bytes) => inner.restore(bytes),
  };
  const inner = new KvStateMachine();
  const state = new ReplicatedState(throwing);
  const poison = command('c', 1, new Uint8Array([0xff]));
  t.deepEqual(state.execute(poison, 1, 0), { response: new Uint8Array(0), fresh: true, failed: true });
  t.true(state.executed(poison));
  t.deepEqual(state.execute(poison, 2, 0), { response: new Uint8Array(0), fresh: false, failed: false }, 'a retry is answered from the client table');
  t.true(state.execute(command('c', 2, kvPayload({ type: 'put', key: 'k', value: 'v' })), 3, 0).fresh);
  t.deepEqual(kvResponse(state.execute(command('c', 3, kvPayload({ type: 'get', key: 'k' })), 4, 0).response), { ok: true, value: 'v' });
});

test('client-table entries that a replica never writes are corrupt, in a snapshot and in changes', (t) => {
  const noKeys = new KvStateMachine();
  const cases: [string, unknown[]][] = [
    ['a timestamp that is not a count', [['alice', [-1, new Uint8Array()]]]],
    ['a response that is not bytes', [['alice', [1, 'text']]]],
    ['an entry that is not a pair', [['alice']]],
    ['a key that is not text', [[7, [1, new Uint8Array()]]]],
    // Canonical order is by slot: the later slot's entry first is out of it.
    ['entries out of order', (slotOf('zed') > slotOf('alice') ? ['zed', 'alice'] : ['alice', 'zed']).map((client) => [client, [1, new Uint8Array()]])],
  ];
  for (const [what, clients] of cases) {
    const snapshot = encode({ state: noKeys.snapshot(), clients });
    t.is(t.throws(() => new ReplicatedState(new KvStateMachine()).restore(snapshot), { instanceOf: ConsensusError }, what)?.code, 'CORRUPT_STATE', what);
    const state = new ReplicatedState(new KvStateMachine());
    t.is(state.adopt(snapshot, new Uint8Array(32)), undefined, `${what}: not adopted`);
    const first = clients[0] as unknown[];
    const changes = encode({ state: encode([]), clients: [{ slot: typeof first[0] === 'string' ? slotOf(first[0]) : 0, entries: clients }] });
    t.is(t.throws(() => new ReplicatedState(new KvStateMachine()).applyChanges(changes), { instanceOf: ConsensusError }, what)?.code, 'CORRUPT_STATE', `${what} (changes)`);
  }
});

test('the digest covers the client table; a snapshot that does not restore to the digest asked for is not adopted, and changes the state does not know are corrupt', (t) => {
  const state = new ReplicatedState(new KvStateMachine());
  state.execute(command('alice', 1, kvPayload({ type: 'put', key: 'x', value: '1' })), 1, 0);
  const donor = new ReplicatedState(new KvStateMachine());
  donor.execute(command('bob', 1, kvPayload({ type: 'put', key: 'x', value: '1' })), 1, 0);
  t.is(hex(donor.hash()), hex(state.hash()), 'the same key-value state');
  t.not(hex(donor.freeze().digest), hex(state.freeze().digest), 'but another client table');
  const before = { snapshot: hex(state.snapshot()), digest: hex(state.freeze().digest) };
  for (const [what, bytes] of [
    ['a snapshot of another state', donor.snapshot()],
    ['bytes that are no snapshot', new Uint8Array([0xc1, 2, 3])],
  ] as const) {
    t.is(state.adopt(bytes, new Uint8Array(32)), undefined, what);
    t.is(hex(state.snapshot()), before.snapshot, `${what} leaves the state as it was`);
  }
  t.is(state.adopt(donor.snapshot(), new Uint8Array(32)), undefined, 'a snapshot is adopted only at its own digest');
  const adopted = state.adopt(donor.snapshot(), donor.freeze().digest);
  t.is(hex(adopted?.digest ?? new Uint8Array()), hex(donor.freeze().digest));
  t.true(state.executed(command('bob', 1, new Uint8Array())));
  t.is(t.throws(() => state.applyChanges(new Uint8Array([0xc1])), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE');
  const plain = new ReplicatedState({ apply: () => new Uint8Array(), hash: () => new Uint8Array(32), snapshot: () => new Uint8Array(), restore: () => undefined });
  t.is(plain.freeze().changesSince(plain.freeze()), undefined, 'a machine that cannot freeze has no changes, only snapshots');
  t.is(t.throws(() => plain.applyChanges(encode({ state: new Uint8Array(), clients: [] })), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE');
});

test('a state up to MAX_STATE_BYTES is stored, read back and adopted from a peer whole, past the 16 MiB a byte field takes by default; a larger one stops its replica with STATE_TOO_LARGE, storing nothing, and is not served', (t) => {
  const large = 20 << 20;
  const state = new ReplicatedState(new BallastMachine());
  state.execute(command('loader', 1, ballastPayload(large)), 1, 0);
  const out = new Outputs<unknown>();
  const archive = new StateArchive(out);
  archive.store(1, state.freeze(), { key: 'anchor', value: 1 });
  const durable = new Map(out.drain().persist.map((op) => [op.key, op.value] as const));
  t.true(Math.max(...[...durable.values()].map((record) => encode(record).length)) > large, 'stored whole');

  const recovered = new ReplicatedState(new BallastMachine());
  t.is(new StateArchive(new Outputs()).recover(recovered, readArchive(durable, 1, 'test'))?.position, 1, 'read back from the store');
  t.is(hex(recovered.freeze().digest), hex(state.freeze().digest));
  const served = archive.snapshot();
  t.true(served !== undefined && served.length > large, 'served to a peer behind');
  t.truthy(new ReplicatedState(new BallastMachine()).adopt(served ?? new Uint8Array(), state.freeze().digest), 'adopted by the peer');

  state.execute(command('loader', 2, ballastPayload(MAX_STATE_BYTES)), 2, 0);
  const grown = state.freeze();
  const error = t.throws(() => archive.store(2, grown, { key: 'anchor', value: 2 }), { instanceOf: ConsensusError });
  t.is(error?.code, 'STATE_TOO_LARGE');
  t.deepEqual(out.drain().persist, [], 'nothing of the step is stored: the store keeps the state it can read back');

  // A machine that stores what changed: its state can outgrow the bound between two whole snapshots.
  let size = 1024;
  const digestOf = (n: number): Uint8Array => {
    const digest = new Uint8Array(32);
    new DataView(digest.buffer).setUint32(0, n);
    return digest;
  };
  const growing = new ReplicatedState({
    apply: (cmd) => {
      size = new DataView(cmd.payload.buffer, cmd.payload.byteOffset, cmd.payload.byteLength).getUint32(0);
      return new Uint8Array(0);
    },
    hash: () => digestOf(size),
    snapshot: () => new Uint8Array(size),
    restore: () => undefined,
    freeze: () => {
      const at = size;
      return { hash: digestOf(at), snapshot: () => new Uint8Array(at), changesSince: () => encode(at) };
    },
    applyChanges: () => undefined,
  });
  const serving = new StateArchive(new Outputs());
  serving.store(1, growing.freeze());
  growing.execute(command('loader', 1, ballastPayload(MAX_STATE_BYTES)), 1, 0);
  serving.store(2, growing.freeze());
  t.is(serving.snapshot(), undefined, 'a state stored as its changes, grown too large to send, is not sent');
});
