/**
 * The cluster's configuration as replicated state: which key each member signs with, and the
 * signature policy they sign under. A key rotation is agreed through consensus (DESIGN.md
 * "Cryptography"): its certificate is submitted as a command of a configuration session, ordered
 * like any other command, and executed by every correct replica here — checked against the
 * member's key in force and the policy in force by the same `KeyDirectory` rules the verifier
 * applies, and recorded with the log position that installed it (the new key signs from there
 * on). Since every correct replica executes the same commands in the same order, they all accept
 * or refuse the same rotations, at the same log position, and a snapshot carries the
 * configuration to a replica that catches up by state transfer.
 *
 * A signature policy migration (crypto/policy-migration.ts) is a configuration command too: the
 * next policy and every member's rotation to a key it admits, installed together at one position
 * or refused whole. Its payload is {@link MIGRATION_DOMAIN} followed by the msgpack of the step
 * and the certificates, so it cannot be read as a rotation certificate, whose own prefix differs.
 *
 * Configuration commands never reach the application's state machine. The state's hash is the
 * application's own as long as no rotation was recorded, so a cluster that never rotates has the
 * state hashes it would have without this layer.
 */
import { t } from '../../schema/schema.js';
import {
  CryptoError,
  SIGNATURE_POLICIES,
  applyPolicyMigration,
  checkPolicyTransition,
  decodeRotationCertificate,
  encodeRotationCertificate,
  KeyDirectory,
  requireAdmitted,
  type KeyDescriptor,
  type KeyId,
  type KeyRecord,
  type PolicyMigration,
  type SchemeResolver,
  type SignaturePolicy,
} from '../crypto/index.js';
import { decode, decodeStored, encode, hashBytes, sameBytes, type Digest } from './codec.js';
import type { Command } from './command.js';
import { ConsensusError } from './errors.js';
import { MAX_STATE_BYTES, applyStateChanges, freezeState, type ConsensusState, type StateView } from './state-machine.js';

/**
 * Client sessions whose ids start with this carry configuration commands. Clients of the
 * application cannot use such an id by accident: knhk's client names its sessions after the
 * cluster id, which has no '/'.
 */
export const CONFIGURATION_SESSION_PREFIX = 'knhk.config/';

/** True for a command of a configuration session. */
export function isConfigurationCommand(command: Command): boolean {
  return command.client.startsWith(CONFIGURATION_SESSION_PREFIX);
}

/** A key a configuration command installed: whose, at which epoch, which. */
export interface InstalledKey {
  readonly member: number;
  readonly epoch: number;
  readonly keyId: KeyId;
}

/**
 * What a configuration command was answered with: the key a rotation installed, the policy a
 * migration put in force with every member's new key, or why nothing changed.
 */
export type ConfigurationResponse =
  | ({ readonly ok: true; readonly kind: 'rotation' } & InstalledKey)
  | { readonly ok: true; readonly kind: 'migration'; readonly policy: SignaturePolicy; readonly keys: readonly InstalledKey[] }
  | { readonly ok: false; readonly error: string; readonly reason: string };

const MAX_MEMBERS = 1 << 10;
const installedKeyFields = { member: t.uint(), epoch: t.uint(), keyId: t.string({ maxLength: 128 }) };
/** A signature policy, as configuration and the reports about it carry one. */
export const signaturePolicySchema = t.oneOf(...SIGNATURE_POLICIES);

const responseSchema = t.variants({
  installed: installedKeyFields,
  migrated: { policy: signaturePolicySchema, keys: t.array(t.object(installedKeyFields), { maxLength: MAX_MEMBERS }) },
  refused: { error: t.string({ maxLength: 64 }), reason: t.string({ maxLength: 1024 }) },
});

const asInstalled = (key: { member: number; epoch: number; keyId: string }): InstalledKey => ({ member: key.member, epoch: key.epoch, keyId: key.keyId as KeyId });

/** Decodes the response to a configuration command. @throws {ConsensusError} `CORRUPT_STATE` for bytes no replica produced. */
export function configurationResponse(bytes: Uint8Array): ConfigurationResponse {
  const response = decodeStored(bytes, responseSchema, 'configuration response');
  if (response.type === 'refused') return { ok: false, error: response.error, reason: response.reason };
  if (response.type === 'migrated') return { ok: true, kind: 'migration', policy: response.policy, keys: response.keys.map(asInstalled) };
  return { ok: true, kind: 'rotation', ...asInstalled(response) };
}

