/**
 * The key-value machine's map and its state hash (and, with values of another kind, the client
 * table's: {@link MapKind}): entries spread over 2^16 slots, under a Merkle
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
 * SHA-256("knhk/kv-state/v4" ‖ root digest) (another kind's root: its own domain). A leaf's input opens with a msgpack array header
 * (0x90–0x9f, 0xdc, 0xdd) and a node's with 0x01, so neither can pass for the other (RFC 9162
 * §2.1.1 separates them the same way). Keys and values must be well-formed Unicode: msgpack
 * writes a lone surrogate as U+FFFD, so two different maps would encode alike.
 *
 * A view frozen from the map ({@link MerkleKvMap.freeze}) keeps the entries of that moment while
 * the map goes on being written: slots are copied on their first write after a freeze, so a
 * freeze costs a copy of the slot table, not of the state, and the slots written between two
 * views are what changed between them ({@link FrozenKvMap.changesSince}).
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
const DIGEST_BYTES = 32;

/**
 * What a map holds and what its root is called: the key-value machine's map holds text
 * ({@link KV_TEXT}); the same tree serves other replicated tables (the client table of
 * state-machine.ts), each under a domain of its own, so that no root can pass for another kind's.
 */
export interface MapKind<V> {
  /** The prefix of the root's hash input (`SHA-256(domain ‖ root digest)`). */
  readonly domain: string;
  /** What errors call the map. */
  readonly name: string;
  /** Whether `value` may be stored: one msgpack value that every replica encodes alike. */
  isValue(value: unknown): value is V;
  /**
   * A copy of a value decoded from a snapshot or changes that shares no memory with them, for a
   * kind whose values may be views into the decoded bytes (a `Uint8Array`): the map keeps such
   * values for as long as their keys go unwritten, and would keep the whole buffer alive with them.
   */
  own?(value: V): V;
}

/** The key-value machine's map: well-formed text to well-formed text, its root under `knhk/kv-state/v4`. */
export const KV_TEXT: MapKind<string> = {
  domain: 'knhk/kv-state/v4',
  name: 'key-value',
  isValue: (value): value is string => typeof value === 'string' && isWellFormed(value),
};

/** The slot of `key` (see the file comment). */
export function slotOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 16)) & (SLOTS - 1);
}

