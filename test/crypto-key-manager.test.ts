/**
 * Key manager: the seed's `test_key_rotation_automated` on a virtual clock, rotation certificates
 * (known-answer layout, forgeries, flipped bytes), revocation, lookup by time and by sequence, and
 * expiry. Random tests log their seed (replay with KNHK_SEED=<seed>).
 */
import test from 'ava';
import fc from 'fast-check';
import { concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import {
  CryptoError,
  DEFAULT_KEY_LIFETIME_MS,
  DEFAULT_ROTATION_LEAD_MS,
  KeyDirectory,
  KeyManager,
  SchemeRegistry,
  SigningKey,
  decodeRotationCertificate,
  describeKey,
  signRotation,
  encodeRotationCertificate,
  encodeRotationStatement,
  verifyRotationCertificate,
  type CryptoErrorCode,
  type KeyDescriptor,
  type KeyGenerator,
  type RotationCertificate,
  type SignatureScheme,
  type SignedMessage,
  type ValidityWindow,
} from '../protocols/crypto/index.js';
import { VirtualClock } from '../runtime/clock.js';
import { testSeed } from './helpers/seed.js';
import { verdict } from './helpers/verdict.js';

const registry = SchemeRegistry.create();
const ed25519 = registry.get('Ed25519');
const mlDsa44 = registry.get('ML-DSA-44');
const hybrid44 = registry.get('ML-DSA-44+Ed25519');
const DAY = 24 * 60 * 60 * 1000;
/** 2023-11-14T22:13:20Z: the virtual clock counts from 0, the key layer from the Unix epoch. */
const T0 = 1_700_000_000_000;
/** Consensus sequences per simulated day. */
const PER_DAY = 10;
const context = utf8ToBytes('knhk/test/vote');

function rejects(code: CryptoErrorCode): { instanceOf: typeof CryptoError; code: CryptoErrorCode } {
  return { instanceOf: CryptoError, code };
}


/** A key generator that keeps every key it makes, so a test can see which secrets were wiped. */
function recordingGenerator(): { generate: KeyGenerator; keys: SigningKey[] } {
  const keys: SigningKey[] = [];
  return { keys, generate: (scheme, createdAt) => keys[keys.push(SigningKey.generate(scheme, createdAt)) - 1]! };
}

/** Signs `body` with both keys, as a proposer would, whatever the body says. */
function certify(body: Pick<RotationCertificate, 'cluster' | 'member' | 'epoch' | 'old' | 'next'>, oldKey: SigningKey, newKey: SigningKey): RotationCertificate {
  const statement = encodeRotationStatement(body);
  return { ...body, oldSignature: oldKey.sign(statement), newSignature: newKey.sign(statement) };
}

function window(notBefore: number, lifetime = DEFAULT_KEY_LIFETIME_MS): ValidityWindow {
  return { notBefore, notAfter: notBefore + lifetime };
}

test('test_key_rotation_automated', (t) => {
  const clock = new VirtualClock();
  const now = (): number => T0 + clock.now();
  const scheme = hybrid44;
  // The enrolled key is adopted from bytes the test keeps, to see them zeroed after rotation.
  const genesisPair = scheme.keygen();
  const genesisSecret = genesisPair.secretKey;
  const { generate, keys } = recordingGenerator();
  const manager = new KeyManager({ cluster: 'test', member: 0, schemes: registry, key: SigningKey.adopt(scheme, genesisPair, now()), generate });
  // An independent verifier (a receipt checker) that learns keys only from enrolment and certificates.
  const verifier = new KeyDirectory(registry, { cluster: 'test' });
  verifier.enroll(0, manager.directory.current(0).descriptor);

  const signed: { day: number; sequence: number; time: number; message: Uint8Array; signed: SignedMessage }[] = [];
  const rotations: RotationCertificate[] = [];
  let proposedAt: number | undefined;
  for (let day = 0; day <= 280; day++, clock.advance(DAY)) {
    const time = now();
    const sequence = day * PER_DAY + 1;
    const before = manager.directory.current(0);
    const wasPending = manager.pending;
    const due = manager.due(time);
    const cert = manager.tick(time);
    t.is(due, cert !== undefined, `day ${day}: due exactly when tick has a certificate`);
    if (cert !== undefined && wasPending === undefined) {
      // Proposed once due (within the lead time), never earlier, never after expiry.
      const { notAfter } = before.descriptor;
      t.true(time >= notAfter - DEFAULT_ROTATION_LEAD_MS && time < notAfter, `proposed on day ${day}`);
      t.true(time - DAY < notAfter - DEFAULT_ROTATION_LEAD_MS, 'the day before, no rotation was due');
      t.notThrows(() => verifyRotationCertificate(cert, registry, before));
      const statement = encodeRotationStatement(cert);
      t.true(scheme.verify(scheme.importPublicKey(cert.old.publicKey), statement, cert.oldSignature), 'signed by the old key');
      t.true(scheme.verify(scheme.importPublicKey(cert.next.publicKey), statement, cert.newSignature), 'signed by the new key');
      t.is(cert.old.keyId, before.descriptor.keyId);
      t.is(cert.epoch, before.epoch + 1);
      proposedAt = day;
    } else if (cert !== undefined && proposedAt !== undefined && day === proposedAt + 1) {
      // Consensus commits the certificate a day later; until then the old key signs.
      t.is(wasPending, cert, 'the pending certificate is offered again until applied');
      // The secret being rotated out: the enrolled key first, then the previous generated one.
      const oldSigner = keys[rotations.length - 1];
      manager.applyRotation(cert, sequence);
      verifier.applyRotation(cert, sequence);
      t.is(manager.keyId, cert.next.keyId);
      t.is(manager.pending, undefined);
      if (rotations.length === 0) t.true(genesisSecret.every((b) => b === 0), 'the enrolled secret key is zeroed');
      else t.true(oldSigner?.disposed, 'the rotated-out secret key is wiped');
      rotations.push(cert);
      t.true(time < before.descriptor.notAfter, 'applied before the old key expired');
    } else {
      t.is(cert, undefined, `day ${day}: nothing due`);
    }

    // At every instant some key is valid, for the signer and for the verifier, by time and by sequence.
    const message = utf8ToBytes(`vote ${sequence}`);
    const mine = manager.sign(time, message, context);
    t.is(mine.keyId, manager.keyId, 'new signatures use the newest applied key');
    t.is(verifier.keyAt(0, { sequence }).descriptor.keyId, mine.keyId);
    t.is(verifier.keyAt(0, { time }).descriptor.keyId, verifier.current(0).descriptor.keyId);
    t.notThrows(() => verifier.verify('hybrid', 0, { sequence }, mine, message, context));
    t.notThrows(() => verifier.verify('hybrid', 0, { time }, mine, message, context));
    signed.push({ day, sequence, time, message, signed: mine });
  }

  t.is(rotations.length, 3, 'three rotation cycles in 280 days');
  t.is(verifier.history(0).length, 4);
  // The windows chain without a gap: each new key is valid before its predecessor expires.
  for (const [older, newer] of verifier.history(0).slice(0, -1).map((r, i) => [r, verifier.history(0)[i + 1]!] as const)) {
    t.true(newer.descriptor.notBefore <= older.descriptor.notAfter);
    t.is(older.untilSequence, newer.fromSequence);
    t.is(verifier.keyAt(0, { time: older.descriptor.notAfter - 1 }).descriptor.keyId, newer.descriptor.keyId);
    t.is(verifier.keyAt(0, { time: older.descriptor.notAfter }).descriptor.keyId, newer.descriptor.keyId);
  }
  // Old signatures still verify for their sequence and time; at a later sequence the old key no longer counts.
  const last = signed[signed.length - 1]!;
  for (const entry of signed) {
    t.notThrows(() => verifier.verify('hybrid', 0, { sequence: entry.sequence }, entry.signed, entry.message, context), `day ${entry.day}`);
    t.notThrows(() => verifier.verify('hybrid', 0, { time: entry.time }, entry.signed, entry.message, context));
    const superseded = entry.signed.keyId !== last.signed.keyId;
    t.is(verdict(() => verifier.verify('hybrid', 0, { sequence: last.sequence }, entry.signed, entry.message, context)), superseded ? 'KEY_EXPIRED' : 'ACCEPTED');
  }
  // Every rotated-out secret is wiped; only the current one is live.
  t.deepEqual(keys.map((k) => k.disposed), [true, true, false]);
  manager.dispose();
  t.true(keys.every((k) => k.disposed));
});

test('rotation statement: the documented layout, byte for byte', (t) => {
  const oldKey = SigningKey.adopt(ed25519, ed25519.keygen(new Uint8Array(32).fill(1)), T0);
  const newKey = SigningKey.adopt(ed25519, ed25519.keygen(new Uint8Array(32).fill(2)), T0 + 83 * DAY);
  const body = { cluster: 'ledger-eu', member: 3, epoch: 7, old: describeKey(oldKey, window(T0)), next: describeKey(newKey, window(T0 + 83 * DAY)) };
  const u32 = (n: number): Uint8Array => hexToBytes(n.toString(16).padStart(8, '0'));
  const u64 = (n: number): Uint8Array => hexToBytes(n.toString(16).padStart(16, '0'));
  const key = (d: KeyDescriptor): Uint8Array =>
    concatBytes(Uint8Array.of(7), utf8ToBytes('Ed25519'), u32(32), d.publicKey, hexToBytes(d.keyId), u64(d.createdAt), u64(d.notBefore), u64(d.notAfter));
  const expected = concatBytes(utf8ToBytes('knhk/key-rotation/v2'), Uint8Array.of(9), utf8ToBytes('ledger-eu'), u32(3), u64(7), key(body.old), key(body.next));
  t.deepEqual(encodeRotationStatement(body), expected);

  const cert = certify(body, oldKey, newKey);
  const wire = encodeRotationCertificate(cert);
  t.deepEqual(wire, concatBytes(expected, u32(64), cert.oldSignature, u32(64), cert.newSignature));
  t.deepEqual(decodeRotationCertificate(wire), cert);
  t.notThrows(() => verifyRotationCertificate(cert, registry));
  oldKey.dispose();
  newKey.dispose();
});

test('prop_rotation_certificate_any_flipped_byte_rejected', (t) => {
  const seed = testSeed(t);
  // Ed25519 for speed, and a migration to the hybrid, whose certificate mixes two schemes.
  const certs = [ed25519, hybrid44].map((nextScheme) => {
    using oldKey = SigningKey.generate(ed25519, T0);
    using newKey = SigningKey.generate(nextScheme, T0 + 85 * DAY);
    return encodeRotationCertificate(certify({ cluster: 'test', member: 1, epoch: 1, old: describeKey(oldKey, window(T0)), next: describeKey(newKey, window(T0 + 85 * DAY)) }, oldKey, newKey));
  });
  for (const wire of certs) t.notThrows(() => verifyRotationCertificate(decodeRotationCertificate(wire), registry));
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.constantFrom(...certs), fc.nat(), fc.integer({ min: 1, max: 255 }), (wire, index, mask) => {
        const flipped = wire.slice();
        flipped[index % flipped.length]! ^= mask;
        return verdict(() => verifyRotationCertificate(decodeRotationCertificate(flipped), registry)) === 'ROTATION_INVALID';
      }),
      { seed, numRuns: 300 },
    ),
  );
  // Truncated or extended encodings do not parse.
  const wire = certs[0]!;
  t.throws(() => decodeRotationCertificate(wire.subarray(0, wire.length - 1)), rejects('ROTATION_INVALID'));
  t.throws(() => decodeRotationCertificate(concatBytes(wire, Uint8Array.of(0))), rejects('ROTATION_INVALID'));
});

