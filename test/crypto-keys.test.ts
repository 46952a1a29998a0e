/**
 * Key ids and key custody: the seed's `test_secret_key_zeroized_on_drop`, the KeyId encoding
 * against an independently computed answer, and properties of ids. Random tests log their seed
 * (replay with KNHK_SEED=<seed>).
 */
import test from 'ava';
import fc from 'fast-check';
import { blake3 } from '@noble/hashes/blake3.js';
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import {
  CryptoError,
  SchemeRegistry,
  SigningKey,
  encodeTimestamp,
  isKeyId,
  keyId,
  type KeyId,
  type SignatureScheme,
} from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';

const registry = SchemeRegistry.create();
const message = utf8ToBytes('prepare 7 at view 3');
/** 2023-11-14T22:13:20.123Z. */
const CREATED_AT = 1_700_000_000_123;
/** One scheme per category, the fast parameter sets: custody does not depend on the scheme. */
const SCHEMES: readonly SignatureScheme[] = [registry.get('Ed25519'), registry.get('ML-DSA-44'), registry.get('ML-DSA-44+Ed25519')];
const DISPOSED = { instanceOf: CryptoError, code: 'KEY_DISPOSED' };

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

test('test_secret_key_zeroized_on_drop', (t) => {
  for (const scheme of SCHEMES) {
    const pair = scheme.keygen();
    // The test keeps the buffer the key takes custody of; the public API has no way to reach it.
    const owned = pair.secretKey;
    const key = SigningKey.adopt(scheme, pair, CREATED_AT);
    const signature = key.sign(message);
    t.true(scheme.verify(key.publicKey, message, signature), scheme.name);
    t.false(isZero(owned));

    key.dispose();
    t.true(key.disposed);
    t.true(isZero(owned), `${scheme.name}: every byte the key owned is zero`);
    t.throws(() => key.sign(message), DISPOSED);
    t.throws(() => key.exposeSecretKey((bytes) => bytes.length), DISPOSED);
    t.notThrows(() => key.dispose(), 'disposing twice is harmless');
    // The public identity outlives the secret: earlier signatures still verify.
    t.is(key.keyId, keyId(pair.publicKey, CREATED_AT));
    t.true(scheme.verify(key.publicKey, message, signature));
  }
});

test('test_secret_key_zeroized_on_drop: `using` wipes at scope exit, also on a throw', (t) => {
  const scheme = registry.get('ML-DSA-44');
  for (const crash of [false, true]) {
    const pair = scheme.keygen();
    const owned = pair.secretKey;
    let escaped: SigningKey | undefined;
    const run = (): void => {
      using key = SigningKey.adopt(scheme, pair, CREATED_AT);
      escaped = key;
      key.sign(message);
      if (crash) throw new Error('replica crashed mid-operation');
    };
    if (crash) t.throws(run, { message: 'replica crashed mid-operation' });
    else run();
    t.true(isZero(owned));
    t.true(escaped?.disposed);
    t.throws(() => escaped?.sign(message), DISPOSED);
  }
});

test('exposeSecretKey lends a scratch copy that is wiped when the consumer returns', (t) => {
  const scheme = registry.get('Ed25519');
  const pair = scheme.keygen();
  const expected = bytesToHex(pair.secretKey);
  const key = SigningKey.adopt(scheme, pair, CREATED_AT);

  let lent: Uint8Array | undefined;
  const sealed = key.exposeSecretKey((bytes) => {
    lent = bytes;
    return bytesToHex(bytes);
  });
  t.is(sealed, expected);
  t.not(lent, pair.secretKey);
  t.true(lent !== undefined && isZero(lent), 'a consumer that keeps the reference keeps only zeros');
  t.is(bytesToHex(pair.secretKey), expected, 'the key itself is intact');
  t.throws(() => key.exposeSecretKey(async (bytes) => bytes.length), { instanceOf: CryptoError, code: 'INVALID_INPUT' });

  // The key store's round trip: the exposed bytes, copied by their new owner, make the same key.
  const restored = key.exposeSecretKey((bytes) =>
    SigningKey.adopt(scheme, { publicKey: key.publicKey, secretKey: scheme.importSecretKey(bytes.slice()) }, key.createdAt),
  );
  t.is(restored.keyId, key.keyId);
  t.true(scheme.verify(key.publicKey, message, restored.sign(message)));
  restored.dispose();
  key.dispose();
});

