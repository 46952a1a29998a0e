/**
 * The cluster's configuration as replicated state: which key each member signs with. A key
 * rotation is agreed through consensus (DESIGN.md "Cryptography"): its certificate is submitted
 * as a command of a configuration session, ordered like any other command, and executed by every
 * correct replica here — checked against the member's key in force and the cluster's signature
 * policy by the same `KeyDirectory` rules the verifier applies, and recorded with the log position
 * that installed it (the new key signs from there on). Since every correct replica executes the same commands in
 * the same order, they all accept or refuse the same rotations, at the same log position, and a
 * snapshot carries the configuration to a replica that catches up by state transfer.
 *
 * Configuration commands never reach the application's state machine. The state's hash is the
 * application's own as long as no rotation was recorded, so a cluster that never rotates has the
 * state hashes it would have without this layer.
 */
import { t } from '../../schema/schema.js';
import {
  CryptoError,
  decodeRotationCertificate,
  KeyDirectory,
  policyAdmits,
  type KeyDescriptor,
  type KeyId,
  type KeyRecord,
  type RotationCertificate,
  type SchemeResolver,
  type SignaturePolicy,
} from '../crypto/index.js';
import { decodeStored, encode, hashBytes, type Digest } from './codec.js';
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

/** What a configuration command was answered with: the key installed, or why nothing changed. */
export type ConfigurationResponse =
  | { readonly ok: true; readonly member: number; readonly epoch: number; readonly keyId: KeyId }
  | { readonly ok: false; readonly error: string; readonly reason: string };

const responseSchema = t.variants({
  installed: { member: t.uint(), epoch: t.uint(), keyId: t.string({ maxLength: 128 }) },
  refused: { error: t.string({ maxLength: 64 }), reason: t.string({ maxLength: 1024 }) },
});

/** Decodes the response to a configuration command. @throws {ConsensusError} `CORRUPT_STATE` for bytes no replica produced. */
export function configurationResponse(bytes: Uint8Array): ConfigurationResponse {
  const response = decodeStored(bytes, responseSchema, 'configuration response');
  if (response.type === 'refused') return { ok: false, error: response.error, reason: response.reason };
  return { ok: true, member: response.member, epoch: response.epoch, keyId: response.keyId as KeyId };
}

const snapshotSchema = t.object({
  state: t.bytes({ maxLength: MAX_STATE_BYTES }),
  rotations: t.array(t.object({ certificate: t.bytes({ maxLength: 1 << 16 }), sequence: t.uint() }), { maxLength: 1 << 20 }),
});

/** A rotation the configuration recorded: its certificate and the log position that installed it. */
export interface InstalledRotation {
  readonly certificate: Uint8Array;
  readonly sequence: number;
}

/** A {@link ConfiguredState} frozen: its machine's view and the rotations installed by then. */
class ConfiguredView implements StateView {
  readonly hash: Digest;
  readonly #machine: StateView;
  readonly #rotations: readonly InstalledRotation[];

  constructor(hash: Digest, machine: StateView, rotations: readonly InstalledRotation[]) {
    this.hash = hash;
    this.#machine = machine;
    this.#rotations = rotations;
  }

