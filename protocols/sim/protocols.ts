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

/** Tuning every protocol takes, under the same name. */
export interface CommonTuning {
  /** Commands executed per step before the core pauses (core.ts, `resume`); default no limit. */
  readonly executionSlice?: number;
}

const factories: Record<ConsensusAlgorithm, (tuning: CommonTuning) => ProtocolDefinition<Message>> = {
  pbft: (tuning) => pbft(tuning) as ProtocolDefinition<Message>,
  hotstuff: (tuning) => hotstuff(tuning) as ProtocolDefinition<Message>,
  raft: (tuning) => raft(tuning) as ProtocolDefinition<Message>,
};

/** A protocol's definition with its defaults, or with `tuning`. */
export function protocolDefinition(algorithm: ConsensusAlgorithm, tuning: CommonTuning = {}): ProtocolDefinition<Message> {
  if (!Object.hasOwn(factories, algorithm)) throw new ConsensusError('INVALID_CONFIG', `unknown consensus algorithm ${JSON.stringify(algorithm)}`);
  return factories[algorithm](tuning);
}
