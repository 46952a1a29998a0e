/**
 * Raft's tuning and initial membership. The defaults suit a LAN with 1–5 ms links: a heartbeat
 * every 50 ms and election timeouts drawn from [300, 600) ms, far above a round trip and several
 * heartbeats long, as §5.6's timing requirement (broadcastTime ≪ electionTimeout) asks.
 */
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
  /** Take a snapshot and compact the log every this many applied entries (default 1024; §7). */
  readonly snapshotInterval?: number;
  /** Most entries per AppendEntries (default 64). */
  readonly maxEntriesPerMessage?: number;
  /**
   * The voting servers of the first configuration (default: all n). The other ids of [0, n)
   * start as learners with empty logs and wait to be added (thesis §4.1).
   */
  readonly initialMembers?: readonly NodeId[];
  /** Catch-up rounds a new server gets before its addition is abandoned (default 10; thesis §4.2.1). */
  readonly catchUpRounds?: number;
}

/** {@link RaftOptions} with every default filled in and checked against the cluster. */
export interface ResolvedRaftOptions {
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly electionJitterMs: number;
  readonly snapshotInterval: number;
  readonly maxEntriesPerMessage: number;
  readonly initialMembers: readonly NodeId[];
  readonly catchUpRounds: number;
}

function positive(name: string, value: number, integer: boolean): number {
  if (!(Number.isFinite(value) && value > 0 && (!integer || Number.isSafeInteger(value)))) {
    throw new ConsensusError('INVALID_CONFIG', `raft ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  }
  return value;
}

/**
 * Fills in the defaults and checks the options against `config`.
 * @throws {ConsensusError} `INVALID_CONFIG` for a non-positive duration or count, an election
 * timeout not above the heartbeat interval, too many entries per message, or initial members
 * that are not distinct ids of [0, n).
 */
export function resolveRaftOptions(options: RaftOptions, config: ConsensusConfig): ResolvedRaftOptions {
  const heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? 50, false);
  const electionTimeoutMs = positive('electionTimeoutMs', options.electionTimeoutMs ?? 300, false);
  const electionJitterMs = options.electionJitterMs ?? 300;
  if (!(Number.isFinite(electionJitterMs) && electionJitterMs >= 0)) throw new ConsensusError('INVALID_CONFIG', `raft electionJitterMs must be ≥ 0, got ${electionJitterMs}`);
  if (electionTimeoutMs <= heartbeatMs) {
    throw new ConsensusError('INVALID_CONFIG', `raft electionTimeoutMs (${electionTimeoutMs}) must exceed heartbeatMs (${heartbeatMs})`);
  }
  const maxEntriesPerMessage = positive('maxEntriesPerMessage', options.maxEntriesPerMessage ?? 64, true);
  if (maxEntriesPerMessage > MAX_ENTRIES_PER_MESSAGE) {
    throw new ConsensusError('INVALID_CONFIG', `raft maxEntriesPerMessage must be at most ${MAX_ENTRIES_PER_MESSAGE}, got ${maxEntriesPerMessage}`);
  }
  const initialMembers = options.initialMembers === undefined ? config.members : [...options.initialMembers].sort((a, b) => a - b);
  if (!isMemberList(initialMembers, config.n)) {
    throw new ConsensusError('INVALID_CONFIG', `raft initialMembers must be distinct ids of [0, ${config.n}), got [${(options.initialMembers ?? []).join(', ')}]`);
  }
  return {
    heartbeatMs,
    electionTimeoutMs,
    electionJitterMs,
    snapshotInterval: positive('snapshotInterval', options.snapshotInterval ?? 1024, true),
    maxEntriesPerMessage,
    initialMembers,
    catchUpRounds: positive('catchUpRounds', options.catchUpRounds ?? 10, true),
  };
}
