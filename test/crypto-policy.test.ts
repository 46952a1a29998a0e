/**
 * Signature policies: the seed's `test_signature_policy_migration`, the compile-time side of a
 * policy, and a property over every (policy, scheme) pair. Random tests log their seed (replay
 * with KNHK_SEED=<seed>).
 */
import test from 'ava';
import fc from 'fast-check';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import {
  CryptoError,
  MLDSA44_ED25519,
  POLICY_CATEGORY,
  SIGNATURE_POLICIES,
  SchemeRegistry,
  KeyDirectory,
  KeyManager,
  SigningKey,
  applyPolicyMigration,
  checkPolicyTransition,
  isSignaturePolicy,
  policyAdmits,
  verifyUnderPolicy,
  type PublicKey,
  type SignaturePolicy,
  type SignatureScheme,
} from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';
import { verdict } from './helpers/verdict.js';

const registry = SchemeRegistry.create();
const message = utf8ToBytes('commit 42 at view 7');
const context = utf8ToBytes('knhk/pbft/commit');

/** One replica key per migration phase, and a signature it made on `message`. */
interface PhaseSigner {
  readonly policy: SignaturePolicy;
  readonly scheme: SignatureScheme;
  readonly publicKey: PublicKey;
  readonly signature: Uint8Array;
  readonly context: Uint8Array | undefined;
}

function signer(policy: SignaturePolicy, scheme: SignatureScheme, ctx: Uint8Array | undefined): PhaseSigner {
  const { publicKey, secretKey } = scheme.keygen();
  return { policy, scheme, publicKey, signature: scheme.sign(secretKey, message, ctx), context: ctx };
}

/** Small parameter sets where the policy, not the scheme's strength, is under test. */
const PHASES: readonly PhaseSigner[] = [
  signer('classical', registry.get('Ed25519'), undefined),
  signer('hybrid', registry.get('ML-DSA-44+Ed25519'), context),
  signer('quantum', registry.get('ML-DSA-44'), context),
];

function verifyAs(policy: SignaturePolicy, s: PhaseSigner, signature = s.signature): void {
  verifyUnderPolicy(policy, s.scheme, s.publicKey, message, signature, s.context);
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[(bit >> 3) % copy.length]! ^= 1 << (bit & 7);
  return copy;
}


test('test_signature_policy_migration', (t) => {
  // The path a cluster takes, one configuration change agreed by consensus per step.
  t.notThrows(() => checkPolicyTransition('classical', 'hybrid'));
  t.notThrows(() => checkPolicyTransition('hybrid', 'quantum'));
  // No step back (re-admits a retired category), none skipped, and no "change" to the same policy.
  for (const [from, to] of [['hybrid', 'classical'], ['quantum', 'hybrid'], ['quantum', 'classical'], ['classical', 'quantum'], ['hybrid', 'hybrid']] as const) {
    t.throws(() => checkPolicyTransition(from, to), { instanceOf: CryptoError, code: 'POLICY_TRANSITION_INVALID' }, `${from} → ${to}`);
  }

  for (const phase of PHASES) {
    for (const other of PHASES) {
      // Every signature is valid under its own scheme; the policy alone decides whether it counts.
      t.true(other.scheme.verify(other.publicKey, message, other.signature, other.context));
      const expected = other === phase ? 'ACCEPTED' : 'SCHEME_NOT_ALLOWED';
      t.is(verdict(() => verifyAs(phase.policy, other)), expected, `${other.scheme.name} under ${phase.policy}`);
    }
    // Forgeries under the admitted scheme: a flipped bit, another message, another replica's key.
    t.is(verdict(() => verifyAs(phase.policy, phase, flipBit(phase.signature, 5))), 'SIGNATURE_INVALID');
    t.is(verdict(() => verifyUnderPolicy(phase.policy, phase.scheme, phase.publicKey, utf8ToBytes('commit 43'), phase.signature, phase.context)), 'SIGNATURE_INVALID');
    const impostor = signer(phase.policy, phase.scheme, phase.context);
    t.is(verdict(() => verifyAs(phase.policy, phase, impostor.signature)), 'SIGNATURE_INVALID');
    // A retired scheme is named as such even when its signature is also forged.
    for (const retired of PHASES.filter((p) => p !== phase)) {
      t.is(verdict(() => verifyAs(phase.policy, retired, flipBit(retired.signature, 5))), 'SCHEME_NOT_ALLOWED');
    }
  }

  // Under Hybrid both halves must verify: a valid ML-DSA half with a foreign Ed25519 half fails,
  // and the reverse.
  const hybrid = PHASES[1]!;
  const foreign = signer('hybrid', hybrid.scheme, hybrid.context).signature;
  const split = MLDSA44_ED25519.mlDsa.spec.signatureBytes;
  const mixes = [
    concatBytes(hybrid.signature.subarray(0, split), foreign.subarray(split)),
    concatBytes(foreign.subarray(0, split), hybrid.signature.subarray(split)),
  ];
  for (const mixed of mixes) t.is(verdict(() => verifyAs('hybrid', hybrid, mixed)), 'SIGNATURE_INVALID');

  // A policy read from configuration is checked before use.
  t.false(isSignaturePolicy('QuantumOnly'));
  t.true(SIGNATURE_POLICIES.every(isSignaturePolicy));
  t.is(verdict(() => verifyAs('QuantumOnly' as SignaturePolicy, PHASES[2]!)), 'UNKNOWN_POLICY');
});

