/**
 * A signer's key custody across rotations and restarts (actors/signer.ts, actors/key-custody.ts):
 * a successor sealed at proposal survives the signer, adoption retires the old key on disk, and a
 * damaged or ambiguous custody record is a typed error, never a guess.
 */
import test from 'ava';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Signer, type SignerArgs } from '../actors/signer.js';
import { Asker } from './fixtures/actors.js';
import { readCustody, writeCustody } from '../actors/key-custody.js';
import { KeyStore, stageFile } from '../actors/key-store.js';
import { CryptoError, decodeRotationCertificate, KeyManager, SchemeRegistry, SigningKey, encodeRotationCertificate, type KeyId } from '../protocols/crypto/index.js';
import { startSystem } from './helpers/system.js';
import { tempDir } from './helpers/temp.js';

const schemes = SchemeRegistry.create();

async function signerArgs(t: Parameters<typeof tempDir>[0]): Promise<SignerArgs> {
  return { cluster: 'test', replica: 'replica-3', directory: await tempDir(t, 'knhk-custody-'), member: 3, scheme: 'Ed25519', passphrase: 'custody', kdfLog2N: 10 };
}

type SignerRef = Awaited<ReturnType<typeof spawnSigner>>;

function spawnSigner(system: Awaited<ReturnType<typeof startSystem>>, name: string, args: SignerArgs) {
  return system.spawn(Signer, { name, args });
}

/** The keys a signer describes, or what it answered instead. */
function keysOf(answer: Awaited<ReturnType<SignerRef['ask']>>) {
  if (answer.type !== 'key') throw new Error(`expected the signer's keys, got ${JSON.stringify(answer)}`);
  return answer;
}

async function proposal(signer: SignerRef): Promise<Uint8Array> {
  const answer = await signer.ask({ type: 'propose-rotation' });
  if (answer.type !== 'rotation') throw new Error(`expected a rotation, got ${JSON.stringify(answer)}`);
  return answer.certificate;
}

test('a successor proposed by one incarnation is adopted by the next; the old key file goes, the history stays', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const first = await spawnSigner(system, 'first', args);
  const before = keysOf(await first.ask({ type: 'describe' }));
  t.like(before.key, { epoch: 0, fromSequence: 0 });
  t.is(before.key.untilSequence, undefined);
  const certificate = await proposal(first);
  t.deepEqual(await proposal(first), certificate, 'asked again, the pending proposal is answered');
  await system.root.stopChild('first');

  const second = await spawnSigner(system, 'second', args);
  t.is(keysOf(await second.ask({ type: 'describe' })).key.keyId, before.key.keyId, 'until adoption the old key signs');
  const adopted = keysOf(await second.ask({ type: 'adopt-rotation', certificate, sequence: 40 }));
  const next = decodeRotationCertificate(certificate).next;
  t.like(adopted.key, { keyId: next.keyId, epoch: 1, fromSequence: 40 });
  t.like(adopted.history[0], { keyId: before.key.keyId, untilSequence: 39 });
  t.deepEqual(await new KeyStore(args.directory, schemes).list(), [next.keyId], 'only the new key is stored');
  t.is(keysOf(await second.ask({ type: 'adopt-rotation', certificate, sequence: 40 })).key.keyId, next.keyId, 'adopting again changes nothing');
  await system.root.stopChild('second');

  const third = await spawnSigner(system, 'third', args);
  t.deepEqual(keysOf(await third.ask({ type: 'describe' })).history.map((k) => k.keyId), [before.key.keyId, next.keyId]);
});

