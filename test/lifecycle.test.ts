import test from 'ava';
import { ActorSystem, ConfigError } from '../runtime/index.js';
import { Counter, Digest, Hasher, Observer, Ticker } from './fixtures/actors.js';

// The kinds of handle a system creates; the test runner's own pipes and file requests come and go.
const OURS = new Set(['Timeout', 'Immediate', 'MessagePort', 'Worker']);

function resources(): string[] {
  return process.getActiveResourcesInfo().filter((r) => OURS.has(r)).sort();
}

test.serial('stop leaves no live handle behind: threads, ports, timers and the pool are all closed', async (t) => {
  const baseline = resources();
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  const a = await system.spawn(Counter, { name: 'a', thread: true, args: { from: 0 } });
  const b = await system.spawn(Observer, { name: 'b', thread: true });
  const ticker = await system.spawn(Ticker, { name: 'ticker', thread: true });
  const local = await system.spawn(Ticker, { name: 'local' });
  const hasher = await system.spawn(Hasher, { name: 'hasher', thread: true });
  await b.ask({ type: 'watch', target: a });
  await b.ask({ type: 'poke', target: a });
  await ticker.ask({ type: 'arm', ms: 60_000, repeat: true });
  await local.ask({ type: 'arm', ms: 60_000, repeat: true });
  await hasher.ask({ type: 'hash', bytes: new Uint8Array(8) });
  await system.runTask(Digest, { bytes: new Uint8Array(8) });
  await (await system.control(a)).status();
  t.log('while running:', resources().join(' '));
  t.true(resources().length > baseline.length, 'the system did hold resources while running');
  await system.stop();
  t.deepEqual(resources(), baseline);
});

test('bad system options are configuration errors', async (t) => {
  await t.throwsAsync(ActorSystem.start({ cryptoThreads: 0 }), { instanceOf: ConfigError });
  await t.throwsAsync(ActorSystem.start({ maxMessageBytes: 1 }), { instanceOf: ConfigError });
  await t.throwsAsync(ActorSystem.start({ root: { intensity: -1 } }), { instanceOf: ConfigError });
  await t.throwsAsync(ActorSystem.start({ root: { strategy: 'all_for_none' as 'one_for_one' } }), { instanceOf: ConfigError });
});
