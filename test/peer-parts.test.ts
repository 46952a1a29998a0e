/**
 * Envelopes cut into parts between replicas (actors/peer-parts.ts): joined whole in order,
 * urgent and bulk ones interleaved, and anything out of order or cut wrong dropped without
 * holding more than a bounded number of envelopes per peer.
 */
import test from 'ava';
import { cutIntoParts, JOINING_PER_PEER, MAX_JOINED_BYTES, PART_BYTES, PartCutter, PartJoiner, peerPartSchema, type PeerPart } from '../actors/peer-parts.js';
import { MAX_STATE_BYTES } from '../protocols/consensus/index.js';
import { t as schema } from '../runtime/index.js';

function envelope(size: number, fill: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + fill) & 0xff;
  return bytes;
}

const joinAll = (joiner: PartJoiner, peer: string, parts: readonly PeerPart[]): Uint8Array[] => parts.flatMap((part) => joiner.accept(peer, part) ?? []);

test('an envelope that fits goes whole; a larger one in parts that join to the same bytes; one too large for any peer is not sent', (t) => {
  const small = envelope(PART_BYTES, 1);
  const whole = cutIntoParts(small, 0);
  t.deepEqual(whole.map((p) => [p.id, p.index, p.count]), [[0, 0, 1]]);
  t.is(whole[0]?.bytes, small, 'the envelope itself, not a copy');
  const large = envelope(2 * PART_BYTES + 5, 2);
  const parts = cutIntoParts(large, 7);
  t.deepEqual(parts.map((p) => [p.id, p.index, p.count, p.bytes.length]), [
    [7, 0, 3, PART_BYTES],
    [7, 1, 3, PART_BYTES],
    [7, 2, 3, 5],
  ]);
  const joined = joinAll(new PartJoiner(), 'replica-1', parts);
  t.is(joined.length, 1);
  t.is(Buffer.compare(joined[0] as Uint8Array, large), 0);
  t.deepEqual(cutIntoParts(new Uint8Array(MAX_JOINED_BYTES + 1), 0), []);
});

test('a replica numbers the envelopes it sends in parts, one id each, and counts those too large to send', (t) => {
  const cutter = new PartCutter();
  const sent = [envelope(PART_BYTES + 1, 1), envelope(10, 2), new Uint8Array(MAX_JOINED_BYTES + 1), envelope(3 * PART_BYTES, 4)].map((bytes) => cutter.cut(bytes));
  t.deepEqual(sent.map((parts) => parts.map((p) => [p.id, p.index, p.count])), [[[0, 0, 2], [0, 1, 2]], [[1, 0, 1]], [], [[1, 0, 3], [1, 1, 3], [1, 2, 3]]]);
  t.is(cutter.unsent, 1);
  const joiner = new PartJoiner();
  t.deepEqual(sent.flatMap((parts) => joinAll(joiner, 'replica-2', parts.length > 1 ? parts : [])).map((bytes) => bytes.length), [PART_BYTES + 1, 3 * PART_BYTES]);
});

test('the largest state a replica sends, with a MiB of certificate and envelope around it, goes in parts its peer takes and joins', (t) => {
  const wrapped = new Uint8Array(MAX_STATE_BYTES + PART_BYTES).fill(9);
  const parts = cutIntoParts(wrapped, 4);
  t.is(parts.length, MAX_STATE_BYTES / PART_BYTES + 1);
  const part = schema.object(peerPartSchema);
  t.true(parts.every((p) => part.parse(p) !== undefined), 'every part passes the schema of a part');
  t.is(joinAll(new PartJoiner(), 'replica-2', parts)[0]?.length, wrapped.length);
});

test('parts of an urgent envelope may overtake a bulk one of the same peer; peers do not mix', (t) => {
  const joiner = new PartJoiner();
  const bulk = cutIntoParts(envelope(PART_BYTES * 2 + 1, 3), 0);
  const urgent = cutIntoParts(envelope(PART_BYTES + 1, 4), 1);
  const other = cutIntoParts(envelope(PART_BYTES + 9, 5), 0);
  const order = [bulk[0], other[0], urgent[0], urgent[1], bulk[1], other[1], bulk[2]] as PeerPart[];
  const from = ['a', 'b', 'a', 'a', 'a', 'b', 'a'];
  const out = order.map((part, i) => joiner.accept(from[i] as string, part)?.length);
  t.deepEqual(out, [undefined, undefined, undefined, PART_BYTES + 1, undefined, PART_BYTES + 9, PART_BYTES * 2 + 1]);
});

test('a part out of order, of an unknown envelope or cut wrong ends its envelope; a peer that leaves envelopes unfinished holds at most a bounded number', (t) => {
  const parts = cutIntoParts(envelope(PART_BYTES * 3, 6), 0);
  const [p0, p1, p2] = parts as [PeerPart, PeerPart, PeerPart];
  const cases: [string, PeerPart[]][] = [
    ['a part skipped', [p0, p2]],
    ['a part twice', [p0, p1, p1, p2]],
    ['no first part', [p1, p2]],
    ['a short part before the last', [p0, { ...p1, bytes: p1.bytes.subarray(1) }, p2]],
    ['a part that disagrees on the count', [p0, { ...p1, count: 4 }, p2]],
    ['an index past the count', [p0, p1, { ...p2, index: 3 }]],
    ['an empty last part', [p0, p1, { ...p2, bytes: new Uint8Array() }]],
  ];
  for (const [what, sequence] of cases) t.deepEqual(joinAll(new PartJoiner(), 'a', sequence), [], what);
  const joiner = new PartJoiner();
  // Unfinished envelopes 0 … JOINING_PER_PEER: the first is dropped to make room, the others still join.
  const unfinished = Array.from({ length: JOINING_PER_PEER + 1 }, (_, id) => cutIntoParts(envelope(PART_BYTES + 1, id), id));
  for (const each of unfinished) t.is(joiner.accept('a', each[0] as PeerPart), undefined);
  t.is(joiner.accept('a', unfinished[0]?.[1] as PeerPart), undefined, 'the oldest was dropped');
  for (const each of unfinished.slice(1)) t.is(joiner.accept('a', each[1] as PeerPart)?.length, PART_BYTES + 1);
  const [again] = joinAll(joiner, 'a', parts);
  t.is(Buffer.compare(again ?? new Uint8Array(), envelope(PART_BYTES * 3, 6)), 0, 'and a first part starts over what a peer left unfinished');
});
