/**
 * How a restarted replica makes itself found. The others may have moved on while it was down, and
 * in a cluster that went idle meanwhile no message would reach it: it must speak first, saying how
 * far it got (Castro's thesis §5.2 has PBFT replicas send status for this). A replica that is not
 * behind hears nothing back, so it cannot wait for an answer; it says it again a few times, each
 * wait twice the last, until its core sees that it was heard — one lost message must not leave it
 * behind for good, and a current replica must fall silent.
 */

/** The timer operations of a core's outputs (consensus/core.ts `Outputs`). */
export interface TimerOutputs {
  setTimer(timer: string, afterMs: number): void;
  cancelTimer(timer: string): void;
}

/** The name of the timer that repeats an announcement, the same in every core. */
export const ANNOUNCE_TIMER = 'announce';

/** Announcements made at most. */
const ANNOUNCEMENTS = 4;

/** A restarted replica's repeated announcement: `send` now, then up to three more times. */
export class Announcements {
  readonly #out: TimerOutputs;
  readonly #baseMs: number;
  readonly #send: () => void;
  #left = 0;

  /** `send` says where the replica is; the first repeat waits `baseMs`, each next one twice as long. */
  constructor(out: TimerOutputs, baseMs: number, send: () => void) {
    this.#out = out;
    this.#baseMs = baseMs;
    this.#send = send;
  }

  /** Announces now, and arms the repeats. */
  start(): void {
    this.#left = ANNOUNCEMENTS;
    this.#next();
  }

  /** The replica was heard (its core saw a newer view, or executed something): no more repeats. */
  stop(): void {
    if (this.#left === 0) return;
    this.#left = 0;
    this.#out.cancelTimer(ANNOUNCE_TIMER);
  }

  /** The timer fired. */
  onTimer(): void {
    if (this.#left > 0) this.#next();
  }

  #next(): void {
    const made = ANNOUNCEMENTS - this.#left;
    this.#left--;
    this.#send();
    if (this.#left > 0) this.#out.setTimer(ANNOUNCE_TIMER, this.#baseMs * 2 ** made);
  }
}
