/**
 * Known-answer tests: the schemes reproduce and accept other implementations' published values,
 * on every backend that runs them here (noble always; node:crypto for Ed25519 everywhere and for
 * ML-DSA where the running Node has it).
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { SchemeRegistry, type SchemeName } from '../protocols/crypto/index.js';

const BACKENDS = ['noble', 'node'] as const;
const registry = SchemeRegistry.create();

function vectors<T>(file: string): T {
  return JSON.parse(readFileSync(new URL(`../../test/vectors/${file}`, import.meta.url), 'utf8')) as T;
}

const base64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

interface Wycheproof {
  numberOfTests: number;
  testGroups: { publicKey: string; tests: { tcId: number; comment: string; msg: string; sig: string; ctx?: string; result: 'valid' | 'invalid' }[] }[];
}

test('ML-DSA-65 verification agrees with all 210 Wycheproof vectors on every backend', (t) => {
  const data = vectors<Wycheproof>('wycheproof-mldsa65-verify.json');
  const cases = data.testGroups.flatMap((group) => group.tests.map((c) => ({ ...c, publicKey: group.publicKey })));
  t.is(cases.length, 210);
  t.is(data.numberOfTests, 210);
  const exercised: string[] = [];
  for (const backend of BACKENDS) {
    const scheme = registry.onBackend('ML-DSA-65', backend);
    if (scheme === undefined) {
      t.log(`${backend}: no ML-DSA on ${process.version}`);
      continue;
    }
    exercised.push(backend);
    for (const c of cases) {
      const context = c.ctx === undefined ? undefined : hexToBytes(c.ctx);
      const verdict = scheme.verify(scheme.importPublicKey(hexToBytes(c.publicKey)), hexToBytes(c.msg), hexToBytes(c.sig), context);
      t.is(verdict, c.result === 'valid', `${backend} tcId ${c.tcId} (${c.comment})`);
    }
  }
  t.log(`backends exercised: ${exercised.join(', ')}`);
  t.true(exercised.includes('noble'));
});

interface Composite {
  m: string;
  ctx: string;
  tests: { tcId: string; pk: string; sk: string; s: string; sWithContext: string }[];
}

const DRAFT_IDS: Readonly<Record<string, SchemeName>> = {
  'id-MLDSA65-Ed25519-SHA512': 'ML-DSA-65+Ed25519',
  'id-MLDSA44-Ed25519-SHA512': 'ML-DSA-44+Ed25519',
  'id-ML-DSA-44': 'ML-DSA-44',
  'id-ML-DSA-65': 'ML-DSA-65',
  'id-ML-DSA-87': 'ML-DSA-87',
};

test('composite draft-19 vectors: keygen from sk gives pk; s and sWithContext verify, each only under its own context', (t) => {
  const data = vectors<Composite>('composite-mldsa-draft19.json');
  const message = base64(data.m);
  const context = base64(data.ctx);
  let checked = 0;
  for (const [tcId, name] of Object.entries(DRAFT_IDS)) {
    const vector = data.tests.find((v) => v.tcId === tcId);
    if (vector === undefined) return t.fail(`${tcId} missing from the vectors`);
    for (const backend of BACKENDS) {
      const scheme = registry.onBackend(name, backend);
      if (scheme === undefined) continue;
      const label = `${tcId} on ${scheme.backend}`;
      const publicKey = scheme.importPublicKey(base64(vector.pk));
      t.is(bytesToHex(scheme.keygen(base64(vector.sk)).publicKey), bytesToHex(publicKey), `${label}: keygen(sk)`);
      t.true(scheme.verify(publicKey, message, base64(vector.s)), `${label}: s`);
      t.true(scheme.verify(publicKey, message, base64(vector.sWithContext), context), `${label}: sWithContext`);
      t.false(scheme.verify(publicKey, message, base64(vector.s), context), `${label}: s under ctx`);
      t.false(scheme.verify(publicKey, message, base64(vector.sWithContext)), `${label}: sWithContext without ctx`);
      checked += 1;
    }
  }
  t.true(checked >= Object.keys(DRAFT_IDS).length);
});

interface Rfc8032 {
  tests: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
}

test('Ed25519 reproduces the RFC 8032 §7.1 vectors on every backend', (t) => {
  const { tests } = vectors<Rfc8032>('rfc8032-ed25519.json');
  for (const backend of BACKENDS) {
    const scheme = registry.onBackend('Ed25519', backend);
    if (scheme === undefined) return t.fail(`${backend} must run Ed25519 on every supported Node`);
    for (const v of tests) {
      const { publicKey, secretKey } = scheme.keygen(hexToBytes(v.secretKey));
      const message = hexToBytes(v.message);
      t.is(bytesToHex(publicKey), v.publicKey, `${backend} ${v.name}: public key`);
      // Ed25519 signing is deterministic (RFC 8032 §5.1.6), so the signature must match exactly.
      t.is(bytesToHex(scheme.sign(secretKey, message)), v.signature, `${backend} ${v.name}: signature`);
      t.true(scheme.verify(publicKey, message, hexToBytes(v.signature)), `${backend} ${v.name}: verify`);
    }
  }
});
