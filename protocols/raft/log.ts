/**
 * The in-memory Raft log: the entries after the compaction point, addressed by their log index.
 * Indexes start at 1; index 0 (term 0) is the empty prefix every log shares. After compaction
 * (§7) the entries up to `compactedIndex` are gone and only the last one's term is remembered, so
 * that AppendEntries' consistency check still works at the boundary. The compaction point may lie
 * below the latest snapshot's index: a leader keeps a trailing window of entries after a snapshot
 * so that a follower just behind it gets entries rather than the whole snapshot.
 */
import { invariant } from '../consensus/errors.js';
import type { RaftEntry } from './messages.js';

/** A log with a compaction offset. */
export class RaftLog {
  #compactedIndex: number;
  #compactedTerm: number;
  #entries: RaftEntry[];

  /** A log whose first `compactedIndex` entries were compacted, the last of term `compactedTerm`; `entries` follow them. */
  constructor(compactedIndex = 0, compactedTerm = 0, entries: readonly RaftEntry[] = []) {
    this.#compactedIndex = compactedIndex;
    this.#compactedTerm = compactedTerm;
    this.#entries = [...entries];
  }

  /** The last index dropped by compaction (0 before any); every entry up to it is committed. */
  get compactedIndex(): number {
    return this.#compactedIndex;
  }

  /** The term of the entry at {@link compactedIndex}. */
  get compactedTerm(): number {
    return this.#compactedTerm;
  }

  /** Index of the last entry. */
  get lastIndex(): number {
    return this.#compactedIndex + this.#entries.length;
  }

  /** Term of the last entry. */
  get lastTerm(): number {
    return this.#entries.at(-1)?.term ?? this.#compactedTerm;
  }

  /** The term of the entry at `index`, or undefined when it is compacted away or beyond the end. */
  termAt(index: number): number | undefined {
    if (index === this.#compactedIndex) return this.#compactedTerm;
    return this.#entries[index - this.#compactedIndex - 1]?.term;
  }

  /** The entry at `index`, which must be held. */
  entry(index: number): RaftEntry {
    const entry = this.#entries[index - this.#compactedIndex - 1];
    invariant(entry !== undefined && index > this.#compactedIndex, `log has no entry ${index} (holds ${this.#compactedIndex + 1}…${this.lastIndex})`);
    return entry;
  }

  /** Entries `from` … `to` inclusive, all held. */
  slice(from: number, to: number): RaftEntry[] {
    invariant(from > this.#compactedIndex && to <= this.lastIndex, `log slice ${from}…${to} outside ${this.#compactedIndex + 1}…${this.lastIndex}`);
    return this.#entries.slice(from - this.#compactedIndex - 1, to - this.#compactedIndex);
  }

  /** Appends `entry` and returns its index. Terms never decrease along a log (§5.3). */
  append(entry: RaftEntry): number {
    invariant(entry.term >= this.lastTerm, `entry of term ${entry.term} appended after term ${this.lastTerm}`);
    this.#entries.push(entry);
    return this.lastIndex;
  }

  /** Drops the entries from `index` on. */
  truncateFrom(index: number): void {
    invariant(index > this.#compactedIndex, `truncating at ${index} inside the compacted prefix (${this.#compactedIndex})`);
    this.#entries.length = Math.max(0, index - this.#compactedIndex - 1);
  }

  /**
   * Forgets the entries up to `index`, whose last has term `term`. When `index` is past the end,
   * or the entry there has another term, the whole log is dropped (§7: a snapshot that does not
   * describe a prefix of the log replaces it).
   */
  compactTo(index: number, term: number): void {
    invariant(index >= this.#compactedIndex, `compacting to ${index} below the compaction point (${this.#compactedIndex})`);
    this.#entries = this.termAt(index) === term ? this.#entries.slice(index - this.#compactedIndex) : [];
    this.#compactedIndex = index;
    this.#compactedTerm = term;
  }

  /** The first held index of the term of the entry at `index` (the fast back-off hint, §5.3). */
  firstIndexOfTerm(index: number): number {
    const term = this.termAt(index);
    let first = index;
    while (first - 1 > this.#compactedIndex && this.termAt(first - 1) === term) first--;
    return first;
  }

  /** The last held index whose entry has term `term`, if any. */
  lastIndexOfTerm(term: number): number | undefined {
    for (let i = this.lastIndex; i > this.#compactedIndex; i--) {
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
