import test from 'ava';
import fc from 'fast-check';
import { decodeValue, encodeValue } from '../runtime/envelope.js';
import { ActorNotRunning, AskTimeout, MailboxFull, MessageTooLarge, RemoteFailure, SpawnError, VirtualClock } from '../runtime/index.js';
import { Counter, Digest, Forwarder, Hasher, Misnamed, Observer, Peer, Sink, Tally, Ticker } from './fixtures/actors.js';
import { testSeed } from './helpers/seed.js';
import { eventually, nextDeadLetter, startSystem } from './helpers/system.js';

for (const thread of [false, true]) {
  const kind = thread ? 'worker-backed' : 'in-thread';

  test(`${kind}: tell and ask`, async (t) => {
    const system = await startSystem(t);
    const counter = await system.spawn(Counter, { name: 'c', thread, args: { from: 40 } });
    counter.tell({ type: 'add', n: 2 });
    t.is(await counter.ask({ type: 'get' }), 42);
    t.is(counter.thread === 0, !thread);
  });

  test(`${kind}: garbage bytes become a dead letter and the next valid message is processed`, async (t) => {
    const system = await startSystem(t);
    const counter = await system.spawn(Counter, { name: 'c', thread, args: { from: 1 } });
    const garbage = nextDeadLetter(system);
    system.injectRaw(counter, new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0xc1]));
    const letter = await garbage;
    t.is(letter.reason, 'invalid');
    t.is(letter.to, 'c#0');
    t.is(letter.error?.code, 'DECODE_ERROR');

    const invalid = nextDeadLetter(system);
    system.injectRaw(counter, encodeValue({ type: 'add', n: 'two' }, 1024));
    const schemaLetter = await invalid;
    t.is(schemaLetter.error?.code, 'SCHEMA_ERROR');
    t.deepEqual(schemaLetter.message, { type: 'add', n: 'two' });

    const unknownType = nextDeadLetter(system);
    system.injectRaw(counter, encodeValue({ type: 'drop_tables' }, 1024));
    t.is((await unknownType).error?.code, 'SCHEMA_ERROR');

    // msgpackr's error extension naming `valueOf` decodes to an internal table of functions.
    const poison = nextDeadLetter(system);
    const ascii = (text: string): number[] => [...text].map((c) => c.charCodeAt(0));
    system.injectRaw(counter, new Uint8Array([0x81, 0xa4, ...ascii('type'), 0xd4, 0x65, 0x00, 0x91, 0xa7, ...ascii('valueOf')]));
    t.is((await poison).error?.code, 'DECODE_ERROR');

    const badBatch = nextDeadLetter(system);
    system.injectRaw(counter, new Uint8Array([0, 0, 0, 9, 0, 3, 0x93, 0xc1, 0xc1, 1, 2, 3, 4]), 'batch');
    const batchLetter = await badBatch;
    t.is(batchLetter.to, '?');
    t.is(batchLetter.error?.code, 'DECODE_ERROR');

    counter.tell({ type: 'add', n: 1 });
    t.is(await counter.ask({ type: 'get' }), 2, 'the actor kept its state and keeps working');
    t.is((await system.control(counter).status()).incarnation, 0, 'no restart happened');
  });

  test(`${kind}: urgent messages overtake bulk traffic`, async (t) => {
    const system = await startSystem(t);
    const counter = await system.spawn(Counter, { name: 'c', thread, args: { from: 0 } });
    for (let i = 0; i < 2000; i++) counter.tell({ type: 'add', n: 1 });
    // Generous timeouts: these asks queue behind a flood, on a machine other tests are loading too.
    t.is(await counter.ask({ type: 'get' }, { urgent: true, timeoutMs: 120_000 }), 0, 'the urgent ask was handled before the flood');
    t.is(await counter.ask({ type: 'get' }, { timeoutMs: 120_000 }), 2000, 'bulk order is FIFO and nothing was lost');
  });

  test(`${kind}: a message for an old incarnation is a dead letter, never delivered to its successor`, async (t) => {
    const system = await startSystem(t, { root: { intensity: 5 } });
    const first = await system.spawn(Counter, { name: 'c', thread, args: { from: 7 } });
    first.tell({ type: 'add', n: 1 });
    t.is(await first.ask({ type: 'get' }), 8);
    const ended = system.watch(first);
    first.tell({ type: 'boom' });
    t.is((await ended).kind, 'crash');
    await eventually(() => system.lookup('c') !== undefined);
    const second = system.lookup<typeof first extends { tell(m: infer M): void } ? M : never, number>('c');
    t.is(second?.incarnation, 1);
    const stale = nextDeadLetter(system, (l) => l.to === 'c#0');
    first.tell({ type: 'add', n: 100 });
    t.is((await stale).reason, thread ? 'unreachable' : 'not-running');
    await t.throwsAsync(first.ask({ type: 'get' }), { instanceOf: ActorNotRunning });
    t.is(await second?.ask({ type: 'get' }), 7, 'the new incarnation starts fresh and never saw the stale message');
  });

  test(`${kind}: mailbox overflow rejects with MailboxFull, or drops the oldest`, async (t) => {
    const system = await startSystem(t);
    const strict = await system.spawn(Counter, { name: 'strict', thread, args: { from: 0 }, mailbox: { capacity: 2 } });
    const patient = { timeoutMs: 120_000 };
    const pending = [strict.ask({ type: 'slow', ms: 20 }, patient), ...Array.from({ length: 6 }, () => strict.ask({ type: 'get' }, patient))];
    const results = await Promise.allSettled(pending);
    const rejected = results.filter((r) => r.status === 'rejected');
    t.true(rejected.length >= 1, 'some asks found the mailbox full');
    for (const r of rejected) t.true((r as PromiseRejectedResult).reason instanceof MailboxFull, String((r as PromiseRejectedResult).reason));

    const lossy = await system.spawn(Counter, { name: 'lossy', thread, args: { from: 0 }, mailbox: { capacity: 2, overflow: 'drop-oldest' } });
    const dropped: unknown[] = [];
    system.onDeadLetter((l) => l.reason === 'dropped-oldest' && dropped.push(l.message));
    // Sent in one turn, all five land in the mailbox (in-thread, or as one batch) before it drains.
    for (let n = 1; n <= 5; n++) lossy.tell({ type: 'add', n });
    const droppedSum = (): number => dropped.reduce<number>((s, m) => s + ((m as { n?: number }).n ?? 0), 0);
    // The urgent lane is separate, so asking cannot push another add out of the bulk lane.
    t.is(await lossy.ask({ type: 'get' }, { urgent: true }), 0);
    await eventually(async () => (await lossy.ask({ type: 'get' }, { urgent: true })) === 9);
    t.is(droppedSum(), 6, 'the three oldest adds were dropped and reported; the two newest applied');
  });
}