/** The prefix of a policy migration command's payload. */
export const MIGRATION_DOMAIN: Uint8Array = new TextEncoder().encode('knhk/policy-migration/v1');

const certificateBytes = t.bytes({ maxLength: 1 << 16 });
/** A policy step's rotation certificates, one per member, as the step's command and the reports of it carry them. */
export const stepCertificatesSchema = t.array(certificateBytes, { maxLength: MAX_MEMBERS });
const migrationSchema = t.object({ from: signaturePolicySchema, to: signaturePolicySchema, rotations: stepCertificatesSchema });

/** The payload of the configuration command that carries `migration`. */
export function encodePolicyMigration(migration: PolicyMigration): Uint8Array {
  const body = encode({ from: migration.from, to: migration.to, rotations: migration.rotations.map(encodeRotationCertificate) });
  const payload = new Uint8Array(MIGRATION_DOMAIN.length + body.length);
  payload.set(MIGRATION_DOMAIN);
  payload.set(body, MIGRATION_DOMAIN.length);
  return payload;
}

/** The migration a payload carries; undefined when it does not start with {@link MIGRATION_DOMAIN}. @throws {CryptoError} `POLICY_TRANSITION_INVALID` for a malformed one. */
function decodePolicyMigration(payload: Uint8Array): PolicyMigration | undefined {
  if (payload.length < MIGRATION_DOMAIN.length || !sameBytes(payload.subarray(0, MIGRATION_DOMAIN.length), MIGRATION_DOMAIN)) return undefined;
  let body: { readonly from: SignaturePolicy; readonly to: SignaturePolicy; readonly rotations: readonly Uint8Array[] };
  try {
    body = migrationSchema.parse(decode(payload.subarray(MIGRATION_DOMAIN.length)));
  } catch (cause) {
    throw new CryptoError('POLICY_TRANSITION_INVALID', 'the policy migration does not decode', { cause });
  }
  return { from: body.from, to: body.to, rotations: body.rotations.map(decodeRotationCertificate) };
}

/**
 * A policy change the configuration recorded: the policy, the log position of the migration that
 * put it in force, and how many rotations were installed by then (its own included), which places
 * it among the rotations.
 */
export interface PolicyChange {
  readonly policy: SignaturePolicy;
  readonly sequence: number;
  readonly rotations: number;
}

const policyChangeSchema = t.object({ policy: signaturePolicySchema, sequence: t.uint(), rotations: t.uint() });

const snapshotSchema = t.object({
  state: t.bytes({ maxLength: MAX_STATE_BYTES }),
  rotations: t.array(t.object({ certificate: certificateBytes, sequence: t.uint() }), { maxLength: 1 << 20 }),
  // Absent from the snapshots of configurations that never migrated, and from those made before migrations existed.
  policies: t.optional(t.array(policyChangeSchema, { maxLength: SIGNATURE_POLICIES.length })),
});

/** A rotation the configuration recorded: its certificate and the log position that installed it. */
export interface InstalledRotation {
  readonly certificate: Uint8Array;
  readonly sequence: number;
}

/** What the configuration layer adds to a machine's snapshot: the rotations and policy changes so far. */
interface Recorded {
  readonly rotations: readonly InstalledRotation[];
  readonly policies: readonly PolicyChange[];
}

/** A snapshot (or changes) of the machine with the configuration beside it; `policies` only once there are any, so a cluster that never migrated stores what it did before migrations existed. */
function encodeConfigured(state: Uint8Array, recorded: Recorded): Uint8Array {
  return encode(recorded.policies.length === 0 ? { state, rotations: recorded.rotations } : { state, rotations: recorded.rotations, policies: recorded.policies });
}

/** A {@link ConfiguredState} frozen: its machine's view and the configuration by then. */
class ConfiguredView implements StateView {
  readonly hash: Digest;
  readonly #machine: StateView;
  readonly #recorded: Recorded;

  constructor(hash: Digest, machine: StateView, recorded: Recorded) {
    this.hash = hash;
    this.#machine = machine;
    this.#recorded = recorded;
  }

