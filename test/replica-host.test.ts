/**
 * Consensus cores hosted for real: signatures from the signature layer, LMDB stores, the real
 * clock. Four PBFT replicas in one thread exchange signed envelopes; a forged or malformed one
 * never reaches a core; a replica stopped mid-run restarts from its store and catches up.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplicaHost, type ReplicaCrypto } from '../actors/replica-host.js';
import { ReplicaStore } from '../actors/replica-store.js';
import { command, consensusConfig, digestOf, encode, hex, KvStateMachine, kvPayload, Outputs, type ConsensusAlgorithm, type Core, type ProtocolDefinition, type Reply } from '../protocols/consensus/index.js';
import { SchemeRegistry, type SchemeName } from '../protocols/crypto/index.js';
import { pbft, prepare, prePrepare, type PbftOptions } from '../protocols/pbft/index.js';
import { raft } from '../protocols/raft/index.js';
import { realClock, VirtualClock } from '../runtime/clock.js';

const N = 4;
const CONTEXT = new TextEncoder().encode('knhk/test-consensus');

type Body = { readonly type: string };

interface Cluster {
  readonly hosts: (ReplicaHost<Body> | undefined)[];
  readonly stores: (ReplicaStore | undefined)[];
  readonly cut: Set<number>;
  start(i: number): Promise<void>;
  stop(i: number): Promise<void>;
  /** Resolves with the response once f+1 replicas replied the same. */
  submit(client: string, timestamp: number, key: string): Promise<Uint8Array>;
  /** Resolves once replica `i` has executed position `height` (the client needs only f+1 replies, so a replica may lag). */
  executed(i: number, height: number): Promise<void>;
  crypto: ReplicaCrypto[];
  /** Replies and executions reported outside a measured stretch of a host's work (should be none). */
  readonly unmeasured: string[];
  /** Measured stretches, per replica. */
  readonly stretches: number[];
  /** Signatures made and envelopes sent to peers, per replica. */
  readonly signed: number[];
  readonly sent: number[];
  /** `resume` inputs each replica's core was stepped with (a paused execution continued). */
  readonly resumes: number[];
}

