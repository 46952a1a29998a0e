import test from 'ava';
import { context, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Observer } from './fixtures/actors.js';
import { startSystem } from './helpers/system.js';

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));

interface ExportedSpan {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly attributes: Record<string, unknown>;
}

test('trace context crosses a thread boundary: the sender span is the parent of the handling span', async (t) => {
  const system = await startSystem(t, { workerPreload: [new URL('./fixtures/otel-preload.js', import.meta.url).href] });
  const observer = await system.spawn(Observer, { name: 'observer', thread: true });
  const tracer = trace.getTracer('test');
  const client = tracer.startSpan('client.request');
  const seen = (await context.with(trace.setSpan(context.active(), client), () => observer.ask({ type: 'whoami' }))) as { traceId: string; spanId: string };
  client.end();

  t.is(seen.traceId, client.spanContext().traceId, 'the handler ran inside the same trace');
  const spans = (await observer.ask({ type: 'spans' })) as ExportedSpan[];
  const handling = spans.find((s) => s.spanId === seen.spanId);
  if (!handling) return t.fail(`no span ${seen.spanId} among ${JSON.stringify(spans)}`);
  t.is(handling.name, 'actor.receive');
  t.is(handling.parentSpanId, client.spanContext().spanId, 'parent = the span active in the sending thread');
  t.is(handling.attributes['actor.name'], 'observer');
  t.is(handling.attributes['actor.message.type'], 'whoami');
});

test('a message sent outside any span is handled outside any trace', async (t) => {
  const system = await startSystem(t, { workerPreload: [new URL('./fixtures/otel-preload.js', import.meta.url).href] });
  const observer = await system.spawn(Observer, { name: 'observer', thread: true });
  t.deepEqual(await observer.ask({ type: 'whoami' }), { traceId: null, spanId: null });
});
