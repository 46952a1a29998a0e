import test from 'ava';
import fc from 'fast-check';
import { SchemaError, t as s, type Infer } from '../runtime/index.js';
import { testSeed } from './helpers/seed.js';

const Vote = s.variants({
  prepare: { view: s.uint(), sequence: s.uint(), digest: s.bytes({ length: 32 }) },
  heartbeat: { term: s.uint(), note: s.optional(s.string({ maxLength: 8 })) },
});
type Vote = Infer<typeof Vote>;

test('variants accept each declared case and rebuild it', (t) => {
  const digest = new Uint8Array(32).fill(1);
  const parsed: Vote = Vote.parse({ type: 'prepare', view: 1, sequence: 2, digest });
  t.deepEqual(parsed, { type: 'prepare', view: 1, sequence: 2, digest });
  t.deepEqual(Vote.parse({ type: 'heartbeat', term: 3 }), { type: 'heartbeat', term: 3 });
  t.deepEqual(Vote.parse({ type: 'heartbeat', term: 3, note: 'hi' }), { type: 'heartbeat', term: 3, note: 'hi' });
});

test('unknown tags, unknown keys, wrong types and wrong lengths are schema errors with a path', (t) => {
  const digest = new Uint8Array(32);
  const cases: [unknown, string][] = [
    [{ type: 'commit', view: 1 }, '$'],
    [{ type: 'prepare', view: 1, sequence: 2, digest, extra: 1 }, '$.extra'],
    [{ type: 'prepare', view: -1, sequence: 2, digest }, '$.view'],
    [{ type: 'prepare', view: 1.5, sequence: 2, digest }, '$.view'],
    [{ type: 'prepare', view: 1, sequence: 2, digest: new Uint8Array(31) }, '$.digest'],
    [{ type: 'heartbeat', term: 1, note: 'much too long' }, '$.note'],
    [[1, 2], '$'],
    [null, '$'],
  ];
  for (const [value, path] of cases) {
    const error = t.throws(() => Vote.parse(value), { instanceOf: SchemaError });
    t.is(error?.path, path, JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length})` : v)));
  }
});

test('parsing never copies keys it does not know, including __proto__', (t) => {
  const hostile = JSON.parse('{"type":"heartbeat","term":1,"__proto__":{"polluted":true}}') as unknown;
  t.throws(() => Vote.parse(hostile), { instanceOf: SchemaError });
  t.is(({} as { polluted?: boolean }).polluted, undefined);
});

test('arrays and objects enforce their bounds', (t) => {
  const List = s.array(s.uint(10), { maxLength: 3 });
  t.deepEqual(List.parse([1, 2, 3]), [1, 2, 3]);
  t.throws(() => List.parse([1, 2, 3, 4]), { instanceOf: SchemaError });
  t.throws(() => List.parse([1, 11]), { instanceOf: SchemaError, message: /\$\[1\]/ });
  t.throws(() => s.object({ a: s.boolean() }).parse({}), { instanceOf: SchemaError });
  t.is(s.oneOf('a', 'b').parse('b'), 'b');
  t.throws(() => s.literal(3).parse(4), { instanceOf: SchemaError });
});

test('property: a schema accepts what it describes and parse is the identity on it', (t) => {
  const seed = testSeed(t);
  t.notThrows(() => fc.assert(
    fc.property(fc.nat(), fc.nat(), fc.uint8Array({ minLength: 32, maxLength: 32 }), (view, sequence, digest) => {
      const vote = { type: 'prepare' as const, view, sequence, digest };
      const parsed = Vote.parse(vote);
      return parsed.type === 'prepare' && parsed.view === view && parsed.sequence === sequence && parsed.digest === digest;
    }),
    { seed },
  ));
});