/** Orders [key, value] entries by key, comparing UTF-16 code units: a leaf's order, and a slot's in {@link MerkleMap.entries}. */
export const byKey = <V>([a]: readonly [string, V], [b]: readonly [string, V]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A slot's entries in {@link byKey}'s order. The keys are sorted alone, by the default sort, which
 * compares strings by UTF-16 code units as `byKey` does, without a call per comparison: listing a
 * million keys so takes 250 ms where it took 450.
 */
function sortedEntries<V>(entries: SlotEntries<V>): [string, V][] {
  return [...entries.keys()].sort().map((key) => [key, entries.get(key) as V]);
}

/** The input of a node's hash, 0x01 ‖ left ‖ right, rewritten for every node. */
const nodeInput = new Uint8Array(1 + 2 * DIGEST_BYTES);
nodeInput[0] = NODE;

/** A leaf spanning at most this many slots finds its keys by scanning them, a wider one by descending. */
const SCAN_SLOTS = 256;

/** How much a {@link MerkleMap.root} re-hashed. */
export interface RehashWork {
  leaves: number;
  nodes: number;
}

/**
 * A slot and every entry it holds, ordered by key: a unit of {@link FrozenMap.changesSince}. As
 * {@link MerkleMap.replaceSlots} takes it, from bytes a peer or the disk gave, the entries are
 * whatever decoded; the map checks each.
 */
export interface SlotChange<Entry = readonly [string, string]> {
  readonly slot: number;
  readonly entries: readonly Entry[];
}

/** A slot's entries: absent for a slot that never held a key, empty after its keys were deleted. */
type SlotEntries<V> = Map<string, V>;

/**
 * Lists the entries of `slots` in the map's canonical order: by slot, then by key. Equal maps list
 * their entries alike whatever order they were written in, and only a slot's few keys are ever
 * sorted, so a snapshot in this order costs no sort of the whole state.
 */
function listEntries<V>(slots: readonly (SlotEntries<V> | undefined)[], size: number): [string, V][] {
  const all = new Array<[string, V]>(size);
  let at = 0;
  for (const entries of slots) {
    if (entries === undefined || entries.size === 0) continue;
    if (entries.size === 1) {
      for (const entry of entries) all[at++] = entry;
      continue;
    }
    for (const entry of sortedEntries(entries)) all[at++] = entry;
  }
  return all;
}

/**
 * The map as it was when {@link MerkleMap.freeze} was called; later writes to the map do not
 * change it.
 */
export class FrozenMap<V> {
  /** The map's root at the freeze. */
  readonly root: Digest;
  /** Number of keys at the freeze. */
  readonly size: number;
  readonly #slots: readonly (SlotEntries<V> | undefined)[];
  /** The epoch in which each slot's entries were last written (see {@link MerkleMap}). */
  readonly #written: Uint32Array;
  readonly #epoch: number;
  readonly #lineage: object;

  /** @internal Made by {@link MerkleMap.freeze}. */
  constructor(root: Digest, size: number, slots: readonly (SlotEntries<V> | undefined)[], written: Uint32Array, epoch: number, lineage: object) {
    this.root = root;
    this.size = size;
    this.#slots = slots;
    this.#written = written;
    this.#epoch = epoch;
    this.#lineage = lineage;
  }

  /** Every entry at the freeze, in the order {@link MerkleMap.entries} lists them. */
  entries(): [string, V][] {
    return listEntries(this.#slots, this.size);
  }

  /**
   * What changed from `older` to this view, as whole slots: each slot written in between with the
   * entries it holds here, in ascending slot order ({@link MerkleMap.replaceSlots} applies them).
   * Undefined when `older` is not an earlier view of the same map, or the map was restored or
   * cleared in between.
   */
  changesSince(older: FrozenMap<V>): SlotChange<readonly [string, V]>[] | undefined {
    if (older.#lineage !== this.#lineage || older.#epoch > this.#epoch) return undefined;
    const changes: SlotChange<readonly [string, V]>[] = [];
    for (let slot = 0; slot < SLOTS; slot++) {
      if ((this.#written[slot] as number) <= older.#epoch) continue;
      const entries = this.#slots[slot];
      changes.push({ slot, entries: entries === undefined ? [] : sortedEntries(entries) });
    }
    return changes;
  }
}

/**
 * A map from text keys to values of one {@link MapKind} that keeps the digests of its tree up to
 * date as it is written, and hashes lazily ({@link root}). Nodes are numbered as in a binary heap:
 * the root is 1, node i's children are 2i and 2i + 1, and slot s is node 2^16 + s.
 */
export class MerkleMap<V> {
  readonly #kind: MapKind<V>;
  readonly #domain: Uint8Array;
  /** The entries of each slot, by slot number. */
  readonly #slots = new Array<SlotEntries<V> | undefined>(SLOTS);
  /**
   * The epoch in which each slot's entries were last written. A freeze ends an epoch; a slot
   * written in a later one is copied first, since the frozen view may share its entries.
   */
  readonly #written = new Uint32Array(SLOTS);
  #epoch = 1;
  /** Replaced by a restore or clear, after which views from before describe another history. */
  #lineage: object = {};
  /** Keys under each node. */
  readonly #counts = new Uint32Array(2 * SLOTS);
  /** Digests of the nodes hashed since their subtree last changed. */
  readonly #digests = new Map<number, Digest>();
  /** Slots written since the last root. */
  #dirty = new Set<number>();
  #root: Digest | undefined;
  #work: Readonly<RehashWork> = { leaves: 0, nodes: 0 };

  constructor(kind: MapKind<V>) {
    this.#kind = kind;
    this.#domain = new TextEncoder().encode(kind.domain);
  }

  /** Number of keys. */
  get size(): number {
    return this.#counts[1] as number;
  }

  /** The value of `key`, if any. */
  get(key: string): V | undefined {
    return this.#slots[slotOf(key)]?.get(key);
  }

  /**
   * Sets `key` to `value`.
   * @throws {ConsensusError} `INVALID_ENTRY` when the key is not well-formed Unicode text (a lone
   *   surrogate) or the value not one of the map's kind (for text, the same rule).
   */
  set(key: string, value: V): void {
    if (typeof key !== 'string' || !isWellFormed(key) || !this.#kind.isValue(value)) {
      throw new ConsensusError('INVALID_ENTRY', `a ${this.#kind.name} entry must have well-formed text for its key and a value of its kind`);
    }
    const slot = slotOf(key);
    const entries = this.#writable(slot);
    const size = entries.size;
    entries.set(key, value);
    if (entries.size !== size) this.#count(slot, 1);
  }

  /** Removes `key`; true if it was there. */
  delete(key: string): boolean {
    const slot = slotOf(key);
    if (this.#slots[slot]?.has(key) !== true) return false;
    this.#writable(slot).delete(key);
    this.#count(slot, -1);
    return true;
  }

  /** Every entry, in the map's canonical order (`listEntries`). */
  entries(): [string, V][] {
    return listEntries(this.#slots, this.size);
  }

  /**
   * The map as it is now, unchanged by later writes: O(slots) to take, however many keys there are.
   */
  freeze(): FrozenMap<V> {
    const view = new FrozenMap<V>(this.root(), this.size, this.#slots.slice(), this.#written.slice(), this.#epoch, this.#lineage);
    this.#epoch++;
    return view;
  }

  /**
   * Replaces whole slots, as {@link FrozenMap.changesSince} lists them: each slot's entries
   * become the ones given.
   * @throws {ConsensusError} `CORRUPT_STATE` for a slot out of range or out of order, an entry that
   *   is not a pair or belongs to another slot, or a repeated key; `INVALID_ENTRY` as {@link set}.
   *   Slots before the offending one are already replaced.
   */
  replaceSlots(changes: readonly SlotChange<readonly unknown[]>[]): void {
    let previous = -1;
    for (const { slot, entries } of changes) {
      if (!Number.isInteger(slot) || slot <= previous || slot >= SLOTS) throw new ConsensusError('CORRUPT_STATE', `${this.#kind.name} changes name slot ${slot} out of order or range`);
      previous = slot;
      for (const key of [...this.#writable(slot).keys()]) this.delete(key);
      for (const entry of entries) {
        const [key, value] = this.#pair(entry, 'change');
        if (slotOf(key) !== slot || this.#slots[slot]?.has(key) === true) throw new ConsensusError('CORRUPT_STATE', `${this.#kind.name} changes put a key in slot ${slot} twice or in the wrong slot`);
        this.#setDecoded(key, value);
      }
    }
  }

  /**
   * Replaces the contents with `entries`, listed as {@link entries} lists them: anything else, or a
   * repeated key, did not come from this map.
   * @throws {ConsensusError} `CORRUPT_STATE` for an entry that is not a pair, entries out of canonical
   *   order or a repeated key; `INVALID_ENTRY` as {@link set}.
   */
  restore(entries: readonly (readonly unknown[])[]): void {
    this.clear();
    let previous: { readonly slot: number; readonly key: string } | undefined;
    for (const entry of entries) {
      const [key, value] = this.#pair(entry, 'snapshot');
      const slot = slotOf(key);
      if (previous !== undefined && (slot < previous.slot || (slot === previous.slot && key <= previous.key))) {
        throw new ConsensusError('CORRUPT_STATE', `${this.#kind.name} snapshot entries are out of order or repeat a key`);
      }
      previous = { slot, key };
      this.#setDecoded(key, value);
    }
  }

  /** Forgets every key. */
  clear(): void {
    this.#slots.fill(undefined);
    this.#written.fill(0);
    this.#lineage = {};
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
    const input = new Uint8Array(this.#domain.length + DIGEST_BYTES);
    input.set(this.#domain);
    input.set(top, this.#domain.length);
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

  /** {@link set} with a value decoded from bytes, checked first and then owned (`MapKind.own`). */
  #setDecoded(key: string, value: V): void {
    this.set(key, this.#kind.own !== undefined && this.#kind.isValue(value) ? this.#kind.own(value) : value);
  }

  /** `entry` as a [key, value] pair; whether the value is of the map's kind, {@link set} checks. */
  #pair(entry: readonly unknown[], what: 'snapshot' | 'change'): readonly [string, V] {
    if (entry.length !== 2 || typeof entry[0] !== 'string') throw new ConsensusError('CORRUPT_STATE', `${this.#kind.name} ${what} entry is not a [key, value] pair`);
    return entry as readonly [string, V];
  }

  #count(slot: number, delta: number): void {
    for (let node = SLOTS + slot; node >= 1; node >>>= 1) this.#counts[node] = (this.#counts[node] as number) + delta;
  }

  /** The slot's entries, ready to be written: copied first if a view frozen earlier may share them. */
  #writable(slot: number): SlotEntries<V> {
    this.#dirty.add(slot);
    this.#root = undefined;
    const entries = this.#slots[slot];
    if (entries !== undefined && this.#written[slot] === this.#epoch) return entries;
    this.#written[slot] = this.#epoch;
    const copy = new Map(entries);
    this.#slots[slot] = copy;
    return copy;
  }

  #digestOf(node: number, work: RehashWork): Digest {
    const cached = this.#digests.get(node);
    if (cached !== undefined) return cached;
    let digest: Digest;
    if (node >= SLOTS || (this.#counts[node] as number) <= LEAF_KEYS) {
      const entries: [string, V][] = [];
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
  #gather(node: number, into: [string, V][]): void {
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
      for (const entry of this.#slots[slot] as SlotEntries<V>) into.push(entry);
    }
  }
}

/** The key-value machine's map ({@link KV_TEXT}). */
export class MerkleKvMap extends MerkleMap<string> {
  constructor() {
    super(KV_TEXT);
  }
}

/** A frozen {@link MerkleKvMap}. */
export type FrozenKvMap = FrozenMap<string>;
