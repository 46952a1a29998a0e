/**
 * The verifier's rule on time: an envelope counts only while the key that signed it is within its
 * validity window, by the wall clock its signer refuses by too; a vote inside a certificate counts
 * after its key's window closed, since it was cast before. And its rule on signature policy
 * migrations: a step is taken on f+1 replicas' reports, every member's key at once.
 */
import test from 'ava';
import { Verifier } from '../actors/verifier.js';
import { hashBytes } from '../protocols/consensus/index.js';
import { describeKey, encodeRotationCertificate, KeyManager, SchemeRegistry, SigningKey, type ValidityWindow } from '../protocols/crypto/index.js';
import { Relay } from './fixtures/actors.js';
import { eventually, startSystem } from './helpers/system.js';

const digest = hashBytes(new TextEncoder().encode('prepare, view 0, sequence 3'));

test('an envelope counts only while its key is within its window, a cached verdict included; a vote inside a certificate counts after', async (t) => {
  const system = await startSystem(t, { cryptoThreads: 1 });
  const scheme = SchemeRegistry.create().get('Ed25519');
  const now = Date.now();
  // Member 0's window closes in ten seconds, ample for the checks made before it does even on a
  // loaded machine (they take milliseconds); member 1's opens in an hour.
  const windows: ValidityWindow[] = [
    { notBefore: now - 60_000, notAfter: now + 10_000 },
    { notBefore: now + 3_600_000, notAfter: now + 7_200_000 },
  ];
  const keys = windows.map((window) => SigningKey.generate(scheme, Math.min(now, window.notBefore)));
  t.teardown(() => keys.forEach((key) => key.dispose()));
  const members = keys.map((key, i) => ({ ...describeKey(key, windows[i] as ValidityWindow), epoch: 0, fromSequence: 0 }));
  const verifier = await system.spawn(Verifier, { name: 'verifier', args: { cluster: 'test', policy: 'classical', members, replicas: ['replica-0', 'replica-1'] } });
  const check = (node: number, nested?: { view: number; sequence: number }) => ({ node, digest, signature: (keys[node] as SigningKey).sign(digest), ...(nested === undefined ? {} : { nested }) });
  const verdicts = async (...checks: ReturnType<typeof check>[]): Promise<readonly boolean[]> => ((await verifier.ask({ type: 'verify', checks })) as { readonly verdicts: readonly boolean[] }).verdicts;

  t.deepEqual(await verdicts(check(0), check(0, { view: 0, sequence: 3 })), [true, true], 'within its window, on an envelope and inside a certificate');
  t.true(Date.now() < (windows[0] as ValidityWindow).notAfter, 'the checks above were made inside the window');
  t.deepEqual(await verdicts(check(1), check(1, { view: 0, sequence: 3 })), [false, true], 'a key whose window has not opened signs no envelope');
  t.like(await verifier.ask({ type: 'stats' }), { expired: 1, rejected: 0 });

  await eventually(() => Date.now() >= (windows[0] as ValidityWindow).notAfter, 60_000);
  t.deepEqual(await verdicts(check(0)), [false], 'the same envelope, once the window closed: the verdict kept from before does not outlive it');
  t.deepEqual(await verdicts(check(0, { view: 0, sequence: 3 })), [true], 'a vote inside a certificate still counts');
  t.like(await verifier.ask({ type: 'stats' }), { expired: 2, rejected: 0 });
});

test('a policy step takes effect on f+1 replicas\' reports, a member\'s own not enough; an adoption reported before it is applied with it; each key is judged under the policy that admitted it', async (t) => {
  const system = await startSystem(t, { cryptoThreads: 1 });
  const schemes = SchemeRegistry.create();
  const now = Date.now();
  const managers = [0, 1, 2].map((member) => new KeyManager({ cluster: 'test', member, schemes, key: SigningKey.generate(schemes.get('Ed25519'), now - 1000) }));
  t.teardown(() => managers.forEach((m) => m.dispose()));
  const members = managers.map((m) => ({ ...m.directory.current(m.member).descriptor, epoch: 0, fromSequence: 0 }));
  const replicas = ['replica-0', 'replica-1', 'replica-2'];
  const verifier = await system.spawn(Verifier, { name: 'verifier', args: { cluster: 'test', policy: 'classical', members, replicas, reportQuorum: 2 } });
  const relays = await Promise.all(replicas.map((name) => system.spawn(Relay, { name })));
  const from = (i: number, message: unknown): void => (relays[i] as (typeof relays)[number]).tell({ type: 'relay', to: verifier, message });
  const accepted = async (member: number, signature: Uint8Array, nested?: { sequence: number }): Promise<boolean> =>
    ((await verifier.ask({ type: 'verify', checks: [{ node: member, digest, signature, ...(nested === undefined ? {} : { nested }) }] })) as { readonly verdicts: readonly boolean[] }).verdicts[0] === true;
  /** Whether member `member`'s envelope signed with the key its manager signs with now counts. */
  const envelope = (member: number): Promise<boolean> => accepted(member, (managers[member] as KeyManager).sign(Date.now(), digest).signature);
  const old = managers.map((m) => m.sign(Date.now(), digest).signature);

  const rotations = managers.map((m) => m.propose(now, schemes.get('ML-DSA-44+Ed25519')));
  const step = { type: 'migrated', from: 'classical', to: 'hybrid', sequence: 5, certificates: rotations.map(encodeRotationCertificate) };
  from(0, { ...step, reporter: 0 });
  from(0, { type: 'adopted', member: 0, keyId: rotations[0]?.next.keyId, through: { sequence: 5 } });
  rotations.forEach((cert, member) => (managers[member] as KeyManager).applyRotation(cert, 5));
  // Give the relayed reports time to land (another sender's messages are not ordered with ours) before checking nothing changed.
  await eventually(async () => !(await envelope(0)) && (await accepted(0, old[0] as Uint8Array)), 10_000);
  t.false(await envelope(1), 'one replica\'s report, the member\'s own among them, does not take the step');

  from(1, { ...step, reporter: 1 });
  await eventually(() => envelope(1), 10_000);
  t.true(await envelope(0), 'the hybrid keys sign envelopes once f+1 replicas reported the step');
  t.false(await accepted(0, old[0] as Uint8Array), 'member 0 had reported adopting its key: its classical key no longer signs envelopes');
  t.true(await accepted(0, old[0] as Uint8Array, { sequence: 5 }), 'but its vote cast before counts inside a certificate, under the classical policy');
  t.true(await accepted(1, old[1] as Uint8Array), 'member 1 has not adopted yet: its classical key still signs envelopes');
  t.like(await verifier.ask({ type: 'stats' }), { rotationsRefused: 0, reportsRefused: 0 });
});
