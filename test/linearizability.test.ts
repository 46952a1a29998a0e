/**
 * The linearizability checker for key-value histories (protocols/history): classic hand-written
 * cases, the model against the real KvStateMachine, histories generated from sequential
 * executions (always linearizable), agreement with a brute-force checker on small random
 * histories, and a performance sanity check on a 10,000-operation history.
 */
import test from 'ava';
import fc from 'fast-check';
import { performance } from 'node:perf_hooks';
import { KvStateMachine, command, kvPayload, kvResponse, type KvOperation, type KvResponse } from '../protocols/consensus/index.js';
import {
  HistoryError,
  HistoryRecorder,
  checkLinearizable,
  formatHistory,
  formatViolation,
  kvModel,
  type CheckResult,
  type History,
  type Model,
  type Operation,
} from '../protocols/history/index.js';
import { Prng } from '../protocols/sim/prng.js';
import { testSeed } from './helpers/seed.js';

type Op = Operation<KvOperation, KvResponse>;

// ---------------------------------------------------------------------------------------------
// Builders for hand-written histories.

const put = (key: string, value: string): KvOperation => ({ type: 'put', key, value });
const get = (key: string): KvOperation => ({ type: 'get', key });
const del = (key: string): KvOperation => ({ type: 'delete', key });
const resp = (value?: string): KvResponse => (value === undefined ? { ok: true } : { ok: true, value });

function builder(): {
  ok: (client: string, input: KvOperation, call: number, ret: number, value?: string) => Op;
  unknown: (client: string, input: KvOperation, call: number, ret?: number) => Op;
  failed: (client: string, input: KvOperation, call: number, ret: number) => Op;
} {
  let id = 0;
  return {
    ok: (client, input, call, ret, value) => ({ id: id++, client, input, call, outcome: 'ok', return: ret, output: resp(value) }),
    unknown: (client, input, call, ret) => (ret === undefined ? { id: id++, client, input, call, outcome: 'indeterminate' } : { id: id++, client, input, call, outcome: 'indeterminate', return: ret }),
    failed: (client, input, call, ret) => ({ id: id++, client, input, call, outcome: 'failed', return: ret }),
  };
}

const check = (history: History): CheckResult<KvOperation, KvResponse> => checkLinearizable(history, kvModel);

// ---------------------------------------------------------------------------------------------
// A brute-force reference: tries every subset of indeterminate operations and every order of the
// chosen operations that respects real time, against an independent whole-map implementation of
// kv.ts (no partitioning, no memoization). Only for small histories.

function applyKv(map: Map<string, string>, op: KvOperation): KvResponse {
  const before = map.get(op.key);
  if (op.type === 'put') map.set(op.key, op.value);
  else if (op.type === 'delete') map.delete(op.key);
  return before === undefined ? { ok: true } : { ok: true, value: before };
}

