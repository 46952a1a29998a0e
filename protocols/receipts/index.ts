/**
 * Receipts and the Merkle receipt log: RFC 9162 hashing and proofs, the canonical encodings that
 * replicas sign, receipts and signed tree heads with their JSON forms, trust descriptions, offline
 * verification, fork detection and the collector of tree-head signatures. Pure computation.
 */
export { ReceiptError, type ReceiptErrorCode } from './errors.js';
export { BASE64URL_PATTERN, fromBase64Url, toBase64Url } from './base64url.js';
export { EMPTY_ROOT, HASH_BYTES, leafHash, nodeHash, sameHash, verifyConsistencyProof, verifyInclusion } from './merkle.js';
export { MerkleLog, PendingLeaves } from './merkle-log.js';
export { RECEIPT_TAG, TREE_HEAD_CONTEXT, TREE_HEAD_TAG, encodeReceiptBody, encodeTreeHead } from './canonical.js';
export { isWellFormed } from '../consensus/codec.js';
export { RECEIPT_VERSION, buildReceipt, commandHash, receiptLeafHash, type Receipt, type ReceiptBody } from './receipt.js';
export {
  TREE_HEAD_VERSION,
  signTreeHead,
  treeHeadContext,
  treeHeadSigningInput,
  type SignedTreeHead,
  type TreeHead,
  type TreeHeadSignature,
  type TreeHeadSigner,
} from './tree-head.js';
export { appendBatch, BatchAppend, receiptBodies, type BatchRecord, type ExecutedBatch, type LogContext } from './batch.js';
export { TRUST_VERSION, checkTrust, keyAt, policyAt, trustKeyOf, trustQuorum, type PolicyMigrationPoint, type Trust, type TrustKey, type TrustMember } from './trust.js';
export {
  CONSISTENCY_PROOF_VERSION,
  proveConsistency,
  verifyConsistency,
  type ConsistencyProof,
  type ConsistencyVerdict,
} from './consistency.js';
export {
  treeHeadSignatureProblem,
  verifyReceipt,
  verifyTreeHead,
  type Failure,
  type QuorumMemo,
  type QuorumReport,
  type ReceiptCheck,
  type ReceiptVerdict,
  type TreeHeadCheck,
  type TreeHeadVerdict,
} from './verify.js';
export { ForkError, assertNoFork, compareTreeHeads, type ForkEvidence, type ForkKind, type TreeHeadComparison } from './fork.js';
export { TreeHeadCollector, type CollectorOptions, type CollectorUpdate } from './collector.js';
export { TreeHeadSchedule } from './signing-schedule.js';
export {
  consistencyProofFromJson,
  consistencyProofToJson,
  receiptFromJson,
  receiptToJson,
  treeHeadFromJson,
  treeHeadToJson,
  trustFromJson,
  trustToJson,
  type Json,
} from './json.js';
export {
  BINARY_SCHEMAS,
  JSON_SCHEMAS,
  MAX_CLIENT_LENGTH,
  MAX_ID_LENGTH,
  MAX_PROOF_HASHES,
  MAX_PUBLIC_KEY_BYTES,
  MAX_SIGNATURES,
  MAX_SIGNATURE_BYTES,
} from './schemas.js';
