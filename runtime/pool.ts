/**
 * The system's worker pool for CPU-heavy tasks (Piscina). Created on first use, so systems that
 * never run a task start no pool threads; destroyed when the system stops.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ConfigError, SystemStopped } from './errors.js';
import type { PoolJob } from './pool-worker.js';
import type { Task } from './task.js';
import { traceFields } from './telemetry.js';

/** Pool options. */
export interface PoolOptions {
  /** Pool threads (default: the number of cores). */
  readonly threads?: number;
  /** Modules imported in every pool thread before the first task. */
  readonly preload?: readonly string[];
  /** Shared memory handed once to every pool thread; tasks read it with `poolShared(name)`. */
  readonly shared?: Readonly<Record<string, SharedArrayBuffer>>;
  /**
   * Pool threads keep their event loop turning between tasks (Piscina's asynchronous atomics)
   * instead of blocking on the next task, so that they can answer other messages, such as the
   * telemetry channel's reads. Off by default: a blocked thread picks its next task up sooner.
   */
  readonly idleEventLoop?: boolean;
}

/** A lazily started Piscina pool running {@link Task}s. */
export class TaskPool {
  readonly threads: number;
  readonly #preload: readonly string[];
  readonly #shared: Readonly<Record<string, SharedArrayBuffer>>;
  readonly #idleEventLoop: boolean;
  #piscina: Piscina<PoolJob, unknown> | undefined;
  #closed = false;

  constructor(options: PoolOptions = {}) {
    this.threads = options.threads ?? availableParallelism();
    if (!Number.isSafeInteger(this.threads) || this.threads < 1) throw new ConfigError(`cryptoThreads must be a positive integer, got ${this.threads}`);
    this.#preload = options.preload ?? [];
    this.#shared = options.shared ?? {};
    this.#idleEventLoop = options.idleEventLoop ?? false;
  }

  /** Runs a task on a pool thread. */
  run<In, Out>(task: Task<In, Out>, input: In): Promise<Out> {
    return this.runJob({ module: task.module, export: task.export, input, ...traceFields() }) as Promise<Out>;
  }

  /** Runs a job already reduced to module, export and input (jobs forwarded from worker actors). */
  runJob(job: PoolJob): Promise<unknown> {
    if (this.#closed) return Promise.reject(new SystemStopped());
    this.#piscina ??= new Piscina<PoolJob, unknown>({
      filename: new URL('./pool-worker.js', import.meta.url).href,
      // All threads start with the pool: a thread spawned later, mid-burst, would block the
      // dispatching thread while it is constructed.
      minThreads: this.threads,
      maxThreads: this.threads,
      workerData: { preload: this.#preload, shared: this.#shared },
      atomics: this.#idleEventLoop ? 'async' : 'sync',
    });
    return this.#piscina.run(job);
  }

  /** Thread ids of the pool's threads (none before the first task). */
  get threadIds(): number[] {
    return this.#piscina?.threads.map((worker) => worker.threadId) ?? [];
  }

  /** Completed tasks so far. */
  get completed(): number {
    return this.#piscina?.completed ?? 0;
  }

  /** Stops the pool threads. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#piscina?.destroy();
    this.#piscina = undefined;
  }
}
