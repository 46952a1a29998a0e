/**
 * A link carries frames from this thread to one other thread. Frames sent in the same turn of the
 * event loop are coalesced into one `postMessage` (urgent frames first), and the batch is posted
 * at its exact size with its buffer transferred, never cloned.
 */
import type { MessagePort } from 'node:worker_threads';
import { BatchWriter, type EnvelopeHeader } from './envelope.js';

/** The subset of `MessagePort` / `Worker` / `parentPort` a link uses. */
export interface Endpoint {
  postMessage(value: unknown, transfer?: readonly (ArrayBuffer | MessagePort)[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

// Past this many bytes a batch leaves at once rather than at the end of the turn, which bounds
// both memory and the latency the first frame of a long burst pays.
const FLUSH_BYTES = 256 * 1024;

/** Outbound half of a connection to another thread. */
export class Link {
  readonly thread: number;
  #endpoint: Endpoint | undefined;
  readonly #urgent = new BatchWriter(1024);
  readonly #bulk = new BatchWriter();
  #scheduled = false;
  /** Batches posted so far (each one `postMessage`). */
  posts = 0;
  /** Frames posted so far. */
  frames = 0;

  /** A link without an endpoint buffers until {@link Link.attach}. */
  constructor(thread: number, endpoint?: Endpoint) {
    this.thread = thread;
    this.#endpoint = endpoint;
  }

  /** True once an endpoint is attached. */
  get connected(): boolean {
    return this.#endpoint !== undefined;
  }

  /** Gives a pending link its endpoint and sends what waited. */
  attach(endpoint: Endpoint): void {
    this.#endpoint = endpoint;
    this.flush();
  }

  /** Queues one frame for the end of the current turn. */
  push(header: EnvelopeHeader, payload: Uint8Array): void {
    (header.urgent ? this.#urgent : this.#bulk).push(header, payload);
    if (this.#urgent.byteLength + this.#bulk.byteLength >= FLUSH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Posts a control object after any frames queued before it. */
  control(value: unknown, transfer: readonly MessagePort[] = []): void {
    this.flush();
    this.#endpoint?.postMessage(value, transfer);
  }

  /** Sends the pending batch now (no-op while unconnected). */
  flush(): void {
    this.#scheduled = false;
    const endpoint = this.#endpoint;
    if (!endpoint) return;
    const count = this.#urgent.count + this.#bulk.count;
    if (count === 0) return;
    const batch = this.takePending();
    this.posts++;
    this.frames += count;
    endpoint.postMessage(batch, [batch.buffer as ArrayBuffer]);
  }

  /** Removes and returns every frame not yet posted, as one batch (urgent frames first). */
  takePending(): Uint8Array {
    if (this.#urgent.count === 0) return this.#bulk.take();
    if (this.#bulk.count === 0) return this.#urgent.take();
    const urgent = this.#urgent.take();
    const bulk = this.#bulk.take();
    const batch = new Uint8Array(urgent.length + bulk.length);
    batch.set(urgent);
    batch.set(bulk, urgent.length);
    return batch;
  }
}
