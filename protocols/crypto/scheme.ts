/**
 * The `SignatureScheme` interface and the one wrapper that turns a backend's raw primitive into
 * a scheme. The wrapper owns every rule that must not differ between schemes or backends:
 * length checks, the 255-byte context limit, key branding, typed errors when signing, and the
 * "never throws, only says false" contract of verification.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { CryptoError } from './errors.js';
import type { KeyCategory, KeyPair, PublicKey, SecretKey } from './keys.js';
import type { Primitive } from './primitive.js';

/** Category of every scheme, by name: the map from which each scheme's key types follow. */
export interface SchemeCategories {
  'Ed25519': 'classical';
  'ML-DSA-44': 'quantum-safe';
  'ML-DSA-65': 'quantum-safe';
  'ML-DSA-87': 'quantum-safe';
  'Falcon-512': 'quantum-safe';
  'SLH-DSA-SHA2-128f': 'quantum-safe';
  'ML-DSA-65+Ed25519': 'hybrid';
  'ML-DSA-44+Ed25519': 'hybrid';
}

/** Name of a signature scheme. */
export type SchemeName = keyof SchemeCategories;

/** The longest context string any scheme accepts (FIPS 204 §5.2, FIPS 205 §10.2: one length byte). */
export const MAX_CONTEXT_BYTES = 255;

/** The fixed facts of a scheme, independent of the backend that computes it. */
export interface SchemeSpec<C extends KeyCategory = KeyCategory> {
  /** Scheme name. */
  readonly name: SchemeName;
  /** Security category of the scheme and its keys. */
  readonly category: C;
  /** Length of an encoded public key. */
  readonly publicKeyBytes: number;
  /** Length of an encoded secret key. */
  readonly secretKeyBytes: number;
  /** Length of a signature; the maximum when `variableSignature` is set. */
  readonly signatureBytes: number;
  /** Whether signatures vary in length (Falcon) rather than having exactly `signatureBytes`. */
  readonly variableSignature: boolean;
  /** Length of the seed `keygen` derives a key pair from. */
  readonly seedBytes: number;
  /** Whether the scheme takes a context string; schemes without one accept only the empty context. */
  readonly contextSupported: boolean;
}

/** A signature scheme running on one backend. Keys carry the scheme's category in their type. */
export interface SignatureScheme<C extends KeyCategory = KeyCategory> extends SchemeSpec<C> {
  /** Name of the backend that computes this scheme (`noble`, `node`, or a composite's two). */
  readonly backend: string;
  /**
   * Generates a key pair: from `seed` when given (deterministic; `seedBytes` long), otherwise from
   * the platform CSPRNG. Throws `CryptoError` `INVALID_SEED` on a seed of the wrong length.
   */
  keygen(seed?: Uint8Array): KeyPair<C>;
  /**
   * Signs `message` under `context` (default empty). Throws `CryptoError`: `INVALID_SECRET_KEY`
   * for a key of the wrong length or content, `CONTEXT_TOO_LONG` above 255 bytes,
   * `CONTEXT_UNSUPPORTED` for a non-empty context on a scheme without one.
   */
  sign(secretKey: SecretKey<C>, message: Uint8Array, context?: Uint8Array): Uint8Array;
  /**
   * Whether `signature` is valid for `message` under `publicKey` and `context`. Never throws:
   * wrong lengths, undecodable keys or signatures, an oversized or unsupported context, and
   * values that are not byte arrays at all are all `false`.
   */
  verify(publicKey: PublicKey<C>, message: Uint8Array, signature: Uint8Array, context?: Uint8Array): boolean;
  /**
   * Brands received bytes as a public key of this scheme's category. Does not validate them:
   * `verify` is the single place that judges a key, and it answers `false` for a malformed one.
   */
  importPublicKey(bytes: Uint8Array): PublicKey<C>;
  /** Brands bytes as a secret key of this scheme's category; `sign` checks them. */
  importSecretKey(bytes: Uint8Array): SecretKey<C>;
}

const EMPTY = new Uint8Array(0);

function contextOf(spec: SchemeSpec, context: Uint8Array | undefined): Uint8Array {
  const ctx = context ?? EMPTY;
  if (ctx.length > MAX_CONTEXT_BYTES) {
    throw new CryptoError('CONTEXT_TOO_LONG', `${spec.name}: context of ${ctx.length} bytes exceeds ${MAX_CONTEXT_BYTES}`);
  }
  if (ctx.length > 0 && !spec.contextSupported) {
    throw new CryptoError('CONTEXT_UNSUPPORTED', `${spec.name} takes no context string`);
  }
  return ctx;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function signatureLengthOk(spec: SchemeSpec, length: number): boolean {
  return spec.variableSignature ? length > 0 && length <= spec.signatureBytes : length === spec.signatureBytes;
}

/** Builds the scheme `spec` computed by `primitive` of the backend named `backend`. */
export function defineScheme<C extends KeyCategory>(spec: SchemeSpec<C>, primitive: Primitive, backend: string): SignatureScheme<C> {
  return Object.freeze({
    ...spec,
    backend,
    keygen(seed?: Uint8Array): KeyPair<C> {
      if (seed !== undefined && (!isBytes(seed) || seed.length !== spec.seedBytes)) {
        throw new CryptoError('INVALID_SEED', `${spec.name}: a seed is ${spec.seedBytes} bytes`);
      }
      // A seed drawn here is secret material that nobody else holds: wipe it once the key pair
      // (which owns copies of what it needs) exists.
      const drawn = seed === undefined ? randomBytes(spec.seedBytes) : undefined;
      try {
        const pair = primitive.keygen(seed ?? (drawn as Uint8Array));
        return { publicKey: pair.publicKey as PublicKey<C>, secretKey: pair.secretKey as SecretKey<C> };
      } finally {
        drawn?.fill(0);
      }
    },
    sign(secretKey: SecretKey<C>, message: Uint8Array, context?: Uint8Array): Uint8Array {
      if (!isBytes(secretKey) || secretKey.length !== spec.secretKeyBytes) {
        throw new CryptoError('INVALID_SECRET_KEY', `${spec.name}: a secret key is ${spec.secretKeyBytes} bytes`);
      }
      if (!isBytes(message) || (context !== undefined && !isBytes(context))) {
        throw new CryptoError('INVALID_INPUT', `${spec.name}: message and context are byte arrays`);
      }
      const ctx = contextOf(spec, context);
      try {
        return primitive.sign(secretKey, message, ctx);
      } catch (cause) {
        // Lengths and context are already checked, so a failure here is the key's content.
        throw new CryptoError('INVALID_SECRET_KEY', `${spec.name}: the secret key is malformed`, { cause });
      }
    },
    verify(publicKey: PublicKey<C>, message: Uint8Array, signature: Uint8Array, context?: Uint8Array): boolean {
      const ctx = context ?? EMPTY;
      if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature) || !isBytes(ctx)) return false;
      if (publicKey.length !== spec.publicKeyBytes || !signatureLengthOk(spec, signature.length)) return false;
      if (ctx.length > MAX_CONTEXT_BYTES || (ctx.length > 0 && !spec.contextSupported)) return false;
      try {
        return primitive.verify(publicKey, message, signature, ctx) === true;
      } catch {
        return false;
      }
    },
    importPublicKey: (bytes: Uint8Array) => bytes as PublicKey<C>,
    importSecretKey: (bytes: Uint8Array) => bytes as SecretKey<C>,
  });
}
