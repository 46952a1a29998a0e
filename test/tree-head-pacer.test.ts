/**
 * When a replica signs its tree heads (actors/tree-head-pacer.ts), on a virtual clock: the
 * schedule's picks at once, the last head once execution pauses, and no head in between.
 */
import test from 'ava';
import { VirtualClock } from '../runtime/index.js';
import { TreeHeadSchedule, type TreeHead } from '../protocols/receipts/index.js';
import { TreeHeadPacer } from '../actors/tree-head-pacer.js';

const PERIOD = 1000;
const IDLE = 20;

function pacer(): { clock: VirtualClock; pacer: TreeHeadPacer; signed: { sequence: number; at: number }[] } {
  const clock = new VirtualClock();
  const signed: { sequence: number; at: number }[] = [];
  return { clock, signed, pacer: new TreeHeadPacer(new TreeHeadSchedule(PERIOD, IDLE), clock, (head) => signed.push({ sequence: head.sequence, at: clock.now() })) };
}

/** The head after position `sequence`, agreed at `timestamp`. */
const head = (sequence: number, timestamp: number): TreeHead => ({ version: 1, cluster: 'c', size: sequence, root: new Uint8Array(32), sequence, view: 0, timestamp, policy: 'classical' });

test('the first head of a window is signed at once; a lone head in a window already signed, once execution has paused for the idle minimum', (t) => {
  const { clock, pacer: p, signed } = pacer();
  p.executed(head(1, 10_000));
  t.deepEqual(signed, [{ sequence: 1, at: 0 }]);
  clock.advance(5000);
  p.executed(head(2, 10_500));
  clock.advance(IDLE - 1);
  t.is(signed.length, 1);
  clock.advance(1);
  t.deepEqual(signed[1], { sequence: 2, at: 5000 + IDLE });
});

test('under load, heads 300 ms apart are signed once per window, and the last one after the load stops', (t) => {
  const { clock, pacer: p, signed } = pacer();
  // The last head, agreed at 16 300, is not the first of its window.
  for (let i = 1; i <= 21; i++) {
    p.executed(head(i, 10_000 + i * 300));
    clock.advance(300);
  }
  const windows = new Set(Array.from({ length: 21 }, (_, i) => Math.floor((10_000 + (i + 1) * 300) / PERIOD)));
  t.is(signed.length, windows.size, 'one head per window of agreed time, none as a pause between two of them');
  clock.advance(PERIOD);
  t.is(signed.at(-1)?.sequence, 21, 'the last head, once execution paused');
  t.is(signed.length, windows.size + 1);
});

test('a client that waits for each receipt before its next command gets each within the idle minimum, however many it sends', (t) => {
  const { clock, pacer: p, signed } = pacer();
  // The first head is the window's; the second, 50 ms later, waits out twice that gap.
  p.executed(head(1, 10_000));
  clock.advance(50);
  p.executed(head(2, 10_002));
  clock.advance(100);
  t.deepEqual(signed.at(-1), { sequence: 2, at: 150 });
  for (let i = 3; i <= 40; i++) {
    clock.advance(50);
    const executedAt = clock.now();
    p.executed(head(i, 10_000 + i));
    clock.advance(IDLE);
    t.deepEqual(signed.at(-1), { sequence: i, at: executedAt + IDLE }, `head ${i}`);
  }
});

test('stop cancels the signature a pause would make', (t) => {
  const { clock, pacer: p, signed } = pacer();
  p.executed(head(1, 10_000));
  p.executed(head(2, 10_001));
  p.stop();
  clock.advance(PERIOD);
  t.deepEqual(signed.map((s) => s.sequence), [1]);
  t.is(clock.pending, 0);
});
