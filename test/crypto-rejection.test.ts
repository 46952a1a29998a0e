/**
 * Rejection of malformed input: wrong lengths and non-byte values, a flipped bit anywhere in key,
 * message or signature, non-canonical and small-order Ed25519 encodings, signatures that only a
 * cofactored verifier would accept — always `false`, never a throw, and the same verdict on every
 * backend. Misuse when signing is a typed `CryptoError`.
 */
import test from 'ava';
import fc from 'fast-check';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { CryptoError, SCHEME_NAMES, SchemeRegistry, type SchemeName, type SignatureScheme } from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';

const registry = SchemeRegistry.create();

/** The scheme on every backend that runs it here. */
function everyBackend(name: SchemeName): SignatureScheme[] {
  return ['noble', 'node'].flatMap((backend) => registry.onBackend(name, backend) ?? []);
}

/** One valid (key, message, signature, context) per scheme, made once (Falcon keygen is slow). */
const fixtures = new Map(
  SCHEME_NAMES.map((name) => {
    const scheme = registry.onBackend(name, 'noble');
    if (scheme === undefined) throw new Error(`noble must run ${name}`);
    const { publicKey, secretKey } = scheme.keygen(new Uint8Array(scheme.seedBytes).fill(3));
    const message = new TextEncoder().encode(`vote for ${name}`);
    const context = scheme.contextSupported ? Uint8Array.of(7, 7) : new Uint8Array(0);
    return [name, { publicKey, message, context, signature: scheme.sign(secretKey, message, context) }];
  }),
);

function fixture(name: SchemeName) {
  const found = fixtures.get(name);
  if (found === undefined) throw new Error(`no fixture for ${name}`);
  return found;
}

test('wrong lengths, empty and non-byte inputs are false on every scheme and backend, never a throw', (t) => {
  for (const name of SCHEME_NAMES) {
    const { publicKey, message, context, signature } = fixture(name);
    for (const scheme of everyBackend(name)) {
      const label = `${name} on ${scheme.backend}`;
      t.true(scheme.verify(publicKey, message, signature, context), `${label}: the fixture is valid`);
      const pk = (bytes: Uint8Array) => scheme.importPublicKey(bytes);
      const malformed: [string, () => boolean][] = [
        ['short key', () => scheme.verify(pk(publicKey.subarray(1)), message, signature, context)],
        ['long key', () => scheme.verify(pk(concatBytes(publicKey, Uint8Array.of(0))), message, signature, context)],
        ['empty key', () => scheme.verify(pk(new Uint8Array(0)), message, signature, context)],
        ['short signature', () => scheme.verify(publicKey, message, signature.subarray(0, signature.length - 1), context)],
        ['long signature', () => scheme.verify(publicKey, message, concatBytes(signature, Uint8Array.of(0)), context)],
        ['empty signature', () => scheme.verify(publicKey, message, new Uint8Array(0), context)],
        ['zero signature', () => scheme.verify(publicKey, message, new Uint8Array(signature.length), context)],
        ['context of 256 bytes', () => scheme.verify(publicKey, message, signature, new Uint8Array(256))],
        ['key not bytes', () => scheme.verify(pk('garbage' as unknown as Uint8Array), message, signature, context)],
        ['message not bytes', () => scheme.verify(publicKey, null as unknown as Uint8Array, signature, context)],
        ['signature not bytes', () => scheme.verify(publicKey, message, [1, 2] as unknown as Uint8Array, context)],
      ];
      for (const [what, call] of malformed) t.false(call(), `${label}: ${what}`);
    }
  }
});

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[Math.floor(bit / 8) % copy.length]! ^= 1 << bit % 8;
  return copy;
}

/** Fewer runs where one verification takes milliseconds of pure JavaScript. */
const RUNS: Partial<Record<SchemeName, number>> = { 'SLH-DSA-SHA2-128f': 10, 'Falcon-512': 20, 'ML-DSA-87': 20 };

test('a flipped bit anywhere in key, message or signature fails on every backend (property)', (t) => {
  const seed = testSeed(t);
  for (const name of SCHEME_NAMES) {
    const { publicKey, message, context, signature } = fixture(name);
    const schemes = everyBackend(name);
    const part = fc.constantFrom('publicKey', 'message', 'signature');
    t.notThrows(
      () =>
        fc.assert(
          fc.property(part, fc.nat(), (which, bit) => {
            const key = which === 'publicKey' ? flip(publicKey, bit % (publicKey.length * 8)) : publicKey;
            const msg = which === 'message' ? flip(message, bit % (message.length * 8)) : message;
            const sig = which === 'signature' ? flip(signature, bit % (signature.length * 8)) : signature;
            return schemes.every((scheme) => !scheme.verify(scheme.importPublicKey(key), msg, sig, context));
          }),
          { seed, numRuns: RUNS[name] ?? 60 },
        ),
      `${name}: ${schemes.map((s) => s.backend).join(', ')}`,
    );
  }
});

const ED = everyBackend('Ed25519');
const L = ed25519.Point.Fn.ORDER;
const P = ed25519.Point.Fp.ORDER;
const IDENTITY = hexToBytes(ED25519_TORSION_SUBGROUP[0]!);

/** Both backends run Ed25519 on every supported Node, so the same-verdict checks below always compare two. */
test('Ed25519 runs on both backends', (t) => {
  t.deepEqual(
    ED.map((s) => s.backend),
    ['noble', 'node'],
  );
});

test('Ed25519: a non-reduced S (S + L) is rejected by every backend (RFC 8032 §5.1.7 step 1)', (t) => {
  const { publicKey, message, signature } = fixture('Ed25519');
  const s = bytesToNumberLE(signature.subarray(32));
  const unreduced = concatBytes(signature.subarray(0, 32), numberToBytesLE(s + L, 32));
  for (const scheme of ED) t.false(scheme.verify(publicKey, message, unreduced), scheme.backend);
});

