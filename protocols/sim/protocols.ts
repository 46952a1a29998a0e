/**
 * The protocols the simulator knows by name.
 */
import type { ConsensusAlgorithm } from '../consensus/config.js';
import type { ProtocolDefinition } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';
import { hotstuff } from '../hotstuff/index.js';
import { pbft } from '../pbft/index.js';
import { raft } from '../raft/index.js';

/** What every protocol message has: its type tag. */
export interface Message {
  readonly type: string;
}

/** Tuning every protocol takes under one name, each mapped onto the protocol's own option. */
export interface CommonTuning {
  /** Commands executed per step before the core pauses (core.ts, `resume`); default no limit. */
  readonly executionSlice?: number;
  /** Most commands per proposal: PBFT's and HotStuff's batch size, Raft's commands per log entry. */
  readonly batch?: number;
  /** The base timeout, ms: PBFT's request timeout, HotStuff's view timeout, Raft's election timeout (heartbeats every fifth of it). */
  readonly timeoutMs?: number;
  /** Log positions between two stored states: PBFT's checkpoint interval, HotStuff's and Raft's snapshot interval. */
  readonly snapshotInterval?: number;
}

/** `{ [key]: value }`, or nothing when `value` is undefined (the protocol's default then holds). */
const given = <K extends string>(key: K, value: number | undefined): { [P in K]?: number } => (value === undefined ? {} : ({ [key]: value } as { [P in K]: number }));

const factories: Record<ConsensusAlgorithm, (tuning: CommonTuning) => ProtocolDefinition<Message>> = {
  pbft: ({ executionSlice, batch, timeoutMs, snapshotInterval }) =>
    pbft({
      ...given('executionSlice', executionSlice),
      ...given('batchSize', batch),
      ...given('requestTimeoutMs', timeoutMs),
      ...given('checkpointInterval', snapshotInterval),
    }) as ProtocolDefinition<Message>,
  hotstuff: ({ executionSlice, batch, timeoutMs, snapshotInterval }) =>
    hotstuff({
      ...given('executionSlice', executionSlice),
      ...given('batchSize', batch),
      ...given('baseTimeoutMs', timeoutMs),
      ...given('snapshotInterval', snapshotInterval),
    }) as ProtocolDefinition<Message>,
  raft: ({ executionSlice, batch, timeoutMs, snapshotInterval }) =>
    raft({
      ...given('executionSlice', executionSlice),
      ...given('maxCommandsPerEntry', batch),
      ...given('electionTimeoutMs', timeoutMs),
      ...given('heartbeatMs', timeoutMs === undefined ? undefined : Math.max(1, Math.floor(timeoutMs / 5))),
      ...given('snapshotInterval', snapshotInterval),
    }) as ProtocolDefinition<Message>,
};

/** A protocol's definition with its defaults, or with `tuning`. */
export function protocolDefinition(algorithm: ConsensusAlgorithm, tuning: CommonTuning = {}): ProtocolDefinition<Message> {
  if (!Object.hasOwn(factories, algorithm)) throw new ConsensusError('INVALID_CONFIG', `unknown consensus algorithm ${JSON.stringify(algorithm)}`);
  return factories[algorithm](tuning);
}
