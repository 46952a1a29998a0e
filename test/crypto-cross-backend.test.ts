/**
 * Cross-backend interoperability: for every scheme both backends run here, the same seed gives
 * the same key pair, and a signature made by one backend verifies with the other and vice versa
 * (with and without a context). Plus the registry's choice, forcing and report.
 */
import test from 'ava';
import fc from 'fast-check';
import { bytesToHex } from '@noble/hashes/utils.js';
import { SCHEME_NAMES, SchemeRegistry, nobleBackend, nodeBackend, type Backend, type Primitive, type SignatureScheme } from '../protocols/crypto/index.js';
import { testSeed } from './helpers/seed.js';

const registry = SchemeRegistry.create();

/** Pairs (noble, node) for every scheme the node backend also runs on this Node. */
const pairs = SCHEME_NAMES.flatMap((name) => {
  const noble = registry.onBackend(name, 'noble');
  const node = registry.onBackend(name, 'node');
  return noble !== undefined && node !== undefined ? [{ name, noble, node }] : [];
});

test('the node backend runs Ed25519 everywhere, and ML-DSA with its composites exactly when the Node has ML-DSA', (t) => {
  const names = pairs.map((p) => p.name);
  t.log(`${process.version}: cross-checked ${names.join(', ')}`);
  t.true(names.includes('Ed25519'));
  const native = registry.onBackend('ML-DSA-65', 'node') !== undefined;
  for (const name of ['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87', 'ML-DSA-65+Ed25519', 'ML-DSA-44+Ed25519'] as const) {
    t.is(names.includes(name), native, name);
  }
  t.false(names.includes('Falcon-512'));
  t.false(names.includes('SLH-DSA-SHA2-128f'));
});

function crossCheck(a: SignatureScheme, b: SignatureScheme, seed: Uint8Array, message: Uint8Array, context: Uint8Array | undefined): boolean {
  const keysA = a.keygen(seed);
  const keysB = b.keygen(seed);
  if (bytesToHex(keysA.publicKey) !== bytesToHex(keysB.publicKey) || bytesToHex(keysA.secretKey) !== bytesToHex(keysB.secretKey)) return false;
  const byA = a.sign(keysA.secretKey, message, context);
  const byB = b.sign(keysB.secretKey, message, context);
  return b.verify(keysB.publicKey, message, byA, context) && a.verify(keysA.publicKey, message, byB, context);
}

test('same seed, same keys; each backend verifies the other\'s signatures, with and without context (property)', (t) => {
  const seed = testSeed(t);
  for (const { name, noble, node } of pairs) {
    t.notThrows(
      () =>
        fc.assert(
          fc.property(
            fc.uint8Array({ minLength: noble.seedBytes, maxLength: noble.seedBytes }),
            fc.uint8Array({ maxLength: 512 }),
            fc.option(fc.uint8Array({ maxLength: 255 }), { nil: undefined }),
            (keySeed, message, context) => crossCheck(noble, node, keySeed, message, noble.contextSupported ? context : undefined),
          ),
          { seed, numRuns: name === 'Ed25519' ? 50 : 8 },
        ),
      name,
    );
  }
});

test('a composite whose components run on different backends interoperates with both', (t) => {
  const mixedRegistry = SchemeRegistry.create({ backends: [nobleBackend] });
  const mixed = registry.get('ML-DSA-65+Ed25519');
  const noble = mixedRegistry.get('ML-DSA-65+Ed25519');
  t.log(`default ML-DSA-65+Ed25519 backend: ${mixed.backend}`);
  t.true(crossCheck(mixed, noble, new Uint8Array(64).fill(1), Uint8Array.of(1, 2), Uint8Array.of(3)));
});

test('the registry prefers node:crypto where it agrees with noble, reports its choice, and can be forced', (t) => {
  const report = registry.report();
  t.log(report);
  t.is(report['Ed25519'], 'node');
  t.is(report['Falcon-512'], 'noble');
  t.is(report['SLH-DSA-SHA2-128f'], 'noble');
  const nativeMlDsa = registry.onBackend('ML-DSA-65', 'node') !== undefined;
  t.is(report['ML-DSA-65'], nativeMlDsa ? 'node' : 'noble');
  t.is(report['ML-DSA-65+Ed25519'], nativeMlDsa ? 'node' : 'noble+node');

  const allNoble = SchemeRegistry.create({ force: 'noble' }).report();
  t.true(Object.values(allNoble).every((backend) => backend === 'noble'));
  const forcedOne = SchemeRegistry.create({ force: { 'Ed25519': 'noble' } }).report();
  t.is(forcedOne['Ed25519'], 'noble');
  t.is(forcedOne['ML-DSA-65'], report['ML-DSA-65']);
});