test('test_signature_policy_migration: a key directory takes the cluster classical → hybrid → quantum, each step every member at once, and a signature verifies under the policy of its epoch', (t) => {
  const T0 = Date.UTC(2026, 0, 1);
  const managers = [0, 1, 2].map((member) => new KeyManager({ cluster: 'c', member, schemes: registry, key: SigningKey.generate(registry.get('Ed25519'), T0) }));
  // The verifier's view of the cluster, beside each member's own.
  const directory = new KeyDirectory(registry, { cluster: 'c' });
  managers.forEach((m) => directory.enroll(m.member, m.directory.current(m.member).descriptor));
  const steps = [
    { from: 'classical', to: 'hybrid', scheme: 'ML-DSA-44+Ed25519', at: 10 },
    { from: 'hybrid', to: 'quantum', scheme: 'ML-DSA-44', at: 20 },
  ] as const;
  const signed = [{ policy: 'classical' as SignaturePolicy, sequence: 5, signature: (managers[1] as KeyManager).sign(T0 + 1, message) }];
  for (const step of steps) {
    const rotations = managers.map((m) => m.propose(T0 + step.at, registry.get(step.scheme)));
    t.throws(() => applyPolicyMigration(directory, registry, step.from, { ...step, rotations: rotations.slice(1) }, step.at), { instanceOf: CryptoError, code: 'POLICY_TRANSITION_INVALID' }, 'every member, or none');
    t.is(directory.current(0).scheme.category, POLICY_CATEGORY[step.from]);
    const installed = applyPolicyMigration(directory, registry, step.from, { ...step, rotations }, step.at, T0 + step.at);
    t.deepEqual(installed.map((record) => record.scheme.name), [step.scheme, step.scheme, step.scheme]);
    rotations.forEach((cert, member) => (managers[member] as KeyManager).applyRotation(cert, step.at));
    signed.push({ policy: step.to, sequence: step.at + 5, signature: (managers[1] as KeyManager).sign(T0 + step.at + 1, message) });
  }
  for (const { policy, sequence, signature } of signed) {
    t.notThrows(() => directory.verify(policy, 1, { sequence }, signature, message), `a ${policy} signature at sequence ${sequence}`);
    for (const later of SIGNATURE_POLICIES.filter((other) => other !== policy)) {
      t.throws(() => directory.verify(later, 1, { sequence }, signature, message), { instanceOf: CryptoError, code: 'SCHEME_NOT_ALLOWED' }, `not widened to ${later}`);
    }
  }
});

test('a policy written as a literal demands its key category at compile time', (t) => {
  const ed25519 = registry.get('Ed25519');
  const mlDsa = registry.get('ML-DSA-44');
  const hybrid = registry.get('ML-DSA-44+Ed25519');
  const ed = ed25519.keygen();
  const ml = mlDsa.keygen();
  const edSignature = ed25519.sign(ed.secretKey, message);
  const mlSignature = mlDsa.sign(ml.secretKey, message);

  t.notThrows(() => verifyUnderPolicy('quantum', mlDsa, ml.publicKey, message, mlSignature));
  // Each line below fails to compile (the @ts-expect-error would then be unused and fail the
  // build), and the run-time check rejects it as well.
  t.throws(
    // @ts-expect-error QuantumOnly: a classical scheme and key are refused
    () => verifyUnderPolicy('quantum', ed25519, ed.publicKey, message, edSignature),
    { instanceOf: CryptoError, code: 'SCHEME_NOT_ALLOWED' },
  );
  t.throws(
    // @ts-expect-error Hybrid: pure ML-DSA is refused, it lacks the Ed25519 half
    () => verifyUnderPolicy('hybrid', mlDsa, ml.publicKey, message, mlSignature),
    { instanceOf: CryptoError, code: 'SCHEME_NOT_ALLOWED' },
  );
  t.throws(
    // @ts-expect-error the key must be of the scheme's category, whatever the policy
    () => verifyUnderPolicy('hybrid', hybrid, ed.publicKey, message, edSignature),
    { instanceOf: CryptoError, code: 'SIGNATURE_INVALID' },
  );
});

test('prop_policy_admits_exactly_its_category', (t) => {
  const seed = testSeed(t);
  t.notThrows(() =>
    fc.assert(
    fc.property(
      fc.constantFrom(...SIGNATURE_POLICIES),
      fc.constantFrom(...PHASES),
      fc.uint8Array({ maxLength: 64 }),
      fc.option(fc.nat(), { nil: undefined }),
      (policy, phase, msg, bit) => {
        const keys = phase.scheme.keygen();
        const signed = phase.scheme.sign(keys.secretKey, msg, phase.context);
        const signature = bit === undefined ? signed : flipBit(signed, bit);
        const outcome = verdict(() => verifyUnderPolicy(policy, phase.scheme, keys.publicKey, msg, signature, phase.context));
        const admitted = policyAdmits(policy, phase.scheme);
        const expected = !admitted ? 'SCHEME_NOT_ALLOWED' : bit === undefined ? 'ACCEPTED' : 'SIGNATURE_INVALID';
        return admitted === (policy === phase.policy) && outcome === expected;
      },
    ),
    { seed, numRuns: 40 },
  ),
  );
});
