/**
 * Telemetry plumbing of the runtime. The API packages are always used; an SDK is the embedding
 * program's choice (none registered: spans and instruments are no-ops costing ~nothing).
 * Trace context crosses threads inside the envelope header (trace id, span id, flags).
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  context,
  metrics,
  trace,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type ObservableUpDownCounter,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { EnvelopeHeader } from './envelope.js';

/** Instrumentation scope name of the runtime. */
export const SCOPE = 'knhk.runtime';

/**
 * `create(provider)`, made at first use and made again whenever the global provider `current()`
 * answers has changed since. A system registers its SDK when it starts and unregisters it when it
 * stops; what was made under a provider since disabled would record into nothing.
 */
function perProvider<P, T>(current: () => P, create: (provider: P) => T): () => T {
  let provider: P | undefined;
  let made: T | undefined;
  return () => {
    const now = current();
    if (made === undefined || now !== provider) {
      provider = now;
      made = create(now);
    }
    return made;
  };
}

/**
 * The tracer of one instrumentation scope under the global tracer provider in force. The API's
 * proxy lets an SDK registered after a tracer was made take effect, but not a second one: a
 * tracer made before `trace.disable()` keeps the first provider.
 */
export function tracerOf(scope: string): () => Tracer {
  return perProvider<TracerProvider, Tracer>(
    () => trace.getTracerProvider(),
    (provider) => provider.getTracer(scope),
  );
}

const tracer = tracerOf(SCOPE);

/**
 * False when the thread started with `KNHK_TELEMETRY=off` in its environment: knhk's consensus,
 * crypto and receipt instrumentation is then not called at all, as if compiled out — the baseline
 * the overhead benchmark (`npm run bench -- telemetry`) compares the no-SDK cost against. Read
 * once per thread, when it loads this module.
 */
export const INSTRUMENTED: boolean = process.env['KNHK_TELEMETRY'] !== 'off';

/** One tick of the time budget, in milliseconds (125 µs; a handler may take 8 ticks). */
export const TICK_MS = 0.125;

let contextManagerInstalled = false;

/**
 * Installs the async-hooks context manager unless the program already registered one, so that
 * the active span survives `await` inside handlers.
 */
export function installContextManager(): void {
  if (contextManagerInstalled) return;
  contextManagerInstalled = true;
  const manager = new AsyncLocalStorageContextManager();
  if (context.setGlobalContextManager(manager.enable())) return;
  manager.disable();
}

/** The trace context a message or task carries across a thread: the sender's active span. */
export type TraceFields = Pick<EnvelopeHeader, 'traceId' | 'spanId' | 'traceFlags'>;

/** The trace fields for the currently active span, if any. */
export function traceFields(): TraceFields {
  const sc = trace.getSpanContext(context.active());
  if (!sc || !isSpanContextValid(sc)) return {};
  return { traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags };
}

/** Runs `work` in context `ctx`, or as it is when there is none to carry (nothing traced: no context switch at all). */
export function within<T>(ctx: Context | undefined, work: () => T): T {
  return ctx === undefined ? work() : context.with(ctx, work);
}

/** The remote parent context an envelope or a task carries, or `undefined`. */
export function parentContext(header: TraceFields): Context | undefined {
  if (header.traceId === undefined || header.spanId === undefined) return undefined;
  const sc = { traceId: header.traceId, spanId: header.spanId, traceFlags: header.traceFlags ?? 0, isRemote: true };
  return isSpanContextValid(sc) ? trace.setSpanContext(ROOT_CONTEXT, sc) : undefined;
}

/** Starts the span of handling one traced message, as a child of the sender's span. */
export function startHandleSpan(parent: Context, actor: string, messageType: string): { span: Span; ctx: Context } {
  const span = tracer().startSpan(
    'actor.receive',
    { kind: SpanKind.CONSUMER, attributes: { 'actor.name': actor, 'actor.message.type': messageType } },
    parent,
  );
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Ends a handling span, marking it failed if `error` is given. */
export function endHandleSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/**
 * Instruments of one instrumentation scope, made by `create` from the global meter provider at
 * first use, and made again whenever another provider has been registered since: metrics have no
 * proxy provider, so an instrument made before an SDK was registered would stay a no-op.
 */
export function instrumentsOf<T>(scope: string, create: (meter: Meter) => T): () => T {
  return perProvider<MeterProvider, T>(
    () => metrics.getMeterProvider(),
    (provider) => create(provider.getMeter(scope)),
  );
}

/** The runtime's metric instruments, created from the meter provider active when a system starts. */
export interface RuntimeInstruments {
  readonly handlerTicks: Histogram;
  readonly deadLetters: Counter;
  readonly restarts: Counter;
  /** Observed at collection time from every mailbox, so that queuing a message costs nothing extra. */
  readonly mailboxDepth: ObservableUpDownCounter;
}

/** Creates the runtime's instruments from the current global meter provider. */
export function runtimeInstruments(): RuntimeInstruments {
  const meter = metrics.getMeter(SCOPE);
  return {
    handlerTicks: meter.createHistogram('actor.handler.ticks', {
      description: 'Synchronous time of one message handler, in ticks of 125 µs (budget: 8).',
      unit: '{tick}',
      advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128] },
    }),
    deadLetters: meter.createCounter('actor.dead_letters', { description: 'Messages that could not be delivered.', unit: '{message}' }),
    restarts: meter.createCounter('actor.restarts', { description: 'Actor restarts performed by supervisors.', unit: '{restart}' }),
    mailboxDepth: meter.createObservableUpDownCounter('actor.mailbox.depth', { description: 'Messages queued in an actor mailbox and not yet handled.', unit: '{message}' }),
  };
}

export { context };
