/**
 * The in-memory Raft log: the entries after the last snapshot, addressed by their log index.
 * Indexes start at 1; index 0 (term 0) is the empty prefix every log shares. After compaction
 * (§7) the entries up to `snapshotIndex` are gone and only their last term is remembered, so that
 * AppendEntries' consistency check still works at the boundary.
 */
import { invariant } from '../consensus/errors.js';
import type { RaftEntry } from './messages.js';

/** A log with a compaction offset. */
export class RaftLog {
  #snapshotIndex: number;
  #snapshotTerm: number;
  #entries: RaftEntry[];

  /** A log whose first `snapshotIndex` entries were compacted; `entries` follow them. */
  constructor(snapshotIndex = 0, snapshotTerm = 0, entries: readonly RaftEntry[] = []) {
    this.#snapshotIndex = snapshotIndex;
    this.#snapshotTerm = snapshotTerm;
    this.#entries = [...entries];
  }

  /** The last index covered by the snapshot (0 without one). */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /** The term of the entry at {@link snapshotIndex}. */
  get snapshotTerm(): number {
    return this.#snapshotTerm;
  }

  /** Index of the last entry. */
  get lastIndex(): number {
    return this.#snapshotIndex + this.#entries.length;
  }

  /** Term of the last entry. */
  get lastTerm(): number {
    return this.#entries.at(-1)?.term ?? this.#snapshotTerm;
  }

  /** The term of the entry at `index`, or undefined when it is compacted away or beyond the end. */
  termAt(index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm;
    return this.#entries[index - this.#snapshotIndex - 1]?.term;
  }

  /** The entry at `index`, which must be held. */
  entry(index: number): RaftEntry {
    const entry = this.#entries[index - this.#snapshotIndex - 1];
    invariant(entry !== undefined && index > this.#snapshotIndex, `log has no entry ${index} (holds ${this.#snapshotIndex + 1}…${this.lastIndex})`);
    return entry;
  }

  /** Entries `from` … `to` inclusive, all held. */
  slice(from: number, to: number): RaftEntry[] {
    invariant(from > this.#snapshotIndex && to <= this.lastIndex, `log slice ${from}…${to} outside ${this.#snapshotIndex + 1}…${this.lastIndex}`);
    return this.#entries.slice(from - this.#snapshotIndex - 1, to - this.#snapshotIndex);
  }

  /** Appends `entry` and returns its index. Terms never decrease along a log (§5.3). */
  append(entry: RaftEntry): number {
    invariant(entry.term >= this.lastTerm, `entry of term ${entry.term} appended after term ${this.lastTerm}`);
    this.#entries.push(entry);
    return this.lastIndex;
  }

  /** Drops the entries from `index` on. */
  truncateFrom(index: number): void {
    invariant(index > this.#snapshotIndex, `truncating at ${index} inside the snapshot (${this.#snapshotIndex})`);
    this.#entries.length = Math.max(0, index - this.#snapshotIndex - 1);
  }

  /**
   * Forgets the entries up to `index`, whose last has term `term`. When `index` is past the end,
   * or the entry there has another term, the whole log is dropped (§7: a snapshot that does not
   * describe a prefix of the log replaces it).
   */
  compactTo(index: number, term: number): void {
    invariant(index >= this.#snapshotIndex, `compacting to ${index} below the snapshot (${this.#snapshotIndex})`);
    this.#entries = this.termAt(index) === term ? this.#entries.slice(index - this.#snapshotIndex) : [];
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
  }

  /** The first held index of the term of the entry at `index` (the fast back-off hint, §5.3). */
  firstIndexOfTerm(index: number): number {
    const term = this.termAt(index);
    let first = index;
    while (first - 1 > this.#snapshotIndex && this.termAt(first - 1) === term) first--;
    return first;
  }

  /** The last held index whose entry has term `term`, if any. */
  lastIndexOfTerm(term: number): number | undefined {
    for (let i = this.lastIndex; i > this.#snapshotIndex; i--) {
      const at = this.termAt(i) as number;
      if (at === term) return i;
      if (at < term) return undefined;
    }
    return undefined;
  }

  /**
   * The election restriction (§5.4.1): a log ending in (`lastIndex`, `lastTerm`) is at least as
   * up-to-date as this one — a later last term, or the same last term and at least as long.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }
}
