/**
 * The replicated configuration (protocols/consensus/configuration.ts): key rotations executed as
 * commands, checked the same way at every replica, carried by snapshots; application commands
 * untouched.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  CONFIGURATION_SESSION_PREFIX,
  ConfiguredState,
  ConsensusError,
  KvStateMachine,
  configurationResponse,
  decode,
  encode,
  encodePolicyMigration,
  kvPayload,
  kvResponse,
  type Command,
} from '../protocols/consensus/index.js';
import {
  describeKey,
  encodeRotationCertificate,
  KeyManager,
  SchemeRegistry,
  signRotation,
  SigningKey,
  type KeyDescriptor,
  type RotationCertificate,
  type SchemeName,
  type SignaturePolicy,
} from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';

const schemes = SchemeRegistry.create();
const T0 = Date.UTC(2026, 0, 1);

/** A cluster of `n` members with Ed25519 keys: their managers, and the configuration over a key-value machine. */
function cluster(n: number, policy: SignaturePolicy = 'classical'): { managers: KeyManager[]; state: ConfiguredState; genesis: KeyDescriptor[] } {
  const managers = Array.from({ length: n }, (_, member) => new KeyManager({ cluster: 'test', member, schemes, key: SigningKey.generate(schemes.get('Ed25519'), T0 + member) }));
  const genesis = managers.map((m) => m.directory.current(m.member).descriptor);
  return { managers, state: new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis, schemes, policy }), genesis };
}

let timestamps = 0;
let position = 0;
/** Executes `command` at the next log position, agreed at time `at` (within every test key's window unless given). */
const run = (state: ConfiguredState, command: Command, at = T0 + 10_000): Uint8Array => state.apply(command, ++position, at);
const configure = (payload: Uint8Array): Command => ({ client: `${CONFIGURATION_SESSION_PREFIX}test`, timestamp: ++timestamps, payload });
const put = (key: string): Command => ({ client: 'app', timestamp: ++timestamps, payload: kvPayload({ type: 'put', key, value: 'v' }) });

test('application commands reach the state machine, and with no rotation the hash is the machine\'s own', (t) => {
  const { state } = cluster(4);
  const plain = new KvStateMachine();
  for (const key of ['a', 'b']) {
    const command = put(key);
    t.deepEqual(kvResponse(run(state, command)), kvResponse(plain.apply(command)));
  }
  t.deepEqual(state.hash(), plain.hash());
});

test('a rotation signed by the key in force and its successor is installed; it changes the hash, and the next one chains on it', (t) => {
  const { managers, state } = cluster(4);
  const manager = managers[2] as KeyManager;
  const before = state.hash();
  const cert = manager.propose(T0 + 1000);
  t.deepEqual(configurationResponse(run(state, configure(encodeRotationCertificate(cert)))), { ok: true, kind: 'rotation', member: 2, epoch: 1, keyId: cert.next.keyId });
  t.is(state.current(2).descriptor.keyId, cert.next.keyId);
  t.is(state.current(2).epoch, 1);
  t.notDeepEqual(state.hash(), before);
  manager.applyRotation(cert, 10);
  const second = manager.propose(T0 + 2000);
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(second)))), { ok: true, epoch: 2, keyId: second.next.keyId });
  t.is(state.installed().length, 2);
});

test('a replayed rotation, one for a member outside the configuration, garbage, and a scheme the policy refuses are refused and change nothing', (t) => {
  const { managers, state } = cluster(4);
  const manager = managers[0] as KeyManager;
  const cert = encodeRotationCertificate(manager.propose(T0 + 1000));
  t.true(configurationResponse(run(state, configure(cert))).ok);
  const hash = state.hash();
  t.like(configurationResponse(run(state, configure(cert))), { ok: false, error: 'ROTATION_INVALID' }, 'the same certificate again no longer replaces the key in force');
  const stranger = new KeyManager({ cluster: 'test', member: 7, schemes, key: SigningKey.generate(schemes.get('Ed25519'), T0) });
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(stranger.propose(T0 + 1))))), { ok: false, error: 'NO_VALID_KEY' });
  t.like(configurationResponse(run(state, configure(new Uint8Array([1, 2, 3])))), { ok: false, error: 'ROTATION_INVALID' });
  const quantum = (managers[1] as KeyManager).propose(T0 + 1000, schemes.get('ML-DSA-65'));
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(quantum)))), { ok: false, error: 'SCHEME_NOT_ALLOWED' }, 'the classical policy admits no ML-DSA key');
  t.deepEqual(state.hash(), hash);
  t.is(state.installed().length, 1);
});

