/**
 * The encrypted key file (DESIGN.md "Cryptography": at rest, secret keys are encrypted with a
 * passphrase-derived key): pure encoding, decoding, sealing and opening. No file system here;
 * `actors/key-store.ts` reads and writes the bytes, and draws the salt and the nonce.
 *
 * ## Layout, version 2
 *
 * All integers are unsigned and big-endian. Offsets are from the start of the file.
 *
 * | offset      | size | field                                                                  |
 * |-------------|------|------------------------------------------------------------------------|
 * | 0           | 8    | magic: ASCII `KNHK-KEY` (4B 4E 48 4B 2D 4B 45 59)                       |
 * | 8           | 1    | format version: 2                                                      |
 * | 9           | 1    | KDF id: 1 = scrypt (RFC 7914)                                           |
 * | 10          | 1    | scrypt log2(N): N = 2^value                                            |
 * | 11          | 4    | scrypt r                                                               |
 * | 15          | 4    | scrypt p                                                               |
 * | 19          | 1    | salt length S, 16 to 64 (writers use 32)                               |
 * | 20          | S    | salt                                                                   |
 * | 20+S        | 24   | XChaCha20-Poly1305 nonce                                               |
 * | 44+S        | 8    | createdAt: milliseconds since the epoch, at most 2^53 − 1              |
 * | 52+S        | 8    | notBefore: first millisecond of the key's validity window              |
 * | 60+S        | 8    | notAfter: first millisecond past it (createdAt ≤ notBefore < notAfter) |
 * | 68+S        | 1    | scheme name length L, 1 to 64                                          |
 * | 69+S        | L    | scheme name, ASCII, as in `SchemeName` (e.g. `ML-DSA-65+Ed25519`)      |
 * | 69+S+L      | 4    | public key length P                                                    |
 * | 73+S+L      | P    | public key, the scheme's raw encoding                                  |
 * | 73+S+L+P    | 32   | key id: the 32-byte BLAKE3 digest whose hex is the `KeyId`             |
 * | 105+S+L+P   | 4    | ciphertext length C (= the scheme's secret-key length + 16)            |
 * | 109+S+L+P   | C    | XChaCha20-Poly1305 ciphertext ‖ 16-byte Poly1305 tag                   |
 * | 109+S+L+P+C | 32   | checksum: SHA-256 of every byte before it                              |
 *
 * The file ends right after the checksum; trailing bytes make it corrupt.
 *
 * - Key derivation: key = scrypt(passphrase, salt, N, r, p, dkLen = 32) (RFC 7914 §2). A string
 *   passphrase is Unicode-normalized to NFC and encoded as UTF-8, so the same typed characters
 *   give the same key whichever input method composed them; a byte passphrase is used as is.
 * - Encryption: ciphertext = XChaCha20-Poly1305(key, nonce, aad = bytes [0, 109+S+L+P)), i.e.
 *   the AEAD construction of RFC 8439 §2.8 with the 24-byte nonce of draft-irtf-cfrg-xchacha §2.
 *   The associated data is the whole header, from the magic to the ciphertext length, so that
 *   changing any header field (the scheme, the public key, the creation time, the validity
 *   window, the KDF cost) makes decryption fail rather than yield a key with other metadata.
 * - The validity window (version 2; version 1 had none and is refused as unsupported) is sealed so
 *   that whoever can write the key directory but does not know the passphrase cannot lengthen a
 *   key's life by editing the public record beside it (`custody.json`): a reader states the window
 *   it expects ({@link OpenOptions.window}) and a file sealed with another is refused.
 * - Plaintext: the scheme's secret key as `SignatureScheme.keygen` returns it.
 * - Checksum: catches accidental damage (a bad disk block, a truncated copy) before any key is
 *   derived, so that damage is reported as corruption and not as a wrong passphrase. It is not
 *   a security measure: anyone can recompute it, and only the AEAD tag authenticates.
 *
 * Why a hand-laid binary layout rather than msgpack: the header's exact bytes are the AEAD's
 * associated data, so a reader must authenticate the bytes as stored, not a re-encoding (msgpack
 * admits several encodings of one value); fixed-width fields at documented offsets are readable
 * by any language with this table alone, and a decoder that consumes a length-checked byte
 * sequence leaves no room for the ambiguity that a generic decoder's type tags would add.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { equalBytes } from '@noble/curves/utils.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { CryptoError, type CryptoErrorCode } from './errors.js';
import { encodeTimestamp, keyId, type KeyId } from './key-id.js';
import { windowFits, type ValidityWindow } from './key-rotation.js';
import { SCHEME_NAMES, type SchemeRegistry } from './registry.js';
import type { SchemeName, SignatureScheme } from './scheme.js';
import { SigningKey } from './signing-key.js';

/** The file's first eight bytes: ASCII `KNHK-KEY`. */
export const KEY_FILE_MAGIC: Uint8Array = utf8ToBytes('KNHK-KEY');
/** The format version this module writes and reads. */
export const KEY_FILE_VERSION = 2;
/** Length of the salt writers draw. */
export const KEY_FILE_SALT_BYTES = 32;
/** Length of an XChaCha20 nonce (draft-irtf-cfrg-xchacha §2.3). */
export const KEY_FILE_NONCE_BYTES = 24;

