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
 * RFC 8032 §7.1, TEST SHA(abc): a private key (the 32-byte seed), its public key, a 64-byte
 * message and its signature. Ed25519 signing is deterministic (§5.1.6), so this signature is the
 * only right one for this key and message: a backend is trusted with Ed25519 only if it
 * reproduces it.
 */
export const ED25519_KNOWN_ANSWER = Object.freeze({
  seed: hexToBytes('833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42'),
  publicKey: hexToBytes('ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf'),
  message: hexToBytes('ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f'),
  signature: hexToBytes('dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704'),
});
