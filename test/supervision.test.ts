import test from 'ava';
import { ConfigError, RemoteFailure, VirtualClock, type ActorRef, type ActorSystem, type Strategy } from '../runtime/index.js';
import { Counter, Dependent, stopLog, Stubborn } from './fixtures/actors.js';
import { eventually, startSystem } from './helpers/system.js';

type CounterRef = Awaited<ReturnType<ActorSystem['spawn']>> & ActorRef<{ type: 'add'; n: number } | { type: 'get' } | { type: 'boom' }, number>;

function restarts(system: ActorSystem, supervisor: string): Record<string, number> {
  return Object.fromEntries(system.status().filter((c) => c.supervisor === supervisor).map((c) => [c.name, c.restarts]));
}

async function value(system: ActorSystem, name: string): Promise<number> {
  const ref = system.lookup<{ type: 'get' }, number>(name);
  if (!ref) throw new Error(`${name} is not running`);
  return ref.ask({ type: 'get' });
}

/** Three worker-backed counters a, b, c (started in that order) under a supervisor; each has had 1 added. */
async function trio(t: Parameters<typeof startSystem>[0], strategy: Strategy) {
  const system = await startSystem(t);
  const sup = await system.supervisor({ name: 'sup', strategy, intensity: 3, periodMs: 60_000 });
  for (const name of ['a', 'b', 'c']) {
    const ref = (await sup.spawn(Counter, { name, thread: true, args: { from: 10 } })) as CounterRef;
    ref.tell({ type: 'add', n: 1 });
    t.is(await ref.ask({ type: 'get' }), 11);
  }
  return { system, sup };
}

async function crashAndSettle(system: ActorSystem, name: string, expected: Record<string, number>): Promise<void> {
  const ref = system.lookup<{ type: 'boom' }>(name);
  if (!ref) throw new Error(`${name} is not running`);
  ref.tell({ type: 'boom' });
  await eventually(() => JSON.stringify(restarts(system, 'sup')) === JSON.stringify(expected) && system.status().every((c) => c.running));
}

test('one_for_one: a crashed worker-backed actor restarts with fresh state; its siblings are untouched', async (t) => {
  const { system } = await trio(t, 'one_for_one');
  await crashAndSettle(system, 'b', { a: 0, b: 1, c: 0 });
  t.is(await value(system, 'b'), 10, 'fresh state from the start arguments');
  t.is(await value(system, 'a'), 11);
  t.is(await value(system, 'c'), 11);
  t.is(system.lookup('b')?.incarnation, 1);
  t.is(system.lookup('a')?.incarnation, 0);
  const lastExits = Object.fromEntries(system.status().filter((c) => c.supervisor === 'sup').map((c) => [c.name, c.lastExit]));
  t.like(lastExits['b'], { kind: 'crash', error: { message: 'boom' } }, 'the status says how the crashed child ended');
  t.deepEqual([lastExits['a'], lastExits['c']], [undefined, undefined]);
});

test('one_for_all: every sibling is restarted', async (t) => {
  const { system } = await trio(t, 'one_for_all');
  await crashAndSettle(system, 'b', { a: 1, b: 1, c: 1 });
  for (const name of ['a', 'b', 'c']) t.is(await value(system, name), 10);
});

test('rest_for_one: the crashed actor and those started after it are restarted', async (t) => {
  const { system } = await trio(t, 'rest_for_one');
  await crashAndSettle(system, 'b', { a: 0, b: 1, c: 1 });
  t.is(await value(system, 'a'), 11);
  t.is(await value(system, 'b'), 10);
  t.is(await value(system, 'c'), 10);
});

test('a worker that calls process.exit is a crashed child and is restarted', async (t) => {
  const system = await startSystem(t, { root: { intensity: 3 } });
  const ref = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 1 } });
  const ended = system.watch(ref);
  ref.tell({ type: 'exit', code: 0 });
  const reason = await ended;
  t.is(reason.kind, 'crash');
  await eventually(() => system.lookup('c')?.incarnation === 1);
  t.is(await value(system, 'c'), 1);
});