const KDF_SCRYPT = 1;
const TAG_BYTES = 16;
const CHECKSUM_BYTES = 32;
const KEY_ID_BYTES = 32;
const DERIVED_KEY_BYTES = 32;
const MIN_SALT_BYTES = 16;
const MAX_SALT_BYTES = 64;
const MAX_SCHEME_NAME_BYTES = 64;
/** magic, version: enough to tell a key file of another version from damage. */
const PREAMBLE_BYTES = KEY_FILE_MAGIC.length + 1;

/** scrypt's cost parameters (RFC 7914 §2), with N given as its base-2 logarithm. */
export interface ScryptParameters {
  /** log2 of the CPU/memory cost N; storing the exponent makes a non-power-of-two N unencodable. */
  readonly log2N: number;
  /** Block size r. */
  readonly r: number;
  /** Parallelization p. */
  readonly p: number;
}

/**
 * N = 2^17, r = 8, p = 1: 128 MiB of memory and on the order of a second of one core in noble's
 * JavaScript scrypt, the OWASP Password Storage Cheat Sheet's scrypt baseline. A replica opens
 * its key once at start-up, so that second is affordable, and it is what each passphrase guess
 * costs an attacker who holds the file.
 */
export const DEFAULT_SCRYPT: ScryptParameters = Object.freeze({ log2N: 17, r: 8, p: 1 });

/** The most scrypt cost (see {@link OpenOptions.maxScryptCost}) a reader accepts by default: 2^28, twice what the default needs. */
export const DEFAULT_MAX_SCRYPT_COST = 2 ** 28;

/** A passphrase: text (NFC-normalized, UTF-8 encoded) or raw bytes. */
export type Passphrase = string | Uint8Array;

/** Every header field of a key file. */
export interface KeyEnvelopeHeader {
  /** scrypt parameters. */
  readonly kdf: ScryptParameters;
  /** The scrypt salt, 16 to 64 bytes. */
  readonly salt: Uint8Array;
  /** The XChaCha20-Poly1305 nonce, 24 bytes. */
  readonly nonce: Uint8Array;
  /** Creation time of the key, milliseconds since the epoch. */
  readonly createdAt: number;
  /** The key's validity window, sealed with it. */
  readonly window: ValidityWindow;
  /** Scheme of the key. */
  readonly scheme: SchemeName;
  /** The key's public key. */
  readonly publicKey: Uint8Array;
  /** The key's id, as stored (checked against the public key by {@link openKey}). */
  readonly keyId: KeyId;
}

/** A decoded key file: its header, the header's exact bytes (the AEAD's associated data), and the ciphertext. */
export interface KeyEnvelope {
  /** The parsed header. */
  readonly header: KeyEnvelopeHeader;
  /** The header as stored: bytes from the magic to the ciphertext length, inclusive. */
  readonly associatedData: Uint8Array;
  /** Ciphertext ‖ tag. */
  readonly ciphertext: Uint8Array;
}

/** Fresh randomness a seal consumes; the caller draws it from a CSPRNG and never reuses a nonce. */
export interface SealInputs {
  /** scrypt salt, 16 to 64 bytes; {@link KEY_FILE_SALT_BYTES} by convention. */
  readonly salt: Uint8Array;
  /** XChaCha20-Poly1305 nonce, 24 bytes. */
  readonly nonce: Uint8Array;
  /** scrypt parameters; default {@link DEFAULT_SCRYPT}. */
  readonly kdf?: ScryptParameters;
}

