/**
 * Falcon-512 (round-3 specification, the basis of the draft FIPS 206 FN-DSA), detached,
 * compressed signatures. Signatures vary in length up to 666 bytes (the specification's
 * sbytelen for n = 512).
 * The secret key is the full 1281-byte encoding: Falcon key generation takes hundreds of
 * milliseconds, far too long to repeat per signature the way ML-DSA expands its seed.
 * Only the noble backend implements it.
 */
import type { SchemeSpec } from './scheme.js';

/** Sizes of Falcon-512. */
export const FALCON_512_SPEC: SchemeSpec<'quantum-safe'> = Object.freeze({
  name: 'Falcon-512',
  category: 'quantum-safe',
  publicKeyBytes: 897,
  secretKeyBytes: 1281,
  signatureBytes: 666,
  variableSignature: true,
  seedBytes: 48,
  // The round-3 algorithm has no context input.
  contextSupported: false,
});
