/**
 * The cluster agent: the actor in the embedding program's thread that a cluster's replicas
 * report to. It hands each replica the faults in force when it starts (a restarted replica is
 * as partitioned, delayed or Byzantine as its predecessor) and a restarted verifier the key
 * rotations committed since the cluster started, and passes executions, tree-head signatures,
 * evidence, key rotations and policy steps (installed by a replica's configuration, adopted by a
 * signer) to the cluster object that owns it. Its messages come from worker threads, so they are
 * validated like any other; a replica cannot make it throw.
 */
import { defineBehavior, t, type Infer } from '../runtime/index.js';
import { BYZANTINE_MODES, type ByzantineMode } from '../protocols/sim/byzantine.js';
import { BINARY_SCHEMAS, type SignedTreeHead } from '../protocols/receipts/index.js';
import type { SignaturePolicy } from '../protocols/crypto/index.js';
import { linkFaultsSchema, type LinkFaults } from './link-faults.js';
import { signaturePolicySchema, signedPositionSchema, stepCertificatesSchema, type ConsensusErrorCode, type SignedPosition } from '../protocols/consensus/index.js';
import type { StorageErrorCode } from './replica-store.js';

const digest = t.bytes({ maxLength: 64 });

/** An execution as a replica reports it (see replica.ts). */
export const executedPositionSchema = t.variants({
  entry: {
    position: t.uint(),
    view: t.uint(),
    stateHashBefore: digest,
    stateHash: digest,
    timestamp: t.number(),
    /** How many commands the position executed (their receipts carry the rest). */
    commands: t.uint(),
  },
  snapshot: { position: t.uint(), stateHash: digest },
});

/** An execution as a replica reports it. */
export type ExecutedPosition = Infer<typeof executedPositionSchema>;

/**
 * The codes of the errors a replica halts on rather than crash (replica-halt.ts): a restart would
 * meet them again, replaying its log to the same point (`STATE_TOO_LARGE`), reading the same
 * damaged bytes (`CORRUPT_STATE`, durable records that contradict each other; `STORAGE_CORRUPT`,
 * a store whose file or records fail their checks) or the same stale copy of its store
 * (`STORAGE_ROLLBACK`), or, likely, the same full disk (`STORAGE_WRITE`; an operator who freed it
 * restarts the replica). Not `STORAGE_FORMAT` nor `STORAGE_MISMATCH`, though a restart meets them
 * again too: they say the directory belongs to another build or replica, which is met as a
 * cluster starts from a data directory, and that start is better refused, naming the store (the
 * spawn's `SpawnError`), than begun with the replicas halted. A running replica's store changes
 * neither its format nor its owner.
 */
export const HALTING_CODES = ['STATE_TOO_LARGE', 'CORRUPT_STATE', 'STORAGE_CORRUPT', 'STORAGE_ROLLBACK', 'STORAGE_WRITE'] as const satisfies readonly (ConsensusErrorCode | StorageErrorCode)[];

/** One of {@link HALTING_CODES}. */
export type HaltingCode = (typeof HALTING_CODES)[number];

/** Whether a replica halted on its store (a `StorageError`) rather than on its core's state (a `ConsensusError`). */
export const isStorageHalt = (code: HaltingCode): code is Extract<HaltingCode, StorageErrorCode> => code.startsWith('STORAGE_');

/** A signature policy migration's step: the policy it left and the one it put in force. */
export interface PolicyStep {
  readonly from: SignaturePolicy;
  readonly to: SignaturePolicy;
}

/** A key rotation consensus committed: its certificate (protocols/crypto/key-rotation.ts) and the position it committed at. */
export interface KnownRotation {
  readonly certificate: Uint8Array;
  readonly sequence: number;
  /** Once the member's signer has adopted the new key: how far what the member had signed with the old one reaches (Core.signedThrough). */
  readonly adopted?: SignedPosition;
  /** The policy migration that installed it, if one did (every member's rotation at once). */
  readonly step?: PolicyStep;
}

const certificate = t.bytes({ maxLength: 1 << 16 });
const stepSchema = t.object({ from: signaturePolicySchema, to: signaturePolicySchema });
const rotationSchema = t.object({ certificate, sequence: t.uint(), adopted: t.optional(signedPositionSchema), step: t.optional(stepSchema) });

