/**
 * Consensus telemetry of hosted replicas, checked against the registry. Replica hosts run in this
 * thread with Ed25519 signatures and LMDB stores, under an in-memory OpenTelemetry SDK; every span,
 * span event and data point they produce must be declared in registry/ with the declared kind,
 * unit, attribute types and required attributes, and tell the truth about what happened: rounds
 * that execute, the votes that carried them, state hashes, commands, view changes, a primary's
 * abandoned proposal, a forged message.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metrics, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { CONSENSUS_SCOPE } from '../actors/consensus-telemetry.js';
import { Client } from '../actors/client.js';
import { ReplicaHost, type ReplicaCrypto } from '../actors/replica-host.js';
import { ReplicaStore } from '../actors/replica-store.js';
import {
  command,
  commandSchema,
  consensusConfig,
  encode,
  hex,
  KvStateMachine,
  kvPayload,
  type Applied,
  type ConsensusAlgorithm,
  type ProtocolDefinition,
  type Reply,
} from '../protocols/consensus/index.js';
import { SchemeRegistry } from '../protocols/crypto/index.js';
import { hotstuff } from '../protocols/hotstuff/index.js';
import { pbft } from '../protocols/pbft/index.js';
import { raft } from '../protocols/raft/index.js';
import { Prng } from '../protocols/sim/prng.js';
import { defineBehavior, realClock, t as schema } from '../runtime/index.js';
import { testSeed } from './helpers/seed.js';
import { eventually, startSystem } from './helpers/system.js';
import { undeclaredTelemetry } from './helpers/telemetry.js';

const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));

class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}
const reader = new TestReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

type Message = { readonly type: string };

/** Timeouts short enough for a view change or an election to take a second, long enough for a loaded machine to keep its views. */
const DEFINITIONS: Record<ConsensusAlgorithm, () => ProtocolDefinition<Message>> = {
  // Checkpoints every 2 sequences, so that a few commands store the state.
  pbft: () => pbft({ requestTimeoutMs: 1000, checkpointInterval: 2 }) as ProtocolDefinition<Message>,
  hotstuff: () => hotstuff({ baseTimeoutMs: 500 }) as ProtocolDefinition<Message>,
  raft: () => raft({ electionTimeoutMs: 1000, heartbeatMs: 100 }) as ProtocolDefinition<Message>,
};

interface Cluster {
  readonly n: number;
  readonly quorum: number;
  readonly hosts: (ReplicaHost<Message> | undefined)[];
  readonly crypto: readonly ReplicaCrypto[];
  /** Replicas whose messages are dropped, both ways. */
  readonly cut: Set<number>;
  /** Puts `key` through the cluster; resolves with its position once as many replicas as a client needs replied the same. */
  submit(key: string): Promise<number>;
  /** Resolves once replica `i` has executed position `height`. */
  executed(i: number, height: number): Promise<void>;
  /** Commands each replica executed at each position it executed. */
  readonly batches: readonly Map<number, number>[];
  stop(i: number): Promise<void>;
}