/** Options of {@link openKey}. */
export interface OpenOptions {
  /**
   * Refuse files whose scrypt needs more than this many bytes of memory, 128·r·(N + p + 1), or of
   * mixing work, 128·r·N·p (its running time): a file's cost is chosen by whoever wrote it, and a
   * reader must not be made to spend gigabytes or hours on it. Default {@link DEFAULT_MAX_SCRYPT_COST}.
   */
  readonly maxScryptCost?: number;
  /** The validity window the key must have been sealed with: a file sealed with another is `KEYSTORE_MISMATCH`. */
  readonly window?: ValidityWindow;
}

function fail(code: CryptoErrorCode, message: string, cause?: unknown): never {
  throw new CryptoError(code, message, cause === undefined ? undefined : { cause });
}

/** Memory noble's scrypt allocates, as its `maxmem` check counts it: 128·r bytes per block, N + p + 1 blocks. */
function scryptMemory(kdf: ScryptParameters): number {
  return 128 * kdf.r * (2 ** kdf.log2N + kdf.p + 1);
}

/** The larger of scrypt's memory and its work (128·r·N bytes mixed in each of p lanes). */
function scryptCost(kdf: ScryptParameters): number {
  return Math.max(scryptMemory(kdf), 128 * kdf.r * 2 ** kdf.log2N * kdf.p);
}

/**
 * Whether `kdf` is computable: N a power of two with 2 ≤ N ≤ 2^32 (RFC 7914 §2 asks N > 1; the
 * upper bound is Integerify's 32 bits in noble), r ≥ 1 and 1 ≤ p ≤ (2^32 − 1)·32 / (128·r)
 * (RFC 7914 §2). The RFC's further N < 2^(128·r/8) is left out, as noble leaves it out: it is the
 * subject of an erratum, and it would only refuse r = 1 with N ≥ 2^16.
 */
function validScrypt(kdf: ScryptParameters): boolean {
  const { log2N, r, p } = kdf;
  const integers = [log2N, r, p].every((v) => Number.isSafeInteger(v) && v >= 1);
  return integers && log2N <= 32 && r <= 0xffffffff && p <= ((2 ** 32 - 1) * 32) / (128 * r);
}

function u32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, false);
  return bytes;
}

/** The header bytes of the layout above, from the magic to the ciphertext length. */
function encodeHeader(header: KeyEnvelopeHeader, ciphertextBytes: number): Uint8Array {
  const name = utf8ToBytes(header.scheme);
  return concatBytes(
    KEY_FILE_MAGIC,
    Uint8Array.of(KEY_FILE_VERSION, KDF_SCRYPT, header.kdf.log2N),
    u32(header.kdf.r),
    u32(header.kdf.p),
    Uint8Array.of(header.salt.length),
    header.salt,
    header.nonce,
    encodeTimestamp(header.createdAt),
    encodeTimestamp(header.window.notBefore),
    encodeTimestamp(header.window.notAfter),
    Uint8Array.of(name.length),
    name,
    u32(header.publicKey.length),
    header.publicKey,
    hexToBytes(header.keyId),
    u32(ciphertextBytes),
  );
}

/** A bounds-checked cursor: running off the end is corruption (a truncated or mangled file). */
class Reader {
  #offset = 0;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get offset(): number {
    return this.#offset;
  }
  bytes(length: number, field: string): Uint8Array {
    if (length > this.#bytes.length - this.#offset) fail('KEYSTORE_CORRUPT', `key file truncated in ${field}`);
    const out = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }
  u8(field: string): number {
    return this.#view.getUint8(this.#at(1, field));
  }
  u32(field: string): number {
    return this.#view.getUint32(this.#at(4, field), false);
  }
  u64(field: string): bigint {
    return this.#view.getBigUint64(this.#at(8, field), false);
  }
  #at(length: number, field: string): number {
    return this.bytes(length, field).byteOffset - this.#bytes.byteOffset;
  }
}

/**
 * Parses a key file. Checks, in this order: the magic (else `KEYSTORE_CORRUPT`), the version
 * (else `KEYSTORE_UNSUPPORTED`), the checksum (else `KEYSTORE_CORRUPT`), then every field's
 * length and range (`KEYSTORE_CORRUPT`), the KDF id and the scheme name (`KEYSTORE_UNSUPPORTED`).
 * Authenticates nothing: that is {@link openKey}'s decryption. The returned fields are views of
 * `bytes`, not copies.
 */
