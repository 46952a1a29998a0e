/**
 * Preloaded into every worker and pool thread of a system started with `telemetry`: registers
 * this thread's meter provider (read on demand by the main thread) and, when spans are wanted,
 * a tracer provider whose finished spans go to the main thread in batches. The channels' name
 * comes in this module's URL (`?channel=…&spans=1`), so each system gets its own.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { metrics, SpanStatusCode, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { isWire, spanRecord, type FromThread, type SpanRecord, type ToThread } from './telemetry-wire.js';

/** Spans held before a batch goes out at once. */
const BATCH_SPANS = 256;
/** Longest a finished span waits for its batch, ms. */
const BATCH_DELAY_MS = 100;

/** A reader that only answers when asked: the main thread decides when metrics are read. */
class OnDemandReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** Sends finished spans to the main thread, in batches. */
class ForwardingProcessor implements SpanProcessor {
  #batch: SpanRecord[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly post: (message: FromThread) => void) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    this.#batch.push(spanRecord(span));
    // A span that ended in error goes up at once: the thread may be about to end with it (a
    // handler that throws crashes its incarnation, and the thread is terminated).
    if (this.#batch.length >= BATCH_SPANS || span.status.code === SpanStatusCode.ERROR) this.send();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.send(), BATCH_DELAY_MS);
      this.#timer.unref();
    }
  }

  /** Sends what is held now. */
  send(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#batch.length === 0) return;
    const spans = this.#batch;
    this.#batch = [];
    this.post({ kind: 'spans', thread: threadId, spans });
  }

  async forceFlush(): Promise<void> {
    this.send();
  }

  async shutdown(): Promise<void> {
    this.send();
  }
}

const params = new URL(import.meta.url).searchParams;
const name = params.get('channel') ?? 'knhk-telemetry';
// Two channels, so that what a thread sends up (span batches) reaches only the main thread, the
// one listener on the way up; a channel that nobody in a thread listens to costs that thread nothing.
const up = new BroadcastChannel(`${name}/up`);
const down = new BroadcastChannel(`${name}/down`);
// The channels must not keep an idle thread alive; the thread's actor or pool does that.
up.unref();
down.unref();
const post = (message: FromThread): void => up.postMessage(message);

const reader = new OnDemandReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
const forwarding = params.get('spans') === '1' ? new ForwardingProcessor(post) : undefined;
if (forwarding !== undefined) trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [forwarding] }));

down.onmessage = (event: unknown): void => {
  const message = (event as { data?: unknown }).data;
  if (!isWire<ToThread>(message, ['collect', 'flush'])) return;
  if (message.kind === 'flush') {
    forwarding?.send();
    post({ kind: 'flushed', thread: threadId, id: message.id });
    return;
  }
  reader.collect().then(
    ({ resourceMetrics }) => post({ kind: 'metrics', thread: threadId, id: message.id, scopeMetrics: resourceMetrics.scopeMetrics }),
    () => post({ kind: 'metrics', thread: threadId, id: message.id, scopeMetrics: [] }),
  );
};
