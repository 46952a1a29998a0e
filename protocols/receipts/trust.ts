/**
 * What a receipt verifier trusts: a cluster's id, size and fault bound, its signature policy and
 * the migrations that changed it, and every member's public keys with the range of consensus
 * sequences each key was valid for. The verifier needs nothing else: no network, no replica, no
 * clock.
 */
import { quorumSize } from '../consensus/config.js';
import { checkPolicyTransition, type KeyId, type SchemeName, type SignaturePolicy } from '../crypto/index.js';
import { ReceiptError } from './errors.js';

/** The format version of trust files this code writes and reads. */
export const TRUST_VERSION = 1;

/** One key of a member, with the sequences it was valid for. */
export interface TrustKey {
  readonly keyId: KeyId;
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
  /** First sequence at which the key signs for its member. */
  readonly validFrom: number;
  /** Last sequence at which it does, inclusive; absent while the key is current. */
  readonly validUntil?: number;
}

/** A member of the cluster and its keys, past and present. */
export interface TrustMember {
  /** The member's node id, as tree-head signatures name it. */
  readonly node: string;
  readonly keys: readonly TrustKey[];
}

/** The trust anchor of a receipt verifier. */
export interface Trust {
  /** Format version: {@link TRUST_VERSION}. */
  readonly version: typeof TRUST_VERSION;
  readonly cluster: string;
  /** Number of members. */
  readonly n: number;
  /** Byzantine members tolerated (n ≥ 3f+1); 0 for a Raft cluster, whose receipts then need a majority. */
  readonly f: number;
  /** The signature policy the cluster started under: receipts are made under it up to its first migration. */
  readonly policy: SignaturePolicy;
  readonly members: readonly TrustMember[];
  /** The cluster's signature policy migrations, in order; absent when it never migrated. */
  readonly migrations?: readonly PolicyMigrationPoint[];
}

/** A signature policy migration: `policy` is in force from log position `sequence` on. */
export interface PolicyMigrationPoint {
  readonly policy: SignaturePolicy;
  readonly sequence: number;
}

/**
 * The signature policy in force at log position `sequence` for a cluster that started under
 * `of.policy` and took the migrations `of.migrations` (in order): the receipts and tree heads of
 * that position are made under it, and signed with keys it admits.
 */
export function policyAt(of: { readonly policy: SignaturePolicy; readonly migrations?: readonly PolicyMigrationPoint[] | undefined }, sequence: number): SignaturePolicy {
  let policy = of.policy;
  for (const migration of of.migrations ?? []) {
    if (migration.sequence > sequence) break;
    policy = migration.policy;
  }
  return policy;
}

/**
 * Signatures of distinct members a tree head needs: ⌈(n+f+1)/2⌉, the BFT quorum of
 * `consensus/config.ts`. That is 2f+1 for n = 3f+1, and it keeps any two quorums intersecting in
 * a correct member when n exceeds 3f+1 (where plain 2f+1 would not).
 */
export function trustQuorum(trust: Pick<Trust, 'n' | 'f'>): number {
  return quorumSize('pbft', trust.n, trust.f);
}

/**
 * The trust entry of a key (a `SigningKey` fits), valid from sequence `validFrom` to
 * `validUntil` inclusive (absent: still current). What a cluster writes into its trust file.
 */
export function trustKeyOf(
  key: { readonly keyId: KeyId; readonly scheme: { readonly name: SchemeName }; readonly publicKey: Uint8Array },
  validFrom: number,
  validUntil?: number,
): TrustKey {
  const entry = { keyId: key.keyId, scheme: key.scheme.name, publicKey: new Uint8Array(key.publicKey), validFrom };
  return validUntil === undefined ? entry : { ...entry, validUntil };
}

/** The key of `member` with id `keyId` when it is valid at `sequence`, else undefined. */
export function keyAt(member: TrustMember, keyId: string, sequence: number): TrustKey | undefined {
  const key = member.keys.find((k) => k.keyId === keyId);
  if (key === undefined || sequence < key.validFrom) return undefined;
  return key.validUntil === undefined || sequence <= key.validUntil ? key : undefined;
}

/**
 * Checks the rules a trust description must follow beyond its shape and returns it: n ≥ 3f+1,
 * exactly n members with distinct node ids, key ids distinct within a member, validFrom ≤ validUntil.
 * @throws {ReceiptError} `INVALID_TRUST` naming the first rule broken.
 */
export function checkTrust(trust: Trust): Trust {
  const fail = (reason: string): never => {
    throw new ReceiptError('INVALID_TRUST', reason);
  };
  if (!Number.isSafeInteger(trust.n) || !Number.isSafeInteger(trust.f) || trust.f < 0 || trust.n < 3 * trust.f + 1) {
    fail(`a trust needs n ≥ 3f+1, got n = ${trust.n}, f = ${trust.f}`);
  }
  if (trust.members.length !== trust.n) fail(`n = ${trust.n} but ${trust.members.length} members are listed`);
  const nodes = new Set<string>();
  for (const member of trust.members) {
    if (nodes.has(member.node)) fail(`node ${member.node} is listed twice`);
    nodes.add(member.node);
    const ids = new Set<string>();
    for (const key of member.keys) {
      if (ids.has(key.keyId)) fail(`node ${member.node} lists key ${key.keyId} twice`);
      ids.add(key.keyId);
      if (key.validUntil !== undefined && key.validUntil < key.validFrom) {
        fail(`node ${member.node}'s key ${key.keyId} is valid until ${key.validUntil}, before it is valid from ${key.validFrom}`);
      }
    }
  }
  let policy = trust.policy;
  let since = -1;
  for (const migration of trust.migrations ?? []) {
    if (migration.sequence <= since) fail(`the migration to ${migration.policy} at ${migration.sequence} does not come after the one before, at ${since}`);
    try {
      checkPolicyTransition(policy, migration.policy);
    } catch (error) {
      fail(`the migration at ${migration.sequence}: ${(error as Error).message}`);
    }
    policy = migration.policy;
    since = migration.sequence;
  }
  return trust;
}
