/**
 * The key-value machine's map and state hash (protocols/consensus/merkle-kv-map.ts): its root is
 * the documented tree computed from scratch, whatever the history of writes, deletes and earlier
 * roots; and after a batch of writes it re-hashes O(writes · log keys), not the state.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ConsensusError, KvStateMachine } from '../protocols/consensus/index.js';
import { encode } from '../protocols/consensus/codec.js';
import { LEAF_KEYS, MerkleKvMap, slotOf, type FrozenKvMap, type SlotChange } from '../protocols/consensus/merkle-kv-map.js';
import { testSeed } from './helpers/seed.js';

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};

/** The slot function as the file comment defines it, written again here. */
function referenceSlot(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return ((h ^ (h >>> 16)) & 0xffff) >>> 0;
}

/** The state hash as the file comment defines it, from the entries alone: a leaf holds at most 16 keys. */
function referenceRoot(state: ReadonlyMap<string, string>): string {
  const entries = [...state].map(([key, value]) => ({ slot: referenceSlot(key), entry: [key, value] as [string, string] }));
  const order = (a: { entry: [string, string] }, b: { entry: [string, string] }): number => (a.entry[0] < b.entry[0] ? -1 : a.entry[0] > b.entry[0] ? 1 : 0);
  const digest = (lo: number, hi: number, inside: typeof entries): Uint8Array => {
    if (hi - lo === 1 || inside.length <= 16) return sha256(encode([...inside].sort(order).map((e) => e.entry)));
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

type ViewOp = Op | { readonly kind: 'freeze' } | { readonly kind: 'restore' };

/** Applies a put or a delete to the map and to its model alike; false for any other operation. */
function write(map: MerkleKvMap, model: Map<string, string>, op: ViewOp): boolean {
  if (op.kind === 'put') {
    map.set(op.key, op.value);
    model.set(op.key, op.value);
    return true;
  }
  if (op.kind !== 'delete') return false;
  assert.equal(map.delete(op.key), model.delete(op.key));
  return true;
}

/**
 * Puts, deletes and roots: few distinct keys make deletes and overwrites frequent, hundreds make
 * interior nodes, and a crowd of keys fills one slot past a leaf.
 */
function writes(weights: { readonly put: number; readonly delete: number }): fc.WeightedArbitrary<Op>[] {
  const crowd = sameSlotKeys(LEAF_KEYS + 3);
  const key = fc.oneof(fc.integer({ min: 0, max: 30 }).map((i) => `k${i}`), fc.integer({ min: 0, max: 2000 }).map((i) => `wide-${i}`), fc.constantFrom(...crowd));
  return [
    { weight: weights.put, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value: fc.string({ maxLength: 6 }) }) },
    { weight: weights.delete, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('root' as const) }) },
  ];
}

