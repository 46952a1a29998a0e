/**
 * Starting one incarnation of an actor, in the main thread or in a worker thread of its own, and
 * stopping it again. Both kinds are handled identically by supervisors through {@link Incarnation}.
 */
import { releaseProxy, wrap, type Remote } from 'comlink';
import { nodeEndpoint } from './comlink-node.js';
import { MessageChannel, Worker, type ResourceLimits } from 'node:worker_threads';
import { serializeError, type Behavior, type ExitReason } from './behavior.js';
import type { ActorStatus, ControlApi, EventLoopMonitor, ThreadControl } from './control.js';
import { ActorNotRunning, ConfigError, SpawnError } from './errors.js';
import type { Endpoint } from './link.js';
import type { MailboxOptions } from './mailbox.js';
import type { Node } from './node.js';
import type { RefShape } from '../schema/schema.js';
import { isControl, type FromWorker, type ToWorker, type WorkerBoot } from './thread-protocol.js';

/** A running incarnation, as its supervisor sees it. */
export interface Incarnation {
  readonly ref: RefShape;
  /** The control plane of this incarnation. */
  readonly control: ControlApi;
  /** Asks the actor to stop; kills it after `timeoutMs`. Resolves once it has exited. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Everything needed to start an incarnation. */
export interface IncarnationSpec {
  readonly behavior: Behavior<unknown, unknown, unknown>;
  readonly name: string;
  readonly incarnation: number;
  readonly args: unknown;
  readonly thread: boolean;
  readonly mailbox: MailboxOptions | undefined;
  readonly resourceLimits: ResourceLimits | undefined;
}

/** What starting a worker-backed incarnation needs from the system. */
export interface WorkerHost {
  readonly node: Node;
  readonly preload: readonly string[];
  readonly monitor: EventLoopMonitor;
  /** Handles a control message from a worker (connect, lookup, watch, task, dead letter). */
  onWorkerControl(thread: number, message: FromWorker): void;
  /** Registers a live worker thread (so other threads can connect to it). */
  threadStarted(thread: number, worker: Worker): void;
  /** Called once a worker thread has exited. */
  threadGone(thread: number): void;
}

/** Arms the kill of a shutdown; an infinite timeout (OTP's `infinity`) never kills. */
function killTimer(ms: number, kill: () => void): () => void {
  if (ms === Infinity) return () => undefined;
  const timer = setTimeout(kill, ms);
  return () => clearTimeout(timer);
}

/** Starts an incarnation in the calling (main) thread. */
export async function startInThread(host: WorkerHost, spec: IncarnationSpec, onExit: (reason: ExitReason) => void): Promise<Incarnation> {
  let started = false;
  let earlyExit: ExitReason | undefined;
  let exited!: () => void;
  const exit = new Promise<void>((resolve) => (exited = resolve));
  const cell = host.node.spawnCell(spec.behavior, {
    name: spec.name,
    incarnation: spec.incarnation,
    mailbox: spec.mailbox,
    onExit: (reason) => {
      exited();
      if (started) onExit(reason);
      else earlyExit = reason;
    },
  });
  try {
    await cell.start(spec.args);
  } catch (error) {
    cell.crash(error);
    throw new SpawnError(`${spec.name} failed to start: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  started = true;
  // An actor that stopped itself inside `start` did start: its exit is reported like any other,
  // once the caller holds the incarnation.
  const stoppedEarly = earlyExit;
  if (stoppedEarly) setImmediate(() => onExit(stoppedEarly));
  const status = async (): Promise<ActorStatus> => ({
    ...cell.shape,
    state: cell.accepting ? 'running' : 'exited',
    handler: cell.stats,
    eventLoopDelay: host.monitor.read(),
  });
  return {
    ref: cell.shape,
    control: {
      status,
      inspect: async () => cell.inspect(),
      crash: async (reason) => cell.crash(new Error(reason)),
      exit: async () => {
        throw new ConfigError(`${spec.name} runs in the main thread; it has no thread to exit`);
      },
      kill: async (reason) => {
        cell.crash(new Error(`killed: ${reason}`));
        await exit;
      },
    },
    async shutdown(timeoutMs) {
      const cancel = killTimer(timeoutMs, () => cell.crash(new Error(`killed: no exit within ${timeoutMs} ms of shutdown`)));
      // A stop hook that never settles must not hold the shutdown: the kill timer ends it.
      void cell.stop('shutdown');
      await exit;
      cancel();
    },
  };
}

/** Starts an incarnation in a worker thread of its own. */
export function startInWorker(host: WorkerHost, spec: IncarnationSpec, onExit: (reason: ExitReason) => void): Promise<Incarnation> {
  const { port1, port2 } = new MessageChannel();
  const boot: WorkerBoot = {
    module: spec.behavior.module,
    export: spec.behavior.export,
    name: spec.name,
    incarnation: spec.incarnation,
    args: spec.args,
    maxMessageBytes: host.node.maxMessageBytes,
    mailbox: spec.mailbox,
    preload: host.preload,
    controlPort: port2,
  };
  let worker: Worker;
  try {
    worker = new Worker(new URL('./worker-host.js', import.meta.url), {
      workerData: boot,
      transferList: [port2],
      ...(spec.resourceLimits ? { resourceLimits: spec.resourceLimits } : {}),
    });
  } catch (error) {
    port1.close();
    return Promise.reject(new SpawnError(`cannot start a thread for ${spec.name}`, { cause: error }));
  }
  const thread = worker.threadId;
  const ref = { name: spec.name, incarnation: spec.incarnation, thread };
  const remote: Remote<ThreadControl> = wrap<ThreadControl>(nodeEndpoint(port1));
  let reason: ExitReason | undefined;
  let started = false;
  let exited!: () => void;
  const exit = new Promise<void>((resolve) => (exited = resolve));
  host.threadStarted(thread, worker);
  // A comlink call to a thread that has exited would never settle; it fails instead.
  const notRunning = (): ActorNotRunning => new ActorNotRunning(`${spec.name}#${spec.incarnation}`, 'its thread has exited');
  let ended = false;
  const gone = exit.then(() => {
    throw notRunning();
  });
  gone.catch(() => undefined);
  const whileAlive = <T>(call: () => Promise<T>): Promise<T> => (ended ? Promise.reject(notRunning()) : Promise.race([call(), gone]));
  // A crash or an exit asked for ends the thread, and its end can overtake the call's answer.
  const ending = (call: () => Promise<void>): Promise<void> => (ended ? Promise.reject(notRunning()) : Promise.race([call(), exit]));
  // Once the incarnation is over, the thread is unreachable at once (what is sent to it from now on
  // becomes a dead letter, not a message lost in a dying thread), and then terminated.
  const retire = (): void => {
    host.threadGone(thread);
    void worker.terminate();
  };

  return new Promise<Incarnation>((resolve, reject) => {
    host.node.attach(thread, worker as unknown as Endpoint, (value) => {
      if (!isControl<FromWorker>(value)) return;
      switch (value.op) {
        case 'started':
          started = true;
          resolve(incarnation);
          break;
        case 'start-failed':
          reason = { kind: 'crash', error: value.error };
          retire();
          break;
        case 'exited':
          // The incarnation is over but its thread still answers: frames the main thread sent
          // before it learnt this are drained there and come back as dead letters (`retire`, then
          // `retired`), instead of dying with the thread.
          reason = value.reason;
          host.threadGone(thread);
          worker.postMessage({ op: 'retire' } satisfies ToWorker);
          break;
        case 'retired':
          void worker.terminate();
          break;
        default:
          host.onWorkerControl(thread, value);
      }
    });
    worker.on('error', (error) => {
      reason ??= { kind: 'crash', error: serializeError(error) };
    });
    worker.on('exit', (code) => {
      ended = true;
      const final = reason ?? { kind: 'crash', error: { name: 'ThreadExit', message: `thread exited with code ${code}` } };
      host.node.detachEndpoint(worker as unknown as Endpoint);
      remote[releaseProxy]();
      port1.close();
      host.threadGone(thread);
      exited();
      if (started) onExit(final);
      else if (final.kind === 'crash') reject(new SpawnError(`${spec.name} failed to start: ${final.error.message}`, { cause: final.error }));
      else reject(new SpawnError(`${spec.name} failed to start: ${final.kind}`));
    });

    const incarnation: Incarnation = {
      ref,
      control: {
        status: () => whileAlive(() => remote.status()),
        inspect: () => whileAlive(() => remote.inspect()),
        crash: (why) => ending(() => remote.crash(why)),
        exit: (code) => ending(() => remote.exit(code)),
        kill: async (why) => {
          reason ??= { kind: 'crash', error: { name: 'Killed', message: `killed: ${why}` } };
          retire();
          await exit;
        },
      },
      async shutdown(timeoutMs) {
        const cancel = killTimer(timeoutMs, () => {
          reason ??= { kind: 'crash', error: { name: 'Killed', message: `no exit within ${timeoutMs} ms of shutdown` } };
          retire();
        });
        host.node.control(thread, { op: 'stop' } satisfies ToWorker);
        await exit;
        cancel();
      },
    };
  });
}
