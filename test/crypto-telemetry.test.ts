import test from 'ava';
import { signAsync, verifyAsync } from '../actors/crypto-pool.js';
import { POOL_KEYS, PoolKeyTable } from '../actors/pool-keys.js';
import { SchemeRegistry, SigningKey } from '../protocols/crypto/index.js';
import { PoolSpans } from './fixtures/actors.js';
import { startSystem } from './helpers/system.js';

interface ExportedSpan {
  readonly name: string;
  readonly attributes: Record<string, unknown>;
}

test('pool signing and verification emit crypto.sign and crypto.verify spans naming algorithm and backend', async (t) => {
  const table = new PoolKeyTable(1);
  const system = await startSystem(t, {
    cryptoThreads: 1,
    workerPreload: [new URL('./fixtures/otel-preload.js', import.meta.url).href],
    poolShared: { [POOL_KEYS]: table.buffer },
  });
  const scheme = SchemeRegistry.create().get('ML-DSA-44+Ed25519');
  using key = SigningKey.generate(scheme, 1_700_000_000_000);
  const message = new TextEncoder().encode('commit');
  const signature = await signAsync(system, table.register(key), message);
  t.true(await verifyAsync(system, { scheme: scheme.name, publicKey: key.publicKey, message, signature }));
  const spans = (await system.runTask(PoolSpans, null)) as ExportedSpan[];
  const sign = spans.find((s) => s.name === 'crypto.sign');
  const verify = spans.find((s) => s.name === 'crypto.verify');
  if (!sign || !verify) return t.fail(`spans: ${spans.map((s) => s.name).join(', ')}`);
  for (const span of [sign, verify]) {
    t.is(span.attributes['crypto.algorithm'], 'ML-DSA-44+Ed25519');
    t.is(typeof span.attributes['crypto.backend'], 'string');
    t.true((span.attributes['crypto.duration_us'] as number) > 0);
    t.true((span.attributes['crypto.chatman_ticks'] as number) > 0);
  }
  t.is(verify.attributes['crypto.verified'], true);
  table.dispose();
});
