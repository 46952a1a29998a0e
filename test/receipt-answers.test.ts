/**
 * What a cluster takes from a replica's answer to a receipt request: the checks that come before
 * any signature is verified, against answers a faulty replica could send. Every receipt here is
 * genuine and verifies; what is wrong is which receipt, or how many.
 */
import test from 'ava';
import { positionAnswer, receiptAnswer } from '../actors/receipt-answers.js';
import { receiptToJson, verifyReceipt, type Receipt } from '../protocols/receipts/index.js';
import { batch, execute, fixture, receiptsOf, registry } from './helpers/receipts.js';

const fx = fixture();
const batches = [batch(1, 3), batch(2, 2)];
const executed = execute(fx, batches);
const receipts = receiptsOf(fx, executed);
/** The receipts of position 1, then of position 2. */
const [one, two] = [receipts.slice(0, 3), receipts.slice(3)];
const text = (value: unknown): string => JSON.stringify(value);
const json = (r: Receipt): unknown => receiptToJson(r);

/** The receipt at `index` of `list` (present by construction). */
function at(list: readonly Receipt[], index: number): Receipt {
  const receipt = list[index];
  if (receipt === undefined) throw new RangeError(`no receipt at ${index}`);
  return receipt;
}

test('every receipt here verifies: the answers below are refused for what they claim, not for their signatures', (t) => {
  for (const r of receipts) t.true(verifyReceipt(r, fx.trust, registry).ok);
});

test('a receipt answer is taken only for the command asked for: its session, timestamp and payload', (t) => {
  const first = at(one, 0);
  const second = at(one, 1);
  const { client, clientTimestamp: timestamp } = first.body;
  const payload = batches[0]?.commands[0]?.payload;
  t.is(receiptAnswer(text(json(first)), { client, timestamp })?.receipt.body.batchIndex, 0);
  t.is(receiptAnswer(text(json(first)), { client, timestamp, ...(payload === undefined ? {} : { payload }) })?.receipt.body.batchIndex, 0);
  t.is(receiptAnswer(text(json(second)), { client, timestamp }), undefined, 'another command\'s receipt');
  t.is(receiptAnswer(text(json(first)), { client: `${client}-other`, timestamp }), undefined, 'another session at the same timestamp');
  t.is(receiptAnswer(text(json(first)), { client, timestamp: timestamp + 1 }), undefined, 'another timestamp of the session');
  t.is(receiptAnswer(text(json(first)), { client, timestamp, payload: Uint8Array.of(9) }), undefined, 'another payload');
  for (const junk of ['{', '[]', '{}', text({ ...(json(first) as object), body: 1 })]) t.is(receiptAnswer(junk, { client, timestamp }), undefined, junk);
  t.is(receiptAnswer(undefined, { client, timestamp }), undefined);
});

test('a position answer is the position\'s batch in order, or nothing', (t) => {
  const answer = positionAnswer(text(one.map(json)), 1);
  t.is(answer?.receipts.length, 3);
  t.deepEqual(positionAnswer(text([]), 1), { receipts: [], key: '' }, 'an empty answer is well formed; only agreement makes it true');
  t.is(positionAnswer(text(two.map(json)), 1), undefined, 'another position\'s receipts');
  t.is(positionAnswer(text([at(one, 1), at(one, 0), at(one, 2)].map(json)), 1), undefined, 'out of order');
  t.is(positionAnswer(text([at(one, 0), at(one, 0)].map(json)), 1), undefined, 'one receipt twice');
  t.is(positionAnswer(text([at(one, 1), at(one, 2)].map(json)), 1), undefined, 'a batch without its first');
  for (const junk of ['{', '{}', '"x"', text([1])]) t.is(positionAnswer(junk, 1), undefined, junk);
});

test('a batch cut short is well formed but keyed apart from the whole one', (t) => {
  const whole = positionAnswer(text(one.map(json)), 1);
  const short = positionAnswer(text(one.slice(0, 2).map(json)), 1);
  t.truthy(whole);
  t.truthy(short);
  t.not(whole?.key, short?.key);
  t.not(positionAnswer(text([]), 1)?.key, whole?.key);
});