test('asked for a successor of another scheme (a policy migration), a signer seals one, answers it again, adopts it in its next incarnation and signs with it; a third scheme waits while it is pending; a proposal given up is withdrawn', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const first = await spawnSigner(system, 'first', args);
  const answer = await first.ask({ type: 'propose-rotation', scheme: 'ML-DSA-44+Ed25519' });
  if (answer.type !== 'rotation') return t.fail(JSON.stringify(answer));
  const cert = decodeRotationCertificate(answer.certificate);
  t.deepEqual([cert.old.scheme, cert.next.scheme], ['Ed25519', 'ML-DSA-44+Ed25519']);
  t.deepEqual(await first.ask({ type: 'propose-rotation', scheme: 'ML-DSA-44+Ed25519' }), { ...answer, fresh: false }, 'asked again, the pending proposal is answered');
  t.like(await first.ask({ type: 'propose-rotation', scheme: 'ML-DSA-65' }), { type: 'refused', code: 'ROTATION_INVALID' });
  await t.throwsAsync(first.ask({ type: 'propose-rotation', scheme: 'Nope' } as never), { code: 'SCHEMA_ERROR' }, 'an unknown scheme is refused at the boundary');
  await system.root.stopChild('first');

  const second = await spawnSigner(system, 'second', args);
  t.like(keysOf(await second.ask({ type: 'adopt-rotation', certificate: answer.certificate, sequence: 7 })).key, { keyId: cert.next.keyId, scheme: 'ML-DSA-44+Ed25519', epoch: 1 });
  const head = { version: 1, cluster: args.cluster, size: 0, root: new Uint8Array(32), sequence: 7, view: 0, timestamp: 1, policy: 'hybrid' } as const;
  t.like(await second.ask({ type: 'sign-tree-head', head }), { type: 'head-signature', keyId: cert.next.keyId, scheme: 'ML-DSA-44+Ed25519' });

  // A proposal given up before it went to consensus is withdrawn: its key and file are gone, and another scheme may be proposed.
  const given = await second.ask({ type: 'propose-rotation', scheme: 'ML-DSA-65' });
  if (given.type !== 'rotation') return t.fail(JSON.stringify(given));
  const givenKey = decodeRotationCertificate(given.certificate).next.keyId;
  t.deepEqual(await second.ask({ type: 'withdraw-rotation', keyId: cert.next.keyId }), { type: 'withdrawn', withdrawn: false }, 'a key that is not pending is not withdrawn');
  t.deepEqual(await second.ask({ type: 'withdraw-rotation', keyId: givenKey }), { type: 'withdrawn', withdrawn: true });
  t.deepEqual(await new KeyStore(args.directory, schemes).list(), [cert.next.keyId], 'the withdrawn key file is deleted');
  const next = await second.ask({ type: 'propose-rotation', scheme: 'ML-DSA-44+Ed25519' });
  if (next.type !== 'rotation') return t.fail(JSON.stringify(next));
  t.not(decodeRotationCertificate(next.certificate).next.keyId, givenKey);
});

test('a pending proposal survives its signer: the next incarnation answers the same certificate, not as fresh, and can withdraw it; a file no record names stays', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const first = await spawnSigner(system, 'first', args);
  const inForce = keysOf(await first.ask({ type: 'describe' })).key.keyId;
  const made = await first.ask({ type: 'propose-rotation' });
  if (made.type !== 'rotation') return t.fail(JSON.stringify(made));
  t.true(made.fresh, 'made for this request');
  const { certificate } = made;
  const successor = decodeRotationCertificate(certificate).next.keyId;
  t.deepEqual((await readCustody(args.directory))?.pending, certificate, 'recorded before it was answered');
  t.like(await first.ask({ type: 'propose-rotation' }), { type: 'rotation', fresh: false }, 'asked again: pending from before, it may be under consensus');
  await system.root.stopChild('first');

  // A successor sealed but never recorded (a crash between the two writes, or a build that kept no record).
  const store = new KeyStore(args.directory, schemes, { kdf: { log2N: 10, r: 8, p: 1 } });
  const stray = SigningKey.generate(schemes.get('Ed25519'), Date.now());
  await store.save(stray, { notBefore: stray.createdAt, notAfter: stray.createdAt + 60_000 }, args.passphrase);
  const second = await spawnSigner(system, 'second', args);
  const again = await second.ask({ type: 'propose-rotation' });
  t.like(again, { type: 'rotation', fresh: false });
  t.deepEqual(again.type === 'rotation' ? again.certificate : undefined, certificate, 'the same proposal, not a new successor');
  t.deepEqual(await store.list(), [inForce, successor, stray.keyId].sort(), 'a file no record names stays');
  t.deepEqual(await second.ask({ type: 'withdraw-rotation', keyId: successor }), { type: 'withdrawn', withdrawn: true });
  t.is((await readCustody(args.directory))?.pending, undefined);
  t.deepEqual(await store.list(), [inForce, stray.keyId].sort());
  await system.root.stopChild('second');

  const third = await spawnSigner(system, 'third', args);
  t.not(decodeRotationCertificate(await proposal(third)).next.keyId, successor, 'a withdrawn proposal stays withdrawn');
  t.like(await third.ask({ type: 'adopt-rotation', certificate, sequence: 5 }), { type: 'refused', code: 'KEYSTORE_NOT_FOUND' }, 'and its key is gone');
});

