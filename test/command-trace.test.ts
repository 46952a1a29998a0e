/**
 * One client command, one trace: the client's `consensus.command` span is the root, and every
 * replica's work on the command hangs from it — the position span of the round, block or entry
 * that orders it, the signer's signatures and the verifier's checks (down to the pool's crypto
 * spans) for its messages, and the replies. Checked for the three protocols on real clusters.
 */
import test from 'ava';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ActorSystem } from '../actors/system.js';
import { eventually } from './helpers/system.js';
import type { ConsensusAlgorithm } from '../protocols/consensus/index.js';

const POSITION_SPANS: Record<ConsensusAlgorithm, string> = { pbft: 'consensus.pbft.round', hotstuff: 'consensus.hotstuff.block', raft: 'consensus.raft.log_entry' };

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

for (const protocol of ['pbft', 'hotstuff', 'raft'] as const) {
  test.serial(`${protocol}: one client command yields one trace through client, leader, followers, signers and verifier`, async (t) => {
    const exporter = new InMemorySpanExporter();
    const system = await ActorSystem.start({ cryptoThreads: 2, telemetry: { spanProcessors: [new SimpleSpanProcessor(exporter)] } });
    t.teardown(() => system.stop());
    const n = protocol === 'raft' ? 3 : 4;
    const cluster = await system.spawnCluster({ protocol, n, policy: 'classical', kdfLog2N: 10 });
    // The first commands settle the leader, so that the traced one goes the usual way.
    for (let k = 0; k < 3; k++) await cluster.submit({ type: 'put', key: `warm-${k}`, value: 'w' }, { timeoutMs: 30_000 });
    const { position } = await cluster.submit({ type: 'put', key: 'traced', value: 'yes' }, { timeoutMs: 30_000 });
    // Every replica's span of the position ends when it executes it.
    for (let i = 0; i < n; i++) await cluster.executedUpTo(i, position);
    const expected = [`${cluster.id}/client`, `${cluster.id}/verifier`, ...Array.from({ length: n }, (_, i) => `${cluster.id}/replica-${i}`)];
    const commandOf = (spans: readonly ReadableSpan[]): ReadableSpan | undefined => spans.find((s) => s.name === 'consensus.command' && s.attributes['consensus.sequence'] === position);
    const handlersOf = (spans: readonly ReadableSpan[], traceId: string | undefined): Set<string> =>
      new Set(spans.filter((s) => s.name === 'actor.receive' && s.spanContext().traceId === traceId).map((s) => String(s.attributes['actor.name'])));
    // A flush leaves out a thread too busy to answer in time (telemetry-hub.ts), so on a loaded
    // machine its spans come later: the trace is read once every handler's are in, or after 30 s
    // (the assertions below then say what is missing).
    await eventually(async () => {
      await system.telemetry?.flush();
      const spans = exporter.getFinishedSpans();
      const handlers = handlersOf(spans, commandOf(spans)?.spanContext().traceId);
      return expected.every((name) => handlers.has(name));
    }, 30_000).catch(() => undefined);

    const spans = exporter.getFinishedSpans();
    const command = commandOf(spans);
    if (command === undefined) return t.fail(`no consensus.command span for position ${position}`);
    t.is(parentOf(command), undefined, 'submitted outside any span, the command is the root of its trace');
    t.is(command.attributes['consensus.algorithm'], protocol);
    const traced = spans.filter((s) => s.spanContext().traceId === command.spanContext().traceId);
    const ids = new Set(traced.map((s) => s.spanContext().spanId));
    const orphans = traced.filter((s) => s !== command && !ids.has(parentOf(s) ?? ''));
    t.deepEqual(
      orphans.map((s) => `${s.name} (parent ${parentOf(s) ?? 'none'})`),
      [],
      'every other span of the trace descends from spans of the trace',
    );

    const receivers = handlersOf(traced, command.spanContext().traceId);
    for (const name of expected) t.true(receivers.has(name), `${name} handled a message of the trace (handlers: ${[...receivers].sort().join(', ')})`);
    t.true([...receivers].some((name) => /\/signer-\d+$/.test(name)), 'a signer signed in the trace');

    const positions = traced.filter((s) => s.name === POSITION_SPANS[protocol] && s.attributes['consensus.sequence'] === position);
    t.deepEqual(
      [...new Set(positions.map((s) => s.attributes['consensus.node_id']))].sort(),
      Array.from({ length: n }, (_, i) => i),
      `every replica's ${POSITION_SPANS[protocol]} span of position ${position} is in the trace`,
    );
    const names = new Set(traced.map((s) => s.name));
    for (const name of ['crypto.sign', 'crypto.verify', 'consensus.state_transition']) t.true(names.has(name), `${name} is in the trace`);
    // Steps serve many commands at once: each is a root of its own, linked to the inputs it stepped.
    const traceId = command.spanContext().traceId;
    t.false(names.has('consensus.step'), 'no step is inside a command\'s trace');
    t.true(
      spans.some((s) => s.name === 'consensus.step' && s.links.some((link) => link.context.traceId === traceId)),
      'a step links to the handling of a message of the trace',
    );
  });
}
