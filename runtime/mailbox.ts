/**
 * A bounded two-lane mailbox. Urgent items (timers, signals, messages their sender marked urgent)
 * are always taken before bulk items, so a flood of bulk traffic cannot delay a failure detector.
 * Order is FIFO within a lane; a sender's urgent message may therefore overtake its own bulk ones.
 */
import { ConfigError } from './errors.js';

/**
 * What happens when a lane is full:
 * - `reject`: the new item is refused (the sender is told: an `ask` fails with `MailboxFull`, an
 *   actor sender receives an `undeliverable` signal) and it becomes a dead letter;
 * - `drop-oldest`: the oldest item of that lane becomes a dead letter and the new one is queued.
 */
export type OverflowPolicy = 'reject' | 'drop-oldest';

/** Mailbox options. */
export interface MailboxOptions {
  /** Maximum items per lane (default 65 536). */
  readonly capacity?: number;
  /** Overflow policy (default `reject`). */
  readonly overflow?: OverflowPolicy;
}

/** Result of {@link Mailbox.push}. */
export type PushResult<T> = { readonly ok: true; readonly dropped?: T } | { readonly ok: false };

/** A FIFO queue with amortised O(1) shift. */
class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  drain(): T[] {
    const rest = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return rest;
  }
}

/** The two-lane bounded mailbox. */
export class Mailbox<T> {
  readonly capacity: number;
  readonly overflow: OverflowPolicy;
  readonly #urgent = new Queue<T>();
  readonly #bulk = new Queue<T>();

  constructor(options: MailboxOptions = {}) {
    this.capacity = options.capacity ?? 65_536;
    this.overflow = options.overflow ?? 'reject';
    if (!Number.isSafeInteger(this.capacity) || this.capacity < 1) throw new ConfigError(`mailbox capacity must be a positive integer, got ${this.capacity}`);
    if (this.overflow !== 'reject' && this.overflow !== 'drop-oldest') throw new ConfigError(`unknown overflow policy ${String(this.overflow)}`);
  }

  /** Items waiting, both lanes. */
  get size(): number {
    return this.#urgent.length + this.#bulk.length;
  }

  /** Queues an item; see {@link OverflowPolicy}. */
  push(item: T, urgent: boolean): PushResult<T> {
    const lane = urgent ? this.#urgent : this.#bulk;
    if (lane.length < this.capacity) {
      lane.push(item);
      return { ok: true };
    }
    if (this.overflow === 'reject') return { ok: false };
    const dropped = lane.shift() as T;
    lane.push(item);
    return { ok: true, dropped };
  }

  /** Takes the next item: urgent lane first. */
  shift(): T | undefined {
    return this.#urgent.length > 0 ? this.#urgent.shift() : this.#bulk.shift();
  }

  /** Removes and returns everything queued (urgent first). */
  drain(): T[] {
    return [...this.#urgent.drain(), ...this.#bulk.drain()];
  }
}
