/**
 * A leader's volatile state (Figure 2, "volatile state on leaders", reinitialized after each
 * election): each follower's replication progress, heartbeat rounds for ReadIndex (thesis §6.4),
 * contacts for stepping down without a majority (thesis §6.2), the commands it has taken and not
 * yet applied with their bytes (those held for a follower's window, then those appended), a
 * server catching up before it is added, and servers it removed that have yet to learn so.
 */
import { commandKey, type Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';
import type { ReadState } from '../consensus/core.js';
import { invariant } from '../consensus/errors.js';
import { hasMajority, type CatchUp } from './membership.js';
import { commandBytes } from './messages.js';
import { Progress } from './progress.js';

interface PendingRead {
  readonly id: string;
  readonly index: number;
  readonly round: number;
}

/** A server a configuration removed, told of it until it reports the removal committed. */
interface Departure {
  /** The index of the configuration entry that removed it. */
  readonly index: number;
  /** Heartbeat intervals left before the leader gives up on it. */
  ticksLeft: number;
}

/** A command held for the next entry, with its charge (`commandBytes`). */
interface Held {
  readonly command: Command;
  readonly bytes: number;
}

/** Everything a leader tracks for its term only. */
export class LeaderState {
  /** The index of the no-op that opened the term: committing it commits an entry of this term. */
  readonly termStart: number;
  readonly #progress = new Map<NodeId, Progress>();
  readonly #contacted = new Set<NodeId>();
  readonly #proposed = new Set<string>();
  readonly #departing = new Map<NodeId, Departure>();
  #round = 0;
  #ticks = 0;
  #reads: PendingRead[] = [];
  #awaiting: string[] = [];
  /** Commands held for the next entry, oldest first from `#waitingFrom`. */
  #waiting: Held[] = [];
  #waitingFrom = 0;
  #waitingBytes = 0;
  /** Bytes (`entryBytes`) of the entries not yet executed, against `maxUncommittedBytes`. */
  uncommittedBytes = 0;
  /** A server catching up before it is added, if any. */
  catchUp: CatchUp | undefined;

  readonly #window: number;

  /** A leader whose term opened at `termStart`, pipelining at most `window` requests per follower. */
  constructor(termStart: number, window: number) {
    this.termStart = termStart;
    this.#window = window;
  }

  /** The current heartbeat round. */
  get round(): number {
    return this.#round;
  }

  /** `id`'s progress, created probing from the term's start when the leader had none. */
  progress(id: NodeId): Progress {
    let p = this.#progress.get(id);
    if (p === undefined) {
      p = new Progress(this.termStart, this.#window);
      this.#progress.set(id, p);
    }
    return p;
  }

  /** `id`'s progress if the leader tracks it. */
  tracked(id: NodeId): Progress | undefined {
    return this.#progress.get(id);
  }

  /** Every tracked follower's progress. */
  everyProgress(): IterableIterator<Progress> {
    return this.#progress.values();
  }

  /** `id` answered a request of this term, in heartbeat round `round`: it still follows this leader. */
  heardFrom(id: NodeId, round: number): void {
    this.#contacted.add(id);
    const p = this.#progress.get(id);
    if (p !== undefined) p.round = Math.max(p.round, round);
  }

  /** One heartbeat interval passed; true when a check-quorum period of `period` intervals ended. */
  tick(period: number): boolean {
    this.#ticks++;
    if (this.#ticks < period) return false;
    this.#ticks = 0;
    return true;
  }

  /**
   * Check quorum (thesis §6.2): whether a majority of `members` (the leader counting itself when a
   * member) answered since the last check; starts a new check period.
   */
  checkQuorum(members: readonly NodeId[], self: NodeId): boolean {
    const ok = hasMajority(members, (id) => id === self || this.#contacted.has(id));
    this.#contacted.clear();
    return ok;
  }

  /** Remembers that `command` is in the log or held for it, so a client's retry is not appended twice. */
  propose(command: Command): void {
    this.#proposed.add(commandKey(command));
  }

  /** Holds `command` for the next entry the leader appends; it counts as proposed from now. */
  hold(command: Command): void {
    this.propose(command);
    const bytes = commandBytes(command);
    this.#waiting.push({ command, bytes });
    this.#waitingBytes += bytes;
  }

  /** True while commands are held. */
  get hasWaiting(): boolean {
    return this.#waitingFrom < this.#waiting.length;
  }

  /** Bytes of the commands held, charged with the uncommitted log against `maxUncommittedBytes`. */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /**
   * The oldest held commands, no longer held: at most `count` of them and `bytes` of their charges
   * (but at least one, however large); none when nothing is held.
   */
  takeWaiting(count: number, bytes: number): Command[] {
    const taken: Command[] = [];
    let charged = 0;
    for (; this.#waitingFrom < this.#waiting.length && taken.length < count; this.#waitingFrom++) {
      const next = this.#waiting[this.#waitingFrom] as Held;
      if (taken.length > 0 && charged + next.bytes > bytes) break;
      taken.push(next.command);
      charged += next.bytes;
    }
    this.#waitingBytes -= charged;
    if (!this.hasWaiting) {
      this.#waiting = [];
      this.#waitingFrom = 0;
    }
    return taken;
  }

  /** True when `command` was held or appended in this term and has not been applied. */
  proposed(command: Command): boolean {
    return this.#proposed.has(commandKey(command));
  }

  /** `command` was applied. */
  settled(command: Command): void {
    this.#proposed.delete(commandKey(command));
  }

  /** Reads registered or waiting, against the `maxPendingReads` cap. */
  get pendingReads(): number {
    return this.#reads.length + this.#awaiting.length;
  }

  /** A read that must wait until the leader commits an entry of its term (thesis §6.4 step 1). */
  awaitCommit(id: string): void {
    this.#awaiting.push(id);
  }

  /** The reads that were waiting for a commit of this term. */
  takeAwaiting(): string[] {
    const ids = this.#awaiting;
    this.#awaiting = [];
    return ids;
  }

  /** Starts a heartbeat round whose acknowledgements confirm reads registered in it. */
  nextRound(): number {
    return ++this.#round;
  }

  /** Registers reads at `index`, to be released once a majority acknowledges the current round. */
  addReads(ids: readonly string[], index: number): void {
    invariant(this.#round > 0, 'a read registered before any heartbeat round');
    for (const id of ids) this.#reads.push({ id, index, round: this.#round });
  }

  /**
   * The reads whose round a majority of `members` acknowledged (thesis §6.4 step 3) and whose index
   * the state has reached (`applied`, step 4), removed from the pending list. The leader itself
   * counts when it is a member.
   */
  releasable(members: readonly NodeId[], self: NodeId, applied: number): ReadState[] {
    const released: ReadState[] = [];
    const kept: PendingRead[] = [];
    for (const read of this.#reads) {
      const confirmed = read.index <= applied && hasMajority(members, (id) => id === self || (this.#progress.get(id)?.round ?? 0) >= read.round);
      if (confirmed) released.push({ id: read.id, index: read.index });
      else kept.push(read);
    }
    this.#reads = kept;
    return released;
  }

  /** `id` was removed by the configuration at `index`; tell it for at most `ticks` heartbeat intervals. */
  depart(id: NodeId, index: number, ticks: number): void {
    this.#departing.set(id, { index, ticksLeft: ticks });
  }

  /** `id` is a member again (or never left). */
  stay(id: NodeId): void {
    this.#departing.delete(id);
  }

  /** The removed servers still to be told. */
  departing(): IterableIterator<NodeId> {
    return this.#departing.keys();
  }

  /** `id` reported commit index `commitIndex`; it stops being told once that covers its removal. */
  departedUpTo(id: NodeId, commitIndex: number): void {
    const departure = this.#departing.get(id);
    if (departure !== undefined && commitIndex >= departure.index) this.#departing.delete(id);
  }

  /** One heartbeat interval passed: gives up on removed servers that never answered. */
  tickDepartures(): void {
    for (const [id, departure] of this.#departing) if (--departure.ticksLeft <= 0) this.#departing.delete(id);
  }
}