test('Ed25519: small-order and non-canonical public keys are rejected, even with the signature that fits them', (t) => {
  // With A of small order, R = identity and S = 0 satisfy [S]B = R + [k]A for many messages:
  // exactly the universal forgery a strict verifier must refuse.
  const forged = concatBytes(IDENTITY, new Uint8Array(32));
  const keys = [
    ...ED25519_TORSION_SUBGROUP.map(hexToBytes),
    numberToBytesLE(P + 1n, 32), // y = 1 (the identity) encoded as y + p: non-canonical (§5.1.3 step 1)
    numberToBytesLE(P, 32), // y = 0 encoded as p
    numberToBytesLE(1n | (1n << 255n), 32), // x = 0 with the sign bit set (§5.1.3 step 4)
    hexToBytes('ff'.repeat(31) + '7f'), // y = 2^255 − 1 ≥ p
  ];
  for (const key of keys) {
    for (const message of [new Uint8Array(0), Uint8Array.of(1), new TextEncoder().encode('anything')]) {
      for (const scheme of ED) t.false(scheme.verify(scheme.importPublicKey(key), message, forged), `${scheme.backend}`);
    }
  }
});

test('Ed25519: a signature whose R has a small-order component is rejected by both backends, though a cofactored verifier accepts it', (t) => {
  const seed = new Uint8Array(32).fill(9);
  const { scalar: a, pointBytes: publicKey } = ed25519.utils.getExtendedPublicKey(seed);
  const message = Uint8Array.of(1, 2, 3);
  const torsion = ed25519.Point.fromBytes(hexToBytes(ED25519_TORSION_SUBGROUP[1]!));
  const r = 123456789n;
  // R' = [r]B + T with T of order 8; S' = r + k'·a for k' = H(R' ‖ A ‖ M): then
  // [S']B − [k']A = [r]B ≠ R', yet [8]([S']B − R' − [k']A) = −[8]T = 0.
  const rBytes = ed25519.Point.BASE.multiply(r).add(torsion).toBytes();
  const k = bytesToNumberLE(sha512(concatBytes(rBytes, publicKey, message))) % L;
  const signature = concatBytes(rBytes, numberToBytesLE((r + k * a) % L, 32));
  t.true(ed25519.verify(signature, message, publicKey, { zip215: false }), 'the crafted signature passes a cofactored check');
  for (const scheme of ED) t.false(scheme.verify(scheme.importPublicKey(publicKey), message, signature), scheme.backend);
});

test('Ed25519: any mutation of a valid signature gets the same verdict on both backends (property)', (t) => {
  const seed = testSeed(t);
  const { publicKey, message, signature } = fixture('Ed25519');
  t.notThrows(() => fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.nat(63), fc.boolean(), (noise, from, keepS) => {
      // Keep a prefix of the valid signature and replace the rest, optionally keeping S valid-sized.
      const mutated = concatBytes(signature.subarray(0, from), noise.subarray(from));
      if (keepS) mutated.set(signature.subarray(32), 32);
      const verdicts = ED.map((scheme) => scheme.verify(publicKey, message, mutated));
      return verdicts.every((v) => v === verdicts[0]);
    }),
    { seed, numRuns: 200 },
  ));
});

function code(call: () => unknown): string | undefined {
  try {
    call();
    return undefined;
  } catch (error) {
    return error instanceof CryptoError ? error.code : `not a CryptoError: ${String(error)}`;
  }
}

test('misuse is a typed CryptoError: context too long or unsupported, wrong secret key, wrong seed, unknown or unusable backend', (t) => {
  const ml = registry.get('ML-DSA-44');
  const hybrid = registry.get('ML-DSA-44+Ed25519');
  const ed = registry.get('Ed25519');
  const mlKeys = ml.keygen();
  const message = Uint8Array.of(1);
  t.is(code(() => ml.sign(mlKeys.secretKey, message, new Uint8Array(256))), 'CONTEXT_TOO_LONG');
  t.is(code(() => hybrid.sign(hybrid.keygen().secretKey, message, new Uint8Array(256))), 'CONTEXT_TOO_LONG');
  t.is(code(() => ml.sign(mlKeys.secretKey, message, new Uint8Array(255))), undefined, '255 bytes is the limit, inclusive');
  t.is(code(() => ed.sign(ed.keygen().secretKey, message, Uint8Array.of(1))), 'CONTEXT_UNSUPPORTED');
  t.is(code(() => ed.sign(ed.keygen().secretKey, message, new Uint8Array(0))), undefined, 'an empty context is no context');
  t.is(code(() => ml.sign(ml.importSecretKey(new Uint8Array(31)), message)), 'INVALID_SECRET_KEY');
  t.is(code(() => hybrid.sign(hybrid.importSecretKey(new Uint8Array(32)), message)), 'INVALID_SECRET_KEY');
  t.is(code(() => ml.sign(mlKeys.secretKey, 'text' as unknown as Uint8Array)), 'INVALID_INPUT');
  t.is(code(() => ml.keygen(new Uint8Array(16))), 'INVALID_SEED');
  t.is(code(() => SchemeRegistry.create({ force: 'openssl' })), 'UNKNOWN_BACKEND');
  // node:crypto has no Falcon on any Node, so forcing it for every scheme cannot work.
  t.is(code(() => SchemeRegistry.create({ force: 'node' })), 'BACKEND_UNAVAILABLE');
  t.is(code(() => registry.get('RSA' as SchemeName)), 'UNKNOWN_SCHEME');
});
