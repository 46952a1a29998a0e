/**
 * The encrypted key store: round trips per key category, the typed errors (wrong passphrase,
 * corruption, mismatch, unsupported), tamper and truncation resistance, atomic replacement, file
 * mode, no secret in clear, and the documented layout read by an independent decoder. Random
 * tests log their seed (replay with KNHK_SEED=<seed>).
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { KeyStore, commitFile, readKeyFile, stageFile, writeKeyFile } from '../actors/key-store.js';
import {
  CryptoError,
  SchemeRegistry,
  SigningKey,
  type KeyId,
  openKey,
  type CryptoErrorCode,
  type ScryptParameters,
  type SignatureScheme,
} from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';
import { tempDir } from './helpers/temp.js';

const registry = SchemeRegistry.create();
/** 2023-11-14T22:13:20.123Z. */
const CREATED_AT = 1_700_000_000_123;
const PASSPHRASE = 'correct horse battery staple';
/** The validity window keys are sealed with: 90 days from their creation. */
const WINDOW = { notBefore: CREATED_AT, notAfter: CREATED_AT + 90 * 86_400_000 };
/** Lowered scrypt cost (N = 2^10, r = 8: 1 MiB) so that each test derives in milliseconds. */
const FAST: ScryptParameters = { log2N: 10, r: 8, p: 1 };
const message = utf8ToBytes('commit 12 at view 4');
const KEYSTORE_CODES: ReadonlySet<CryptoErrorCode> = new Set<CryptoErrorCode>(['KEYSTORE_WRONG_PASSPHRASE', 'KEYSTORE_CORRUPT', 'KEYSTORE_MISMATCH', 'KEYSTORE_UNSUPPORTED']);
const SCHEMES: readonly SignatureScheme[] = [registry.get('Ed25519'), registry.get('ML-DSA-44'), registry.get('ML-DSA-65+Ed25519')];

function code(c: CryptoErrorCode): { instanceOf: typeof CryptoError; code: CryptoErrorCode } {
  return { instanceOf: CryptoError, code: c };
}

/** A key of `scheme` written to a fresh file with the fast KDF; answers the path and the key. */
async function savedKey(t: ExecutionContext, scheme: SignatureScheme = registry.get('Ed25519')): Promise<{ path: string; key: SigningKey }> {
  const key = SigningKey.generate(scheme, CREATED_AT);
  t.teardown(() => key.dispose());
  const path = join(await tempDir(t, 'knhk-key-store-'), 'replica.key');
  await writeKeyFile(path, key, WINDOW, PASSPHRASE, { kdf: FAST });
  return { path, key };
}

/** The code of the error `promise` rejects with, or `undefined` if it yields a key (which it disposes). */
async function rejection(promise: Promise<SigningKey>): Promise<CryptoErrorCode | undefined> {
  try {
    (await promise).dispose();
    return undefined;
  } catch (error) {
    return error instanceof CryptoError ? error.code : undefined;
  }
}

for (const scheme of SCHEMES) {
  test(`round trip: ${scheme.name} saved and loaded signs for the original public key`, async (t) => {
    const store = new KeyStore(await tempDir(t, 'knhk-key-store-'), registry, { kdf: FAST });
    using original = SigningKey.generate(scheme, CREATED_AT);
    await store.save(original, WINDOW, PASSPHRASE);
    t.deepEqual(await store.list(), [original.keyId]);
    using loaded = await store.load(original.keyId, PASSPHRASE);
    t.is(loaded.keyId, original.keyId);
    t.is(loaded.createdAt, original.createdAt);
    t.is(loaded.scheme.name, scheme.name);
    t.deepEqual(loaded.publicKey, original.publicKey);
    t.true(scheme.verify(original.publicKey, message, loaded.sign(message)));
  });
}

