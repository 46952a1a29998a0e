/**
 * Filling a receipt log's gap from peers that may lie (actors/receipt-fill.ts): a position is taken
 * only when enough peers sent the same bodies for it.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agreedBodies } from '../actors/receipt-fill.js';
import { ReceiptJournal, type PositionBodies } from '../actors/receipt-journal.js';
import { ReplicaStore } from '../actors/replica-store.js';
import { encode, hashBytes } from '../protocols/consensus/index.js';
import { executed, stateAt } from './helpers/executed.js';
import type { LogContext, TreeHead } from '../protocols/receipts/index.js';

const context: LogContext = { cluster: 'c1', protocol: 'pbft', policy: 'classical' };

async function journal(t: ExecutionContext, node: number, onHead: (head: TreeHead) => void = () => undefined): Promise<ReceiptJournal> {
  const dir = await mkdtemp(join(tmpdir(), 'knhk-fill-'));
  const store = await ReplicaStore.open(dir, { clusterId: 'c1', nodeId: node, protocol: 'pbft', n: 4, stateMachine: 'knhk/kv' });
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return ReceiptJournal.open(store, context, onHead);
}

/** Bodies of positions 2 … 5 as a Byzantine peer might invent them: other commands, the same landing state. */
function forged(honest: readonly PositionBodies[]): PositionBodies[] {
  return honest.map((record) => ({ ...record, bodies: record.bodies.map((body) => ({ ...body, commandHash: hashBytes(Uint8Array.of(0xee, body.batchIndex)), client: 'mallory' })) }));
}

test('a position counts once enough answers agree on it byte for byte; answers that disagree, or do not decode, count for nothing', async (t) => {
  const peer = await journal(t, 0);
  for (let p = 1; p <= 5; p++) await peer.append(executed(p));
  const honest = peer.bodies(2, 5);
  const lie = forged(honest);
  t.deepEqual(agreedBodies([encode(honest)], 1), honest, 'one answer is enough where peers only crash');
  t.deepEqual(agreedBodies([encode(lie)], 2), [], 'one answer is not enough where one peer may lie');
  t.deepEqual(agreedBodies([encode(lie), encode(honest)], 2), []);
  t.deepEqual(agreedBodies([encode(lie), encode(honest), Uint8Array.of(0xc1), encode('not a list'), encode(honest)], 2), honest);
  t.deepEqual(agreedBodies([encode(honest.slice(0, 2)), encode(honest)], 2), honest.slice(0, 2), 'a peer that holds less agrees on what it holds');
  t.throws(() => agreedBodies([], 0), { instanceOf: RangeError });
});

test('a replica filled from a forging peer and two correct ones logs what the correct ones hold', async (t) => {
  const peer = await journal(t, 0);
  for (let p = 1; p <= 6; p++) await peer.append(executed(p));
  const heads: TreeHead[] = [];
  const lagging = await journal(t, 1, (head) => heads.push(head));
  await lagging.append(executed(1));
  lagging.skipTo(5, stateAt(5));
  await lagging.append(executed(6));
  const wanted = lagging.missing();
  if (wanted === undefined) return t.fail('no gap');
  const honest = encode(peer.bodies(wanted.from, wanted.to));
  const lie = encode(forged(peer.bodies(wanted.from, wanted.to)));
  t.true(await lagging.fill(lie), 'the journal alone cannot tell the forgery: it lands on the right state');
  // A second replica with the same gap, filled the way replicas now fill: by agreement.
  const careful = await journal(t, 2, () => undefined);
  await careful.append(executed(1));
  careful.skipTo(5, stateAt(5));
  await careful.append(executed(6));
  const answers = [lie];
  t.deepEqual(agreedBodies(answers, 2), [], 'the forger alone fills nothing');
  answers.push(honest);
  t.deepEqual(agreedBodies(answers, 2), [], 'nor does it with one correct peer disagreeing');
  answers.push(honest);
  t.true(await careful.fill(encode(agreedBodies(answers, 2))));
  t.true(careful.complete);
  t.is(careful.size, peer.size);
  t.deepEqual(careful.bodies(1, 6), peer.bodies(1, 6), 'the careful replica holds the correct bodies');
  t.notDeepEqual(lagging.bodies(2, 5), peer.bodies(2, 5), 'the replica that trusted one peer holds the forgery');
});
