/**
 * The Merkle receipt log against RFC 9162: published known answers (transparency-dev/merkle's
 * vectors, test/vectors/rfc9162-merkle.json) and a property test against a naive recursive tree
 * written straight from the RFC's definitions (MTH §2.1.1, PATH §2.1.3.1, PROOF §2.1.4.1).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import {
  EMPTY_ROOT,
  MerkleLog,
  ReceiptError,
  leafHash,
  nodeHash,
  verifyConsistencyProof,
  verifyInclusion,
} from '../protocols/receipts/index.js';
import { testSeed } from './helpers/seed.js';

interface Vectors {
  hashes: {
    emptyRoot: string;
    emptyLeaf: string;
    leafL123456: { leaf: string; hash: string };
    nodeN123N456: { left: string; right: string; hash: string };
  };
  leaves: string[];
  roots: string[];
  inclusionProofs: { leaf: number; size: number; proof: string[] }[];
  consistencyProofs: { size1: number; size2: number; proof: string[] }[];
  inclusionCases: { file: string; leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; wantErr: boolean }[];
  consistencyCases: { file: string; size1: number; size2: number; root1: string; root2: string; proof: string[] | null; wantErr: boolean }[];
}

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9162-merkle.json', import.meta.url), 'utf8')) as Vectors;
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const fromB64 = (b: string): Uint8Array => new Uint8Array(Buffer.from(b, 'base64'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const hexes = (bs: readonly Uint8Array[]): string[] => bs.map(hex);
const leaves = vectors.leaves.map(fromHex);

/** A copy of `proof` with bit `bit` of byte `byte` of element `at` flipped. */
function flipped(proof: readonly Uint8Array[], at: number, byte: number, bit: number): Uint8Array[] {
  return proof.map((p, i) => {
    const copy = p.slice();
    if (i === at) copy[byte] = (copy[byte] as number) ^ (1 << bit);
    return copy;
  });
}

// The naive reference: RFC 9162 §2.1.1's MTH, §2.1.3.1's PATH and §2.1.4.1's PROOF/SUBPROOF, recursively
// over D[lo:hi] (MTH memoized per range, so that checking every index of a 300-leaf tree stays cheap).
const sha = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(createHash('sha256').update(Buffer.concat(parts)).digest());
const kBelow = (n: number): number => 2 ** Math.floor(Math.log2(n - 1));
const memo = new WeakMap<readonly Uint8Array[], Map<string, Uint8Array>>();
function mth(d: readonly Uint8Array[], lo = 0, hi = d.length): Uint8Array {
  const cache = memo.get(d) ?? new Map<string, Uint8Array>();
  memo.set(d, cache);
  const key = `${lo}:${hi}`;
  let hash = cache.get(key);
  if (hash === undefined) {
    const n = hi - lo;
    if (n === 0) hash = sha();
    else if (n === 1) hash = sha(Uint8Array.of(0), d[lo] as Uint8Array);
    else hash = sha(Uint8Array.of(1), mth(d, lo, lo + kBelow(n)), mth(d, lo + kBelow(n), hi));
    cache.set(key, hash);
  }
  return hash;
}
function path(m: number, d: readonly Uint8Array[], lo = 0, hi = d.length): Uint8Array[] {
  const n = hi - lo;
  if (n <= 1) return [];
  const k = kBelow(n);
  return m < k ? [...path(m, d, lo, lo + k), mth(d, lo + k, hi)] : [...path(m - k, d, lo + k, hi), mth(d, lo, lo + k)];
}
function subproof(m: number, d: readonly Uint8Array[], b: boolean, lo = 0, hi = d.length): Uint8Array[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [mth(d, lo, hi)];
  const k = kBelow(n);
  return m <= k ? [...subproof(m, d, b, lo, lo + k), mth(d, lo + k, hi)] : [...subproof(m - k, d, false, lo + k, hi), mth(d, lo, lo + k)];
}

