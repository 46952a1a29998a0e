/**
 * Rotation certificates (DESIGN.md "Cryptography": keys have validity windows; rotation is
 * announced with a certificate signed by the old and the new key and agreed through consensus).
 *
 * The statement both keys sign, fixed so that any implementation reproduces it byte for byte
 * (integers unsigned big-endian; `‖` is concatenation):
 *
 *     statement = "knhk/key-rotation/v2"          20 ASCII bytes, domain separation
 *               ‖ u8(len(cluster)) ‖ cluster      the cluster's id in UTF-8, 1 to 255 bytes
 *               ‖ u32(member)                     the replica whose key rotates
 *               ‖ u64(epoch)                      the new key's epoch; the old key's is epoch − 1
 *               ‖ key(old) ‖ key(new)
 *     key(k)    = u8(len(scheme)) ‖ scheme        scheme name in ASCII, e.g. "ML-DSA-44+Ed25519"
 *               ‖ u32(len(publicKey)) ‖ publicKey raw public-key encoding, as keygen returns it
 *               ‖ keyId                           32 bytes: BLAKE3(publicKey ‖ u64(createdAt)), see key-id.ts
 *               ‖ u64(createdAt) ‖ u64(notBefore) ‖ u64(notAfter)   milliseconds since the epoch
 *
 *     oldSignature = old scheme's sign(old secret key, statement), empty context
 *     newSignature = new scheme's sign(new secret key, statement), empty context
 *     certificate  = statement ‖ u32(len(oldSignature)) ‖ oldSignature ‖ u32(len(newSignature)) ‖ newSignature
 *
 * Every variable-length field has a length prefix, so the encoding parses one way only and
 * {@link decodeRotationCertificate} accepts nothing but what {@link encodeRotationCertificate}
 * produces. The context is empty because Ed25519 has none; the prefix does the domain separation,
 * so a rotation statement cannot be mistaken for any other message a replica signs. The cluster id
 * binds a certificate to one cluster: an operator who gives a replica the same key in two clusters
 * cannot have a rotation agreed in one replayed into the other (v1 statements named no cluster).
 * The old key's signature authorises its successor; the new key's proves that the proposer holds
 * the new secret key, so no replica can announce a public key that is not its own.
 */
import { equalBytes } from '@noble/curves/utils.js';
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { CryptoError, type CryptoErrorCode } from './errors.js';
import { keyId, type KeyId } from './key-id.js';
import { SCHEME_NAMES, type SchemeRegistry } from './registry.js';
import type { SchemeName, SignatureScheme } from './scheme.js';
import type { SigningKey } from './signing-key.js';

/** A replica's index in the cluster, in [0, 2^32 − 1]: whose key a record or certificate is about. */
export type MemberId = number;

/** Where schemes come from when a key names one: a {@link SchemeRegistry}. */
export type SchemeResolver = Pick<SchemeRegistry, 'get'>;

/** A validity window `[notBefore, notAfter)`, in milliseconds since the epoch. */
export interface ValidityWindow {
  /** First millisecond at which the key is valid. */
  readonly notBefore: number;
  /** First millisecond at which the key is no longer valid. */
  readonly notAfter: number;
}

/** The public facts of one key, as a certificate or an enrolment carries them. */
export interface KeyDescriptor extends ValidityWindow {
  /** The scheme the key signs with. */
  readonly scheme: SchemeName;
  /** The raw public key. */
  readonly publicKey: Uint8Array;
  /** BLAKE3(publicKey ‖ u64(createdAt)), checked against the two fields it is made of. */
  readonly keyId: KeyId;
  /** Creation time, milliseconds since the epoch. */
  readonly createdAt: number;
}

/** A key rotation of `member` of `cluster` from `old` to `next`, signed by both keys over the statement above. */
export interface RotationCertificate {
  /** The cluster the member belongs to: a certificate counts in that cluster only. */
  readonly cluster: string;
  /** The replica whose key rotates. */
  readonly member: MemberId;
  /** The new key's epoch (the old key's plus one; the enrolled key has epoch 0). */
  readonly epoch: number;
  /** The key being replaced. */
  readonly old: KeyDescriptor;
  /** The key replacing it. */
  readonly next: KeyDescriptor;
  /** The old key's signature on the statement. */
  readonly oldSignature: Uint8Array;
  /** The new key's signature on the statement. */
  readonly newSignature: Uint8Array;
}