test('a reply too large to encode fails the ask with MessageTooLarge at once', async (t) => {
  const system = await startSystem(t, { maxMessageBytes: 1024, root: { intensity: 5 } });
  for (const thread of [false, true]) {
    const observer = await system.spawn(Observer, { name: `o${thread}`, thread });
    await t.throwsAsync(observer.ask({ type: 'blob', size: 4096 }, { timeoutMs: 600_000 }), { instanceOf: MessageTooLarge });
  }
});

test('actors telling each other in one thread cannot starve its timers', async (t) => {
  const system = await startSystem(t);
  const a = await system.spawn(Peer, { name: 'a' });
  const b = await system.spawn(Peer, { name: 'b' });
  const control = system.control(b);
  const seenByTimer = new Promise<number>((resolve) => setTimeout(() => void control.status().then((s) => resolve(s.handler.handled)), 0));
  a.tell({ type: 'greet', to: b, count: 60_000 });
  const handledWhenTimerFired = await seenByTimer;
  t.true(handledWhenTimerFired < 60_000, `the timer fired while b still had a backlog (${handledWhenTimerFired} handled)`);
  await eventually(async () => (await b.ask({ type: 'received' }, { timeoutMs: 120_000 })) === 60_000, 120_000);
});

test('ask rejects with AskTimeout when no reply comes, and the late reply is a dead letter', async (t) => {
  const system = await startSystem(t);
  const sink = await system.spawn(Sink, { name: 'sink', thread: true });
  await t.throwsAsync(sink.ask({ type: 'data', seq: 1, body: new Uint8Array(1) }, { timeoutMs: 30 }), { instanceOf: AskTimeout });
  const counter = await system.spawn(Counter, { name: 'c', args: { from: 3 } });
  const late = nextDeadLetter(system, (l) => l.reason === 'late-reply');
  await t.throwsAsync(counter.ask({ type: 'slow', ms: 60 }, { timeoutMs: 5 }), { instanceOf: AskTimeout });
  t.is((await late).message, 3);
});

