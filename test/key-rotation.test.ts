/**
 * Key rotation in a running cluster (DESIGN.md "Cryptography"): agreed through consensus, taken
 * up by the verifier and the signer, reflected in the trust receipts are checked against; the old
 * key stops counting, the old secret is gone, and restarted signers and verifiers keep the new key.
 */
import test from 'ava';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActorRef } from '../runtime/index.js';
import { ActorSystem as KnhkSystem } from '../actors/system.js';
import { configurationResponse, hashBytes } from '../protocols/consensus/index.js';
import { CryptoError, decodeRotationCertificate } from '../protocols/crypto/index.js';
import { receiptToJson, verifyReceipt } from '../protocols/receipts/index.js';
import type { ClientResult } from '../actors/client.js';
import { eventually } from './helpers/system.js';
import { accepts, actor, signature } from './helpers/cluster-actors.js';

test('a key rotated through consensus: the new key signs and counts, the old one no longer does, and its secret is gone', async (t) => {
  const system = await KnhkSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10 });
  for (let k = 0; k < 3; k++) await cluster.submit({ type: 'put', key: `before-${k}`, value: 'v' });
  const digest = hashBytes(new TextEncoder().encode('signed before the rotation'));
  const before = await signature(system, cluster, 1, digest);
  t.true(await accepts(system, cluster, 1, digest, before));
  const oldKey = cluster.keys[1];

  const rotation = await cluster.rotateKey(1);
  t.is(String(rotation.previous.keyId), String(oldKey?.keyId));
  t.not(String(rotation.key.keyId), String(oldKey?.keyId ?? ""));
  t.is(rotation.key.epoch, 1);
  t.is(rotation.key.fromSequence, rotation.sequence);
  t.is(cluster.keys[1]?.keyId, rotation.key.keyId);
  t.deepEqual(
    cluster.trust.members[1]?.keys.map((k) => [k.keyId, k.validFrom, k.validUntil]),
    [
      [oldKey?.keyId, 0, rotation.sequence - 1],
      [rotation.key.keyId, rotation.sequence, undefined],
    ],
    'the trust names both keys, each with the positions it signs for',
  );

  t.false(await accepts(system, cluster, 1, digest, before), 'the retired key no longer signs envelopes');
  // Replica 1 had executed the rotation's position when its signer adopted the new key: its reach (h + L) covers it.
  t.true(await accepts(system, cluster, 1, digest, before, { view: 0, sequence: rotation.sequence }), 'a vote it cast before the rotation still counts inside a certificate');
  t.false(await accepts(system, cluster, 1, digest, before, { view: 0, sequence: rotation.sequence + 100_000 }), 'but not one for a position it had not reached with that key');
  t.false(await accepts(system, cluster, 1, digest, before, { view: 100_000, sequence: rotation.sequence }), 'nor one in a view it had not reached');
  t.false(await accepts(system, cluster, 1, digest, before, {}), 'nor one standing nowhere');
  t.true(await accepts(system, cluster, 1, digest, await signature(system, cluster, 1, digest)), 'the signer signs with the new key');
  const files = await readdir(join(cluster.dataDir, 'replica-1', 'keys'));
  t.deepEqual(files.filter((f) => f.endsWith('.key')).sort(), [`${rotation.key.keyId}.key`], 'the old key file is deleted');

  const after = await cluster.submit({ type: 'put', key: 'after', value: 'v' });
  t.true(after.position > rotation.sequence);
  for (let i = 0; i < 4; i++) await cluster.executedUpTo(i, after.position);
  const hashes = new Set((await cluster.status()).map((s) => s.stateHash));
  t.is(hashes.size, 1, 'every replica holds the same state, configuration included');
  const verdict = verifyReceipt(receiptToJson(await after.receipt), cluster.trust);
  t.true(verdict.ok, `a receipt after the rotation verifies against the new trust: ${JSON.stringify(verdict)}`);

  // A second rotation chains on the first.
  const second = await cluster.rotateKey(1);
  t.is(second.key.epoch, 2);
  t.is(second.previous.keyId, rotation.key.keyId);
});