test('forged and inconsistent rotation certificates are rejected with ROTATION_INVALID', (t) => {
  using oldKey = SigningKey.generate(ed25519, T0);
  using newKey = SigningKey.generate(ed25519, T0 + 84 * DAY);
  using intruder = SigningKey.generate(ed25519, T0 + 84 * DAY);
  const old = describeKey(oldKey, window(T0));
  const next = describeKey(newKey, window(T0 + 84 * DAY));
  const body = { cluster: 'test', member: 2, epoch: 1, old, next };
  const genuine = certify(body, oldKey, newKey);
  t.notThrows(() => verifyRotationCertificate(genuine, registry));

  const forged: Record<string, RotationCertificate> = {
    // Signed by one of the two keys only: the other signature is the intruder's.
    'new key did not sign': certify(body, oldKey, intruder),
    'old key did not sign': certify(body, intruder, newKey),
    'signatures swapped': { ...genuine, oldSignature: genuine.newSignature, newSignature: genuine.oldSignature },
    'intruder key with its own signature': certify({ ...body, next: describeKey(intruder, window(T0 + 84 * DAY)) }, intruder, intruder),
    // Properly signed by both, but the content is wrong.
    'gap between windows': certify({ ...body, next: { ...next, notBefore: old.notAfter + 1, notAfter: old.notAfter + 90 * DAY } }, oldKey, newKey),
    'new window starts before the old one': certify({ ...body, next: { ...next, notBefore: old.notBefore - 1 } }, oldKey, newKey),
    'new window ends no later than the old one': certify({ ...body, next: { ...next, notAfter: old.notAfter } }, oldKey, newKey),
    'empty window': certify({ ...body, next: { ...next, notAfter: next.notBefore } }, oldKey, newKey),
    'valid before created': certify({ ...body, next: { ...next, createdAt: next.notBefore + 1 } }, oldKey, newKey),
    'key id does not match': certify({ ...body, next: { ...next, keyId: old.keyId } }, oldKey, newKey),
    'same key twice': certify({ ...body, next: old }, oldKey, oldKey),
    'epoch 0': certify({ ...body, epoch: 0 }, oldKey, newKey),
  };
  for (const [name, cert] of Object.entries(forged)) {
    t.throws(() => verifyRotationCertificate(cert, registry), rejects('ROTATION_INVALID'), name);
  }

  // Against the verifier's directory: it must replace the member's current key, at the next epoch.
  const directory = new KeyDirectory(registry, { cluster: 'test' });
  directory.enroll(2, old, 5);
  t.throws(() => directory.applyRotation(certify({ ...body, epoch: 2 }, oldKey, newKey), 10), rejects('ROTATION_INVALID'), 'skipped epoch');
  directory.enroll(4, old, 5);
  t.throws(() => directory.applyRotation(certify({ ...body, member: 4, old: { ...old, notAfter: old.notAfter + 1 } }, oldKey, newKey), 10), rejects('ROTATION_INVALID'), 'old window differs from the enrolled one');
  t.throws(() => directory.applyRotation(genuine, 5), rejects('ROTATION_INVALID'), 'committed no later than the old key began');
  t.throws(() => directory.applyRotation({ ...genuine, member: 4 }, 10), rejects('ROTATION_INVALID'), 'another member (the member is signed)');
  t.throws(() => directory.applyRotation({ ...genuine, cluster: 'elsewhere' }, 10), rejects('ROTATION_INVALID'), 'another cluster (the cluster is signed)');
  const replayedFromAnother = certify({ ...body, cluster: 'elsewhere' }, oldKey, newKey);
  t.notThrows(() => verifyRotationCertificate(replayedFromAnother, registry), 'a genuine certificate of another cluster, where the replica has the same key…');
  const refusal = t.throws(() => directory.applyRotation(replayedFromAnother, 10), rejects('ROTATION_INVALID'));
  t.regex(refusal?.message ?? '', /cluster "elsewhere", not "test"/, '…does not count in this one');
  t.is(directory.history(2).length, 1, 'rejections change nothing');
  t.notThrows(() => directory.applyRotation(genuine, 10));
  t.throws(() => directory.applyRotation(genuine, 11), rejects('ROTATION_INVALID'), 'replayed');
});