test('a handler that throws during an ask fails the ask with RemoteFailure and crashes the actor', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  const ended = system.watch(counter);
  await t.throwsAsync(counter.ask({ type: 'boom' }), { instanceOf: RemoteFailure, message: /boom/ });
  t.is((await ended).kind, 'crash');
});

test('oversized messages: the sender gets MessageTooLarge, an oversized inbound frame is a dead letter', async (t) => {
  const system = await startSystem(t, { maxMessageBytes: 1024 });
  const echo = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  const sink = await system.spawn(Sink, { name: 'sink', thread: true });
  t.throws(() => sink.tell({ type: 'data', seq: 0, body: new Uint8Array(4096) }), { instanceOf: MessageTooLarge });
  const letter = nextDeadLetter(system);
  const big = new Uint8Array(4096);
  system.injectRaw(echo, big);
  t.is((await letter).error?.code, 'MESSAGE_TOO_LARGE');
  t.is(await echo.ask({ type: 'get' }), 0);
});

test('messages to a stopped actor are dead letters that the user can observe', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 }, restart: 'transient' });
  const ended = system.watch(counter);
  counter.tell({ type: 'stop' });
  t.is((await ended).kind, 'normal');
  const letter = nextDeadLetter(system);
  counter.tell({ type: 'add', n: 1 });
  const dl = await letter;
  t.is(dl.to, 'c#0');
  t.deepEqual(dl.message, { type: 'add', n: 1 });
  t.true(system.deadLetterCount >= 1);
  t.is(system.lookup('c'), undefined, 'a transient child that stopped normally is not restarted');
});

test('sends to one thread within one turn are coalesced into one postMessage', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  await counter.ask({ type: 'get' });
  const before = system.linkStats(counter.thread);
  for (let i = 0; i < 500; i++) counter.tell({ type: 'add', n: 1 });
  t.is(await counter.ask({ type: 'get' }), 500);
  const after = system.linkStats(counter.thread);
  if (!before || !after) return t.fail('no link to the worker');
  t.is(after.frames - before.frames, 501);
  t.is(after.posts - before.posts, 1, '500 tells and an ask in one turn travel as a single batch');
});

test('large batch buffers return to the thread that sent them and carry later batches', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  await counter.ask({ type: 'get' });
  const before = system.linkStats(counter.thread);
  // Each round fills several batch buffers; the worker hands them back with its reply.
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 20_000; i++) counter.tell({ type: 'add', n: 1 });
    t.is(await counter.ask({ type: 'get' }), (round + 1) * 20_000);
  }
  const after = system.linkStats(counter.thread);
  if (!before || !after) return t.fail('no link to the worker');
  t.true(after.posts - before.posts > 4, 'the bursts filled several buffers each');
  t.true(after.reused - before.reused > 0, 'later bursts were written into buffers the worker gave back');
});

