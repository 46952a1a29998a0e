/**
 * Typed errors of the signature layer. Misuse by the caller (a context too long to encode, a key
 * of the wrong length handed to `sign`, a backend forced where it cannot run) raises a
 * `CryptoError` with a stable `code`, so callers branch on codes rather than on message text.
 * A scheme's `verify` never raises one for malformed input (a bad key or signature is a `false`
 * verdict); `verifyUnderPolicy` does, on purpose: under a policy every violation is a hard error.
 */

/** Stable machine-readable codes of {@link CryptoError}. */
export type CryptoErrorCode =
  /** A context string exceeds 255 bytes (FIPS 204 §5.2, FIPS 205 §10.2, and the composite draft's Sign). */
  | 'CONTEXT_TOO_LONG'
  /** A non-empty context was given to a scheme that has no context input (Ed25519, Falcon-512). */
  | 'CONTEXT_UNSUPPORTED'
  /** A secret key handed to `sign` does not have the scheme's secret-key length. */
  | 'INVALID_SECRET_KEY'
  /** A message or context handed to `sign` is not a byte array. */
  | 'INVALID_INPUT'
  /** A seed handed to `keygen` does not have the scheme's seed length. */
  | 'INVALID_SEED'
  /** A backend was requested for a scheme it cannot run on this Node, or fails to reproduce its known answers. */
  | 'BACKEND_UNAVAILABLE'
  /** A scheme name is not known to the registry. */
  | 'UNKNOWN_SCHEME'
  /** A backend name is not among the registry's backends. */
  | 'UNKNOWN_BACKEND'
  /** A value given as a signature policy is not one of `classical`, `hybrid`, `quantum`. */
  | 'UNKNOWN_POLICY'
  /** A signature's scheme is not admitted by the signature policy in force (DESIGN.md "Cryptography"). */
  | 'SCHEME_NOT_ALLOWED'
  /** A signature does not verify; for a composite, at least one of its two components does not. */
  | 'SIGNATURE_INVALID'
  /** A policy change is not one forward step of classical → hybrid → quantum. */
  | 'POLICY_TRANSITION_INVALID'
  /** A key creation timestamp is not a whole number of milliseconds in [0, 2^53 − 1]. */
  | 'INVALID_TIMESTAMP'
  /** A signing key was used after `dispose()` wiped its secret bytes. */
  | 'KEY_DISPOSED'
  /** A key was used or checked after the end of its validity window or of its sequence range. */
  | 'KEY_EXPIRED'
  /** A key was used or checked before the start of its validity window or of its sequence range. */
  | 'KEY_NOT_YET_VALID'
  /** A key was used or checked at or after the time or sequence from which it is revoked. */
  | 'KEY_REVOKED'
  /** A key id is not among the keys known for a member. */
  | 'UNKNOWN_KEY'
  /** No key of a member is valid at the time or sequence asked about. */
  | 'NO_VALID_KEY'
  /** A rotation certificate is malformed, forged, inconsistent, or does not follow the key it replaces. */
  | 'ROTATION_INVALID'
  /** A key file's checksum is intact but its authenticated decryption fails: a wrong passphrase (or a forged file). */
  | 'KEYSTORE_WRONG_PASSPHRASE'
  /** A key file is damaged: not a key file, truncated, extended, or its checksum does not match. */
  | 'KEYSTORE_CORRUPT'
  /** A key file decrypts, but its secret key, public key and key id do not belong together. */
  | 'KEYSTORE_MISMATCH'
  /** A key file is intact but has a format version, KDF, scheme or KDF cost this reader does not accept. */
  | 'KEYSTORE_UNSUPPORTED'
  /** A key store holds no file for the requested key id. */
  | 'KEYSTORE_NOT_FOUND';

/** A misuse of the signature layer, with a stable {@link CryptoErrorCode}. */
export class CryptoError extends Error {
  /** Stable machine-readable code. */
  readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'CryptoError';
  }
}
