/**
 * What crosses a system's telemetry channel between its threads and the main thread: finished
 * spans as plain data (structured-clone safe), metric snapshots, and the requests for them.
 */
import type { Attributes, HrTime, Link, SpanContext, SpanKind, SpanStatus } from '@opentelemetry/api';
import type { ScopeMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** A finished span without its methods and resource. */
export interface SpanRecord {
  readonly name: string;
  readonly kind: SpanKind;
  readonly context: SpanContext;
  readonly parent: SpanContext | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly duration: HrTime;
  readonly status: SpanStatus;
  readonly attributes: Attributes;
  readonly links: Link[];
  readonly events: ReadableSpan['events'];
  readonly scope: ReadableSpan['instrumentationScope'];
  readonly dropped: readonly [attributes: number, events: number, links: number];
}

/** Messages from a thread to the main thread. */
export type FromThread =
  | { readonly kind: 'spans'; readonly thread: number; readonly spans: readonly SpanRecord[] }
  | { readonly kind: 'metrics'; readonly thread: number; readonly id: number; readonly scopeMetrics: readonly ScopeMetrics[] }
  | { readonly kind: 'flushed'; readonly thread: number; readonly id: number };

/** Messages from the main thread to every thread. */
export type ToThread = { readonly kind: 'collect'; readonly id: number } | { readonly kind: 'flush'; readonly id: number };

/** A span as data. */
export function spanRecord(span: ReadableSpan): SpanRecord {
  return {
    name: span.name,
    kind: span.kind,
    context: { ...span.spanContext() },
    parent: span.parentSpanContext === undefined ? undefined : { ...span.parentSpanContext },
    startTime: span.startTime,
    endTime: span.endTime,
    duration: span.duration,
    status: span.status,
    attributes: span.attributes,
    links: span.links,
    events: span.events,
    scope: span.instrumentationScope,
    dropped: [span.droppedAttributesCount, span.droppedEventsCount, span.droppedLinksCount],
  };
}

/** A span record as the SDK's exporters take it, attributed to the main thread's resource. */
export function readableSpan(record: SpanRecord, resource: ReadableSpan['resource']): ReadableSpan {
  const context = record.context;
  return {
    name: record.name,
    kind: record.kind,
    spanContext: () => context,
    ...(record.parent === undefined ? {} : { parentSpanContext: record.parent }),
    startTime: record.startTime,
    endTime: record.endTime,
    duration: record.duration,
    status: record.status,
    attributes: record.attributes,
    links: record.links,
    events: record.events,
    ended: true,
    resource,
    instrumentationScope: record.scope,
    droppedAttributesCount: record.dropped[0],
    droppedEventsCount: record.dropped[1],
    droppedLinksCount: record.dropped[2],
  };
}

/** Whether a value read off the channel is a message of this protocol (the channel is a BroadcastChannel: anyone can post). */
export function isWire<T extends { readonly kind: string }>(value: unknown, kinds: readonly T['kind'][]): value is T {
  return typeof value === 'object' && value !== null && kinds.includes((value as { kind?: unknown }).kind as T['kind']);
}