test('a rotation committed when the old key\'s window has closed, or before it opened, is refused and changes nothing: an expired key vouches for no successor', (t) => {
  const { managers, state } = cluster(4);
  const manager = managers[1] as KeyManager;
  const { notBefore, notAfter } = state.current(1).descriptor;
  const cert = encodeRotationCertificate(manager.propose(T0 + 1000));
  const hash = state.hash();
  for (const at of [notAfter, notAfter + 24 * 3600 * 1000, notBefore - 1]) {
    t.like(configurationResponse(run(state, configure(cert), at)), { ok: false, error: 'ROTATION_INVALID' }, `agreed at ${at - notBefore} ms into the window`);
  }
  t.deepEqual(state.hash(), hash);
  t.like(configurationResponse(run(state, configure(cert), notAfter - 1)), { ok: true, member: 1, epoch: 1 });
});

test('a rotation back to a key the member had before is refused; installed rotations carry the position that installed them', (t) => {
  // Two keys made in the same millisecond, so that each may follow the other (a successor is never older).
  const ed25519 = schemes.get('Ed25519');
  const a = SigningKey.generate(ed25519, T0);
  const b = SigningKey.generate(ed25519, T0);
  const days = (d: number) => ({ notBefore: T0, notAfter: T0 + d * 24 * 3600 * 1000 });
  const state = new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis: [describeKey(a, days(30))], schemes: schemes, policy: 'classical' });
  const forward = signRotation(schemes, { cluster: 'test', member: 0, epoch: 1 }, { key: a, window: days(30) }, { key: b, window: days(31) });
  t.true(configurationResponse(run(state, configure(encodeRotationCertificate(forward)))).ok);
  t.is(state.installed()[0]?.sequence, position);
  const back = signRotation(schemes, { cluster: 'test', member: 0, epoch: 2 }, { key: b, window: days(31) }, { key: a, window: days(32) });
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(back)))), { ok: false, error: 'ROTATION_INVALID' }, 'a key enters the configuration once');
});

test('a rotation to a hybrid key under the hybrid policy is checked with both of its components', (t) => {
  const hybrid = schemes.get('ML-DSA-65+Ed25519');
  const manager = new KeyManager({ cluster: 'test', member: 0, schemes, key: SigningKey.generate(hybrid, T0) });
  const state = new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis: [manager.directory.current(0).descriptor], schemes: schemes, policy: 'hybrid' });
  const cert = manager.propose(T0 + 1000);
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(cert)))), { ok: true, member: 0, epoch: 1 });
});

test('flipping any bit of a rotation certificate gets it refused (property)', (t) => {
  const seed = testSeed(t);
  const { managers, genesis } = cluster(4);
  const bytes = encodeRotationCertificate((managers[3] as KeyManager).propose(T0 + 1000));
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.nat(bytes.length * 8 - 1), (bit) => {
      const state = new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis: genesis, schemes: schemes, policy: 'classical' });
      const flipped = bytes.slice();
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      const response = configurationResponse(run(state, configure(flipped)));
      return !response.ok && state.installed().length === 0;
      }),
      { seed, numRuns: 300 },
    ),
  );
});

test('a snapshot carries the configuration: the restored state has the same hash and keys; a damaged snapshot is CORRUPT_STATE', (t) => {
  const { managers, state, genesis } = cluster(4);
  run(state, put('x'));
  const cert = (managers[1] as KeyManager).propose(T0 + 1000);
  run(state, configure(encodeRotationCertificate(cert)));
  const restored = new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis: genesis, schemes: schemes, policy: 'classical' });
  restored.restore(state.snapshot());
  t.deepEqual(restored.hash(), state.hash());
  t.is(restored.current(1).descriptor.keyId, cert.next.keyId);
  const error = t.throws(() => restored.restore(new Uint8Array([0xc1])), { instanceOf: ConsensusError });
  t.is(error?.code, 'CORRUPT_STATE');
});

