/**
 * The native backend: node:crypto (OpenSSL). Ed25519 on every supported Node; ML-DSA only where
 * the running Node has it with FIPS 204 context strings (OpenSSL 3.5; ML-DSA reached Node in
 * 24.6 and its `context` option in 24.8). Support is detected by trying, never by reading a
 * version string: a Node that lacks ML-DSA throws, and one that ignores `context` is caught by
 * a signature that must fail under a different context but does not.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { ED25519_SPEC, ed25519Precheck } from '../ed25519.js';
import { ML_DSA_44, ML_DSA_65, ML_DSA_87 } from '../ml-dsa.js';
import type { Backend, Primitive, PrimitiveName } from '../primitive.js';
import { OIDS, pkcs8, spki, tlv } from './der.js';

type NativeName = keyof typeof OIDS;

/**
 * The privateKey field of the PKCS #8 wrapping of a 32-byte seed: for Ed25519 a CurvePrivateKey,
 * OCTET STRING (RFC 8410 §7); for ML-DSA the seed form of ML-DSA-PrivateKey,
 * [0] IMPLICIT OCTET STRING (SIZE (32)) (RFC 9881).
 */
function privateKeyField(name: NativeName, seed: Uint8Array): Uint8Array {
  return tlv(name === 'ed25519' ? 0x04 : 0x80, seed);
}

function privateKeyObject(name: NativeName, seed: Uint8Array): KeyObject {
  const field = privateKeyField(name, seed);
  const der = pkcs8(OIDS[name], field);
  try {
    // A Buffer view over our own array: `Buffer.from(array)` would copy the key into Node's shared
    // Buffer pool, where it could never be wiped.
    return createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.byteLength), format: 'der', type: 'pkcs8' });
  } finally {
    field.fill(0);
    der.fill(0);
  }
}

function publicKeyObject(name: NativeName, publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(spki(OIDS[name], publicKey)), format: 'der', type: 'spki' });
}

/**
 * Importing a key costs OpenSSL several times what one signature or verification does, so the
 * objects are kept. A secret key's object lives as long as the buffer holding its bytes (a
 * `SigningKey` drops that buffer when disposed), so a key stays in OpenSSL's memory no longer
 * than it would with an object per signature: until the garbage collector frees it. The object
 * is found by a digest of the bytes, so a buffer whose bytes changed never signs with the old key.
 */
const privateKeyObjects = new WeakMap<ArrayBufferLike, Map<string, KeyObject>>();
/** At most this many keys are remembered per buffer (a pooled buffer can hold many keys' bytes over time). */
const KEYS_PER_BUFFER = 8;

function cachedPrivateKeyObject(name: NativeName, seed: Uint8Array): KeyObject {
  const digest = createHash('sha256').update(name).update(seed).digest('base64');
  let objects = privateKeyObjects.get(seed.buffer);
  let key = objects?.get(digest);
  if (key === undefined) {
    key = privateKeyObject(name, seed);
    if (objects === undefined || objects.size >= KEYS_PER_BUFFER) privateKeyObjects.set(seed.buffer, (objects = new Map()));
    objects.set(digest, key);
  }
  return key;
}

/** Public keys verified most recently, by algorithm and exact bytes; a cluster has few members, each with one or two keys. */
const publicKeyObjects = new Map<string, KeyObject>();
const PUBLIC_KEYS_KEPT = 256;

function cachedPublicKeyObject(name: NativeName, publicKey: Uint8Array): KeyObject {
  const id = `${name}:${Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1')}`;
  let key = publicKeyObjects.get(id);
  if (key === undefined) {
    key = publicKeyObject(name, publicKey);
    if (publicKeyObjects.size >= PUBLIC_KEYS_KEPT) publicKeyObjects.delete(publicKeyObjects.keys().next().value as string);
  } else publicKeyObjects.delete(id);
  // Re-inserted on every use, so that the first key in the map is the least recently used.
  publicKeyObjects.set(id, key);
  return key;
}

/** The raw public key: the BIT STRING that ends the exported SubjectPublicKeyInfo. */
function rawPublicKey(key: KeyObject, length: number): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - length));
}