/** Every way of damaging an inclusion proof that transparency-dev/merkle's verifier tests use, and more. */
function corruptInclusion(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[], root: Uint8Array): [string, number, number, Uint8Array, Uint8Array[], Uint8Array][] {
  const some = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456');
  const probes: [string, number, number, Uint8Array, Uint8Array[], Uint8Array][] = [
    ['index - 1', index - 1, size, leaf, proof, root],
    ['index + 1', index + 1, size, leaf, proof, root],
    ['index ^ 2', index ^ 2, size, leaf, proof, root],
    ['size * 2', index, size * 2, leaf, proof, root],
    ['size / 2', index, Math.floor(size / 2), leaf, proof, root],
    ['wrong leaf', index, size, sha(Uint8Array.of(9)), proof, root],
    ['empty root', index, size, leaf, proof, EMPTY_ROOT],
    ['random root', index, size, leaf, proof, some],
    ['trailing garbage', index, size, leaf, [...proof, new Uint8Array(0)], root],
    ['trailing root', index, size, leaf, [...proof, root], root],
    ['preceding garbage', index, size, leaf, [new Uint8Array(0), ...proof], root],
    ['preceding root', index, size, leaf, [root, ...proof], root],
  ];
  proof.forEach((_, i) => probes.push([`proof[${i}] bit 3`, index, size, leaf, flipped(proof, i, 0, 3), root]));
  if (proof.length > 0) probes.push(['removed component', index, size, leaf, proof.slice(0, -1), root]);
  if (proof.length > 1) probes.push(['inserted component', index, size, leaf, [proof[0] as Uint8Array, some, ...proof.slice(1)], root]);
  return probes;
}

function corruptConsistency(m: number, n: number, r1: Uint8Array, r2: Uint8Array, proof: Uint8Array[]): [string, number, number, Uint8Array, Uint8Array, Uint8Array[]][] {
  const wrong = sha(Uint8Array.of(7));
  const probes: [string, number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
    ['m - 1', m - 1, n, r1, r2, proof],
    ['m + 1', m + 1, n, r1, r2, proof],
    ['m ^ 2', m ^ 2, n, r1, r2, proof],
    ['n * 2', m, n * 2, r1, r2, proof],
    ['n / 2', m, Math.floor(n / 2), r1, r2, proof],
    ['wrong root1', m, n, wrong, r2, proof],
    ['wrong root2', m, n, r1, wrong, proof],
    ['swapped roots', m, n, r2, r1, proof],
    ['empty proof', m, n, r1, r2, []],
    ['trailing garbage', m, n, r1, r2, [...proof, new Uint8Array(0)]],
    ['trailing root1', m, n, r1, r2, [...proof, r1]],
    ['trailing root2', m, n, r1, r2, [...proof, r2]],
    ['preceding garbage', m, n, r1, r2, [new Uint8Array(0), ...proof]],
    ['preceding root1', m, n, r1, r2, [r1, ...proof]],
    ['preceding root2', m, n, r1, r2, [r2, ...proof]],
    ['preceding proof[0]', m, n, r1, r2, [proof[0] as Uint8Array, ...proof]],
    ['truncated', m, n, r1, r2, proof.slice(0, -1)],
  ];
  proof.forEach((_, i) => probes.push([`proof[${i}] bit 4`, m, n, r1, r2, flipped(proof, i, 0, 4)]));
  return probes;
}

test('RFC 9162 hashing reproduces the published empty-tree, leaf and node hashes', (t) => {
  const { hashes } = vectors;
  t.is(hex(EMPTY_ROOT), hashes.emptyRoot);
  t.is(hex(leafHash(new Uint8Array(0))), hashes.emptyLeaf);
  t.not(hashes.emptyLeaf, hashes.emptyRoot, 'the empty leaf is not the empty tree');
  t.is(hex(leafHash(fromHex(hashes.leafL123456.leaf))), hashes.leafL123456.hash);
  t.is(hex(nodeHash(fromHex(hashes.nodeN123N456.left), fromHex(hashes.nodeN123N456.right))), hashes.nodeN123N456.hash);
  t.is(hex(new MerkleLog().root()), hashes.emptyRoot);
});