test('resume takes back a rotation proposed before a restart: the certificate of the key in force at the next epoch, to exactly the key given', (t) => {
  const { generate, keys } = recordingGenerator();
  // The key in force, made twice from one seed: once for the proposer, once for its restart.
  const seed = new Uint8Array(ed25519.seedBytes).fill(7);
  const inForce = (): SigningKey => SigningKey.adopt(ed25519, ed25519.keygen(seed.slice()), T0);
  const proposer = new KeyManager({ cluster: 'test', member: 0, schemes: registry, key: inForce(), generate });
  const cert = proposer.propose(T0 + DAY);
  const successor = keys[0] as SigningKey;
  // The restarted replica's manager: the key in force from its store, the successor from its file.
  const restarted = (): KeyManager => new KeyManager({ cluster: 'test', member: 0, schemes: registry, key: inForce() });
  const manager = restarted();
  t.throws(() => manager.resume(cert, SigningKey.generate(ed25519, T0 + DAY)), rejects('ROTATION_INVALID'), 'another key than the one certified');
  t.is(manager.pending, undefined, 'nothing pending after a refusal');
  manager.resume(cert, successor);
  t.is(manager.pending, cert);
  t.throws(() => manager.resume(cert, successor), rejects('INVALID_INPUT'), 'one pending rotation at a time');
  t.is(manager.tick(T0 + DAY), cert, 'proposed again as it was');
  manager.applyRotation(cert, 10);
  t.is(manager.keyId, cert.next.keyId, 'and its adoption signs with the successor');
  t.notThrows(() => manager.sign(T0 + 2 * DAY, utf8ToBytes('vote')));
  t.throws(() => restarted().resume({ ...cert, epoch: 2 }, successor), rejects('ROTATION_INVALID'), 'at another epoch');
  const other = new KeyManager({ cluster: 'test', member: 1, schemes: registry, key: SigningKey.generate(ed25519, T0) });
  t.throws(() => other.resume(cert, successor), rejects('ROTATION_INVALID'), "of another member's key");
  const elsewhere = new KeyManager({ cluster: 'another', member: 0, schemes: registry, key: inForce(), generate }).propose(T0 + DAY);
  t.throws(() => restarted().resume(elsewhere, keys[1] as SigningKey), rejects('ROTATION_INVALID'), 'of another cluster');
});