/** Key generation from a seed: the secret key is the seed, the public key what OpenSSL derives. */
function keygenFromSeed(name: NativeName, publicKeyBytes: number): Primitive['keygen'] {
  return (seed) => ({ publicKey: rawPublicKey(createPublicKey(privateKeyObject(name, seed)), publicKeyBytes), secretKey: seed.slice() });
}

/** A signature as a plain Uint8Array of its own (node returns a Buffer, possibly pooled). */
function own(bytes: Buffer): Uint8Array {
  return new Uint8Array(bytes);
}

const ed25519Primitive: Primitive = {
  keygen: keygenFromSeed('ed25519', ED25519_SPEC.publicKeyBytes),
  sign: (secretKey, message) => own(sign(null, message, cachedPrivateKeyObject('ed25519', secretKey))),
  verify(publicKey, message, signature) {
    // OpenSSL checks S < L and the cofactorless equation itself, but accepts small-order and
    // non-canonical keys (under which R = identity, S = 0 verifies for many messages); the
    // precheck adds those parts of knhk's rule, so that this backend and noble agree.
    if (!ed25519Precheck(publicKey, signature)) return false;
    return verify(null, message, cachedPublicKeyObject('ed25519', publicKey), signature);
  },
};

/**
 * A key with the FIPS 204 context option (Node ≥ 24.8). @types/node for Node 20 does not declare
 * `context`; the option object is built here so that the one widening lives in one place.
 */
function withContext(key: KeyObject, context: Uint8Array): SignKeyObjectInput {
  const input: SignKeyObjectInput & { context: Uint8Array } = { key, context };
  return input;
}

function mlDsaPrimitive(name: NativeName, publicKeyBytes: number): Primitive {
  return {
    keygen: keygenFromSeed(name, publicKeyBytes),
    sign: (seed, message, context) => own(sign(null, message, withContext(cachedPrivateKeyObject(name, seed), context))),
    verify: (publicKey, message, signature, context) =>
      verify(null, message, withContext(cachedPublicKeyObject(name, publicKey), context), signature),
  };
}

/**
 * Whether `primitive` runs here: a signature verifies, fails on another message and, for an
 * algorithm with a context, fails under another context (a Node that ignores the option fails).
 */
function works(primitive: Primitive, withContext: boolean): boolean {
  const context = withContext ? Uint8Array.of(1) : new Uint8Array(0);
  try {
    const { publicKey, secretKey } = primitive.keygen(new Uint8Array(32).fill(7));
    const signature = primitive.sign(secretKey, Uint8Array.of(1, 2, 3), context);
    return (
      primitive.verify(publicKey, Uint8Array.of(1, 2, 3), signature, context) &&
      !primitive.verify(publicKey, Uint8Array.of(1, 2, 4), signature, context) &&
      !(withContext && primitive.verify(publicKey, Uint8Array.of(1, 2, 3), signature, Uint8Array.of(2)))
    );
  } catch {
    return false;
  }
}

const CANDIDATES: Readonly<Partial<Record<PrimitiveName, Primitive>>> = {
  'ed25519': ed25519Primitive,
  'ml-dsa-44': mlDsaPrimitive('ml-dsa-44', ML_DSA_44.spec.publicKeyBytes),
  'ml-dsa-65': mlDsaPrimitive('ml-dsa-65', ML_DSA_65.spec.publicKeyBytes),
  'ml-dsa-87': mlDsaPrimitive('ml-dsa-87', ML_DSA_87.spec.publicKeyBytes),
};

const detected = new Map<PrimitiveName, Primitive | undefined>();

/** The node:crypto backend. Capabilities are probed once per primitive, on first request. */
export const nodeBackend: Backend = Object.freeze({
  name: 'node',
  primitive(name: PrimitiveName): Primitive | undefined {
    if (!detected.has(name)) {
      const candidate = CANDIDATES[name];
      // Pure Ed25519 has no context input (RFC 8032 §5.1); ML-DSA must honour one.
      detected.set(name, candidate !== undefined && works(candidate, name !== 'ed25519') ? candidate : undefined);
    }
    return detected.get(name);
  },
});
