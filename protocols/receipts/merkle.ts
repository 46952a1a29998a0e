/**
 * Merkle tree hashing and proof verification of RFC 9162 (Certificate Transparency v2), §2.1,
 * with SHA-256 as the hash: the hash of the empty tree, leaf and interior-node hashes, and the
 * verification algorithms for inclusion proofs (§2.1.3.2) and consistency proofs (§2.1.4.2).
 * Proof generation lives with the log that holds the tree (`merkle-log.ts`).
 *
 * Tree sizes and indices are JavaScript numbers limited to [0, 2^53 − 1]; the bit operations of
 * the RFC (LSB, right shift) are done arithmetically, because `>>` truncates to 32 bits.
 */
import { hash } from 'node:crypto';
import type { Digest } from '../consensus/codec.js';

/** Length of a SHA-256 digest, RFC 9162's HASH_SIZE for SHA-256. */
export const HASH_BYTES = 32;

/** The byte that opens a leaf hash's input (RFC 9162 §2.1.1). */
export const LEAF_PREFIX = 0x00;
/** The byte that opens an interior node hash's input (RFC 9162 §2.1.1). */
const NODE_PREFIX = 0x01;

const scratch = new Uint8Array(1 + 2 * HASH_BYTES);

/** SHA-256 of `bytes`, one-shot (node:crypto's `hash`), as a plain 32-byte array. */
export function sha256(bytes: Uint8Array): Digest {
  const out = hash('sha256', bytes, 'buffer');
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The root of the empty tree, MTH({}) = HASH() (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Digest = sha256(new Uint8Array(0));

/** The hash of a leaf, MTH({d(0)}) = HASH(0x00 ‖ d(0)) (RFC 9162 §2.1.1). */
export function leafHash(leaf: Uint8Array): Digest {
  const input = new Uint8Array(1 + leaf.length);
  input[0] = LEAF_PREFIX;
  input.set(leaf, 1);
  return sha256(input);
}

/** The hash of an interior node, HASH(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Digest {
  const input = left.length === HASH_BYTES && right.length === HASH_BYTES ? scratch : new Uint8Array(1 + left.length + right.length);
  input[0] = NODE_PREFIX;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256(input);
}

/** Byte-wise equality of two hashes. */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_BYTES;
}

function isSize(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

const odd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);

/**
 * Whether `proof` proves that the leaf with hash `leaf` is at `index` in the tree of `size`
 * leaves whose root is `root`: the algorithm of RFC 9162 §2.1.3.2, step by step. Never throws;
 * a proof element that is not a 32-byte hash makes the proof invalid.
 */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!isSize(index) || !isSize(size) || !isHash(leaf) || !isHash(root) || !proof.every(isHash)) return false;
  // Step 1: the leaf must be inside the tree.
  if (index >= size) return false;
  // Step 2: fn is the leaf index, sn the index of the tree's last leaf.
  let fn = index;
  let sn = size - 1;
  // Step 3.
  let r: Uint8Array = leaf;
  // Step 4.
  for (const p of proof) {
    // 4a: a path longer than the tree is deep.
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      // 4b: p is a left sibling; 4b.ii: skip the levels where the node has no right sibling.
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    // 4c.
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  return sn === 0 && sameHash(r, root);
}

/**
 * Whether `proof` proves that the tree of `secondSize` leaves with root `secondRoot` extends the
 * tree of `firstSize` leaves with root `firstRoot`, by RFC 9162 §2.1.4.2. Never throws.
 *
 * The RFC defines proofs for 0 < first < second (§2.1.4.1) and its algorithm fails an empty
 * path; the two remaining cases are decided as the RFC's definitions imply: for first = second
 * the proof is empty and the roots must be equal; for first = 0 the proof is empty and the first
 * root must be the empty tree's (every tree extends the empty one).
 */
export function verifyConsistencyProof(
  firstSize: number,
  secondSize: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(firstSize) || !isSize(secondSize) || !isHash(firstRoot) || !isHash(secondRoot) || !proof.every(isHash)) return false;
  if (firstSize > secondSize) return false;
  if (firstSize === secondSize) return proof.length === 0 && sameHash(firstRoot, secondRoot);
  if (firstSize === 0) return proof.length === 0 && sameHash(firstRoot, EMPTY_ROOT);
  // Step 1: an empty path proves nothing for 0 < first < second.
  if (proof.length === 0) return false;
  // Step 2: when first is a power of 2, the old root is itself the first node of the path.
  const path = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : proof;
  // Step 3.
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  // Step 4.
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // Step 6.
  for (const c of path.slice(1)) {
    // 6a.
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      // 6b: c is a left sibling, in both trees; 6b.iii: skip the levels without a right sibling.
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      // c is a right sibling, in the second tree only.
      sr = nodeHash(sr, c);
    }
    // 6c.
    fn = half(fn);
    sn = half(sn);
  }
  // Step 7.
  return sn === 0 && sameHash(fr, firstRoot) && sameHash(sr, secondRoot);
}

/** Whether `n` (≥ 1) is an exact power of two. */
export function isPowerOfTwo(n: number): boolean {
  return n >= 1 && largestPowerOfTwoBelow(n + 1) === n;
}

/** The largest power of two strictly smaller than `n` (n ≥ 2): the RFC's k of §2.1.1. */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
