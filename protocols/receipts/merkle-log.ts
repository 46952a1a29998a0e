/**
 * The receipt log as an in-memory Merkle tree (RFC 9162 §2.1): append-only, with the root of the
 * current or any earlier size, inclusion proofs (§2.1.3.1) and consistency proofs (§2.1.4.1)
 * between any two sizes.
 *
 * Storage: for every height h the hashes of the complete, aligned subtrees of 2^h leaves, in one
 * flat buffer per height (≈ 2 × 32 bytes per leaf; 64 MB for 10^6 leaves). Such a subtree never
 * changes once complete, so every size the log ever had can still be proved. A subtree hash the
 * RFC's recursion asks for is then either stored (the left part of every split is complete and
 * aligned) or lies on the right edge of the tree being proved, and is computed from O(log n)
 * stored ones; a proof or a root costs O(log n) hashes, an append amortized O(1).
 *
 * A replica persists leaf hashes and rebuilds its log with {@link MerkleLog.fromLeafHashes}.
 */
import type { Digest } from '../consensus/codec.js';
import { ReceiptError } from './errors.js';
import { EMPTY_ROOT, HASH_BYTES, largestPowerOfTwoBelow, leafHash, nodeHash } from './merkle.js';

/** A growable array of 32-byte hashes in one buffer. */
class HashColumn {
  #bytes = new Uint8Array(HASH_BYTES * 64);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  push(hash: Uint8Array): void {
    if ((this.#count + 1) * HASH_BYTES > this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2);
      grown.set(this.#bytes);
      this.#bytes = grown;
    }
    this.#bytes.set(hash, this.#count * HASH_BYTES);
    this.#count++;
  }

  /** A view of hash `i`, valid until the next push. */
  view(i: number): Uint8Array {
    return this.#bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }
}

/** Leaf hashes {@link MerkleLog.appendLeafHashes} stages before it commits them. */
const COMMIT_CHUNK = 4096;

function log2(powerOfTwo: number): number {
  let h = 0;
  for (let x = powerOfTwo; x > 1; x /= 2) h++;
  return h;
}

/**
 * Leaves on their way into a {@link MerkleLog} (see {@link MerkleLog.pending}). Each leaf hash
 * completes the subtrees a push onto the log would, and they are hashed at once, so that
 * {@link commit} only copies hashes: a large batch's hashing can be spread over turns.
 */
export class PendingLeaves {
  readonly #base: number;
  readonly #stored: (height: number, index: number) => Uint8Array;
  readonly #take: (staged: readonly (readonly Uint8Array[])[]) => void;
  /** `#staged[h]`: the new complete subtrees of 2^h leaves, left to right. */
  readonly #staged: Uint8Array[][] = [];
  #committed = false;

  /**
   * Leaves after a log of `base` leaves, whose level hashes `stored` gives; `take` appends the
   * staged levels. Made by {@link MerkleLog.pending}, which binds both to the log.
   */
  constructor(base: number, stored: (height: number, index: number) => Uint8Array, take: (staged: readonly (readonly Uint8Array[])[]) => void) {
    this.#base = base;
    this.#stored = stored;
    this.#take = take;
  }

  /** Leaves added so far. */
  get count(): number {
    return this.#staged[0]?.length ?? 0;
  }

  /**
   * Adds a leaf hash (HASH(0x00 ‖ leaf)) and hashes every subtree it completes; returns the leaf's index.
   * @throws {ReceiptError} `OUT_OF_RANGE` for a hash that is not 32 bytes; `INCONSISTENT` after commit.
   */
  push(hash: Uint8Array): number {
    if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES) throw new ReceiptError('OUT_OF_RANGE', `a leaf hash is ${HASH_BYTES} bytes`);
    if (this.#committed) throw new ReceiptError('INCONSISTENT', 'these leaves were committed already');
    const index = this.#base + this.count;
    let carry: Uint8Array = hash.slice();
    // Level h holds ⌊size / 2^h⌋ complete subtrees; one that makes its level's count even completes its parent.
    for (let height = 0, size = this.#base; ; height++, size = Math.floor(size / 2)) {
      const staged = this.#staged[height] ?? (this.#staged[height] = []);
      staged.push(carry);
      const count = size + staged.length;
      if (count % 2 === 1) return index;
      const left = staged.length >= 2 ? (staged[staged.length - 2] as Uint8Array) : this.#stored(height, count - 2);
      carry = nodeHash(left, carry);
    }
  }

  /**
   * Appends the leaves to the log.
   * @throws {ReceiptError} `INCONSISTENT`, leaving the log as it was, when it grew since these
   *   leaves began or they were committed already.
   */
  commit(): void {
    if (this.#committed) throw new ReceiptError('INCONSISTENT', 'these leaves were committed already');
    this.#take(this.#staged);
    this.#committed = true;
  }
}

/** An append-only Merkle tree of receipt leaves, hashed per RFC 9162 with SHA-256. */
export class MerkleLog {
  /** `#levels[h]` holds the hashes of the complete subtrees of 2^h leaves, left to right. */
  readonly #levels: HashColumn[] = [new HashColumn()];
  #root: Digest | undefined = EMPTY_ROOT;

  /** Rebuilds a log from its leaf hashes, in leaf order (what a replica stored durably). */
  static fromLeafHashes(hashes: Iterable<Uint8Array>): MerkleLog {
    const log = new MerkleLog();
    log.appendLeafHashes(hashes);
    return log;
  }

  /** Number of leaves. */
  get size(): number {
    return (this.#levels[0] as HashColumn).count;
  }

  /** Appends leaves (their bytes; each is hashed as a leaf) and returns their indices. */
  append(leaves: readonly Uint8Array[]): number[] {
    return this.appendLeafHashes(leaves.map(leafHash));
  }

  /**
   * Appends leaves given by their leaf hashes (HASH(0x00 ‖ leaf)) and returns their indices.
   * @throws {ReceiptError} `OUT_OF_RANGE` for a hash that is not 32 bytes.
   */
  appendLeafHashes(hashes: Iterable<Uint8Array>): number[] {
    const indices: number[] = [];
    let pending = this.pending();
    for (const hash of hashes) {
      indices.push(pending.push(hash));
      // Committed in chunks, so that rebuilding a large log holds few hashes outside its columns.
      if (pending.count === COMMIT_CHUNK) {
        pending.commit();
        pending = this.pending();
      }
    }
    pending.commit();
    return indices;
  }

  /**
   * Starts an append that the log takes only at {@link PendingLeaves.commit}: leaves can be
   * added over several turns, their subtrees hashed as they come, while the log stays as it was.
   */
  pending(): PendingLeaves {
    const base = this.size;
    return new PendingLeaves(
      base,
      (height, index) => (this.#levels[height] as HashColumn).view(index),
      (staged) => {
        if (this.size !== base) throw new ReceiptError('INCONSISTENT', `the log grew from ${base} to ${this.size} leaves while leaves were pending`);
        staged.forEach((hashes, height) => {
          const level = this.#levels[height] ?? (this.#levels[height] = new HashColumn());
          for (const hash of hashes) level.push(hash);
        });
        if (staged.length > 0) this.#root = undefined;
      },
    );
  }

  /** The hash of leaf `index`. */
  leafHash(index: number): Digest {
    this.#checkIndex(index, this.size);
    return (this.#levels[0] as HashColumn).view(index).slice();
  }

  /** The root of the current tree, MTH(D[0:size]) (RFC 9162 §2.1.1). */
  root(): Digest {
    this.#root ??= this.rootAt(this.size);
    return this.#root.slice();
  }

  /** The root the tree had when it had `size` leaves (0 ≤ size ≤ this.size). */
  rootAt(size: number): Digest {
    this.#checkSize(size);
    return size === 0 ? EMPTY_ROOT.slice() : this.#subtree(0, size).slice();
  }

  /**
   * The inclusion proof of leaf `index` in the tree of `size` leaves (default: the current size):
   * PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, the sibling hashes from the leaf up.
   */
  inclusionProof(index: number, size: number = this.size): Digest[] {
    this.#checkSize(size);
    this.#checkIndex(index, size);
    // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, PATH(m − k, D[k:n]) : MTH(D[0:k]) otherwise:
    // the siblings are found top-down and listed bottom-up.
    const siblings: Uint8Array[] = [];
    let [start, end, m] = [0, size, index];
    while (end - start > 1) {
      const k = largestPowerOfTwoBelow(end - start);
      if (m < k) {
        siblings.push(this.#subtree(start + k, end));
        end = start + k;
      } else {
        siblings.push(this.#subtree(start, start + k));
        start += k;
        m -= k;
      }
    }
    return siblings.reverse().map((s) => s.slice());
  }

  /**
   * The consistency proof between the tree of `first` leaves and the tree of `second` leaves
   * (default: the current size): PROOF(first, D[0:second]) = SUBPROOF(first, D[0:second], true)
   * of RFC 9162 §2.1.4.1, for 0 < first < second; empty when first = 0 or first = second.
   */
  consistencyProof(first: number, second: number = this.size): Digest[] {
    this.#checkSize(second);
    if (!Number.isSafeInteger(first) || first < 0 || first > second) {
      throw new ReceiptError('OUT_OF_RANGE', `a consistency proof goes from a size in [0, ${second}], not ${first}`);
    }
    if (first === 0 || first === second) return [];
    // SUBPROOF(m, D[n], b): [] when m = n and b; [MTH(D[n])] when m = n and not b; otherwise with
    // k the largest power of 2 below n, SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) for m ≤ k and
    // SUBPROOF(m − k, D[k:n], false) : MTH(D[0:k]) for m > k.
    const siblings: Uint8Array[] = [];
    let [start, end, m, b] = [0, second, first, true];
    while (m !== end - start) {
      const k = largestPowerOfTwoBelow(end - start);
      if (m <= k) {
        siblings.push(this.#subtree(start + k, end));
        end = start + k;
      } else {
        siblings.push(this.#subtree(start, start + k));
        start += k;
        m -= k;
        b = false;
      }
    }
    if (!b) siblings.push(this.#subtree(start, end));
    return siblings.reverse().map((s) => s.slice());
  }

  /** MTH(D[start:end]) for 0 ≤ start < end ≤ size: stored when complete and aligned, else split per §2.1.1. */
  #subtree(start: number, end: number): Uint8Array {
    const n = end - start;
    const k = largestPowerOfTwoBelow(n + 1);
    if (k === n && start % n === 0) return (this.#levels[log2(n)] as HashColumn).view(start / n);
    const split = largestPowerOfTwoBelow(n);
    return nodeHash(this.#subtree(start, start + split), this.#subtree(start + split, end));
  }

  #checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new ReceiptError('OUT_OF_RANGE', `the log has sizes 0 to ${this.size}, not ${size}`);
    }
  }

  #checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new ReceiptError('OUT_OF_RANGE', `a tree of ${size} leaves has no leaf ${index}`);
    }
  }
}