/** `n` replicas of `algorithm` in this thread, stopped and deleted when the test ends. */
async function cluster(t: ExecutionContext, algorithm: ConsensusAlgorithm, n: number): Promise<Cluster> {
  const seed = testSeed(t);
  const dir = await mkdtemp(join(tmpdir(), `knhk-telemetry-${algorithm}-`));
  const ed25519 = SchemeRegistry.create().get('Ed25519');
  const keys = Array.from({ length: n }, () => ed25519.keygen());
  const crypto: ReplicaCrypto[] = keys.map((own) => ({
    sign: (digest) => ed25519.sign(own.secretKey, digest),
    verify: (node, digest, signature) => {
      const pair = keys[node];
      return pair !== undefined && ed25519.verify(pair.publicKey, digest, signature);
    },
  }));
  const replyQuorum = consensusConfig({ nodeId: 0, n, algorithm }).replyQuorum;
  const waiting = new Map<number, { readonly voters: Map<string, Set<number>>; resolve(position: number): void }>();
  const heights = new Map<number, number>();
  const heightWaiters: { i: number; height: number; resolve: () => void }[] = [];
  const batches = Array.from({ length: n }, () => new Map<number, number>());
  const onApplied = (i: number, applied: Applied): void => {
    const { position } = applied;
    if (applied.kind === 'entry') batches[i]?.set(position, applied.commands.length);
    heights.set(i, position);
    for (const w of [...heightWaiters]) {
      if (w.i !== i || position < w.height) continue;
      heightWaiters.splice(heightWaiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const onReply = (from: number, reply: Reply): void => {
    const w = waiting.get(reply.timestamp);
    if (w === undefined || reply.client !== 'alice') return;
    const key = `${reply.position}:${hex(reply.response)}`;
    const voters = w.voters.get(key) ?? new Set<number>();
    voters.add(from);
    w.voters.set(key, voters);
    if (voters.size < replyQuorum) return;
    waiting.delete(reply.timestamp);
    w.resolve(reply.position);
  };
  const stores: (ReplicaStore | undefined)[] = [];
  let timestamp = 0;
  const c: Cluster = {
    n,
    quorum: consensusConfig({ nodeId: 0, n, algorithm }).quorumSize,
    hosts: [],
    crypto,
    cut: new Set(),
    batches,
    submit(key) {
      const cmd = command('alice', ++timestamp, kvPayload({ type: 'put', key, value: `${key}!` }));
      const done = new Promise<number>((resolve) => waiting.set(cmd.timestamp, { voters: new Map(), resolve }));
      const send = (): void => {
        for (const host of c.hosts) void host?.request(cmd);
      };
      send();
      // Clients retry until answered (PBFT §4.1); a Raft follower drops what the leader has not yet got.
      const retry = setInterval(send, 400);
      return done.finally(() => clearInterval(retry));
    },
    executed(i, height) {
      if ((heights.get(i) ?? 0) >= height) return Promise.resolve();
      return new Promise((resolve) => heightWaiters.push({ i, height, resolve }));
    },
    async stop(i) {
      await c.hosts[i]?.stop();
      await stores[i]?.close();
      c.hosts[i] = undefined;
      stores[i] = undefined;
    },
  };
  for (let i = 0; i < n; i++) {
    const store = await ReplicaStore.open(join(dir, `replica-${i}`), { clusterId: 'telemetry', nodeId: i, protocol: algorithm, n, stateMachine: 'knhk/kv' });
    stores[i] = store;
    const jitter = new Prng(seed + i);
    c.hosts[i] = await ReplicaHost.start({
      definition: DEFINITIONS[algorithm](),
      config: consensusConfig({ nodeId: i, n, algorithm }),
      stateMachine: new KvStateMachine(),
      store,
      crypto: crypto[i] as ReplicaCrypto,
      clock: realClock,
      random: () => jitter.next(),
      seed: seed + n + i,
      send: (to, bytes) => {
        if (c.cut.has(i) || c.cut.has(to)) return;
        setImmediate(() => void c.hosts[to]?.receive(bytes));
      },
      listener: { replies: (rs) => rs.forEach((r) => onReply(i, r)), applied: (a) => onApplied(i, a), fault: (e) => t.fail(`replica ${i} faulted: ${String(e)}`) },
    });
  }
  t.teardown(async () => {
    for (let i = 0; i < n; i++) await c.stop(i);
    await rm(dir, { recursive: true, force: true });
  });
  return c;
}

/** Finished spans named `name` whose attributes include `match`. */
function finished(name: string, match: Attributes = {}): ReadableSpan[] {
  return spans.getFinishedSpans().filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.attributes[k] === v));
}

/** The consensus scope's metrics as the reader collects them now. */
async function consensusMetrics(t: ExecutionContext): Promise<MetricData[]> {
  const { resourceMetrics, errors } = await reader.collect();
  t.deepEqual(errors, []);
  return resourceMetrics.scopeMetrics.filter((s) => s.scope.name === CONSENSUS_SCOPE).flatMap((s) => s.metrics);
}

/** The value of `name`'s data point with exactly `attributes` (a sum or gauge), or undefined. */
function valueOf(data: readonly MetricData[], name: string, attributes: Attributes): number | undefined {
  const metric = data.find((m) => m.descriptor.name === name);
  const keys = Object.keys(attributes);
  const point = metric?.dataPoints.find((p) => Object.keys(p.attributes).length === keys.length && keys.every((k) => p.attributes[k] === attributes[k]));
  return point?.value as number | undefined;
}

/** What the consensus scope emitted so far that the registry does not declare so. */
function registryProblems(data: readonly MetricData[]): readonly string[] {
  return undeclaredTelemetry(spans.getFinishedSpans().filter((span) => span.instrumentationScope.name === CONSENSUS_SCOPE), data);
}

test.serial('PBFT: a round span per sequence at each replica, finality, state transitions, replica metrics; a cut-off primary loses its proposal to a view change', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'pbft', 4);
  const COMMANDS = 5;
  let height = 0;
  for (let k = 1; k <= COMMANDS; k++) height = Math.max(height, await c.submit(`k${k}`));
  await Promise.all([0, 1, 2, 3].map((i) => c.executed(i, height)));

  // A prepare signed by replica 3 in replica 1's name: refused, and counted as Byzantine.
  const forged = encode({ from: 1, body: { type: 'prepare', view: 0, sequence: height + 1, digest: new Uint8Array(32) }, signature: await c.crypto[3]?.sign(new Uint8Array(32)) });
  await c.hosts[0]?.receive(forged);

  for (let i = 0; i < 4; i++) {
    for (let sequence = 1; sequence <= height; sequence++) {
      const rounds = finished('consensus.pbft.round', { 'consensus.node_id': i, 'consensus.sequence': sequence });
      // A loaded machine may time a round out: the rounds a view change cut short end abandoned.
      const [round, ...more] = rounds.filter((s) => s.attributes['consensus.phase'] === 'execute');
      t.true(round !== undefined && more.length === 0, `sequence ${sequence} executed in one round at replica ${i}`);
      if (round === undefined) continue;
      for (const cut of rounds.filter((s) => s !== round)) t.is(cut.status.code, SpanStatusCode.ERROR);
      const view = round.attributes['consensus.view'];
      t.like(round.attributes, { 'consensus.quorum_size': 3 });
      t.true((round.attributes['consensus.received_votes'] as number) >= 3, 'executed with at least a quorum of votes');
      const finality = round.events.filter((e) => e.name === 'consensus.finality');
      t.is(finality.length, 1);
      t.like(finality[0]?.attributes, { 'consensus.algorithm': 'pbft', 'consensus.node_id': i, 'consensus.view': view, 'consensus.sequence': sequence, 'consensus.quorum_size': 3 });
      const [transition] = finished('consensus.state_transition', { 'consensus.node_id': i, 'consensus.sequence': sequence });
      t.is(transition?.parentSpanContext?.spanId, round.spanContext().spanId, 'the state transition is a child of its round');
      t.is(transition?.attributes['consensus.view'], view);
    }
  }
  const chain = finished('consensus.state_transition', { 'consensus.node_id': 2 }).sort((a, b) => (a.attributes['consensus.sequence'] as number) - (b.attributes['consensus.sequence'] as number));
  for (const [k, transition] of chain.entries()) {
    const { 'consensus.sequence': sequence, 'consensus.state_hash_before': before, 'consensus.state_hash_after': after } = transition.attributes;
    // A put changes the state; the empty batch a new view may fill a gap with does not.
    t.is(before !== after, (c.batches[2]?.get(sequence as number) ?? 0) > 0, `state hashes of sequence ${String(sequence)}`);
    if (k > 0) t.is(before, chain[k - 1]?.attributes['consensus.state_hash_after'], 'each transition starts where the previous ended');
  }

  // The primary is cut off: it proposes the next command to no one and times out; the others
  // change view without it and commit the command in the next view.
  const { view, leader } = c.hosts[1]?.status() ?? { view: 0, leader: null };
  if (leader === null) return t.fail('replica 1 knows no primary after executing');
  const backups = [0, 1, 2, 3].filter((i) => i !== leader);
  const before = await consensusMetrics(t);
  c.cut.add(leader);
  const after = await c.submit('after');
  await Promise.all(backups.map((i) => c.executed(i, after)));
  await eventually(() => (c.hosts[leader]?.status().view ?? 0) > view);
  const abandoned = finished('consensus.pbft.round', { 'consensus.node_id': leader, 'consensus.sequence': height + 1, 'consensus.view': view });
  t.is(abandoned.length, 1, "the cut-off primary's round ended when it left its view");
  t.like(abandoned[0]?.attributes, { 'consensus.phase': 'pre-prepare' });
  t.is(abandoned[0]?.status.code, SpanStatusCode.ERROR);

  const data = await consensusMetrics(t);
  const of = (i: number): Attributes => ({ 'consensus.algorithm': 'pbft', 'consensus.node_id': i });
  const grew = (name: string, attributes: Attributes): number => (valueOf(data, name, attributes) ?? 0) - (valueOf(before, name, attributes) ?? 0);
  for (const i of backups) {
    const executed = c.hosts[i]?.status().commitIndex;
    t.is(valueOf(data, 'consensus.throughput', of(i)), COMMANDS + 1, `replica ${i} executed every command once`);
    t.is(valueOf(data, 'consensus.proposal.applied', of(i)), executed);
    t.is(valueOf(data, 'consensus.proposal.committed', of(i)), executed);
    t.true(grew('consensus.view_changes', of(i)) >= 1);
    t.true(grew('consensus.leader.changes', of(i)) >= 1, 'away from the cut-off primary');
    t.is(valueOf(data, 'consensus.has_leader', of(i)), 1);
    const moves = finished('consensus.step', { 'consensus.node_id': i }).flatMap((s) => s.events.filter((e) => e.name === 'consensus.view_change'));
    t.true(moves.some((e) => (e.attributes?.['consensus.view'] as number) > view && e.attributes?.['consensus.algorithm'] === 'pbft'));
  }
  t.is(valueOf(data, 'consensus.throughput', of(leader)), COMMANDS);
  t.is(grew('consensus.proposal.failed', of(leader)), 1, 'the proposal the primary made while cut off');
  t.is(valueOf(data, 'consensus.proposal.pending', of(leader)), 0);
  t.is(valueOf(data, 'consensus.has_leader', of(leader)), 0, 'a replica changing view knows no primary');
  t.is(valueOf(data, 'consensus.byzantine_detected', { ...of(0), 'consensus.evidence.kind': 'invalid-signature' }), 1);
  for (const i of backups) {
    const stored = data.find((m) => m.descriptor.name === 'consensus.state.stored')?.dataPoints.filter((p) => p.attributes['consensus.node_id'] === i) ?? [];
    const bytes = stored.reduce((sum, p) => sum + ((p.value as { sum?: number }).sum ?? 0), 0);
    t.true(stored.length > 0 && stored.every((p) => ['snapshot', 'changes'].includes(p.attributes['consensus.state.record'] as string)) && bytes > 0, `replica ${i} stored its state at stable checkpoints: ${bytes} bytes`);
  }
  t.deepEqual(registryProblems(data), []);
});