/** A key's default lifetime: 90 days (DESIGN.md "Cryptography"). */
export const DEFAULT_KEY_LIFETIME_MS = 90 * 24 * 60 * 60 * 1000;

/** The key a certificate must replace, as the verifier knows it: for {@link verifyRotationCertificate}. */
export interface RotationPredecessor {
  /** The member whose current key it is. */
  readonly member: MemberId;
  /** Its epoch. */
  readonly epoch: number;
  /** Its public facts. */
  readonly descriptor: KeyDescriptor;
}

const DOMAIN = utf8ToBytes('knhk/key-rotation/v2');
const KEY_ID_BYTES = 32;
const MAX_U32 = 0xffff_ffff;

function fail(code: CryptoErrorCode, reason: string): never {
  throw new CryptoError(code, reason);
}

/** Whether `value` is an integer in [0, max]; `max` at most 2^53 − 1, so a number holds it exactly. */
export function isUint(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= max;
}

/** `value` as a `bytes`-wide big-endian integer; a RangeError, never a silent wrap, when it does not fit. */
function uint(value: number, bytes: 1 | 4 | 8): Uint8Array {
  if (!isUint(value, bytes === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * bytes) - 1)) throw new RangeError(`${value} does not fit in ${bytes} bytes`);
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  if (bytes === 1) view.setUint8(0, value);
  else if (bytes === 4) view.setUint32(0, value, false);
  else view.setBigUint64(0, BigInt(value), false);
  return out;
}

function encodeKey(key: KeyDescriptor): Uint8Array {
  const name = utf8ToBytes(key.scheme);
  return concatBytes(
    uint(name.length, 1),
    name,
    uint(key.publicKey.length, 4),
    key.publicKey,
    hexToBytes(key.keyId),
    uint(key.createdAt, 8),
    uint(key.notBefore, 8),
    uint(key.notAfter, 8),
  );
}

/**
 * Whether `window` is whole milliseconds in [0, 2^53 − 1] with createdAt ≤ notBefore < notAfter:
 * a key is not valid before it exists, and an empty window is no key.
 */
export function windowFits(window: ValidityWindow, createdAt: number): boolean {
  return [createdAt, window.notBefore, window.notAfter].every((time) => isUint(time)) && createdAt <= window.notBefore && window.notBefore < window.notAfter;
}

/**
 * Checks the public facts of one key and resolves its scheme: a known scheme, a public key of the
 * scheme's length, a window that fits ({@link windowFits}), and an id that matches. Throws
 * `CryptoError` with `code` (the caller's: a certificate's fault or an enrolment's) otherwise.
 */
export function checkDescriptor(key: KeyDescriptor, schemes: SchemeResolver, code: CryptoErrorCode): SignatureScheme {
  if (!SCHEME_NAMES.includes(key.scheme)) fail(code, `unknown signature scheme ${String(key.scheme)}`);
  const scheme = schemes.get(key.scheme);
  if (!(key.publicKey instanceof Uint8Array) || key.publicKey.length !== scheme.publicKeyBytes) {
    fail(code, `${key.scheme}: a public key is ${scheme.publicKeyBytes} bytes`);
  }
  if (!windowFits(key, key.createdAt)) {
    fail(code, `key window [${key.notBefore}, ${key.notAfter}) must be whole milliseconds in [0, 2^53 − 1], non-empty and not start before creation at ${key.createdAt}`);
  }
  if (key.keyId !== keyId(scheme.importPublicKey(key.publicKey), key.createdAt)) fail(code, `key id ${key.keyId} does not match the key`);
  return scheme;
}

/** The public facts of `key` valid over `window`. */
export function describeKey(key: SigningKey, window: ValidityWindow): KeyDescriptor {
  return { scheme: key.scheme.name, publicKey: key.publicKey.slice(), keyId: key.keyId, createdAt: key.createdAt, notBefore: window.notBefore, notAfter: window.notAfter };
}

