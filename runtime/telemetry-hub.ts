/**
 * The OpenTelemetry SDK of a system started with `telemetry`: one view of the spans and metrics
 * of all its threads. Each worker and pool thread runs its own providers (telemetry-thread.ts,
 * preloaded); the main thread's are registered here. Spans come up in batches and go to the
 * span processors; metrics are read from every thread when an exporter collects (Prometheus on
 * scrape, OTLP on its interval) and merged (telemetry-merge.ts), so a series is counted once for
 * the system, whichever threads it was recorded in.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { metrics, trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader, PeriodicExportingMetricReader, type CollectionResult, type MetricProducer, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ConfigError } from './errors.js';
import { mergeScopeMetrics } from './telemetry-merge.js';
import { isWire, readableSpan, type FromThread, type ToThread } from './telemetry-wire.js';

/** What a system's telemetry exports, and where (see {@link ActorSystemOptions.telemetry}). */
export interface TelemetryOptions {
  /** `service.name` of the exported resource (default `knhk`). */
  readonly serviceName?: string;
  /** Processors fed with the finished spans of every thread, e.g. a `SimpleSpanProcessor` around an exporter. */
  readonly spanProcessors?: readonly SpanProcessor[];
  /** Serves the metrics of every thread at `http://host:port/metrics` for Prometheus to scrape. */
  readonly prometheus?: { readonly port: number; readonly host?: string };
  /** Sends spans and metrics over OTLP/HTTP to a collector at `endpoint` (e.g. `http://localhost:4318`), metrics every `intervalMs` (default 10 s). */
  readonly otlp?: { readonly endpoint: string; readonly intervalMs?: number };
  /** How long a collection waits for each thread's metrics, ms (default 1000); a thread that misses it is left out of that collection. */
  readonly collectTimeoutMs?: number;
}

/** A reader the system reads the main thread's metrics with, when an exporter asks. */
class OnDemandReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

let systems = 0;

interface Pending {
  readonly expected: Set<number>;
  readonly replies: ScopeMetrics[][];
  readonly done: () => void;
}

/**
 * A system's telemetry: registers the main thread's providers globally, names the module its
 * threads preload, and is the {@link MetricProducer} its exporters read.
 */
export class SystemTelemetry implements MetricProducer {
  /** URL of the module every worker and pool thread imports first. */
  readonly preload: string;
  readonly #resource;
  readonly #up: BroadcastChannel;
  readonly #down: BroadcastChannel;
  readonly #mainReader = new OnDemandReader();
  readonly #meterProvider: MeterProvider;
  readonly #tracerProvider: BasicTracerProvider | undefined;
  readonly #processors: readonly SpanProcessor[];
  readonly #exportProvider: MeterProvider | undefined;
  readonly #prometheus: PrometheusExporter | undefined;
  readonly #prometheusUrl: string | undefined;
  readonly #collectTimeoutMs: number;
  /** The system's worker and pool threads now: a collection waits for each of them. */
  readonly #threads: () => readonly number[];
  readonly #pending = new Map<number, Pending>();
  #nextRequest = 0;
  #closed = false;

