/**
 * The simulator's agenda: a binary min-heap of events ordered by virtual time, ties broken by
 * insertion order so that runs are deterministic.
 */

interface Slot<E> {
  readonly at: number;
  readonly order: number;
  readonly event: E;
}

/** A priority queue of timed events. */
export class EventQueue<E> {
  readonly #heap: Slot<E>[] = [];
  #order = 0;

  /** Number of pending events. */
  get size(): number {
    return this.#heap.length;
  }

  /** Time of the earliest event, or Infinity. */
  peekTime(): number {
    return this.#heap[0]?.at ?? Infinity;
  }

  /** Schedules `event` at virtual time `at`. */
  push(at: number, event: E): void {
    const heap = this.#heap;
    heap.push({ at, order: this.#order++, event });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as Slot<E>, heap[parent] as Slot<E>)) break;
      [heap[i], heap[parent]] = [heap[parent] as Slot<E>, heap[i] as Slot<E>];
      i = parent;
    }
  }

  /** Removes and returns the earliest event. */
  pop(): { at: number; event: E } | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as Slot<E>;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l] as Slot<E>, heap[m] as Slot<E>)) m = l;
        if (r < heap.length && before(heap[r] as Slot<E>, heap[m] as Slot<E>)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m] as Slot<E>, heap[i] as Slot<E>];
        i = m;
      }
    }
    return { at: top.at, event: top.event };
  }
}

function before<E>(a: Slot<E>, b: Slot<E>): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}