function bruteForce(history: History): boolean {
  const ops = history.filter((op) => op.outcome !== 'failed');
  const maybe = ops.filter((op) => op.outcome === 'indeterminate');
  const sure = ops.filter((op) => op.outcome === 'ok');
  const end = (op: Op): number => (op.outcome === 'ok' ? op.return : Infinity);
  const orderable = (chosen: Op[]): boolean => {
    const search = (left: Op[], map: Map<string, string>): boolean => {
      if (left.length === 0) return true;
      for (const p of left) {
        // p may go next only if no other remaining operation returned before p was called.
        if (left.some((q) => q !== p && end(q) < p.call)) continue;
        const next = new Map(map);
        const output = applyKv(next, p.input);
        if (p.outcome === 'ok' && (p.output.value ?? undefined) !== (output.value ?? undefined)) continue;
        if (search(left.filter((q) => q !== p), next)) return true;
      }
      return false;
    };
    return search(chosen, new Map());
  };
  for (let mask = 0; mask < 1 << maybe.length; mask++) {
    if (orderable([...sure, ...maybe.filter((_, i) => (mask & (1 << i)) !== 0)])) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Hand-written classic cases.

test('a stale read after a completed write is not linearizable, and the report names the read', (t) => {
  const b = builder();
  const history = [
    b.ok('c1', put('x', '1'), 0, 1),
    b.ok('c1', put('x', '2'), 2, 3, '1'),
    b.ok('c2', get('x'), 4, 5, '1'),
  ];
  const result = check(history);
  if (result.linearizable !== false) return t.fail(`expected a violation, got ${JSON.stringify(result)}`);
  t.is(result.key, 'x');
  t.is(result.unplaced, history[2] as Op);
  t.deepEqual(result.linearization, history.slice(0, 2));
  t.deepEqual(result.operations, history);
  t.regex(result.explanation, /#2 c2 get "x" → "1"/);
  t.regex(result.explanation, /would have returned "2", not "1"/);
  const report = formatViolation(result, { tail: 1 });
  t.log(`\n${report}`);
  t.deepEqual(report.split('\n').slice(1), [
    'longest linearization found (last 1 of 2), in order:',
    '  #1 c1 put "x" = "2" → was "1" [2, 3]',
    'left unplaced (1):',
    '  #2 c2  get "x" → "1"  [4, 5]',
  ]);
});

test('a read concurrent with a write may see either the old or the new value', (t) => {
  for (const seen of [undefined, '1']) {
    const b = builder();
    const result = check([b.ok('c1', put('x', '1'), 0, 10), b.ok('c2', get('x'), 2, 3, seen)]);
    t.like(result, { linearizable: true, keys: 1, operations: 2 }, `read saw ${String(seen)}`);
  }
  // ...but not a value from before the write that nobody could have seen any more.
  const b = builder();
  const history = [b.ok('c1', put('x', '0'), 0, 1), b.ok('c1', put('x', '1'), 2, 10, '0'), b.ok('c2', get('x'), 3, 4)];
  t.like(check(history), { linearizable: false, key: 'x' });
});

test('register new–old inversion: a read sees a concurrent write, a later read does not — not linearizable; overlapping reads are', (t) => {
  {
    const b = builder();
    const history = [b.ok('w', put('r', '1'), 0, 10), b.ok('a', get('r'), 1, 2, '1'), b.ok('b', get('r'), 3, 4)];
    const result = check(history);
    t.like(result, { linearizable: false, key: 'r' });
    if (result.linearizable === false) t.is(result.unplaced, history[2] as Op);
    t.false(bruteForce(history));
  }
  {
    // The reads overlap, so the old-value read can be ordered before the write and the new-value read after it.
    const b = builder();
    const history = [b.ok('w', put('r', '1'), 0, 10), b.ok('a', get('r'), 1, 4, '1'), b.ok('b', get('r'), 3, 5)];
    t.like(check(history), { linearizable: true });
    t.true(bruteForce(history));
  }
});

test('an indeterminate write may take effect (observed later) or never take effect (never observed), but not before its call', (t) => {
  {
    const b = builder();
    const history = [b.ok('c1', put('x', '1'), 0, 1), b.unknown('c2', put('x', '2'), 2, 3), b.ok('c3', get('x'), 50, 51, '2'), b.ok('c3', get('x'), 52, 53, '2')];
    t.like(check(history), { linearizable: true, keys: 1, operations: 4 }, 'observed long after the client gave up');
  }
  {
    const b = builder();
    const history = [b.ok('c1', put('x', '1'), 0, 1), b.unknown('c2', put('x', '2'), 2), b.ok('c3', get('x'), 50, 51, '1')];
    t.like(check(history), { linearizable: true }, 'never observed: it never happened');
  }
  {
    const b = builder();
    const history = [b.ok('c3', get('x'), 0, 1, '2'), b.unknown('c2', put('x', '2'), 2, 3)];
    t.like(check(history), { linearizable: false, key: 'x' }, 'observed before it was invoked');
  }
  {
    // Once observed, it has happened: a later read cannot see the old value again.
    const b = builder();
    const history = [b.ok('c1', put('x', '1'), 0, 1), b.unknown('c2', put('x', '2'), 2), b.ok('c3', get('x'), 5, 6, '2'), b.ok('c3', get('x'), 7, 8, '1')];
    t.like(check(history), { linearizable: false, key: 'x' });
    t.false(bruteForce(history));
  }
  {
    // The put's response is unknown, so its "previous value" is not checked; the delete afterwards is.
    const b = builder();
    const history = [b.unknown('c1', put('x', '1'), 0), b.ok('c2', del('x'), 5, 6, '1'), b.ok('c2', get('x'), 7, 8)];
    t.like(check(history), { linearizable: true });
  }
});

test('a read of a value nobody wrote is not linearizable; a failed write counts as never written', (t) => {
  {
    const b = builder();
    const history = [b.ok('c1', put('x', '1'), 0, 1), b.ok('c2', get('x'), 2, 3, 'ghost')];
    const result = check(history);
    t.like(result, { linearizable: false, key: 'x' });
    if (result.linearizable === false) t.regex(result.explanation, /would have returned "1", not "ghost"/);
  }
  {
    const b = builder();
    const history = [b.failed('c1', put('x', 'nope'), 0, 1), b.ok('c2', get('x'), 2, 3, 'nope')];
    t.like(check(history), { linearizable: false, key: 'x' });
    const fine = [b.failed('c1', put('y', 'nope'), 0, 1), b.ok('c2', get('y'), 2, 3)];
    t.like(check(fine), { linearizable: true, operations: 1 }, 'a failed operation is dropped');
  }
});

test('keys are checked independently: interleavings across keys are free, and a violation names its key and only its operations', (t) => {
  const b = builder();
  // Per key this is fine. (Read as one register it would be a stale read.)
  const history = [
    b.ok('c1', put('a', '1'), 0, 1),
    b.ok('c1', put('b', '1'), 2, 3),
    b.ok('c2', get('a'), 4, 5, '1'),
    b.ok('c2', get('b'), 6, 7, '1'),
    b.ok('c3', del('a'), 8, 9, '1'),
    b.ok('c3', get('b'), 10, 11, '1'),
  ];
  t.like(check(history), { linearizable: true, keys: 2, operations: 6 });
  const broken = [...history, b.ok('c4', get('b'), 12, 13), b.ok('c4', get('a'), 12, 13)];
  const result = check(broken);
  if (result.linearizable !== false) return t.fail('expected a violation on b');
  t.is(result.key, 'b');
  t.true(result.operations.every((op) => op.input.key === 'b'));
  t.is(result.unplaced, broken[6] as Op);
});

test('an operation that returns at the instant another is called counts as concurrent with it', (t) => {
  const b = builder();
  // put returns at 5, get is called at 5 and sees the old value: they may be ordered either way.
  t.like(check([b.ok('c1', put('x', '1'), 0, 5), b.ok('c2', get('x'), 5, 6)]), { linearizable: true });
  // A strict gap orders them.
  t.like(check([b.ok('c1', put('x', '1'), 0, 5), b.ok('c2', get('x'), 5.001, 6)]), { linearizable: false });
});

test('the search backtracks out of a wrong first choice, with every operation at one instant', (t) => {
  {
    // Two deletes cannot both remove the one value written, whatever the order.
    const b = builder();
    const history = [b.ok('c1', del('a'), 0, 0, '2'), b.ok('c2', put('a', '2'), 0, 0), b.ok('c3', del('a'), 0, 0, '2')];
    t.like(check(history), { linearizable: false, key: 'a' });
    t.false(bruteForce(history));
  }
  {
    // The first put tried (the long one) must come after the delete and the short put.
    const b = builder();
    const history = [b.ok('c1', del('b'), 10, 10), b.ok('c2', put('b', '1'), 9, 20), b.ok('c3', put('b', '1'), 30, 30, '1')];
    t.like(check(history), { linearizable: true });
    t.true(bruteForce(history));
  }
});

test('memoization keys on the model state as well as on the set of linearized operations', (t) => {
  // {delete, put#1} reached in the order delete, put#1 leaves "1" (a dead end for put#2, which saw
  // the key absent); in the order put#1, delete it leaves the key absent, which works.
  const b = builder();
  const history = [b.ok('c1', put('b', '1'), 10, 10), b.unknown('c2', del('b'), 9), b.ok('c3', put('b', '1'), 30, 30)];
  t.like(check(history), { linearizable: true });
  t.true(bruteForce(history));
});

test('the search budget turns an expensive check into an unknown verdict instead of running forever', (t) => {
  // Many concurrent writes of one value and a read that sees something else: every subset/order fails.
  const b = builder();
  const history: Op[] = [];
  for (let i = 0; i < 14; i++) history.push(b.ok(`c${i}`, put('x', String(i % 2)), 0, 100, i % 2 === 0 ? undefined : '0'));
  history.push(b.ok('r', get('x'), 101, 102, 'ghost'));
  const unknown = checkLinearizable(history, kvModel, { maxSteps: 50 });
  if (unknown.linearizable !== 'unknown') return t.fail(`expected unknown, got ${String(unknown.linearizable)}`);
  t.true(unknown.timedOut);
  t.is(unknown.key, 'x');
  t.deepEqual(unknown.undecided, ['x']);
  t.is(unknown.operations.length, 15);
  t.regex(unknown.explanation, /budget of 50 steps/);
  t.is(unknown.steps, 50);
  // A violation on another key still wins over an unknown one.
  const other = [...history, b.ok('c1', put('y', '1'), 0, 1), b.ok('c2', get('y'), 2, 3)];
  t.like(checkLinearizable(other, kvModel, { maxSteps: 50 }), { linearizable: false, key: 'y' });
});

test('malformed histories are refused with INVALID_HISTORY, bad options with INVALID_OPTIONS', (t) => {
  const b = builder();
  const a = b.ok('c1', put('x', '1'), 0, 1);
  const cases: unknown[] = [
    [a, { ...a }],
    [{ ...a, return: -1 }],
    [{ ...a, call: Number.NaN }],
    [{ ...a, return: Infinity }],
    [{ ...a, outcome: 'maybe' }],
  ];
  for (const history of cases) {
    const error = t.throws(() => check(history as History), { instanceOf: HistoryError });
    t.is(error?.code, 'INVALID_HISTORY');
  }
  for (const maxSteps of [-1, Number.NaN]) {
    t.is(t.throws(() => checkLinearizable([a], kvModel, { maxSteps }), { instanceOf: HistoryError })?.code, 'INVALID_OPTIONS');
  }
});

test('the recorder builds a history from an injected clock and refuses misuse', (t) => {
  let clock = 0;
  const recorder = new HistoryRecorder(() => clock);
  const w = recorder.invoke('c1', put('x', '1'));
  clock = 1;
  const r = recorder.invoke('c2', get('x'));
  clock = 2;
  const lost = recorder.invoke('c3', put('x', '2'));
  clock = 3;
  const rejected = recorder.invoke('c4', put('x', 'no'));
  const inFlight = recorder.invoke('c5', del('x'));
  clock = 4;
  t.like(recorder.ok(w, resp()), { id: 0, client: 'c1', outcome: 'ok', call: 0, return: 4 });
  recorder.ok(r, resp('1'));
  clock = 5;
  t.like(recorder.unknown(lost), { outcome: 'indeterminate', call: 2, return: 5 });
  recorder.fail(rejected);
  t.is(recorder.pending, 1);
  t.is(t.throws(() => recorder.ok(w, resp()), { instanceOf: HistoryError })?.code, 'ALREADY_COMPLETED');
  t.is(t.throws(() => recorder.fail({ id: 99, client: 'c9' }), { instanceOf: HistoryError })?.code, 'UNKNOWN_HANDLE');
  t.is(t.throws(() => recorder.ok({ ...inFlight }, resp()), { instanceOf: HistoryError })?.code, 'UNKNOWN_HANDLE', 'a copy of a handle is not the handle');
  const history = recorder.history();
  t.deepEqual(
    history.map((op) => [op.id, op.client, op.outcome]),
    [[0, 'c1', 'ok'], [1, 'c2', 'ok'], [2, 'c3', 'indeterminate'], [3, 'c4', 'failed'], [4, 'c5', 'indeterminate']],
  );
  t.false('return' in (history[4] as object), 'an operation still in flight has no return time');
  t.like(check(history), { linearizable: true, keys: 1, operations: 4 });
  clock = 1;
  t.is(t.throws(() => recorder.invoke('c1', get('x')), { instanceOf: HistoryError })?.code, 'CLOCK_WENT_BACKWARDS');
  t.is(t.throws(() => new HistoryRecorder(() => Number.NaN).invoke('c1', get('x')), { instanceOf: HistoryError })?.code, 'CLOCK_WENT_BACKWARDS');
});

test('formatHistory renders one aligned line per operation in call order', (t) => {
  const b = builder();
  const history = [
    b.ok('c2', get('x'), 1.5, 2.25, '1'),
    b.ok('client-1', put('x', '1'), 0, 1),
    b.unknown('c3', del('x'), 3, 9),
    b.failed('c4', put('x', 'z'), 4, 5),
    b.ok('c5', put('x', '2'), 6, 7.0004),
  ];
  const text = formatHistory(history);
  t.log(`\n${text}`);
  const lines = text.split('\n');
  t.is(lines.length, 5);
  t.regex(lines[0] as string, /^#1 client-1 +put "x" = "1" +→ was absent +\[0, 1\]$/);
  t.regex(lines[1] as string, /^#0 c2 +get "x" +→ "1" +\[1\.5, 2\.25\]$/);
  t.regex(lines[2] as string, /^#2 c3 +delete "x" +→ \? \(indeterminate\) +\[3, ∞\) gave up at 9$/);
  t.regex(lines[3] as string, /→ failed +\[4, 5\]$/);
  t.regex(lines[4] as string, /→ was absent +\[6, 7\]$/);
  t.is(new Set(lines.map((line) => line.indexOf('→'))).size, 1, 'the arrows line up');
});

// ---------------------------------------------------------------------------------------------
// The model mirrors kv.ts.

const smallValue = fc.constantFrom('1', '2', '3', '4');
const kvOpOn = (key: fc.Arbitrary<string>): fc.Arbitrary<KvOperation> =>
  fc.oneof(
    fc.record({ type: fc.constant('put' as const), key, value: smallValue }),
    fc.record({ type: fc.constant('get' as const), key }),
    fc.record({ type: fc.constant('delete' as const), key }),
  );
const kvOp = kvOpOn(fc.constantFrom('a', 'b', 'c'));

test('the model answers exactly as KvStateMachine does, key by key', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(kvOp, { maxLength: 40, size: 'max' }), (ops) => {
        const machine = new KvStateMachine();
        const states = new Map<string, string | undefined>();
        return ops.every((op, i) => {
          const real = kvResponse(machine.apply(command('c', i + 1, kvPayload(op))));
          const step = kvModel.step(states.get(op.key), op);
          states.set(op.key, step.state);
          return kvModel.equalOutputs(real, step.output) && step.state === machine.get(op.key);
        });
      }),
      { seed, numRuns: 200 },
    ),
  );
});

// ---------------------------------------------------------------------------------------------
// Histories generated from sequential executions.

type Fate = 'ok' | 'applied-then-lost' | 'never-applied' | 'failed';

interface Planned {
  readonly client: number;
  readonly input: KvOperation;
  readonly before: number;
  readonly after: number;
  readonly fate: Fate;
}

const fate: fc.Arbitrary<Fate> = fc.oneof(
  { arbitrary: fc.constant('ok' as const), weight: 6 },
  { arbitrary: fc.constant('applied-then-lost' as const), weight: 1 },
  { arbitrary: fc.constant('never-applied' as const), weight: 1 },
  { arbitrary: fc.constant('failed' as const), weight: 1 },
);

const planned = (spread: number, input = kvOp): fc.Arbitrary<Planned> =>
  fc.record({ client: fc.nat(3), input, before: fc.nat(spread), after: fc.nat(spread), fate });

/**
 * Executes the operations one by one at linearization points 10, 20, 30, … and records each with
 * an interval around its point: [point − before, point + after]. Operations that "never applied"
 * or "failed" are not executed; "applied-then-lost" ones are executed but recorded as
 * indeterminate (their client gave up).
 */
function fromSequential(plan: readonly Planned[]): Op[] {
  const map = new Map<string, string>();
  return plan.map((p, id) => {
    const point = 10 * (id + 1);
    const call = point - p.before;
    const ret = point + p.after;
    const client = `c${p.client}`;
    if (p.fate === 'failed') return { id, client, input: p.input, call, outcome: 'failed', return: ret };
    if (p.fate === 'never-applied') return { id, client, input: p.input, call, outcome: 'indeterminate' };
    const output = applyKv(map, p.input);
    if (p.fate === 'applied-then-lost') return { id, client, input: p.input, call, outcome: 'indeterminate', return: ret };
    return { id, client, input: p.input, call, outcome: 'ok', return: ret, output };
  });
}

test('histories recorded around a sequential execution are always linearizable', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(planned(45), { maxLength: 80, size: 'max' }), (plan) => {
        const history = fromSequential(plan);
        // The checker does not care in which order the history lists its operations.
        const result = check([...history].reverse());
        if (result.linearizable !== true) throw new Error(`not linearizable:\n${formatHistory(history)}\n${JSON.stringify(result)}`);
        return result.operations === history.filter((op) => op.outcome !== 'failed').length;
      }),
      { seed, numRuns: 300 },
    ),
  );
});