test('the log reproduces the published roots of the trees of 1 to 8 leaves', (t) => {
  const log = new MerkleLog();
  t.deepEqual(log.append(leaves), [0, 1, 2, 3, 4, 5, 6, 7]);
  vectors.roots.forEach((root, i) => t.is(hex(log.rootAt(i + 1)), root, `size ${i + 1}`));
  t.is(hex(log.root()), vectors.roots[7] as string);
  const grown = new MerkleLog();
  leaves.forEach((leaf, i) => {
    grown.append([leaf]);
    t.is(hex(grown.root()), vectors.roots[i] as string, `root after appending leaf ${i}`);
  });
});

test('inclusion proofs: the published ones are generated and verified, and every corruption of them fails', (t) => {
  const log = new MerkleLog();
  log.append(leaves);
  for (const v of vectors.inclusionProofs) {
    const index = v.leaf - 1;
    const root = fromHex(vectors.roots[v.size - 1] as string);
    const leaf = leafHash(leaves[index] as Uint8Array);
    t.deepEqual(hexes(log.inclusionProof(index, v.size)), v.proof, `PATH(${index}, D[${v.size}])`);
    const proof = v.proof.map(fromHex);
    t.true(verifyInclusion(index, v.size, leaf, proof, root), `leaf ${index} of ${v.size}`);
    for (const [what, i, n, l, p, r] of corruptInclusion(index, v.size, leaf, proof, root)) {
      t.false(verifyInclusion(i, n, l, p, r), `leaf ${index} of ${v.size}: ${what}`);
    }
  }
  for (const c of vectors.inclusionCases) {
    const verdict = verifyInclusion(c.leafIdx, c.treeSize, fromB64(c.leafHash), (c.proof ?? []).map(fromB64), fromB64(c.root));
    t.is(verdict, !c.wantErr, c.file);
  }
});

test('consistency proofs: the published ones are generated and verified, and every corruption of them fails', (t) => {
  const log = new MerkleLog();
  log.append(leaves);
  for (const v of vectors.consistencyProofs) {
    const r1 = fromHex(vectors.roots[v.size1 - 1] as string);
    const r2 = fromHex(vectors.roots[v.size2 - 1] as string);
    t.deepEqual(hexes(log.consistencyProof(v.size1, v.size2)), v.proof, `PROOF(${v.size1}, D[${v.size2}])`);
    const proof = v.proof.map(fromHex);
    t.true(verifyConsistencyProof(v.size1, v.size2, r1, r2, proof), `${v.size1} → ${v.size2}`);
    if (proof.length === 0) continue;
    for (const [what, m, n, a, b, p] of corruptConsistency(v.size1, v.size2, r1, r2, proof)) {
      t.false(verifyConsistencyProof(m, n, a, b, p), `${v.size1} → ${v.size2}: ${what}`);
    }
  }
  for (const c of vectors.consistencyCases) {
    const verdict = verifyConsistencyProof(c.size1, c.size2, fromB64(c.root1), fromB64(c.root2), (c.proof ?? []).map(fromB64));
    t.is(verdict, !c.wantErr, c.file);
  }
});