  snapshot(): Uint8Array {
    return encodeConfigured(this.#machine.snapshot(), this.#recorded);
  }

  changesSince(older: StateView): Uint8Array | undefined {
    const state = older instanceof ConfiguredView ? this.#machine.changesSince(older.#machine) : undefined;
    return state === undefined ? undefined : encodeConfigured(state, this.#recorded);
  }
}

/** A state machine and, beside it, the members' keys as rotations and migrations changed them, and the policy in force. */
export class ConfiguredState implements ConsensusState {
  readonly #machine: ConsensusState;
  readonly #genesis: readonly KeyDescriptor[];
  readonly #schemes: SchemeResolver;
  readonly #genesisPolicy: SignaturePolicy;
  readonly #cluster: string;
  #directory: KeyDirectory;
  readonly #installed: InstalledRotation[] = [];
  readonly #policies: PolicyChange[] = [];
  /** Digest of the rotations and policy changes so far, chained one by one, so that hashing the state does not re-read them all. */
  #digest: Digest | undefined;

  /**
   * Configuration of cluster `cluster` over `machine`: member `i` starts with key `genesis[i]`
   * (epoch 0) under `policy`, a rotation must name the cluster, and every key one installs must
   * be of a scheme the policy in force admits.
   */
  constructor(machine: ConsensusState, options: { readonly cluster: string; readonly genesis: readonly KeyDescriptor[]; readonly schemes: SchemeResolver; readonly policy: SignaturePolicy }) {
    this.#machine = machine;
    this.#cluster = options.cluster;
    this.#genesis = options.genesis;
    this.#schemes = options.schemes;
    this.#genesisPolicy = options.policy;
    this.#directory = this.#enrolled();
  }

  /** Member `member`'s key in force. @throws {CryptoError} `UNKNOWN_KEY` for a member outside the configuration. */
  current(member: number): KeyRecord {
    return this.#directory.current(member);
  }

  /** The signature policy in force: the cluster's first, or the one the last migration put in force. */
  policy(): SignaturePolicy {
    return this.#policies[this.#policies.length - 1]?.policy ?? this.#genesisPolicy;
  }

  /** The rotations recorded so far, in the order they executed (a migration's among them). */
  installed(): readonly InstalledRotation[] {
    return this.#installed;
  }

  /** The policy changes recorded so far, in the order they executed: the list itself, which grows as the state executes (a receipt journal reads it so). */
  policyChanges(): readonly PolicyChange[] {
    return this.#policies;
  }

  /**
   * The policy migration that installed rotation `index` of {@link installed}, if one did: its
   * step, and the indices of its rotations, `first` up to `end` (exclusive), one per member.
   */
  migrationOf(index: number): { readonly from: SignaturePolicy; readonly to: SignaturePolicy; readonly first: number; readonly end: number } | undefined {
    const members = this.#genesis.length;
    const at = this.#policies.findIndex((change) => change.rotations - members <= index && index < change.rotations);
    const change = this.#policies[at];
    if (change === undefined) return undefined;
    return { from: this.#policies[at - 1]?.policy ?? this.#genesisPolicy, to: change.policy, first: change.rotations - members, end: change.rotations };
  }

  apply(command: Command, position: number, timestamp: number): Uint8Array {
    if (!isConfigurationCommand(command)) return this.#machine.apply(command, position, timestamp);
    try {
      const migration = decodePolicyMigration(command.payload);
      return migration === undefined ? this.#rotate(command.payload, position, timestamp) : this.#migrate(migration, position, timestamp);
    } catch (error) {
      // Anything a command makes the checks throw is a refusal, the same at every replica: a
      // crash here would let one bad command stop every replica of the cluster.
      const code = error instanceof CryptoError ? error.code : 'ROTATION_INVALID';
      return encode({ type: 'refused', error: code, reason: (error instanceof Error ? error.message : String(error)).slice(0, 1024) });
    }
  }

  #rotate(certificate: Uint8Array, position: number, timestamp: number): Uint8Array {
    const cert = decodeRotationCertificate(certificate);
    requireAdmitted(this.policy(), this.#schemes.get(cert.next.scheme));
    // The directory's rules, the verifier's too: the certificate replaces the key in force, a
    // key enters once, its window is bounded, and the new key signs from this position on. The
    // old key must be within its window at the time agreed for the position, alike everywhere:
    // an expired key, stolen or not, vouches for no successor.
    this.#directory.applyRotation(cert, position, timestamp);
    this.#recordRotation({ certificate: certificate.slice(), sequence: position });
    return encode({ type: 'installed', member: cert.member, epoch: cert.epoch, keyId: cert.next.keyId });
  }

  #migrate(migration: PolicyMigration, position: number, timestamp: number): Uint8Array {
    const keys = applyPolicyMigration(this.#directory, this.#schemes, this.policy(), migration, position, timestamp);
    for (const cert of migration.rotations) this.#recordRotation({ certificate: encodeRotationCertificate(cert), sequence: position });
    this.#recordPolicy({ policy: migration.to, sequence: position, rotations: this.#installed.length });
    return encode({ type: 'migrated', policy: migration.to, keys: keys.map((key) => ({ member: key.member, epoch: key.epoch, keyId: key.descriptor.keyId })) });
  }

  hash(): Digest {
    const state = this.#machine.hash();
    return this.#digest === undefined ? state : hashBytes(encode(['knhk/configured-state/v1', state, this.#digest]));
  }

  snapshot(): Uint8Array {
    return encodeConfigured(this.#machine.snapshot(), { rotations: this.#installed, policies: this.#policies });
  }

  restore(snapshot: Uint8Array): void {
    this.#replace(snapshot, 'configured state snapshot', (state) => this.#machine.restore(state));
  }

  freeze(): StateView {
    return new ConfiguredView(this.hash(), freezeState(this.#machine), { rotations: this.#installed.slice(), policies: this.#policies.slice() });
  }

  applyChanges(changes: Uint8Array): void {
    this.#replace(changes, 'configured state changes', (state) => applyStateChanges(this.#machine, state, 'configured state changes'));
  }

  /** Takes `bytes`' configuration (all of it: snapshots and changes both carry the whole of it) and hands its state to `machine`. */
  #replace(bytes: Uint8Array, what: string, machine: (state: Uint8Array) => void): void {
    const { state, rotations, policies = [] } = decodeStored(bytes, snapshotSchema, what);
    const directory = this.#enrolled();
    try {
      for (const { certificate, sequence } of rotations) directory.applyRotation(decodeRotationCertificate(certificate), sequence);
      let policy = this.#genesisPolicy;
      let placed = 0;
      for (const change of policies) {
        checkPolicyTransition(policy, change.policy);
        if (change.rotations < placed || change.rotations > rotations.length) throw new CryptoError('POLICY_TRANSITION_INVALID', `a policy change placed after rotation ${change.rotations} of ${rotations.length}`);
        policy = change.policy;
        placed = change.rotations;
      }
    } catch (cause) {
      throw new ConsensusError('CORRUPT_STATE', `${what} holds a configuration its cluster refuses`, { cause });
    }
    machine(state);
    this.#directory = directory;
    this.#installed.length = 0;
    this.#policies.length = 0;
    this.#digest = undefined;
    // Chained in the order they executed: a policy change right after the rotations before it.
    let next = 0;
    const placeDue = (): void => {
      for (; next < policies.length && (policies[next] as PolicyChange).rotations === this.#installed.length; next++) this.#recordPolicy(policies[next] as PolicyChange);
    };
    placeDue();
    for (const rotation of rotations) {
      this.#recordRotation(rotation);
      placeDue();
    }
  }

  #recordRotation(rotation: InstalledRotation): void {
    this.#installed.push(rotation);
    this.#digest = hashBytes(encode([this.#digest ?? null, rotation.certificate, rotation.sequence]));
  }

  #recordPolicy(change: PolicyChange): void {
    this.#policies.push(change);
    this.#digest = hashBytes(encode([this.#digest ?? null, change.policy, change.sequence, change.rotations]));
  }

  /** A directory holding the genesis keys only. */
  #enrolled(): KeyDirectory {
    const directory = new KeyDirectory(this.#schemes, { cluster: this.#cluster });
    this.#genesis.forEach((descriptor, member) => directory.enroll(member, descriptor));
    return directory;
  }
}