/** What must hold of a violation report, checked against the brute-force reference. */
function reportHolds(history: readonly Op[], result: CheckResult<KvOperation, KvResponse>): boolean {
  if (result.linearizable !== false) return true;
  const { operations, unplaced, linearization, key } = result;
  if (!operations.includes(unplaced) || !operations.every((op) => history.includes(op) && op.input.key === key)) return false;
  // The reported window is itself not linearizable, and so small enough to read.
  if (bruteForce(operations)) return false;
  // The partial linearization is legal: it respects real time and the model from the initial state.
  let state = kvModel.init();
  for (const [i, op] of linearization.entries()) {
    if (!operations.includes(op) || op === unplaced) return false;
    if (linearization.slice(i + 1).some((later) => later.outcome === 'ok' && later.return < op.call)) return false;
    const step = kvModel.step(state, op.input);
    if (op.outcome === 'ok' && !kvModel.equalOutputs(op.output, step.output)) return false;
    state = step.state;
  }
  return true;
}

test('a mutated read: the verdict equals the brute-force verdict on small concurrent histories', (t) => {
  const seed = testSeed(t);
  const verdicts = { true: 0, false: 0 };
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(planned(30, kvOpOn(fc.constantFrom('a', 'a', 'b'))), { minLength: 1, maxLength: 7 }), fc.nat(), fc.option(smallValue, { nil: undefined }), (plan, pick, value) => {
        const history = fromSequential(plan);
        const reads = history.filter((op) => op.outcome === 'ok' && op.input.type === 'get');
        if (reads.length > 0) {
          const target = reads[pick % reads.length] as Op;
          history[history.indexOf(target)] = { ...target, outcome: 'ok', return: (target as { return: number }).return, output: resp(value) };
        }
        const expected = bruteForce(history);
        const result = check(history);
        verdicts[String(expected) as 'true' | 'false']++;
        if (result.linearizable !== expected) throw new Error(`checker says ${String(result.linearizable)}, brute force ${expected}:\n${formatHistory(history)}`);
        return reportHolds(history, result);
      }),
      { seed, numRuns: 1000 },
    ),
  );
  t.log(`verdicts: ${verdicts.true} linearizable, ${verdicts.false} not`);
  t.true(verdicts.true > 0 && verdicts.false > 0, 'both verdicts occur');
});

