/**
 * Test helpers for telemetry: the SDK's spans and metrics in the shape of the live check
 * (registry/live-check.ts), what of them the registry does not declare, and a free loopback port
 * for exporters to listen on.
 */
import { createServer, type AddressInfo } from 'node:net';
import { SpanKind, type Attributes } from '@opentelemetry/api';
import { DataPointType, type MetricData } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { loadRegistry } from '../../registry/check.js';
import { liveCheck, type EmittedMetric, type EmittedSpan, type LiveCheckReport, type LiveCheckScope } from '../../registry/live-check.js';
import type { Instrument, Registry, SpanKindName } from '../../registry/model.js';

const KINDS: Record<SpanKind, SpanKindName> = {
  [SpanKind.INTERNAL]: 'internal',
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
};

/** A span as the live check takes it; `kind` is left out when the span came without one (as data from another thread). */
export function emittedSpan(span: Pick<ReadableSpan, 'name' | 'attributes'> & { readonly kind?: SpanKind; readonly events: readonly { readonly name: string; readonly attributes?: Attributes }[] }): EmittedSpan {
  return {
    name: span.name,
    ...(span.kind === undefined ? {} : { kind: KINDS[span.kind] }),
    attributes: span.attributes,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes ?? {} })),
  };
}

/** The instrument a metric's data came from. */
function instrumentOf(metric: MetricData): Instrument {
  switch (metric.dataPointType) {
    case DataPointType.SUM:
      return metric.isMonotonic ? 'counter' : 'updowncounter';
    case DataPointType.GAUGE:
      return 'gauge';
    default:
      return 'histogram';
  }
}

/** A metric as the live check takes it. */
export function emittedMetric(metric: MetricData): EmittedMetric {
  return { name: metric.descriptor.name, unit: metric.descriptor.unit, instrument: instrumentOf(metric), series: metric.dataPoints.map((p) => p.attributes) };
}

let registry: Registry | undefined;

/** The live check of SDK spans and metrics against the project's registry. */
export function checkTelemetry(spans: readonly Parameters<typeof emittedSpan>[0][], metrics: readonly MetricData[], scope?: LiveCheckScope): LiveCheckReport {
  registry ??= loadRegistry();
  return liveCheck(registry, { spans: spans.map(emittedSpan), metrics: metrics.map(emittedMetric) }, scope);
}

/** What of `spans` and `metrics` the registry does not declare, or declares otherwise. */
export function undeclaredTelemetry(spans: readonly Parameters<typeof emittedSpan>[0][], metrics: readonly MetricData[] = []): readonly string[] {
  return checkTelemetry(spans, metrics).undeclared;
}

/** A TCP port free on loopback a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
