/**
 * The verifier's view of every member's keys (DESIGN.md "Cryptography": every replica and every
 * receipt verifier knows which key was valid for which sequence range). Public keys only: old
 * keys stay here after rotation, so a signature still verifies for the epoch it was made in.
 *
 * A key is valid along two axes, both kept because they answer different questions:
 * - by time, over its window `[notBefore, notAfter)` from its descriptor; windows of successive
 *   keys overlap between a rotation's proposal and the old key's expiry, so by time the newest
 *   valid key is "the" key, and a named older one is still accepted inside its own window;
 * - by consensus sequence, over `[fromSequence, untilSequence)`: from the sequence at which its
 *   enrolment or rotation was committed until the one at which its successor's was. These ranges
 *   partition a member's history, so a sequence names exactly one key: the authoritative answer
 *   for receipts, which carry a sequence (issue 3: "lookup of the key valid at a given time or
 *   epoch").
 * Revocation cuts both: a key revoked at (time t, sequence s) is invalid at every time ≥ t and
 * every sequence ≥ s.
 */
import { CryptoError } from './errors.js';
import type { KeyId } from './key-id.js';
import type { PublicKey } from './keys.js';
import {
  DEFAULT_KEY_LIFETIME_MS,
  checkDescriptor,
  isUint,
  verifyRotationCertificate,
  type KeyDescriptor,
  type MemberId,
  type RotationCertificate,
  type SchemeResolver,
} from './key-rotation.js';
import { verifyUnderPolicy, type SignaturePolicy } from './policy.js';
import type { SignatureScheme } from './scheme.js';

/** A point agreed by the cluster: a time in milliseconds since the epoch and a consensus sequence. */
export interface KeyPoint {
  /** Milliseconds since the epoch. */
  readonly time: number;
  /** Consensus sequence number. */
  readonly sequence: number;
}

/** A question about validity: at a time (milliseconds since the epoch) or at a consensus sequence. */
export type KeyQuery = { readonly time: number } | { readonly sequence: number };

/** A signature together with the id of the key that made it. */
export interface SignedMessage {
  /** The signing key's id. */
  readonly keyId: KeyId;
  /** The signature. */
  readonly signature: Uint8Array;
}

/** One key of one member, as every verifier records it. */
export interface KeyRecord {
  /** The member it belongs to. */
  readonly member: MemberId;
  /** 0 for the enrolled key, one more per rotation. */
  readonly epoch: number;
  /** Its public facts, including the validity window. */
  readonly descriptor: KeyDescriptor;
  /** Its scheme, resolved. */
  readonly scheme: SignatureScheme;
  /** Its public key, branded by the scheme. */
  readonly publicKey: PublicKey;
  /** First consensus sequence at which it is valid. */
  readonly fromSequence: number;
  /** First sequence at which its successor is valid; `undefined` while it is the current key. */
  readonly untilSequence: number | undefined;
  /** Where it was revoked, if it was. */
  readonly revoked: KeyPoint | undefined;
}

function invalidInput(reason: string): never {
  throw new CryptoError('INVALID_INPUT', reason);
}

function checkQuery(at: KeyQuery): void {
  const value = 'sequence' in at ? at.sequence : at.time;
  if (!isUint(value)) invalidInput(`a time or sequence is a whole number in [0, 2^53 − 1], not ${value}`);
}

/** Why `record` is not valid at `at`, or `undefined` when it is. */
function invalidity(record: KeyRecord, at: KeyQuery): CryptoError | undefined {
  const name = `member ${record.member}'s key ${record.descriptor.keyId} (epoch ${record.epoch})`;
  const [value, start, end, revokedAt, axis] =
    'sequence' in at
      ? [at.sequence, record.fromSequence, record.untilSequence ?? Infinity, record.revoked?.sequence ?? Infinity, 'sequence']
      : [at.time, record.descriptor.notBefore, record.descriptor.notAfter, record.revoked?.time ?? Infinity, 'time'];
  if (value >= revokedAt) return new CryptoError('KEY_REVOKED', `${name} is revoked from ${axis} ${revokedAt}`);
  if (value < start) return new CryptoError('KEY_NOT_YET_VALID', `${name} is valid from ${axis} ${start}, not at ${value}`);
  if (value >= end) return new CryptoError('KEY_EXPIRED', `${name} is valid until ${axis} ${end}, not at ${value}`);
  return undefined;
}

/** Every member's keys, past and present, as verifiers know them. Pure state: no clock, no I/O. */
export class KeyDirectory {
  /** The cluster whose members' keys these are: rotation certificates for another are refused. */
  readonly cluster: string;
  readonly #schemes: SchemeResolver;
  readonly #maxLifetimeMs: number;
  /** Per member, its keys in epoch order: index = epoch. */
  readonly #keys = new Map<MemberId, KeyRecord[]>();

