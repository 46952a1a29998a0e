/**
 * The raw algorithms a backend provides, below the scheme layer. A primitive works on plain
 * bytes and may assume its caller (the scheme layer, `scheme.ts`) has already checked every
 * length and the context size; it may throw on anything else. The scheme layer turns those
 * throws into typed errors (signing) or a `false` verdict (verification).
 */

/** Names of the algorithms a backend may implement. */
export type PrimitiveName = 'ed25519' | 'ml-dsa-44' | 'ml-dsa-65' | 'ml-dsa-87' | 'falcon-512' | 'slh-dsa-sha2-128f';

/** Every primitive name, in a stable order. */
export const PRIMITIVE_NAMES: readonly PrimitiveName[] = [
  'ed25519',
  'ml-dsa-44',
  'ml-dsa-65',
  'ml-dsa-87',
  'falcon-512',
  'slh-dsa-sha2-128f',
];

/** One signature algorithm as a backend implements it, on unchecked raw bytes. */
export interface Primitive {
  /** Derives a key pair from a seed of the algorithm's seed length. */
  keygen(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array };
  /** Signs `message` under `context` (empty when the algorithm has none). */
  sign(secretKey: Uint8Array, message: Uint8Array, context: Uint8Array): Uint8Array;
  /** Verifies; may throw on input the algorithm cannot parse. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, context: Uint8Array): boolean;
}

/** A named set of primitives: a cryptographic library the schemes can run on. */
export interface Backend {
  /** Name reported in telemetry (`crypto.backend`), e.g. `noble` or `node`. */
  readonly name: string;
  /** The backend's implementation of `name`, or `undefined` when it has none on this Node. */
  primitive(name: PrimitiveName): Primitive | undefined;
}