async function cluster(t: ExecutionContext, scheme: SchemeName, protocol: Extract<ConsensusAlgorithm, 'pbft' | 'raft'> = 'pbft', pbftOptions: PbftOptions = {}): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'knhk-host-'));
  const registry = SchemeRegistry.create();
  const signatures = registry.get(scheme);
  const keys = Array.from({ length: N }, () => signatures.keygen());
  const contextFor = scheme === 'Ed25519' ? undefined : CONTEXT;
  const signed = Array.from({ length: N }, () => 0);
  const sent = Array.from({ length: N }, () => 0);
  const crypto: ReplicaCrypto[] = keys.map((own, i) => ({
    sign: (digest) => {
      signed[i] = (signed[i] ?? 0) + 1;
      return signatures.sign(own.secretKey, digest, contextFor);
    },
    verify: (node, digest, signature) => {
      const pair = keys[node];
      return pair !== undefined && signatures.verify(pair.publicKey, digest, signature, contextFor);
    },
  }));
  const waiting = new Map<string, { votes: Map<string, Set<number>>; resolve: (r: Uint8Array) => void }>();
  const heights = new Map<number, number>();
  const heightWaiters: { i: number; height: number; resolve: () => void }[] = [];
  // The hosts share this thread, so one flag says whether some host's measured stretch is running.
  let measuring = false;
  const unmeasured: string[] = [];
  const stretches = Array.from({ length: N }, () => 0);
  const resumes = Array.from({ length: N }, () => 0);
  /** The protocol, its cores counting the resumes they are stepped with. */
  const definitionFor = (i: number): ProtocolDefinition<Body> => {
    const definition = (protocol === 'pbft' ? pbft({ requestTimeoutMs: 300, ...pbftOptions }) : raft({ electionTimeoutMs: 300, heartbeatMs: 60 })) as ProtocolDefinition<Body>;
    return {
      ...definition,
      create: (options) => {
        const core = definition.create(options);
        const step = core.step.bind(core);
        core.step = (input, now) => {
          if (input.kind === 'resume') resumes[i] = (resumes[i] ?? 0) + 1;
          step(input, now);
        };
        return core;
      },
    };
  };
  const measureFor = (i: number) => <T>(work: () => T): T => {
    if (measuring) return work();
    stretches[i] = (stretches[i] ?? 0) + 1;
    measuring = true;
    try {
      return work();
    } finally {
      measuring = false;
    }
  };
  const onApplied = (i: number, position: number): void => {
    if (!measuring) unmeasured.push(`replica ${i} executed ${position}`);
    heights.set(i, position);
    for (const w of [...heightWaiters]) {
      if (w.i === i && position >= w.height) {
        heightWaiters.splice(heightWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const onReply = (from: number, reply: Reply): void => {
    if (!measuring) unmeasured.push(`replica ${from} replied to ${reply.client}/${reply.timestamp}`);
    const w = waiting.get(`${reply.client}/${reply.timestamp}`);
    if (w === undefined) return;
    const key = hex(reply.response);
    const voters = w.votes.get(key) ?? new Set<number>();
    voters.add(from);
    w.votes.set(key, voters);
    if (voters.size >= consensusConfig({ nodeId: 0, n: N, algorithm: protocol }).replyQuorum) {
      waiting.delete(`${reply.client}/${reply.timestamp}`);
      w.resolve(reply.response);
    }
  };
  const c: Cluster = {
    hosts: [],
    stores: [],
    cut: new Set(),
    crypto,
    unmeasured,
    stretches,
    signed,
    sent,
    resumes,
    async start(i) {
      const store = await ReplicaStore.open(join(dir, `replica-${i}`), { clusterId: 'test', nodeId: i, protocol, n: N, stateMachine: 'knhk/kv' });
      c.stores[i] = store;
      c.hosts[i] = await ReplicaHost.start({
        definition: definitionFor(i),
        config: consensusConfig({ nodeId: i, n: N, algorithm: protocol }),
        stateMachine: new KvStateMachine(),
        store,
        crypto: crypto[i] as ReplicaCrypto,
        clock: realClock,
        measure: measureFor(i),
        send: (to, bytes) => {
          sent[i] = (sent[i] ?? 0) + 1;
          if (c.cut.has(i) || c.cut.has(to)) return;
          setImmediate(() => void c.hosts[to]?.receive(bytes));
        },
        listener: { replies: (rs) => rs.forEach((r) => onReply(i, r)), applied: (a) => onApplied(i, a.position), fault: (e) => t.fail(`replica ${i} faulted: ${String(e)}`) },
      });
    },
    async stop(i) {
      await c.hosts[i]?.stop();
      await c.stores[i]?.close();
      c.hosts[i] = undefined;
      c.stores[i] = undefined;
    },
    executed(i, height) {
      if ((heights.get(i) ?? 0) >= height) return Promise.resolve();
      return new Promise((resolve) => heightWaiters.push({ i, height, resolve }));
    },
    submit(client, timestamp, key) {
      const cmd = command(client, timestamp, kvPayload({ type: 'put', key, value: `${client}${timestamp}` }));
      const done = new Promise<Uint8Array>((resolve) => waiting.set(`${client}/${timestamp}`, { votes: new Map(), resolve }));
      const send = (): void => {
        for (const host of c.hosts) void host?.request(cmd);
      };
      send();
      // A client retries until it has its answer, as PBFT's clients do (§4.1).
      const retry = setInterval(send, 400);
      return done.finally(() => clearInterval(retry));
    },
  };
  for (let i = 0; i < N; i++) await c.start(i);
  t.teardown(async () => {
    for (let i = 0; i < N; i++) await c.stop(i);
    await rm(dir, { recursive: true, force: true });
  });
  return c;
}

test('four PBFT replicas with Ed25519 signatures and LMDB stores commit, refuse forgeries, and a stopped replica restarts from its store', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519');
  for (let k = 1; k <= 10; k++) await c.submit('alice', k, `a${k}`);
  await c.executed(0, 10);
  t.is(c.hosts[0]?.status().commitIndex, 10);

  // A message signed by replica 3 but claiming to be replica 1's, and bytes that are no message.
  const forged = encode({ from: 1, body: { type: 'prepare', view: 0, sequence: 11, digest: new Uint8Array(32) }, signature: await c.crypto[3]?.sign(new Uint8Array(32)) });
  await c.hosts[0]?.receive(forged);
  await c.hosts[0]?.receive(new Uint8Array([0xc1, 0xff]));
  await c.hosts[0]?.receive(encode({ from: 9, body: { type: 'fetch-state', sequence: 1 }, signature: new Uint8Array(64) }));
  t.like(c.hosts[0]?.stats(), { forged: 1, malformed: 1, nonMember: 1 });

  // Replica 0, the primary, stops; the others change view and keep committing.
  await c.stop(0);
  for (let k = 11; k <= 15; k++) await c.submit('alice', k, `a${k}`);
  t.true((c.hosts[1]?.status().view ?? 0) >= 1);
  // It restarts from its store and rejoins in the new view.
  await c.start(0);
  t.true((c.hosts[0]?.status().commitIndex ?? 0) >= 10, 'its committed log was replayed from the store');
  for (let k = 16; k <= 25; k++) await c.submit('alice', k, `a${k}`);
  await Promise.all([1, 2, 3].map((i) => c.executed(i, 25)));
  const heights = c.hosts.map((h) => h?.status().commitIndex);
  t.log(`executed: ${heights.join(', ')}`);
  t.true(heights.filter((h) => h === heights[1]).length >= 3, 'a quorum executed the same height');
  // Every execution and reply happened inside a stretch the host measured (its actor's tick budget).
  t.deepEqual(c.unmeasured, []);
  t.true(c.stretches.every((count) => count > 25), `each host measured its work (${c.stretches.join(', ')} stretches)`);
});

test('an envelope is verified each time it arrives, so a key retired meanwhile refuses a replay of it', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519');
  await c.submit('alice', 1, 'a1');
  const body = { type: 'prepare', view: 0, sequence: 40, digest: new Uint8Array(32) };
  const envelope = encode({ from: 1, body, signature: await c.crypto[1]?.sign(digestOf(body)) });
  const host = c.hosts[0];
  const crypto = c.crypto[0];
  if (host === undefined || crypto === undefined) return t.fail('replica 0 is not running');
  await host.receive(envelope);
  t.is(host.stats().forged, 0);
  // Replica 1 adopted a successor: the verifier no longer takes its old key for envelopes.
  const verify = crypto.verify;
  crypto.verify = (node, digest, signature, nested) => (node === 1 && !nested ? false : verify(node, digest, signature, nested));
  await host.receive(envelope);
  t.is(host.stats().forged, 1, 'the replay is refused, not taken on a verdict kept from before');
});

test('an envelope whose signature cannot be checked (the verifier is restarting) is dropped unchecked, not taken, not counted as forged, and the replica runs on', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519');
  const host = c.hosts[0];
  const crypto = c.crypto[0];
  if (host === undefined || crypto === undefined) return t.fail('replica 0 is not running');
  const verify = crypto.verify;
  crypto.verify = () => Promise.resolve(undefined);
  const body = { type: 'prepare', view: 0, sequence: 40, digest: new Uint8Array(32) };
  const envelope = encode({ from: 1, body, signature: await c.crypto[1]?.sign(digestOf(body)) });
  const steps = host.stats().steps;
  await host.receive(envelope);
  t.like(host.stats(), { unverified: 1, forged: 0, steps }, 'dropped before the core saw it');
  crypto.verify = verify;
  await c.submit('alice', 1, 'a1');
  await c.executed(0, 1);
  t.like(host.stats(), { unverified: 1, forged: 0 }, 'and once the verifier answers again, the replica executes what the others commit');
  crypto.verify = () => Promise.reject(new Error('a bug in the verifier'));
  await t.throwsAsync(host.receive(envelope), { message: 'a bug in the verifier' }, 'any other failure is a fault, not a dropped envelope');
});

