/**
 * Key custody (DESIGN.md "Cryptography": a replica's secret keys live with its signer only and
 * are wiped on dispose and on rotation). {@link SigningKey} is the owning `SecretKey`;
 * that name already belongs to the branded byte type of `keys.ts`, which this class wraps.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { CryptoError } from './errors.js';
import { encodeTimestamp, keyId, type KeyId } from './key-id.js';
import type { KeyCategory, KeyPair, PublicKey, SecretKey } from './keys.js';
import type { SignatureScheme } from './scheme.js';

function isThenable(value: unknown): boolean {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A secret key of `scheme` in the custody of one signer: it signs, and it never hands its secret
 * bytes out except through {@link SigningKey.exposeSecretKey}, which exists for the encrypted key
 * store and the one-time hand-off to a pool worker. The public half, the id and the creation time
 * stay readable after disposal, because signatures made earlier must still verify.
 *
 * What it guarantees: the bytes it owns (the buffer it generated, or the one it adopted) are
 * overwritten with zeros by `dispose()` or `[Symbol.dispose]()` (so by a `using` declaration at
 * scope exit, even on a throw), and every later `sign` or `exposeSecretKey` throws `CryptoError`
 * `KEY_DISPOSED`. Disposing twice is harmless.
 *
 * What JavaScript cannot guarantee, and this class does not claim:
 * - No other copy exists. V8 may keep a small typed array's contents on its own heap, where the
 *   garbage collector's compaction moves them and leaves the old bytes in freed memory that no
 *   program can reach to wipe.
 * - Intermediate values are wiped. Signing runs library code: noble holds Ed25519 scalars as
 *   bigints (immutable, never wipeable) and ML-DSA's expanded key in temporaries; node:crypto
 *   imports the key into a `KeyObject` once and keeps it while the key's buffer lives, and
 *   OpenSSL keeps its own copy until the garbage collector frees that object (after `dispose`
 *   drops the buffer), at a time JavaScript does not control.
 * - Copies made by others are wiped: a buffer the caller kept after `adopt`, whatever the consumer
 *   of `exposeSecretKey` copied, a structured clone posted to a worker.
 * - The bytes stay out of swap, core dumps, heap snapshots or an attached inspector while live.
 * - A forgotten key is wiped: there is no finalizer, since a finalizer may never run; dispose it,
 *   or hold it with `using`.
 * Zeroization shortens the time the key sits in memory the program controls; it does not prove
 * that no copy remains.
 *
 * `Symbol.dispose`: Node has defined it since v18.18 and v20.5 (its own stand-in before V8
 * shipped the proposal), so on every version knhk supports (checked on v20.20.2); @types/node
 * types it, since the compiler's lib (ES2023) does not. A `Symbol.for` fallback would not help:
 * the compiled `using` looks up the global `Symbol.dispose` and nothing else.
 */
export class SigningKey<C extends KeyCategory = KeyCategory> implements Disposable {
  /** The scheme this key signs with. */
  readonly scheme: SignatureScheme<C>;
  /** The verification key, a copy owned by this object. */
  readonly publicKey: PublicKey<C>;
  /** Creation time, milliseconds since the epoch, as hashed into {@link SigningKey.keyId}. */
  readonly createdAt: number;
  /** BLAKE3(public key ‖ u64be(createdAt)), see `key-id.ts`. */
  readonly keyId: KeyId;
  /** The secret bytes; `undefined` once wiped. */
  #secretKey: SecretKey<C> | undefined;

  private constructor(scheme: SignatureScheme<C>, pair: KeyPair<C>, createdAt: number) {
    this.scheme = scheme;
    // A copy of our own: on a Node Buffer `slice()` would be a view of the caller's memory.
    this.publicKey = new Uint8Array(pair.publicKey) as PublicKey<C>;
    this.createdAt = createdAt;
    this.keyId = keyId(this.publicKey, createdAt);
    this.#secretKey = pair.secretKey;
  }