export function decodeKeyEnvelope(bytes: Uint8Array): KeyEnvelope {
  // A plain view of the caller's bytes: a Node Buffer's subarrays are Buffers, whose `slice()` is
  // a view rather than a copy, and the fields returned here get copied with `slice()` downstream.
  const file = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (file.length < PREAMBLE_BYTES || !equalBytes(file.subarray(0, KEY_FILE_MAGIC.length), KEY_FILE_MAGIC)) {
    fail('KEYSTORE_CORRUPT', 'not a knhk key file (bad magic)');
  }
  const version = file[KEY_FILE_MAGIC.length];
  if (version !== KEY_FILE_VERSION) fail('KEYSTORE_UNSUPPORTED', `key file format version ${version} is not supported (this reader knows ${KEY_FILE_VERSION})`);
  if (file.length < PREAMBLE_BYTES + CHECKSUM_BYTES) fail('KEYSTORE_CORRUPT', 'key file truncated');
  const body = file.subarray(0, file.length - CHECKSUM_BYTES);
  if (!equalBytes(sha256(body), file.subarray(body.length))) fail('KEYSTORE_CORRUPT', 'key file checksum mismatch: the file is damaged or truncated');

  const reader = new Reader(body);
  reader.bytes(PREAMBLE_BYTES, 'preamble');
  const kdfId = reader.u8('KDF id');
  if (kdfId !== KDF_SCRYPT) fail('KEYSTORE_UNSUPPORTED', `key file KDF ${kdfId} is not supported`);
  const kdf: ScryptParameters = { log2N: reader.u8('scrypt N'), r: reader.u32('scrypt r'), p: reader.u32('scrypt p') };
  if (!validScrypt(kdf)) fail('KEYSTORE_CORRUPT', `key file scrypt parameters out of range (RFC 7914 §2): ${JSON.stringify(kdf)}`);
  const saltLength = reader.u8('salt length');
  if (saltLength < MIN_SALT_BYTES || saltLength > MAX_SALT_BYTES) fail('KEYSTORE_CORRUPT', `key file salt of ${saltLength} bytes`);
  const salt = reader.bytes(saltLength, 'salt');
  const nonce = reader.bytes(KEY_FILE_NONCE_BYTES, 'nonce');
  const times = ['createdAt', 'notBefore', 'notAfter'].map((field) => reader.u64(field));
  if (times.some((time) => time > BigInt(Number.MAX_SAFE_INTEGER))) fail('KEYSTORE_CORRUPT', 'key file times out of range');
  const [createdAt, notBefore, notAfter] = times.map(Number) as [number, number, number];
  const window: ValidityWindow = { notBefore, notAfter };
  if (!windowFits(window, createdAt)) fail('KEYSTORE_CORRUPT', `key file validity window [${notBefore}, ${notAfter}) is empty or starts before the key's creation at ${createdAt}`);
  const nameLength = reader.u8('scheme name length');
  if (nameLength === 0 || nameLength > MAX_SCHEME_NAME_BYTES) fail('KEYSTORE_CORRUPT', `key file scheme name of ${nameLength} bytes`);
  const name = new TextDecoder().decode(reader.bytes(nameLength, 'scheme name'));
  const scheme = SCHEME_NAMES.find((known) => known === name);
  if (scheme === undefined) fail('KEYSTORE_UNSUPPORTED', `key file scheme ${JSON.stringify(name)} is not known to this reader`);
  const publicKey = reader.bytes(reader.u32('public key length'), 'public key');
  const id = bytesToHex(reader.bytes(KEY_ID_BYTES, 'key id')) as KeyId;
  const ciphertextLength = reader.u32('ciphertext length');
  const associatedData = body.subarray(0, reader.offset);
  const ciphertext = reader.bytes(ciphertextLength, 'ciphertext');
  if (reader.offset !== body.length) fail('KEYSTORE_CORRUPT', 'key file has trailing bytes');
  return {
    header: { kdf, salt, nonce, createdAt, window, scheme, publicKey, keyId: id },
    associatedData,
    ciphertext,
  };
}

/**
 * The 32-byte file key: scrypt(passphrase, salt, N, r, p, dkLen = 32). The caller wipes it.
 * scrypt runs asynchronously, yielding to the event loop every few milliseconds.
 */