test('random small histories with indeterminate operations: the verdict equals the brute-force verdict', (t) => {
  const seed = testSeed(t);
  const verdicts = { true: 0, false: 0 };
  // Intervals are arbitrary (not around any linearization point) and outputs random from a small
  // domain; most operations share one key, so that up to 7 of them contend.
  const key = fc.constantFrom('a', 'a', 'a', 'b');
  const op: fc.Arbitrary<Op> = fc
    .record({
      client: fc.nat(3),
      input: fc.oneof(
        fc.record({ type: fc.constant('put' as const), key, value: fc.constantFrom('1', '2', '3') }),
        fc.record({ type: fc.constant('get' as const), key }),
        fc.record({ type: fc.constant('delete' as const), key }),
      ),
      call: fc.nat(20),
      length: fc.nat(12),
      output: fc.option(fc.constantFrom('1', '2', '3'), { nil: undefined }),
      outcome: fc.constantFrom('ok', 'ok', 'ok', 'indeterminate', 'failed'),
      gaveUp: fc.boolean(),
    })
    .map((r): Op => {
      const base = { id: 0, client: `c${r.client}`, input: r.input, call: r.call };
      if (r.outcome === 'ok') return { ...base, outcome: 'ok', return: r.call + r.length, output: resp(r.output) };
      if (r.outcome === 'failed') return { ...base, outcome: 'failed', return: r.call + r.length };
      return r.gaveUp ? { ...base, outcome: 'indeterminate', return: r.call + r.length } : { ...base, outcome: 'indeterminate' };
    });
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(op, { maxLength: 7 }), (ops) => {
        const history = ops.map((o, id) => ({ ...o, id }));
        const expected = bruteForce(history);
        const result = check(history);
        verdicts[String(expected) as 'true' | 'false']++;
        if (result.linearizable !== expected) throw new Error(`checker says ${String(result.linearizable)}, brute force ${expected}:\n${formatHistory(history)}`);
        return reportHolds(history, result);
      }),
      { seed, numRuns: 2000 },
    ),
  );
  t.log(`verdicts: ${verdicts.true} linearizable, ${verdicts.false} not`);
  t.true(verdicts.true > 50 && verdicts.false > 50, 'both verdicts are common');
});