  /**
   * A fresh key of `scheme` created at `createdAt` (milliseconds since the epoch; the caller reads
   * the clock). Its secret bytes exist only inside the new object: the random seed it was derived
   * from is wiped here. Throws `CryptoError` `INVALID_TIMESTAMP` for an invalid `createdAt`.
   */
  static generate<C extends KeyCategory>(scheme: SignatureScheme<C>, createdAt: number): SigningKey<C> {
    // Checked before any secret exists, so that no failure can leave one behind.
    encodeTimestamp(createdAt);
    // The seed is drawn here rather than by keygen so that it can be wiped: it is as secret as the key.
    const seed = randomBytes(scheme.seedBytes);
    let pair: KeyPair<C> | undefined;
    try {
      pair = scheme.keygen(seed);
      return new SigningKey(scheme, pair, createdAt);
    } finally {
      // A backend whose secret key is the seed buffer itself would lose the key to this wipe.
      if (pair?.secretKey.buffer !== seed.buffer) seed.fill(0);
    }
  }

  /**
   * Takes custody of `pair.secretKey` without copying it: the buffer becomes this key's storage
   * and is zeroed on dispose (only the view, if it is part of a larger buffer). For keys that
   * arrive as bytes, from the key store or in a pool worker. The caller must drop its own
   * reference; custody passes only if this returns. Throws `CryptoError` `INVALID_SECRET_KEY` for
   * a secret key of the wrong length, `INVALID_TIMESTAMP` for an invalid `createdAt`. The pair is
   * trusted to match: the key store's authenticated encryption is what vouches for it.
   */
  static adopt<C extends KeyCategory>(scheme: SignatureScheme<C>, pair: KeyPair<C>, createdAt: number): SigningKey<C> {
    if (!(pair.secretKey instanceof Uint8Array) || pair.secretKey.length !== scheme.secretKeyBytes) {
      throw new CryptoError('INVALID_SECRET_KEY', `${scheme.name}: a secret key is ${scheme.secretKeyBytes} bytes`);
    }
    return new SigningKey(scheme, pair, createdAt);
  }

  /** Whether the secret bytes have been wiped. */
  get disposed(): boolean {
    return this.#secretKey === undefined;
  }

  /** Signs `message` under `context`, as `scheme.sign` does (same errors), or throws `KEY_DISPOSED`. */
  sign(message: Uint8Array, context?: Uint8Array): Uint8Array {
    return this.scheme.sign(this.#live(), message, context);
  }

  /**
   * The only way the secret bytes leave this object, for the encrypted key store (sealing) and the
   * hand-off of a key to a pool worker. Lends `consumer` a scratch copy, which is zeroed as soon as
   * `consumer` returns or throws: a consumer must therefore be synchronous (a promise or other
   * thenable result throws `INVALID_INPUT`, as its later steps would see only zeros), must not keep
   * the reference, and owns, and must wipe, any copy it makes. Throws `KEY_DISPOSED` after disposal.
   */
  exposeSecretKey<T>(consumer: (secretKey: SecretKey<C>) => T): T {
    const scratch = new Uint8Array(this.#live()) as SecretKey<C>;
    try {
      const result = consumer(scratch);
      if (isThenable(result)) {
        throw new CryptoError('INVALID_INPUT', 'exposeSecretKey: the consumer must be synchronous; the bytes it was lent are now wiped');
      }
      return result;
    } finally {
      scratch.fill(0);
    }
  }

  /** Overwrites the secret bytes with zeros and retires the key. Idempotent. */
  dispose(): void {
    this.#secretKey?.fill(0);
    this.#secretKey = undefined;
  }

  /** Same as {@link SigningKey.dispose}, for `using` declarations. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): SecretKey<C> {
    if (this.#secretKey === undefined) {
      throw new CryptoError('KEY_DISPOSED', `${this.scheme.name} key ${this.keyId} has been disposed`);
    }
    return this.#secretKey;
  }
}
