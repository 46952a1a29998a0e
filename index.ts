/**
 * knhk: an actor runtime for Node.js for replicated, Byzantine-fault-tolerant state machines.
 * The entry re-exports the runtime (`knhk/runtime`) and the signature layer (`knhk/crypto`), and
 * adds replicated clusters: its `ActorSystem` is the runtime's with `spawnCluster`.
 * @packageDocumentation
 */
export * from './runtime/index.js';
export * from './protocols/crypto/index.js';
export { ActorSystem } from './actors/system.js';
export { Cluster, CatchUpTimeout, statusLine, POLICY_SCHEME, EXECUTIONS_KEPT, DEFAULT_BATCH, DRAWN_PASSPHRASE_KDF_LOG2N, DEFAULT_TIMEOUT_MS, type ClusterOptions, type KeyRotation, type PolicyMigrationResult, type Submitted, type ReplicaStatus } from './actors/cluster.js';
export type { EvidenceReport } from './actors/evidence-log.js';
export type { ExecutedPosition } from './actors/cluster-agent.js';
export type { ReceiptSubject } from './actors/receipt-answers.js';
export type { LinkDelay } from './actors/link-faults.js';
export type { PublicKeyDescriptor } from './actors/signer.js';
export { STORE_FORMAT, StorageError, type StorageErrorCode } from './actors/replica-store.js';
export { BYZANTINE_MODES, type ByzantineMode } from './protocols/sim/byzantine.js';
export {
  ReceiptError,
  verifyReceipt,
  verifyTreeHead,
  verifyConsistency,
  receiptToJson,
  receiptFromJson,
  trustToJson,
  trustFromJson,
  policyAt,
  type PolicyMigrationPoint,
  type QuorumMemo,
  type QuorumReport,
  type Receipt,
  type ReceiptBody,
  type ReceiptVerdict,
  type SignedTreeHead,
  type TreeHead,
  type Trust,
} from './protocols/receipts/index.js';
export { ConsensusError, MAX_STATE_BYTES, kvPayload, kvResponse, type KvOperation, type KvResponse, type ConsensusAlgorithm, type ConsensusErrorCode, type Command, type ConsensusState, type StateView } from './protocols/consensus/index.js';
export { defineStateMachine, isStateMachine, KeyValue, type StateMachine, type StateMachineDefinition } from './actors/state-machine-definition.js';
