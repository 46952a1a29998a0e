/**
 * The reference state machine: a string key-value map. Commands are msgpack `KvOperation`s.
 */
import { t, type Infer } from '../../schema/schema.js';
import { decode, decodeStored, encode, hashBytes, type Digest } from './codec.js';
import type { Command } from './command.js';
import { ConsensusError } from './errors.js';
import type { ConsensusState } from './state-machine.js';

/** Schema of the key-value machine's operations. */
export const kvOperationSchema = t.variants({
  put: { key: t.string({ maxLength: 1024 }), value: t.string({ maxLength: 1 << 16 }) },
  get: { key: t.string({ maxLength: 1024 }) },
  delete: { key: t.string({ maxLength: 1024 }) },
});

/** An operation on the key-value machine. */
export type KvOperation = Infer<typeof kvOperationSchema>;

/** The response to a {@link KvOperation}: the key's value before the operation, if any. */
export interface KvResponse {
  readonly ok: boolean;
  readonly value?: string;
  readonly error?: string;
}

/** Encodes an operation as a command payload. */
export function kvPayload(op: KvOperation): Uint8Array {
  return encode(op);
}

/** Decodes a response produced by {@link KvStateMachine}. */
export function kvResponse(bytes: Uint8Array): KvResponse {
  return decode(bytes) as KvResponse;
}

const snapshotSchema = t.array(t.array(t.string({ maxLength: 1 << 16 }), { maxLength: 2 }), { maxLength: Number.MAX_SAFE_INTEGER });

// The state hash is a two-level Merkle tree: each key falls in one of BUCKETS buckets, by an
// FNV-1a hash of the key; a bucket's digest is SHA-256 over its entries in key order, and the
// state's is SHA-256 over the bucket digests. A write re-hashes its own bucket only, so the hash
// every executed position records (receipts carry it; Raft executes one command per position)
// costs O(keys / BUCKETS) rather than a pass over the whole map. Collision resistance is
// SHA-256's at both levels; the bucket function only spreads keys, so it need not be a
// cryptographic hash (a SHA-256 per write cost more than the write). Keys chosen to share a
// bucket slow hashing back to one pass over them, never change its result.
const BUCKETS = 256;
const STATE_HASH_DOMAIN = new TextEncoder().encode('knhk/kv-state/v3');

/** The bucket of `key`: 32-bit FNV-1a over its UTF-16 code units, folded to a byte. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & (BUCKETS - 1);
}

const byKey = ([a]: readonly [string, string], [b]: readonly [string, string]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A deterministic string map. Its hash is a Merkle root over its entries (see above), computed
 * when asked from the buckets written since. A payload that is not a valid operation is answered
 * with an error response and leaves the state unchanged (every replica rejects it the same way).
 */
export class KvStateMachine implements ConsensusState {
  readonly #map = new Map<string, string>();
  /** The keys of each bucket. */
  readonly #buckets: Set<string>[] = Array.from({ length: BUCKETS }, () => new Set());
  /** Each bucket's digest, undefined once a write changed it. */
  readonly #digests: (Digest | undefined)[] = new Array<Digest | undefined>(BUCKETS).fill(undefined);
  #hash: Digest | undefined;

  /** Current value of `key` (for inspection; clients read through commands). */
  get(key: string): string | undefined {
    return this.#map.get(key);
  }

  /** Number of keys. */
  get size(): number {
    return this.#map.size;
  }

  apply(command: Command): Uint8Array {
    let op: KvOperation;
    try {
      op = kvOperationSchema.parse(decode(command.payload));
    } catch {
      return encode({ ok: false, error: 'malformed operation' });
    }
    const before = this.#map.get(op.key);
    if (op.type === 'put') this.#set(op.key, op.value);
    else if (op.type === 'delete' && before !== undefined) this.#delete(op.key);
    return encode(before === undefined ? { ok: true } : { ok: true, value: before });
  }

  hash(): Digest {
    if (this.#hash !== undefined) return this.#hash;
    const root = new Uint8Array(STATE_HASH_DOMAIN.length + BUCKETS * 32);
    root.set(STATE_HASH_DOMAIN);
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      let digest = this.#digests[bucket];
      if (digest === undefined) {
        const entries = [...(this.#buckets[bucket] as Set<string>)].map((key): [string, string] => [key, this.#map.get(key) as string]);
        digest = hashBytes(encode(entries.sort(byKey)));
        this.#digests[bucket] = digest;
      }
      root.set(digest, STATE_HASH_DOMAIN.length + bucket * 32);
    }
    this.#hash = hashBytes(root);
    return this.#hash;
  }

  snapshot(): Uint8Array {
    return encode([...this.#map].sort(byKey));
  }

  restore(snapshot: Uint8Array): void {
    const entries = decodeStored(snapshot, snapshotSchema, 'key-value snapshot');
    this.#map.clear();
    for (const bucket of this.#buckets) bucket.clear();
    this.#digests.fill(undefined);
    this.#hash = undefined;
    for (const entry of entries) {
      if (entry.length !== 2) throw new ConsensusError('CORRUPT_STATE', 'key-value snapshot entry is not a pair');
      this.#set(entry[0] as string, entry[1] as string);
    }
  }

  #set(key: string, value: string): void {
    this.#map.set(key, value);
    this.#touch(key).add(key);
  }

  #delete(key: string): void {
    this.#map.delete(key);
    this.#touch(key).delete(key);
  }

  /** The bucket of `key`, marked as changed. */
  #touch(key: string): Set<string> {
    const bucket = bucketOf(key);
    this.#digests[bucket] = undefined;
    this.#hash = undefined;
    return this.#buckets[bucket] as Set<string>;
  }
}
