/**
 * A replica's receipt log: durable across restarts, and a gap left by state transfer filled from
 * a peer's bodies — only with bodies that fit.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiptJournal } from '../actors/receipt-journal.js';
import { fromRecord, toRecord } from '../actors/receipt-record.js';
import { ReplicaStore, StorageError } from '../actors/replica-store.js';
import { command, encode, type AppliedEntry } from '../protocols/consensus/index.js';
import { executed, stateAt } from './helpers/executed.js';
import { appendBatch, encodeReceiptBody, MerkleLog, type LogContext, type TreeHead } from '../protocols/receipts/index.js';

const context: LogContext = { cluster: 'c1', protocol: 'pbft', policy: 'classical' };

async function store(t: ExecutionContext, node: number): Promise<ReplicaStore> {
  const dir = await mkdtemp(join(tmpdir(), 'knhk-journal-'));
  const opened = await ReplicaStore.open(dir, { clusterId: 'c1', nodeId: node, protocol: 'pbft', n: 4, stateMachine: 'knhk/kv' });
  t.teardown(async () => {
    await opened.close();
    await rm(dir, { recursive: true, force: true });
  });
  return opened;
}

test('a journal offers a tree head per position, keeps its bodies, and rebuilds the same log from its store', async (t) => {
  const s = await store(t, 0);
  const heads: TreeHead[] = [];
  const journal = await ReceiptJournal.open(s, context, (head) => heads.push(head));
  await Promise.all([1, 2, 3].map((p) => journal.append(executed(p))));
  t.deepEqual(heads.map((h) => [h.sequence, h.size]), [[1, 2], [2, 4], [3, 6]]);
  t.is(journal.positionOf('bob', 2), 2);
  const reopened = await ReceiptJournal.open(s, context, () => t.fail('no head for positions already in the log'));
  t.is(reopened.size, 6);
  await reopened.append(executed(3));
  t.true(reopened.complete);
});

test('a large batch is hashed over several turns of the event loop, each measured, and logged as if at once', async (t) => {
  const s = await store(t, 0);
  const heads: TreeHead[] = [];
  let pieces = 0;
  const journal = await ReceiptJournal.open(s, context, (head) => heads.push(head), {
    measure: (work) => {
      pieces++;
      return work();
    },
  });
  // 20 000 leaves take tens of milliseconds to hash on any machine; a stretch lasts half a millisecond.
  const large: AppliedEntry = { ...executed(1), commands: Array.from({ length: 20_000 }, (_, i) => command(`client-${i % 50}`, i + 1, Uint8Array.of(i & 0xff))) };
  let piecesAtTurn = -1;
  const appended = journal.append(large);
  setImmediate(() => {
    piecesAtTurn = pieces;
  });
  await appended;
  // Besides the hashing: one piece appends to the log and the store, one reports the tree head.
  t.true(piecesAtTurn >= 1 && piecesAtTurn < pieces - 2, `the event loop turned while leaves were being hashed (after piece ${piecesAtTurn} of ${pieces})`);
  const expected = appendBatch(new MerkleLog(), large, context).treeHead;
  t.deepEqual(heads, [expected]);
  t.deepEqual((await ReceiptJournal.open(s, context, () => undefined)).size, 20_000);
});

test('closing a journal drops the batch it is hashing, as a crash would, and appends nothing after', async (t) => {
  const s = await store(t, 0);
  const heads: TreeHead[] = [];
  const journal = await ReceiptJournal.open(s, context, (head) => heads.push(head));
  await journal.append(executed(1));
  const large: AppliedEntry = { ...executed(2), commands: Array.from({ length: 20_000 }, (_, i) => command(`client-${i % 50}`, i + 1, Uint8Array.of(i & 0xff))) };
  const appended = journal.append(large);
  await journal.close();
  await appended;
  await journal.append(executed(3));
  t.deepEqual(heads.map((h) => h.sequence), [1]);
  t.is((await ReceiptJournal.open(s, context, () => undefined)).size, 2, 'the store holds position 1 only');
});

test('a gap left by state transfer is filled from a peer, checked against the state it landed on', async (t) => {
  const peer = await ReceiptJournal.open(await store(t, 0), context, () => undefined);
  for (let p = 1; p <= 6; p++) await peer.append(executed(p));
  const heads: TreeHead[] = [];
  const lagging = await ReceiptJournal.open(await store(t, 1), context, (head) => heads.push(head));
  await lagging.append(executed(1));
  lagging.skipTo(5, stateAt(5));
  await lagging.append(executed(6));
  t.false(lagging.complete);
  t.deepEqual(lagging.missing(), { from: 2, to: 5 });
  t.is(heads.length, 1, 'no head is offered while the log has a hole');

  // Bodies that do not fit change nothing: wrong positions, another cluster, a different landing state.
  t.false(await lagging.fill(encode(peer.bodies(3, 5))));
  t.false(await lagging.fill(encode(peer.bodies(2, 5).map((r) => ({ ...r, bodies: r.bodies.map((b) => ({ ...b, cluster: 'c2' })) })))));
  const forged = peer.bodies(2, 5);
  const last = forged[forged.length - 1];
  if (last !== undefined) forged[forged.length - 1] = { ...last, bodies: last.bodies.map((b) => ({ ...b, stateHashAfter: stateAt(99) })) };
  t.false(await lagging.fill(encode(forged)));
  // Bodies of one position that disagree on what they share are not a position this log built.
  const mixed = peer.bodies(2, 5).map((r, i) => (i === 1 ? { ...r, bodies: r.bodies.map((b, j) => (j === 1 ? { ...b, view: 7 } : b)) } : r));
  t.false(await lagging.fill(encode(mixed)));
  t.false(await lagging.fill(encode(peer.bodies(2, 5).map((r) => ({ ...r, bodies: r.bodies.map((b) => ({ ...b, protocol: 'raft' })) })))));
  // Fields of the wrong shape would be stored as a record no later open could read.
  t.false(await lagging.fill(encode(peer.bodies(2, 5).map((r) => ({ ...r, bodies: r.bodies.map((b) => ({ ...b, commandHash: new Uint8Array(31) })) })))));
  t.false(await lagging.fill(encode(peer.bodies(2, 5).map((r) => ({ ...r, bodies: r.bodies.map((b) => ({ ...b, clientTimestamp: -1 })) })))));
  t.false(await lagging.fill(Uint8Array.of(0xc1)));
  t.false(lagging.complete);

  t.true(await lagging.fill(encode(peer.bodies(2, 5))));
  t.true(lagging.complete);
  t.is(lagging.size, peer.size);
  t.deepEqual(heads.map((h) => h.sequence), [1, 6], 'the position held back is appended once the gap is filled');
  t.is(heads[1]?.size, 12, 'the head after the fill covers every command of positions 1 to 6');
  t.is(lagging.positionOf('alice', 4), 4);
});

test('a state transfer further ahead while a fill is being written leaves a gap of its own: the fill does not close it', async (t) => {
  const peerHeads: TreeHead[] = [];
  const peer = await ReceiptJournal.open(await store(t, 0), context, (head) => peerHeads.push(head));
  for (let p = 1; p <= 9; p++) await peer.append(executed(p));
  const heads: TreeHead[] = [];
  const lagging = await ReceiptJournal.open(await store(t, 1), context, (head) => heads.push(head));
  await lagging.append(executed(1));
  lagging.skipTo(5, stateAt(5));
  const filling = lagging.fill(encode(peer.bodies(2, 5)));
  lagging.skipTo(8, stateAt(8));
  const ninth = lagging.append(executed(9));
  t.true(await filling);
  t.false(lagging.complete, 'positions 6 to 8 are still missing');
  t.deepEqual(lagging.missing(), { from: 6, to: 8 });
  t.deepEqual(heads.map((h) => h.sequence), [1]);
  t.true(await lagging.fill(encode(peer.bodies(6, 8))));
  await ninth;
  t.true(lagging.complete);
  const [, last] = heads;
  t.is(last?.sequence, 9);
  t.is(last?.size, peer.size, 'the head of position 9 covers every command before it');
  t.deepEqual(last?.root, peerHeads[8]?.root, 'the same log as the peer');
  t.deepEqual(lagging.bodies(9, 9), peer.bodies(9, 9));
});

test('positions stored after a missing one (writes lost with a killed thread) are dropped when the journal opens', async (t) => {
  const s = await store(t, 2);
  const source = await ReceiptJournal.open(await store(t, 3), context, () => undefined);
  for (let p = 1; p <= 4; p++) await source.append(executed(p));
  for (const record of [...source.bodies(1, 2), ...source.bodies(4, 4)]) await s.putReceipts(record.position, toRecord(record.bodies));
  const journal = await ReceiptJournal.open(s, context, () => undefined);
  t.is(journal.size, 4, 'positions 1 and 2, two commands each');
  t.is(s.receipts(4), undefined, 'the stranded position is gone from the store');
  await journal.append(executed(3));
  await journal.append(executed(4));
  t.is(journal.size, 8);
});

test('a position\'s bodies are stored once per shared fact and read back byte for byte', async (t) => {
  const bodies = appendBatch(new MerkleLog(), { ...executed(3), commands: Array.from({ length: 100 }, (_, i) => command(`cluster-0-${i}`, 7, Uint8Array.of(i))) }, context).bodies;
  const record = toRecord(bodies);
  const back = fromRecord(record, 3, context);
  t.deepEqual(back.map((b) => [...encodeReceiptBody(b)]), bodies.map((b) => [...encodeReceiptBody(b)]), 'the same canonical bodies, so the same leaves');
  const perCommand = encode(record).length / bodies.length;
  t.true(perCommand < 60, `about 50 bytes a command (${perCommand.toFixed(1)}), not the ${(encode({ bodies }).length / bodies.length).toFixed(0)} of whole bodies`);
  t.deepEqual(fromRecord(toRecord([]), 4, context), [], 'a position without commands');
});

test('the log rebuilt from compact records has the same root, and a damaged or foreign-format record is refused', async (t) => {
  const original = await ReceiptJournal.open(await store(t, 5), context, () => undefined);
  const heads: TreeHead[] = [];
  const collect = (head: TreeHead): void => void heads.push(head);
  const whole = await ReceiptJournal.open(await store(t, 6), context, collect);
  const s = await store(t, 7);
  const first = await ReceiptJournal.open(s, context, () => undefined);
  for (let p = 1; p <= 3; p++) {
    await whole.append(executed(p));
    await first.append(executed(p));
    await original.append(executed(p));
  }
  await whole.append(executed(4));
  const rebuilt: TreeHead[] = [];
  const reopened = await ReceiptJournal.open(s, context, (head) => rebuilt.push(head));
  await reopened.append(executed(4));
  t.deepEqual([...(rebuilt[0]?.root ?? [])], [...(heads[3]?.root ?? [0])], 'the head after position 4 is the one a journal that never restarted made');

  const bodies = original.bodies(3, 3)[0]?.bodies ?? [];
  // Whole bodies (the format before compact records), then lists of different lengths.
  for (const damaged of [{ bodies }, { ...toRecord(bodies), timestamps: [1] }]) {
    await s.putReceipts(4, damaged);
    const error = await t.throwsAsync(ReceiptJournal.open(s, context, () => undefined), { instanceOf: StorageError });
    t.is(error?.code, 'STORAGE_CORRUPT');
    t.regex(error?.message ?? '', /position 4/);
  }
});