test('revocation: a revoked key signs nothing, verifies nothing from its point on, vouches for no successor', (t) => {
  const { generate, keys } = recordingGenerator();
  const manager = new KeyManager({ cluster: 'test', member: 0, schemes: registry, key: SigningKey.generate(ed25519, T0), generate });
  const directory = new KeyDirectory(registry, { cluster: 'test' });
  directory.enroll(0, manager.directory.current(0).descriptor);
  const message = utf8ToBytes('vote');

  // An old key revoked after rotation: its signatures stand before the revocation point only.
  const cert = manager.tick(T0 + 85 * DAY)!;
  const byOld = manager.sign(T0 + 85 * DAY, message);
  manager.applyRotation(cert, 100);
  directory.applyRotation(cert, 100);
  for (const target of [manager, directory]) target.revoke(0, cert.old.keyId, { time: T0 + 50 * DAY, sequence: 60 });
  t.notThrows(() => directory.verify('classical', 0, { sequence: 59 }, byOld, message));
  t.throws(() => directory.verify('classical', 0, { sequence: 60 }, byOld, message), rejects('KEY_REVOKED'));
  t.throws(() => directory.verify('classical', 0, { time: T0 + 50 * DAY }, byOld, message), rejects('KEY_REVOKED'));
  t.throws(() => directory.keyAt(0, { sequence: 70 }), rejects('KEY_REVOKED'));
  t.throws(() => directory.keyAt(0, { time: T0 + 60 * DAY }), rejects('NO_VALID_KEY'));
  t.is(directory.keyAt(0, { time: T0 + 49 * DAY }).descriptor.keyId, cert.old.keyId);
  // Revoking again never narrows the revocation.
  directory.revoke(0, cert.old.keyId, { time: T0 + 70 * DAY, sequence: 80 });
  t.deepEqual(directory.history(0)[0]!.revoked, { time: T0 + 50 * DAY, sequence: 60 });
  t.is(manager.keyId, cert.next.keyId, 'revoking a retired key leaves signing alone');

  // The current key revoked: its secret is wiped at once, with a pending successor's.
  const pending = manager.propose(T0 + 90 * DAY);
  manager.revoke(0, manager.keyId, { time: T0 + 95 * DAY, sequence: 200 });
  directory.revoke(0, cert.next.keyId, { time: T0 + 95 * DAY, sequence: 200 });
  t.true(keys.every((k) => k.disposed), 'current and pending secrets wiped');
  t.is(manager.pending, undefined);
  t.throws(() => manager.sign(T0 + 91 * DAY, message), rejects('KEY_REVOKED'));
  t.throws(() => manager.tick(T0 + 91 * DAY), rejects('KEY_REVOKED'));
  t.throws(() => directory.applyRotation(pending, 150), rejects('ROTATION_INVALID'), 'a revoked key vouches for no successor');
  t.throws(() => directory.revoke(0, pending.next.keyId, { time: 0, sequence: 0 }), rejects('UNKNOWN_KEY'));
});