test.serial('HotStuff: a block span per height, the deciding certificate in its votes, a view change per view', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'hotstuff', 4);
  const positions: number[] = [];
  for (let k = 1; k <= 4; k++) positions.push(await c.submit(`h${k}`));
  const top = Math.max(...positions);
  await Promise.all([0, 1, 2, 3].map((i) => c.executed(i, top)));
  for (let i = 0; i < 4; i++) await c.stop(i);

  for (let i = 0; i < 4; i++) {
    for (const height of positions) {
      const blocks = finished('consensus.hotstuff.block', { 'consensus.node_id': i, 'consensus.sequence': height, 'consensus.phase': 'execute' });
      t.is(blocks.length, 1, `block ${height} executed once at replica ${i}`);
      t.true((blocks[0]?.attributes['consensus.received_votes'] as number) >= 3);
      t.is(blocks[0]?.events.filter((e) => e.name === 'consensus.finality').length, 1);
    }
  }
  const phases = new Set(finished('consensus.hotstuff.block').map((s) => s.attributes['consensus.phase']));
  t.log(`phases reached: ${[...phases].join(', ')}`);
  t.true(phases.has('prepare') || phases.has('pre-commit'), 'blocks after the last commit stopped on their way');

  const data = await consensusMetrics(t);
  for (let i = 0; i < 4; i++) {
    const of = { 'consensus.algorithm': 'hotstuff', 'consensus.node_id': i };
    t.is(valueOf(data, 'consensus.throughput', of), positions.length);
    // Chained HotStuff moves to a new view with every certificate: each is a view change.
    t.true((valueOf(data, 'consensus.view_changes', of) ?? 0) >= 1);
    t.is(valueOf(data, 'consensus.has_leader', of), 1);
  }
  const move = finished('consensus.step', { 'consensus.algorithm': 'hotstuff' })
    .flatMap((s) => s.events)
    .find((e) => e.name === 'consensus.view_change');
  t.is(typeof move?.attributes?.['consensus.leader_id'], 'number', 'a HotStuff replica always knows its view leader');
  t.deepEqual(registryProblems(data), []);
});