test('the file of a key the record retired, left by a crash before its removal, and the temporaries of interrupted writes are removed as the store opens', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const signer = await spawnSigner(system, 'signer', args);
  const store = new KeyStore(args.directory, schemes);
  const retired = keysOf(await signer.ask({ type: 'describe' })).key.keyId as KeyId;
  const sealed = await readFile(store.pathOf(retired));
  const next = keysOf(await signer.ask({ type: 'adopt-rotation', certificate: await proposal(signer), sequence: 10 })).key.keyId as KeyId;
  await system.root.stopChild('signer');
  await writeFile(store.pathOf(retired), sealed);
  t.deepEqual(await store.list(), [retired, next].sort());
  // Writes a crash stopped between staging and renaming: a key file's and the record's.
  const staged = [await stageFile(store.pathOf(retired), sealed), await stageFile(join(args.directory, 'custody.json'), new Uint8Array(1))];
  // Not the store's: another file's temporary, names without the random part, a directory.
  const others = [await stageFile(join(args.directory, 'notes.txt'), new Uint8Array(1)), join(args.directory, '.custody.json.tmp'), join(args.directory, 'notes.tmp')];
  for (const path of others.slice(1)) await writeFile(path, 'not a temporary of the store');
  const directory = `.${basename(store.pathOf(next))}.0000000000000000.tmp`;
  await mkdir(join(args.directory, directory));
  await spawnSigner(system, 'again', args);
  t.deepEqual(await store.list(), [next]);
  const left = await readdir(args.directory);
  for (const path of staged) t.false(left.includes(basename(path)), `${basename(path)} removed`);
  for (const path of others) t.true(left.includes(basename(path)), `${basename(path)} stays`);
  t.true(left.includes(directory), 'a directory named like a temporary stays');
});

test('a pending rotation recorded for another key than the one in force, or undecodable, is KEYSTORE_CORRUPT', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const signer = await spawnSigner(system, 'signer', args);
  const first = await proposal(signer);
  keysOf(await signer.ask({ type: 'adopt-rotation', certificate: first, sequence: 10 }));
  await system.root.stopChild('signer');
  const custody = await readCustody(args.directory);
  if (custody === undefined) return t.fail('no custody record');
  // The first rotation again, as pending: it replaces a key no longer in force.
  await writeCustody(args.directory, { keys: custody.keys, pending: first });
  const stale = await t.throwsAsync(spawnSigner(system, 'stale', args));
  t.regex(stale?.message ?? '', /KEYSTORE_CORRUPT|pending rotation that does not replace the key in force/);
  await writeCustody(args.directory, { keys: custody.keys, pending: Uint8Array.of(1, 2, 3) });
  const garbled = await t.throwsAsync(spawnSigner(system, 'garbled', args));
  t.regex(garbled?.message ?? '', /pending rotation that does not decode/);
  await writeCustody(args.directory, { keys: custody.keys });
  await t.notThrowsAsync(spawnSigner(system, 'mended', args));
});

