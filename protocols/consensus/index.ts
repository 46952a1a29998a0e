/**
 * Types shared by knhk's consensus cores: configuration and quorum arithmetic, commands and log
 * entries, the replicated state machine, signed messages and quorum certificates, the core/host
 * contract, and typed errors.
 */
export { ConsensusError, invariant, type ConsensusErrorCode } from './errors.js';
export {
  CONSENSUS_ALGORITHMS,
  consensusConfig,
  isByzantineTolerant,
  maxFaults,
  peersOf,
  quorumSize,
  type ConsensusAlgorithm,
  type ConsensusConfig,
  type ConsensusConfigInput,
  type NodeId,
} from './config.js';
export { ZERO_DIGEST, decode, decodeStored, digestOf, encode, hashBytes, hex, readStored, sameBytes, type Digest } from './codec.js';
export { MAX_BATCH_COMMANDS, MAX_COMMAND_BYTES, batchSchema, command, commandDigest, commandKey, commandSchema, type Command, type LogEntry } from './command.js';
export { ExecutionRun, MAX_STATE_BYTES, ReplicatedState, ReplicatedView, applyStateChanges, freezeState, type ConsensusState, type Execution, type StateView } from './state-machine.js';
export {
  MAX_CHANGE_RECORDS,
  StateArchive,
  archivedChangesKey,
  archivedChangesSchema,
  archivedSnapshotKey,
  archivedSnapshotSchema,
  readArchive,
  storedStateRecord,
  type Anchor,
  type ArchiveRecords,
  type ArchivedChanges,
  type ArchivedSnapshot,
  type StoredStateRecord,
} from './state-archive.js';
export { KvStateMachine, kvOperationSchema, kvPayload, kvResponse, type KvOperation, type KvResponse } from './kv.js';
export {
  CONFIGURATION_SESSION_PREFIX,
  ConfiguredState,
  MIGRATION_DOMAIN,
  configurationResponse,
  encodePolicyMigration,
  isConfigurationCommand,
  signaturePolicySchema,
  stepCertificatesSchema,
  type ConfigurationResponse,
  type InstalledKey,
  type InstalledRotation,
  type PolicyChange,
} from './configuration.js';
export {
  MAX_SIGNATURE_BYTES,
  checkQuorum,
  isQuorum,
  nodeSignatureSchema,
  quorumCertSchema,
  signedSchema,
  type NodeSignature,
  type QuorumCert,
  type Signed,
} from './certificate.js';
export {
  Outputs,
  type Adversary,
  type Applied,
  type AppliedEntry,
  type AppliedSnapshot,
  type CancelTimer,
  type Core,
  type CoreOptions,
  type Evidence,
  type EvidenceKind,
  type Input,
  type NodeStatus,
  type Outbound,
  type PersistOp,
  type ProtocolDefinition,
  type ReadState,
  type Ready,
  type Reply,
  type Role,
  type SetTimer,
  type SignedPosition,
  type TimerOp,
  replyKey,
  signedPositionSchema,
  standsWithin,
} from './core.js';
