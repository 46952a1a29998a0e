/**
 * One replica's signing keys over their lifetime (DESIGN.md "Cryptography": validity windows of
 * 90 days by default; rotation announced by a certificate signed by the old and the new key and
 * agreed through consensus; secret keys wiped on rotation), with the replica's
 * {@link KeyDirectory} of everyone's public keys.
 *
 * The cycle: {@link KeyManager.tick} is called with the current time; once the signing key is
 * within the lead time of its expiry it generates a successor and returns a rotation certificate
 * for the cluster layer to propose. Nothing changes for signing until consensus commits it and
 * the cluster layer calls {@link KeyManager.applyRotation} with the commit sequence, on every
 * replica alike; then this replica signs with the new key and wipes the old secret key at once.
 * There is no grace period for the secret: after the commit every verifier judges by sequence,
 * where the old key no longer counts, so the old secret can only do harm. Its public key stays in
 * the directory. Time is always an argument (milliseconds since the epoch): nothing here reads a
 * clock, and randomness enters only through key generation.
 */
import { CryptoError } from './errors.js';
import type { KeyId } from './key-id.js';
import { KeyDirectory, type KeyPoint, type KeyRecord, type SignedMessage } from './key-directory.js';
import { DEFAULT_KEY_LIFETIME_MS, describeKey, isUint, signRotation, verifyRotationCertificate, type MemberId, type RotationCertificate, type SchemeResolver, type ValidityWindow } from './key-rotation.js';
import type { SignatureScheme } from './scheme.js';
import { SigningKey } from './signing-key.js';

const DAY_MS = 24 * 60 * 60 * 1000;


/**
 * Default rotation lead time: 7 days before expiry, room for a certificate to be proposed,
 * committed and applied even through a view change or a partition of some days.
 */
export const DEFAULT_ROTATION_LEAD_MS = 7 * DAY_MS;

/** Makes a fresh signing key; {@link SigningKey.generate} unless a caller supplies its own. */
export type KeyGenerator = (scheme: SignatureScheme, createdAt: number) => SigningKey;

/** Options of {@link KeyManager}. */
export interface KeyManagerOptions {
  /** The cluster this replica belongs to: its rotation certificates name it. */
  readonly cluster: string;
  /** This replica. */
  readonly member: MemberId;
  /** Resolves schemes named by keys: the process's `SchemeRegistry`. */
  readonly schemes: SchemeResolver;
  /** The enrolled key (from the key store, or freshly generated); the manager takes custody of it. */
  readonly key: SigningKey;
  /** The consensus sequence from which the enrolled key is valid. Default 0. */
  readonly fromSequence?: number;
  /** The enrolled key's epoch: 0 for a member's first key, more for one installed by rotations before this manager was made. Default 0. */
  readonly epoch?: number;
  /**
   * The enrolled key's validity window as the cluster knows it (from its custody record, say).
   * Default [createdAt, createdAt + lifetime). A key's window is fixed when it is certified: a
   * manager made later with another lifetime must not describe it differently, or the rotation
   * certificates it signs would not match the key the replicas hold.
   */
  readonly window?: ValidityWindow;
  /** Lifetime of every key, from its creation. Default {@link DEFAULT_KEY_LIFETIME_MS}. */
  readonly lifetimeMs?: number;
  /** Rotate when less than this remains of the key's window. Default {@link DEFAULT_ROTATION_LEAD_MS}. */
  readonly rotationLeadMs?: number;
  /** Makes successor keys. Default {@link SigningKey.generate}. */
  readonly generate?: KeyGenerator;
}

/** A proposed rotation and the successor key it would install. */
interface Pending {
  readonly certificate: RotationCertificate;
  readonly key: SigningKey;
}

/** The signing keys of one replica and its view of every member's public keys. */
export class KeyManager implements Disposable {
  /** This replica. */
  readonly member: MemberId;
  /** Every member's public keys, this replica's included; other members are enrolled here. */
  readonly directory: KeyDirectory;
  /** Lifetime of each new key, in milliseconds. */
  readonly lifetimeMs: number;
  /** How long before expiry {@link KeyManager.tick} proposes a rotation, in milliseconds. */
  readonly rotationLeadMs: number;
  readonly #schemes: SchemeResolver;
  readonly #generate: KeyGenerator;
  /** The secret key of the member's current directory record; `undefined` once revoked or lost. */
  #signer: SigningKey | undefined;
  #pending: Pending | undefined;

