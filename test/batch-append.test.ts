/**
 * A batch appended in steps (protocols/receipts/batch.ts): the same leaves and tree head as
 * appending it at once, whatever the steps, and a log untouched until the end.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { command, hashBytes } from '../protocols/consensus/index.js';
import { appendBatch, BatchAppend, MerkleLog, ReceiptError, type ExecutedBatch, type LogContext } from '../protocols/receipts/index.js';
import { testSeed } from './helpers/seed.js';

const context: LogContext = { cluster: 'c1', protocol: 'pbft', policy: 'hybrid' };

function batch(position: number, size: number): ExecutedBatch {
  return {
    position,
    view: 2,
    timestamp: 1_700_000_000_000 + position,
    commands: Array.from({ length: size }, (_, i) => command(`client-${i % 7}`, position * 1000 + i, Uint8Array.of(i & 0xff, position))),
    stateHashBefore: hashBytes(Uint8Array.of(position - 1)),
    stateHash: hashBytes(Uint8Array.of(position)),
  };
}

test('a batch appended in any steps gives the bodies, leaves and tree head of appending it at once (property)', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 8 }), (size, strides) => {
        const whole = new MerkleLog();
        const stepped = new MerkleLog();
        for (const log of [whole, stepped]) appendBatch(log, batch(1, 3), context);
        const expected = appendBatch(whole, batch(2, size), context);
        const append = new BatchAppend(stepped, batch(2, size), context);
        for (let i = 0; !append.done; i++) {
          append.advance(strides[i % strides.length] as number);
          assert.equal(stepped.size, 3, 'the log takes no leaf before the batch is finished');
        }
        assert.deepEqual(append.finish(), expected);
        assert.deepEqual(stepped.root(), whole.root());
      }),
      { seed, numRuns: 200 },
    ),
  );
});

test('finishing early, or after the log grew meanwhile, is refused and leaves the log as it was', (t) => {
  const log = new MerkleLog();
  const early = new BatchAppend(log, batch(1, 5), context);
  early.advance(4);
  t.like(t.throws(() => early.finish(), { instanceOf: ReceiptError }), { code: 'INCONSISTENT' });
  t.is(log.size, 0);

  const overtaken = new BatchAppend(log, batch(2, 5), context);
  overtaken.advance(5);
  appendBatch(log, batch(1, 2), context);
  const root = log.root();
  t.like(t.throws(() => overtaken.finish(), { instanceOf: ReceiptError }), { code: 'INCONSISTENT' });
  t.is(log.size, 2);
  t.deepEqual(log.root(), root);
});
