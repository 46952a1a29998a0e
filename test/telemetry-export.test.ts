/**
 * A system started with `telemetry` sees the spans and metrics of all its threads: worker-thread
 * actors and pool threads send theirs to the main thread, metrics are merged per series, and the
 * merge is what Prometheus scrapes and OTLP receives. Bad options are configuration errors.
 */
import test from 'ava';
import { createServer, type AddressInfo } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { context, metrics, trace } from '@opentelemetry/api';
import { DataPointType, MeterProvider, type CollectionResult, type Histogram, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ActorSystem, ConfigError, type ActorSystemOptions } from '../runtime/index.js';
import { mergeScopeMetrics } from '../runtime/telemetry-merge.js';
import { Counter, Observer } from './fixtures/actors.js';
import { PoolWork } from './fixtures/telemetry.js';
import { built, modulesLoadedBy } from './helpers/modules.js';
import { freePort } from './helpers/telemetry.js';

test('the runtime loads the OpenTelemetry SDK only for a system that exports telemetry: every worker thread imports the runtime', async (t) => {
  const loaded = (options: string): Promise<string[]> =>
    modulesLoadedBy(`const { ActorSystem } = await import(${JSON.stringify(built('runtime/index.js'))});
      const system = await ActorSystem.start(${options});
      await system.stop();`);
  const sdk = (urls: string[]): string[] => urls.filter((url) => url.includes('/@opentelemetry/sdk-') || url.includes('/@opentelemetry/exporter-'));
  const plain = await loaded('{}');
  t.true(plain.some((url) => url.endsWith('/runtime/system.js')), 'the hook saw the runtime load');
  t.deepEqual(sdk(plain), []);
  const exporting = await loaded('{ telemetry: {} }');
  t.true(sdk(exporting).some((url) => url.includes('/@opentelemetry/sdk-metrics/')), sdk(exporting).join(' '));
});

function metric(result: CollectionResult, name: string) {
  return result.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
}

test.serial('spans and metrics of worker and pool threads reach the main thread, merged, and Prometheus scrapes them over loopback', async (t) => {
  const exporter = new InMemorySpanExporter();
  const port = await freePort();
  const system = await ActorSystem.start({ cryptoThreads: 2, telemetry: { spanProcessors: [new SimpleSpanProcessor(exporter)], prometheus: { port } } });
  t.teardown(() => system.stop());
  const telemetry = system.telemetry;
  if (telemetry === undefined) return t.fail('no telemetry');
  t.is(telemetry.prometheusUrl, `http://127.0.0.1:${port}/metrics`);

  const worker = await system.spawn(Observer, { name: 'observer', thread: true });
  const counter = await system.spawn(Counter, { name: 'counter', thread: true, args: { from: 0 } });
  const client = trace.getTracer('test').startSpan('client.request');
  await context.with(trace.setSpan(context.active(), client), () => worker.ask({ type: 'whoami' }));
  client.end();
  for (let i = 0; i < 5; i++) counter.tell({ type: 'add', n: 1 });
  t.is(await counter.ask({ type: 'get' }), 5);
  // Two jobs at once, so that both pool threads are likely to run one; the sum is the same either way.
  t.deepEqual(await Promise.all([system.runTask(PoolWork, { n: 3 }), system.runTask(PoolWork, { n: 4 })]), [3, 4]);

  await telemetry.flush();
  const spans = exporter.getFinishedSpans();
  const handling = spans.find((s) => s.name === 'actor.receive' && s.attributes['actor.name'] === 'observer');
  t.truthy(handling, 'the worker thread handled the message inside a span and sent it up');
  t.is(handling?.parentSpanContext?.spanId, client.spanContext().spanId, 'whose parent is the sender span in the main thread');
  t.is(handling?.spanContext().traceId, client.spanContext().traceId);
  t.is(handling?.resource.attributes['service.name'], 'knhk');
  t.is(spans.filter((s) => s.name === 'test.pool.work').length, 2, 'pool threads send their spans up too');

  const collected = await telemetry.collect();
  const work = metric(collected, 'test.pool.work');
  t.is(work?.dataPoints.length, 1, 'one series, whichever pool threads recorded it');
  t.is(work?.dataPoints[0]?.value, 7, 'summed over threads');
  const ticks = metric(collected, 'actor.handler.ticks');
  const counted = ticks?.dataPoints.find((p) => p.attributes['actor.name'] === 'counter');
  t.true(((counted?.value as Histogram | undefined)?.count ?? 0) >= 6, 'a worker-thread actor reports its handler time');
  const threads = new Set(metric(collected, 'actor.event_loop.delay')?.dataPoints.map((p) => p.attributes['thread.id']));
  t.true(threads.size >= 3, `event-loop delay of the main thread and of each actor thread (got threads ${[...threads].join(', ')})`);

  const scrape = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.is(scrape.status, 200);
  const text = await scrape.text();
  t.regex(text, /^test_pool_work_total\{[^}]*kind="pool"[^}]*\} 7$/m);
  t.regex(text, /^actor_handler_ticks_count\{[^}]*actor_name="counter"[^}]*\} \d+$/m);
  t.regex(text, /service_name="knhk"/);
});

