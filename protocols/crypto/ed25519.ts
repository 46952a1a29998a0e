/**
 * Ed25519 (RFC 8032 §5.1), pure, and the one acceptance rule every backend applies to it.
 *
 * Why one rule matters: RFC 8032 leaves verifiers some latitude (cofactored or cofactorless
 * equation, whether to reject small-order keys), and libraries differ. noble's cofactored
 * equation accepts a signature whose R carries a small-order component that OpenSSL's
 * cofactorless check rejects; a Byzantine replica can craft such a vote on purpose. Two correct
 * replicas that disagree about a vote's validity can split a quorum, so knhk fixes the rule:
 *
 * 1. S is reduced: 0 ≤ S < L (RFC 8032 §5.1.7 step 1).
 * 2. A is canonically encoded: its y-coordinate is below p (§5.1.3 step 1).
 * 3. A is not of small order. This also rejects the encodings of x = 0 with the sign bit set
 *    (§5.1.3 step 4), since the only points with x = 0 are the identity and (0, −1).
 * 4. [S]B − [k]A, encoded, equals R byte for byte: the cofactorless form of the §5.1.7 step 3
 *    equation, which the RFC allows and OpenSSL uses. A non-canonical R never matches.
 *
 * Checks 1–3 are {@link ed25519Precheck}, run by every backend before its own verification;
 * check 4 is what OpenSSL does natively and what the noble backend computes explicitly.
 */
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, hexToBytes } from '@noble/curves/utils.js';
import type { SchemeSpec } from './scheme.js';

/** Sizes of Ed25519 (RFC 8032 §5.1.5, §5.1.6): 32-byte keys, 64-byte signatures. */
export const ED25519_SPEC: SchemeSpec<'classical'> = Object.freeze({
  name: 'Ed25519',
  category: 'classical',
  publicKeyBytes: 32,
  secretKeyBytes: 32,
  signatureBytes: 64,
  variableSignature: false,
  seedBytes: 32,
  // Pure Ed25519 has no context input; Ed25519ctx is a different algorithm (RFC 8032 §5.1).
  contextSupported: false,
});

const FIELD_PRIME = ed25519.Point.Fp.ORDER;
const GROUP_ORDER = ed25519.Point.Fn.ORDER;
const SIGN_BIT = 1n << 255n;

/** y-coordinates of the eight small-order points; ± pairs share one, so this covers both signs. */
const SMALL_ORDER_Y = new Set(ED25519_TORSION_SUBGROUP.map((hex) => bytesToNumberLE(hexToBytes(hex)) & ~SIGN_BIT));

/**
 * Checks 1–3 of the rule above on a 32-byte public key and a 64-byte signature. Cheap (byte and
 * integer comparisons only), so the native backend pays almost nothing for agreeing with noble.
 */
export function ed25519Precheck(publicKey: Uint8Array, signature: Uint8Array): boolean {
  const s = bytesToNumberLE(signature.subarray(32, 64));
  if (s >= GROUP_ORDER) return false;
  const y = bytesToNumberLE(publicKey) & ~SIGN_BIT;
  if (y >= FIELD_PRIME) return false;
  return !SMALL_ORDER_Y.has(y);
}

/**
 * RFC 8032 §7.1, TEST 2: a private key (the 32-byte seed), its public key, a one-byte message and
 * its signature. Ed25519 signing is deterministic (§5.1.6), so this signature is the only right
 * one for this key and message: a backend is trusted with Ed25519 only if it reproduces it.
 */
export const ED25519_KNOWN_ANSWER = Object.freeze({
  seed: hexToBytes('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'),
  publicKey: hexToBytes('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'),
  message: hexToBytes('72'),
  signature: hexToBytes('92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'),
});
