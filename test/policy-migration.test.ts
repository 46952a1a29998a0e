/**
 * Signature policy migration in a running cluster (DESIGN.md "Cryptography"): classical → hybrid
 * → quantum, each step one configuration command agreed by consensus that replaces every member's
 * key at once; the cluster goes on committing under each policy, the verifier takes the new keys
 * and refuses envelopes signed with the old ones, and a step that is not the next one is refused.
 */
import test from 'ava';
import type { ActorRef, ActorSystem } from '../runtime/index.js';
import { ActorSystem as KnhkSystem } from '../actors/system.js';
import type { Cluster, Submitted } from '../actors/cluster.js';
import { hashBytes } from '../protocols/consensus/index.js';
import { CryptoError } from '../protocols/crypto/index.js';
import { receiptToJson, verifyReceipt, type Receipt } from '../protocols/receipts/index.js';

type Ask = ActorRef<{ readonly type: string; readonly [field: string]: unknown }, unknown>;

function actor(system: ActorSystem, cluster: Cluster, name: string): Ask {
  const ref = system.lookup(`${cluster.id}/${name}`);
  if (ref === undefined) throw new Error(`${name} is not running`);
  return ref as Ask;
}

/** Whether the cluster's verifier accepts `signature` as replica `node`'s envelope signature over `digest`. */
async function accepts(system: ActorSystem, cluster: Cluster, node: number, digest: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const answer = (await actor(system, cluster, 'verifier').ask({ type: 'verify', checks: [{ node, digest, signature }] })) as { verdicts: boolean[] };
  return answer.verdicts[0] === true;
}

async function signature(system: ActorSystem, cluster: Cluster, node: number, digest: Uint8Array): Promise<Uint8Array> {
  return ((await actor(system, cluster, `signer-${node}`).ask({ type: 'sign', digest })) as { signature: Uint8Array }).signature;
}

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
  const automatic = await cluster.rotateKey(1);
  t.is(automatic.key.scheme, 'ML-DSA-65', 'a later rotation stays within the policy');
});