test('a frozen configured state carries its rotations: its changes since an older view bring a replica the keys installed in between', (t) => {
  const { managers, state, genesis } = cluster(4);
  run(state, put('x'));
  const older = state.freeze();
  const replica = new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis: genesis, schemes: schemes, policy: 'classical' });
  replica.restore(older.snapshot());
  const cert = (managers[1] as KeyManager).propose(T0 + 2000);
  run(state, configure(encodeRotationCertificate(cert)));
  run(state, put('y'));
  const newer = state.freeze();
  run(state, put('z'));
  t.notDeepEqual(newer.hash, state.hash(), 'the view does not follow the state');
  replica.applyChanges(newer.changesSince(older) as Uint8Array);
  t.deepEqual(replica.hash(), newer.hash);
  t.is(replica.current(1).descriptor.keyId, cert.next.keyId);
  t.deepEqual(replica.snapshot(), newer.snapshot());
  t.is(t.throws(() => replica.applyChanges(new Uint8Array([0xc1])), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE');
});

/** Every member's rotation to a fresh key of `scheme`, proposed by its manager. */
const rotationsTo = (managers: readonly KeyManager[], scheme: SchemeName, at = T0 + 1000): RotationCertificate[] => managers.map((m) => m.propose(at, schemes.get(scheme)));

test('a policy migration replaces every member\'s key at one position and puts the next policy in force; rotations then follow it', (t) => {
  const { managers, state } = cluster(4);
  const before = state.hash();
  const rotations = rotationsTo(managers, 'ML-DSA-65+Ed25519');
  const at = position + 1;
  const response = configurationResponse(run(state, configure(encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations }))));
  t.deepEqual(response, { ok: true, kind: 'migration', policy: 'hybrid', keys: rotations.map((cert) => ({ member: cert.member, epoch: 1, keyId: cert.next.keyId })) });
  t.is(state.policy(), 'hybrid');
  t.deepEqual(state.policyChanges(), [{ policy: 'hybrid', sequence: at, rotations: 4 }]);
  t.deepEqual(state.installed().map((r) => r.sequence), [at, at, at, at]);
  for (const member of [0, 1, 2, 3]) t.like(state.current(member), { epoch: 1, fromSequence: at, descriptor: { scheme: 'ML-DSA-65+Ed25519' } });
  t.notDeepEqual(state.hash(), before);

  rotations.forEach((cert, member) => (managers[member] as KeyManager).applyRotation(cert, at));
  const classical = (managers[1] as KeyManager).propose(T0 + 2000, schemes.get('Ed25519'));
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(classical)))), { ok: false, error: 'SCHEME_NOT_ALLOWED' }, 'the classical policy is no longer in force');
  const hybrid = (managers[2] as KeyManager).propose(T0 + 2000);
  t.like(configurationResponse(run(state, configure(encodeRotationCertificate(hybrid)))), { ok: true, kind: 'rotation', member: 2, epoch: 2 });
  t.like(configurationResponse(run(state, configure(encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations })))), { ok: false, error: 'POLICY_TRANSITION_INVALID' }, 'the same migration again starts from a policy no longer in force');
});