test('the default scrypt parameters (N = 2^17, r = 8, p = 1) are written and read back', async (t) => {
  using key = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  const path = join(await tempDir(t, 'knhk-key-store-'), 'default.key');
  await writeKeyFile(path, key, WINDOW, PASSPHRASE);
  const file = await readFile(path);
  t.deepEqual([...file.subarray(10, 19)], [17, 0, 0, 0, 8, 0, 0, 0, 1]);
  using loaded = await readKeyFile(path, PASSPHRASE, registry);
  t.is(loaded.keyId, key.keyId);
});

test('a wrong passphrase is KEYSTORE_WRONG_PASSPHRASE', async (t) => {
  const { path } = await savedKey(t);
  await t.throwsAsync(readKeyFile(path, 'correct horse battery stapler', registry), code('KEYSTORE_WRONG_PASSPHRASE'));
  await t.throwsAsync(readKeyFile(path, utf8ToBytes(PASSPHRASE.toUpperCase()), registry), code('KEYSTORE_WRONG_PASSPHRASE'));
});

test('a passphrase given as text is NFC-normalized: composed and decomposed forms open the same file', async (t) => {
  using key = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  const path = join(await tempDir(t, 'knhk-key-store-'), 'nfc.key');
  await writeKeyFile(path, key, WINDOW, 'pass\u00e9', { kdf: FAST });
  using loaded = await readKeyFile(path, 'passe\u0301', registry);
  t.is(loaded.keyId, key.keyId);
});

test('flipping any single byte of the file is rejected as corrupt (unsupported for the version byte), never a key', async (t) => {
  const seed = testSeed(t);
  const { path } = await savedKey(t);
  const file = await readFile(path);
  await t.notThrowsAsync(
    fc.assert(
      fc.asyncProperty(fc.nat({ max: file.length - 1 }), fc.integer({ min: 1, max: 255 }), async (position, mask) => {
        const damaged = Uint8Array.from(file);
        damaged[position]! ^= mask;
        const expected: CryptoErrorCode = position === 8 ? 'KEYSTORE_UNSUPPORTED' : 'KEYSTORE_CORRUPT';
        return (await rejection(openKey(damaged, PASSPHRASE, registry))) === expected;
      }),
      { seed, numRuns: 300 },
    ),
  );
});

test('a deliberate change with the checksum recomputed is still rejected: the header is authenticated', async (t) => {
  const seed = testSeed(t);
  const { path } = await savedKey(t);
  const file = await readFile(path);
  const body = file.subarray(0, file.length - 32);
  await t.notThrowsAsync(
    fc.assert(
      fc.asyncProperty(fc.nat({ max: body.length - 1 }), fc.integer({ min: 1, max: 255 }), async (position, mask) => {
        const forged = Uint8Array.from(body);
        forged[position]! ^= mask;
        const outcome = await rejection(openKey(concatBytes(forged, sha256(forged)), PASSPHRASE, registry));
        // Which code depends on the field (salt or ciphertext: the AEAD; public key, time, id: the
        // id check; lengths and KDF cost: parsing); never a key, never an untyped error.
        return outcome !== undefined && KEYSTORE_CODES.has(outcome);
      }),
      { seed, numRuns: 60 },
    ),
  );
});

test('every truncation, and an appended byte, is KEYSTORE_CORRUPT', async (t) => {
  const { path } = await savedKey(t);
  const file = await readFile(path);
  for (let length = 0; length < file.length; length++) {
    // Truncations inside the magic or right after it are corrupt too: nothing there names a version.
    await t.throwsAsync(openKey(file.subarray(0, length), PASSPHRASE, registry), code('KEYSTORE_CORRUPT'), `length ${length}`);
  }
  await t.throwsAsync(openKey(concatBytes(file, Uint8Array.of(0)), PASSPHRASE, registry), code('KEYSTORE_CORRUPT'));
});