test('a worker that exceeds its resource limits is a crashed child and is restarted', async (t) => {
  const system = await startSystem(t, { root: { intensity: 3 } });
  const ref = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 1 }, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
  const ended = system.watch(ref);
  ref.tell({ type: 'hog', mb: 256 });
  const reason = await ended;
  t.is(reason.kind, 'crash');
  t.regex(reason.kind === 'crash' ? `${reason.error.name} ${reason.error.message} ${reason.error.code ?? ''}` : '', /memory|ERR_WORKER_OUT_OF_MEMORY/i);
  await eventually(() => system.lookup('c')?.incarnation === 1);
  t.is(await value(system, 'c'), 1);
});

test('an in-thread actor whose handler throws is restarted', async (t) => {
  const system = await startSystem(t, { root: { intensity: 3 } });
  const ref = await system.spawn(Counter, { name: 'c', args: { from: 2 } });
  ref.tell({ type: 'add', n: 5 });
  await t.throwsAsync(ref.ask({ type: 'boom' }), { instanceOf: RemoteFailure });
  await eventually(() => system.lookup('c')?.incarnation === 1);
  t.is(await value(system, 'c'), 2);
});

test('transient children restart only after a crash; temporary children never', async (t) => {
  const system = await startSystem(t);
  const sup = await system.supervisor({ name: 'sup', intensity: 5, periodMs: 60_000 });
  const transient = await sup.spawn(Counter, { name: 'transient', args: { from: 0 }, restart: 'transient' });
  const temporary = await sup.spawn(Counter, { name: 'temporary', args: { from: 0 }, restart: 'temporary' });
  await t.throwsAsync(transient.ask({ type: 'boom' }));
  await eventually(() => system.lookup('transient')?.incarnation === 1);
  const restarted = system.lookup<{ type: 'stop' }>('transient');
  const stopped = system.watch(restarted as ActorRef);
  restarted?.tell({ type: 'stop' });
  t.is((await stopped).kind, 'normal');
  const gone = system.watch(temporary);
  await t.throwsAsync(temporary.ask({ type: 'boom' }));
  await gone;
  await eventually(() => sup.children().length === 1);
  t.deepEqual(
    sup.children().map((c) => [c.name, c.running, c.restarts]),
    [['transient', false, 1]],
    'the transient child stays stopped after a normal exit; the temporary one is forgotten',
  );
  t.is(system.lookup('temporary'), undefined);
});

test('exceeding the restart intensity escalates to the parent and finally stops the whole tree', async (t) => {
  const system = await startSystem(t, { root: { intensity: 0 } });
  const sup = await system.supervisor({ name: 'sup', intensity: 1, periodMs: 60_000 });
  const first = await sup.spawn(Counter, { name: 'a', thread: true, args: { from: 0 } });
  await sup.spawn(Counter, { name: 'b', thread: true, args: { from: 0 } });
  const bystander = await system.spawn(Counter, { name: 'bystander', thread: true, args: { from: 0 } });
  first.tell({ type: 'boom' });
  await eventually(() => system.lookup('a')?.incarnation === 1);
  system.lookup<{ type: 'boom' }>('a')?.tell({ type: 'boom' });
  const exit = await system.terminated;
  t.is(exit.kind, 'escalated');
  t.regex(exit.kind === 'escalated' && exit.reason.kind === 'crash' ? exit.reason.error.message : '', /more than 0 restarts/);
  t.false(sup.running);
  t.false(system.root.running);
  for (const name of ['a', 'b', 'bystander']) t.is(system.lookup(name), undefined, `${name} was stopped`);
  await t.throwsAsync(bystander.ask({ type: 'get' }));
  await t.throwsAsync(system.spawn(Counter, { name: 'late', args: { from: 0 } }), { message: /stopped/ });
});

