/**
 * Cluster membership (thesis §4): configurations, majorities of a configuration, and a new
 * server's catch-up before it is added.
 *
 * Servers change one at a time (§4.1): any majority of the old configuration and any majority of
 * the new one then overlap, so no joint consensus is needed. A server uses the latest
 * configuration in its log whether or not it is committed; when that entry is truncated away it
 * falls back to the one before.
 */
import type { NodeId } from '../consensus/config.js';
import type { RaftLog } from './log.js';

/** A set of voting servers and the log index of the entry that introduced it (0: the initial one). */
export interface Configuration {
  readonly members: readonly NodeId[];
  readonly index: number;
}

/** Votes or acknowledgements that make a majority of `size` servers. */
export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

/** True when the members for which `yes` holds form a majority of `members`. */
export function hasMajority(members: readonly NodeId[], yes: (id: NodeId) => boolean): boolean {
  let count = 0;
  for (const id of members) if (yes(id)) count++;
  return count >= majority(members.length);
}

/** The highest index that a majority of `members` has replicated, given each one's match index. */
export function majorityMatch(members: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const matches = members.map(matchOf).sort((a, b) => b - a);
  return matches[majority(members.length) - 1] ?? 0;
}

/** True for a usable member list: non-empty, ascending, distinct ids in [0, n). */
export function isMemberList(members: readonly number[], n: number): boolean {
  return members.length > 0 && members.every((id, i) => Number.isSafeInteger(id) && id >= 0 && id < n && (i === 0 || id > (members[i - 1] as number)));
}

/** A member list with `id` added, kept ascending. */
export function withMember(members: readonly NodeId[], id: NodeId): NodeId[] {
  return [...members, id].sort((a, b) => a - b);
}

/** A member list without `id`. */
export function withoutMember(members: readonly NodeId[], id: NodeId): NodeId[] {
  return members.filter((m) => m !== id);
}

/**
 * The configuration in force after log index `upTo` and the one before it: the latest
 * configuration entries in (`base.index`, `upTo`], falling back to `base` (the snapshot's or the
 * initial one). Entries at or below `base.index` (a trailing window kept after a snapshot) are
 * superseded by `base` and not read.
 */
export function configurationsAt(log: RaftLog, base: Configuration, upTo: number = log.lastIndex): { current: Configuration; previous: Configuration | undefined } {
  let current: Configuration | undefined;
  for (let i = upTo; i > base.index; i--) {
    const entry = log.entry(i);
    if (entry.type !== 'config') continue;
    if (current !== undefined) return { current, previous: { members: entry.members, index: i } };
    current = { members: entry.members, index: i };
  }
  return current === undefined ? { current: base, previous: undefined } : { current, previous: base };
}

/** What a catch-up round concluded. */
export type CatchUpProgress = 'waiting' | 'caught-up' | 'abandoned';

/**
 * A server being brought up to date before it is added (thesis §4.2.1). Catch-up proceeds in
 * rounds, each replicating everything the leader had when the round began. Once a round takes no
 * longer than an election timeout, the server is close enough that adding it will not stall
 * commits. A server that does not get there within `maxRounds` rounds' worth of election
 * timeouts is abandoned, so a dead one does not block membership changes forever.
 */
export class CatchUp {
  /** The server catching up. */
  readonly server: NodeId;
  readonly #electionTicks: number;
  readonly #maxRounds: number;
  #roundEnd: number;
  #roundTicks = 0;
  #totalTicks = 0;
  #rounds = 1;

  /** Starts the first round, which ends when `server` holds `lastIndex`. Ticks are heartbeats. */
  constructor(server: NodeId, lastIndex: number, electionTicks: number, maxRounds: number) {
    this.server = server;
    this.#roundEnd = lastIndex;
    this.#electionTicks = electionTicks;
    this.#maxRounds = maxRounds;
  }

  /** One heartbeat interval passed; false once the catch-up should be abandoned. */
  tick(): boolean {
    this.#roundTicks++;
    this.#totalTicks++;
    return this.#totalTicks <= this.#maxRounds * this.#electionTicks;
  }

  /** The server's match index grew to `match`; the leader's log ends at `lastIndex`. */
  progress(match: number, lastIndex: number): CatchUpProgress {
    if (match < this.#roundEnd) return 'waiting';
    if (this.#roundTicks <= this.#electionTicks || match >= lastIndex) return 'caught-up';
    if (this.#rounds >= this.#maxRounds) return 'abandoned';
    this.#rounds++;
    this.#roundTicks = 0;
    this.#roundEnd = lastIndex;
    return 'waiting';
  }
}
