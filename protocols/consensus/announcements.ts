/**
 * How a restarted replica makes itself found. The others may have moved on while it was down, and
 * in a cluster that went idle meanwhile no message would reach it: it must speak first, saying how
 * far it got (Castro's thesis §5.2 has PBFT replicas send status for this). A replica that is not
 * behind hears nothing back, so it cannot wait for an answer; it says it again a few times, the
 * waits growing to four times the first, until its core sees that it was heard — one lost message must not
 * leave it behind for good, and a current replica must fall silent. A core may ask for more while
 * each announcement brings the replica something (it may still be missing more), within a bound.
 */

/** The timer operations of a core's outputs (consensus/core.ts `Outputs`). */
export interface TimerOutputs {
  setTimer(timer: string, afterMs: number): void;
  cancelTimer(timer: string): void;
}

/** The name of the timer that repeats an announcement, the same in every core. */
export const ANNOUNCE_TIMER = 'announce';

/** Announcements made when none brings the replica anything. */
const ANNOUNCEMENTS = 4;

/** Announcements made at most, however long each one keeps bringing the replica something. */
const MOST_ANNOUNCEMENTS = 16;

/** Doublings of the wait between two announcements: it grows to four times the first, no more. */
const MAX_DOUBLINGS = 2;

/** A restarted replica's repeated announcement: `send` now, then again at growing intervals. */
export class Announcements {
  readonly #out: TimerOutputs;
  readonly #baseMs: number;
  readonly #send: () => void;
  #made = 0;
  #left = 0;

  /** `send` says where the replica is; the first repeat waits `baseMs`, the next ones twice and four times as long. */
  constructor(out: TimerOutputs, baseMs: number, send: () => void) {
    this.#out = out;
    this.#baseMs = baseMs;
    this.#send = send;
  }

  /** Announces now, and arms the repeats: {@link ANNOUNCEMENTS} in all unless extended (`onTimer`). */
  start(): void {
    this.#made = 0;
    this.#left = ANNOUNCEMENTS;
    this.#next();
  }

  /** The replica was heard (its core saw a newer view, or executed something): no more repeats. */
  stop(): void {
    if (this.#left === 0) return;
    this.#left = 0;
    this.#out.cancelTimer(ANNOUNCE_TIMER);
  }

  /**
   * The timer fired. `progress`: since the last announcement the replica got something it was
   * missing, and may be missing more, which only another announcement would tell it about: that
   * earns one more, with a look after it, up to {@link MOST_ANNOUNCEMENTS}.
   */
  onTimer(progress = false): void {
    // Two left: the one sent now and the timer after it, whose firing looks again.
    if (progress && this.#made + 1 < MOST_ANNOUNCEMENTS) this.#left = Math.max(this.#left, 2);
    if (this.#left > 0) this.#next();
  }

  #next(): void {
    const wait = this.#baseMs * 2 ** Math.min(this.#made, MAX_DOUBLINGS);
    this.#made++;
    this.#left--;
    this.#send();
    if (this.#left > 0) this.#out.setTimer(ANNOUNCE_TIMER, wait);
  }
}
