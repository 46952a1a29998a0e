/**
 * The control plane: inspection and fault injection, separate from the data plane. For a
 * worker-backed actor it is a comlink proxy over a dedicated `MessagePort`; for an in-thread
 * actor the same interface is served locally.
 */
import { metrics, type ObservableCallback, type ObservableGauge } from '@opentelemetry/api';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { HandlerStats } from './cell.js';
import { SCOPE } from './telemetry.js';

/** Event-loop delay of an actor's thread, in milliseconds (a diagnostic; see DESIGN.md). */
export interface EventLoopDelay {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** What the control plane reports about one actor incarnation. */
export interface ActorStatus {
  readonly name: string;
  readonly incarnation: number;
  readonly thread: number;
  readonly state: 'running' | 'exited';
  readonly handler: HandlerStats;
  readonly eventLoopDelay: EventLoopDelay;
}

/** Control operations, all asynchronous so that in-thread and worker-backed actors look alike. */
export interface ControlApi {
  /** Current status and statistics. */
  status(): Promise<ActorStatus>;
  /** The actor's `inspect()` view of its state. */
  inspect(): Promise<unknown>;
  /**
   * Crashes the actor as if its handler had thrown `new Error(reason)` outside any handler.
   * Resolves once the crash is under way (or, worker-backed, its thread has ended already).
   */
  crash(reason: string): Promise<void>;
  /** Worker-backed only: ends the thread with `process.exit(code)` (a crash for the supervisor); resolves as {@link crash} does. */
  exit(code: number): Promise<void>;
  /**
   * Ends the incarnation from outside, as a crash: a worker thread is terminated (this works even
   * when its event loop is blocked), an in-thread actor is crashed. Resolves once it has exited.
   */
  kill(reason: string): Promise<void>;
}

/** What a worker thread serves over comlink (`kill` is done from outside the thread). */
export type ThreadControl = Omit<ControlApi, 'kill'>;

/**
 * Samples the event-loop delay of the current thread and reports its p99 as the observable gauge
 * `actor.event_loop.delay` (ms, attribute `thread.id`).
 */
export class EventLoopMonitor {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  readonly #gauge: ObservableGauge;
  readonly #observe: ObservableCallback;

  constructor(thread: number) {
    this.#histogram.enable();
    this.#gauge = metrics.getMeter(SCOPE).createObservableGauge('actor.event_loop.delay', {
      description: 'p99 event-loop delay of an actor thread (a diagnostic: it includes time the OS did not schedule the thread).',
      unit: 'ms',
    });
    const attributes = { 'thread.id': thread };
    this.#observe = (result) => result.observe(this.read().p99, attributes);
    this.#gauge.addCallback(this.#observe);
  }

  /** Percentiles observed so far, in milliseconds. */
  read(): EventLoopDelay {
    const h = this.#histogram;
    return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
  }

  /** Stops sampling and reporting. */
  close(): void {
    this.#gauge.removeCallback(this.#observe);
    this.#histogram.disable();
  }
}