test('SigningKey.generate makes a working key named by its id; bad inputs are typed errors', (t) => {
  for (const scheme of SCHEMES) {
    using key = SigningKey.generate(scheme, CREATED_AT);
    using other = SigningKey.generate(scheme, CREATED_AT);
    t.is(key.scheme, scheme);
    t.is(key.createdAt, CREATED_AT);
    t.is(key.keyId, keyId(key.publicKey, CREATED_AT));
    t.not(key.keyId, other.keyId);
    t.true(scheme.verify(key.publicKey, message, key.sign(message)), scheme.name);
  }
  const scheme = registry.get('Ed25519');
  t.throws(() => SigningKey.generate(scheme, -1), { instanceOf: CryptoError, code: 'INVALID_TIMESTAMP' });
  const pair = scheme.keygen();
  const short = { publicKey: pair.publicKey, secretKey: scheme.importSecretKey(pair.secretKey.subarray(1)) };
  t.throws(() => SigningKey.adopt(scheme, short, CREATED_AT), { instanceOf: CryptoError, code: 'INVALID_SECRET_KEY' });
});

test('key categories and kinds are enforced at compile time for custody and ids', (t) => {
  /** A stand-in for a signer that the cluster's policy requires to be post-quantum. */
  const signVote = (key: SigningKey<'quantum-safe' | 'hybrid'>): Uint8Array => key.sign(message);
  using hybrid = SigningKey.generate(registry.get('ML-DSA-44+Ed25519'), CREATED_AT);
  using classical = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  t.is(signVote(hybrid).length, hybrid.scheme.signatureBytes);
  // @ts-expect-error a classical key cannot sign where a post-quantum one is required
  signVote(classical);

  const pair = registry.get('Ed25519').keygen();
  // @ts-expect-error an id is computed from a public key, never from a secret one
  keyId(pair.secretKey, CREATED_AT);
  // @ts-expect-error a plain string is not a KeyId
  const forged: KeyId = 'not an id';
  t.false(isKeyId(forged));
});

test('KeyId: known answer, computed independently from the documented encoding', (t) => {
  // The primitive first, against the BLAKE3 reference test vectors (BLAKE3-team/BLAKE3,
  // test_vectors/test_vectors.json, "hash" for input lengths 0 and 1).
  t.is(bytesToHex(blake3(new Uint8Array(0))), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  t.is(bytesToHex(blake3(Uint8Array.of(0))), '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213');

  // RFC 8032 §7.1 TEST 1 public key; 1 700 000 000 123 ms = 0x0000018BCFE5687B, u64 big-endian.
  const publicKey = registry.get('Ed25519').importPublicKey(hexToBytes('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'));
  const timestamp = hexToBytes('0000018bcfe5687b');
  t.deepEqual(encodeTimestamp(CREATED_AT), timestamp);
  const expected = bytesToHex(blake3(concatBytes(publicKey, timestamp)));
  t.is<string, string>(keyId(publicKey, CREATED_AT), expected);
  // Pinned, so that other implementations can check themselves against it.
  t.is(expected, '1c6c28fc5dcf6a1fa6f2f77ec1233b8d1d64fcd1f75b9721eaa4cd9b0385a924');
  t.true(isKeyId(expected));

  t.deepEqual(encodeTimestamp(0), new Uint8Array(8));
  t.deepEqual(encodeTimestamp(Number.MAX_SAFE_INTEGER), hexToBytes('001fffffffffffff'));
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    t.throws(() => keyId(publicKey, bad), { instanceOf: CryptoError, code: 'INVALID_TIMESTAMP' }, String(bad));
  }
});

test('prop_key_id_deterministic_and_distinct', (t) => {
  const seed = testSeed(t);
  const scheme = registry.get('Ed25519');
  t.notThrows(() =>
    fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.maxSafeNat(),
      fc.maxSafeNat(),
      (a, b, at, bt) => {
        const keyA = scheme.importPublicKey(a);
        const keyB = scheme.importPublicKey(b);
        const id = keyId(keyA, at);
        return (
          isKeyId(id) &&
          id === keyId(scheme.importPublicKey(a.slice()), at) &&
          (at === bt) === (id === keyId(keyA, bt)) &&
          (bytesToHex(a) === bytesToHex(b)) === (id === keyId(keyB, at))
        );
      },
    ),
    { seed },
  ),
  );
});
