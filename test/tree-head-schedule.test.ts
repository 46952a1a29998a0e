/**
 * The schedule of tree heads a replica signs under load (protocols/receipts/signing-schedule.ts):
 * one per window of agreed time, the same positions at every replica.
 */
import test from 'ava';
import fc from 'fast-check';
import { TreeHeadSchedule } from '../protocols/receipts/index.js';
import { testSeed } from './helpers/seed.js';

/** The positions (indices into `timestamps`) whose heads a fresh schedule signs. */
function signed(periodMs: number, timestamps: readonly number[]): number[] {
  const schedule = new TreeHeadSchedule(periodMs);
  return timestamps.flatMap((timestamp, position) => (schedule.due({ timestamp }) ? [position] : []));
}

test('the first head of each window is signed, and no other', (t) => {
  t.deepEqual(signed(1000, [5_000, 5_400, 5_999, 6_000, 6_001, 9_500, 9_600, 10_000]), [0, 3, 5, 7]);
});

test('a timestamp behind one already seen starts no window', (t) => {
  // A new PBFT primary's clock a little behind the old one's: 6 100 re-enters window 6 after 7 000.
  t.deepEqual(signed(1000, [6_500, 7_000, 6_100, 7_200, 8_000]), [0, 1, 4]);
});

test('a run of one command per position signs one head per window, not one per few positions', (t) => {
  // Raft at 2 000 commands/s for 3 s: 6 000 positions, 3 or 4 windows.
  const timestamps = Array.from({ length: 6000 }, (_, i) => 1_000_000 + i / 2);
  t.deepEqual(signed(1000, timestamps), [0, 2000, 4000]);
});

test('property: replicas that execute the same log sign the same positions: the first of each new window, at most one per window', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.array(fc.integer({ min: 0, max: 50_000 }), { maxLength: 300, size: 'max' }), (periodMs, timestamps) => {
        const first = signed(periodMs, timestamps);
        const second = signed(periodMs, timestamps);
        const windowOf = (position: number): number => Math.floor((timestamps[position] as number) / periodMs);
        const windows = first.map(windowOf);
        // A head left unsigned is in a window some earlier head already reached.
        const skippedOnlyInSeenWindows = timestamps.every((_, p) => first.includes(p) || Array.from({ length: p }, (_, q) => windowOf(q)).some((w) => w >= windowOf(p)));
        return (
          JSON.stringify(first) === JSON.stringify(second) &&
          skippedOnlyInSeenWindows &&
          new Set(windows).size === windows.length &&
          windows.every((w, i) => i === 0 || w > (windows[i - 1] as number)) &&
          (timestamps.length === 0 || first[0] === 0)
        );
      }),
      { seed, numRuns: 300 },
    ),
  );
});

test('a period that is not a positive whole number of ms is refused', (t) => {
  for (const bad of [0, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) t.throws(() => new TreeHeadSchedule(bad), { instanceOf: RangeError });
});

test('an idle wait outside 0 … the period is refused', (t) => {
  for (const bad of [-1, 1001, Number.NaN]) t.throws(() => new TreeHeadSchedule(1000, bad), { instanceOf: RangeError });
  t.notThrows(() => new TreeHeadSchedule(1000, 1000));
});

test('a pause is longer than the recent gaps between heads: a lone head waits the idle minimum, heads under load wait out their gaps', (t) => {
  const schedule = new TreeHeadSchedule(1000, 20);
  t.is(schedule.pauseAfter(Number.POSITIVE_INFINITY), 20, 'the first head a replica executes');
  t.is(schedule.pauseAfter(5000), 20, 'a head after a quiet spell');
  t.is(schedule.pauseAfter(5), 20, 'a burst of quick heads: never less than the idle minimum');
  // Large batches under load, 300 ms apart: the wait grows past the gap, so none is signed as idle.
  const waits = Array.from({ length: 12 }, () => schedule.pauseAfter(300));
  t.true(waits.every((wait) => wait <= 1000), 'never more than the period');
  t.true((waits[waits.length - 1] as number) > 300 * 1.5, `the wait settles above the gap (${waits.join(', ')})`);
  t.true(schedule.pauseAfter(10) > 300, 'one quick pair amid slow heads barely shortens it');
  t.is(schedule.pauseAfter(1000), 20, 'a gap of a whole period starts afresh');
  t.is(schedule.pauseAfter(900), 1000, 'slow heads wait at most the period');
});

test('heads in bursts (Raft executes an append one position at a time) wait out the gaps between bursts, not those within one', (t) => {
  const schedule = new TreeHeadSchedule(1000, 20);
  const lastWaits: number[] = [];
  for (let burst = 0; burst < 6; burst++) {
    schedule.pauseAfter(burst === 0 ? Number.POSITIVE_INFINITY : 150);
    let wait = 0;
    for (let head = 1; head < 30; head++) wait = schedule.pauseAfter(1);
    lastWaits.push(wait);
  }
  t.is(lastWaits[0], 20, 'the first burst waits the idle minimum');
  t.true(lastWaits.slice(1).every((wait) => wait > 150), `later bursts' last heads wait out the gap to the next burst (${lastWaits.join(', ')})`);
});

test('a steady stream of heads a few ms apart, now and then one 25 ms late, is not taken for paused', (t) => {
  const schedule = new TreeHeadSchedule(1000, 20);
  schedule.pauseAfter(Number.POSITIVE_INFINITY);
  const gaps = Array.from({ length: 400 }, (_, i) => (i % 50 === 49 ? 25 : 1 + (i % 13)));
  const waits = gaps.map((gap) => schedule.pauseAfter(gap));
  // Each head's wait is compared with the gap to the next one: a wait shorter than it signs a pause.
  const pauses = waits.filter((wait, i) => i + 1 < gaps.length && wait < (gaps[i + 1] as number));
  t.true(pauses.length <= 1, `${pauses.length} heads signed as a pause`);
});
