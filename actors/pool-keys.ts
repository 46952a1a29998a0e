/**
 * Signing keys for the pool. Key custody (DESIGN.md, Cryptography) says a secret key never
 * travels in per-operation messages: it is written once into a table of shared memory that the
 * system hands to its pool threads when the pool starts, and a signing job carries only a handle.
 * Releasing a handle (or disposing the table) zeroes the slot; a job holding a released handle
 * fails with `KEY_DISPOSED` instead of signing.
 *
 * Table layout, one slot after another: i32 generation | i32 secret length | SLOT_BYTES of secret.
 * A slot's generation changes on every register and release, so a stale handle never matches.
 */
import { CryptoError, type SchemeName, type SigningKey } from '../protocols/crypto/index.js';

/** Name under which the table is shared with the pool (`ActorSystemOptions.poolShared`). */
export const POOL_KEYS = 'knhk.signing-keys';

/** Room for the largest secret key of any scheme (Falcon-512: 1281 bytes). */
const SLOT_BYTES = 1536;
const HEADER_INTS = 2;
const SLOT_STRIDE = HEADER_INTS * 4 + SLOT_BYTES;

/** A registered key, as a signing job names it. */
export interface PoolKeyHandle {
  readonly slot: number;
  readonly generation: number;
  readonly scheme: SchemeName;
}

function header(buffer: SharedArrayBuffer, slot: number): Int32Array {
  return new Int32Array(buffer, slot * SLOT_STRIDE, HEADER_INTS);
}

function secretArea(buffer: SharedArrayBuffer, slot: number): Uint8Array {
  return new Uint8Array(buffer, slot * SLOT_STRIDE + HEADER_INTS * 4, SLOT_BYTES);
}

/** The main-thread side: registers keys into shared memory and releases them. */
export class PoolKeyTable {
  /** The shared memory; pass it as `poolShared: { [POOL_KEYS]: table.buffer }`. */
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;

  constructor(slots = 64) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new CryptoError('INVALID_INPUT', `a key table needs at least one slot, got ${slots}`);
    this.slots = slots;
    this.buffer = new SharedArrayBuffer(slots * SLOT_STRIDE);
  }

  /** Copies `key`'s secret into a free slot (the one time it leaves the key) and returns its handle. */
  register(key: SigningKey): PoolKeyHandle {
    for (let slot = 0; slot < this.slots; slot++) {
      const h = header(this.buffer, slot);
      if (Atomics.load(h, 1) !== 0) continue;
      const length = key.exposeSecretKey((secret) => {
        secretArea(this.buffer, slot).set(secret);
        return secret.length;
      });
      // Publish the length last: a reader that sees it sees the bytes.
      const generation = Atomics.add(h, 0, 1) + 1;
      Atomics.store(h, 1, length);
      return { slot, generation, scheme: key.scheme.name };
    }
    throw new CryptoError('INVALID_INPUT', `all ${this.slots} pool key slots are in use`);
  }

  /** Zeroes the slot of `handle`; later jobs with it fail with `KEY_DISPOSED`. Idempotent. */
  release(handle: PoolKeyHandle): void {
    const h = header(this.buffer, handle.slot);
    if (Atomics.load(h, 0) !== handle.generation) return;
    Atomics.add(h, 0, 1);
    Atomics.store(h, 1, 0);
    secretArea(this.buffer, handle.slot).fill(0);
  }

  /** Zeroes every slot. */
  dispose(): void {
    for (let slot = 0; slot < this.slots; slot++) {
      const h = header(this.buffer, slot);
      Atomics.add(h, 0, 1);
      Atomics.store(h, 1, 0);
    }
    new Uint8Array(this.buffer).fill(0);
  }
}

/**
 * The pool-thread side: lends the secret of `handle` to `use`, from a private copy that is wiped
 * when `use` returns. Throws `KEY_DISPOSED` if the handle was released (even while it was copied).
 */
export function withPoolKey<T>(buffer: SharedArrayBuffer | undefined, handle: PoolKeyHandle, use: (secret: Uint8Array) => T): T {
  if (!buffer || handle.slot < 0 || (handle.slot + 1) * SLOT_STRIDE > buffer.byteLength) {
    throw new CryptoError('KEY_DISPOSED', 'no pool key table, or a slot outside it');
  }
  const h = header(buffer, handle.slot);
  const length = Atomics.load(h, 1);
  if (Atomics.load(h, 0) !== handle.generation || length === 0) throw new CryptoError('KEY_DISPOSED', 'the pool key was released');
  const secret = secretArea(buffer, handle.slot).slice(0, length);
  try {
    // Released while we copied: the copy may be part zeros, so it is not used.
    if (Atomics.load(h, 0) !== handle.generation) throw new CryptoError('KEY_DISPOSED', 'the pool key was released');
    return use(secret);
  } finally {
    secret.fill(0);
  }
}
