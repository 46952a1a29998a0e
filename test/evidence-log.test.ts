/**
 * The cluster's evidence (actors/evidence-log.ts): however often a replica misbehaves, one report
 * per reporter, accused and kind, counting the instances.
 */
import test from 'ava';
import { EvidenceLog } from '../actors/evidence-log.js';

test('evidence is one report per reporter, accused and kind, counting instances and keeping the first detail', (t) => {
  const log = new EvidenceLog();
  for (let k = 0; k < 10_000; k++) log.add(1, 3, 'invalid-certificate', `sequence ${k}`);
  log.add(2, 3, 'invalid-certificate', 'sequence 7');
  log.add(1, 3, 'equivocation', 'view 2');
  log.add(-1, 3, 'receipt-log-fork', 'position 9');
  t.deepEqual(log.reports(), [
    { reporter: 1, accused: 3, kind: 'invalid-certificate', detail: 'sequence 0', count: 10_000 },
    { reporter: 2, accused: 3, kind: 'invalid-certificate', detail: 'sequence 7', count: 1 },
    { reporter: 1, accused: 3, kind: 'equivocation', detail: 'view 2', count: 1 },
    { reporter: -1, accused: 3, kind: 'receipt-log-fork', detail: 'position 9', count: 1 },
  ]);
  const copy = log.reports()[0] as { count: number };
  copy.count = 0;
  t.is(log.reports()[0]?.count, 10_000, 'reports are copies');
});