/** What the agent passes to its owner. */
export interface AgentSink {
  /** The replicas' actor names, replica i's at index i: a report naming replica i counts only when that replica sent it. */
  readonly replicas: readonly string[];
  /** The faults replica `node` must apply now. */
  faultsFor(node: number): { readonly links: LinkFaults; readonly byzantine?: ByzantineMode };
  /** The key rotations committed since the cluster started, in order. */
  rotations(): readonly KnownRotation[];
  /** Replica `node`'s configuration installed a rotation at `sequence`. */
  rotationInstalled(node: number, certificate: Uint8Array, sequence: number): void;
  /** Replica `node`'s configuration took the policy step `step` at `sequence`, installing these rotations. */
  migrationInstalled(node: number, step: PolicyStep, sequence: number, certificates: readonly Uint8Array[]): void;
  /** Replica `node`'s signer adopted its rotated key `keyId`; what it had signed with the one before reaches `through`. */
  rotationAdopted(node: number, keyId: string, through: SignedPosition): void;
  applied(node: number, executed: ExecutedPosition): void;
  /** Replica `node` halted on an error of code `code` (`reason`, the error as text). */
  halted(node: number, code: HaltingCode, reason: string): void;
  /** An incarnation of replica `node` started: whatever halted before is over. */
  started(node: number): void;
  evidence(node: number, kind: string, accused: number, detail: string): void;
  /** Replica `node`'s signed tree head (one signature, which should be its own). */
  treeHead(node: number, signed: SignedTreeHead): void;
}

/** The agent of one cluster. */
export const ClusterAgent = defineBehavior({
  module: import.meta.url,
  export: 'ClusterAgent',
  messages: t.variants({
    hello: { node: t.uint() },
    rotations: {},
    applied: { node: t.uint(), applied: executedPositionSchema },
    halted: { node: t.uint(), code: t.oneOf(...HALTING_CODES), reason: t.string({ maxLength: 4096 }) },
    evidence: { node: t.uint(), kind: t.string({ maxLength: 64 }), accused: t.uint(), detail: t.string({ maxLength: 4096 }) },
    /** A replica's signature over its receipt log's tree head after a position. */
    'tree-head': { node: t.uint(), signed: BINARY_SCHEMAS.signedTreeHead },
    /** A replica's configuration installed a key rotation at log position `sequence`. */
    rotation: { node: t.uint(), certificate, sequence: t.uint() },
    /** A replica's configuration took a signature policy step at log position `sequence`, installing every member's rotation. */
    migration: { node: t.uint(), step: stepSchema, sequence: t.uint(), certificates: stepCertificatesSchema },
    /** A replica's signer adopted its rotated key; what it had signed with the one before reaches `through`. */
    adopted: { node: t.uint(), keyId: t.string({ maxLength: 128 }), through: signedPositionSchema },
  }),
  replies: t.variants({
    faults: { links: linkFaultsSchema, byzantine: t.optional(t.oneOf(...BYZANTINE_MODES)) },
    rotations: { rotations: t.array(rotationSchema, { maxLength: 1 << 16 }) },
  }),
  start(_ctx, sink: AgentSink) {
    /** The latest incarnation of each replica that said hello. */
    const incarnations = new Map<number, number>();
    return {
      receive(msg, from) {
        // One replica must not report in another's name: its executions, evidence or rotations.
        if ('node' in msg && msg.type !== 'hello' && (from.ref === undefined || from.ref.name !== sink.replicas[msg.node])) return;
        switch (msg.type) {
          case 'hello':
            if (from.ref !== undefined && from.ref.name === sink.replicas[msg.node]) {
              incarnations.set(msg.node, from.ref.incarnation);
              sink.started(msg.node);
            }
            return from.reply({ type: 'faults', ...sink.faultsFor(msg.node) });
          case 'rotations':
            return from.reply({ type: 'rotations', rotations: [...sink.rotations()] });
          case 'applied':
            return sink.applied(msg.node, msg.applied);
          case 'halted':
            // A late report of an incarnation that has since been replaced is about the past.
            if ((from.ref?.incarnation ?? -1) < (incarnations.get(msg.node) ?? 0)) return;
            return sink.halted(msg.node, msg.code, msg.reason);
          case 'evidence':
            return sink.evidence(msg.node, msg.kind, msg.accused, msg.detail);
          case 'tree-head':
            return sink.treeHead(msg.node, msg.signed);
          case 'rotation':
            return sink.rotationInstalled(msg.node, msg.certificate, msg.sequence);
          case 'migration':
            return sink.migrationInstalled(msg.node, msg.step, msg.sequence, msg.certificates);
          case 'adopted':
            return sink.rotationAdopted(msg.node, msg.keyId, msg.through);
        }
      },
    };
  },
});
