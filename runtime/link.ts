/**
 * A link carries frames from this thread to one other thread. Frames sent in the same turn of the
 * event loop are coalesced into one `postMessage` (urgent frames first).
 *
 * Batch buffers are transferred and make round trips: the receiving thread copies the frames out
 * and hands the buffer back through its own link to the sender, riding along with its next post,
 * and the sender's writer fills it again. A batch under {@link CLONE_BYTES} is the exception: it is
 * cloned and stays where it arrived. What a link posts is therefore either a batch (`Uint8Array`)
 * or a {@link Post} array carrying returned buffers as well.
 */
import type { MessagePort } from 'node:worker_threads';
import { BatchWriter, CLONE_BYTES, type EnvelopeHeader } from './envelope.js';

/** A post with buffers handed back: a batch or none, then the returned buffers. */
export type Post = readonly [Uint8Array | null, ...ArrayBuffer[]];

/** The subset of `MessagePort` / `Worker` / `parentPort` a link uses. */
export interface Endpoint {
  postMessage(value: unknown, transfer?: readonly (ArrayBuffer | MessagePort)[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

// A batch leaves at once when its buffer is full rather than at the end of the turn, which bounds
// both memory and the latency the first frame of a long burst pays. Buffers stay below the size
// from which the C allocator maps memory afresh for each one (128 KB by default in glibc): freshly
// mapped pages, faulted in by one thread and unmapped by another, cost more than the copying.
const BATCH_BYTES = 64 * 1024;

// Returned buffers ride along with batches; only when they amount to this much memory with no
// batch to carry them do they make a post of their own. At most MAX_RETURNS wait; beyond that a
// buffer is left to the collector.
const RETURN_ALONE_BYTES = 2 * BATCH_BYTES;
const MAX_RETURNS = 8;

/** Outbound half of a connection to another thread. */
export class Link {
  readonly thread: number;
  #endpoint: Endpoint | undefined;
  readonly #urgent = new BatchWriter(1024);
  readonly #bulk = new BatchWriter(BATCH_BYTES);
  #returns: ArrayBuffer[] = [];
  #returnedBytes = 0;
  #scheduled = false;
  /** Batches posted so far (each one `postMessage`). */
  posts = 0;
  /** Frames posted so far. */
  frames = 0;

  /** Batches posted in a buffer the other thread handed back (see the module comment). */
  get reused(): number {
    return this.#urgent.reused + this.#bulk.reused;
  }

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
    const writer = header.urgent ? this.#urgent : this.#bulk;
    if (writer.count > 0 && writer.full(payload.length)) this.flush();
    writer.push(header, payload);
    this.#schedule();
  }

  /**
   * Hands a batch buffer that arrived from the other thread back to it, once its frames have been
   * copied out. It leaves with the next batch, or alone once enough memory waits.
   */
  giveBack(buffer: ArrayBuffer): void {
    if (this.#returns.length >= MAX_RETURNS) return;
    this.#returns.push(buffer);
    this.#returnedBytes += buffer.byteLength;
    if (this.#returnedBytes >= RETURN_ALONE_BYTES) this.#schedule();
  }

  /** Takes a buffer the other thread handed back, to write a later batch in. */
  recycle(buffer: ArrayBuffer): void {
    this.#bulk.recycle(buffer);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
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
    const returns = this.#returns;
    if (count === 0 && this.#returnedBytes < RETURN_ALONE_BYTES) return;
    const batch = count === 0 ? null : this.takePending();
    if (batch) this.posts++;
    this.frames += count;
    const transfer = batch && batch.byteLength >= CLONE_BYTES ? [batch.buffer as ArrayBuffer] : [];
    if (returns.length === 0 && batch) {
      endpoint.postMessage(batch, transfer);
      return;
    }
    this.#returns = [];
    this.#returnedBytes = 0;
    const post: Post = [batch, ...returns];
    endpoint.postMessage(post, [...transfer, ...returns]);
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
