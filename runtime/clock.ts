/**
 * Time as the runtime sees it. Actors and supervisors read time and set timers only through a
 * {@link Clock}, so tests can substitute a {@link VirtualClock} and advance time by hand.
 */

/** An opaque timer handle returned by {@link Clock.setTimer}. */
export type TimerHandle = { readonly __timer: unique symbol };

/** A source of monotonic time and one-shot timers. */
export interface Clock {
  /** Monotonic milliseconds (fractional allowed). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; cancelling a fired or cancelled timer does nothing. */
  clearTimer(handle: TimerHandle): void;
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimer: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout),
};

interface VirtualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock that only moves when told to. Timers fire in (due time, creation order) during
 * {@link VirtualClock.advance}, which makes timer-driven behaviour reproducible.
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, VirtualTimer>();

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const seq = this.#seq++;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq as unknown as TimerHandle;
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers.delete(handle as unknown as number);
  }

  /** Number of timers not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: VirtualTimer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at <= target && (!next || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) next = timer;
      }
      if (!next) break;
      this.#timers.delete(next.seq);
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }
}
