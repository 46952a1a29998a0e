/**
 * Raft's tuning and initial membership. The defaults suit a LAN with 1–5 ms links: a heartbeat
 * every 50 ms and election timeouts drawn from [300, 600) ms, far above a round trip and several
 * heartbeats long, as §5.6's timing requirement (broadcastTime ≪ electionTimeout) asks.
 */
import { MAX_BATCH_COMMANDS } from '../consensus/command.js';
import type { ConsensusConfig, NodeId } from '../consensus/config.js';
import { ConsensusError } from '../consensus/errors.js';
import { isMemberList } from './membership.js';
import { MAX_ENTRIES_PER_MESSAGE } from './messages.js';

/** Options of a Raft cluster; every server of a cluster must use the same ones. */
export interface RaftOptions {
  /** Interval between a leader's heartbeats (default 50 ms). */
  readonly heartbeatMs?: number;
  /** Least time without a leader before a follower campaigns (default 300 ms). */
  readonly electionTimeoutMs?: number;
  /** Random extra election delay drawn by the host in [0, jitterMs) (default 300 ms; §5.2). */
  readonly electionJitterMs?: number;
  /** Take a snapshot and compact the log every this many applied entries, each up to `maxCommandsPerEntry` commands (default 1024; §7). */
  readonly snapshotInterval?: number;
  /**
   * Entries kept below each snapshot's index when compacting, so that a follower that far behind
   * is sent entries rather than the whole snapshot (default a quarter of `snapshotInterval`; etcd
   * keeps such a window too, the paper compacts everything).
   */
  readonly snapshotTrailingEntries?: number;
  /**
   * How long a leader waits for a follower to acknowledge a snapshot before sending it again, no
   * other replication going to that follower meanwhile (default: the election timeout). Set it
   * above the time a snapshot takes to transfer, or slow transfers are repeated.
   */
  readonly snapshotTimeoutMs?: number;
  /** Most entries per AppendEntries (default 64). */
  readonly maxEntriesPerMessage?: number;
  /**
   * Most client commands per log entry (default 64). Commands that arrive while every follower's
   * window is full wait and are appended together, up to this many to an entry and
   * `maxBytesPerMessage` of them (one command is appended alone however large).
   */
  readonly maxCommandsPerEntry?: number;
  /**
   * Most AppendEntries with entries a leader has unacknowledged per follower (default 2; etcd's
   * MaxInflightMsgs). Entries proposed meanwhile wait and leave together, so under load fewer,
   * fuller requests are signed and verified.
   */
  readonly maxInflightAppends?: number;
  /**
   * Most entry bytes (see `entryBytes`) per AppendEntries; one entry is sent even when it alone is
   * larger (default 1 MiB).
   */
  readonly maxBytesPerMessage?: number;
  /**
   * Most bytes of entries a leader holds appended but uncommitted; further proposals are dropped
   * until some commit, and clients retry (default 32 MiB; etcd's MaxUncommittedEntriesSize).
   */
  readonly maxUncommittedBytes?: number;
  /** Most ReadIndex reads a leader holds unreleased; `readIndex` refuses more (default 10 000). */
  readonly maxPendingReads?: number;
  /**
   * The voting servers of the first configuration (default: all n). The other ids of [0, n)
   * start as learners with empty logs and wait to be added (thesis §4.1).
   */
  readonly initialMembers?: readonly NodeId[];
  /**
   * Catch-up rounds a new server gets before its addition is abandoned (default 10; thesis
   * §4.2.1). It also bounds, in election timeouts, how long a leader keeps telling a removed
   * server that its removal committed when that server does not answer.
   */
  readonly catchUpRounds?: number;
  /**
   * Most commands executed in one step; the core then pauses and the host steps `resume` after a
   * turn of its event loop (core.ts), so that an entry of many commands, or many entries committed
   * at once, do not hold the thread for their whole execution (default, or `Infinity`: no limit).
   */
  readonly executionSlice?: number;
}

/** {@link RaftOptions} with every default filled in and checked against the cluster. */
export interface ResolvedRaftOptions {
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly electionJitterMs: number;
  readonly snapshotInterval: number;
  readonly snapshotTrailingEntries: number;
  readonly snapshotTimeoutMs: number;
  readonly maxEntriesPerMessage: number;
  readonly maxCommandsPerEntry: number;
  readonly maxInflightAppends: number;
  readonly maxBytesPerMessage: number;
  readonly maxUncommittedBytes: number;
  readonly maxPendingReads: number;
  readonly initialMembers: readonly NodeId[];
  readonly catchUpRounds: number;
  /** `Infinity` when the core never pauses. */
  readonly executionSlice: number;
}