test.serial('Raft: a log-entry span per index, acknowledgements at the leader, a term change at the election', async (t) => {
  t.timeout(120_000);
  const c = await cluster(t, 'raft', 3);
  const positions: number[] = [];
  for (let k = 1; k <= 4; k++) positions.push(await c.submit(`r${k}`));
  const top = Math.max(...positions);
  await Promise.all([0, 1, 2].map((i) => c.executed(i, top)));
  const leader = c.hosts.findIndex((h) => h?.status().role === 'leader');
  t.true(leader >= 0);

  for (const index of positions) {
    const [entry] = finished('consensus.raft.log_entry', { 'consensus.node_id': leader, 'consensus.sequence': index, 'consensus.phase': 'execute' });
    t.like(entry?.attributes, { 'consensus.quorum_size': 2 });
    t.true((entry?.attributes['consensus.received_votes'] as number) >= 2, 'a majority held the entry when it committed');
    t.is(entry?.events.filter((e) => e.name === 'consensus.finality').length, 1);
  }
  const data = await consensusMetrics(t);
  for (let i = 0; i < 3; i++) {
    const of = { 'consensus.algorithm': 'raft', 'consensus.node_id': i };
    t.is(valueOf(data, 'consensus.throughput', of), positions.length, 'the no-op a leader appends carries no command');
    t.is(valueOf(data, 'consensus.proposal.applied', of), top);
    t.true((valueOf(data, 'consensus.view_changes', of) ?? 0) >= 1, 'the election moved every server to a later term');
    t.is(valueOf(data, 'consensus.has_leader', of), 1);
  }
  t.is(valueOf(data, 'consensus.proposal.pending', { 'consensus.algorithm': 'raft', 'consensus.node_id': leader }), 0);
  t.deepEqual(registryProblems(data), []);
});