test('timers fire on the virtual clock, repeat, cancel, and die with their incarnation', async (t) => {
  const clock = new VirtualClock();
  const system = await startSystem(t, { clock });
  const ticker = await system.spawn(Ticker, { name: 'ticker' });
  await ticker.ask({ type: 'arm', ms: 10, repeat: true });
  clock.advance(35);
  t.is(await ticker.ask({ type: 'fired' }), 3);
  ticker.tell({ type: 'disarm' });
  await ticker.ask({ type: 'fired' });
  clock.advance(100);
  t.is(await ticker.ask({ type: 'fired' }), 3);
  await ticker.ask({ type: 'arm', ms: 10, repeat: true });
  t.is(clock.pending, 1);
  await system.control(ticker).crash('test');
  t.is(clock.pending, 0, 'a crash cancels the timers of the incarnation');
});

test('timers fire in a worker thread on the real clock', async (t) => {
  const system = await startSystem(t);
  const ticker = await system.spawn(Ticker, { name: 'ticker', thread: true });
  await ticker.ask({ type: 'arm', ms: 1, repeat: false });
  await eventually(async () => (await ticker.ask({ type: 'fired' })) === 1);
  t.is(await ticker.ask({ type: 'fired' }), 1);
});

test('watch delivers a terminated signal to a watching actor in another thread', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const observer = await system.spawn(Observer, { name: 'observer', thread: true });
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  await observer.ask({ type: 'watch', target: counter });
  counter.tell({ type: 'boom' });
  await eventually(async () => ((await observer.ask({ type: 'signals' })) as string[]).length > 0);
  t.deepEqual(await observer.ask({ type: 'signals' }), ['terminated c#0 crash']);
  await observer.ask({ type: 'watch', target: counter });
  await eventually(async () => ((await observer.ask({ type: 'signals' })) as string[]).length > 1);
  t.deepEqual(await observer.ask({ type: 'signals' }), ['terminated c#0 crash', 'terminated c#0 noproc'], 'watching a dead incarnation signals at once');
});

test('watching a running incarnation again changes nothing: one terminated signal per watcher', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const observer = await system.spawn(Observer, { name: 'observer', thread: true });
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  for (let k = 0; k < 3; k++) await observer.ask({ type: 'watch', target: counter });
  counter.tell({ type: 'boom' });
  await eventually(async () => ((await observer.ask({ type: 'signals' })) as string[]).length > 0);
  // A signal of a second watch would arrive with the first one's: ask again once more after it.
  await observer.ask({ type: 'signals' });
  t.deepEqual(await observer.ask({ type: 'signals' }), ['terminated c#0 crash']);
});

test('an actor whose tell cannot be delivered receives an undeliverable signal', async (t) => {
  const system = await startSystem(t);
  const observer = await system.spawn(Observer, { name: 'observer', thread: true });
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  await system.root.stopChild('c');
  await observer.ask({ type: 'poke', target: counter });
  await eventually(async () => ((await observer.ask({ type: 'signals' })) as string[]).length > 0);
  t.deepEqual(await observer.ask({ type: 'signals' }), ['undeliverable c#0 ACTOR_NOT_RUNNING']);
});

test('pool tasks run off the calling thread, from plain code and from a worker actor', async (t) => {
  const system = await startSystem(t, { cryptoThreads: 1 });
  const direct = await system.runTask(Digest, { bytes: new Uint8Array([1, 2, 3]) });
  t.is(direct.digest.length, 32);
  t.not(direct.thread, 0);
  const hasher = await system.spawn(Hasher, { name: 'hasher', thread: true });
  const viaActor = await hasher.ask({ type: 'hash', bytes: new Uint8Array([1, 2, 3]) });
  t.deepEqual(viaActor.digest, direct.digest);
  t.not(viaActor.thread, hasher.thread, 'the digest was computed on a pool thread, not the actor thread');
});

