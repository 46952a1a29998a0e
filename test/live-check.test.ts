/**
 * The live check itself, on telemetry made up to break each rule: it must name what is emitted
 * but undeclared (or declared otherwise) and what is declared but never emitted.
 */
import test from 'ava';
import { loadRegistry } from '../registry/check.js';
import { liveCheck, type EmittedMetric, type EmittedSpan } from '../registry/live-check.js';

const registry = loadRegistry();

const sign: EmittedSpan = {
  name: 'crypto.sign',
  kind: 'internal',
  attributes: { 'crypto.algorithm': 'Ed25519', 'crypto.backend': 'noble', 'crypto.duration_us': 80.5, 'crypto.chatman_ticks': 0.6 },
  events: [],
};

test('conforming telemetry passes, and what was not emitted is listed', (t) => {
  const report = liveCheck(registry, { spans: [sign], metrics: [] }, { declared: (_, name) => name === 'crypto.sign' || name === 'crypto.verify' });
  t.deepEqual(report.undeclared, []);
  t.deepEqual(report.missing, ['span crypto.verify was never emitted']);
  t.deepEqual(report.coverage, { declared: 2, emitted: 1 });
});

test('undeclared signals and attributes, wrong types, enum values, kinds, units and instruments are each named', (t) => {
  const spans: EmittedSpan[] = [
    { name: 'crypto.frobnicate', kind: 'internal', attributes: {}, events: [] },
    { ...sign, kind: 'client', attributes: { ...sign.attributes, 'crypto.duration_us': 'fast', 'crypto.colour': 'red' }, events: [{ name: 'crypto.surprise' }] },
    { name: 'consensus.pbft.round', kind: 'internal', attributes: { 'consensus.phase': 'gossip' }, events: [] },
  ];
  const metrics: EmittedMetric[] = [
    { name: 'crypto.sign.duration', unit: 'ms', instrument: 'counter', series: [{ 'crypto.algorithm': 'Ed25519' }] },
    { name: 'crypto.sign.count', unit: '1', instrument: 'counter', series: [] },
  ];
  const { undeclared } = liveCheck(registry, { spans, metrics });
  const expected = [
    /undeclared span crypto\.frobnicate/,
    /span crypto\.sign: kind client, declared internal/,
    /span crypto\.sign: crypto\.duration_us: "fast" is not of type double/,
    /span crypto\.sign: undeclared attribute crypto\.colour/,
    /undeclared event crypto\.surprise \(on span crypto\.sign\)/,
    /span consensus\.pbft\.round: consensus\.phase: "gossip" is not one of/,
    /metric crypto\.sign\.duration: unit "ms", declared "us"/,
    /metric crypto\.sign\.duration: a counter, declared a histogram/,
    /undeclared metric crypto\.sign\.count/,
  ];
  for (const pattern of expected) t.true(undeclared.some((line) => pattern.test(line)), `${pattern} in ${JSON.stringify(undeclared, null, 1)}`);
});

test('a required attribute left out is a problem; a conditionally required one never emitted is not', (t) => {
  const round: EmittedSpan = { name: 'consensus.pbft.round', kind: 'internal', attributes: { 'consensus.view': 0 }, events: [] };
  const { undeclared, missing } = liveCheck(registry, { spans: [round, sign], metrics: [] }, { declared: (_, name) => name === 'consensus.pbft.round' || name === 'crypto.sign' });
  t.true(undeclared.includes('span consensus.pbft.round: required attribute consensus.phase missing'));
  t.true(missing.includes('span consensus.pbft.round: attribute consensus.sequence was never emitted'));
  t.false(missing.some((line) => line.includes('crypto.failure_reason')), 'failure reasons appear only with failures');
});