test('lookup by time and by sequence agrees across replicas, for several members', (t) => {
  const schemes: readonly SignatureScheme[] = [ed25519, mlDsa44, hybrid44];
  // Staggered enrolments, short lifetimes: many rotations in few steps.
  const lifetimeMs = 20 * DAY;
  const rotationLeadMs = 3 * DAY;
  const managers = schemes.map((scheme, member) => new KeyManager({ cluster: 'test', member, schemes: registry, key: SigningKey.generate(scheme, T0 + member * 5 * DAY), lifetimeMs, rotationLeadMs }));
  for (const m of managers) for (const other of managers) if (m !== other) m.directory.enroll(other.member, other.directory.current(other.member).descriptor);

  /** Per member, (first sequence, key id) of each key, in the order consensus installed them. */
  const model = managers.map((m) => [{ from: 0, keyId: m.keyId }]);
  const samples: { sequence: number; time: number }[] = [];
  let sequence = 0;
  // From day 10, when the last member's enrolled key becomes valid.
  for (let day = 10; day <= 100; day++) {
    const time = T0 + day * DAY;
    // Every replica proposes what is due; consensus commits the proposals in member order, one sequence each.
    const committed = managers.flatMap((m) => m.tick(time) ?? []);
    for (const cert of committed) {
      sequence += 1;
      for (const m of managers) m.applyRotation(cert, sequence);
      model[cert.member]!.push({ from: sequence, keyId: cert.next.keyId });
    }
    sequence += PER_DAY;
    samples.push({ sequence, time });
    for (const m of managers) t.notThrows(() => m.sign(time, utf8ToBytes(`day ${day}`)), `member ${m.member} can sign on day ${day}`);
  }
  t.true(model.every((keys) => keys.length >= 4), 'every member rotated several times');

  for (const member of [0, 1, 2]) {
    const expected = (s: number): string => model[member]!.findLast((k) => k.from <= s)!.keyId;
    for (const { sequence: s, time } of samples) {
      for (const probe of [s, s - PER_DAY + 1]) {
        const answers = managers.map((m) => m.directory.keyAt(member, { sequence: probe }).descriptor.keyId);
        t.deepEqual(answers, [expected(probe), expected(probe), expected(probe)], `member ${member} at sequence ${probe}`);
      }
      const byTime = managers.map((m) => m.directory.keyAt(member, { time }).descriptor);
      t.true(byTime.every((d) => d.keyId === byTime[0]!.keyId && d.notBefore <= time && time < d.notAfter), `member ${member} at time ${time}`);
    }
    // Each commit boundary: the old key up to the sequence before, the new one from it.
    for (const [older, newer] of model[member]!.slice(0, -1).map((k, i) => [k, model[member]![i + 1]!] as const)) {
      t.is(managers[0]!.directory.keyAt(member, { sequence: newer.from - 1 }).descriptor.keyId, older.keyId);
      t.is(managers[0]!.directory.keyAt(member, { sequence: newer.from }).descriptor.keyId, newer.keyId);
    }
    t.throws(() => managers[0]!.directory.keyAt(member, { time: T0 - 1 }), rejects('NO_VALID_KEY'));
  }
  t.throws(() => managers[0]!.directory.keyAt(7, { sequence: 1 }), rejects('NO_VALID_KEY'), 'unknown member');
  for (const m of managers) m.dispose();
});