test('control plane: status, inspect and crash through comlink', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 5 } });
  counter.tell({ type: 'add', n: 1 });
  await counter.ask({ type: 'get' });
  const control = system.control(counter);
  const status = await control.status();
  t.is(status.name, 'c');
  t.is(status.thread, counter.thread);
  t.is(status.handler.handled, 2);
  t.true(status.handler.maxTicks >= 0);
  t.true(status.handler.p99Ticks <= status.handler.maxTicks + 0.25, 'the p99 of handler times is at most their maximum');
  t.true(status.eventLoopDelay.max >= 0);
  t.deepEqual(await control.inspect(), { n: 6 });
  const ended = system.watch(counter);
  await control.crash('injected');
  const reason = await ended;
  t.is(reason.kind, 'crash');
  t.regex(reason.kind === 'crash' ? reason.error.message : '', /injected/);
});

test('a control-plane crash or exit resolves even when the thread ends before its answer arrives', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  for (const op of ['crash', 'exit'] as const) {
    const ref = await system.spawn(Counter, { name: op, thread: true, args: { from: 0 } });
    await ref.ask({ type: 'get' });
    const ended = system.watch(ref);
    const control = system.control(ref);
    const asked = op === 'crash' ? control.crash('asked to') : control.exit(3);
    // This thread busy while the worker answers and ends: both events then wait, and the end can
    // be handled first (it was, every time, before crash and exit waited for either).
    const until = performance.now() + 150;
    while (performance.now() < until);
    await t.notThrowsAsync(asked, op);
    t.is((await ended).kind, 'crash');
  }
});

test('work an actor measures outside its handlers counts in its handler times', async (t) => {
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 0 } });
  t.is(await counter.ask({ type: 'later', ms: 3 }), 0);
  const { handler } = await system.control(counter).status();
  t.is(handler.handled, 1, 'a measured piece is not a message');
  t.true(handler.maxTicks >= 24, `3 ms of measured work is at least 24 ticks (max ${handler.maxTicks})`);
  t.true(handler.overBudget >= 1);
  t.true(handler.p99Ticks >= 24, 'the measured piece is in the histogram');
});

test('spawn fails with SpawnError for a missing export, invalid arguments or a taken name', async (t) => {
  const system = await startSystem(t);
  await t.throwsAsync(system.spawn(Misnamed, { name: 'm', thread: true, args: { from: 0 } }), { instanceOf: SpawnError, message: /NoSuchExport/ });
  await t.throwsAsync(system.spawn(Counter, { name: 'bad-args', thread: true, args: { from: 'x' as unknown as number } }), { instanceOf: SpawnError });
  await t.throwsAsync(system.spawn(Counter, { name: 'bad-args-local', args: { from: 'x' as unknown as number } }), { instanceOf: SpawnError });
  await system.spawn(Counter, { name: 'taken', args: { from: 0 } });
  await t.throwsAsync(system.spawn(Counter, { name: 'taken', args: { from: 0 } }), { instanceOf: SpawnError, message: /taken/ });
  t.deepEqual(system.status().map((c) => c.name), ['taken']);
});

test('kill ends a worker whose event loop is blocked; its pending asks fail at once, not at their timeout', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const counter = await system.spawn(Counter, { name: 'c', thread: true, args: { from: 4 } });
  const control = system.control(counter);
  counter.tell({ type: 'spin' });
  const stuck = counter.ask({ type: 'get' }, { timeoutMs: 600_000 });
  await control.kill('stuck in a loop');
  await t.throwsAsync(stuck, { instanceOf: ActorNotRunning });
  await t.throwsAsync(control.status(), { instanceOf: ActorNotRunning }, 'the old control plane answers, it does not hang');
  t.throws(() => system.control(counter), { instanceOf: ActorNotRunning });
  await eventually(() => system.lookup('c')?.incarnation === 1);
  t.is(await value(system, 'c'), 4);
});