test('adopting a rotation superseded since answers the key in force: a restarted replica carries out its rotations from the first', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const signer = await spawnSigner(system, 'signer', args);
  const first = await proposal(signer);
  keysOf(await signer.ask({ type: 'adopt-rotation', certificate: first, sequence: 10 }));
  const second = await proposal(signer);
  const current = keysOf(await signer.ask({ type: 'adopt-rotation', certificate: second, sequence: 20 })).key;
  t.is(current.epoch, 2);
  t.deepEqual(keysOf(await signer.ask({ type: 'adopt-rotation', certificate: first, sequence: 10 })).key, current);
  t.deepEqual(keysOf(await signer.ask({ type: 'describe' })).history.map((k) => k.epoch), [0, 1, 2], 'and changes nothing');
});

test("a rotation of another member's key is refused and the signer keeps its key", async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const signer = await spawnSigner(system, 'signer', args);
  const before = keysOf(await signer.ask({ type: 'describe' }));
  // Proposed a second after the key's creation: in the same millisecond the new window would end
  // with the old one, which a rotation may not do.
  const created = Date.now();
  const stranger = new KeyManager({ cluster: 'test', member: 1, schemes, key: SigningKey.generate(schemes.get('Ed25519'), created) });
  const foreign = encodeRotationCertificate(stranger.propose(created + 1_000));
  t.like(await signer.ask({ type: 'adopt-rotation', certificate: foreign, sequence: 5 }), { type: 'refused', code: 'ROTATION_INVALID' });
  t.like(await signer.ask({ type: 'adopt-rotation', certificate: new Uint8Array([1, 2, 3]), sequence: 5 }), { type: 'refused', code: 'ROTATION_INVALID' });
  t.is(keysOf(await signer.ask({ type: 'describe' })).key.keyId, before.key.keyId);
  t.like(await signer.ask({ type: 'sign', digest: new Uint8Array(32) }), { type: 'signature' });
});

test('a signer signs and adopts rotations for its replica\'s actor only, proposes for no actor, and signs tree heads of its own cluster only', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  const signer = await spawnSigner(system, 'signer', args);
  const intruder = await system.spawn(Asker, { name: 'intruder' });
  const replica = await system.spawn(Asker, { name: args.replica });
  const as = (actor: typeof intruder, message: unknown): Promise<unknown> => actor.ask({ type: 'ask', to: signer, message });
  const head = { version: 1, cluster: args.cluster, size: 1, root: new Uint8Array(32), sequence: 1, view: 0, timestamp: 0, policy: 'classical' } as const;
  const certificate = await proposal(signer);
  const forbidden = { type: 'refused', code: 'FORBIDDEN' };
  for (const message of [{ type: 'sign', digest: new Uint8Array(32) }, { type: 'sign-tree-head', head }, { type: 'adopt-rotation', certificate, sequence: 9 }, { type: 'propose-rotation' }]) {
    t.like(await as(intruder, message), forbidden, `${message.type} from another actor`);
  }
  t.like(await as(intruder, { type: 'describe' }), { type: 'key' }, 'the public keys are anyone\'s to read');
  t.like(await as(replica, { type: 'sign', digest: new Uint8Array(32) }), { type: 'signature' });
  t.like(await as(replica, { type: 'sign-tree-head', head }), { type: 'head-signature' });
  t.like(await as(replica, { type: 'sign-tree-head', head: { ...head, cluster: 'another' } }), forbidden, 'a tree head of another cluster');
  t.like(await as(replica, { type: 'propose-rotation' }), forbidden, 'a rotation is proposed by the cluster, not its replica');
  t.like(await as(replica, { type: 'adopt-rotation', certificate, sequence: 9 }), { type: 'key', key: { epoch: 1, fromSequence: 9 } });
  t.like(await signer.ask({ type: 'sign', digest: new Uint8Array(32) }), { type: 'signature' }, 'plain code owns the system');
});