test('an expired key refuses to sign; a rotation not yet committed does not save it', (t) => {
  using manager = new KeyManager({ cluster: 'test', member: 0, schemes: registry, key: SigningKey.generate(mlDsa44, T0), lifetimeMs: 10 * DAY, rotationLeadMs: 2 * DAY });
  const message = utf8ToBytes('vote');
  t.throws(() => manager.sign(T0 - 1, message), rejects('KEY_NOT_YET_VALID'));
  t.notThrows(() => manager.sign(T0 + 10 * DAY - 1, message));
  t.throws(() => manager.sign(T0 + 10 * DAY, message), rejects('KEY_EXPIRED'));
  t.throws(() => manager.tick(T0 + 10 * DAY), rejects('KEY_EXPIRED'), 'too late to rotate: the old key cannot vouch after expiry');

  const cert = manager.tick(T0 + 9 * DAY)!;
  t.not(cert, undefined);
  t.throws(() => manager.sign(T0 + 10 * DAY, message), rejects('KEY_EXPIRED'), 'the successor signs only once committed');
  t.throws(() => manager.propose(T0 + 9 * DAY), rejects('INVALID_INPUT'), 'one pending rotation at a time');
  manager.applyRotation(cert, 1);
  t.is(manager.sign(T0 + 10 * DAY, message).keyId, cert.next.keyId);

  t.throws(() => new KeyManager({ cluster: 'test', member: 1, schemes: registry, key: SigningKey.generate(ed25519, T0), lifetimeMs: DAY, rotationLeadMs: DAY }), rejects('INVALID_INPUT'));
});