test('consistency edge cases: equal sizes need equal roots and no proof; every tree extends the empty one', (t) => {
  const r = fromHex(vectors.roots[0] as string);
  const s = fromHex(vectors.roots[1] as string);
  t.true(verifyConsistencyProof(0, 0, EMPTY_ROOT, EMPTY_ROOT, []));
  t.true(verifyConsistencyProof(0, 5, EMPTY_ROOT, s, []));
  t.false(verifyConsistencyProof(0, 5, r, s, []), 'a size-0 tree has the empty root');
  t.false(verifyConsistencyProof(0, 1, EMPTY_ROOT, r, [EMPTY_ROOT]), 'no proof from the empty tree');
  t.true(verifyConsistencyProof(1, 1, r, r, []));
  t.false(verifyConsistencyProof(1, 1, r, s, []));
  t.false(verifyConsistencyProof(1, 1, r, r, [r]));
  t.false(verifyConsistencyProof(2, 1, s, r, []), 'no time travel');
  t.false(verifyConsistencyProof(1, 2, r, s, []), 'an empty path proves nothing (§2.1.4.2 step 1)');
  t.false(verifyInclusion(0, 0, r, [], EMPTY_ROOT), 'no leaf in the empty tree');
  t.false(verifyInclusion(-1, 3, r, [], r));
  t.false(verifyInclusion(0, 1.5, r, [], r));
});

test('the log refuses indices and sizes outside it', (t) => {
  const log = new MerkleLog();
  log.append(leaves.slice(0, 5));
  for (const call of [() => log.inclusionProof(5), () => log.inclusionProof(2, 2), () => log.rootAt(6), () => log.consistencyProof(3, 2), () => log.consistencyProof(1, 6), () => log.leafHash(-1), () => log.appendLeafHashes([new Uint8Array(31)])]) {
    t.is(t.throws(call, { instanceOf: ReceiptError })?.code, 'OUT_OF_RANGE');
  }
  t.is(log.size, 5, 'a refused append changes nothing');
  t.deepEqual(log.consistencyProof(0, 5), []);
  t.deepEqual(log.consistencyProof(5, 5), []);
});

test('the log agrees with the naive RFC 9162 tree for every size from 1 to 300', (t) => {
  const data = Array.from({ length: 300 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, 7));
  const log = new MerkleLog();
  log.append(data);
  const rebuilt = MerkleLog.fromLeafHashes(data.map(leafHash));
  for (let n = 1; n <= 300; n++) {
    const root = hex(mth(data, 0, n));
    if (hex(log.rootAt(n)) !== root || hex(rebuilt.rootAt(n)) !== root) return t.fail(`root of size ${n}`);
  }
  t.is(hex(log.root()), hex(mth(data)));
});

test('property: leaves appended in pending chunks over any earlier size give the naive tree of every size, and the log is untouched until commit', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 10 }), (chunks) => {
        const total = chunks.reduce((a, b) => a + b, 0);
        const data = Array.from({ length: total }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, 9));
        const log = new MerkleLog();
        let size = 0;
        for (const chunk of chunks) {
          const before = log.root();
          const pending = log.pending();
          for (let i = 0; i < chunk; i++) assert.equal(pending.push(leafHash(data[size + i] as Uint8Array)), size + i);
          assert.equal(log.size, size, 'pending leaves are not in the log');
          assert.deepEqual(log.root(), before);
          pending.commit();
          size += chunk;
          assert.equal(log.size, size);
          assert.equal(hex(log.root()), hex(mth(data, 0, size)));
        }
        for (let n = 1; n <= total; n++) assert.equal(hex(log.rootAt(n)), hex(mth(data, 0, n)), `root of size ${n}`);
      }),
      { seed, numRuns: 100 },
    ),
  );
});

test('pending leaves are refused once the log grew under them, or a second time, and the log stays as it was', (t) => {
  const log = new MerkleLog();
  log.append([Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)]);
  const pending = log.pending();
  pending.push(leafHash(Uint8Array.of(4)));
  log.append([Uint8Array.of(5)]);
  const root = log.root();
  t.like(t.throws(() => pending.commit(), { instanceOf: ReceiptError }), { code: 'INCONSISTENT' });
  t.is(log.size, 4);
  t.deepEqual(log.root(), root);
  const again = log.pending();
  again.push(leafHash(Uint8Array.of(6)));
  again.commit();
  t.like(t.throws(() => again.commit(), { instanceOf: ReceiptError }), { code: 'INCONSISTENT' });
  t.like(t.throws(() => again.push(leafHash(Uint8Array.of(7))), { instanceOf: ReceiptError }), { code: 'INCONSISTENT' });
  t.like(t.throws(() => log.pending().push(new Uint8Array(31)), { instanceOf: ReceiptError }), { code: 'OUT_OF_RANGE' });
  t.is(log.size, 5);
});

