/**
 * The bounded map of recent entries (actors/recent-map.ts), against a model that remembers
 * everything: bounded size, the latest entries always there, never a value other than the latest.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecentMap } from '../actors/recent-map.js';
import { testSeed } from './helpers/seed.js';

type Op = { readonly kind: 'set'; readonly key: number; readonly value: number } | { readonly kind: 'delete'; readonly key: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 40 }), value: fc.integer() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 40 }) }) },
);

test('keeps the latest entries set, at most two generations of them, each with its latest value (property)', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 300, size: 'max' }), (generation, ops) => {
        const map = new RecentMap<number, number>(generation);
        const model = new Map<number, number>();
        /** Keys in the order they were last set (deleted ones too: a set that was deleted still moved older keys down). */
        let order: number[] = [];
        for (const each of ops) {
          if (each.kind === 'set') {
            map.set(each.key, each.value);
            model.set(each.key, each.value);
            order = [...order.filter((key) => key !== each.key), each.key];
          } else {
            const held = map.has(each.key);
            assert.equal(map.delete(each.key), held);
            assert.equal(map.has(each.key), false);
            model.delete(each.key);
          }
          assert.ok(map.size <= 2 * generation, `${map.size} entries with generations of ${generation}`);
          for (const key of order.slice(-generation)) assert.equal(map.get(key), model.get(key), `key ${key}, among the latest ${generation} set`);
          for (let key = 0; key <= 40; key++) {
            const held = map.get(key);
            if (held !== undefined) assert.equal(held, model.get(key), `key ${key} holds a value other than its latest`);
            assert.equal(map.has(key), held !== undefined);
          }
        }
      }),
      { seed, numRuns: 300 },
    ),
  );
});

test('a generation holds at least one entry', (t) => {
  for (const generation of [0, -1, 1.5, Number.NaN]) t.throws(() => new RecentMap(generation), { instanceOf: RangeError });
  const map = new RecentMap<string, number>(1);
  map.set('a', 1).set('b', 2).set('c', 3);
  t.is(map.get('c'), 3);
  t.is(map.get('a'), undefined);
  t.true(map.size <= 2);
  map.clear();
  t.is(map.size, 0);
});