test('a damaged custody record, one whose keys do not chain, one that describes its key otherwise than the key file, and several keys with no record are KEYSTORE_CORRUPT', async (t) => {
  const system = await startSystem(t);
  const args = await signerArgs(t);
  await spawnSigner(system, 'signer', args);
  await system.root.stopChild('signer');
  const history = (await readCustody(args.directory))?.keys ?? [];
  t.is(history.length, 1);

  await writeCustody(args.directory, { keys: [...history, { ...(history[0] as (typeof history)[number]), epoch: 5, fromSequence: 9 }] });
  await t.throwsAsync(readCustody(args.directory), { instanceOf: CryptoError, message: /do not chain/ });
  await writeFile(join(args.directory, 'custody.json'), '{"version":1,"keys":[{"keyId":');
  await t.throwsAsync(readCustody(args.directory), { instanceOf: CryptoError, message: /not a custody record/ });
  const refused = await t.throwsAsync(spawnSigner(system, 'again', args));
  t.regex(refused?.message ?? '', /custody/);

  // A record naming the sealed key but describing another public key: the cluster would learn that one.
  await writeCustody(args.directory, { keys: history });
  const [record] = history as [(typeof history)[number]];
  await writeCustody(args.directory, { keys: [{ ...record, descriptor: { ...record.descriptor, publicKey: SigningKey.generate(schemes.get('Ed25519'), Date.now()).publicKey } }] });
  const described = await t.throwsAsync(spawnSigner(system, 'described', args));
  t.regex(described?.message ?? '', /custody\.json describes key .* otherwise than its sealed key file/);
  // The window too is sealed with the key: a record that lengthens the key's life is refused.
  await writeCustody(args.directory, { keys: [{ ...record, descriptor: { ...record.descriptor, notAfter: record.descriptor.notAfter + 365 * 86_400_000 } }] });
  const lengthened = await t.throwsAsync(spawnSigner(system, 'lengthened', args));
  t.regex(lengthened?.message ?? '', /custody\.json describes key .* otherwise than its sealed key file: .*sealed with validity window/);
  await writeCustody(args.directory, { keys: history });
  await t.notThrowsAsync(spawnSigner(system, 'restored', args), 'the record as it was opens again');

  // Two key files and no record saying which one signs.
  const bare = await signerArgs(t);
  const store = new KeyStore(bare.directory, schemes, { kdf: { log2N: 10, r: 8, p: 1 } });
  for (const offset of [0, 1]) {
    const key = SigningKey.generate(schemes.get('Ed25519'), Date.now() + offset);
    await store.save(key, { notBefore: key.createdAt, notAfter: key.createdAt + 60_000 }, bare.passphrase);
  }
  const ambiguous = await t.throwsAsync(spawnSigner(system, 'ambiguous', bare));
  t.regex(ambiguous?.message ?? '', /2 keys and no custody record/);
  t.is((await readdir(bare.directory)).filter((f) => f === 'custody.json').length, 0, 'nothing is written over an ambiguous store');
});

test('a signer restarted with another key lifetime still certifies its key as the cluster knows it, and says when a rotation is due', async (t) => {
  const system = await startSystem(t);
  const args = { ...(await signerArgs(t)), keyLifetimeMs: 600_000, rotationLeadMs: 60_000 };
  const first = await spawnSigner(system, 'first', args);
  const known = keysOf(await first.ask({ type: 'describe' })).key;
  t.is(known.notAfter - known.notBefore, 600_000);
  t.like(await first.ask({ type: 'rotation-due' }), { type: 'due', due: false }, 'a fresh key is not due');
  await system.root.stopChild('first');

  // The cluster now gives keys 90 days, due a minute before their end: the key in force keeps its window.
  const second = await spawnSigner(system, 'second', { ...args, keyLifetimeMs: 90 * 86_400_000, rotationLeadMs: 86_400_000 * 89 + 86_340_000 });
  t.like(await second.ask({ type: 'rotation-due' }), { type: 'due', due: true }, 'judged by its own window, it is due');
  const cert = decodeRotationCertificate(await proposal(second));
  t.deepEqual(
    [cert.old.keyId, cert.old.notBefore, cert.old.notAfter],
    [known.keyId, known.notBefore, known.notAfter],
    'the certificate replaces the key with the window the replicas hold',
  );
  t.is(cert.next.notAfter - cert.next.notBefore, 90 * 86_400_000, 'the successor gets the new lifetime');
});