test('a child that cannot restart while a sibling is down is retried after the sibling\'s exit is handled, not until the intensity runs out', async (t) => {
  const system = await startSystem(t);
  const sup = await system.supervisor({ name: 'sup', strategy: 'one_for_one', intensity: 5, periodMs: 60_000 });
  const needed = await sup.spawn(Counter, { name: 'needed', args: { from: 0 } });
  const dependent = await sup.spawn(Dependent, { name: 'dependent', args: { needs: 'needed' } });
  // Both die at once, the dependent first: its restart is attempted while the exit of what it
  // needs still waits in the supervisor's queue.
  await Promise.all([system.control(dependent).kill('test'), system.control(needed).kill('test')]);
  await eventually(() => system.status().filter((c) => c.supervisor === 'sup').every((c) => c.running));
  t.true(sup.running, 'the supervisor did not give up');
  t.is(restarts(system, 'sup')['needed'], 1);
  t.true((restarts(system, 'sup')['dependent'] ?? 0) >= 1);
});

test('one_for_one: a restarted supervisor whose child cannot start yet still starts the children after it', async (t) => {
  const system = await startSystem(t);
  await system.spawn(Counter, { name: 'needed', args: { from: 0 } });
  // A long back-off keeps the failed child's retry waiting while the test looks at its siblings.
  const sup = await system.supervisor({ name: 'sup', strategy: 'one_for_one', backoff: { initialMs: 600_000, maxMs: 600_000 } });
  await sup.spawn(Dependent, { name: 'dependent', args: { needs: 'needed' } });
  await sup.spawn(Counter, { name: 'after', args: { from: 7 } });
  await system.root.terminateChild('needed');
  await system.root.terminateChild('sup');
  t.is(system.lookup('after'), undefined);
  // Restarted, the supervisor starts its children again: the dependent fails (what it needs is
  // down) and waits for its retry; under one_for_one that must not hold back its independent siblings.
  await system.root.restartChild('sup');
  await eventually(() => system.lookup('after') !== undefined);
  t.is(await value(system, 'after'), 7);
  t.is(system.lookup('dependent'), undefined, 'the dependent waits for its retry');
  t.true(sup.running);
});

test('a child supervisor that gives up is restarted by its parent, with its children', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5, periodMs: 60_000 } });
  const sup = await system.supervisor({ name: 'sup', intensity: 0 });
  const a = await sup.spawn(Counter, { name: 'a', args: { from: 3 } });
  a.tell({ type: 'add', n: 1 });
  await t.throwsAsync(a.ask({ type: 'boom' }));
  await eventually(() => system.lookup('a')?.incarnation === 1 && sup.running);
  t.is(await value(system, 'a'), 3);
  t.deepEqual(restarts(system, '/'), { sup: 1 });
});

test('a child supervisor stopped for good, by stopChild or as a temporary child that gave up, frees the names of its children', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5, periodMs: 60_000 } });
  const first = await system.supervisor({ name: 'sup' });
  (await first.spawn(Counter, { name: 'a', args: { from: 3 } })).tell({ type: 'add', n: 1 });
  t.is(await value(system, 'a'), 4);
  await system.root.stopChild('sup');
  t.is(system.lookup('a'), undefined);
  const second = await system.supervisor({ name: 'sup' });
  await second.spawn(Counter, { name: 'a', args: { from: 3 } });
  t.is(await value(system, 'a'), 3, 'a new actor under the old name');

  const temporary = await system.supervisor({ name: 'tmp', intensity: 0, restart: 'temporary' });
  const b = await temporary.spawn(Counter, { name: 'b', args: { from: 0 } });
  await t.throwsAsync(b.ask({ type: 'boom' }));
  await eventually(() => !system.status().some((c) => c.name === 'tmp'));
  await system.spawn(Counter, { name: 'b', args: { from: 7 } });
  t.is(await value(system, 'b'), 7);
});