test('the shortcuts (reads first, lost writes pruned) agree with the plain search on medium histories', (t) => {
  const seed = testSeed(t);
  // The same specification without readOnly and unobserved: Wing & Gong with Lowe's cache only.
  const plain: Model<string | undefined, KvOperation, KvResponse> = { ...kvModel, readOnly: undefined, unobserved: undefined };
  const verdicts = { true: 0, false: 0 };
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.array(planned(40, kvOpOn(fc.constantFrom('a', 'a', 'b'))), { minLength: 1, maxLength: 40, size: 'max' }),
        fc.nat(),
        fc.option(smallValue, { nil: undefined }),
        fc.boolean(),
        (plan, pick, value, mutate) => {
          const history = fromSequential(plan);
          const done = history.filter((op) => op.outcome === 'ok');
          if (mutate && done.length > 0) {
            const target = done[pick % done.length] as Op & { outcome: 'ok' };
            history[history.indexOf(target)] = { ...target, output: resp(value) };
          }
          const fast = check(history);
          const slow = checkLinearizable(history, plain);
          if (slow.linearizable === 'unknown') return true;
          verdicts[String(slow.linearizable) as 'true' | 'false']++;
          if (fast.linearizable !== slow.linearizable) throw new Error(`shortcuts say ${String(fast.linearizable)}, plain search ${String(slow.linearizable)}:\n${formatHistory(history)}`);
          return fast.linearizable !== false || slow.linearizable !== false || fast.unplaced === slow.unplaced;
        },
      ),
      { seed, numRuns: 500 },
    ),
  );
  t.log(`verdicts: ${verdicts.true} linearizable, ${verdicts.false} not`);
  t.true(verdicts.true > 0 && verdicts.false > 0, 'both verdicts occur');
});

