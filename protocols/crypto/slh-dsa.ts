/**
 * SLH-DSA-SHA2-128f (FIPS 205), pure: stateless hash-based signatures, the conservative
 * quantum-safe choice (security rests on SHA-256 alone), at the price of 17 KB signatures and
 * slow signing. Only the noble backend implements it.
 */
import type { SchemeSpec } from './scheme.js';

/** Sizes of SLH-DSA-SHA2-128f (FIPS 205 Table 2: n = 16, signature 17 088 B). */
export const SLH_DSA_SHA2_128F_SPEC: SchemeSpec<'quantum-safe'> = Object.freeze({
  name: 'SLH-DSA-SHA2-128f',
  category: 'quantum-safe',
  publicKeyBytes: 32,
  secretKeyBytes: 64,
  signatureBytes: 17088,
  variableSignature: false,
  // slh_keygen_internal takes SK.seed, SK.prf and PK.seed, n bytes each (FIPS 205 Algorithm 18).
  seedBytes: 48,
  // FIPS 205 Algorithms 22 and 24, step 1: a context string of at most 255 bytes.
  contextSupported: true,
});