function invalid(message: string): never {
  throw new ConsensusError('INVALID_CONFIG', `raft ${message}`);
}

function positive(name: string, value: number, integer: boolean): number {
  if (!(Number.isFinite(value) && value > 0 && (!integer || Number.isSafeInteger(value)))) invalid(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  return value;
}

/**
 * Fills in the defaults and checks the options against `config`.
 * @throws {ConsensusError} `INVALID_CONFIG` for a non-positive duration, count or size, an
 * election timeout not above the heartbeat interval, too many entries per message or commands per
 * entry, a trailing window that is not a non-negative integer, a snapshot timeout shorter than a
 * heartbeat, or initial members that are not distinct ids of [0, n).
 */
export function resolveRaftOptions(options: RaftOptions, config: ConsensusConfig): ResolvedRaftOptions {
  const heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? 50, false);
  const electionTimeoutMs = positive('electionTimeoutMs', options.electionTimeoutMs ?? 300, false);
  const electionJitterMs = options.electionJitterMs ?? 300;
  if (!(Number.isFinite(electionJitterMs) && electionJitterMs >= 0)) invalid(`electionJitterMs must be ≥ 0, got ${electionJitterMs}`);
  if (electionTimeoutMs <= heartbeatMs) invalid(`electionTimeoutMs (${electionTimeoutMs}) must exceed heartbeatMs (${heartbeatMs})`);
  const snapshotInterval = positive('snapshotInterval', options.snapshotInterval ?? 1024, true);
  const snapshotTrailingEntries = options.snapshotTrailingEntries ?? Math.floor(snapshotInterval / 4);
  if (!(Number.isSafeInteger(snapshotTrailingEntries) && snapshotTrailingEntries >= 0)) invalid(`snapshotTrailingEntries must be a non-negative integer, got ${snapshotTrailingEntries}`);
  const snapshotTimeoutMs = positive('snapshotTimeoutMs', options.snapshotTimeoutMs ?? electionTimeoutMs, false);
  if (snapshotTimeoutMs < heartbeatMs) invalid(`snapshotTimeoutMs (${snapshotTimeoutMs}) must be at least heartbeatMs (${heartbeatMs})`);
  const maxEntriesPerMessage = positive('maxEntriesPerMessage', options.maxEntriesPerMessage ?? 64, true);
  if (maxEntriesPerMessage > MAX_ENTRIES_PER_MESSAGE) invalid(`maxEntriesPerMessage must be at most ${MAX_ENTRIES_PER_MESSAGE}, got ${maxEntriesPerMessage}`);
  const maxCommandsPerEntry = positive('maxCommandsPerEntry', options.maxCommandsPerEntry ?? 64, true);
  if (maxCommandsPerEntry > MAX_BATCH_COMMANDS) invalid(`maxCommandsPerEntry must be at most ${MAX_BATCH_COMMANDS}, got ${maxCommandsPerEntry}`);
  const initialMembers = options.initialMembers === undefined ? config.members : [...options.initialMembers].sort((a, b) => a - b);
  if (!isMemberList(initialMembers, config.n)) invalid(`initialMembers must be distinct ids of [0, ${config.n}), got [${(options.initialMembers ?? []).join(', ')}]`);
  return {
    heartbeatMs,
    electionTimeoutMs,
    electionJitterMs,
    snapshotInterval,
    snapshotTrailingEntries,
    snapshotTimeoutMs,
    maxEntriesPerMessage,
    maxCommandsPerEntry,
    maxInflightAppends: positive('maxInflightAppends', options.maxInflightAppends ?? 2, true),
    maxBytesPerMessage: positive('maxBytesPerMessage', options.maxBytesPerMessage ?? 1 << 20, true),
    maxUncommittedBytes: positive('maxUncommittedBytes', options.maxUncommittedBytes ?? 32 << 20, true),
    maxPendingReads: positive('maxPendingReads', options.maxPendingReads ?? 10_000, true),
    initialMembers,
    catchUpRounds: positive('catchUpRounds', options.catchUpRounds ?? 10, true),
    executionSlice: options.executionSlice === undefined || options.executionSlice === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : positive('executionSlice', options.executionSlice, true),
  };
}
