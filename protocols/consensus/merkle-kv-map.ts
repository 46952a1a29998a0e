/**
 * The key-value machine's map and its state hash: entries spread over 2^16 slots, under a Merkle
 * tree whose shape adapts to the number of keys, so that the hash every executed position records
 * (receipts carry it) costs O(w · (log n + n / 2^16)) after w writes to n keys, not O(n).
 *
 * Definition, for an independent implementation: a key's slot is the 32-bit FNV-1a hash of its
 * UTF-16 code units (each unit XORed in whole, then multiplied by the FNV prime), folded as
 * h ^ (h >>> 16) and masked to 16 bits. The tree is the binary trie over the 16 bits of slots,
 * most significant first, cut short: a subtree holding at most {@link LEAF_KEYS} keys, or a
 * single slot, is a leaf, whose digest is SHA-256 of the msgpack encoding (smallest forms, no
 * extensions) of its [key, value] pairs ordered by key, comparing UTF-16 code units; any other
 * node's is SHA-256(0x01 ‖ left digest ‖ right digest). The state hash is
 * SHA-256("knhk/kv-state/v4" ‖ root digest). A leaf's input opens with a msgpack array header
 * (0x90–0x9f, 0xdc, 0xdd) and a node's with 0x01, so neither can pass for the other (RFC 9162
 * §2.1.1 separates them the same way). Keys and values must be well-formed Unicode: msgpack
 * writes a lone surrogate as U+FFFD, so two different maps would encode alike.
 *
 * The shape depends only on how many keys each subtree holds, so the hash is a function of the
 * state alone, the same at every replica whatever the history of writes, deletes and restores
 * that led to it; a tree of fixed size would have to choose between re-hashing most keys of a
 * small state and most nodes of a large one. With 256 fixed buckets, a batch of 512 writes cost
 * 760 ms at a million keys on the development VM. The slot function only spreads keys, so it need
 * not be cryptographic: keys chosen to share a slot slow its hashing, never change the result.
 */
import { encode, hashBytes, isWellFormed, type Digest } from './codec.js';
import { ConsensusError } from './errors.js';

const SLOT_BITS = 16;
const SLOTS = 1 << SLOT_BITS;
/** A subtree with at most this many keys is hashed as one leaf. */
export const LEAF_KEYS = 16;

const NODE = 0x01;
const DOMAIN = new TextEncoder().encode('knhk/kv-state/v4');
const DIGEST_BYTES = 32;

/** The slot of `key` (see the file comment). */
export function slotOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 16)) & (SLOTS - 1);
}

/** Orders [key, value] entries by key, comparing UTF-16 code units: a leaf's order, and a slot's in {@link MerkleKvMap.entries}. */
export const byKey = ([a]: readonly [string, string], [b]: readonly [string, string]): number => (a < b ? -1 : a > b ? 1 : 0);

/** The input of a node's hash, 0x01 ‖ left ‖ right, rewritten for every node. */
const nodeInput = new Uint8Array(1 + 2 * DIGEST_BYTES);
nodeInput[0] = NODE;

/** A leaf spanning at most this many slots finds its keys by scanning them, a wider one by descending. */
const SCAN_SLOTS = 256;

/** How much a {@link MerkleKvMap.root} re-hashed. */
export interface RehashWork {
  leaves: number;
  nodes: number;
}

/**
 * A string map that keeps the digests of its tree up to date as it is written, and hashes lazily
 * ({@link root}). Nodes are numbered as in a binary heap: the root is 1, node i's children are
 * 2i and 2i + 1, and slot s is node 2^16 + s.
 */
export class MerkleKvMap {
  /** The entries of each non-empty slot. */
  readonly #slots = new Map<number, Map<string, string>>();
  /** Keys under each node. */
  readonly #counts = new Uint32Array(2 * SLOTS);
  /** Digests of the nodes hashed since their subtree last changed. */
  readonly #digests = new Map<number, Digest>();
  /** Slots written since the last root. */
  #dirty = new Set<number>();
  #root: Digest | undefined;
  #work: Readonly<RehashWork> = { leaves: 0, nodes: 0 };

  /** Number of keys. */
  get size(): number {
    return this.#counts[1] as number;
  }

  /** The value of `key`, if any. */
  get(key: string): string | undefined {
    return this.#slots.get(slotOf(key))?.get(key);
  }

  /**
   * Sets `key` to `value`.
   * @throws {ConsensusError} `INVALID_ENTRY` when either is not well-formed Unicode (a lone surrogate).
   */
  set(key: string, value: string): void {
    if (!isWellFormed(key) || !isWellFormed(value)) throw new ConsensusError('INVALID_ENTRY', 'a key-value entry must be well-formed Unicode');
    const slot = slotOf(key);
    let entries = this.#slots.get(slot);
    if (entries === undefined) this.#slots.set(slot, (entries = new Map()));
    const size = entries.size;
    entries.set(key, value);
    if (entries.size !== size) this.#count(slot, 1);
    this.#written(slot);
  }