test.serial('spans and metrics go to an OTLP/HTTP collector', async (t) => {
  const received: { path: string; bytes: number }[] = [];
  let arrived: () => void = () => {};
  const both = new Promise<void>((resolve) => (arrived = resolve));
  const collector = createHttpServer((request: IncomingMessage, response) => {
    let bytes = 0;
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => {
      received.push({ path: request.url ?? '', bytes });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (received.some((r) => r.path === '/v1/metrics') && received.some((r) => r.path === '/v1/traces')) arrived();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => collector.close(() => resolve())));
  const { port } = collector.address() as AddressInfo;
  const system = await ActorSystem.start({ cryptoThreads: 1, telemetry: { otlp: { endpoint: `http://127.0.0.1:${port}/`, intervalMs: 200 } } });
  t.teardown(() => system.stop());
  await system.runTask(PoolWork, { n: 1 });
  await system.telemetry?.flush();
  await both;
  t.true(received.filter((r) => r.path === '/v1/traces').every((r) => r.bytes > 0));
  t.true(received.filter((r) => r.path === '/v1/metrics').every((r) => r.bytes > 0));
});

test.serial('bad telemetry options, a taken port and an SDK registered by someone else are configuration errors', async (t) => {
  for (const telemetry of [{ prometheus: { port: 0 } }, { prometheus: { port: 70_000 } }, { otlp: { endpoint: 'localhost:4318' } }, { otlp: { endpoint: 'http://x', intervalMs: 5 } }, { collectTimeoutMs: 0 }]) {
    await t.throwsAsync(ActorSystem.start({ telemetry }), { instanceOf: ConfigError }, JSON.stringify(telemetry));
  }
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const { port } = taken.address() as AddressInfo;
  await t.throwsAsync(ActorSystem.start({ telemetry: { prometheus: { port } } }), { instanceOf: ConfigError, message: /could not be served/ });
  await new Promise((resolve) => taken.close(resolve));

  // A subclass whose constructor leaves out the SDK ActorSystem.start loaded has no telemetry to give.
  class Forgetful extends ActorSystem {
    constructor(options: ActorSystemOptions) {
      super(options);
    }
  }
  await t.throwsAsync(Forgetful.start({ telemetry: {} }), { instanceOf: ConfigError, message: /ActorSystem.start/ });

  const theirs = new MeterProvider();
  metrics.setGlobalMeterProvider(theirs);
  await t.throwsAsync(ActorSystem.start({ telemetry: {} }), { instanceOf: ConfigError, message: /registered already/ });
  t.is(metrics.getMeterProvider(), theirs, 'the program keeps its own provider');
  metrics.disable();
  // After all that, a system with telemetry starts, reads its metrics, and gives the process's providers back when it stops.
  const system = await ActorSystem.start({ telemetry: {} });
  const registered = metrics.getMeterProvider();
  t.deepEqual((await system.telemetry?.collect())?.errors, []);
  await system.stop();
  t.not(metrics.getMeterProvider(), registered, 'the system unregistered its meter provider');
});

test('merging sums counters and histograms of one series across threads, keeps other series apart, and keeps the latest gauge', (t) => {
  const at = (s: number): [number, number] => [s, 0];
  const scope = { name: 'knhk.test' };
  const thread = (count: number, counts: number[], gauge: number, seconds: number, key: string): ScopeMetrics[] => [
    {
      scope,
      metrics: [
        { descriptor: { name: 'c', description: '', unit: '', valueType: 0 }, aggregationTemporality: 1, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: [{ startTime: at(seconds), endTime: at(seconds + 1), attributes: { key }, value: count }] },
        {
          descriptor: { name: 'h', description: '', unit: '', valueType: 1 },
          aggregationTemporality: 1,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: [{ startTime: at(seconds), endTime: at(seconds + 1), attributes: {}, value: { buckets: { boundaries: [1, 2], counts }, count: counts.reduce((a, b) => a + b, 0), sum: 10, min: seconds, max: seconds + 5 } }],
        },
        { descriptor: { name: 'g', description: '', unit: '', valueType: 1 }, aggregationTemporality: 1, dataPointType: DataPointType.GAUGE, dataPoints: [{ startTime: at(seconds), endTime: at(seconds + 1), attributes: {}, value: gauge }] },
      ],
    } as unknown as ScopeMetrics,
  ];
  const [merged] = mergeScopeMetrics([thread(2, [1, 0, 2], 5, 10, 'a'), thread(3, [0, 4, 1], 9, 20, 'a'), thread(7, [0, 0, 0], 1, 5, 'b')]);
  const byName = new Map(merged?.metrics.map((m) => [m.descriptor.name, m]));
  t.deepEqual(
    byName.get('c')?.dataPoints.map((p) => [p.attributes.key, p.value]),
    [
      ['a', 5],
      ['b', 7],
    ],
  );
  const h = byName.get('h')?.dataPoints[0]?.value as Histogram;
  t.deepEqual(h.buckets.counts, [1, 4, 3]);
  t.is(h.count, 8);
  t.is(h.sum, 30);
  t.is(h.min, 5);
  t.is(h.max, 25);
  t.deepEqual(byName.get('h')?.dataPoints[0]?.startTime, at(5), 'the series starts where its earliest thread started');
  t.is(byName.get('g')?.dataPoints[0]?.value, 9, 'the gauge read last wins');
});