test('restart back-off waits on the clock before restarting', async (t) => {
  const clock = new VirtualClock();
  const system = await startSystem(t, { clock });
  const sup = await system.supervisor({ name: 'sup', intensity: 5, periodMs: 60_000, backoff: { initialMs: 100, maxMs: 1000 } });
  const a = await sup.spawn(Counter, { name: 'a', args: { from: 0 } });
  await t.throwsAsync(a.ask({ type: 'boom' }));
  await eventually(() => clock.pending === 1);
  t.is(system.lookup('a'), undefined, 'not restarted before the back-off elapsed');
  clock.advance(99);
  t.is(system.lookup('a'), undefined);
  clock.advance(1);
  await eventually(() => system.lookup('a')?.incarnation === 1);
  await t.throwsAsync((system.lookup('a') as typeof a).ask({ type: 'boom' }));
  await eventually(() => clock.pending === 1);
  clock.advance(199);
  t.is(system.lookup('a'), undefined, 'the second restart waits twice as long');
  clock.advance(1);
  await eventually(() => system.lookup('a')?.incarnation === 2);
});

test('shutdown stops children last-started first and kills one that overruns its timeout', async (t) => {
  const system = await startSystem(t);
  await system.spawn(Stubborn, { name: 'first', args: { hang: false } });
  await system.spawn(Stubborn, { name: 'second', args: { hang: true }, shutdownMs: 20 });
  await system.spawn(Stubborn, { name: 'third', args: { hang: false } });
  await system.stop();
  // Other tests' Stubborn actors log to the same list; keep this test's own.
  t.deepEqual(stopLog.filter((name) => ['first', 'second', 'third'].includes(name)), ['third', 'second', 'first']);
  t.deepEqual((await system.terminated).kind, 'stopped');
});

test('temporary children are not brought back when their supervisor is restarted', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5, periodMs: 60_000 } });
  const sup = await system.supervisor({ name: 'sup', intensity: 0 });
  await sup.spawn(Counter, { name: 'temp', args: { from: 0 }, restart: 'temporary' });
  const perm = await sup.spawn(Counter, { name: 'perm', args: { from: 0 } });
  await t.throwsAsync(perm.ask({ type: 'boom' }));
  await eventually(() => system.lookup('perm')?.incarnation === 1);
  t.deepEqual(sup.children().map((c) => c.name), ['perm']);
  t.is(system.lookup('temp'), undefined);
});

test('stop does not wait for a pending restart back-off', async (t) => {
  const clock = new VirtualClock();
  const system = await startSystem(t, { clock });
  const sup = await system.supervisor({ name: 'sup', intensity: 5, backoff: { initialMs: 60_000, maxMs: 60_000 } });
  const a = await sup.spawn(Counter, { name: 'a', args: { from: 0 } });
  await t.throwsAsync(a.ask({ type: 'boom' }));
  await eventually(() => clock.pending === 1);
  await system.stop();
  t.deepEqual((await system.terminated).kind, 'stopped');
  t.is(clock.pending, 0, 'the back-off timer was cancelled');
});

test('timeouts a timer cannot honour are configuration errors', async (t) => {
  const system = await startSystem(t);
  const a = await system.spawn(Counter, { name: 'a', args: { from: 0 } });
  await t.throwsAsync(a.ask({ type: 'get' }, { timeoutMs: Infinity }), { instanceOf: ConfigError });
  await t.throwsAsync(a.ask({ type: 'get' }, { timeoutMs: -1 }), { instanceOf: ConfigError });
  await t.throwsAsync(system.spawn(Counter, { name: 'b', args: { from: 0 }, shutdownMs: 2 ** 40 }), { instanceOf: ConfigError });
  await system.spawn(Stubborn, { name: 'patient', args: { hang: false }, shutdownMs: Infinity });
});
