/**
 * Signature policy migration in a running cluster (DESIGN.md "Cryptography"): classical → hybrid
 * → quantum, each step one configuration command agreed by consensus that replaces every member's
 * key at once; the cluster goes on committing under each policy, the verifier takes the new keys
 * and refuses envelopes signed with the old ones, and a step that is not the next one is refused.
 */
import test from 'ava';
import type { ActorSystem } from '../runtime/index.js';
import { ActorSystem as KnhkSystem } from '../actors/system.js';
import type { Cluster, Submitted } from '../actors/cluster.js';
import { hashBytes } from '../protocols/consensus/index.js';
import { CryptoError } from '../protocols/crypto/index.js';
import { receiptToJson, verifyReceipt, type Receipt } from '../protocols/receipts/index.js';
import { tempDir } from './helpers/temp.js';
import { accepts, actor, signature } from './helpers/cluster-actors.js';
import { eventually } from './helpers/system.js';

/** Submits `count` puts and waits until every replica executed the last; returns the distinct state hashes and the last submission. */
async function commitAll(cluster: Cluster, prefix: string, count: number): Promise<{ readonly hashes: Set<string>; readonly last: Submitted }> {
  let last: Submitted | undefined;
  for (let k = 0; k < count; k++) last = await cluster.submit({ type: 'put', key: `${prefix}-${k}`, value: 'v' });
  if (last === undefined) throw new Error('nothing submitted');
  for (let i = 0; i < cluster.n; i++) await cluster.executedUpTo(i, last.position);
  return { hashes: new Set((await cluster.status()).map((s) => s.stateHash)), last };
}

/** The verdict on `receipt` against the cluster's trust now, as a receipt verifier with its trust file would reach it. */
const verdictOf = (cluster: Cluster, receipt: Receipt) => verifyReceipt(JSON.parse(JSON.stringify(receiptToJson(receipt))), cluster.trust);

