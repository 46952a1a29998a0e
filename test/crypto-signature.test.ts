/**
 * The seed's signature tests, by name: hybrid correctness, the both-halves-required rule of the
 * composite, and sign/verify properties over every scheme. Random tests log their seed
 * (replay with KNHK_SEED=<seed>).
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { concatBytes } from '@noble/hashes/utils.js';
import {
  DEFAULT_HYBRID,
  MLDSA44_ED25519,
  MLDSA65_ED25519,
  SCHEME_NAMES,
  SchemeRegistry,
  messageRepresentative,
  type KeyPair,
  type SchemeName,
  type SignatureScheme,
} from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';

const registry = SchemeRegistry.create();
const HYBRIDS = [MLDSA65_ED25519, MLDSA44_ED25519] as const;

test('test_hybrid_signature_correctness', (t) => {
  t.is(DEFAULT_HYBRID, 'ML-DSA-65+Ed25519');
  for (const params of HYBRIDS) {
    const scheme = registry.get(params.spec.name);
    t.is(scheme.category, 'hybrid');
    const { publicKey, secretKey } = scheme.keygen();
    t.is(publicKey.length, scheme.publicKeyBytes);
    t.is(secretKey.length, scheme.secretKeyBytes);
    const message = new TextEncoder().encode('commit 42 at view 7');
    for (const context of [undefined, new TextEncoder().encode('knhk/pbft/commit')]) {
      const signature = scheme.sign(secretKey, message, context);
      t.is(signature.length, scheme.signatureBytes);
      t.true(scheme.verify(publicKey, message, signature, context), `${scheme.name} on ${scheme.backend}`);
    }
  }
});

test('test_hybrid_signature_both_required', (t) => {
  for (const params of HYBRIDS) {
    const scheme = registry.get(params.spec.name);
    const mlDsa = registry.get(params.mlDsa.spec.name);
    const ed = registry.get('Ed25519');
    const split = params.mlDsa.spec.signatureBytes;
    const splitKey = params.mlDsa.spec.publicKeyBytes;
    const { publicKey, secretKey } = scheme.keygen();
    const message = Uint8Array.of(1, 2, 3);
    const signature = scheme.sign(secretKey, message);
    const mlHalf = signature.subarray(0, split);
    const edHalf = signature.subarray(split);

    // Each half is genuinely valid on its own: ML-DSA over M' with the Label as context, Ed25519 over M'.
    const m = messageRepresentative(params.label, message, new Uint8Array(0));
    t.true(mlDsa.verify(mlDsa.importPublicKey(publicKey.subarray(0, splitKey)), m, mlHalf, params.label));
    t.true(ed.verify(ed.importPublicKey(publicKey.subarray(splitKey)), m, edHalf));

    // A valid ML-DSA half with a bad Ed25519 half: a corrupted one, and another key's valid one.
    const other = scheme.keygen();
    const otherEdHalf = scheme.sign(other.secretKey, message).subarray(split);
    const corruptEd = edHalf.slice();
    corruptEd[0]! ^= 1;
    t.false(scheme.verify(publicKey, message, concatBytes(mlHalf, corruptEd)), `${scheme.name}: bad Ed25519 half`);
    t.false(scheme.verify(publicKey, message, concatBytes(mlHalf, otherEdHalf)), `${scheme.name}: foreign Ed25519 half`);

    // And the reverse: a valid Ed25519 half with a bad ML-DSA half.
    const corruptMl = mlHalf.slice();
    corruptMl[100]! ^= 1;
    const otherMlHalf = scheme.sign(other.secretKey, message).subarray(0, split);
    t.false(scheme.verify(publicKey, message, concatBytes(corruptMl, edHalf)), `${scheme.name}: bad ML-DSA half`);
    t.false(scheme.verify(publicKey, message, concatBytes(otherMlHalf, edHalf)), `${scheme.name}: foreign ML-DSA half`);

    t.true(scheme.verify(publicKey, message, concatBytes(mlHalf, edHalf)), 'the halves reassembled still verify');
  }
});

/** Runs per scheme: pure-JavaScript SLH-DSA signing takes ~0.1 s, Falcon and ML-DSA-87 milliseconds. */
const RUNS: Partial<Record<SchemeName, number>> = { 'SLH-DSA-SHA2-128f': 3, 'Falcon-512': 10, 'ML-DSA-87': 10 };

/** One key pair per scheme for the properties: Falcon key generation alone takes ~0.3 s. */
const keyPairs = new Map(SCHEME_NAMES.map((name) => [name, registry.get(name).keygen()]));

const message = fc.uint8Array({ maxLength: 300 });
const context = fc.uint8Array({ maxLength: 255 });

/** Asserts a property for every scheme, on the backend the registry chose, with one seed. */
function holdsForEveryScheme(t: ExecutionContext, property: (scheme: SignatureScheme, keys: KeyPair) => fc.IRawProperty<unknown[]>): void {
  const seed = testSeed(t);
  for (const name of SCHEME_NAMES) {
    const scheme = registry.get(name);
    const keys = keyPairs.get(name)!;
    t.notThrows(() => fc.assert(property(scheme, keys), { seed, numRuns: RUNS[name] ?? 25 }), `${name} on ${scheme.backend}`);
  }
}

test('prop_signature_verify_after_sign', (t) => {
  holdsForEveryScheme(t, (scheme, keys) =>
    fc.property(message, context, (m, c) => {
      const ctx = scheme.contextSupported ? c : undefined;
      return scheme.verify(keys.publicKey, m, scheme.sign(keys.secretKey, m, ctx), ctx);
    }),
  );
});

test('prop_signature_fails_wrong_message', (t) => {
  holdsForEveryScheme(t, (scheme, keys) =>
    fc.property(message, message, context, (m, other, c) => {
      fc.pre(Buffer.compare(m, other) !== 0);
      const ctx = scheme.contextSupported ? c : undefined;
      return !scheme.verify(keys.publicKey, other, scheme.sign(keys.secretKey, m, ctx), ctx);
    }),
  );
});
