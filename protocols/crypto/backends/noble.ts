/**
 * The portable backend: @noble/post-quantum and @noble/curves, pure JavaScript, every scheme,
 * every Node version. It is the reference the registry checks other backends against.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { createRequire } from 'node:module';
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import { slh_dsa_sha2_128f } from '@noble/post-quantum/slh-dsa.js';
import { ed25519Precheck } from '../ed25519.js';
import type { Backend, Primitive, PrimitiveName } from '../primitive.js';

const { Point } = ed25519;

/**
 * Ed25519 under knhk's acceptance rule (see `ed25519.ts`). noble's own `verify`, even with
 * `zip215: false`, uses the cofactored equation, which accepts signatures OpenSSL rejects; so the
 * equation is computed here in its cofactorless form, on noble's strictly decoded points.
 */
const ed25519Primitive: Primitive = {
  keygen: (seed) => ({ publicKey: ed25519.getPublicKey(seed), secretKey: seed.slice() }),
  sign: (secretKey, message) => ed25519.sign(message, secretKey),
  verify(publicKey, message, signature) {
    if (!ed25519Precheck(publicKey, signature)) return false;
    // zip215 = false: strict RFC 8032 §5.1.3 decoding (y < p; no x = 0 with the sign bit set).
    const a = Point.fromBytes(publicKey, false);
    const r = signature.subarray(0, 32);
    const k = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(r, publicKey, message))));
    const s = bytesToNumberLE(signature.subarray(32, 64));
    const expectedR = Point.BASE.multiplyUnsafe(s).subtract(a.multiplyUnsafe(k));
    return equalBytes(expectedR.toBytes(), r);
  },
};

type NobleMlDsa = typeof ml_dsa65;

/** ML-DSA with the 32-byte seed as secret key: expanded per signature, then wiped. */
function mlDsaPrimitive(dsa: NobleMlDsa): Primitive {
  return {
    keygen(seed) {
      const expanded = dsa.keygen(seed);
      // Only the seed is kept as the secret key; the expansion is as secret and is wiped.
      expanded.secretKey.fill(0);
      return { publicKey: expanded.publicKey, secretKey: seed.slice() };
    },
    sign(seed, message, context) {
      const expanded = dsa.keygen(seed).secretKey;
      try {
        return dsa.sign(message, expanded, { context });
      } finally {
        expanded.fill(0);
      }
    },
    verify: (publicKey, message, signature, context) => dsa.verify(signature, message, publicKey, { context }),
  };
}

type NobleFalcon = typeof import('@noble/post-quantum/falcon.js');
let falconModule: NobleFalcon | undefined;

/**
 * noble's Falcon builds its tables as it loads, 50–150 ms here, in every thread that imports this
 * backend (each replica, signer, verifier and pool thread), and few clusters sign with Falcon: it
 * is loaded on first use instead, with `require`, which loads ES modules since Node 20.19.
 */
function falcon512(): NobleFalcon['falcon512'] {
  falconModule ??= createRequire(import.meta.url)('@noble/post-quantum/falcon.js') as NobleFalcon;
  return falconModule.falcon512;
}

/** Falcon-512: no context input; the scheme layer only lets the empty context through. */
const falconPrimitive: Primitive = {
  keygen: (seed) => falcon512().keygen(seed),
  sign: (secretKey, message) => falcon512().sign(message, secretKey),
  verify: (publicKey, message, signature) => falcon512().verify(signature, message, publicKey),
};

const slhDsaPrimitive: Primitive = {
  keygen: (seed) => slh_dsa_sha2_128f.keygen(seed),
  sign: (secretKey, message, context) => slh_dsa_sha2_128f.sign(message, secretKey, { context }),
  verify: (publicKey, message, signature, context) => slh_dsa_sha2_128f.verify(signature, message, publicKey, { context }),
};

const PRIMITIVES: Readonly<Record<PrimitiveName, Primitive>> = {
  'ed25519': ed25519Primitive,
  'ml-dsa-44': mlDsaPrimitive(ml_dsa44),
  'ml-dsa-65': mlDsaPrimitive(ml_dsa65),
  'ml-dsa-87': mlDsaPrimitive(ml_dsa87),
  'falcon-512': falconPrimitive,
  'slh-dsa-sha2-128f': slhDsaPrimitive,
};

/** The noble backend: implements every primitive. */
export const nobleBackend: Backend = Object.freeze({
  name: 'noble',
  primitive: (name: PrimitiveName) => PRIMITIVES[name],
});