test('property: inclusion and consistency proofs equal the naive tree\'s and verify; tampered ones fail', (t) => {
  const seed = testSeed(t);
  const leafData = fc.uint8Array({ maxLength: 12 });
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((n) => fc.array(leafData, { minLength: n, maxLength: n })),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (data, mSeed, tamperAt, bit) => {
          const n = data.length;
          const log = new MerkleLog();
          const indices = log.append(data);
          if (indices.length !== n || indices[n - 1] !== n - 1) return false;
          const root = log.root();
          if (hex(root) !== hex(mth(data))) return false;
          for (let i = 0; i < n; i++) {
            const proof = log.inclusionProof(i);
            if (hexes(proof).join() !== hexes(path(i, data)).join()) return false;
            const leaf = leafHash(data[i] as Uint8Array);
            if (!verifyInclusion(i, n, leaf, proof, root)) return false;
            if (proof.length > 0) {
              if (verifyInclusion(i, n, leaf, flipped(proof, tamperAt % proof.length, (bit >> 3) % 32, bit % 8), root)) return false;
              if (verifyInclusion(i, n, leaf, proof.slice(1), root) || verifyInclusion(i, n, leaf, [...proof, root], root)) return false;
            }
          }
          const m = 1 + (mSeed % n);
          const proof = log.consistencyProof(m, n);
          const expected = m === n ? [] : subproof(m, data, true);
          if (hexes(proof).join() !== hexes(expected).join()) return false;
          const old = log.rootAt(m);
          if (!verifyConsistencyProof(m, n, old, root, proof)) return false;
          if (proof.length > 0) {
            if (verifyConsistencyProof(m, n, old, root, flipped(proof, tamperAt % proof.length, (bit >> 3) % 32, bit % 8))) return false;
            if (verifyConsistencyProof(m, n, old, root, proof.slice(0, -1))) return false;
            if (verifyConsistencyProof(m, n, root, old, proof)) return false;
          }
          // A proof between two earlier sizes of the same log, generated after it grew.
          const k = 1 + (tamperAt % m);
          return verifyConsistencyProof(k, m, log.rootAt(k), old, log.consistencyProof(k, m)) && hexes(log.consistencyProof(k, m)).join() === hexes(k === m ? [] : subproof(k, data, true, 0, m)).join();
        },
      ),
      { seed, numRuns: 60 },
    ),
  );
});

test('a log of 2^17 + 5 leaves proves leaves near its edges in few hashes, and rebuilds from its leaf hashes', (t) => {
  const n = 2 ** 17 + 5;
  const hashes = Array.from({ length: n }, (_, i) => leafHash(Uint8Array.of(i & 0xff, (i >> 8) & 0xff, i >> 16)));
  const log = MerkleLog.fromLeafHashes(hashes);
  t.is(log.size, n);
  const root = log.root();
  for (const i of [0, 1, 2 ** 16, 2 ** 17 - 1, 2 ** 17, n - 1]) {
    const proof = log.inclusionProof(i);
    t.true(proof.length <= 18, `leaf ${i}: ${proof.length} hashes`);
    t.true(verifyInclusion(i, n, hashes[i] as Uint8Array, proof, root), `leaf ${i}`);
  }
  for (const m of [1, 3, 2 ** 16, 2 ** 17, n - 1]) {
    t.true(verifyConsistencyProof(m, n, log.rootAt(m), root, log.consistencyProof(m)), `${m} → ${n}`);
  }
});