  /**
   * Registers the global meter (and, if spans are exported, tracer) provider of this thread.
   * @param threads the ids of the system's worker and pool threads at the time of asking.
   * @throws {ConfigError} for bad options, or when another SDK is registered already: one
   * process-wide registration belongs to one owner.
   */
  constructor(options: TelemetryOptions, threads: () => readonly number[]) {
    this.#threads = threads;
    const port = options.prometheus?.port;
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535)) throw new ConfigError(`telemetry.prometheus.port must be a TCP port (1–65535), got ${port}`);
    const interval = options.otlp?.intervalMs ?? 10_000;
    if (!Number.isSafeInteger(interval) || interval < 100) throw new ConfigError(`telemetry.otlp.intervalMs must be an integer ≥ 100, got ${interval}`);
    const endpoint = options.otlp?.endpoint.replace(/\/+$/, '');
    if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) throw new ConfigError(`telemetry.otlp.endpoint must be an http(s) URL, got ${JSON.stringify(options.otlp?.endpoint)}`);
    this.#collectTimeoutMs = options.collectTimeoutMs ?? 1000;
    if (!Number.isSafeInteger(this.#collectTimeoutMs) || this.#collectTimeoutMs < 1) throw new ConfigError(`telemetry.collectTimeoutMs must be a positive integer, got ${options.collectTimeoutMs}`);

    this.#resource = resourceFromAttributes({ 'service.name': options.serviceName ?? 'knhk' });
    this.#processors = [...(options.spanProcessors ?? []), ...(endpoint === undefined ? [] : [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))])];
    this.#meterProvider = new MeterProvider({ resource: this.#resource, readers: [this.#mainReader] });
    if (!metrics.setGlobalMeterProvider(this.#meterProvider)) throw new ConfigError('a global OpenTelemetry meter provider is registered already: start the system without `telemetry` to use it, or let knhk register one');
    if (this.#processors.length > 0) {
      this.#tracerProvider = new BasicTracerProvider({ resource: this.#resource, spanProcessors: [...this.#processors] });
      if (!trace.setGlobalTracerProvider(this.#tracerProvider)) {
        metrics.disable();
        throw new ConfigError('a global OpenTelemetry tracer provider is registered already: start the system without span exporters to use it');
      }
    }

    const readers: MetricReader[] = [];
    if (port !== undefined) {
      const host = options.prometheus?.host ?? '127.0.0.1';
      this.#prometheus = new PrometheusExporter({ host, port, preventServerStart: true, metricProducers: [this] });
      this.#prometheusUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`;
      readers.push(this.#prometheus);
    }
    if (endpoint !== undefined) {
      readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }), exportIntervalMillis: interval, metricProducers: [this] }));
    }
    // The exporters' own provider holds no instruments: what they export is this producer's merge.
    this.#exportProvider = readers.length > 0 ? new MeterProvider({ resource: this.#resource, readers }) : undefined;

    const channel = `knhk-telemetry-${process.pid}-${++systems}`;
    this.#up = new BroadcastChannel(`${channel}/up`);
    this.#down = new BroadcastChannel(`${channel}/down`);
    this.#up.unref();
    this.#down.unref();
    this.#up.onmessage = (event: unknown) => this.#receive((event as { data?: unknown }).data);
    const url = new URL('./telemetry-thread.js', import.meta.url);
    url.searchParams.set('channel', channel);
    url.searchParams.set('spans', this.#processors.length > 0 ? '1' : '0');
    this.preload = url.href;
  }

  /** Starts the Prometheus endpoint, if one was asked for. */
  async start(): Promise<void> {
    try {
      await this.#prometheus?.startServer();
    } catch (error) {
      throw new ConfigError(`the Prometheus endpoint ${this.#prometheusUrl} could not be served: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Where Prometheus scrapes this system, if it serves metrics. */
  get prometheusUrl(): string | undefined {
    return this.#prometheusUrl;
  }

  /** The metrics of every thread, merged; what Prometheus and OTLP export. */
  async collect(): Promise<CollectionResult> {
    const [main, replies] = await Promise.all([this.#mainReader.collect(), this.#ask('collect')]);
    return {
      resourceMetrics: { resource: this.#resource, scopeMetrics: mergeScopeMetrics([main.resourceMetrics.scopeMetrics, ...replies]) },
      errors: main.errors,
    };
  }

  /** Resolves once every thread has sent its finished spans and the span processors have flushed. */
  async flush(): Promise<void> {
    if (this.#tracerProvider === undefined) return;
    await this.#ask('flush');
    await this.#tracerProvider.forceFlush();
  }

  /** Stops the exporters (flushing what they hold) and unregisters the providers. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up.close();
    this.#down.close();
    for (const pending of this.#pending.values()) pending.done();
    this.#pending.clear();
    await Promise.allSettled([this.#exportProvider?.shutdown(), this.#tracerProvider?.shutdown(), this.#meterProvider.shutdown()]);
    metrics.disable();
    if (this.#tracerProvider !== undefined) trace.disable();
  }

  /**
   * Asks every thread to `kind` and waits for their answers (the metric snapshots, for a
   * collection), at most the collect timeout: a thread still starting, or busy, is left out.
   */
  async #ask(kind: ToThread['kind']): Promise<ScopeMetrics[][]> {
    const id = ++this.#nextRequest;
    const replies: ScopeMetrics[][] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answered = new Promise<void>((done) => {
      const expected = new Set(this.#threads());
      this.#pending.set(id, { expected, replies, done });
      if (expected.size === 0) done();
      timer = setTimeout(done, this.#collectTimeoutMs);
    });
    this.#post({ kind, id });
    await answered;
    clearTimeout(timer);
    this.#pending.delete(id);
    return replies;
  }

  #post(message: ToThread): void {
    this.#down.postMessage(message);
  }

  #receive(message: unknown): void {
    if (!isWire<FromThread>(message, ['spans', 'metrics', 'flushed'])) return;
    switch (message.kind) {
      case 'spans':
        for (const record of message.spans) {
          const span = readableSpan(record, this.#resource);
          for (const processor of this.#processors) processor.onEnd(span);
        }
        return;
      case 'metrics':
      case 'flushed': {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) return;
        // A thread that started after the request was sent answers too, and counts.
        const awaited = pending.expected.delete(message.thread);
        if (message.kind === 'metrics') pending.replies.push([...message.scopeMetrics]);
        if (awaited && pending.expected.size === 0) pending.done();
        return;
      }
    }
  }
}
