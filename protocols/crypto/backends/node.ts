/**
 * The native backend: node:crypto (OpenSSL). Ed25519 on every supported Node; ML-DSA only where
 * the running Node has it with FIPS 204 context strings (OpenSSL 3.5; ML-DSA reached Node in
 * 24.6 and its `context` option in 24.8). Support is detected by trying, never by reading a
 * version string: a Node that lacks ML-DSA throws, and one that ignores `context` is caught by
 * a signature that must fail under a different context but does not.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
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
  sign: (secretKey, message) => own(sign(null, message, privateKeyObject('ed25519', secretKey))),
  verify(publicKey, message, signature) {
    // OpenSSL checks S < L and the cofactorless equation itself, but accepts small-order and
    // non-canonical keys (under which R = identity, S = 0 verifies for many messages); the
    // precheck adds those parts of knhk's rule, so that this backend and noble agree.
    if (!ed25519Precheck(publicKey, signature)) return false;
    return verify(null, message, publicKeyObject('ed25519', publicKey), signature);
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
    sign: (seed, message, context) => own(sign(null, message, withContext(privateKeyObject(name, seed), context))),
    verify: (publicKey, message, signature, context) =>
      verify(null, message, withContext(publicKeyObject(name, publicKey), context), signature),
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
