/**
 * The actor system: the main thread's node, the root supervisor, the directory of running
 * incarnations, death watch, dead letters, the task pool, and the wiring between worker threads.
 */
import { MessageChannel, type Worker } from 'node:worker_threads';
import { refLabel, type ActorRef } from './actor-ref.js';
import { serializeError, type Behavior, type ExitReason } from './behavior.js';
import { realClock, type Clock } from './clock.js';
import { EventLoopMonitor, type ControlApi } from './control.js';
import type { DeadLetter, DeadLetterListener } from './dead-letter.js';
import { BatchWriter, EnvelopeKind, nameBytes } from './envelope.js';
import { ActorNotRunning, ConfigError, SpawnError, SystemStopped } from './errors.js';
import { startInThread, startInWorker, type Incarnation, type IncarnationSpec, type WorkerHost } from './incarnation.js';
import type { MailboxOptions } from './mailbox.js';
import { Node } from './node.js';
import { TaskPool } from './pool.js';
import type { RefShape } from '../schema/schema.js';
import { Supervisor, type ChildInfo, type SpawnOptions, type SupervisorOptions } from './supervisor.js';
import type { Task } from './task.js';
import { installContextManager, runtimeInstruments, type RuntimeInstruments } from './telemetry.js';
import type { SystemTelemetry, TelemetryOptions } from './telemetry-hub.js';
import type { FromWorker, ToWorker } from './thread-protocol.js';

/** Makes a system's telemetry, given the threads it reads metrics from. */
type TelemetryFactory = (threads: () => readonly number[]) => SystemTelemetry;

/** Options of {@link ActorSystem.start}. */
export interface ActorSystemOptions {
  /** Threads of the task pool (default: number of cores). The pool starts on first use. */
  readonly cryptoThreads?: number;
  /** Largest encoded message accepted, in bytes (default 8 MiB). */
  readonly maxMessageBytes?: number;
  /** Clock for in-thread actors' timers, asks and supervision (default: real time). */
  readonly clock?: Clock;
  /** Modules (URLs) imported first in every worker and pool thread, e.g. to register an OpenTelemetry SDK there. */
  readonly workerPreload?: readonly string[];
  /** Shared memory handed once to every pool thread (tasks read it with `poolShared(name)`). */
  readonly poolShared?: Readonly<Record<string, SharedArrayBuffer>>;
  /** The root supervisor (default: one_for_one, intensity 1 in 5 s, as in OTP). */
  readonly root?: Omit<SupervisorOptions, 'name' | 'restart'>;
  /** Default mailbox options for actors that do not set their own. */
  readonly mailbox?: MailboxOptions;
  /**
   * Exports the spans and metrics of every thread of the system (Prometheus endpoint, OTLP,
   * span processors), registering the process's OpenTelemetry providers. Without it the runtime
   * uses whatever SDK the program registered, in the main thread only (worker threads can get one
   * through `workerPreload`), or none, at no cost.
   */
  readonly telemetry?: TelemetryOptions;
}

/** Why the system stopped: `stop()` was called, or the root supervisor gave up. */
export type SystemExit = { readonly kind: 'stopped' } | { readonly kind: 'escalated'; readonly reason: ExitReason };

/** Status of one actor known to the system. */
export interface ActorInfo extends ChildInfo {
  /** Name of its supervisor. */
  readonly supervisor: string;
}

const MAIN_THREAD = 0;

/** The actor system. Start one with {@link ActorSystem.start}; stop it with {@link ActorSystem.stop}. */
export class ActorSystem {
  readonly #node: Node;
  readonly #clock: Clock;
  readonly #pool: TaskPool;
  readonly #telemetry: SystemTelemetry | undefined;
  readonly #monitor: EventLoopMonitor;
  readonly #preload: readonly string[];
  readonly #defaultMailbox: MailboxOptions | undefined;
  readonly #instruments: RuntimeInstruments;
  readonly #names = new Set<string>();
  readonly #directory = new Map<string, Incarnation>();
  readonly #workers = new Map<number, Worker>();
  /** Pairs of worker threads given a direct channel, as `:low:high:`. */
  readonly #introduced = new Set<string>();
  /** What to do when an incarnation (`name#incarnation`) ends: resolve a `watch`, signal a watcher. */
  /**
   * Per watched incarnation, who is told when it ends, by watcher: an actor watching an incarnation
   * again replaces its own entry, so a peer directory that re-watches on every lookup adds nothing.
   */
  readonly #watchers = new Map<string, Map<string | number, (reason: ExitReason | { readonly kind: 'noproc' }) => void>>();
  #waiters = 0;
  readonly #deadLetterListeners = new Set<DeadLetterListener>();
  readonly #workerHost: WorkerHost;
  readonly #root: Supervisor;
  #deadLetters = 0;
  #stopped = false;
  #exit!: (exit: SystemExit) => void;
  /** Resolves when the system has stopped, saying why. */
  readonly terminated: Promise<SystemExit>;

