/**
 * ML-DSA (FIPS 204), pure (not HashML-DSA), at its three parameter sets.
 *
 * The secret key is the 32-byte seed ξ of ML-DSA.KeyGen (FIPS 204 Algorithm 1), not the expanded
 * skEncode form (Algorithm 24): the seed is the interoperable private-key format of RFC 9881 and
 * of the composite draft, it is 1/80 the size, and zeroizing 32 bytes is easy. Signing expands
 * the seed each time (ML-DSA.KeyGen_internal, Algorithm 6), which costs about one key generation.
 *
 * Signing is hedged (FIPS 204 §3.4: fresh randomness rnd per signature), which is the default of
 * both backends; signatures therefore differ from one call to the next, and tests never compare
 * them byte for byte.
 */
import type { PrimitiveName } from './primitive.js';
import type { SchemeSpec } from './scheme.js';

/** An ML-DSA scheme's facts plus the primitive that computes it. */
export interface MlDsaParameters {
  /** Sizes and name. */
  readonly spec: SchemeSpec<'quantum-safe'>;
  /** The backend primitive implementing this parameter set. */
  readonly primitive: PrimitiveName & `ml-dsa-${string}`;
}

function mlDsa(level: 44 | 65 | 87, publicKeyBytes: number, signatureBytes: number): MlDsaParameters {
  return Object.freeze({
    spec: Object.freeze({
      name: `ML-DSA-${level}`,
      category: 'quantum-safe',
      publicKeyBytes,
      secretKeyBytes: 32,
      signatureBytes,
      variableSignature: false,
      seedBytes: 32,
      // FIPS 204 Algorithms 2 and 3, step 1: a context string of at most 255 bytes.
      contextSupported: true,
    }),
    primitive: `ml-dsa-${level}`,
  });
}

/** ML-DSA-44 (FIPS 204 Table 2: pk 1312 B, signature 2420 B). */
export const ML_DSA_44 = mlDsa(44, 1312, 2420);
/** ML-DSA-65 (FIPS 204 Table 2: pk 1952 B, signature 3309 B). */
export const ML_DSA_65 = mlDsa(65, 1952, 3309);
/** ML-DSA-87 (FIPS 204 Table 2: pk 2592 B, signature 4627 B). */
export const ML_DSA_87 = mlDsa(87, 2592, 4627);
