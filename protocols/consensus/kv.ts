/**
 * The reference state machine: a string key-value map. Commands are msgpack `KvOperation`s.
 */
import { t, type Infer } from '../../schema/schema.js';
import { decode, decodeStored, encode, type Digest } from './codec.js';
import type { Command } from './command.js';
import { MerkleKvMap, type FrozenKvMap } from './merkle-kv-map.js';
import type { ConsensusState, StateView } from './state-machine.js';

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

const entriesSchema = t.array(t.array(t.string({ maxLength: 1 << 16 }), { maxLength: 2 }), { maxLength: Number.MAX_SAFE_INTEGER });
const changesSchema = t.array(t.object({ slot: t.uint(), entries: entriesSchema }), { maxLength: 1 << 16 });

/** The key-value machine frozen: a {@link FrozenKvMap}, whose changes are whole slots. */
class KvView implements StateView {
  readonly #map: FrozenKvMap;

  constructor(map: FrozenKvMap) {
    this.#map = map;
  }

  get hash(): Digest {
    return this.#map.root;
  }

  snapshot(): Uint8Array {
    return encode(this.#map.entries());
  }

  changesSince(older: StateView): Uint8Array | undefined {
    const changes = older instanceof KvView ? this.#map.changesSince(older.#map) : undefined;
    return changes === undefined ? undefined : encode(changes);
  }
}

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
    this.#map.restore(decodeStored(snapshot, entriesSchema, 'key-value snapshot'));
  }

  freeze(): StateView {
    return new KvView(this.#map.freeze());
  }

  applyChanges(changes: Uint8Array): void {
    this.#map.replaceSlots(decodeStored(changes, changesSchema, 'key-value changes'));
  }
}
