/**
 * When a replica signs the tree head after a position it executed: the heads its
 * `TreeHeadSchedule` picks at once (the same positions at every replica), and otherwise the last
 * head once execution has paused, so that the receipts of a burst do not wait for the next window.
 * A pause is longer than the gaps between heads have lately been (`TreeHeadSchedule.pauseAfter`).
 */
import type { Clock, TimerHandle } from '../runtime/index.js';
import type { TreeHead, TreeHeadSchedule } from '../protocols/receipts/index.js';

/** Signs a replica's tree heads on the schedule, and the last one when execution pauses. */
export class TreeHeadPacer {
  readonly #schedule: TreeHeadSchedule;
  readonly #clock: Clock;
  readonly #sign: (head: TreeHead) => void;
  #idle: TimerHandle | undefined;
  /** When the previous head came, by the clock; -∞ before any and after a pause. */
  #lastHeadAt = Number.NEGATIVE_INFINITY;

  /** `sign` is called with each head to sign, at once or when its pause has passed by `clock`. */
  constructor(schedule: TreeHeadSchedule, clock: Clock, sign: (head: TreeHead) => void) {
    this.#schedule = schedule;
    this.#clock = clock;
    this.#sign = sign;
  }

  /** The head after a position just executed, in log order. */
  executed(head: TreeHead): void {
    this.stop();
    const now = this.#clock.now();
    const pause = this.#schedule.pauseAfter(now - this.#lastHeadAt);
    this.#lastHeadAt = now;
    if (this.#schedule.due(head)) {
      this.#sign(head);
      return;
    }
    this.#idle = this.#clock.setTimer(() => {
      this.#idle = undefined;
      // Execution paused: the next head begins a burst, however long the wait was. Counted from
      // the previous head instead, a client that waits for each receipt before sending its next
      // command would stretch the gaps, and the wait, with every command.
      this.#lastHeadAt = Number.NEGATIVE_INFINITY;
      this.#sign(head);
    }, pause);
  }

  /** Cancels a pending pause signature (the replica is stopping, or a later head came). */
  stop(): void {
    if (this.#idle !== undefined) this.#clock.clearTimer(this.#idle);
    this.#idle = undefined;
  }
}