test('an unknown format version (version 1 included, which sealed no window), or a scrypt cost above the reader limit, is KEYSTORE_UNSUPPORTED', async (t) => {
  const { path } = await savedKey(t);
  const file = Uint8Array.from(await readFile(path));
  await t.throwsAsync(openKey(file, PASSPHRASE, registry, { maxScryptCost: 2 ** 19 }), code('KEYSTORE_UNSUPPORTED'));
  for (const version of [1, 3]) {
    file[8] = version;
    await t.throwsAsync(openKey(file, PASSPHRASE, registry), code('KEYSTORE_UNSUPPORTED'), `version ${version}`);
  }
});

test('a key opened expecting another validity window than it was sealed with is KEYSTORE_MISMATCH; a window that cannot be is refused when sealing', async (t) => {
  const { path, key } = await savedKey(t);
  using opened = await readKeyFile(path, PASSPHRASE, registry, { window: WINDOW });
  t.is(opened.keyId, key.keyId);
  for (const window of [{ ...WINDOW, notAfter: WINDOW.notAfter + 1 }, { ...WINDOW, notBefore: WINDOW.notBefore + 1 }]) {
    const refused = await t.throwsAsync(readKeyFile(path, PASSPHRASE, registry, { window }), code('KEYSTORE_MISMATCH'));
    t.regex(refused?.message ?? '', /sealed with validity window/);
  }
  const elsewhere = join(await tempDir(t, 'knhk-key-store-'), 'bad.key');
  for (const window of [{ notBefore: CREATED_AT - 1, notAfter: CREATED_AT + 1 }, { notBefore: CREATED_AT, notAfter: CREATED_AT }, { notBefore: CREATED_AT, notAfter: 2 ** 53 }]) {
    await t.throwsAsync(writeKeyFile(elsewhere, key, window, PASSPHRASE, { kdf: FAST }), code('INVALID_INPUT'), JSON.stringify(window));
  }
});

test('a secret that does not produce the stored public key is KEYSTORE_MISMATCH', async (t) => {
  for (const scheme of SCHEMES) {
    const other = scheme.keygen();
    const pair = scheme.keygen();
    // adopt trusts its pair, so it can make the inconsistent key a buggy writer would store.
    using forged = SigningKey.adopt(scheme, { publicKey: other.publicKey, secretKey: pair.secretKey }, CREATED_AT);
    const path = join(await tempDir(t, 'knhk-key-store-'), 'forged.key');
    await writeKeyFile(path, forged, WINDOW, PASSPHRASE, { kdf: FAST });
    await t.throwsAsync(readKeyFile(path, PASSPHRASE, registry), code('KEYSTORE_MISMATCH'), scheme.name);
  }
});

test('a key file under another key id name is KEYSTORE_MISMATCH; a missing one is KEYSTORE_NOT_FOUND', async (t) => {
  const store = new KeyStore(await tempDir(t, 'knhk-key-store-'), registry, { kdf: FAST });
  using a = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  using b = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  await t.throwsAsync(store.load(a.keyId, PASSPHRASE), code('KEYSTORE_NOT_FOUND'));
  await store.save(a, WINDOW, PASSPHRASE);
  await writeFile(store.pathOf(b.keyId), await readFile(store.pathOf(a.keyId)));
  await t.throwsAsync(store.load(b.keyId, PASSPHRASE), code('KEYSTORE_MISMATCH'));
});

test('a store reads only files named by key ids, and only files of key-file size', async (t) => {
  const dir = await tempDir(t, 'knhk-key-store-');
  const store = new KeyStore(dir, registry, { kdf: FAST });
  await t.throwsAsync(store.load('../../etc/passwd' as KeyId, PASSPHRASE), code('INVALID_INPUT'));
  using a = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  await writeFile(store.pathOf(a.keyId), new Uint8Array(70 * 1024));
  await t.throwsAsync(store.load(a.keyId, PASSPHRASE), code('KEYSTORE_CORRUPT'));
});