/** A replica stand-in that answers every request at once, as if it had executed it at position 1. */
export const EchoReplica = defineBehavior({
  module: import.meta.url,
  export: 'EchoReplica',
  messages: schema.variants({ request: { command: commandSchema } }),
  start(ctx, args: { readonly node: number; readonly client: string }) {
    return {
      async receive(msg) {
        const client = await ctx.lookup(args.client);
        const { client: session, timestamp } = msg.command;
        client?.tell({ type: 'replies', node: args.node, replies: [{ client: session, timestamp, position: 1, view: 0, response: new Uint8Array([1]) }] });
      },
    };
  },
});

test.serial('the client records consensus.latency per accepted result, with the protocol and the signature policy in force as the command was submitted', async (t) => {
  const system = await startSystem(t);
  const replicas = ['echo-0', 'echo-1', 'echo-2', 'echo-3'];
  for (const [node, name] of replicas.entries()) await system.spawn(EchoReplica, { name, args: { node, client: 'client' } });
  const client = await system.spawn(Client, {
    name: 'client',
    args: { replicas, replyQuorum: 2, retryMs: 10_000, sessionPrefix: 'latency', leaderOf: 'none', algorithm: 'pbft', policy: 'hybrid' },
  });
  for (let k = 0; k < 3; k++) await client.ask({ type: 'submit', payload: new Uint8Array([k]) });
  // A cluster names the policy in force with each command: after a migration, the new one.
  for (let k = 3; k < 5; k++) await client.ask({ type: 'submit', payload: new Uint8Array([k]), policy: 'quantum' });
  const data = await consensusMetrics(t);
  const latency = data.find((m) => m.descriptor.name === 'consensus.latency');
  const count = (policy: string): number | undefined =>
    (latency?.dataPoints.find((p) => p.attributes['consensus.algorithm'] === 'pbft' && p.attributes['crypto.policy'] === policy)?.value as { count?: number } | undefined)?.count;
  t.is(count('hybrid'), 3, 'the client\'s own policy, for commands that name none');
  t.is(count('quantum'), 2, 'the policy the command names');
  t.deepEqual(registryProblems(data), []);
});
