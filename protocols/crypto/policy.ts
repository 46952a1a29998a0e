/**
 * Signature policies (DESIGN.md "Cryptography": `SignaturePolicy` = ClassicalOnly | Hybrid |
 * QuantumOnly; verification under a policy is a hard error on any violation, with a typed code).
 *
 * Representation: the policy is a string, the value the cluster's configuration carries and
 * consensus agrees on. It is plain data (it crosses the runtime's decode boundary and appears in
 * logs and telemetry as is), and as a literal type it selects the key category the compiler
 * demands. The issue's names map one to one:
 *
 * | issue         | value         | admits schemes of category                      |
 * |---------------|---------------|-------------------------------------------------|
 * | ClassicalOnly | `'classical'` | `classical`: Ed25519                            |
 * | Hybrid        | `'hybrid'`    | `hybrid`: ML-DSA-65+Ed25519, ML-DSA-44+Ed25519  |
 * | QuantumOnly   | `'quantum'`   | `quantum-safe`: ML-DSA-44/65/87, Falcon-512, SLH-DSA-SHA2-128f |
 *
 * Each policy admits exactly one category; none also accepts a "stronger" one:
 * - `hybrid` rejects pure ML-DSA. Pure ML-DSA is not stronger than the composite, only different:
 *   the hybrid phase exists because the post-quantum schemes are young, and a signature without
 *   its Ed25519 half loses that hedge against a cryptanalytic break of ML-DSA.
 * - `quantum` rejects composites. A composite would still resist a quantum forger (its ML-DSA
 *   half must verify), so this is a policy choice, not a security necessity: QuantumOnly is the
 *   end of the migration, and a policy that kept admitting the previous phase's keys would never
 *   show that every replica has completed it.
 * - `classical` rejects everything but Ed25519, likewise.
 *
 * Migration. A cluster moves one step at a time, classical → hybrid → quantum, each step a
 * configuration change agreed by consensus and taking effect at an agreed point (a sequence
 * number): the replicated configuration executes it (consensus/configuration.ts). Because a
 * policy admits one category, the policy in force at a point fixes the shape of every replica's
 * key there, so no two correct replicas can disagree about whether a key is current. The change
 * carries every replica's new key as a rotation certificate signed by the old key and the new
 * one, and installs all of them or none (`applyPolicyMigration`, policy-migration.ts, which
 * checks the step and the new keys' category; `KeyDirectory.applyRotation` checks signatures and
 * windows, not policies). A signature made before the change still verifies
 * afterwards under the policy of its own epoch; policies are never widened to let old signatures
 * through. There is no step back and no skipped step, see
 * {@link checkPolicyTransition}.
 */
import { CryptoError } from './errors.js';
import type { PublicKey } from './keys.js';
import type { SignatureScheme } from './scheme.js';

/** A cluster's signature policy: `classical` (ClassicalOnly), `hybrid` (Hybrid), `quantum` (QuantumOnly). */
export type SignaturePolicy = 'classical' | 'hybrid' | 'quantum';

/** The key category each policy admits, as a type: drives the compile-time check of {@link verifyUnderPolicy}. */
export interface PolicyCategories {
  classical: 'classical';
  hybrid: 'hybrid';
  quantum: 'quantum-safe';
}

/** The key category each policy admits, at run time. */
export const POLICY_CATEGORY: Readonly<PolicyCategories> = Object.freeze({
  classical: 'classical',
  hybrid: 'hybrid',
  quantum: 'quantum-safe',
});

/** Every policy, in migration order. */
export const SIGNATURE_POLICIES: readonly SignaturePolicy[] = Object.freeze(['classical', 'hybrid', 'quantum'] as const);

/** Whether `value` is a signature policy: for configuration decoded from untyped data. */
export function isSignaturePolicy(value: unknown): value is SignaturePolicy {
  return SIGNATURE_POLICIES.some((policy) => policy === value);
}

function assertPolicy(value: unknown): asserts value is SignaturePolicy {
  if (!isSignaturePolicy(value)) throw new CryptoError('UNKNOWN_POLICY', `unknown signature policy ${String(value)}`);
}

/** Whether `policy` admits signatures of `scheme`, by the scheme's category. */
export function policyAdmits(policy: SignaturePolicy, scheme: Pick<SignatureScheme, 'category'>): boolean {
  assertPolicy(policy);
  return POLICY_CATEGORY[policy] === scheme.category;
}

/**
 * Throws `CryptoError` `SCHEME_NOT_ALLOWED` unless `policy` admits `scheme`; `what` names the key
 * or signature in the message.
 */
export function requireAdmitted(policy: SignaturePolicy, scheme: Pick<SignatureScheme, 'category' | 'name'>, what = 'a'): void {
  if (!policyAdmits(policy, scheme)) throw new CryptoError('SCHEME_NOT_ALLOWED', `the ${policy} policy does not admit ${what} ${scheme.name} key (${scheme.category})`);
}

/**
 * Checks that changing the policy from `from` to `to` is a valid migration step: exactly one step
 * forward along {@link SIGNATURE_POLICIES}. Throws `CryptoError` `POLICY_TRANSITION_INVALID`
 * otherwise (`UNKNOWN_POLICY` for a value that is not a policy). A step back would re-admit the
 * category the cluster chose to retire, which is what an attacker steering the configuration
 * wants; a skipped step (classical → quantum) would put the post-quantum keys in service without
 * the hybrid phase that keeps Ed25519 as a guard while they prove themselves.
 */
export function checkPolicyTransition(from: SignaturePolicy, to: SignaturePolicy): void {
  assertPolicy(from);
  assertPolicy(to);
  if (SIGNATURE_POLICIES.indexOf(to) !== SIGNATURE_POLICIES.indexOf(from) + 1) {
    throw new CryptoError('POLICY_TRANSITION_INVALID', `signature policy cannot change from ${from} to ${to}; the order is ${SIGNATURE_POLICIES.join(' → ')}`);
  }
}

/**
 * Verifies `signature` on `message` (under `context`) by `publicKey` of `scheme`, under `policy`.
 * Returns only when the scheme is admitted and the signature is valid; every violation throws a
 * `CryptoError`, never a warning or a partial verdict: `UNKNOWN_POLICY`, `SCHEME_NOT_ALLOWED`
 * (checked first, so a signature of a retired scheme is named as such even if it is also bad),
 * `SIGNATURE_INVALID` (for a composite: unless both halves verify, as `scheme.verify` decides).
 *
 * At compile time, a policy known as a literal demands its category: `verifyUnderPolicy('quantum',
 * ed25519, key, …)` does not compile. A policy typed as the union (read from configuration) admits
 * any scheme at compile time and is checked at run time. Key validity windows and revocation are
 * the key manager's to check, before this call.
 */
export function verifyUnderPolicy<P extends SignaturePolicy, C extends PolicyCategories[P]>(
  policy: P,
  scheme: SignatureScheme<C>,
  publicKey: PublicKey<C>,
  message: Uint8Array,
  signature: Uint8Array,
  context?: Uint8Array,
): void {
  if (!policyAdmits(policy, scheme)) {
    throw new CryptoError('SCHEME_NOT_ALLOWED', `${scheme.name} (${scheme.category}) is not allowed under the ${policy} signature policy`);
  }
  if (!scheme.verify(publicKey, message, signature, context)) {
    throw new CryptoError('SIGNATURE_INVALID', `${scheme.name} signature does not verify`);
  }
}