  /**
   * Takes custody of `options.key` and enrols it with window [createdAt, createdAt + lifetime).
   * Throws `INVALID_INPUT` for a lifetime or lead time that is not a positive whole number of
   * milliseconds with lead < lifetime (a lead as long as the lifetime would rotate at birth).
   */
  constructor(options: KeyManagerOptions) {
    const lifetimeMs = options.lifetimeMs ?? DEFAULT_KEY_LIFETIME_MS;
    const rotationLeadMs = options.rotationLeadMs ?? DEFAULT_ROTATION_LEAD_MS;
    if (!isUint(lifetimeMs) || !isUint(rotationLeadMs) || rotationLeadMs === 0 || rotationLeadMs >= lifetimeMs) {
      throw new CryptoError('INVALID_INPUT', `need 0 < rotation lead (${rotationLeadMs}) < lifetime (${lifetimeMs}), whole milliseconds`);
    }
    this.member = options.member;
    this.lifetimeMs = lifetimeMs;
    this.rotationLeadMs = rotationLeadMs;
    this.#schemes = options.schemes;
    this.#generate = options.generate ?? SigningKey.generate;
    this.directory = new KeyDirectory(options.schemes, { cluster: options.cluster, maxLifetimeMs: lifetimeMs });
    this.directory.enroll(options.member, describeKey(options.key, options.window ?? this.#window(options.key.createdAt)), options.fromSequence, options.epoch);
    this.#signer = options.key;
  }

  /** The id of the key this replica signs with. Throws like {@link KeyManager.sign} when there is none. */
  get keyId(): KeyId {
    return this.#current().record.descriptor.keyId;
  }

  /** The rotation proposed and not yet applied, if any. */
  get pending(): RotationCertificate | undefined {
    return this.#pending?.certificate;
  }

  /**
   * Maintenance, called with the current time: returns the pending rotation certificate (the same
   * one until it is applied, so the cluster layer may propose it again after a lost proposal),
   * proposes one when less than the lead time remains of the current key's window, and returns
   * `undefined` while none is due. Throws `KEY_EXPIRED` when the key expired before any rotation
   * was proposed (the replica must be enrolled anew), `KEY_REVOKED` / `NO_VALID_KEY` when it has
   * no usable key.
   */
  tick(now: number): RotationCertificate | undefined {
    if (!this.due(now)) return undefined;
    return this.#pending?.certificate ?? this.propose(now);
  }

  /**
   * Whether a rotation is due at `now` ({@link KeyManager.tick} would return a certificate): one is
   * pending, or less than the lead time remains of the current key's window. Throws as `tick`
   * when there is no usable key.
   */
  due(now: number): boolean {
    return this.#pending !== undefined || now >= this.#current().record.descriptor.notAfter - this.rotationLeadMs;
  }

  /**
   * Proposes a rotation now, to a new key of `scheme` (default: the current key's scheme; another
   * scheme for a policy migration, DESIGN.md "Cryptography"), valid from `now` for the lifetime.
   * The current key must be valid at `now`: it signs the certificate, and the new window must start
   * before the old one ends. Throws `INVALID_INPUT` while another rotation is pending (it may
   * already be under consensus), otherwise as {@link KeyManager.sign}.
   */
  propose(now: number, scheme?: SignatureScheme): RotationCertificate {
    if (this.#pending !== undefined) throw new CryptoError('INVALID_INPUT', `rotation to ${this.#pending.certificate.next.keyId} is already pending`);
    const { record, signer } = this.#current();
    this.directory.check(this.member, record.descriptor.keyId, { time: now });
    const next = this.#generate(scheme ?? signer.scheme, now);
    try {
      const subject = { cluster: this.directory.cluster, member: this.member, epoch: record.epoch + 1 };
      const certificate = signRotation(this.#schemes, subject, { key: signer, window: record.descriptor }, { key: next, window: this.#window(now) });
      this.#pending = { certificate, key: next };
      return certificate;
    } catch (error) {
      next.dispose();
      throw error;
    }
  }

  /**
   * Takes back a rotation this replica proposed before a restart: `certificate`, which must be a
   * valid rotation of the key in force at the next epoch, to `key` exactly as certified. From then
   * on it is the pending rotation, as if {@link propose} had just made it, so the same certificate
   * is proposed again and its adoption signs with `key`. Takes custody of `key` only when it
   * returns; throws `INVALID_INPUT` while another rotation is pending, `ROTATION_INVALID` for a
   * certificate of another cluster, key, member or epoch, or one whose new key is not `key`.
   */
  resume(certificate: RotationCertificate, key: SigningKey): void {
    if (this.#pending !== undefined) throw new CryptoError('INVALID_INPUT', `rotation to ${this.#pending.certificate.next.keyId} is already pending`);
    const { record } = this.#current();
    if (certificate.cluster !== this.directory.cluster) throw new CryptoError('ROTATION_INVALID', `the certificate is of cluster ${certificate.cluster}, not ${this.directory.cluster}`);
    verifyRotationCertificate(certificate, this.#schemes, { member: this.member, epoch: record.epoch, descriptor: record.descriptor });
    // A key id digests the public key and its creation time; the scheme is the one thing it leaves out.
    if (key.keyId !== certificate.next.keyId || key.scheme.name !== certificate.next.scheme) {
      throw new CryptoError('ROTATION_INVALID', `the certificate installs key ${certificate.next.keyId}, not ${key.keyId}`);
    }
    this.#pending = { certificate, key };
  }

  /** Drops the pending rotation, wiping its key: its proposal failed before it could be agreed (its key could not be stored, say). */
  withdraw(): void {
    this.#pending?.key.dispose();
    this.#pending = undefined;
  }

  /**
   * Installs a committed rotation of any member (see {@link KeyDirectory.applyRotation}, which
   * also explains `atTime`; same errors, nothing changes on a throw). For this replica's own rotation it switches signing to
   * the new key and wipes the old secret key; a committed rotation to a key it does not hold (one
   * another process proposed) leaves it with no signing key, and it wipes the pending one.
   */
  applyRotation(cert: RotationCertificate, atSequence: number, atTime?: number): KeyRecord {
    const record = this.directory.applyRotation(cert, atSequence, atTime);
    if (cert.member === this.member) {
      this.#signer?.dispose();
      const pending = this.#pending;
      this.#pending = undefined;
      if (pending?.certificate.next.keyId === cert.next.keyId) this.#signer = pending.key;
      else {
        pending?.key.dispose();
        this.#signer = undefined;
      }
    }
    return record;
  }

  /**
   * Records a revocation of `member`'s key `keyId` from `at` on (see {@link KeyDirectory.revoke}).
   * When it is this replica's current key, its secret is wiped at once, whatever `at` says: a key
   * is revoked because it must not sign again. A pending rotation from it is dropped and wiped as
   * well, since a revoked key cannot vouch for a successor.
   */
  revoke(member: MemberId, keyId: KeyId, at: KeyPoint): KeyRecord {
    const record = this.directory.revoke(member, keyId, at);
    if (member === this.member && this.directory.current(member).descriptor.keyId === keyId) {
      this.#signer?.dispose();
      this.#signer = undefined;
      this.#pending?.key.dispose();
      this.#pending = undefined;
    }
    return record;
  }

  /**
   * Signs `message` (under `context`) at time `now` with the current key. Throws `CryptoError`
   * `KEY_REVOKED` once the key is revoked, `KEY_NOT_YET_VALID` / `KEY_EXPIRED` outside its window,
   * `NO_VALID_KEY` when no key is held, and the scheme's own errors.
   */
  sign(now: number, message: Uint8Array, context?: Uint8Array): SignedMessage {
    const { record, signer } = this.#current();
    this.directory.check(this.member, record.descriptor.keyId, { time: now });
    return { keyId: record.descriptor.keyId, signature: signer.sign(message, context) };
  }

  /** Wipes every secret key held (current and pending). The directory stays readable. Idempotent. */
  dispose(): void {
    this.#signer?.dispose();
    this.#signer = undefined;
    this.#pending?.key.dispose();
    this.#pending = undefined;
  }

  /** Same as {@link KeyManager.dispose}, for `using` declarations. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #window(createdAt: number): ValidityWindow {
    return { notBefore: createdAt, notAfter: createdAt + this.lifetimeMs };
  }

  /** The directory record of the key held for signing, and its secret; throws when there is none or it is revoked. */
  #current(): { readonly record: KeyRecord; readonly signer: SigningKey } {
    const record = this.directory.current(this.member);
    if (record.revoked !== undefined) throw new CryptoError('KEY_REVOKED', `key ${record.descriptor.keyId} of member ${this.member} is revoked`);
    const signer = this.#signer ?? this.#noSigner(record);
    return { record, signer };
  }

  #noSigner(record: KeyRecord): never {
    throw new CryptoError('NO_VALID_KEY', `member ${this.member} holds no secret key for ${record.descriptor.keyId}`);
  }
}

export { DEFAULT_KEY_LIFETIME_MS };