  /**
   * A directory of `options.cluster`'s members, resolving key schemes through `schemes` (the
   * process's {@link SchemeRegistry}). `maxLifetimeMs` (default {@link DEFAULT_KEY_LIFETIME_MS})
   * bounds the window a rotation may give a new key: without it, a member holding both secrets
   * could install a key valid for ever. Throws `INVALID_INPUT` for an empty cluster id.
   */
  constructor(schemes: SchemeResolver, options: { readonly cluster: string; readonly maxLifetimeMs?: number }) {
    if (typeof options.cluster !== 'string' || options.cluster.length === 0) invalidInput('a key directory belongs to a cluster: its id is a non-empty string');
    this.cluster = options.cluster;
    this.#schemes = schemes;
    this.#maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_KEY_LIFETIME_MS;
    if (!isUint(this.#maxLifetimeMs) || this.#maxLifetimeMs === 0) throw new CryptoError('INVALID_INPUT', `a key lifetime is a positive whole number of ms, got ${this.#maxLifetimeMs}`);
  }

  /** The members with at least one key. */
  members(): MemberId[] {
    return [...this.#keys.keys()];
  }

  /** Every key of `member`, oldest first (empty for an unknown member). */
  history(member: MemberId): readonly KeyRecord[] {
    return [...(this.#keys.get(member) ?? [])];
  }

  /** `member`'s newest key (whether or not it is valid now). Throws `NO_VALID_KEY` for an unknown member. */
  current(member: MemberId): KeyRecord {
    const keys = this.#keys.get(member);
    return keys?.[keys.length - 1] ?? this.#noKey(member, 'it has no key');
  }

  /**
   * Records `member`'s first key here, valid from consensus sequence `fromSequence`: the cluster's
   * initial configuration (epoch 0), a member joining, agreed by consensus, or the key a member
   * holds after earlier rotations (its `epoch`), for a directory started after them. Throws
   * `INVALID_INPUT` for a malformed descriptor or a member that already has keys (its keys change
   * only by rotation).
   */
  enroll(member: MemberId, descriptor: KeyDescriptor, fromSequence = 0, epoch = 0): KeyRecord {
    if (!isUint(member, 0xffff_ffff) || !isUint(fromSequence) || !isUint(epoch)) invalidInput('a member is a u32, and a sequence and an epoch whole numbers');
    if (this.#keys.has(member)) invalidInput(`member ${member} is already enrolled; its key changes by rotation`);
    const record = this.#record(member, epoch, descriptor, fromSequence, 'INVALID_INPUT');
    this.#keys.set(member, [record]);
    return record;
  }

  /**
   * Installs a committed rotation: `cert` must verify and replace its member's current key, and
   * `atSequence` (the sequence at which consensus committed it) must come after that key's first
   * sequence. The old key's range ends at `atSequence`, the new key's starts there. A revoked key
   * cannot vouch for a successor, and neither can an expired one: when `atTime` (the commit's
   * agreed time) is given, the old key must be inside its window then. Throws `ROTATION_INVALID`
   * otherwise; changes nothing on a throw.
   */
  applyRotation(cert: RotationCertificate, atSequence: number, atTime?: number): KeyRecord {
    const keys = this.#keys.get(cert.member) ?? this.#noKey(cert.member, 'it has no key to rotate');
    const current = this.current(cert.member);
    if (current.revoked !== undefined) throw new CryptoError('ROTATION_INVALID', `member ${cert.member}'s key ${current.descriptor.keyId} is revoked`);
    if (cert.cluster !== this.cluster) throw new CryptoError('ROTATION_INVALID', `the certificate rotates a key of cluster ${JSON.stringify(cert.cluster)}, not ${JSON.stringify(this.cluster)}`);
    verifyRotationCertificate(cert, this.#schemes, current);
    if (atTime !== undefined && !(isUint(atTime) && atTime >= cert.old.notBefore && atTime < cert.old.notAfter)) {
      throw new CryptoError('ROTATION_INVALID', `the old key ${cert.old.keyId} is not valid at the commit time ${atTime}`);
    }
    if (cert.next.notAfter - cert.next.notBefore > this.#maxLifetimeMs) {
      throw new CryptoError('ROTATION_INVALID', `the new key's window exceeds the cluster's key lifetime of ${this.#maxLifetimeMs} ms`);
    }
    // A key may enter the directory once: were an old key to come back (same id, same bytes), a
    // revocation of it would catch only its first record.
    for (const records of this.#keys.values()) {
      for (const record of records) {
        if (record.descriptor.keyId === cert.next.keyId || bytesEqual(record.descriptor.publicKey, cert.next.publicKey)) {
          throw new CryptoError('ROTATION_INVALID', `key ${cert.next.keyId} is already in the directory (member ${record.member})`);
        }
      }
    }
    if (!isUint(atSequence) || atSequence <= current.fromSequence) {
      throw new CryptoError('ROTATION_INVALID', `a rotation committed at sequence ${atSequence} cannot end a key valid from sequence ${current.fromSequence}`);
    }
    const record = this.#record(cert.member, cert.epoch, cert.next, atSequence, 'ROTATION_INVALID');
    keys[keys.length - 1] = { ...current, untilSequence: atSequence };
    keys.push(record);
    return record;
  }

  /**
   * Installs several committed rotations at one sequence, all or none: each as
   * {@link KeyDirectory.applyRotation} would, in order; when one is refused, the directory is left
   * as it was before the first and the refusal is thrown. A signature policy migration replaces
   * every member's key this way (policy-migration.ts).
   */
  applyRotations(certs: readonly RotationCertificate[], atSequence: number, atTime?: number): KeyRecord[] {
    const before = new Map([...this.#keys].map(([member, records]) => [member, records.slice()]));
    try {
      return certs.map((cert) => this.applyRotation(cert, atSequence, atTime));
    } catch (error) {
      for (const [member, records] of before) this.#keys.set(member, records);
      throw error;
    }
  }

  /**
   * Revokes `member`'s key `keyId` from `at` on (a revocation agreed by consensus: its time and
   * sequence). Revoking again keeps the earlier point on each axis, so revocations only ever
   * widen. Throws `UNKNOWN_KEY` for a key the directory does not know, `INVALID_INPUT` for a bad point.
   */
  revoke(member: MemberId, keyId: KeyId, at: KeyPoint): KeyRecord {
    if (!isUint(at.time) || !isUint(at.sequence)) invalidInput('a revocation point is a whole time and sequence');
    const keys = this.#keys.get(member) ?? [];
    const index = keys.findIndex((record) => record.descriptor.keyId === keyId);
    const record = keys[index] ?? this.#unknownKey(member, keyId);
    const revoked = { time: Math.min(at.time, record.revoked?.time ?? Infinity), sequence: Math.min(at.sequence, record.revoked?.sequence ?? Infinity) };
    keys[index] = { ...record, revoked };
    return keys[index];
  }

  /**
   * Checks that `member`'s key `keyId` is valid at `at` and returns it. Throws `UNKNOWN_KEY`,
   * `KEY_NOT_YET_VALID`, `KEY_EXPIRED` (past its window, or superseded by sequence) or `KEY_REVOKED`.
   */
  check(member: MemberId, keyId: KeyId, at: KeyQuery): KeyRecord {
    checkQuery(at);
    const record = this.#keys.get(member)?.find((r) => r.descriptor.keyId === keyId) ?? this.#unknownKey(member, keyId);
    const error = invalidity(record, at);
    if (error !== undefined) throw error;
    return record;
  }

  /**
   * `member`'s key valid at `at`: by sequence, the one key whose range holds it (`KEY_REVOKED` if
   * that key is revoked there); by time, the newest key valid then. Throws `NO_VALID_KEY` when
   * there is none.
   */
  keyAt(member: MemberId, at: KeyQuery): KeyRecord {
    checkQuery(at);
    const keys = this.#keys.get(member) ?? [];
    if ('sequence' in at) {
      const record = keys.find((r) => r.fromSequence <= at.sequence && at.sequence < (r.untilSequence ?? Infinity)) ?? this.#noKey(member, `none at sequence ${at.sequence}`);
      const error = invalidity(record, at);
      if (error !== undefined) throw error;
      return record;
    }
    return keys.findLast((r) => invalidity(r, at) === undefined) ?? this.#noKey(member, `none at time ${at.time}`);
  }

  /**
   * Verifies that `signed` is `member`'s signature on `message` (under `context`), made with a key
   * valid at `at`, under `policy`. The receipt verifier's question; every failure is a thrown
   * `CryptoError` (from {@link KeyDirectory.check}, then `verifyUnderPolicy`).
   */
  verify(policy: SignaturePolicy, member: MemberId, at: KeyQuery, signed: SignedMessage, message: Uint8Array, context?: Uint8Array): void {
    const record = this.check(member, signed.keyId, at);
    verifyUnderPolicy(policy, record.scheme, record.publicKey, message, signed.signature, context);
  }

  #record(member: MemberId, epoch: number, descriptor: KeyDescriptor, fromSequence: number, code: 'INVALID_INPUT' | 'ROTATION_INVALID'): KeyRecord {
    const scheme = checkDescriptor(descriptor, this.#schemes, code);
    // A private copy: the caller's buffer may change after it is recorded.
    const publicKey = scheme.importPublicKey(descriptor.publicKey.slice());
    return { member, epoch, descriptor: { ...descriptor, publicKey }, scheme, publicKey, fromSequence, untilSequence: undefined, revoked: undefined };
  }

  #noKey(member: MemberId, reason: string): never {
    throw new CryptoError('NO_VALID_KEY', `no valid key of member ${member}: ${reason}`);
  }

  #unknownKey(member: MemberId, keyId: KeyId): never {
    throw new CryptoError('UNKNOWN_KEY', `member ${member} has no key ${keyId}`);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