  snapshot(): Uint8Array {
    return encode({ state: this.#machine.snapshot(), rotations: this.#rotations });
  }

  changesSince(older: StateView): Uint8Array | undefined {
    const state = older instanceof ConfiguredView ? this.#machine.changesSince(older.#machine) : undefined;
    return state === undefined ? undefined : encode({ state, rotations: this.#rotations });
  }
}

/** A state machine and, beside it, the members' keys as rotations changed them. */
export class ConfiguredState implements ConsensusState {
  readonly #machine: ConsensusState;
  readonly #genesis: readonly KeyDescriptor[];
  readonly #schemes: SchemeResolver;
  readonly #policy: SignaturePolicy;
  readonly #cluster: string;
  #directory: KeyDirectory;
  readonly #installed: InstalledRotation[] = [];
  /** Digest of the rotations so far, chained one by one, so that hashing the state does not re-read them all. */
  #digest: Digest | undefined;

  /**
   * Configuration of cluster `cluster` over `machine`: member `i` starts with key `genesis[i]`
   * (epoch 0), a rotation must name the cluster, and every key one installs must be of a scheme
   * `policy` admits.
   */
  constructor(machine: ConsensusState, options: { readonly cluster: string; readonly genesis: readonly KeyDescriptor[]; readonly schemes: SchemeResolver; readonly policy: SignaturePolicy }) {
    this.#machine = machine;
    this.#cluster = options.cluster;
    this.#genesis = options.genesis;
    this.#schemes = options.schemes;
    this.#policy = options.policy;
    this.#directory = this.#enrolled();
  }

  /** Member `member`'s key in force. @throws {CryptoError} `UNKNOWN_KEY` for a member outside the configuration. */
  current(member: number): KeyRecord {
    return this.#directory.current(member);
  }

  /** The rotations recorded so far, in the order they executed. */
  installed(): readonly InstalledRotation[] {
    return this.#installed;
  }

  apply(command: Command, position: number, timestamp: number): Uint8Array {
    if (!isConfigurationCommand(command)) return this.#machine.apply(command, position, timestamp);
    let cert: RotationCertificate;
    try {
      cert = decodeRotationCertificate(command.payload);
      if (!policyAdmits(this.#policy, this.#schemes.get(cert.next.scheme))) {
        throw new CryptoError('SCHEME_NOT_ALLOWED', `the ${this.#policy} policy does not admit a ${cert.next.scheme} key`);
      }
      // The directory's rules, the verifier's too: the certificate replaces the key in force, a
      // key enters once, its window is bounded, and the new key signs from this position on. The
      // old key must be within its window at the time agreed for the position, alike everywhere:
      // an expired key, stolen or not, vouches for no successor.
      this.#directory.applyRotation(cert, position, timestamp);
    } catch (error) {
      // Anything a certificate makes the checks throw is a refusal, the same at every replica: a
      // crash here would let one bad command stop every replica of the cluster.
      const code = error instanceof CryptoError ? error.code : 'ROTATION_INVALID';
      return encode({ type: 'refused', error: code, reason: (error instanceof Error ? error.message : String(error)).slice(0, 1024) });
    }
    this.#record({ certificate: command.payload.slice(), sequence: position });
    return encode({ type: 'installed', member: cert.member, epoch: cert.epoch, keyId: cert.next.keyId });
  }

  hash(): Digest {
    const state = this.#machine.hash();
    return this.#digest === undefined ? state : hashBytes(encode(['knhk/configured-state/v1', state, this.#digest]));
  }

  snapshot(): Uint8Array {
    return encode({ state: this.#machine.snapshot(), rotations: this.#installed });
  }

  restore(snapshot: Uint8Array): void {
    this.#replace(snapshot, 'configured state snapshot', (state) => this.#machine.restore(state));
  }

  freeze(): StateView {
    return new ConfiguredView(this.hash(), freezeState(this.#machine), this.#installed.slice());
  }

  applyChanges(changes: Uint8Array): void {
    this.#replace(changes, 'configured state changes', (state) => applyStateChanges(this.#machine, state, 'configured state changes'));
  }

  /** Takes `bytes`' rotations (all of them: snapshots and changes both carry the whole list) and hands its state to `machine`. */
  #replace(bytes: Uint8Array, what: string, machine: (state: Uint8Array) => void): void {
    const { state, rotations } = decodeStored(bytes, snapshotSchema, what);
    const directory = this.#enrolled();
    try {
      for (const { certificate, sequence } of rotations) directory.applyRotation(decodeRotationCertificate(certificate), sequence);
    } catch (cause) {
      throw new ConsensusError('CORRUPT_STATE', `${what} holds a rotation its configuration refuses`, { cause });
    }
    machine(state);
    this.#directory = directory;
    this.#installed.length = 0;
    this.#digest = undefined;
    for (const rotation of rotations) this.#record(rotation);
  }

  #record(rotation: InstalledRotation): void {
    this.#installed.push(rotation);
    this.#digest = hashBytes(encode([this.#digest ?? null, rotation.certificate, rotation.sequence]));
  }

  /** A directory holding the genesis keys only. */
  #enrolled(): KeyDirectory {
    const directory = new KeyDirectory(this.#schemes, { cluster: this.#cluster });
    this.#genesis.forEach((descriptor, member) => directory.enroll(member, descriptor));
    return directory;
  }
}