  /** Removes `key`; true if it was there. */
  delete(key: string): boolean {
    const slot = slotOf(key);
    const entries = this.#slots.get(slot);
    if (entries?.delete(key) !== true) return false;
    if (entries.size === 0) this.#slots.delete(slot);
    this.#count(slot, -1);
    this.#written(slot);
    return true;
  }

  /**
   * Every entry, in the map's canonical order: by slot, then by key. Equal maps list their entries
   * alike whatever order they were written in, and only a slot's few keys are ever sorted, so a
   * snapshot in this order costs no sort of the whole state.
   */
  entries(): [string, string][] {
    const all = new Array<[string, string]>(this.size);
    let at = 0;
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.#counts[SLOTS + slot] === 0) continue;
      const entries = [...(this.#slots.get(slot) as Map<string, string>)];
      if (entries.length > 1) entries.sort(byKey);
      for (const entry of entries) all[at++] = entry;
    }
    return all;
  }

  /**
   * Replaces the contents with `entries`, listed as {@link entries} lists them: anything else, or a
   * repeated key, did not come from this map.
   * @throws {ConsensusError} `CORRUPT_STATE` for an entry that is not a pair, entries out of canonical
   *   order or a repeated key; `INVALID_ENTRY` as {@link set}.
   */
  restore(entries: readonly (readonly string[])[]): void {
    this.clear();
    let previous: { readonly slot: number; readonly key: string } | undefined;
    for (const entry of entries) {
      if (entry.length !== 2) throw new ConsensusError('CORRUPT_STATE', 'key-value snapshot entry is not a pair');
      const [key, value] = entry as readonly [string, string];
      const slot = slotOf(key);
      if (previous !== undefined && (slot < previous.slot || (slot === previous.slot && key <= previous.key))) {
        throw new ConsensusError('CORRUPT_STATE', 'key-value snapshot entries are out of order or repeat a key');
      }
      previous = { slot, key };
      this.set(key, value);
    }
  }

  /** Forgets every key. */
  clear(): void {
    this.#slots.clear();
    this.#counts.fill(0);
    this.#digests.clear();
    this.#dirty.clear();
    this.#root = undefined;
    this.#work = { leaves: 0, nodes: 0 };
  }

  /** The state hash, re-hashing only the subtrees written since the last call. */
  root(): Digest {
    if (this.#root !== undefined) return this.#root;
    // A write changes every node on its slot's path; the paths of a batch share their upper parts.
    for (const slot of this.#dirty) for (let node = SLOTS + slot; node >= 1; node >>>= 1) this.#digests.delete(node);
    this.#dirty = new Set();
    const work = { leaves: 0, nodes: 0 };
    const top = this.#digestOf(1, work);
    const input = new Uint8Array(DOMAIN.length + DIGEST_BYTES);
    input.set(DOMAIN);
    input.set(top, DOMAIN.length);
    this.#root = hashBytes(input);
    this.#work = work;
    return this.#root;
  }

  /**
   * What the last {@link root} that hashed anything re-hashed: what the tests of the complexity
   * claim read.
   * @internal
   */
  get lastWork(): Readonly<RehashWork> {
    return this.#work;
  }

  #count(slot: number, delta: number): void {
    for (let node = SLOTS + slot; node >= 1; node >>>= 1) this.#counts[node] = (this.#counts[node] as number) + delta;
  }

  #written(slot: number): void {
    this.#dirty.add(slot);
    this.#root = undefined;
  }

  #digestOf(node: number, work: RehashWork): Digest {
    const cached = this.#digests.get(node);
    if (cached !== undefined) return cached;
    let digest: Digest;
    if (node >= SLOTS || (this.#counts[node] as number) <= LEAF_KEYS) {
      const entries: [string, string][] = [];
      this.#gather(node, entries);
      digest = hashBytes(encode(entries.sort(byKey)));
      work.leaves++;
    } else {
      const left = this.#digestOf(2 * node, work);
      const right = this.#digestOf(2 * node + 1, work);
      nodeInput.set(left, 1);
      nodeInput.set(right, 1 + DIGEST_BYTES);
      digest = hashBytes(nodeInput);
      work.nodes++;
    }
    this.#digests.set(node, digest);
    return digest;
  }

  /**
   * The entries under `node`: a narrow subtree by scanning its slots' counts, a wide one by
   * descending into the halves that hold keys (a leaf of 10 000 keys spans about 100 slots, where
   * descending key by key cost a quarter of hashing in a profile).
   */
  #gather(node: number, into: [string, string][]): void {
    if (this.#counts[node] === 0) return;
    // The slots under node span [first, first + width) at the bottom of the heap numbering.
    let first = node;
    let width = 1;
    while (first < SLOTS) {
      first *= 2;
      width *= 2;
    }
    if (width > SCAN_SLOTS) {
      this.#gather(2 * node, into);
      this.#gather(2 * node + 1, into);
      return;
    }
    for (let slot = first - SLOTS; slot < first - SLOTS + width; slot++) {
      if (this.#counts[SLOTS + slot] === 0) continue;
      for (const entry of this.#slots.get(slot) as Map<string, string>) into.push(entry);
    }
  }
}
