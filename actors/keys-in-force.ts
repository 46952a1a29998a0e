/**
 * Which keys a restarted cluster's verifier starts with (actors/cluster.ts): a cluster that took
 * signature policy migrations before it stopped is in the policy it had reached, or, stopped
 * half-way through a step's adoptions, just before that step.
 */
import { ConfigError } from '../runtime/index.js';
import { POLICY_CATEGORY, SIGNATURE_POLICIES, type SchemeRegistry, type SignaturePolicy } from '../protocols/crypto/index.js';
import type { PolicyMigrationPoint } from '../protocols/receipts/index.js';
import type { PublicKeyDescriptor } from './signer.js';

/**
 * The policy the verifier of a cluster starting from its signers' keys judges under, and the key
 * of each member it starts with. Normally the keys in force and the one policy that admits them
 * all: a cluster that migrated before it stopped is in the policy it reached (and the cluster object
 * knows the steps from its signers too, {@link stepsTaken}). A cluster
 * stopped between a step's commit and the last of its signers' adoptions holds keys of two
 * adjacent policies: the verifier then starts before the step, with the adopted members' last
 * keys before it, and takes the step again from the replicas' reports, as it first did.
 * @throws {ConfigError} for keys of policies further apart, which no migration leaves.
 */
export function keysInForce(histories: readonly (readonly PublicKeyDescriptor[])[], schemes: Pick<SchemeRegistry, 'get'>): { readonly policy: SignaturePolicy; readonly members: PublicKeyDescriptor[] } {
  const current = histories.map((history) => history[history.length - 1] as PublicKeyDescriptor);
  const stepOf = policyIndexOf(schemes);
  const steps = current.map(stepOf);
  const earliest = Math.min(...steps);
  const latest = Math.max(...steps);
  if (earliest < 0 || latest - earliest > 1) throw new ConfigError(`the members' keys in force (${current.map((key) => key.scheme).join(', ')}) are not of one policy, nor of two successive ones`);
  // A member past the step may have rotated again since: its last key of the earlier policy is the one the step replaced.
  const members = histories.map((history, i) => {
    const key = history.findLast((k) => stepOf(k) === earliest);
    if (key === undefined) throw new ConfigError(`member ${i} has no key of the ${SIGNATURE_POLICIES[earliest]} policy its other members' keys are of`);
    return key;
  });
  return { policy: SIGNATURE_POLICIES[earliest] as SignaturePolicy, members };
}

/** The index in {@link SIGNATURE_POLICIES} of the policy whose category a key is of (-1 for none). */
const policyIndexOf =
  (schemes: Pick<SchemeRegistry, 'get'>) =>
  (key: PublicKeyDescriptor): number =>
    SIGNATURE_POLICIES.findIndex((policy) => POLICY_CATEGORY[policy] === schemes.get(key.scheme).category);

/**
 * The policy steps a cluster that started under `from` took to reach `to` (the policy of
 * {@link keysInForce}, which every member's signer adopted), with the position each took effect
 * at: where every member's first key of the step's policy signs from, the step having replaced
 * all of them at once. A restarted cluster knows them from its signers, as it knows its keys,
 * before any replica reports them again.
 * @throws {ConfigError} when the members' first keys are not of `from`, or their first keys of a
 *   step's policy start at different positions, which no step leaves.
 */
export function stepsTaken(histories: readonly (readonly PublicKeyDescriptor[])[], schemes: Pick<SchemeRegistry, 'get'>, from: SignaturePolicy, to: SignaturePolicy): PolicyMigrationPoint[] {
  const stepOf = policyIndexOf(schemes);
  // Steps are counted from the policy of the first keys: one spawned again under another policy would invent or lose steps.
  const first = histories.find((history) => stepOf(history[0] as PublicKeyDescriptor) !== SIGNATURE_POLICIES.indexOf(from));
  if (first !== undefined) throw new ConfigError(`the cluster's first keys are of another policy than ${from} (${(first[0] as PublicKeyDescriptor).scheme}): spawn it again with the policy it was first spawned with`);
  const steps: PolicyMigrationPoint[] = [];
  for (let index = SIGNATURE_POLICIES.indexOf(from) + 1; index <= SIGNATURE_POLICIES.indexOf(to); index++) {
    const policy = SIGNATURE_POLICIES[index] as SignaturePolicy;
    const starts = new Set(histories.map((history) => history.find((key) => stepOf(key) === index)?.fromSequence));
    const [sequence] = starts;
    if (starts.size !== 1 || sequence === undefined) throw new ConfigError(`the members' first keys of the ${policy} policy do not start at one position: ${[...starts].join(', ')}`);
    steps.push({ policy, sequence });
  }
  return steps;
}