async function deriveFileKey(passphrase: Passphrase, salt: Uint8Array, kdf: ScryptParameters, maxmem: number): Promise<Uint8Array> {
  if (typeof passphrase !== 'string' && !(passphrase instanceof Uint8Array)) fail('INVALID_INPUT', 'a passphrase is a string or a byte array');
  if (passphrase.length === 0) fail('INVALID_INPUT', 'the passphrase is empty');
  // Ours to wipe only when we made it; a caller's byte array stays the caller's.
  const password = typeof passphrase === 'string' ? utf8ToBytes(passphrase.normalize('NFC')) : passphrase;
  try {
    return await scryptAsync(password, salt, { N: 2 ** kdf.log2N, r: kdf.r, p: kdf.p, dkLen: DERIVED_KEY_BYTES, maxmem });
  } finally {
    if (password !== passphrase) password.fill(0);
  }
}

/**
 * Encrypts `key`, with its validity `window`, under `passphrase` into a complete key file (header
 * ‖ ciphertext ‖ checksum). The salt and nonce come from the caller, who must draw them fresh from
 * a CSPRNG for every call: a repeated (key, nonce) pair would void XChaCha20-Poly1305's guarantees
 * (RFC 8439 §4). Throws `CryptoError` `INVALID_INPUT` for an empty passphrase, out-of-range inputs
 * or a window that is empty or opens before the key's creation, `KEY_DISPOSED` for a disposed key.
 */
export async function sealKey(key: SigningKey, window: ValidityWindow, passphrase: Passphrase, inputs: SealInputs): Promise<Uint8Array> {
  const kdf = inputs.kdf ?? DEFAULT_SCRYPT;
  if (!validScrypt(kdf)) fail('INVALID_INPUT', `scrypt parameters out of range (RFC 7914 §2): ${JSON.stringify(kdf)}`);
  const { salt, nonce } = inputs;
  if (salt.length < MIN_SALT_BYTES || salt.length > MAX_SALT_BYTES) fail('INVALID_INPUT', `a salt is ${MIN_SALT_BYTES} to ${MAX_SALT_BYTES} bytes`);
  if (nonce.length !== KEY_FILE_NONCE_BYTES) fail('INVALID_INPUT', `a nonce is ${KEY_FILE_NONCE_BYTES} bytes`);
  if (!windowFits(window, key.createdAt)) fail('INVALID_INPUT', `validity window [${window.notBefore}, ${window.notAfter}) is not whole milliseconds, empty, or starts before the key's creation at ${key.createdAt}`);
  // Checked before the KDF runs, so a disposed key fails fast.
  if (key.disposed) fail('KEY_DISPOSED', `${key.scheme.name} key ${key.keyId} has been disposed`);
  const header: KeyEnvelopeHeader = { kdf, salt, nonce, createdAt: key.createdAt, window: { notBefore: window.notBefore, notAfter: window.notAfter }, scheme: key.scheme.name, publicKey: key.publicKey, keyId: key.keyId };
  const associatedData = encodeHeader(header, key.scheme.secretKeyBytes + TAG_BYTES);
  // The writer chose the cost, so it pays exactly what it asked for; readers apply their own limit.
  const fileKey = await deriveFileKey(passphrase, salt, kdf, scryptMemory(kdf));
  try {
    // exposeSecretKey lends a scratch copy and zeroes it when the (synchronous) encryption returns.
    const ciphertext = key.exposeSecretKey((secret) => xchacha20poly1305(fileKey, nonce, associatedData).encrypt(secret));
    const body = concatBytes(associatedData, ciphertext);
    return concatBytes(body, sha256(body));
  } finally {
    fileKey.fill(0);
  }
}

/**
 * Schemes whose secret key is their keygen seed (ml-dsa.ts: the seed ξ; composite.ts: both seeds;
 * Ed25519: the RFC 8032 §5.1.5 private key), so keygen(secret) recomputes the public key exactly.
 * Falcon-512 and SLH-DSA store expanded keys, and are checked by signing instead.
 */
const SEED_FORM: ReadonlySet<SchemeName> = new Set<SchemeName>(['Ed25519', 'ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87', 'ML-DSA-65+Ed25519', 'ML-DSA-44+Ed25519']);
const PROBE = utf8ToBytes('knhk key file: secret matches public key');

