/**
 * A forced signature backend reaches every thread that signs or verifies for a cluster: its
 * signers, its verifier's pool tasks, the receipt checks and tree-head checks on the pool. Seen in
 * the `crypto.backend` attribute of the `crypto.sign` and `crypto.verify` spans of every thread.
 */
import test from 'ava';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ActorSystem } from '../actors/system.js';
import { verifyAsync } from '../actors/crypto-pool.js';
import { SchemeRegistry } from '../protocols/crypto/index.js';
import { built, modulesLoadedBy } from './helpers/modules.js';

/** The backends named by the crypto spans of a classical cluster's run, forced to `backend` or left to choose. */
async function backendsUsed(backend: 'noble' | 'node' | undefined): Promise<{ sign: Set<unknown>; verify: Set<unknown> }> {
  const exporter = new InMemorySpanExporter();
  const system = await ActorSystem.start({ cryptoThreads: 2, telemetry: { spanProcessors: [new SimpleSpanProcessor(exporter)] } });
  try {
    const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, ...(backend === undefined ? {} : { cryptoBackend: backend }) });
    const submitted = await cluster.submit({ type: 'put', key: 'k', value: 'v' });
    await submitted.receipt;
    await system.telemetry?.flush();
    const spans = exporter.getFinishedSpans();
    const of = (name: string): Set<unknown> => new Set(spans.filter((s) => s.name === name).map((s) => s.attributes['crypto.backend']));
    return { sign: of('crypto.sign'), verify: of('crypto.verify') };
  } finally {
    await system.stop();
  }
}

test.serial('a cluster forced to the noble backend signs and verifies with noble in every thread; left to choose, Ed25519 runs on node:crypto', async (t) => {
  t.timeout(180_000);
  const forced = await backendsUsed('noble');
  t.deepEqual([...forced.sign], ['noble'], 'signers');
  t.deepEqual([...forced.verify], ['noble'], 'verifier pool tasks, tree heads and receipts');
  const chosen = await backendsUsed(undefined);
  t.deepEqual([...chosen.sign], ['node'], 'the registry prefers node:crypto for Ed25519, so the forced run proves the option');
  t.deepEqual([...chosen.verify], ['node']);
});

test.serial('a pool job names the backend it verifies with; a backend that cannot be forced is refused at spawn', async (t) => {
  const exporter = new InMemorySpanExporter();
  const system = await ActorSystem.start({ cryptoThreads: 1, telemetry: { spanProcessors: [new SimpleSpanProcessor(exporter)] } });
  t.teardown(() => system.stop());
  const scheme = SchemeRegistry.create().get('Ed25519');
  const { publicKey, secretKey } = scheme.keygen(new Uint8Array(32).fill(3));
  const message = Uint8Array.of(1, 2, 3);
  const signature = scheme.sign(secretKey, message);
  for (const backend of ['noble', { Ed25519: 'node' }]) t.true(await verifyAsync(system, { scheme: 'Ed25519', publicKey, message, signature, backend }));
  // One name forces every scheme, and node:crypto has no Falcon or SLH-DSA: it cannot be forced whole.
  // (Errors cross the pool as messages: the class is not kept.)
  await t.throwsAsync(verifyAsync(system, { scheme: 'Ed25519', publicKey, message, signature, backend: 'node' }), { message: /no usable backend among node/ });
  await system.telemetry?.flush();
  t.deepEqual(
    exporter.getFinishedSpans().filter((s) => s.name === 'crypto.verify').map((s) => s.attributes['crypto.backend']).slice(0, 2),
    ['noble', 'node'],
  );
  await t.throwsAsync(system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', cryptoBackend: 'openssl-9' }), { code: 'UNKNOWN_BACKEND' });
  await t.throwsAsync(system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', cryptoBackend: { 'Falcon-512': 'node' } }), { code: 'BACKEND_UNAVAILABLE' });
});

test('importing the crypto layer leaves noble\'s Falcon unloaded: it builds its tables as it loads, in every thread, and is loaded when first used', async (t) => {
  const loaded = await modulesLoadedBy(`await import(${JSON.stringify(built('protocols/crypto/index.js'))});`);
  t.true(loaded.some((url) => url.endsWith('/@noble/post-quantum/ml-dsa.js')), 'the hook saw noble load');
  t.deepEqual(loaded.filter((url) => url.includes('/@noble/post-quantum/falcon')), []);
});
