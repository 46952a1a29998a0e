/**
 * knhk's deterministic simulator (`knhk/sim`): run PBFT, chained HotStuff or Raft — or your own
 * core, with your own state machine — on one thread in virtual time, under a simulated network
 * with loss, duplication, reordering, partitions, regions and Byzantine replicas, with a safety
 * checker that stops at the first violation and a seed that replays every run exactly.
 * @packageDocumentation
 */
export { Simulation, type SimulationOptions, type SimulationStats, type SimulatedStatus, type Submission } from './simulation.js';
export { SafetyViolation } from './checker.js';
export { BYZANTINE_MODES, type ByzantineMode } from './byzantine.js';
export { CLIENT, regionTopology, type LinkOptions, type NetworkOptions, type Range, type RegionTopology } from './network.js';
export { CRYPTO_COSTS, type CryptoCost, type CryptoCostPreset } from './cost.js';
export { Prng } from './prng.js';
export { protocolDefinition, type CommonTuning, type Message } from './protocols.js';
export { FAULT_KINDS, runSeed, sweep, type FaultKind, type SeedResult, type SweepOptions, type SweepSummary, type Workload } from './sweep.js';
export * from '../consensus/index.js';
export { pbft, PbftCore, type PbftOptions, type PbftMessage } from '../pbft/index.js';
export { hotstuff, HotStuffCore, type HotStuffOptions, type HotStuffMessage } from '../hotstuff/index.js';
export { raft, RaftCore, type RaftOptions, type RaftMessage } from '../raft/index.js';
