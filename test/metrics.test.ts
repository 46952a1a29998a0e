import test from 'ava';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type CollectionResult } from '@opentelemetry/sdk-metrics';
import { Counter } from './fixtures/actors.js';
import { eventually, nextDeadLetter, startSystem } from './helpers/system.js';

class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

const reader = new TestReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

function find(result: CollectionResult, name: string) {
  return result.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
}

test('the runtime reports handler time in ticks, dead letters, restarts and event-loop delay', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const counter = await system.spawn(Counter, { name: 'metered', args: { from: 0 } });
  for (let i = 0; i < 10; i++) counter.tell({ type: 'add', n: 1 });
  t.is(await counter.ask({ type: 'get' }), 10);
  const letter = nextDeadLetter(system);
  system.injectRaw(counter, new Uint8Array([0xc1]));
  await letter;
  await t.throwsAsync(counter.ask({ type: 'boom' }));
  await eventually(() => system.lookup('metered')?.incarnation === 1);

  const { resourceMetrics, errors } = await reader.collect();
  t.deepEqual(errors, []);
  const result = { resourceMetrics, errors };
  const ticks = find(result, 'actor.handler.ticks');
  t.is(ticks?.descriptor.unit, '{tick}');
  const point = ticks?.dataPoints.find((p) => p.attributes['actor.name'] === 'metered');
  t.true(((point?.value as { count?: number } | undefined)?.count ?? 0) >= 11, 'one sample per message handled');
  const dead = find(result, 'actor.dead_letters');
  t.true(dead?.dataPoints.some((p) => p.attributes['actor.dead_letter.reason'] === 'invalid' && (p.value as number) >= 1));
  const restarts = find(result, 'actor.restarts');
  t.true(restarts?.dataPoints.some((p) => p.attributes['actor.name'] === 'metered' && (p.value as number) === 1));
  const depth = find(result, 'actor.mailbox.depth');
  t.is(depth?.descriptor.unit, '{message}');
  t.true(depth?.dataPoints.some((p) => p.attributes['actor.name'] === 'metered' && p.value === 0), 'observed per actor; empty once every message is handled');
  const lag = find(result, 'actor.event_loop.delay');
  t.is(lag?.descriptor.unit, 'ms');
  t.true(lag?.dataPoints.some((p) => p.attributes['thread.id'] === 0 && (p.value as number) >= 0));
});

test('mailbox depth counts the messages queued behind a handler that is still running', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'queued', args: { from: 0 } });
  // The handler awaits a timer far longer than the collection below takes, so the adds wait behind it.
  const slow = counter.ask({ type: 'slow', ms: 2_000 });
  for (let i = 0; i < 5; i++) counter.tell({ type: 'add', n: 1 });
  const depth = find(await reader.collect(), 'actor.mailbox.depth')?.dataPoints.find((p) => p.attributes['actor.name'] === 'queued');
  // The five adds, and the slow message itself if the cell has not taken it out to run yet.
  t.true(depth?.value === 5 || depth?.value === 6, `depth ${String(depth?.value)}`);
  t.is(await slow, 0);
  t.is(await counter.ask({ type: 'get' }), 5);
});