test('a vote inside a certificate is checked as standing where its body says, an envelope as standing nowhere', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519');
  const host = c.hosts[0];
  const crypto = c.crypto[0];
  if (host === undefined || crypto === undefined) return t.fail('replica 0 is not running');
  const signed = async <B extends object>(from: number, body: B): Promise<{ from: number; body: B; signature: Uint8Array }> => ({ from, body, signature: await (c.crypto[from] as ReplicaCrypto).sign(digestOf(body)) });
  const proposal = prePrepare(0, 7, 1, []);
  const body = {
    type: 'view-change',
    view: 1,
    checkpoint: { sequence: 0, stateDigest: new Uint8Array(32), proof: [] },
    prepared: [{ prePrepare: await signed(0, proposal), prepares: [await signed(2, prepare(0, 7, proposal.digest)), await signed(3, prepare(0, 7, proposal.digest))] }],
  };
  const seen: unknown[] = [];
  const verify = crypto.verify;
  crypto.verify = (node, digest, signature, nested) => {
    seen.push([node, nested]);
    return verify(node, digest, signature, nested);
  };
  await host.receive(encode(await signed(1, body)));
  t.deepEqual(seen, [
    [1, undefined],
    [0, { view: 0, sequence: 7 }],
    [2, { view: 0, sequence: 7 }],
    [3, { view: 0, sequence: 7 }],
  ]);
  t.is(host.stats().forged, 0);
});

test('hybrid ML-DSA-65+Ed25519 signatures on every vote', async (t) => {
  t.timeout(300_000);
  const c = await cluster(t, 'ML-DSA-65+Ed25519');
  const responses = [];
  for (let k = 1; k <= 3; k++) responses.push(await c.submit('bob', k, `b${k}`));
  t.is(responses.length, 3);
  await c.executed(2, 3);
  t.is(c.hosts[2]?.status().commitIndex, 3);
  t.like(c.hosts[2]?.stats(), { forged: 0, malformed: 0 });
});

