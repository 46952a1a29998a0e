/**
 * The cluster's configuration as replicated state: which key each member signs with. A key
 * rotation is agreed through consensus (DESIGN.md "Cryptography"): its certificate is submitted
 * as a command of a configuration session, ordered like any other command, and executed by every
 * correct replica here — checked against the member's key in force and the cluster's signature
 * policy, and recorded when it passes. Since every correct replica executes the same commands in
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
  policyAdmits,
  verifyRotationCertificate,
  type KeyDescriptor,
  type KeyId,
  type RotationCertificate,
  type RotationPredecessor,
  type SchemeResolver,
  type SignaturePolicy,
} from '../crypto/index.js';
import { decodeStored, encode, hashBytes, type Digest } from './codec.js';
import type { Command } from './command.js';
import { ConsensusError } from './errors.js';
import type { ConsensusState } from './state-machine.js';

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
  state: t.bytes(),
  rotations: t.array(t.bytes({ maxLength: 1 << 16 }), { maxLength: 1 << 20 }),
});

/** A state machine and, beside it, the members' keys as rotations changed them. */
export class ConfiguredState implements ConsensusState {
  readonly #machine: ConsensusState;
  readonly #genesis: readonly KeyDescriptor[];
  readonly #schemes: SchemeResolver;
  readonly #policy: SignaturePolicy;
  /** The certificates recorded, in the order they executed. */
  readonly #rotations: Uint8Array[] = [];
  /** The last recorded rotation of each member that rotated. */
  readonly #latest = new Map<number, RotationCertificate>();

  /**
   * Configuration over `machine`: member `i` starts with key `genesis[i]` (epoch 0), and every
   * key a rotation installs must be of a scheme `policy` admits.
   */
  constructor(machine: ConsensusState, genesis: readonly KeyDescriptor[], schemes: SchemeResolver, policy: SignaturePolicy) {
    this.#machine = machine;
    this.#genesis = genesis;
    this.#schemes = schemes;
    this.#policy = policy;
  }

  /** Member `member`'s key in force, with its epoch. */
  current(member: number): RotationPredecessor {
    const latest = this.#latest.get(member);
    if (latest !== undefined) return { member, epoch: latest.epoch, descriptor: latest.next };
    const descriptor = this.#genesis[member];
    if (descriptor === undefined) throw new CryptoError('UNKNOWN_KEY', `member ${member} is not in the configuration`);
    return { member, epoch: 0, descriptor };
  }

  /** The rotation certificates recorded so far, in order. */
  rotations(): readonly Uint8Array[] {
    return this.#rotations;
  }

  apply(command: Command): Uint8Array {
    if (!isConfigurationCommand(command)) return this.#machine.apply(command);
    let cert: RotationCertificate;
    try {
      cert = decodeRotationCertificate(command.payload);
      const predecessor = this.current(cert.member);
      verifyRotationCertificate(cert, this.#schemes, predecessor);
      if (!policyAdmits(this.#policy, this.#schemes.get(cert.next.scheme))) {
        throw new CryptoError('SCHEME_NOT_ALLOWED', `the ${this.#policy} policy does not admit a ${cert.next.scheme} key`);
      }
    } catch (error) {
      // Anything a certificate makes the checks throw is a refusal, the same at every replica: a
      // crash here would let one bad command stop every replica of the cluster.
      const code = error instanceof CryptoError ? error.code : 'ROTATION_INVALID';
      return encode({ type: 'refused', error: code, reason: (error instanceof Error ? error.message : String(error)).slice(0, 1024) });
    }
    this.#record(command.payload, cert);
    return encode({ type: 'installed', member: cert.member, epoch: cert.epoch, keyId: cert.next.keyId });
  }

  hash(): Digest {
    const state = this.#machine.hash();
    return this.#rotations.length === 0 ? state : hashBytes(encode(['knhk/configured-state/v1', state, this.#rotations]));
  }

  snapshot(): Uint8Array {
    return encode({ state: this.#machine.snapshot(), rotations: this.#rotations });
  }

  restore(snapshot: Uint8Array): void {
    const { state, rotations } = decodeStored(snapshot, snapshotSchema, 'configured state snapshot');
    let certs: RotationCertificate[];
    try {
      certs = rotations.map((bytes) => decodeRotationCertificate(bytes));
    } catch (cause) {
      throw new ConsensusError('CORRUPT_STATE', 'configured state snapshot holds a malformed rotation certificate', { cause });
    }
    this.#machine.restore(state);
    this.#rotations.length = 0;
    this.#latest.clear();
    certs.forEach((cert, i) => this.#record(rotations[i] as Uint8Array, cert));
  }

  #record(bytes: Uint8Array, cert: RotationCertificate): void {
    this.#rotations.push(bytes.slice());
    this.#latest.set(cert.member, cert);
  }
}