/** Whether `secret` is the secret half of `publicKey`. */
function secretMatches(scheme: SignatureScheme, secret: Uint8Array, publicKey: Uint8Array): boolean {
  if (SEED_FORM.has(scheme.name)) {
    const pair = scheme.keygen(secret);
    // A backend may return the seed buffer itself as the secret key: that one is the caller's.
    if (pair.secretKey.buffer !== secret.buffer) pair.secretKey.fill(0);
    return equalBytes(pair.publicKey, publicKey);
  }
  return scheme.verify(scheme.importPublicKey(publicKey), PROBE, scheme.sign(scheme.importSecretKey(secret), PROBE));
}

/**
 * Decrypts a key file with `passphrase` into a {@link SigningKey} of the scheme `registry` runs.
 * Throws `CryptoError`: `KEYSTORE_CORRUPT` or `KEYSTORE_UNSUPPORTED` as {@link decodeKeyEnvelope}
 * does, and `KEYSTORE_CORRUPT` when a length disagrees with the scheme; `KEYSTORE_UNSUPPORTED` when
 * the file's scrypt cost exceeds `maxScryptCost`; `KEYSTORE_MISMATCH` when the stored key id is
 * not that of the public key and creation time, the decrypted secret does not produce the public
 * key, or the key was sealed with another validity window than `options.window`;
 * `KEYSTORE_WRONG_PASSPHRASE` when authenticated decryption fails on an intact file.
 *
 * Wiped: the encoded passphrase (when given as a string), the derived file key, and the decrypted
 * secret on every failure; on success the decrypted buffer becomes the key's own storage, wiped by
 * its `dispose()`. Not wipeable from here: the passphrase string itself (JavaScript strings are
 * immutable and interned at the engine's discretion), scrypt's HMAC/PBKDF2 states inside noble,
 * the cipher's key stream and Poly1305 state inside noble, and any copy V8's garbage collector
 * left behind when it moved a buffer (see `SigningKey`).
 */
export async function openKey(file: Uint8Array, passphrase: Passphrase, registry: SchemeRegistry, options: OpenOptions = {}): Promise<SigningKey> {
  const { header, associatedData, ciphertext } = decodeKeyEnvelope(file);
  const limit = options.maxScryptCost ?? DEFAULT_MAX_SCRYPT_COST;
  const cost = scryptCost(header.kdf);
  if (cost > limit) fail('KEYSTORE_UNSUPPORTED', `key file scrypt cost ${cost} exceeds this reader's limit of ${limit}`);
  const scheme = registry.get(header.scheme);
  if (header.publicKey.length !== scheme.publicKeyBytes || ciphertext.length !== scheme.secretKeyBytes + TAG_BYTES) {
    fail('KEYSTORE_CORRUPT', `key file lengths do not fit ${scheme.name}`);
  }
  if (keyId(scheme.importPublicKey(header.publicKey), header.createdAt) !== header.keyId) {
    fail('KEYSTORE_MISMATCH', `key file id ${header.keyId} is not the id of its public key and creation time`);
  }
  const fileKey = await deriveFileKey(passphrase, header.salt, header.kdf, scryptMemory(header.kdf));
  let secret: Uint8Array | undefined;
  try {
    secret = xchacha20poly1305(fileKey, header.nonce, associatedData).decrypt(ciphertext);
  } catch (cause) {
    fail('KEYSTORE_WRONG_PASSPHRASE', 'wrong passphrase for this key file (or the file was altered and its checksum recomputed)', cause);
  } finally {
    fileKey.fill(0);
  }
  try {
    let matches: boolean;
    try {
      matches = secretMatches(scheme, secret, header.publicKey);
    } catch (cause) {
      fail('KEYSTORE_MISMATCH', `key file secret is not a valid ${scheme.name} secret key`, cause);
    }
    if (!matches) fail('KEYSTORE_MISMATCH', `key file secret does not belong to the public key of ${header.keyId}`);
    const sealed = header.window;
    const expected = options.window;
    if (expected !== undefined && (expected.notBefore !== sealed.notBefore || expected.notAfter !== sealed.notAfter)) {
      fail('KEYSTORE_MISMATCH', `key ${header.keyId} was sealed with validity window [${sealed.notBefore}, ${sealed.notAfter}), not [${expected.notBefore}, ${expected.notAfter})`);
    }
    const key = SigningKey.adopt(scheme, { publicKey: scheme.importPublicKey(header.publicKey), secretKey: scheme.importSecretKey(secret) }, header.createdAt);
    secret = undefined; // custody passed to the key, which wipes it on dispose
    return key;
  } finally {
    secret?.fill(0);
  }
}
