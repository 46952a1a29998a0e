/**
 * Key identifiers (DESIGN.md "Cryptography": `KeyId` = BLAKE3(public key ‖ creation timestamp)).
 *
 * The encoding, fixed so that any implementation reproduces an id byte for byte:
 *
 *     KeyId = lowercase-hex( BLAKE3( publicKey ‖ u64be(createdAt) ) )
 *
 * - `publicKey`: the scheme's raw public-key encoding, exactly as `keygen` returns it (for a
 *   composite, ML-DSA public key ‖ Ed25519 public key), with no length prefix and no scheme tag.
 * - `createdAt`: the key's creation time in whole milliseconds since 1970-01-01T00:00:00Z (POSIX
 *   time, as `Date.now()` counts it), as an unsigned 64-bit big-endian integer: 8 bytes. It is
 *   restricted to [0, 2^53 − 1] so that a JavaScript number holds it exactly.
 * - BLAKE3 in its default hash mode (no key, no derive-key context), 32-byte output: 64 hex digits.
 *
 * The timestamp has a fixed width and comes last, so the concatenation parses unambiguously from
 * its end whatever the key's length. The id names a key, not a scheme: verifiers take the scheme
 * from the key's record, never from its id. The timestamp is an input; nothing here reads a clock.
 */
import { blake3 } from '@noble/hashes/blake3.js';
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js';
import { CryptoError } from './errors.js';
import type { PublicKey } from './keys.js';

declare const keyIdBrand: unique symbol;

/** A key identifier: 64 lowercase hex digits, made by {@link keyId} or checked by {@link isKeyId}. */
export type KeyId = string & { readonly [keyIdBrand]: true };

const KEY_ID_PATTERN = /^[0-9a-f]{64}$/;

/** The 8-byte u64 big-endian encoding of a creation timestamp in milliseconds. */
export function encodeTimestamp(createdAt: number): Uint8Array {
  if (!Number.isSafeInteger(createdAt) || createdAt < 0) {
    throw new CryptoError('INVALID_TIMESTAMP', `a key creation time is a whole number of milliseconds in [0, 2^53 − 1], not ${createdAt}`);
  }
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(createdAt), false);
  return bytes;
}

/**
 * The id of `publicKey` created at `createdAt` (milliseconds since the epoch). Takes a public key
 * only: hashing a secret key into an id that is published would be a leak the types can prevent.
 * Throws `CryptoError` `INVALID_TIMESTAMP` for a time outside [0, 2^53 − 1] or not a whole number.
 */
export function keyId(publicKey: PublicKey, createdAt: number): KeyId {
  return bytesToHex(blake3(concatBytes(publicKey, encodeTimestamp(createdAt)))) as KeyId;
}

/** Whether `value` has the form of a key id: for ids decoded from untyped data. */
export function isKeyId(value: unknown): value is KeyId {
  return typeof value === 'string' && KEY_ID_PATTERN.test(value);
}