  /**
   * @internal Use {@link ActorSystem.start} (of this class or a subclass), which makes `telemetry`
   * from `options.telemetry`.
   */
  protected constructor(options: ActorSystemOptions, telemetry?: TelemetryFactory) {
    const maxMessageBytes = options.maxMessageBytes ?? 8 * 1024 * 1024;
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 64) throw new ConfigError(`maxMessageBytes must be an integer >= 64, got ${maxMessageBytes}`);
    this.#clock = options.clock ?? realClock;
    // First: instruments made below must come from the providers it registers.
    if (options.telemetry !== undefined && telemetry === undefined) throw new ConfigError('a system exporting telemetry is started with ActorSystem.start, which loads the SDK');
    this.#telemetry = telemetry?.(() => [...this.#workers.keys(), ...this.#pool.threadIds]);
    this.#monitor = new EventLoopMonitor(MAIN_THREAD);
    this.#preload = [...(this.#telemetry === undefined ? [] : [this.#telemetry.preload]), ...(options.workerPreload ?? [])];
    this.#pool = new TaskPool({
      ...(options.cryptoThreads === undefined ? {} : { threads: options.cryptoThreads }),
      preload: this.#preload,
      shared: options.poolShared ?? {},
      idleEventLoop: this.#telemetry !== undefined,
    });
    this.#defaultMailbox = options.mailbox;
    this.#instruments = runtimeInstruments();
    this.terminated = new Promise((resolve) => (this.#exit = resolve));
    this.#node = new Node({
      thread: MAIN_THREAD,
      maxMessageBytes,
      clock: this.#clock,
      instruments: this.#instruments,
      hooks: {
        connect: (thread) => queueMicrotask(() => this.#node.unreachable(thread)),
        deadLetter: (letter) => this.#emitDeadLetter(letter),
        lookup: async (name) => this.#directory.get(name)?.ref,
        watch: (watcher, target) => this.#watch(watcher, target),
        runTask: (job) => this.#pool.runJob(job),
      },
    });
    this.#workerHost = {
      node: this.#node,
      preload: this.#preload,
      monitor: this.#monitor,
      onWorkerControl: (thread, message) => this.#onWorkerControl(thread, message),
      threadStarted: (thread, worker) => void this.#workers.set(thread, worker),
      threadGone: (thread) => {
        if (!this.#workers.delete(thread)) return;
        this.#node.unreachable(thread);
        for (const pair of this.#introduced) if (pair.includes(`:${thread}:`)) this.#introduced.delete(pair);
        for (const other of this.#workers.keys()) this.#node.control(other, { op: 'peer-gone', thread } satisfies ToWorker);
      },
    };
    this.#root = this.#newSupervisor({ ...options.root, name: '/' }, (reason) => void this.#shutdown({ kind: 'escalated', reason }));
  }

  /** Starts an actor system in the calling thread. */
  static async start<S extends ActorSystem>(this: { readonly prototype: S }, options: ActorSystemOptions = {}): Promise<S> {
    installContextManager();
    const exported = options.telemetry;
    // The SDK is loaded only by a system that exports telemetry: every worker thread imports this
    // module (an actor's behavior imports the runtime), and the SDK with its exporters took most
    // of that import's time, paid again by each of a cluster's threads.
    const telemetry: TelemetryFactory | undefined =
      exported === undefined ? undefined : await import('./telemetry-hub.js').then(({ SystemTelemetry }) => (threads) => new SystemTelemetry(exported, threads));
    // `this` is ActorSystem or a subclass (knhk's own adds clusters); its constructor is protected.
    const system = new (this as unknown as new (options: ActorSystemOptions, telemetry?: TelemetryFactory) => S)(options, telemetry);
    try {
      await system.#telemetry?.start();
    } catch (error) {
      await system.stop();
      throw error;
    }
    return system;
  }

  /** The largest encoded message an actor of this system may send (`maxMessageBytes`). */
  get maxMessageBytes(): number {
    return this.#node.maxMessageBytes;
  }

  /** The system's telemetry when started with `telemetry`: its Prometheus URL, a merged metrics read, a span flush. */
  get telemetry(): SystemTelemetry | undefined {
    return this.#telemetry;
  }

  /** Starts an actor under the root supervisor. */
  spawn<Msg, Args, Reply>(behavior: Behavior<Msg, Args, Reply>, options: SpawnOptions<Args>): Promise<ActorRef<Msg, Reply>> {
    if (this.#stopped) return Promise.reject(new SystemStopped());
    return this.#root.spawn(behavior, { ...options, mailbox: options.mailbox ?? this.#defaultMailbox });
  }

  /** Starts a supervisor under the root supervisor. */
  supervisor(options: SupervisorOptions): Promise<Supervisor> {
    if (this.#stopped) return Promise.reject(new SystemStopped());
    return this.#root.supervisor(options);
  }

  /** The root supervisor. */
  get root(): Supervisor {
    return this.#root;
  }

  /** The current incarnation of a named actor, or `undefined`. */
  lookup<Msg = unknown, Reply = unknown>(name: string): ActorRef<Msg, Reply> | undefined {
    const running = this.#directory.get(name);
    return running ? this.#node.ref<Msg, Reply>(running.ref) : undefined;
  }

  /** Resolves when `ref`'s incarnation ends (at once if it already has), with the reason. */
  watch(ref: RefShape): Promise<ExitReason | { readonly kind: 'noproc' }> {
    return new Promise((resolve) => this.#onEnd(ref, ++this.#waiters, resolve));
  }

  /** The control plane of an actor incarnation (status, inspect, crash, exit). */
  control(ref: RefShape): ControlApi {
    const running = this.#running(ref);
    if (!running) throw new ActorNotRunning(refLabel(ref), 'no such incarnation is running');
    return running.control;
  }

  /** Runs a task on the system's pool. */
  runTask<In, Out>(task: Task<In, Out>, input: In): Promise<Out> {
    return this.#pool.run(task, input);
  }

  /** Subscribes to dead letters; returns the unsubscribe function. */
  onDeadLetter(listener: DeadLetterListener): () => void {
    this.#deadLetterListeners.add(listener);
    return () => this.#deadLetterListeners.delete(listener);
  }

  /** Dead letters reported so far (all threads). */
  get deadLetterCount(): number {
    return this.#deadLetters;
  }

  /** Every supervised actor and supervisor, with restart counts. */
  status(): ActorInfo[] {
    return this.#root.tree().flatMap((sup) => sup.children().map((c) => ({ ...c, supervisor: sup.name })));
  }

  /** Counters of the main thread's link to a thread: posts and frames (how well sends were coalesced), and batches sent in a buffer the thread handed back. */
  linkStats(thread: number): { readonly posts: number; readonly frames: number; readonly reused: number } | undefined {
    const link = this.#node.linkTo(thread);
    return link ? { posts: link.posts, frames: link.frames, reused: link.reused } : undefined;
  }

  /**
   * Fault injection: delivers raw bytes to `ref` as a message payload (`payload`) or as a whole
   * batch of frames (`batch`), exactly as if they had arrived from another thread or the network.
   */
  injectRaw(ref: RefShape, bytes: Uint8Array, as: 'payload' | 'batch' = 'payload'): void {
    let batch = bytes;
    if (as === 'payload') {
      const writer = new BatchWriter(bytes.length + 64);
      writer.push({ kind: EnvelopeKind.Tell, urgent: false, to: ref.name, toIncarnation: ref.incarnation, fromThread: MAIN_THREAD }, bytes);
      batch = writer.take();
    }
    if (ref.thread === MAIN_THREAD) this.#node.receiveBatch(batch);
    else {
      const worker = this.#workers.get(ref.thread);
      if (!worker) throw new ActorNotRunning(refLabel(ref), 'its thread is gone');
      worker.postMessage(batch);
    }
  }

  /** Stops every actor (last started first), the pool and the main thread's node. */
  stop(): Promise<void> {
    return this.#shutdown({ kind: 'stopped' });
  }

  async #shutdown(exit: SystemExit): Promise<void> {
    if (this.#stopped) return this.terminated.then(() => undefined);
    this.#stopped = true;
    await this.#root.shutdown();
    await this.#pool.close();
    this.#node.close();
    this.#monitor.close();
    await this.#telemetry?.shutdown();
    this.#exit(exit);
  }

  #newSupervisor(options: SupervisorOptions, onExit: (reason: ExitReason) => void): Supervisor {
    const host = {
      clock: this.#clock,
      startIncarnation: (spec: IncarnationSpec, exit: (reason: ExitReason) => void) => this.#startIncarnation(spec, exit),
      claimName: (name: string) => {
        if (name.length === 0) throw new ConfigError('an actor needs a non-empty name');
        nameBytes(name);
        if (this.#names.has(name)) throw new SpawnError(`the name ${name} is taken`);
        this.#names.add(name);
      },
      releaseName: (name: string) => void this.#names.delete(name),
      ref: <M, R>(shape: RefShape) => this.#node.ref<M, R>(shape),
      restarted: (name: string) => this.#instruments.restarts.add(1, { 'actor.name': name }),
    };
    return new Supervisor(host, options, onExit);
  }

  async #startIncarnation(spec: IncarnationSpec, onExit: (reason: ExitReason) => void): Promise<Incarnation> {
    if (this.#stopped) throw new SystemStopped();
    const start = spec.thread ? startInWorker : startInThread;
    const running = await start(this.#workerHost, spec, (reason) => {
      if (this.#directory.get(spec.name) === running) this.#directory.delete(spec.name);
      this.#terminated(running.ref, reason);
      onExit(reason);
    });
    this.#directory.set(spec.name, running);
    return running;
  }

  #terminated(ref: RefShape, reason: ExitReason): void {
    const key = refLabel(ref);
    for (const notify of this.#watchers.get(key)?.values() ?? []) notify(reason);
    this.#watchers.delete(key);
  }

  /** The running incarnation `ref` names, if it still runs. */
  #running(ref: RefShape): Incarnation | undefined {
    const current = this.#directory.get(ref.name);
    return current?.ref.incarnation === ref.incarnation ? current : undefined;
  }

  /** Calls `notify` when `ref`'s incarnation ends, or at once (`noproc`) if it is not running; `by` names the watch (one per watcher). */
  #onEnd(ref: RefShape, by: string | number, notify: (reason: ExitReason | { readonly kind: 'noproc' }) => void): void {
    if (!this.#running(ref)) {
      notify({ kind: 'noproc' });
      return;
    }
    const key = refLabel(ref);
    const watchers = this.#watchers.get(key) ?? new Map<string | number, (reason: ExitReason | { readonly kind: 'noproc' }) => void>();
    watchers.set(by, notify);
    this.#watchers.set(key, watchers);
  }

  #watch(watcher: RefShape, target: RefShape): void {
    this.#onEnd(target, refLabel(watcher), (reason) => this.#node.signal(watcher, { type: 'terminated', ref: target, reason }));
  }

  #onWorkerControl(thread: number, message: FromWorker): void {
    switch (message.op) {
      case 'connect': {
        const target = this.#workers.get(message.thread);
        if (!target || message.thread === thread) {
          this.#node.control(thread, { op: 'peer-gone', thread: message.thread } satisfies ToWorker);
          return;
        }
        // One channel per pair of threads: when both ask at once, the second request finds the
        // pair introduced and its port already on the way.
        const pair = thread < message.thread ? `:${thread}:${message.thread}:` : `:${message.thread}:${thread}:`;
        if (this.#introduced.has(pair)) return;
        this.#introduced.add(pair);
        const { port1, port2 } = new MessageChannel();
        this.#node.control(message.thread, { op: 'peer', thread, port: port2 } satisfies ToWorker, [port2]);
        this.#node.control(thread, { op: 'peer', thread: message.thread, port: port1 } satisfies ToWorker, [port1]);
        return;
      }
      case 'dead-letter':
        this.#emitDeadLetter(message.letter);
        return;
      case 'lookup':
        this.#node.control(thread, { op: 'lookup-result', id: message.id, shape: this.#directory.get(message.name)?.ref } satisfies ToWorker);
        return;
      case 'watch':
        this.#watch(message.watcher, message.target);
        return;
      case 'task':
        this.#pool.runJob(message.job).then(
          (value) => this.#node.control(thread, { op: 'task-result', id: message.id, ok: true, value } satisfies ToWorker),
          (error: unknown) => this.#node.control(thread, { op: 'task-result', id: message.id, ok: false, error: serializeError(error) } satisfies ToWorker),
        );
        return;
      default:
        return;
    }
  }

  #emitDeadLetter(letter: DeadLetter): void {
    this.#deadLetters++;
    for (const listener of this.#deadLetterListeners) {
      try {
        listener(letter);
      } catch (error) {
        // A listener's bug must not break delivery; it surfaces as the program's uncaught error.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