test('a model without partitions is checked as one history', (t) => {
  // The whole map as one object: same verdicts as the per-key model on a small example.
  const whole: Model<ReadonlyMap<string, string>, KvOperation, KvResponse> = {
    name: 'kv-whole',
    init: () => new Map(),
    step(state, input) {
      const next = new Map(state);
      return { output: applyKv(next, input), state: next };
    },
    equalOutputs: (a, b) => kvModel.equalOutputs(a, b),
    stateKey: (state) => JSON.stringify([...state].sort()),
  };
  const b = builder();
  const good = [b.ok('c1', put('a', '1'), 0, 1), b.ok('c2', put('b', '2'), 0, 1), b.ok('c1', get('a'), 2, 3, '1')];
  t.like(checkLinearizable(good, whole), { linearizable: true, keys: 1 });
  const bad = [...good, b.ok('c2', get('b'), 4, 5)];
  const result = checkLinearizable(bad, whole);
  t.like(result, { linearizable: false, key: undefined });
  if (result.linearizable === false) t.regex(result.explanation, /^not linearizable: #3 c2/);
});

// ---------------------------------------------------------------------------------------------
// Performance sanity.

/**
 * `clients` clients, each issuing one operation at a time over `keys` keys; each operation takes
 * effect at a point inside its interval, and the operations are executed in the order of those
 * points. A fraction `lostRate` is indeterminate (its client gave up; applied or not, at random).
 */
function bigHistory(seed: number, total: number, clients: number, keys: number, lostRate = 0.005): Op[] {
  const prng = new Prng(seed);
  const planned: { client: number; input: KvOperation; call: number; point: number; ret: number; lost: boolean; applied: boolean }[] = [];
  const perClient = Math.ceil(total / clients);
  for (let c = 0; c < clients; c++) {
    let time = prng.between(0, 1);
    for (let i = 0; i < perClient && planned.length < total; i++) {
      const key = `k${prng.int(keys)}`;
      const roll = prng.next();
      const input: KvOperation = roll < 0.5 ? { type: 'get', key } : roll < 0.9 ? { type: 'put', key, value: `v${c}-${i}` } : { type: 'delete', key };
      const call = time;
      const point = call + prng.between(0, 2);
      const ret = point + prng.between(0, 2);
      const lost = prng.chance(lostRate);
      planned.push({ client: c, input, call, point, ret, lost, applied: !lost || prng.chance(0.5) });
      time = ret + prng.between(0, 0.5);
    }
  }
  const map = new Map<string, string>();
  const outputs = new Map<number, KvResponse>();
  [...planned.keys()].sort((a, b) => (planned[a]?.point as number) - (planned[b]?.point as number)).forEach((i) => {
    const p = planned[i] as (typeof planned)[number];
    if (p.applied) outputs.set(i, applyKv(map, p.input));
  });
  return planned.map((p, id): Op =>
    p.lost
      ? { id, client: `c${p.client}`, input: p.input, call: p.call, outcome: 'indeterminate', return: p.ret }
      : { id, client: `c${p.client}`, input: p.input, call: p.call, outcome: 'ok', return: p.ret, output: outputs.get(id) as KvResponse },
  );
}

test('10,000 operations over 20 keys from 8 concurrent clients check well within budget, and one corrupted read is found', (t) => {
  const seed = testSeed(t);
  const history = bigHistory(seed, 10_000, 8, 20);
  let start = performance.now();
  const result = check(history);
  const elapsed = performance.now() - start;
  t.log(`10,000 ops / 20 keys / 8 clients: ${elapsed.toFixed(0)} ms, ${result.steps} steps`);
  t.like(result, { linearizable: true, keys: 20, operations: 10_000 });
  t.true(elapsed < 20_000, `took ${elapsed} ms`);

  // Corrupt the last read of some key into a value nobody wrote.
  const reads = history.filter((op) => op.outcome === 'ok' && op.input.type === 'get');
  const victim = reads[reads.length - 1] as Op;
  const corrupted = history.map((op) => (op === victim ? { ...victim, outcome: 'ok' as const, return: (victim as { return: number }).return, output: resp('never written') } : op));
  start = performance.now();
  const broken = check(corrupted);
  t.log(`with one corrupted read: ${(performance.now() - start).toFixed(0)} ms`);
  if (broken.linearizable !== false) return t.fail('the corrupted read went unnoticed');
  t.is(broken.key, victim.input.key);
  t.is(broken.unplaced.id, victim.id);
  const report = formatViolation(broken);
  t.log(`\n${report}`);
  t.true(report.split('\n').length < 40, 'the report stays readable');
  t.regex(report, new RegExp(`left unplaced \\(\\d+\\):\\n.*#${victim.id} `));
});

test('10,000 operations on one hot key from 32 concurrent clients, 1% of them lost, still check quickly', (t) => {
  const seed = testSeed(t);
  const history = bigHistory(seed, 10_000, 32, 1, 0.01);
  const start = performance.now();
  const result = check(history);
  const elapsed = performance.now() - start;
  t.log(`10,000 ops / 1 key / 32 clients: ${elapsed.toFixed(0)} ms, ${result.steps} steps`);
  t.like(result, { linearizable: true, keys: 1 });
  t.true(elapsed < 20_000, `took ${elapsed} ms`);
});