test('a body sent alike to several peers is signed once: a Raft leader signs one append for the followers in step', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519', 'raft');
  for (let k = 1; k <= 20; k++) await c.submit('carol', k, `c${k % 3}`);
  const leader = c.hosts.findIndex((host) => host?.status().role === 'leader');
  t.true(leader >= 0, 'a leader was elected');
  t.log(`leader ${leader}: ${c.signed[leader]} signatures for ${c.sent[leader]} envelopes sent`);
  // Every Raft message goes to one peer; without sharing, a leader signs each envelope it sends.
  // How many went out alike depends on how well the followers keep in step, which the machine's
  // load decides (a body sent again in a later step is signed again): any sharing at all shows.
  t.true((c.signed[leader] as number) < (c.sent[leader] as number), 'appends alike were signed once for the followers in step');
  t.like(c.hosts[leader === 0 ? 1 : 0]?.stats(), { forged: 0, malformed: 0 }, 'and the followers accept the shared signature');
});

test('with an execution slice, replicas execute a large batch in measured stretches, resumed after turns of the event loop', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'Ed25519', 'pbft', { executionSlice: 2, batchSize: 32 });
  // Submitted together, the commands are batched: more than two to a sequence number.
  await Promise.all(Array.from({ length: 24 }, (_, k) => c.submit(`client-${k}`, 1, `d${k}`)));
  // Every command has f+1 replies, so the furthest replica executed every batch there is.
  const height = Math.max(...c.hosts.map((host) => host?.status().commitIndex ?? 0));
  t.true(height < 24, `24 commands in ${height} batches`);
  await Promise.all([0, 1, 2, 3].map((i) => c.executed(i, height)));
  t.true(c.resumes.every((count) => count > 0), `every replica resumed a paused execution (${c.resumes.join(', ')})`);
  t.false(c.hosts.some((host) => host?.core.executionPaused), 'and finished it');
  const hashes = c.hosts.map((host) => hex(host?.stateHash() ?? new Uint8Array()));
  t.true(hashes.every((hash) => hash === hashes[0]), 'the same state everywhere');
  t.deepEqual(c.unmeasured, []);
});

test('a timer firing queued behind a step that set the timer again is void, as in the simulator', async (t) => {
  // A core that arms timer `t` when it starts and again on every request, and counts its firings.
  const firings: string[] = [];
  const out = new Outputs<Body>();
  const core: Core<Body> = {
    config: consensusConfig({ nodeId: 0, n: 1, algorithm: 'pbft' }),
    step(input) {
      if (input.kind === 'timeout') firings.push(input.timer);
      if (input.kind === 'request') out.setTimer('t', 10);
    },
    ready: () => out.drain(),
    status: () => ({ role: 'primary', view: 0, commitIndex: 0, leader: 0 }),
    signedThrough: () => ({ view: 0 }),
  };
  out.setTimer('t', 10);
  // A store whose next write finishes when the test says, so that the timer can fire while a step's outputs wait for it.
  let blockNext = false;
  let release: (() => void) | undefined;
  const store = {
    load: () => new Map<string, unknown>(),
    apply: () => {
      if (!blockNext) return Promise.resolve();
      blockNext = false;
      return new Promise<void>((resolve) => (release = resolve));
    },
  } as unknown as ReplicaStore;
  const clock = new VirtualClock();
  const host = await ReplicaHost.start<Body>({
    definition: { ...(pbft() as unknown as ProtocolDefinition<Body>), create: () => core },
    config: core.config,
    stateMachine: new KvStateMachine(),
    store,
    crypto: { sign: () => new Uint8Array(64), verify: () => true },
    clock,
    send: () => undefined,
  });
  t.teardown(() => host.stop());
  // The request's step re-arms `t`; its outputs wait for the store while the old arming fires.
  blockNext = true;
  const stepped = host.request(command('alice', 1, kvPayload({ type: 'get', key: 'k' })));
  while (release === undefined) await new Promise((resolve) => setImmediate(resolve));
  clock.advance(10);
  release();
  await stepped;
  await host.flush();
  t.deepEqual(firings, [], 'the firing of the arming the request replaced never reaches the core');
  clock.advance(10);
  await host.flush();
  t.deepEqual(firings, ['t'], 'the new arming fires');
  // Queued in the same group as the step that sets its timer again, behind it: void too.
  await host.request(command('alice', 2, kvPayload({ type: 'get', key: 'k' })));
  const both = host.request(command('alice', 3, kvPayload({ type: 'get', key: 'k' })));
  clock.advance(10);
  await both;
  await host.flush();
  t.deepEqual(firings, ['t'], 'a firing behind a re-arming step of its own group never reaches the core');
  clock.advance(10);
  await host.flush();
  t.deepEqual(firings, ['t', 't']);
});
