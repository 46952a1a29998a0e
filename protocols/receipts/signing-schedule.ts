/**
 * Which tree heads a replica signs while it executes under load. Any later tree head proves a
 * receipt, so signing every head is waste: a head costs one signature per replica and the
 * verification of each, whatever it covers. Signing the head of the first position in each
 * window of agreed time bounds that cost per second rather than per position (Raft executes one
 * command per position) and keeps receipts fresh to within a window. The windows are taken from
 * the protocol's timestamp (`TreeHead.timestamp`), which every replica executes identically, so
 * correct replicas sign the same positions and a quorum forms for each; a replica's own clock
 * would scatter the signatures over neighbouring positions. What happens when execution pauses
 * (the last head is signed too) is the host's, since it needs a timer.
 */
import type { TreeHead } from './tree-head.js';

/** Decides, head after head in log order, which heads to sign. */
export class TreeHeadSchedule {
  readonly periodMs: number;
  /** The window of the latest head seen; -1 before any, so a replica's first head is signed. */
  #window = -1;

  /** @param periodMs The window of agreed time per signed head: a positive whole number of ms. */
  constructor(periodMs: number) {
    if (!(Number.isSafeInteger(periodMs) && periodMs > 0)) throw new RangeError(`a tree-head period is a positive whole number of ms, got ${periodMs}`);
    this.periodMs = periodMs;
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
