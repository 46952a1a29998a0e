/**
 * Which tree heads a replica signs while it executes under load. Any later tree head proves a
 * receipt, so signing every head is waste: a head costs one signature per replica and the
 * verification of each, whatever it covers. Signing the head of the first position in each
 * window of agreed time bounds that cost per second rather than per position (Raft executes one
 * command per position) and keeps receipts fresh to within a window. The windows are taken from
 * the protocol's timestamp (`TreeHead.timestamp`), which every replica executes identically, so
 * correct replicas sign the same positions and a quorum forms for each; a replica's own clock
 * would scatter the signatures over neighbouring positions.
 *
 * When execution pauses, the last head is signed too, so that the receipts of a burst do not wait
 * for the next window. The host keeps the timer; the schedule says how long a pause is: longer
 * than the gaps between heads have lately been. Under load, large batches can come hundreds of
 * milliseconds apart, and a fixed short wait would sign nearly every one of them.
 */
import type { TreeHead } from './tree-head.js';

/** Decides, head after head in log order, which heads to sign. */
export class TreeHeadSchedule {
  /** The window of agreed time per signed head, ms. */
  readonly periodMs: number;
  /** The shortest pause after which the last head is signed, ms. */
  readonly idleMs: number;
  /** The window of the latest head seen; -1 before any, so a replica's first head is signed. */
  #window = -1;
  /** The longest recent gap between heads, halved for every period since, ms; undefined after a pause of a whole period. */
  #spanMs: number | undefined;

  /**
   * @param periodMs The window of agreed time per signed head: a positive whole number of ms.
   * @param idleMs The shortest pause after which the last head is signed, ms (0 ≤ idleMs ≤ periodMs).
   */
  constructor(periodMs: number, idleMs = 0) {
    if (!(Number.isSafeInteger(periodMs) && periodMs > 0)) throw new RangeError(`a tree-head period is a positive whole number of ms, got ${periodMs}`);
    if (!(idleMs >= 0 && idleMs <= periodMs)) throw new RangeError(`a tree-head idle wait is between 0 and the period (${periodMs} ms), got ${idleMs}`);
    this.periodMs = periodMs;
    this.idleMs = idleMs;
  }

  /**
   * How long after this head a host waits for the next before it signs this one (execution has
   * paused), given `gapMs`, the time since the previous head by the host's clock: twice the
   * longest recent gap between heads, between `idleMs` and the period. Gaps are forgotten by half
   * for every period that passes, so a stream of heads, even in bursts (Raft executes an append's
   * entries one position at a time), is paced by its slowest gaps, not by its quickest. A head
   * after a whole period or more begins a burst and waits `idleMs` only, so a lone command gets
   * its receipt promptly. So does the first head after a pause the host observed (pass an
   * infinite gap): otherwise a client that waits for each receipt before its next command would
   * stretch the gaps, and the wait, with every command.
   */
  pauseAfter(gapMs: number): number {
    if (!(gapMs < this.periodMs)) {
      this.#spanMs = undefined;
      return this.idleMs;
    }
    this.#spanMs = Math.max(gapMs, (this.#spanMs ?? 0) * 2 ** (-gapMs / this.periodMs));
    return Math.min(this.periodMs, Math.max(this.idleMs, 2 * this.#spanMs));
  }

  /**
   * True when `head` is the first seen in a later window than every head before it. A timestamp
   * earlier than one already seen (a new PBFT primary's clock slightly behind) starts nothing.
   */
  due(head: Pick<TreeHead, 'timestamp'>): boolean {
    const window = Math.floor(head.timestamp / this.periodMs);
    if (window <= this.#window) return false;
    this.#window = window;
    return true;
  }
}