test('the root is the documented tree over the entries, whatever the history (property)', (t) => {
  const seed = testSeed(t);
  const op: fc.Arbitrary<Op> = fc.oneof(...writes({ put: 6, delete: 2 }));
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(op, { minLength: 100, maxLength: 400, size: 'max' }), (ops) => {
        const map = new MerkleKvMap();
        const model = new Map<string, string>();
        for (const each of ops) {
          if (!write(map, model, each)) assert.equal(hexOf(map.root()), referenceRoot(model));
          assert.equal(map.size, model.size);
        }
        assert.equal(hexOf(map.root()), referenceRoot(model));
        for (const [k, v] of model) assert.equal(map.get(k), v);
        assert.deepEqual(new Map(map.entries()), model);
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

test('pinned values, computed by a separate implementation of the definition (Python, hashlib)', (t) => {
  t.is(LEAF_KEYS, 16);
  t.deepEqual([slotOf(''), slotOf('a'), slotOf('ключ'), slotOf('🔑')], [7385, 52512, 47387, 64086]);
  t.is(hexOf(new MerkleKvMap().root()), 'efe6a7ef26324416efa0188db3a6dda2841b5672f78e4ddd14b36bc71d5b2993');
  const one = new MerkleKvMap();
  one.set('a', 'b');
  t.is(hexOf(one.root()), '64dd479157e156739d6d82bba5f7b0a783c148374ef3a5efd70dd87422a85e3f');
  const seventeen = new MerkleKvMap();
  for (let i = 0; i <= 16; i++) seventeen.set(`k${i}`, 'v');
  t.is(hexOf(seventeen.root()), '32c8709e61f004e316202024c88001a0b6fb8bac80d609123ed856a0f6c1d466');
});

test('a subtree that turns from interior node into leaf and back is hashed as what it is now', (t) => {
  const map = new MerkleKvMap();
  const model = new Map<string, string>();
  const put = (k: string, v: string): void => {
    map.set(k, v);
    model.set(k, v);
  };
  for (let i = 0; i <= LEAF_KEYS; i++) put(`s${i}`, 'v');
  t.is(hexOf(map.root()), referenceRoot(model), 'seventeen keys: an interior root');
  map.delete('s0');
  model.delete('s0');
  t.is(hexOf(map.root()), referenceRoot(model), 'sixteen: one leaf');
  put('s5', 'edited');
  t.is(hexOf(map.root()), referenceRoot(model), 'an edit inside the leaf');
  put('s0', 'back');
  t.is(hexOf(map.root()), referenceRoot(model), 'seventeen again: split as before, with the edit');
});

test('text a snapshot could not carry is refused, and a snapshot out of canonical order or repeating a key is corrupt', (t) => {
  const map = new MerkleKvMap();
  for (const [key, value] of [['\uD800', 'v'], ['k', 'x\uDFFF']]) {
    t.is(t.throws(() => map.set(key as string, value as string), { instanceOf: ConsensusError })?.code, 'INVALID_ENTRY');
  }
  t.is(map.size, 0);
  const ordered = Array.from({ length: 40 }, (_, i): [string, string] => [`r${i}`, 'v']).sort(([a], [b]) => slotOf(a) - slotOf(b) || (a < b ? -1 : 1));
  const canonical = new KvStateMachine();
  canonical.restore(encode(ordered));
  t.is(canonical.size, 40);
  const kv = new KvStateMachine();
  for (const [name, entries] of [
    ['a repeated key', [...ordered, ordered[ordered.length - 1]]],
    ['two entries swapped', [ordered[1], ordered[0], ...ordered.slice(2)]],
  ] as const) {
    t.is(t.throws(() => kv.restore(encode(entries)), { instanceOf: ConsensusError }, name)?.code, 'CORRUPT_STATE', name);
  }
  const again = new KvStateMachine();
  again.restore(canonical.snapshot());
  t.deepEqual(again.snapshot(), canonical.snapshot(), 'a snapshot restores to the same bytes');
  t.deepEqual(hexOf(again.hash()), hexOf(canonical.hash()));
});


test('a frozen view keeps its entries and root while the map is written, and the changes between two views turn the older into the newer (property)', (t) => {
  const seed = testSeed(t);
  const op: fc.Arbitrary<ViewOp> = fc.oneof<(fc.Arbitrary<ViewOp> | fc.WeightedArbitrary<ViewOp>)[]>(
    ...writes({ put: 8, delete: 3 }),
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('freeze' as const) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'restore' as const }) },
  );
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 400, size: 'max' }), (ops) => {
        const map = new MerkleKvMap();
        const model = new Map<string, string>();
        // Each view with the model at its freeze and how many restores came before it.
        const views: { view: FrozenKvMap; model: Map<string, string>; restores: number }[] = [];
        let restores = 0;
        for (const each of ops) {
          if (write(map, model, each)) continue;
          if (each.kind === 'root') {
            map.root();
          } else if (each.kind === 'freeze') {
            views.push({ view: map.freeze(), model: new Map(model), restores });
          } else {
            map.restore(map.entries());
            restores++;
          }
        }
        views.push({ view: map.freeze(), model: new Map(model), restores });
        for (const { view, model: then } of views) {
          assert.equal(hexOf(view.root), referenceRoot(then), 'a view hashes as the map did at its freeze');
          assert.equal(view.size, then.size);
          assert.deepEqual(new Map(view.entries()), then, 'and lists what the map held then');
        }
        for (let i = 0; i < views.length; i++) {
          for (let j = i; j < views.length; j++) {
            const older = views[i] as (typeof views)[number];
            const newer = views[j] as (typeof views)[number];
            const changes = newer.view.changesSince(older.view);
            assert.equal(changes === undefined, older.restores !== newer.restores, 'changes are known unless a restore came between');
            if (i < j) assert.equal(older.view.changesSince(newer.view), undefined, 'nor from a later view to an earlier one');
            if (changes === undefined) continue;
            const replica = new MerkleKvMap();
            replica.restore(older.view.entries());
            replica.replaceSlots(changes);
            assert.equal(hexOf(replica.root()), hexOf(newer.view.root), `view ${i} plus the changes to view ${j} hashes as view ${j}`);
            assert.deepEqual(replica.entries(), newer.view.entries(), 'and lists the same entries in the same order');
          }
        }
      }),
      { seed, numRuns: 60 },
    ),
  );
});

test('the changes between two views name only the slots written in between, and changes that do not fit the map are corrupt', (t) => {
  const map = new MerkleKvMap();
  for (let i = 0; i < 10_000; i++) map.set(`key-${i}`, 'value');
  const before = map.freeze();
  for (let i = 0; i < 20; i++) map.set(`key-${i * 37}`, 'changed');
  map.delete('key-1');
  const after = map.freeze();
  const changes = after.changesSince(before) ?? [];
  const written = new Set([...Array.from({ length: 20 }, (_, i) => slotOf(`key-${i * 37}`)), slotOf('key-1')]);
  t.deepEqual(changes.map((c) => c.slot), [...written].sort((a, b) => a - b));
  t.deepEqual(after.changesSince(after), [], 'a view has no changes from itself');
  t.is(new Map(before.entries()).get('key-37'), 'value', 'the older view still holds what it held');
  t.is(new Map(before.entries()).get('key-1'), 'value');
  const corrupt: [string, SlotChange<readonly unknown[]>[]][] = [
    ['slots out of order', [...changes].reverse()],
    ['a slot out of range', [{ slot: 1 << 16, entries: [] }]],
    ['a key in the wrong slot', [{ slot: (slotOf('key-5') + 1) % (1 << 16), entries: [['key-5', 'v']] }]],
    ['a key twice', [{ slot: slotOf('key-5'), entries: [['key-5', 'v'], ['key-5', 'w']] }]],
    ['an entry that is not a pair', [{ slot: slotOf('key-5'), entries: [['key-5']] }]],
    ['a key that is not text', [{ slot: slotOf('key-5'), entries: [[5, 'v']] }]],
  ];
  for (const [what, bad] of corrupt) {
    const target = new MerkleKvMap();
    target.restore(before.entries());
    t.is(t.throws(() => target.replaceSlots(bad), { instanceOf: ConsensusError }, what)?.code, 'CORRUPT_STATE', what);
  }
});
