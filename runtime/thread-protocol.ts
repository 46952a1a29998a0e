/**
 * Control messages between the main thread and an actor's worker thread. Data (frames) travel as
 * `Uint8Array` batches on the same port; everything else is one of these objects.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ExitReason, SerializedError } from './behavior.js';
import type { DeadLetter } from './dead-letter.js';
import type { MailboxOptions } from './mailbox.js';
import type { PoolJob } from './pool-worker.js';
import type { RefShape } from '../schema/schema.js';

/** What a worker thread is started with (`workerData`). */
export interface WorkerBoot {
  readonly module: string;
  readonly export: string;
  readonly name: string;
  readonly incarnation: number;
  readonly args: unknown;
  readonly maxMessageBytes: number;
  readonly mailbox: MailboxOptions | undefined;
  readonly preload: readonly string[];
  readonly controlPort: MessagePort;
}

/** Main thread → worker. */
export type ToWorker =
  | { readonly op: 'peer'; readonly thread: number; readonly port: MessagePort }
  | { readonly op: 'peer-gone'; readonly thread: number }
  | { readonly op: 'stop' }
  /** Sent after the worker reported `exited`: no frame from the main thread follows it. */
  | { readonly op: 'retire' }
  | { readonly op: 'lookup-result'; readonly id: number; readonly shape: RefShape | undefined }
  | { readonly op: 'task-result'; readonly id: number; readonly ok: boolean; readonly value?: unknown; readonly error?: SerializedError };

/** Worker → main thread. */
export type FromWorker =
  | { readonly op: 'started' }
  | { readonly op: 'start-failed'; readonly error: SerializedError }
  | { readonly op: 'exited'; readonly reason: ExitReason }
  /** Everything received before `retire` has been handled (dead-lettered): terminate now. */
  | { readonly op: 'retired' }
  | { readonly op: 'connect'; readonly thread: number }
  | { readonly op: 'dead-letter'; readonly letter: DeadLetter }
  | { readonly op: 'lookup'; readonly id: number; readonly name: string }
  | { readonly op: 'watch'; readonly watcher: RefShape; readonly target: RefShape }
  | { readonly op: 'task'; readonly id: number; readonly job: PoolJob };

/** True if a value received on a control port has the shape of a control message. */
export function isControl<T extends { op: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { op?: unknown }).op === 'string';
}
