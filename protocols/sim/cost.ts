/**
 * What signing and verifying cost a replica's CPU in the simulator. Each replica processes one
 * input at a time: verifying a message (and the signatures nested in it that it has not seen
 * before) and signing what it sends keep it busy, and its outputs leave when it is done. The
 * presets are this machine's measurements (`npm run bench -- crypto`, README "Performance").
 */

/** Per-operation CPU cost of a signature scheme, in microseconds. */
export interface CryptoCost {
  readonly signUs: number;
  readonly verifyUs: number;
}

/** Measured costs of the schemes a cluster's policy selects. */
export const CRYPTO_COSTS = {
  /** No cost: protocol logic only. */
  free: { signUs: 0, verifyUs: 0 },
  /** Ed25519 on node:crypto. */
  classical: { signUs: 398, verifyUs: 153 },
  /** ML-DSA-65 + Ed25519 composite with native ML-DSA (Node 24, OpenSSL 3.5). */
  'hybrid-native': { signUs: 1118, verifyUs: 353 },
  /** ML-DSA-65 + Ed25519 composite on @noble/post-quantum (Node 20). */
  'hybrid-noble': { signUs: 13000, verifyUs: 3031 },
} as const satisfies Record<string, CryptoCost>;

/** A preset name of {@link CRYPTO_COSTS}. */
export type CryptoCostPreset = keyof typeof CRYPTO_COSTS;
