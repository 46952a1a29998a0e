/**
 * The reference state machine: a string key-value map. Commands are msgpack `KvOperation`s.
 */
import { t, type Infer } from '../../schema/schema.js';
import { decode, decodeStored, encode, type Digest } from './codec.js';
import type { Command } from './command.js';
import { MerkleKvMap } from './merkle-kv-map.js';
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

/**
 * A deterministic string map. Its hash is the root of a Merkle tree over its entries
 * (merkle-kv-map.ts), computed when asked from the subtrees written since. A payload that is not a
 * valid operation is answered with an error response and leaves the state unchanged (every
 * replica rejects it the same way).
 */
export class KvStateMachine implements ConsensusState {
  readonly #map = new MerkleKvMap();

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
    if (op.type === 'put') this.#map.set(op.key, op.value);
    else if (op.type === 'delete') this.#map.delete(op.key);
    return encode(before === undefined ? { ok: true } : { ok: true, value: before });
  }

  hash(): Digest {
    return this.#map.root();
  }

  snapshot(): Uint8Array {
    return encode(this.#map.entries());
  }

  restore(snapshot: Uint8Array): void {
    this.#map.restore(decodeStored(snapshot, snapshotSchema, 'key-value snapshot'));
  }
}
