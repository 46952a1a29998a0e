/**
 * Signature schemes for knhk: Ed25519, ML-DSA-44/65/87, Falcon-512, SLH-DSA-SHA2-128f and the
 * composite hybrids ML-DSA-65+Ed25519 / ML-DSA-44+Ed25519, on the noble and node:crypto backends.
 * Pure computation: no I/O, no clock, randomness only from the CSPRNG for keys and hedged signing.
 */
export { CryptoError, type CryptoErrorCode } from './errors.js';
export type { ClassicalKey, HybridKey, Key, KeyCategory, KeyKind, KeyPair, PublicKey, QuantumSafeKey, SecretKey } from './keys.js';
export {
  MAX_CONTEXT_BYTES,
  defineScheme,
  type SchemeCategories,
  type SchemeName,
  type SchemeSpec,
  type SignatureScheme,
} from './scheme.js';
export { PRIMITIVE_NAMES, type Backend, type Primitive, type PrimitiveName } from './primitive.js';
export { ED25519_SPEC, ed25519Precheck } from './ed25519.js';
export { ML_DSA_44, ML_DSA_65, ML_DSA_87, type MlDsaParameters } from './ml-dsa.js';
export { FALCON_512_SPEC } from './falcon.js';
export { SLH_DSA_SHA2_128F_SPEC } from './slh-dsa.js';
export {
  MLDSA44_ED25519,
  MLDSA65_ED25519,
  compositePrimitive,
  messageRepresentative,
  type ComponentCall,
  type ComponentObserver,
  type CompositeParameters,
} from './composite.js';
export { nobleBackend } from './backends/noble.js';
export { nodeBackend } from './backends/node.js';
export { DEFAULT_HYBRID, SCHEME_NAMES, SchemeRegistry, type BackendChoice, type RegistryOptions } from './registry.js';
export {
  POLICY_CATEGORY,
  SIGNATURE_POLICIES,
  checkPolicyTransition,
  isSignaturePolicy,
  policyAdmits,
  requireAdmitted,
  verifyUnderPolicy,
  type PolicyCategories,
  type SignaturePolicy,
} from './policy.js';
export { applyPolicyMigration, type PolicyMigration } from './policy-migration.js';
export { encodeTimestamp, isKeyId, keyId, type KeyId } from './key-id.js';
export { SigningKey } from './signing-key.js';
export {
  DEFAULT_MAX_SCRYPT_COST,
  DEFAULT_SCRYPT,
  KEY_FILE_MAGIC,
  KEY_FILE_NONCE_BYTES,
  KEY_FILE_SALT_BYTES,
  KEY_FILE_VERSION,
  decodeKeyEnvelope,
  openKey,
  sealKey,
  type KeyEnvelope,
  type KeyEnvelopeHeader,
  type OpenOptions,
  type Passphrase,
  type ScryptParameters,
  type SealInputs,
} from './key-envelope.js';
export {
  checkDescriptor,
  decodeRotationCertificate,
  describeKey,
  encodeRotationCertificate,
  encodeRotationStatement,
  signRotation,
  verifyRotationCertificate,
  windowFits,
  type KeyDescriptor,
  type MemberId,
  type RotationCertificate,
  type RotationPredecessor,
  type RotationSubject,
  type SchemeResolver,
  type ValidityWindow,
} from './key-rotation.js';
export { KeyDirectory, type KeyPoint, type KeyQuery, type KeyRecord, type SignedMessage } from './key-directory.js';
export { DEFAULT_KEY_LIFETIME_MS, DEFAULT_ROTATION_LEAD_MS, KeyManager, type KeyGenerator, type KeyManagerOptions } from './key-manager.js';