test('test_signature_policy_migration on a running cluster: classical → hybrid → quantum, every member\'s key at once, committing under each policy', async (t) => {
  t.timeout(180_000);
  const system = await KnhkSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10 });
  const before = await commitAll(cluster, 'classical', 3);
  t.is(before.hashes.size, 1);
  const classicalReceipt = await before.last.receipt;
  const digest = hashBytes(new TextEncoder().encode('an envelope signed under the classical policy'));
  const classical = await signature(system, cluster, 2, digest);

  await t.throwsAsync(cluster.migratePolicy('quantum'), { instanceOf: CryptoError, code: 'POLICY_TRANSITION_INVALID' }, 'no step is skipped');
  const hybrid = await cluster.migratePolicy('hybrid');
  t.like(hybrid, { from: 'classical', to: 'hybrid' });
  t.is(cluster.policy, 'hybrid');
  t.deepEqual(hybrid.keys.map((key) => [key.scheme, key.epoch, key.fromSequence]), [0, 1, 2, 3].map(() => ['ML-DSA-65+Ed25519', 1, hybrid.sequence]));
  t.deepEqual(cluster.keys.map((key) => key.keyId), hybrid.keys.map((key) => key.keyId));
  t.false(await accepts(system, cluster, 2, digest, classical), 'an envelope signed with a classical key no longer counts');
  t.true(await accepts(system, cluster, 2, digest, classical, { view: 0, sequence: hybrid.sequence }), 'a classical vote cast before the step still counts inside a certificate');
  t.true(await accepts(system, cluster, 2, digest, await signature(system, cluster, 2, digest)), 'the signer signs under the hybrid policy');
  const during = await commitAll(cluster, 'hybrid', 3);
  t.is(during.hashes.size, 1, 'the cluster commits under the hybrid policy, every replica alike');
  const hybridReceipt = await during.last.receipt;
  t.like(hybridReceipt, { body: { policy: 'hybrid' }, treeHead: { policy: 'hybrid' } });
  t.true(hybridReceipt.signatures.every((signature) => signature.scheme === 'ML-DSA-65+Ed25519'));

  const quantum = await cluster.migratePolicy('quantum');
  t.like(quantum, { from: 'hybrid', to: 'quantum' });
  t.true(quantum.sequence > hybrid.sequence);
  t.deepEqual(new Set(quantum.keys.map((key) => key.scheme)), new Set(['ML-DSA-65']));
  const after = await commitAll(cluster, 'quantum', 3);
  t.is(after.hashes.size, 1, 'and under the quantum policy');
  const quantumReceipt = await after.last.receipt;
  t.like(quantumReceipt, { body: { policy: 'quantum' }, treeHead: { policy: 'quantum' } });
  t.deepEqual(cluster.trust.migrations, [
    { policy: 'hybrid', sequence: hybrid.sequence },
    { policy: 'quantum', sequence: quantum.sequence },
  ]);
  for (const [phase, receipt] of [['classical', classicalReceipt], ['hybrid', hybridReceipt], ['quantum', quantumReceipt]] as const) {
    const verdict = verdictOf(cluster, receipt);
    t.true(verdict.ok, `a receipt made under the ${phase} policy verifies against the trust after both steps: ${JSON.stringify(verdict)}`);
  }
  const relabelled = verifyReceipt(JSON.parse(JSON.stringify(receiptToJson({ ...hybridReceipt, body: { ...hybridReceipt.body, policy: 'quantum' } }))), cluster.trust);
  t.like(relabelled, { ok: false, check: 'policy' }, 'a receipt claiming another policy than the one in force at its position is refused');
  await t.throwsAsync(cluster.migratePolicy('classical'), { instanceOf: CryptoError, code: 'POLICY_TRANSITION_INVALID' }, 'no step back');
  const stats = (await actor(system, cluster, 'verifier').ask({ type: 'stats' })) as { rotationsRefused: number; reportsRefused: number };
  t.like(stats, { rotationsRefused: 0, reportsRefused: 0 }, 'the verifier took every report');
  const restarts = (await cluster.status()).map((replica) => replica.restarts);
  // Commands in flight as the verifier dies: the envelopes nobody can check meanwhile are lost, not fatal.
  const inFlight = Promise.all([1, 2, 3].map((i) => cluster.submit({ type: 'put', key: `during-${i}`, value: 'v' })));
  await system.control(actor(system, cluster, 'verifier')).kill('test: the verifier dies after both steps');
  await inFlight;
  const survived = await cluster.status();
  t.log(`envelopes dropped unchecked while the verifier restarted: ${survived.reduce((sum, replica) => sum + replica.refused.unverified, 0)}`);
  t.deepEqual(survived.map((replica) => replica.restarts), restarts, 'no replica crashed with the verifier');
  const fresh = hashBytes(new TextEncoder().encode('after the verifier restarted'));
  await eventually(async () => accepts(system, cluster, 2, fresh, await signature(system, cluster, 2, fresh)).catch(() => false));
  t.false(await accepts(system, cluster, 2, digest, classical), 'the restarted verifier took both steps from the cluster: no classical envelope');
  t.true(await accepts(system, cluster, 2, digest, classical, { view: 0, sequence: hybrid.sequence }), 'and a classical vote still counts inside a certificate');
  const automatic = await cluster.rotateKey(1);
  t.is(automatic.key.scheme, 'ML-DSA-65', 'a later rotation stays within the policy');
});