test('an ask held by an async handler fails with ActorNotRunning when its in-thread actor is crashed from outside', async (t) => {
  const system = await startSystem(t, { root: { intensity: 5 } });
  const counter = await system.spawn(Counter, { name: 'c', args: { from: 0 } });
  const held = counter.ask({ type: 'hold' }, { timeoutMs: 600_000 });
  await eventually(async () => (await system.control(counter).status()).handler.handled === 1);
  await system.control(counter).kill('test');
  await t.throwsAsync(held, { instanceOf: ActorNotRunning });
});

async function value(system: Awaited<ReturnType<typeof startSystem>>, name: string): Promise<number> {
  const ref = system.lookup<{ type: 'get' }, number>(name);
  if (!ref) throw new Error(`${name} is not running`);
  return ref.ask({ type: 'get' });
}

test('property: whatever bytes arrive, an actor handles exactly the valid messages, reports every other one as a dead letter, and keeps running', async (t) => {
  const seed = testSeed(t);
  const system = await startSystem(t);
  const counter = await system.spawn(Counter, { name: 'c', args: { from: 0 } });
  let letters = 0;
  system.onDeadLetter(() => letters++);
  const arbitraryPayload = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.anything().map((v) => encodeValue(v, 1 << 20)),
    fc.record({ type: fc.constantFrom('add', 'get', 'nope'), n: fc.oneof(fc.integer(), fc.string(), fc.constant(null)) }, { requiredKeys: ['type'] }).map((v) => encodeValue(v, 1 << 20)),
  );
  await fc.assert(
    fc.asyncProperty(arbitraryPayload, async (payload) => {
      let valid: boolean;
      try {
        Counter.messages.parse(decodeValue(payload));
        valid = true;
      } catch {
        valid = false;
      }
      const before = letters;
      system.injectRaw(counter, payload);
      await counter.ask({ type: 'get' });
      return letters - before === (valid ? 0 : 1);
    }),
    { seed, numRuns: 300 },
  );
  t.is((await system.control(counter).status()).incarnation, 0, 'no input crashed the actor');
});

test('two worker actors that first message each other at the same moment both get everything', async (t) => {
  const system = await startSystem(t);
  const a = await system.spawn(Peer, { name: 'a', thread: true });
  const b = await system.spawn(Peer, { name: 'b', thread: true });
  a.tell({ type: 'greet', to: b, count: 300 });
  b.tell({ type: 'greet', to: a, count: 300 });
  await eventually(async () => (await a.ask({ type: 'received' })) === 300 && (await b.ask({ type: 'received' })) === 300);
  t.is(await a.ask({ type: 'received' }), 300);
  t.is(await b.ask({ type: 'received' }), 300);
  t.is(system.deadLetterCount, 0);
});

test('one-letter names and scalar messages make the shortest frames, which are valid', async (t) => {
  const system = await startSystem(t);
  for (const thread of [false, true]) {
    const tally = await system.spawn(Tally, { name: thread ? 'w' : 'n', thread });
    tally.tell(5);
    tally.tell(-2);
    t.is(await tally.ask(0), 3);
  }
  t.is(system.deadLetterCount, 0);
});

test('a worker actor that stops itself: every message sent to it is either handled or reported, none vanishes', async (t) => {
  const system = await startSystem(t);
  const sink = await system.spawn(Sink, { name: 'sink' });
  const forwarder = await system.spawn(Forwarder, { name: 'fwd', thread: true, restart: 'temporary', args: { to: sink } });
  let reported = 0;
  system.onDeadLetter((l) => {
    if ((l.message as { type?: string } | undefined)?.type === 'item') reported++;
  });
  let over = false;
  const ended = system.watch(forwarder).then(() => (over = true));
  forwarder.tell({ type: 'stop' });
  let sent = 0;
  while (!over) {
    forwarder.tell({ type: 'item', seq: sent++ });
    await new Promise((resolve) => setImmediate(resolve));
  }
  await ended;
  const handled = (await sink.ask({ type: 'count' })) as number;
  t.log(`${sent} sent: ${handled} handled, ${reported} reported as dead letters`);
  t.true(sent > 0);
  t.is(handled + reported, sent);
});
