/**
 * The protocols the simulator knows by name.
 */
import type { ConsensusAlgorithm } from '../consensus/config.js';
import type { ProtocolDefinition } from '../consensus/core.js';
import { pbft } from '../pbft/index.js';

/** What every protocol message has: its type tag. */
export interface Message {
  readonly type: string;
}

const factories: Record<ConsensusAlgorithm, (() => ProtocolDefinition<Message>) | undefined> = {
  pbft: pbft as () => ProtocolDefinition<Message>,
  hotstuff: undefined,
  raft: undefined,
};

/** The default definition of a protocol. */
export function protocolDefinition(algorithm: ConsensusAlgorithm): ProtocolDefinition<Message> {
  const factory = factories[algorithm];
  if (factory === undefined) throw new Error(`no ${algorithm} core is registered`);
  return factory();
}
