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

const factories: Record<ConsensusAlgorithm, () => ProtocolDefinition<Message>> = {
  pbft: pbft as () => ProtocolDefinition<Message>,
  hotstuff: hotstuff as () => ProtocolDefinition<Message>,
  raft: raft as () => ProtocolDefinition<Message>,
};

/** The default definition of a protocol. */
export function protocolDefinition(algorithm: ConsensusAlgorithm): ProtocolDefinition<Message> {
  if (!Object.hasOwn(factories, algorithm)) throw new ConsensusError('INVALID_CONFIG', `unknown consensus algorithm ${JSON.stringify(algorithm)}`);
  return factories[algorithm]();
}
