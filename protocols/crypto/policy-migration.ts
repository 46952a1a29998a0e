/**
 * A signature policy migration: one step of classical → hybrid → quantum taken by the whole
 * cluster at one agreed point (policy.ts "Migration"). Since a policy admits one key category,
 * the step must replace every member's key at that point by a key of the new category: the
 * migration carries one rotation certificate per member, each signed by the member's key in force
 * and its successor, and installs all of them or none. A member whose signer made no certificate
 * blocks the step: a cluster half in one policy and half in the next is what the single-category
 * rule exists to rule out.
 *
 * The member's two signatures on its certificate are its consent: a certificate to a key of the
 * next category is useless alone (no lone rotation under the old policy installs it), and inside a
 * migration it can only take the cluster the one step forward `checkPolicyTransition` allows.
 */
import { CryptoError } from './errors.js';
import type { KeyDirectory, KeyRecord } from './key-directory.js';
import type { RotationCertificate, SchemeResolver } from './key-rotation.js';
import { checkPolicyTransition, requireAdmitted, type SignaturePolicy } from './policy.js';

/** The policy step `from` → `to`, and every member's rotation to a key `to` admits. */
export interface PolicyMigration {
  /** The policy the step starts from: the migration applies only where it is still in force. */
  readonly from: SignaturePolicy;
  /** The policy in force once it applies. */
  readonly to: SignaturePolicy;
  /** One rotation per member of the directory, in any order. */
  readonly rotations: readonly RotationCertificate[];
}

/**
 * Applies `migration` to `directory`, whose members sign under `inForce`, at consensus sequence
 * `atSequence` (and the commit's agreed time `atTime`, as {@link KeyDirectory.applyRotation}
 * checks it): checks that it starts from the policy in force and is one step forward, names every
 * member exactly once, and installs only keys the new policy admits; then installs every rotation
 * at once. Returns the new keys, in the order of the certificates. Throws `CryptoError`
 * (`POLICY_TRANSITION_INVALID`, `SCHEME_NOT_ALLOWED`, or a rotation's own refusal) and changes
 * nothing on a throw.
 */
export function applyPolicyMigration(
  directory: KeyDirectory,
  schemes: SchemeResolver,
  inForce: SignaturePolicy,
  migration: PolicyMigration,
  atSequence: number,
  atTime?: number,
): KeyRecord[] {
  if (migration.from !== inForce) {
    throw new CryptoError('POLICY_TRANSITION_INVALID', `the migration starts from the ${String(migration.from)} policy; the ${inForce} policy is in force`);
  }
  checkPolicyTransition(migration.from, migration.to);
  const members = directory.members().sort((a, b) => a - b);
  const named = migration.rotations.map((cert) => cert.member).sort((a, b) => a - b);
  if (named.length !== members.length || named.some((member, i) => member !== members[i])) {
    throw new CryptoError('POLICY_TRANSITION_INVALID', `a migration rotates every member's key once: members ${members.join(', ')}, rotations of ${named.join(', ') || 'none'}`);
  }
  for (const cert of migration.rotations) requireAdmitted(migration.to, schemes.get(cert.next.scheme), `member ${cert.member}'s new`);
  return directory.applyRotations(migration.rotations, atSequence, atTime);
}
