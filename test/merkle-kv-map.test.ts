/**
 * The key-value machine's map and state hash (protocols/consensus/merkle-kv-map.ts): its root is
 * the documented tree computed from scratch, whatever the history of writes, deletes and earlier
 * roots; and after a batch of writes it re-hashes O(writes · log keys), not the state.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { encode } from '../protocols/consensus/codec.js';
import { LEAF_KEYS, MerkleKvMap, byKey, slotOf } from '../protocols/consensus/merkle-kv-map.js';
import { testSeed } from './helpers/seed.js';

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};

/** The state hash as the file comment defines it, from the entries alone. */
function referenceRoot(state: ReadonlyMap<string, string>): string {
  const entries = [...state].map(([key, value]) => ({ slot: slotOf(key), entry: [key, value] as [string, string] }));
  const digest = (lo: number, hi: number, inside: typeof entries): Uint8Array => {
    if (hi - lo === 1 || inside.length <= LEAF_KEYS) return sha256(encode(inside.map((e) => e.entry).sort(byKey)));
    const mid = (lo + hi) / 2;
    return sha256(
      Uint8Array.of(0x01),
      digest(lo, mid, inside.filter((e) => e.slot < mid)),
      digest(mid, hi, inside.filter((e) => e.slot >= mid)),
    );
  };
  return Buffer.from(sha256(new TextEncoder().encode('knhk/kv-state/v4'), digest(0, 1 << 16, entries))).toString('hex');
}

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Keys that share one slot, so that a slot holds more than a leaf's worth. */
function sameSlotKeys(count: number): string[] {
  const bySlot = new Map<number, string[]>();
  for (let i = 0; ; i++) {
    const key = `crowd-${i}`;
    const keys = bySlot.get(slotOf(key)) ?? [];
    keys.push(key);
    bySlot.set(slotOf(key), keys);
    if (keys.length === count) return keys;
  }
}

type Op = { readonly kind: 'put'; readonly key: string; readonly value: string } | { readonly kind: 'delete'; readonly key: string } | { readonly kind: 'root' };

test('the root is the documented tree over the entries, whatever the history (property)', (t) => {
  const seed = testSeed(t);
  const crowd = sameSlotKeys(LEAF_KEYS + 3);
  // Few distinct keys make deletes and overwrites frequent; hundreds make interior nodes; the crowd fills one slot past a leaf.
  const key = fc.oneof(fc.integer({ min: 0, max: 30 }).map((i) => `k${i}`), fc.integer({ min: 0, max: 2000 }).map((i) => `wide-${i}`), fc.constantFrom(...crowd));
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value: fc.string({ maxLength: 6 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('root' as const) }) },
  );
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const map = new MerkleKvMap();
        const model = new Map<string, string>();
        for (const each of ops) {
          if (each.kind === 'put') {
            map.set(each.key, each.value);
            model.set(each.key, each.value);
          } else if (each.kind === 'delete') {
            assert.equal(map.delete(each.key), model.delete(each.key));
          } else {
            assert.equal(hexOf(map.root()), referenceRoot(model));
          }
          assert.equal(map.size, model.size);
        }
        assert.equal(hexOf(map.root()), referenceRoot(model));
        for (const [k, v] of model) assert.equal(map.get(k), v);
        assert.deepEqual([...map.entries()].sort(byKey), [...model].sort(byKey));
        const fresh = new MerkleKvMap();
        for (const [k, v] of [...model].reverse()) fresh.set(k, v);
        assert.equal(hexOf(fresh.root()), hexOf(map.root()), 'the same entries inserted in another order');
        assert.deepEqual([...fresh.entries()], [...map.entries()], 'and listed in the same order');
      }),
      { seed, numRuns: 150 },
    ),
  );
});

test('a batch of writes re-hashes its leaves and their paths, not the state', (t) => {
  const map = new MerkleKvMap();
  for (let i = 0; i < 100_000; i++) map.set(`key-${i}`, 'value');
  map.root();
  t.true(map.lastWork.leaves > 100_000 / LEAF_KEYS, 'the first root hashes every leaf');
  const writes = 512;
  for (let i = 0; i < writes; i++) map.set(`key-${(i * 7919) % 100_000}`, 'changed');
  const before = hexOf(map.root());
  const { leaves, nodes } = map.lastWork;
  t.true(leaves <= writes, `${leaves} leaves re-hashed for ${writes} writes`);
  t.true(nodes <= writes * 16 + 1, `${nodes} nodes re-hashed for ${writes} writes`);
  t.is(hexOf(map.root()), before, 'a root asked again is the same, and costs nothing');
});

test('changing, adding or removing one entry changes the root; undoing it restores it', (t) => {
  const map = new MerkleKvMap();
  for (let i = 0; i < 500; i++) map.set(`k${i}`, `v${i}`);
  const base = hexOf(map.root());
  map.set('k7', 'other');
  const changed = hexOf(map.root());
  map.set('k7', 'v7');
  t.is(hexOf(map.root()), base);
  map.set('extra', '');
  const added = hexOf(map.root());
  t.true(map.delete('extra'));
  t.false(map.delete('extra'));
  t.is(hexOf(map.root()), base);
  t.is(new Set([base, changed, added]).size, 3);
  map.clear();
  t.is(map.size, 0);
  t.is(hexOf(map.root()), referenceRoot(new Map()));
});

test('a subtree of exactly a leaf of keys is one leaf, one more splits it', (t) => {
  for (const size of [LEAF_KEYS - 1, LEAF_KEYS, LEAF_KEYS + 1]) {
    const map = new MerkleKvMap();
    const model = new Map<string, string>();
    for (let i = 0; i < size; i++) {
      map.set(`edge-${i}`, String(i));
      model.set(`edge-${i}`, String(i));
    }
    t.is(hexOf(map.root()), referenceRoot(model), `${size} keys`);
    t.is(map.lastWork.nodes === 0, size <= LEAF_KEYS, `${size} keys: ${map.lastWork.nodes} interior nodes`);
  }
});