test('a migration that is not one step forward, misses or repeats a member, installs a key of another category, or holds one bad certificate is refused whole', (t) => {
  const { managers, state } = cluster(4);
  const rotations = rotationsTo(managers, 'ML-DSA-65+Ed25519');
  const forged = { ...(rotations[3] as RotationCertificate), newSignature: (rotations[3] as RotationCertificate).newSignature.map((byte, i) => (i === 0 ? byte ^ 1 : byte)) };
  const stranger = new KeyManager({ cluster: 'test', member: 2, schemes, key: SigningKey.generate(schemes.get('Ed25519'), T0) });
  const classicalKey = stranger.propose(T0 + 1000, schemes.get('Ed25519'));
  const garbage = encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations: [] }).slice(0, -1);
  const cases: [string, Uint8Array, string][] = [
    ['a skipped step', encodePolicyMigration({ from: 'classical', to: 'quantum', rotations }), 'POLICY_TRANSITION_INVALID'],
    ['a step back', encodePolicyMigration({ from: 'classical', to: 'classical', rotations }), 'POLICY_TRANSITION_INVALID'],
    ['a step from a policy not in force', encodePolicyMigration({ from: 'hybrid', to: 'quantum', rotations }), 'POLICY_TRANSITION_INVALID'],
    ['a member missing', encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations: rotations.slice(0, 3) }), 'POLICY_TRANSITION_INVALID'],
    ['a member twice', encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations: [...rotations.slice(0, 3), rotations[0] as RotationCertificate] }), 'POLICY_TRANSITION_INVALID'],
    ['a classical key among them', encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations: [...rotations.slice(0, 2), classicalKey, rotations[3] as RotationCertificate] }), 'SCHEME_NOT_ALLOWED'],
    ['the last certificate forged', encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations: [...rotations.slice(0, 3), forged] }), 'ROTATION_INVALID'],
    ['a truncated payload', garbage, 'POLICY_TRANSITION_INVALID'],
  ];
  const hash = state.hash();
  for (const [what, payload, error] of cases) {
    t.like(configurationResponse(run(state, configure(payload))), { ok: false, error }, what);
    t.is(state.policy(), 'classical', what);
    t.deepEqual([state.installed().length, state.policyChanges().length], [0, 0], what);
    t.deepEqual([0, 1, 2, 3].map((member) => state.current(member).epoch), [0, 0, 0, 0], `${what}: no member's key changed`);
    t.deepEqual(state.hash(), hash, what);
  }
  t.like(configurationResponse(run(state, configure(encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations })))), { ok: true, policy: 'hybrid' }, 'the certificates themselves are still good');
});

test('a snapshot and changes carry the policy among the rotations, in the order they executed; a configuration that never migrated stores no policies; a snapshot whose policies skip a step is CORRUPT_STATE', (t) => {
  const { managers, state, genesis } = cluster(4);
  const fresh = (): ConfiguredState => new ConfiguredState(new KvStateMachine(), { cluster: 'test', genesis, schemes, policy: 'classical' });
  const lone = (managers[0] as KeyManager).propose(T0 + 500);
  run(state, configure(encodeRotationCertificate(lone)));
  (managers[0] as KeyManager).applyRotation(lone, position);
  t.false('policies' in (decode(state.snapshot()) as object), 'stored as before migrations existed');
  const older = state.freeze();
  const rotations = rotationsTo(managers, 'ML-DSA-65+Ed25519');
  run(state, configure(encodePolicyMigration({ from: 'classical', to: 'hybrid', rotations })));
  rotations.forEach((cert, member) => (managers[member] as KeyManager).applyRotation(cert, position));
  const after = (managers[2] as KeyManager).propose(T0 + 2000);
  run(state, configure(encodeRotationCertificate(after)));
  run(state, put('x'));

  const restored = fresh();
  restored.restore(state.snapshot());
  t.deepEqual(restored.hash(), state.hash());
  t.is(restored.policy(), 'hybrid');
  t.deepEqual(restored.policyChanges(), state.policyChanges());
  t.is(restored.current(2).descriptor.keyId, after.next.keyId);

  const caughtUp = fresh();
  caughtUp.restore(older.snapshot());
  caughtUp.applyChanges(state.freeze().changesSince(older) as Uint8Array);
  t.deepEqual(caughtUp.hash(), state.hash());
  t.is(caughtUp.policy(), 'hybrid');

  const { state: machine, rotations: installed } = decode(state.snapshot()) as { state: Uint8Array; rotations: unknown[] };
  for (const policies of [[{ policy: 'quantum', sequence: 1, rotations: 1 }], [{ policy: 'hybrid', sequence: 1, rotations: 99 }]]) {
    const damaged = encode({ state: machine, rotations: installed, policies });
    t.is(t.throws(() => fresh().restore(damaged), { instanceOf: ConsensusError })?.code, 'CORRUPT_STATE', JSON.stringify(policies));
  }
});
