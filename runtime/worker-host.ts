/**
 * Entry point of an actor's worker thread: loads the behavior by module URL and export name,
 * runs it in a cell on this thread's node, and speaks the control protocol with the main thread.
 * When the incarnation ends, the main thread terminates the thread.
 */
import { expose } from 'comlink';
import { nodeEndpoint } from './comlink-node.js';
import { parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { isBehavior, serializeError } from './behavior.js';
import type { Cell } from './cell.js';
import { realClock } from './clock.js';
import { EventLoopMonitor, type ThreadControl } from './control.js';
import { reviveError, SpawnError } from './errors.js';
import type { Endpoint } from './link.js';
import { Node } from './node.js';
import { installContextManager, runtimeInstruments } from './telemetry.js';
import { isControl, type FromWorker, type ToWorker, type WorkerBoot } from './thread-protocol.js';

const MAIN_THREAD = 0;

async function main(boot: WorkerBoot, port: Endpoint): Promise<void> {
  const post = (message: FromWorker): void => node.control(MAIN_THREAD, message);
  const waiting = new Map<number, (value: ToWorker) => void>();
  let nextId = 0;
  const request = (make: (id: number) => FromWorker): Promise<ToWorker> =>
    new Promise((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      post(make(id));
    });

  for (const url of boot.preload) await import(url);
  installContextManager();
  const node: Node = new Node({
    thread: threadId,
    maxMessageBytes: boot.maxMessageBytes,
    clock: realClock,
    instruments: runtimeInstruments(),
    hooks: {
      connect: (thread) => post({ op: 'connect', thread }),
      deadLetter: (letter) => post({ op: 'dead-letter', letter }),
      lookup: async (name) => {
        const answer = await request((id) => ({ op: 'lookup', id, name }));
        return answer.op === 'lookup-result' ? answer.shape : undefined;
      },
      watch: (watcher, target) => post({ op: 'watch', watcher, target }),
      runTask: async (job) => {
        const answer = await request((id) => ({ op: 'task', id, job }));
        if (answer.op !== 'task-result') throw new SpawnError('unexpected answer to a task request');
        if (!answer.ok) throw reviveError(answer.error ?? { message: 'task failed' });
        return answer.value;
      },
    },
  });
  const monitor = new EventLoopMonitor(threadId);
  const ports = new Map<number, MessagePort>();

  const onControl = (value: unknown): void => {
    if (!isControl<ToWorker>(value)) return;
    switch (value.op) {
      case 'peer':
        ports.set(value.thread, value.port);
        node.attach(value.thread, value.port as unknown as Endpoint);
        break;
      case 'peer-gone': {
        node.unreachable(value.thread);
        const gone = ports.get(value.thread);
        if (gone) {
          node.detachEndpoint(gone as unknown as Endpoint);
          gone.close();
        }
        ports.delete(value.thread);
        break;
      }
      case 'stop':
        if (cell) void cell.stop('shutdown');
        else post({ op: 'exited', reason: { kind: 'shutdown' } });
        break;
      case 'retire':
        node.flush();
        post({ op: 'retired' });
        break;
      case 'lookup-result':
      case 'task-result':
        waiting.get(value.id)?.(value);
        waiting.delete(value.id);
        break;
    }
  };

  let cell: Cell | undefined;
  node.attach(MAIN_THREAD, port, onControl);
  try {
    const mod = (await import(boot.module)) as Record<string, unknown>;
    const behavior = mod[boot.export];
    if (!isBehavior(behavior)) throw new SpawnError(`${boot.module} does not export a behavior named ${boot.export}`);
    const started = node.spawnCell(behavior, {
      name: boot.name,
      incarnation: boot.incarnation,
      mailbox: boot.mailbox,
      onExit: (reason) => {
        monitor.close();
        // Replies and tells this actor produced go out before the main thread terminates us.
        node.flush();
        post({ op: 'exited', reason });
      },
    });
    cell = started;
    await started.start(boot.args);
  } catch (error) {
    post({ op: 'start-failed', error: serializeError(error) });
    return;
  }

  const running = cell;
  const control: ThreadControl = {
    status: async () => ({
      name: running.name,
      incarnation: running.incarnation,
      thread: threadId,
      state: running.accepting ? 'running' : 'exited',
      handler: running.stats,
      eventLoopDelay: monitor.read(),
    }),
    inspect: async () => running.inspect(),
    crash: async (reason) => {
      setImmediate(() => {
        throw new Error(reason);
      });
    },
    exit: async (code) => {
      setImmediate(() => process.exit(code));
    },
  };
  expose(control, nodeEndpoint(boot.controlPort));
  post({ op: 'started' });
}

if (!parentPort) throw new Error('worker-host must run in a worker thread');
void main(workerData as WorkerBoot, parentPort as unknown as Endpoint);