/**
 * The statement a rotation certificate's two keys sign (the encoding in this module's header).
 * Throws `ROTATION_INVALID` when a field cannot be encoded (a cluster id that is not 1 to 255
 * bytes of UTF-8, member beyond u32, epoch not a safe integer, scheme name or public key not bytes).
 */
export function encodeRotationStatement(cert: Pick<RotationCertificate, 'cluster' | 'member' | 'epoch' | 'old' | 'next'>): Uint8Array {
  const cluster = typeof cert.cluster === 'string' ? utf8ToBytes(cert.cluster) : new Uint8Array(0);
  if (cluster.length === 0 || cluster.length > 255) fail('ROTATION_INVALID', 'the cluster id is 1 to 255 bytes of UTF-8');
  if (!isUint(cert.member, MAX_U32) || !isUint(cert.epoch)) fail('ROTATION_INVALID', 'member is a u32 and epoch a whole number in [0, 2^53 − 1]');
  try {
    return concatBytes(DOMAIN, uint(cluster.length, 1), cluster, uint(cert.member, 4), uint(cert.epoch, 8), encodeKey(cert.old), encodeKey(cert.next));
  } catch (cause) {
    throw new CryptoError('ROTATION_INVALID', 'rotation statement fields cannot be encoded', { cause });
  }
}

/** The certificate's wire encoding: statement ‖ u32 ‖ old signature ‖ u32 ‖ new signature. */
export function encodeRotationCertificate(cert: RotationCertificate): Uint8Array {
  return concatBytes(encodeRotationStatement(cert), uint(cert.oldSignature.length, 4), cert.oldSignature, uint(cert.newSignature.length, 4), cert.newSignature);
}

/** A cursor over received bytes that fails with `ROTATION_INVALID` on a short read. */
class Reader {
  readonly #bytes: Uint8Array;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  take(length: number): Uint8Array {
    if (length > this.#bytes.length - this.#offset) fail('ROTATION_INVALID', 'rotation certificate is truncated');
    // A copy, whatever the input is: Buffer#slice (msgpack and Node's I/O hand out Buffers) would return a view into a shared pool.
    const out = new Uint8Array(this.#bytes.subarray(this.#offset, this.#offset + length));
    this.#offset += length;
    return out;
  }

  uint(bytes: 1 | 4 | 8): number {
    const view = new DataView(this.take(bytes).buffer);
    if (bytes === 1) return view.getUint8(0);
    if (bytes === 4) return view.getUint32(0, false);
    const value = view.getBigUint64(0, false);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail('ROTATION_INVALID', 'rotation certificate integer exceeds 2^53 − 1');
    return Number(value);
  }

  get done(): boolean {
    return this.#offset === this.#bytes.length;
  }
}

/** Strict UTF-8: a cluster id that is not is a malformed certificate, not a string with replacement characters. */
function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return fail('ROTATION_INVALID', 'the cluster id is not UTF-8');
  }
}

function readKey(reader: Reader): KeyDescriptor {
  const name = new TextDecoder().decode(reader.take(reader.uint(1)));
  const scheme = SCHEME_NAMES.find((known) => known === name) ?? fail('ROTATION_INVALID', `unknown signature scheme ${JSON.stringify(name)}`);
  const publicKey = reader.take(reader.uint(4));
  const id = bytesToHex(reader.take(KEY_ID_BYTES)) as KeyId;
  return { scheme, publicKey, keyId: id, createdAt: reader.uint(8), notBefore: reader.uint(8), notAfter: reader.uint(8) };
}

/**
 * Parses a certificate from its wire encoding. Checks the layout only (prefix, lengths, known
 * scheme names, no trailing bytes): whether it is valid is {@link verifyRotationCertificate}'s to
 * decide. Throws `ROTATION_INVALID` on any malformation.
 */
export function decodeRotationCertificate(bytes: Uint8Array): RotationCertificate {
  const reader = new Reader(bytes);
  if (!equalBytes(reader.take(DOMAIN.length), DOMAIN)) fail('ROTATION_INVALID', 'not a knhk key rotation certificate (v2)');
  const cluster = utf8(reader.take(reader.uint(1)));
  const member = reader.uint(4);
  const epoch = reader.uint(8);
  const old = readKey(reader);
  const next = readKey(reader);
  const oldSignature = reader.take(reader.uint(4));
  const newSignature = reader.take(reader.uint(4));
  if (!reader.done) fail('ROTATION_INVALID', 'trailing bytes after the rotation certificate');
  return { cluster, member, epoch, old, next, oldSignature, newSignature };
}