/** A backend named `name` that runs Ed25519 as node:crypto does and ML-DSA-44 as noble does, each with `defect` applied. */
function backendWith(name: string, defect: (primitive: Primitive) => Primitive): Backend {
  const wrapped = { 'ed25519': nodeBackend.primitive('ed25519'), 'ml-dsa-44': nobleBackend.primitive('ml-dsa-44') } as const;
  return { name, primitive: (p) => (p === 'ed25519' || p === 'ml-dsa-44' ? defect(wrapped[p] as Primitive) : undefined) };
}

test('a backend is chosen only if it reproduces the known answers: RFC 8032 for Ed25519, the reference backend for the others', (t) => {
  const flip = (bytes: Uint8Array): Uint8Array => Uint8Array.from(bytes, (b, i) => (i === 0 ? b ^ 1 : b));
  const defects: Record<string, (p: Primitive) => Primitive> = {
    'faithful': (p) => p,
    'another key': (p) => ({ ...p, keygen: (seed) => ({ ...p.keygen(seed), publicKey: flip(p.keygen(seed).publicKey) }) }),
    'another signature': (p) => ({ ...p, sign: (key, message, context) => flip(p.sign(key, message, context)) }),
    'accepting anything': (p) => ({ ...p, verify: () => true }),
    'refusing everything': (p) => ({ ...p, verify: () => false }),
    'throwing': (p) => ({ ...p, verify: () => { throw new Error('broken'); } }),
    // Verifies a signature against the message with its last byte set as signed: what it checks is right, what it accepts besides is not.
    'blind to the last byte': (p) => ({ ...p, verify: (key, message, signature, context) => [0, 1].some((flip) => p.verify(key, Uint8Array.from(message, (b, i) => (i === message.length - 1 ? b ^ flip : b)), signature, context)) }),
  };
  for (const [name, defect] of Object.entries(defects)) {
    const report = SchemeRegistry.create({ backends: [backendWith(name, defect), nobleBackend] }).report();
    const expected = name === 'faithful' ? name : 'noble';
    t.is(report['Ed25519'], expected, `Ed25519, ${name}`);
    t.is(report['ML-DSA-44'], expected, `ML-DSA-44, ${name}`);
    t.is(report['ML-DSA-65'], 'noble', 'a primitive the backend lacks');
  }
});

test('a scheme\'s backend is chosen when the scheme is first asked for, a forced one at once: a thread probes only what it uses', (t) => {
  const probed: string[] = [];
  const counting = backendWith('counting', (p) => ({ ...p, keygen: (seed) => (probed.push('keygen'), p.keygen(seed)) }));
  const registry = SchemeRegistry.create({ backends: [counting, nobleBackend] });
  t.deepEqual(probed, [], 'nothing probed at creation');
  t.is(registry.get('Ed25519').backend, 'counting');
  t.is(registry.get('Ed25519').backend, 'counting');
  t.deepEqual(probed, ['keygen'], 'Ed25519 probed once');
  t.is(registry.report()['ML-DSA-44+Ed25519'], 'counting', 'a composite reuses its components\' verdicts');
  t.deepEqual(probed, ['keygen', 'keygen'], 'and the report probes ML-DSA-44 once more, nothing else');
  // A forced backend is probed at once: one that has the scheme but fails its probe is refused at creation.
  const broken = backendWith('broken', (p) => ({ ...p, verify: () => false }));
  t.throws(() => SchemeRegistry.create({ backends: [broken, nobleBackend], force: { 'Ed25519': 'broken' } }), { code: 'BACKEND_UNAVAILABLE', message: /Ed25519: no usable backend among broken/ });
});

test('the node backend keeps imported keys, but signs with the bytes it is given: a buffer rewritten in place, or a view at another offset, signs with its new key', (t) => {
  for (const { name, noble, node } of pairs) {
    const message = Uint8Array.of(1, 2, 3);
    const one = node.keygen(new Uint8Array(node.seedBytes).fill(1));
    const two = node.keygen(new Uint8Array(node.seedBytes).fill(2));
    const buffer = new Uint8Array(one.secretKey.length * 2);
    const held = buffer.subarray(0, one.secretKey.length) as typeof one.secretKey;
    held.set(one.secretKey);
    t.true(noble.verify(one.publicKey, message, node.sign(held, message)), `${name}: first key`);
    t.true(noble.verify(one.publicKey, message, node.sign(held, message)), `${name}: first key, kept`);
    held.set(two.secretKey);
    const rewritten = node.sign(held, message);
    t.true(noble.verify(two.publicKey, message, rewritten), `${name}: the bytes now in the buffer sign`);
    t.false(node.verify(one.publicKey, message, rewritten), `${name}: not the key imported before`);
    const beside = buffer.subarray(one.secretKey.length) as typeof one.secretKey;
    beside.set(one.secretKey);
    t.true(node.verify(one.publicKey, message, node.sign(beside, message)), `${name}: a second key in the same buffer`);
    t.true(node.verify(two.publicKey, message, node.sign(held, message)), `${name}: the first view still signs with its own bytes`);
  }
});
