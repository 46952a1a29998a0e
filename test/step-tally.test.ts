/**
 * Counting replicas' reports of policy steps (actors/step-tally.ts), as the verifier and the
 * cluster take a step: f+1 alike from the policy in force, one report per replica and policy.
 */
import test from 'ava';
import { StepTally, type ReportedStep } from '../actors/step-tally.js';

const step = (sequence: number, from: ReportedStep['from'] = 'classical', to: ReportedStep['to'] = 'hybrid'): ReportedStep => ({ from, to, sequence, certificates: [new Uint8Array([sequence])] });

test('a step is agreed once enough replicas report it alike; a replica counts once, however often it reports', (t) => {
  const tally = new StepTally();
  tally.add(0, step(5));
  tally.add(0, step(5));
  t.is(tally.agreed('classical', 2), undefined, 'one replica twice is one report');
  tally.add(1, step(6));
  t.is(tally.agreed('classical', 2), undefined, 'two replicas reporting different steps agree on none');
  tally.add(2, step(5));
  t.deepEqual(tally.agreed('classical', 2), step(5));
  t.is(tally.agreed('hybrid', 2), undefined, 'nor is it a step from another policy');
});

test('a faulty replica reporting made-up steps without end replaces only its own report', (t) => {
  const tally = new StepTally();
  tally.add(1, step(5));
  for (let k = 0; k < 10_000; k++) tally.add(3, step(1000 + k));
  tally.add(2, step(5));
  t.deepEqual(tally.agreed('classical', 2), step(5));
});

test('a report of the next step waits for the policy to reach it; a discarded step is not agreed again', (t) => {
  const tally = new StepTally();
  for (const reporter of [0, 1]) tally.add(reporter, step(9, 'hybrid', 'quantum'));
  tally.add(0, step(5));
  t.is(tally.agreed('classical', 2), undefined);
  t.deepEqual(tally.agreed('hybrid', 2), step(9, 'hybrid', 'quantum'), 'kept for when the policy is hybrid');
  tally.add(1, step(5));
  const agreed = tally.agreed('classical', 2);
  t.deepEqual(agreed, step(5), 'the replica\'s report of the later step did not replace its report of this one');
  tally.discard(agreed as ReportedStep);
  t.is(tally.agreed('classical', 2), undefined);
});