/** Whose key a rotation replaces, and which epoch it installs. */
export interface RotationSubject {
  readonly cluster: string;
  readonly member: MemberId;
  readonly epoch: number;
}

/**
 * Makes the certificate rotating `subject.member`'s key `old` (valid over `old.window`) to `next`
 * (valid over `next.window`) at `subject.epoch`, in `subject.cluster`, signed by both. Throws
 * `ROTATION_INVALID` when the result would not pass {@link verifyRotationCertificate}, so a
 * manager never proposes what others reject; `KEY_DISPOSED` when either key has been wiped.
 */
export function signRotation(
  schemes: SchemeResolver,
  subject: RotationSubject,
  old: { readonly key: SigningKey; readonly window: ValidityWindow },
  next: { readonly key: SigningKey; readonly window: ValidityWindow },
): RotationCertificate {
  const body = { cluster: subject.cluster, member: subject.member, epoch: subject.epoch, old: describeKey(old.key, old.window), next: describeKey(next.key, next.window) };
  const statement = encodeRotationStatement(body);
  const cert = { ...body, oldSignature: old.key.sign(statement), newSignature: next.key.sign(statement) };
  verifyRotationCertificate(cert, schemes);
  return cert;
}

/**
 * Verifies `cert`: both keys well formed (see {@link checkDescriptor}), two distinct keys, the new
 * window starting no earlier than the old one and no later than its end (so there is no instant
 * without a valid key, DESIGN.md "Cryptography") and ending after it (a rotation extends the
 * member's validity, it never shortens it), epoch ≥ 1, and both signatures valid on the statement.
 * When `predecessor` is given (the member's current key, from the verifier's directory), the
 * certificate must replace exactly that key at the next epoch. Throws `CryptoError`
 * `ROTATION_INVALID` with the reason on any failure.
 */
export function verifyRotationCertificate(cert: RotationCertificate, schemes: SchemeResolver, predecessor?: RotationPredecessor): void {
  const statement = encodeRotationStatement(cert);
  if (cert.epoch < 1) fail('ROTATION_INVALID', 'a rotation certificate installs an epoch ≥ 1');
  const oldScheme = checkDescriptor(cert.old, schemes, 'ROTATION_INVALID');
  const newScheme = checkDescriptor(cert.next, schemes, 'ROTATION_INVALID');
  const { old, next } = cert;
  if (old.keyId === next.keyId || equalBytes(old.publicKey, next.publicKey)) fail('ROTATION_INVALID', 'a rotation must install a different key');
  if (next.createdAt < old.createdAt) fail('ROTATION_INVALID', 'the new key is older than the key it replaces');
  if (next.notBefore < old.notBefore || next.notBefore > old.notAfter) {
    fail('ROTATION_INVALID', `the new window must start within [${old.notBefore}, ${old.notAfter}], not at ${next.notBefore}`);
  }
  if (next.notAfter <= old.notAfter) fail('ROTATION_INVALID', 'the new window must end after the old one');
  if (predecessor !== undefined) {
    if (cert.member !== predecessor.member || cert.epoch !== predecessor.epoch + 1 || !equalBytes(encodeKey(old), encodeKey(predecessor.descriptor))) {
      fail('ROTATION_INVALID', `the certificate does not replace member ${predecessor.member}'s key ${predecessor.descriptor.keyId} at epoch ${predecessor.epoch + 1}`);
    }
  }
  if (!(cert.oldSignature instanceof Uint8Array) || !oldScheme.verify(oldScheme.importPublicKey(old.publicKey), statement, cert.oldSignature)) {
    fail('ROTATION_INVALID', `the old key ${old.keyId} did not sign this rotation`);
  }
  if (!(cert.newSignature instanceof Uint8Array) || !newScheme.verify(newScheme.importPublicKey(next.publicKey), statement, cert.newSignature)) {
    fail('ROTATION_INVALID', `the new key ${next.keyId} did not sign this rotation`);
  }
}