test('an interrupted replacement leaves the previous file intact and loadable', async (t) => {
  const store = new KeyStore(await tempDir(t, 'knhk-key-store-'), registry, { kdf: FAST });
  using first = SigningKey.generate(registry.get('Ed25519'), CREATED_AT);
  const path = await store.save(first, WINDOW, PASSPHRASE);
  const before = await readFile(path);
  // A crash after the temporary file was written and synced, before the rename …
  const staged = await stageFile(path, utf8ToBytes('a half-written replacement'));
  // … and debris of an older crash.
  await writeFile(join(store.directory, `.${first.keyId}.key.0123456789abcdef.tmp`), 'junk');
  t.deepEqual(await readFile(path), before);
  t.deepEqual(await store.list(), [first.keyId]);
  using loaded = await store.load(first.keyId, PASSPHRASE);
  t.is(loaded.keyId, first.keyId);
  // Completing the interrupted step replaces the file in one rename.
  await commitFile(staged, path);
  t.deepEqual(await readFile(path), Buffer.from('a half-written replacement'));
  t.false((await readdir(store.directory)).includes(staged.slice(store.directory.length + 1)));
});

test('key files and their temporaries have mode 0o600', async (t) => {
  const { path } = await savedKey(t);
  t.is((await stat(path)).mode & 0o777, 0o600);
  const staged = await stageFile(path, Uint8Array.of(1));
  t.is((await stat(staged)).mode & 0o777, 0o600);
});

test('no part of the secret key appears in the file in clear', async (t) => {
  for (const scheme of SCHEMES) {
    const { path, key } = await savedKey(t, scheme);
    const file = bytesToHex(await readFile(path));
    // Hex made inside the consumer: the bytes it is lent are zeroed when it returns.
    const secret = key.exposeSecretKey((s) => bytesToHex(s));
    // Any 8-byte window of the secret (composites: inside either component) would be a leak.
    for (let i = 0; i + 16 <= secret.length; i += 2) {
      const window = secret.slice(i, i + 16);
      t.false(file.includes(window), `${scheme.name}: secret bytes ${i / 2}..${i / 2 + 8} found in the file`);
    }
  }
});

test('an independent decoder following the documented layout recovers the secret', async (t) => {
  const scheme = registry.get('ML-DSA-65+Ed25519');
  const { path, key } = await savedKey(t, scheme);
  const file = await readFile(path);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  t.is(file.subarray(0, 8).toString('ascii'), 'KNHK-KEY');
  t.deepEqual([file[8], file[9], file[10]], [2, 1, FAST.log2N]);
  const [r, p, s] = [view.getUint32(11), view.getUint32(15), file[19]!];
  const salt = file.subarray(20, 20 + s);
  const nonce = file.subarray(20 + s, 44 + s);
  t.deepEqual([44, 52, 60].map((offset) => Number(view.getBigUint64(offset + s))), [CREATED_AT, WINDOW.notBefore, WINDOW.notAfter]);
  const l = file[68 + s]!;
  t.is(file.subarray(69 + s, 69 + s + l).toString('ascii'), scheme.name);
  const pLen = view.getUint32(69 + s + l);
  t.deepEqual(new Uint8Array(file.subarray(73 + s + l, 73 + s + l + pLen)), key.publicKey);
  t.is(bytesToHex(file.subarray(73 + s + l + pLen, 105 + s + l + pLen)), key.keyId);
  const cLen = view.getUint32(105 + s + l + pLen);
  const headerEnd = 109 + s + l + pLen;
  t.is(file.length, headerEnd + cLen + 32);
  t.deepEqual(file.subarray(headerEnd + cLen), Buffer.from(sha256(file.subarray(0, headerEnd + cLen))));
  const fileKey = await scryptAsync(utf8ToBytes(PASSPHRASE), salt, { N: 2 ** FAST.log2N, r, p, dkLen: 32 });
  const secret = xchacha20poly1305(fileKey, nonce, file.subarray(0, headerEnd)).decrypt(file.subarray(headerEnd, headerEnd + cLen));
  t.true(key.exposeSecretKey((own) => bytesToHex(own) === bytesToHex(secret)));
});