test('a key cannot come back into the directory, so revoking it catches every use', (t) => {
  const ed = registry.get('Ed25519');
  const k0 = SigningKey.generate(ed, T0);
  const k1 = SigningKey.generate(ed, T0);
  const directory = new KeyDirectory(registry, { cluster: 'test' });
  directory.enroll(7, describeKey(k0, window(T0)), 0);
  directory.applyRotation(signRotation(registry, { cluster: 'test', member: 7, epoch: 1 }, { key: k0, window: window(T0) }, { key: k1, window: window(T0 + 80 * DAY) }), 10);
  // k0 again, with the same creation time and so the same key id: refused.
  const back = signRotation(registry, { cluster: 'test', member: 7, epoch: 2 }, { key: k1, window: window(T0 + 80 * DAY) }, { key: k0, window: window(T0 + 160 * DAY) });
  t.throws(() => directory.applyRotation(back, 20), rejects('ROTATION_INVALID'));
  t.is(directory.current(7).descriptor.keyId, k1.keyId, 'the refused certificate changed nothing');
  k0.dispose();
  k1.dispose();
});

test('a rotation cannot install a key valid for longer than the cluster key lifetime, nor be vouched for by an expired key', (t) => {
  const ed = registry.get('Ed25519');
  using k0 = SigningKey.generate(ed, T0);
  using k1 = SigningKey.generate(ed, T0 + DAY);
  const directory = new KeyDirectory(registry, { cluster: 'test', maxLifetimeMs: 90 * DAY });
  directory.enroll(1, describeKey(k0, window(T0, 90 * DAY)), 0);
  const forever = signRotation(registry, { cluster: 'test', member: 1, epoch: 1 }, { key: k0, window: window(T0, 90 * DAY) }, { key: k1, window: window(T0 + 80 * DAY, 2 ** 40) });
  t.throws(() => directory.applyRotation(forever, 10), rejects('ROTATION_INVALID'));
  const fair = signRotation(registry, { cluster: 'test', member: 1, epoch: 1 }, { key: k0, window: window(T0, 90 * DAY) }, { key: k1, window: window(T0 + 80 * DAY, 90 * DAY) });
  t.throws(() => directory.applyRotation(fair, 10, T0 + 90 * DAY), rejects('ROTATION_INVALID'), 'committed after the old key expired: it can vouch for nothing');
  t.is(directory.applyRotation(fair, 10, T0 + 85 * DAY).descriptor.keyId, k1.keyId);
});
