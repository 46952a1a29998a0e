/**
 * The verifier's rule on time: an envelope counts only while the key that signed it is within its
 * validity window, by the wall clock its signer refuses by too; a vote inside a certificate counts
 * after its key's window closed, since it was cast before.
 */
import test from 'ava';
import { Verifier } from '../actors/verifier.js';
import { hashBytes } from '../protocols/consensus/index.js';
import { describeKey, SchemeRegistry, SigningKey, type ValidityWindow } from '../protocols/crypto/index.js';
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