test('after a migration a crashed replica comes back under the new policy, and a cluster stopped whole starts again from its data directory in the policy it had reached', async (t) => {
  t.timeout(240_000);
  const dataDir = await tempDir(t, 'knhk-migrated-');
  const options = { id: 'migrated', protocol: 'raft', n: 3, policy: 'classical', dataDir, passphrase: 'migrated', kdfLog2N: 10 } as const;
  const run = async <T>(use: (system: ActorSystem, cluster: Cluster) => Promise<T>): Promise<T> => {
    const system = await KnhkSystem.start({ cryptoThreads: 1 });
    try {
      return await use(system, await system.spawnCluster(options));
    } finally {
      await system.stop();
    }
  };
  const first = await run(async (_, cluster) => {
    await commitAll(cluster, 'before', 2);
    const step = await cluster.migratePolicy('hybrid');
    await cluster.crash(1);
    for (let k = 0; k < 2; k++) await cluster.submit({ type: 'put', key: `while-down-${k}`, value: 'v' });
    await cluster.restart(1);
    const { hashes, last } = await commitAll(cluster, 'after', 2);
    t.is(hashes.size, 1, 'the restarted replica caught up under the hybrid policy');
    t.true(verdictOf(cluster, await last.receipt).ok);
    return { step, last: last.position, subject: { client: last.client, timestamp: last.timestamp }, status: await cluster.status() };
  });
  await run(async (system, cluster) => {
    // Known from the signers' keys as the cluster starts, before any replica reports the step again.
    t.is(cluster.policy, 'hybrid', 'the cluster starts in the policy it had reached');
    t.deepEqual(cluster.trust.migrations, [{ policy: 'hybrid', sequence: first.step.sequence }]);
    for (let i = 0; i < cluster.n; i++) await cluster.executedUpTo(i, first.last);
    t.deepEqual((await cluster.status()).map((s) => s.stateHash), first.status.map((s) => s.stateHash), 'every replica rebuilds its state, configuration included');
    t.deepEqual(cluster.keys.map((key) => key.scheme), ['ML-DSA-65+Ed25519', 'ML-DSA-65+Ed25519', 'ML-DSA-65+Ed25519']);
    const { hashes, last } = await commitAll(cluster, 'restarted', 2);
    t.is(hashes.size, 1);
    t.is(cluster.policy, 'hybrid', 'and stays there as the replicas report the step again');
    t.deepEqual(cluster.trust.migrations, [{ policy: 'hybrid', sequence: first.step.sequence }]);
    const verdict = verdictOf(cluster, await last.receipt);
    t.true(verdict.ok, JSON.stringify(verdict));
    const earlier = verdictOf(cluster, await cluster.receipt(first.subject));
    t.true(earlier.ok, `a receipt of a position executed under the hybrid policy before the stop, read back from the stores: ${JSON.stringify(earlier)}`);
    const digest = hashBytes(new TextEncoder().encode('after the cold start'));
    t.true(await accepts(system, cluster, 2, digest, await signature(system, cluster, 2, digest)), 'the verifier takes the hybrid keys');
  });
});

test('a HotStuff cluster migrates too: it commits with the hybrid keys, every replica alike, and its receipts are the hybrid policy\'s', async (t) => {
  t.timeout(180_000);
  const system = await KnhkSystem.start({ cryptoThreads: 1 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'hotstuff', n: 4, policy: 'classical', kdfLog2N: 10 });
  await commitAll(cluster, 'classical', 2);
  const digest = hashBytes(new TextEncoder().encode('a HotStuff vote'));
  const classical = await signature(system, cluster, 1, digest);
  const step = await cluster.migratePolicy('hybrid');
  t.deepEqual(step.keys.map((key) => key.scheme), [0, 1, 2, 3].map(() => 'ML-DSA-65+Ed25519'));
  t.false(await accepts(system, cluster, 1, digest, classical), 'an envelope signed with a classical key no longer counts');
  const { hashes, last } = await commitAll(cluster, 'hybrid', 3);
  t.is(hashes.size, 1, 'every replica executed the same commands under the hybrid policy');
  const receipt = await last.receipt;
  t.like(receipt, { body: { policy: 'hybrid' }, treeHead: { policy: 'hybrid' } });
  t.true(receipt.signatures.every((signature) => signature.scheme === 'ML-DSA-65+Ed25519'));
  t.true(verdictOf(cluster, receipt).ok);
  t.true(await accepts(system, cluster, 1, digest, await signature(system, cluster, 1, digest)), 'the verifier takes the hybrid keys');
  const stats = (await actor(system, cluster, 'verifier').ask({ type: 'stats' })) as { rotationsRefused: number; reportsRefused: number };
  t.like(stats, { rotationsRefused: 0, reportsRefused: 0 });
});
