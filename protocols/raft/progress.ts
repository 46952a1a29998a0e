/**
 * What a leader knows of one follower's log, and how fast it may send to it. The paper keeps
 * nextIndex and matchIndex (Figure 2) and retries on rejection; the three states below are etcd's
 * flow control (etcd-io/raft `tracker.Progress`), not the paper's:
 *
 * - `probe`: where the follower's log diverges is unknown. One request is in flight at a time;
 *   the next goes when it is answered or at the next heartbeat. A lost message under pipelining
 *   therefore costs one resend, not one per request that followed it.
 * - `replicate`: the follower is known to match up to `match`; requests are pipelined and
 *   `next` advances as they are sent, at most `window` unacknowledged at a time (etcd's
 *   `Inflights`). Every request is signed and verified here, so while the window is full new
 *   entries wait and leave together in the next request: under load the window is what batches
 *   them. A heartbeat interval frees the window, in case a request or its reply was lost.
 * - `snapshot`: a snapshot is on its way. Nothing else is sent (heartbeats aside) until it is
 *   acknowledged or a timeout passes, so a slow transfer is not restarted by every heartbeat.
 */

/** A replication state (see the module comment). */
export type ReplicationState = 'probe' | 'replicate' | 'snapshot';

/** One follower's replication progress, kept by the leader for its term only. */
export class Progress {
  /** The next index to send (§5.3). */
  next: number;
  /** The highest index known to match the leader's log. */
  match = 0;
  /** The latest heartbeat round the follower acknowledged (ReadIndex, thesis §6.4). */
  round = 0;
  #state: ReplicationState = 'probe';
  /** Probe: a request is in flight. */
  #probing = false;
  /** Replicate: the last index of each request in flight, oldest first. */
  #inflight: number[] = [];
  readonly #window: number;
  /** Snapshot: the index of the snapshot sent and the heartbeats since. */
  #snapshotIndex = 0;
  #snapshotTicks = 0;

  /**
   * Starts probing at `next` (§5.3: a new leader sets nextIndex to its last index + 1), with at
   * most `window` requests in flight once replicating.
   */
  constructor(next: number, window = Infinity) {
    this.next = next;
    this.#window = window;
  }

  /** The replication state. */
  get state(): ReplicationState {
    return this.#state;
  }

  /** True when nothing but a heartbeat may be sent now. */
  get paused(): boolean {
    return this.#state === 'snapshot' || (this.#state === 'probe' && this.#probing) || (this.#state === 'replicate' && this.#inflight.length >= this.#window);
  }

  /** A request with entries up to `last` went out (`last` = next − 1 for an empty one). */
  sentEntries(last: number): void {
    if (this.#state !== 'replicate') {
      this.#probing = true;
      return;
    }
    if (last >= this.next) this.#inflight.push(last);
    this.next = last + 1;
  }

  /** A snapshot at `index` went out. */
  sentSnapshot(index: number): void {
    this.#state = 'snapshot';
    this.#snapshotIndex = index;
    this.#snapshotTicks = 0;
  }

  /**
   * The follower's log matches the leader's up to `match` (a success or a snapshot's
   * acknowledgement). Leaves probe, and snapshot once it covers the snapshot sent, for replicate.
   */
  acknowledged(match: number): void {
    this.match = Math.max(this.match, match);
    if (this.#state === 'snapshot' && this.match < this.#snapshotIndex) return;
    if (this.#state !== 'replicate') {
      this.#state = 'replicate';
      this.#inflight = [];
      this.next = this.match + 1;
    }
    while (this.#inflight.length > 0 && (this.#inflight[0] as number) <= this.match) this.#inflight.shift();
    this.next = Math.max(this.next, this.match + 1);
  }

  /**
   * The follower rejected the request whose prevLogIndex was `rejected`; the leader's log suggests
   * resuming at `resumeAt`. Returns false for a rejection already superseded — of a request sent
   * before the last rewind, or of an index known to match — which changes nothing. Otherwise
   * moves `next` back (never below match + 1, never past the rejected index) and probes.
   */
  rejected(rejected: number, resumeAt: number): boolean {
    if (this.#state === 'snapshot' || rejected <= this.match) return false;
    if (this.#state === 'probe' && rejected !== this.next - 1) return false;
    this.#state = 'probe';
    this.#probing = false;
    this.#inflight = [];
    this.next = Math.max(this.match + 1, Math.min(resumeAt, rejected));
    return true;
  }

  /**
   * A heartbeat interval passed: a probe may be sent again and the window of pipelined requests
   * is free again (a request or its reply may be lost; a gap it left is found by the follower's
   * rejection), and a snapshot unacknowledged for `snapshotTicks` intervals is given up: probing
   * again from the match index finds the entries compacted and sends a snapshot again. (A lost
   * snapshot and a slow one look alike to the core; etcd has the transport report failures instead.)
   */
  tick(snapshotTicks: number): void {
    this.#probing = false;
    this.#inflight = [];
    if (this.#state === 'snapshot' && ++this.#snapshotTicks >= snapshotTicks) {
      this.#state = 'probe';
      this.next = this.match + 1;
    }
  }
}