test('a rotation is carried out by the replicas that installed it, whoever ordered it; tampered and replayed certificates change nothing; restarted signers and verifiers keep the rotated key', async (t) => {
  const system = await KnhkSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', kdfLog2N: 10 });
  await cluster.submit({ type: 'put', key: 'k', value: 'v' });
  const signer = actor(system, cluster, 'signer-2');
  const old = hashBytes(new TextEncoder().encode('signed with the key that is rotated away'));
  const oldSignature = await signature(system, cluster, 2, old);
  const { certificate } = (await signer.ask({ type: 'propose-rotation' })) as { certificate: Uint8Array };
  const next = decodeRotationCertificate(certificate).next;
  const client = actor(system, cluster, 'client') as unknown as ActorRef<{ type: 'configure'; payload: Uint8Array }, ClientResult>;
  const tampered = certificate.slice();
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
  const refused = configurationResponse((await client.ask({ type: 'configure', payload: tampered })).response);
  t.like(refused, { ok: false, error: 'ROTATION_INVALID' }, 'a tampered certificate is refused by the replicas');
  t.is(cluster.keys[2]?.epoch, 0);
  // Reports in replica 2's name from anyone but replica 2 count for nothing: the verifier would
  // otherwise take this uncommitted rotation on the word of whoever sent it.
  const verifier = actor(system, cluster, 'verifier');
  verifier.tell({ type: 'installed', reporter: 2, certificate, sequence: 9 });
  verifier.tell({ type: 'adopted', member: 2, keyId: next.keyId, through: {} });
  t.like(await verifier.ask({ type: 'stats' }), { reportsRefused: 2, rotationsRefused: 0 });
  const agent = actor(system, cluster, 'agent');
  agent.tell({ type: 'rotation', node: 2, certificate, sequence: 9 });
  agent.tell({ type: 'adopted', node: 2, keyId: next.keyId, through: {} });
  t.like(await agent.ask({ type: 'rotations' }), { rotations: [] }, 'nor does the cluster agent take them');
  t.is(cluster.keys[2]?.epoch, 0);

  // Ordered without rotateKey (as if its caller had given up), while replica 2 is down: the
  // replicas carry it out all the same, replica 2 once it is back.
  await cluster.crash(2);
  const installed = await client.ask({ type: 'configure', payload: certificate });
  t.like(configurationResponse(installed.response), { ok: true, member: 2, epoch: 1, keyId: next.keyId });
  // Still pending at its signer, the proposal is what a rotation sends again; the replicas refuse
  // the replay, and the successor must outlive the refusal for replica 2 to adopt it.
  await t.throwsAsync(cluster.rotateKey(2), { instanceOf: CryptoError, code: 'ROTATION_INVALID' });
  await cluster.restart(2);
  await eventually(() => cluster.keys[2]?.keyId === next.keyId);
  t.is(cluster.keys[2]?.fromSequence, installed.position);
  t.like(configurationResponse((await client.ask({ type: 'configure', payload: certificate })).response), { ok: false, error: 'ROTATION_INVALID' }, 'a replayed certificate is refused');

  await system.control(signer).kill('test: the signer dies after the rotation');
  await system.control(actor(system, cluster, 'verifier')).kill('test: the verifier dies after the rotation');
  const digest = hashBytes(new TextEncoder().encode('after the restarts'));
  let fresh: Uint8Array | undefined;
  await eventually(async () => {
    fresh = await signature(system, cluster, 2, digest).catch(() => undefined);
    return fresh !== undefined && (await accepts(system, cluster, 2, digest, fresh).catch(() => false));
  });
  const described = (await actor(system, cluster, 'signer-2').ask({ type: 'describe' })) as { key: { keyId: string; epoch: number } };
  t.like(described.key, { keyId: next.keyId, epoch: 1 }, 'the restarted signer holds the key in force');
  t.false(await accepts(system, cluster, 2, old, oldSignature), 'the restarted verifier refuses the old key on an envelope');
  t.true(await accepts(system, cluster, 2, old, oldSignature, { view: 1 }), 'and takes it inside a certificate, in a term its member had reached');
  t.false(await accepts(system, cluster, 2, old, oldSignature, { view: 100_000 }), 'but not in a term it had not');
  const last = await cluster.submit({ type: 'put', key: 'k', value: 'w' });
  t.true(last.position > installed.position, 'the cluster commits after the restarts');
});

test('keys rotate by themselves ahead of expiry: every replica gets a successor through consensus, and the cluster goes on committing with verifiable receipts', async (t) => {
  t.timeout(180_000);
  const system = await KnhkSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  // Keys live 10 minutes and are due 9 m 50 s before their end: each is due 10 s after it is made.
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, keyLifetimeMs: 600_000, rotationLeadMs: 590_000, rotationCheckMs: 200 });
  const first = cluster.keys.map((k) => k.keyId);
  t.true(cluster.keys.every((k) => k.epoch === 0 && k.notAfter - k.notBefore === 600_000), 'keys get the cluster\'s lifetime');
  await cluster.submit({ type: 'put', key: 'before', value: '0' });
  // Nothing calls rotateKey: the cluster asks the signers and rotates the keys that are due.
  await eventually(() => cluster.keys.every((k, i) => k.keyId !== first[i]), 150_000);
  for (const [i, key] of cluster.keys.entries()) {
    t.true(key.epoch >= 1 && key.fromSequence > 0, `replica ${i} rotated`);
    t.true(key.notAfter - key.notBefore <= 600_000, 'a successor gets the same lifetime');
  }
  const after = await cluster.submit({ type: 'put', key: 'after', value: '1' });
  const verdict = verifyReceipt(await after.receipt, cluster.trust);
  t.true(verdict.ok, JSON.stringify(verdict));
  t.true(cluster.trust.members.every((m) => m.keys.length >= 2), 'the trust names each replica\'s old and new keys');
});

test('automatic rotation settings that cannot work are refused', async (t) => {
  const system = await KnhkSystem.start({ cryptoThreads: 1 });
  t.teardown(() => system.stop());
  const day = 24 * 3_600_000;
  for (const bad of [
    { keyLifetimeMs: 0 },
    { keyLifetimeMs: 91 * day },
    { keyLifetimeMs: 1000, rotationLeadMs: 1000 },
    { rotationCheckMs: -1 },
    { rotationLeadMs: 60_000, rotationCheckMs: 60_000 },
    { rotationCheckMs: 30 * day },
  ]) {
    await t.throwsAsync(system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', ...bad }), { name: 'ConfigError' }, JSON.stringify(bad));
  }
});
