/**
 * A replicated cluster on worker-thread actors, under a supervisor of its own:
 *
 * ```text
 * <id>                (supervisor, one_for_one)
 * ├── <id>/agent      the cluster's voice in this thread: faults in force, executions, evidence
 * ├── <id>/client     submits commands and accepts results with the protocol's proof
 * ├── <id>/verifier   worker thread: signature checks on the system's pool, verdicts cached
 * ├── <id>/signer-i   worker thread: replica i's secret key, nowhere else
 * └── <id>/replica-i  worker thread: replica i's consensus core and LMDB store
 * ```
 *
 * Every child is `permanent`: the supervisor restarts whatever crashes, and a restarted replica
 * recovers from its store and catches up through its protocol. `crash(i)` terminates replica i's
 * thread wherever it is and keeps it down until `restart(i)`, so that tests choose the timing.
 * `rotateKey(i)` rotates replica i's signing key through consensus.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { AskTimeout, ConfigError, KnhkError, MAX_DELAY_MS, tracerOf, type ActorRef, type ActorSystem, type Supervisor } from '../runtime/index.js';
import { ConsensusError, configurationResponse, consensusConfig, encodePolicyMigration, hex, kvPayload, type ConfigurationResponse, type ConsensusAlgorithm, type ConsensusConfig, type KvOperation, type SignedPosition } from '../protocols/consensus/index.js';
import {
  CryptoError,
  checkPolicyTransition,
  decodeRotationCertificate,
  isSignaturePolicy,
  policyAdmits,
  DEFAULT_HYBRID,
  DEFAULT_KEY_LIFETIME_MS,
  DEFAULT_ROTATION_LEAD_MS,
  type BackendChoice,
  type RotationCertificate,
  type SchemeName,
  type SignaturePolicy,
} from '../protocols/crypto/index.js';
import { BYZANTINE_MODES, type ByzantineMode } from '../protocols/sim/byzantine.js';
import { ClusterAgent, isStorageHalt, type AgentSink, type ExecutedPosition, type HaltingCode, type PolicyStep } from './cluster-agent.js';
import { Client, type ClientResult } from './client.js';
import { lockDataDir } from './data-dir-lock.js';
import { EvidenceLog, type EvidenceReport } from './evidence-log.js';
import { checkDelay, checkPartition, HEALTHY, type LinkDelay, type LinkFaults } from './link-faults.js';
import { Replica, type ReplicaReport, type ReplicaTuning } from './replica.js';
import { StorageError } from './replica-store.js';
import { Signer, type PublicKeyDescriptor } from './signer.js';
import { KeyValue, stateMachineRef, type StateMachine } from './state-machine-definition.js';
import { Verifier } from './verifier.js';
import { keysInForce, stepsTaken } from './keys-in-force.js';
import { StepTally, type ReportedStep } from './step-tally.js';
import { verifyAsync } from './crypto-pool.js';
import { CRYPTO_SCOPE, observedSchemes } from './crypto-telemetry.js';
import { positionAnswer, receiptAnswer, type PositionAnswer, type ReceiptSubject } from './receipt-answers.js';
import { verifyReceiptAsync } from './receipt-tasks.js';
import { SchemeRegistry } from '../protocols/crypto/index.js';
import { isByzantineTolerant } from '../protocols/consensus/config.js';
import {
  ReceiptError,
  TRUST_VERSION,
  TreeHeadCollector,
  checkTrust,
  keyAt,
  treeHeadSigningInput,
  trustToJson,
  type Json,
  type Receipt,
  type SignedTreeHead,
  type Trust,
  type TrustKey,
} from '../protocols/receipts/index.js';
import { RecentMap } from './recent-map.js';
import { MIN_MESSAGE_BYTES, PART_BYTES } from './peer-parts.js';

/** A signer's proposal of a successor key: its rotation certificate, and whether the signer made it for this request (not one pending from before). */
interface Proposal {
  readonly certificate: Uint8Array;
  readonly cert: RotationCertificate;
  readonly fresh: boolean;
}

/** A key rotation carried out by {@link Cluster.rotateKey}. */
export interface KeyRotation {
  /** The replica whose key rotated. */
  readonly member: number;
  /** The key it signed with before, and the log positions that key signs for (up to `sequence` − 1). */
  readonly previous: PublicKeyDescriptor;
  /** The key it signs with from `sequence` on. */
  readonly key: PublicKeyDescriptor;
  /** The log position at which consensus committed the rotation. */
  readonly sequence: number;
}

/** A signature policy migration carried out by {@link Cluster.migratePolicy}. */
export interface PolicyMigrationResult {
  /** The policy the cluster left. */
  readonly from: SignaturePolicy;
  /** The policy in force from `sequence` on. */
  readonly to: SignaturePolicy;
  /** The log position at which consensus committed the step. */
  readonly sequence: number;
  /** Every member's key from `sequence` on, member i's at index i. */
  readonly keys: readonly PublicKeyDescriptor[];
}

const tracer = tracerOf(CRYPTO_SCOPE);

/**
 * Runs `work` as the root of a trace, span `name`: what the work sets off in other threads (a
 * signer's keygen, a configuration command and the replicas' handling of it) is traced under it.
 * Its result adds the attributes `done` gives; a failure ends it in error, with the
 * `CryptoError` code (or the message) as `crypto.failure_reason`.
 */
function traced<T>(name: string, attributes: Attributes, work: () => Promise<T>, done: (result: T) => Attributes): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      const result = await work();
      span.setAttributes(done(result));
      return result;
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.setAttribute('crypto.failure_reason', error instanceof CryptoError ? error.code : error instanceof Error ? error.message : String(error));
      throw error;
    } finally {
      span.end();
    }
  });
}
const HOUR_MS = 3_600_000;

/** Replica `node`'s store directory in the cluster's data directory. */
const replicaStore = (dataDir: string, node: number): string => join(dataDir, `replica-${node}`, 'store');

/** The trust entry of each of a member's keys, from its signer's custody history. */
const trustKeysOf = (history: readonly PublicKeyDescriptor[]): TrustKey[] =>
  history.map((k) => ({
    keyId: k.keyId,
    scheme: k.scheme,
    publicKey: k.publicKey,
    validFrom: k.fromSequence,
    ...(k.untilSequence === undefined ? {} : { validUntil: k.untilSequence }),
  }));

/** The scheme each policy signs with. */
export const POLICY_SCHEME: Readonly<Record<SignaturePolicy, SchemeName>> = Object.freeze({
  classical: 'Ed25519',
  hybrid: DEFAULT_HYBRID,
  quantum: 'ML-DSA-65',
});

/** What a cluster is made of; `Args`: its state machine's arguments. */
export interface ClusterOptions<Args = unknown> {
  readonly protocol: ConsensusAlgorithm;
  /** Replicas: at least 3f+1 for PBFT and HotStuff, 2f+1 for Raft. */
  readonly n: number;
  /** Faults tolerated (default: the most `n` allows). */
  readonly f?: number;
  /** Signature policy (default `hybrid`: ML-DSA-65 + Ed25519 on every vote). */
  readonly policy?: SignaturePolicy;
  /**
   * Where replica directories live (default: a temporary directory, removed when the cluster
   * stops). A given directory is locked while the cluster runs: a second cluster on it, in this
   * process or another, fails to spawn with `StorageError` `STORAGE_IN_USE`.
   */
  readonly dataDir?: string;
  /** Cluster id: names its actors and is checked against its stores (default `cluster-<k>` for the k-th cluster of the system). */
  readonly id?: string;
  /** Most commands per proposal: PBFT's and HotStuff's batch size, Raft's commands per log entry (default {@link DEFAULT_BATCH}). */
  readonly batch?: number;
  /** The protocol's base timeout, ms (see {@link ReplicaTuning.timeoutMs}; default {@link DEFAULT_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /**
   * Log positions between two states a replica stores (PBFT's checkpoint interval, default 10;
   * HotStuff's snapshot interval, default 64; Raft's, default 1 024 entries): fewer means a shorter
   * log to replay and keep, more means fewer stores.
   */
  readonly snapshotInterval?: number;
  /** How long the client waits before sending a command to every replica again, ms (default 1000). */
  readonly retryMs?: number;
  /**
   * Passphrase of the replicas' key files. Required with `dataDir` unless the environment sets
   * `KNHK_KEY_PASSPHRASE`; a temporary cluster draws a random one (its keys die with it).
   */
  readonly passphrase?: string;
  /**
   * scrypt cost (log2 N) of new key files (default 17; tests lower it). A temporary cluster that
   * draws its own passphrase uses {@link DRAWN_PASSPHRASE_KDF_LOG2N} unless told otherwise.
   */
  readonly kdfLog2N?: number;
  /** Seeds jitter and Byzantine choices of the replicas. */
  readonly seed?: number;
  /** Lifetime of each signing key from its creation, ms (default and most: {@link DEFAULT_KEY_LIFETIME_MS}, 90 days). */
  readonly keyLifetimeMs?: number;
  /**
   * The cluster rotates a replica's key through consensus once less than this remains of its
   * lifetime, ms (default {@link DEFAULT_ROTATION_LEAD_MS}, 7 days, or half the lifetime if that is
   * less; it must be less than `keyLifetimeMs`).
   */
  readonly rotationLeadMs?: number;
  /** How often the cluster asks the signers whether a rotation is due, ms (default a quarter of the lead, at most an hour; less than the lead). */
  readonly rotationCheckMs?: number;
  /**
   * Forces the signature backend in every thread of the cluster and in the pool tasks it runs, as
   * `SchemeRegistry.create`'s `force` does: one backend for every scheme (only `'noble'` runs them
   * all), or one per scheme (`{ Ed25519: 'node' }`); default: the fastest correct one per scheme.
   * A choice the registry cannot honour is refused at spawn (`CryptoError`).
   */
  readonly cryptoBackend?: BackendChoice;
  /**
   * The state machine to replicate, made by `defineStateMachine` and exported where it says
   * (each replica makes its own, in its thread); default {@link KeyValue}, the built-in key-value
   * machine. Its commands are the bytes given to {@link Cluster.submit}, its responses the bytes
   * returned.
   */
  readonly stateMachine?: StateMachine<Args>;
  /** The arguments of the state machine's `create`, checked against its `args` schema (a machine without one takes none). */
  readonly stateMachineArgs?: Args;
}

/** A committed command's result. */
export interface Submitted {
  /** The state machine's response. */
  readonly response: Uint8Array;
  /** The log position it executed at, on which the proof's replies agree (see client.ts). */
  readonly position: number;
  /** The lowest view (term) among the proof's replies (each replica reports the one it was in). */
  readonly view: number;
  /** The replicas whose matching replies were the proof. */
  readonly replicas: readonly number[];
  /** The session and timestamp it went out under (its identity in the replicas' client table). */
  readonly client: string;
  readonly timestamp: number;
  /** Its receipt, fetched and verified on first access (see {@link Cluster.receipt}). */
  readonly receipt: Promise<Receipt>;
}

/** One replica as {@link Cluster.status} reports it. */
export interface ReplicaStatus {
  readonly node: number;
  /** False while crashed (or between a crash and its restart). */
  readonly up: boolean;
  readonly role: string;
  /** PBFT/HotStuff view or Raft term. */
  readonly view: number;
  readonly commitIndex: number;
  readonly leader: number | null;
  /** The state machine's hash, hex. */
  readonly stateHash: string;
  readonly restarts: number;
  /**
   * The error that ended its latest incarnation to crash by itself, as `name: message` (a broken
   * invariant, a store that failed); null while none has. {@link Cluster.crash} does not count:
   * the cluster ended that one.
   */
  readonly lastCrash: string | null;
  /**
   * Why the replica halted, when it did: an error that a restart would meet again, since the
   * replica replays its log to the same point or reads the same damaged bytes (`ConsensusError`
   * `STATE_TOO_LARGE` or `CORRUPT_STATE`, `StorageError` `STORAGE_CORRUPT`, `STORAGE_ROLLBACK` or
   * `STORAGE_WRITE`; cluster-agent.ts `HALTING_CODES`), met as it ran or as it started. A halted
   * replica (role `halted`) takes no input, no longer reads its store and answers only questions
   * like this one, where crashing would only restart it into the same error again and again; once
   * more have halted than the others can form a quorum without, they wait, and
   * {@link Cluster.submit} fails with the error (halted replicas alone count: with crashed ones
   * besides, it times out). Null while it runs.
   */
  readonly halted: string | null;
  readonly byzantine: ByzantineMode | null;
  /**
   * Envelopes refused before the core saw them: undecodable, with a signature that fails, from a
   * non-member, or dropped unchecked because the verifier could not be asked (it was restarting).
   */
  readonly refused: { readonly malformed: number; readonly forged: number; readonly nonMember: number; readonly unverified: number };
  /**
   * Envelopes it did not send because even in parts they exceed what a peer joins (the state bound
   * `MAX_STATE_BYTES` and 4 MiB): a HotStuff snapshot whose block carries more than 4 MiB of
   * commands, say. They are lost as on a lossy link; a count above zero says why a peer stays behind.
   */
  readonly unsent: number;
  /** Leaves in its receipt log; whether the log has no hole (a replica that caught up by state transfer has one and signs no tree heads). */
  readonly receiptLog: number;
  readonly receiptLogComplete: boolean;
}

/** One replica's status in a line: node, role, view, executed position, restarts, and why it halted if it did. */
export function statusLine(s: ReplicaStatus): string {
  return `${s.node}: ${s.role} view ${s.view} commit ${s.commitIndex} restarts ${s.restarts}${s.halted === null ? '' : ` (${s.halted})`}`;
}

const clustersPerSystem = new WeakMap<ActorSystem, number>();

/**
 * Base timeouts on real threads, ms. The cores' own defaults suit the simulator's idealised
 * hosts; here a replica's first messages wait for worker threads to load and JIT-compile their
 * crypto, and a loaded 2-core machine stalls threads for tens of milliseconds, so a request
 * timeout of 500 ms starts needless view changes.
 */
export const DEFAULT_TIMEOUT_MS: Readonly<Record<ConsensusAlgorithm, number>> = Object.freeze({ pbft: 2000, hotstuff: 1000, raft: 1000 });

/**
 * scrypt cost (log2 N) of the key files of a temporary cluster whose passphrase it draws itself:
 * 256 random bits, which no guessing finds, so stretching them protects nothing and cost every
 * signer about a second of CPU per key file (N = 2^17 in pure JavaScript here).
 */
export const DRAWN_PASSPHRASE_KDF_LOG2N = 10;

/**
 * Most commands per proposal on real threads. A batch is what waits when a proposal is due, so
 * the bound costs nothing under light load; under heavy load it is what spreads a position's
 * signatures (milliseconds each when hybrid) over its commands. 512 was the best batch of every
 * configuration of `npm run bench -- consensus`; PBFT's own default, 32, made the demo's hybrid
 * cluster commit 119 commands/s with a p50 latency of 1.4 s, against 233 and 0.77 s at 512.
 */
export const DEFAULT_BATCH = 512;

/**
 * How long a receipt request waits for one replica before trying the next: a replica catching up
 * after a restart may have a long mailbox, and must not use up the whole deadline.
 */
const RECEIPT_ASK_MS = 2000;
const askTimeout = (deadline: number): number => Math.max(1, Math.min(RECEIPT_ASK_MS, deadline - performance.now()));

/** `ref`'s answer to `msg`, or undefined when it gives none in time (see {@link askTimeout}). */
const askUntil = <R>(ref: ActorRef, msg: unknown, deadline: number): Promise<R | undefined> =>
  ref.ask(msg, { timeoutMs: askTimeout(deadline) }).then(
    (answer) => answer as R,
    () => undefined,
  );

/** Executions remembered per replica, for {@link Cluster.executed}: the latest this many at least, twice as many at most. */
export const EXECUTIONS_KEPT = 4096;

/** How long {@link Cluster.executedUpTo} waits by default. */
const CATCH_UP_TIMEOUT_MS = 60_000;

/** A replica did not execute a position within the time {@link Cluster.executedUpTo} was given. */
export class CatchUpTimeout extends KnhkError {
  declare readonly code: 'CATCH_UP_TIMEOUT';
  /** The replica. */
  readonly node: number;
  /** The position it was to execute. */
  readonly position: number;
  /** The highest position it had reported executing when the time ran out (0 if none). */
  readonly reached: number;
  constructor(node: number, position: number, reached: number, timeoutMs: number) {
    super('CATCH_UP_TIMEOUT', `replica ${node} did not execute position ${position} within ${timeoutMs} ms (it reached ${reached})`);
    this.node = node;
    this.position = position;
    this.reached = reached;
  }
}

/** A running cluster. Obtain one with `system.spawnCluster(options)`. */
export class Cluster {
  readonly id: string;
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  readonly f: number;
  #policy: SignaturePolicy;
  /** The name of the state machine it replicates (`KeyValue.name` unless another was given). */
  readonly stateMachine: string;
  /** Where the replica directories are. */
  readonly dataDir: string;
  /** Every replica's keys, oldest first, as its signer reported them (the last is the key in force). */
  readonly #histories: PublicKeyDescriptor[][];
  #trust: Trust;
  #trustJson: Json<Trust>;
  /**
   * Rotations replicas reported installed, by new key id and position: who reported, whether that
   * makes them committed, and once their signer adopted them, how far what the member had signed
   * with the old key reaches.
   */
  readonly #rotations = new Map<
    string,
    { readonly cert: RotationCertificate; readonly certificate: Uint8Array; readonly sequence: number; readonly reporters: Set<number>; committed: boolean; adopted: SignedPosition | undefined; readonly step?: PolicyStep }
  >();
  /** Per member, an adoption its replica reported before the rotation it adopts was proved committed here. */
  readonly #earlyAdoptions = new Map<number, { readonly keyId: string; readonly through: SignedPosition }>();
  /** Replicas' reports of policy steps not taken yet. */
  readonly #steps = new StepTally();
  readonly #adoptionWaiters = new Set<{ readonly keyId: string; readonly done: () => void }>();
  /** Matching reports that prove a rotation committed when the member's own is missing: f+1 (one for Raft, crash faults only). */
  readonly #replyQuorum: number;
  /** Rotations are carried out one at a time. */
  #rotating: Promise<unknown> = Promise.resolve();
  /** Replicas whose automatic rotation is under way. */
  readonly #dueRotations = new Set<number>();
  #rotationChecks: ReturnType<typeof setInterval> | undefined;
  readonly #collector: TreeHeadCollector;
  /** Tree heads with a quorum of signatures, by position (the last {@link EXECUTIONS_KEPT}), and their positions in ascending order. */
  readonly #signedHeads = new Map<number, SignedTreeHead>();
  readonly #signedPositions: number[] = [];
  /** Receipt requests waiting for a signed tree head at or after a position. */
  readonly #headWaiters = new Set<{ readonly position: number; readonly wake: () => void }>();
  /** The replica the next receipt request asks first: each request starts one further, so that a faulty replica is asked first by one request in n, not by all. */
  #receiptTurn = 0;
  readonly #registry: SchemeRegistry;
  readonly #backend: BackendChoice | undefined;
  readonly #system: ActorSystem;
  readonly #supervisor: Supervisor;
  readonly #client: ActorRef<{ type: 'submit' | 'configure'; payload: Uint8Array; policy?: SignaturePolicy }, ClientResult>;
  /** Gives the data directory up as the cluster stops: removes a temporary one, unlocks a given one (data-dir-lock.ts). */
  readonly #leave: () => Promise<void>;
  readonly #faults: { links: LinkFaults; byzantine: (ByzantineMode | undefined)[] };
  /** Recent executions per replica, by position (the last {@link EXECUTIONS_KEPT}). */
  readonly #executions: RecentMap<number, ExecutedPosition>[];
  readonly #highest: number[];
  readonly #evidence = new EvidenceLog();
  readonly #listeners = new Set<(node: number, executed: ExecutedPosition) => void>();
  /** Replicas halted (replica.ts), by node: what they halted on. */
  readonly #halts = new Map<number, { readonly code: HaltingCode; readonly reason: string }>();
  /** Replicas that may halt before the rest can no longer form a quorum. */
  readonly #haltsTolerated: number;
  /** Set while too many replicas halted for the cluster to commit: what a submission fails with. */
  #unavailable: ConsensusError | StorageError | undefined;
  /** Submissions waiting for their proof, to fail when the cluster becomes unavailable. */
  readonly #waiting = new Set<(error: ConsensusError | StorageError) => void>();
  #stopped = false;

  private constructor(init: {
    system: ActorSystem;
    supervisor: Supervisor;
    client: ActorRef<{ type: 'submit' | 'configure'; payload: Uint8Array; policy?: SignaturePolicy }, ClientResult>;
    config: ConsensusConfig;
    id: string;
    policy: SignaturePolicy;
    dataDir: string;
    leave: () => Promise<void>;
    histories: PublicKeyDescriptor[][];
    faults: { links: LinkFaults; byzantine: (ByzantineMode | undefined)[] };
    trust: Trust;
    backend: BackendChoice | undefined;
    stateMachine: string;
  }) {
    this.#system = init.system;
    this.#backend = init.backend;
    this.#registry = observedSchemes(init.backend);
    this.#supervisor = init.supervisor;
    this.#client = init.client;
    this.id = init.id;
    this.protocol = init.config.algorithm;
    this.n = init.config.n;
    this.f = init.config.f;
    this.#haltsTolerated = init.config.n - init.config.quorumSize;
    this.#policy = init.policy;
    this.stateMachine = init.stateMachine;
    this.dataDir = init.dataDir;
    this.#histories = init.histories;
    this.#leave = init.leave;
    this.#faults = init.faults;
    this.#trust = init.trust;
    this.#trustJson = trustToJson(init.trust);
    this.#collector = new TreeHeadCollector(init.trust, { verify: false });
    this.#replyQuorum = init.config.replyQuorum;
    this.#executions = init.config.members.map(() => new RecentMap(EXECUTIONS_KEPT));
    this.#highest = init.config.members.map(() => 0);
  }

  /**
   * The signature policy in force: the one the cluster was spawned with, or the one the last
   * migration committed ({@link migratePolicy}), which a cluster started from its data directory
   * knows from its signers' keys or, for a step not every signer had adopted, from its replicas' reports.
   */
  get policy(): SignaturePolicy {
    return this.#policy;
  }

  /** Each replica's key in force, as its signer reported it. */
  get keys(): readonly PublicKeyDescriptor[] {
    return this.#histories.map((history) => history[history.length - 1] as PublicKeyDescriptor);
  }

  /**
   * What a receipt verifier needs to know of this cluster: its members and every key each has
   * signed with, with the log positions it signed for (write it with `trustToJson`). A key
   * rotation or a policy migration adds to it: take it again after {@link rotateKey} or
   * {@link migratePolicy} to verify later receipts.
   */
  get trust(): Trust {
    return this.#trust;
  }

  /**
   * Rotates replica `i`'s signing key through consensus (DESIGN.md "Cryptography"): its signer
   * makes a successor key and a rotation certificate signed by both keys, sealed in its store; the
   * certificate is ordered as a configuration command, and every replica's replicated
   * configuration checks it against the key in force and the signature policy. The replicas carry
   * out what their configuration installed, whoever asked: each reports it to the verifier, which
   * installs the new key on the member's report or f+1 others; replica `i` has its signer adopt
   * the key before it signs anything for a later position (wiping the old secret), and reports the
   * adoption, after which the old key no longer signs envelopes. The trust grows by the new key,
   * valid from the rotation's position; the old key's validity ends just before it. A replica
   * restarted after a rotation reports it again, so an adoption interrupted by a crash completes.
   *
   * One rotation runs at a time; a call made meanwhile waits for the one under way.
   * @throws {CryptoError} the code the replicas or the signer refused the rotation with (`ROTATION_INVALID`, `SCHEME_NOT_ALLOWED`, `KEY_EXPIRED`…)
   * @throws {AskTimeout} when the rotation was not proved committed and adopted within `timeoutMs`
   *   (default 30 s): the outcome is unknown — if it commits later, the replicas still carry it out.
   */
  rotateKey(i: number, options: { readonly timeoutMs?: number } = {}): Promise<KeyRotation> {
    this.#replicaName(i);
    const rotation = this.#rotating.catch(() => undefined).then(() => this.#tracedRotation(i, options.timeoutMs ?? 30_000));
    this.#rotating = rotation;
    return rotation;
  }

  /**
   * Rotates, through consensus, the key of every replica whose signer says it is due (its expiry
   * is within the rotation lead): a long-running cluster keeps valid keys without anyone calling
   * {@link rotateKey}. A rotation that fails (a replica down, no quorum) is tried again at the
   * next check, and is recorded by its `crypto.key.rotate` span.
   */
  #rotateDueKeys(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.#dueRotations.has(i)) continue;
      this.#dueRotations.add(i);
      // Asked in turn with the other rotations, not before: one queued ahead (a `rotateKey` call)
      // may leave the key new, and a stale answer would rotate it twice.
      const rotation = this.#rotating.catch(() => undefined).then(() => this.#rotateIfDue(i));
      this.#rotating = rotation;
      void rotation.catch(() => undefined).finally(() => this.#dueRotations.delete(i));
    }
  }

  async #rotateIfDue(member: number): Promise<KeyRotation | undefined> {
    const signer = this.#system.lookup<{ type: 'rotation-due' }, { type: string; due?: boolean }>(`${this.id}/signer-${member}`);
    if (signer === undefined || this.#stopped) return undefined;
    const answer = await signer.ask({ type: 'rotation-due' }, { timeoutMs: 10_000 });
    return answer.due === true ? this.#tracedRotation(member, 30_000) : undefined;
  }

  /** A rotation as one `crypto.key.rotate` trace. */
  #tracedRotation(member: number, timeoutMs: number): Promise<KeyRotation> {
    return traced('crypto.key.rotate', { 'consensus.node_id': member }, () => this.#rotate(member, timeoutMs), (rotation) => ({
      'crypto.key.previous_id': rotation.previous.keyId,
      'crypto.key.id': rotation.key.keyId,
      'consensus.sequence': rotation.sequence,
    }));
  }

  async #rotate(member: number, timeoutMs: number): Promise<KeyRotation> {
    // Of the scheme in force: a successor proposed for a policy step not taken stays for that step.
    const proposal = await this.#propose(member, (this.keys[member] as PublicKeyDescriptor).scheme, timeoutMs);
    const { certificate, cert } = proposal;
    await this.#agree(certificate, [proposal], timeoutMs, (response) => response.kind === 'rotation' && response.member === member && response.keyId === cert.next.keyId);
    const history = this.#histories[member] as PublicKeyDescriptor[];
    const key = history[history.length - 1] as PublicKeyDescriptor;
    return { member, previous: history[history.length - 2] as PublicKeyDescriptor, key, sequence: key.fromSequence };
  }

  /**
   * Takes the cluster one step along classical → hybrid → quantum (DESIGN.md "Cryptography"):
   * every signer makes a successor key of the next policy's scheme, with a rotation certificate
   * signed by both keys, sealed in its store; the certificates go to consensus as one configuration
   * command, which every replica's configuration installs whole or refuses whole
   * (crypto/policy-migration.ts). The replicas then carry it out as they do a rotation: the
   * verifier takes every new key at once, on the report of enough replicas that one is correct,
   * and each signer adopts its member's; from then on every envelope is signed under the new
   * policy, and the keys of the one left count only inside certificates, for votes cast before.
   * It needs every signer: a member whose signer cannot propose blocks the step.
   *
   * It runs in turn with key rotations.
   * @throws {CryptoError} `POLICY_TRANSITION_INVALID` for a step that is not the next one, or the
   *   code a signer or the replicas refused with (`ROTATION_INVALID` while a rotation of a signer
   *   is pending, for instance)
   * @throws {AskTimeout} when the step was not proved committed and adopted by every signer within
   *   `timeoutMs` (default 60 s): the outcome is unknown — if it commits later, the replicas carry it out.
   */
  migratePolicy(to: SignaturePolicy, options: { readonly timeoutMs?: number } = {}): Promise<PolicyMigrationResult> {
    const step = (): Promise<PolicyMigrationResult> => this.#migrate(to, options.timeoutMs ?? 60_000);
    const migration = this.#rotating.catch(() => undefined).then(() => traced('crypto.policy.migrate', { 'crypto.policy': to }, step, (result) => ({ 'consensus.sequence': result.sequence })));
    this.#rotating = migration;
    return migration;
  }

  async #migrate(to: SignaturePolicy, timeoutMs: number): Promise<PolicyMigrationResult> {
    const from = this.#policy;
    checkPolicyTransition(from, to);
    // Started from its data directory half-way through a step's adoptions, the cluster takes that step from its replicas' reports.
    const ahead = this.keys.find((key) => !policyAdmits(from, this.#registry.get(key.scheme)) && policyAdmits(to, this.#registry.get(key.scheme)));
    if (ahead !== undefined) throw new CryptoError('POLICY_TRANSITION_INVALID', `a signer already holds a key of the ${to} policy (${ahead.keyId}); the cluster has not yet heard its replicas report that step`);
    const proposals = await Promise.allSettled(Array.from({ length: this.n }, (_, member) => this.#propose(member, POLICY_SCHEME[to], timeoutMs)));
    const made = proposals.flatMap((proposal) => (proposal.status === 'fulfilled' ? [proposal.value] : []));
    const refusal = proposals.find((proposal) => proposal.status === 'rejected');
    if (refusal !== undefined) {
      // Given up before anything was ordered: the successors made for it would otherwise stay
      // pending, and their members could not rotate within the policy in force meanwhile.
      await this.#withdrawFresh(made, timeoutMs);
      throw refusal.reason;
    }
    const certs = made.map((proposal) => proposal.cert);
    const payload = encodePolicyMigration({ from, to, rotations: certs });
    const installs = (keys: readonly { readonly member: number; readonly keyId: string }[]): boolean => certs.every((cert, member) => keys[member]?.member === member && keys[member]?.keyId === cert.next.keyId);
    await this.#agree(payload, made, timeoutMs, (response) => response.kind === 'migration' && response.policy === to && installs(response.keys));
    const keys = this.#histories.map((history) => history[history.length - 1] as PublicKeyDescriptor);
    return { from, to, sequence: (keys[0] as PublicKeyDescriptor).fromSequence, keys };
  }

  /**
   * Has their signers withdraw those of `proposals` made for this very call, whose command the
   * replicas refused or which never went to consensus: nothing can install them. A proposal the
   * signer had already made (for an earlier call, or before the cluster restarted) may have been
   * ordered then and commit yet, so it stays pending until adopted; withdrawing it would wipe a key
   * the replicas may install. A failure leaves a proposal pending.
   */
  async #withdrawFresh(proposals: readonly Proposal[], timeoutMs: number): Promise<void> {
    await Promise.all(
      proposals
        .filter((proposal) => proposal.fresh)
        .map(({ cert }) => this.#system.lookup(`${this.id}/signer-${cert.member}`)?.ask({ type: 'withdraw-rotation', keyId: cert.next.keyId }, { timeoutMs }).catch(() => undefined)),
    );
  }

  /** Member `member`'s signer's proposal of a successor key (of `scheme`, default its key's). */
  async #propose(member: number, scheme: SchemeName | undefined, timeoutMs: number): Promise<Proposal> {
    const signer = this.#system.lookup<{ type: 'propose-rotation'; scheme?: SchemeName }, { type: string; certificate?: Uint8Array; fresh?: boolean; code?: string; reason?: string }>(`${this.id}/signer-${member}`);
    if (signer === undefined) throw new CryptoError('NO_VALID_KEY', `the signer of replica ${member} is not running`);
    const proposal = await signer.ask({ type: 'propose-rotation', ...(scheme === undefined ? {} : { scheme }) }, { timeoutMs });
    if (proposal.type !== 'rotation' || proposal.certificate === undefined) throw new CryptoError((proposal.code ?? 'ROTATION_INVALID') as never, proposal.reason ?? `the signer of replica ${member} made no proposal`);
    return { certificate: proposal.certificate, cert: decodeRotationCertificate(proposal.certificate), fresh: proposal.fresh === true };
  }

  /**
   * Has consensus order the configuration command `payload`, which installs the rotations of
   * `proposals`, and waits, `timeoutMs` in all, for each member's signer to adopt its new key.
   * `answers` tells this command's response from another's (a client table answering a reused
   * session).
   * @throws {CryptoError} the code the replicas refused with
   * @throws {AskTimeout} when a signer had not adopted its key by the deadline
   */
  async #agree(payload: Uint8Array, proposals: readonly Proposal[], timeoutMs: number, answers: (response: ConfigurationResponse & { ok: true }) => boolean): Promise<void> {
    const certs = proposals.map((proposal) => proposal.cert);
    const deadline = performance.now() + timeoutMs;
    const remaining = (): number => Math.max(0, deadline - performance.now());
    // Waiting starts before the command is sent: the replicas may report the adoption first.
    const adoptions = certs.map((cert) => this.#adoption(cert.next.keyId));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const result = await this.#client.ask({ type: 'configure', payload, policy: this.#policy }, { timeoutMs: remaining() });
      const response = configurationResponse(result.response);
      if (!response.ok) {
        // Refused alike by every correct replica: this command installed nothing (a refused replay
        // of one that did is why only fresh proposals go).
        await this.#withdrawFresh(proposals, remaining());
        throw new CryptoError(response.error as never, `the replicas refused it: ${response.reason}`);
      }
      if (!answers(response)) throw new CryptoError('ROTATION_INVALID', `the replicas answered ${JSON.stringify(response)}, not this command`);
      await Promise.race([Promise.all(adoptions.map((adoption) => adoption.done)), new Promise((resolve) => (timer = setTimeout(resolve, remaining())))]);
    } finally {
      clearTimeout(timer);
      for (const adoption of adoptions) adoption.cancel();
    }
    for (const cert of certs) {
      const history = this.#histories[cert.member] as PublicKeyDescriptor[];
      if (history[history.length - 1]?.keyId !== cert.next.keyId) throw new AskTimeout(`the signer of replica ${cert.member} (adopting key ${cert.next.keyId})`, timeoutMs);
    }
  }

  /** `done` resolves once a member's signer has adopted key `keyId` (at once if it has); `cancel` stops waiting. */
  #adoption(keyId: string): { readonly done: Promise<void>; cancel(): void } {
    let waiter: { readonly keyId: string; readonly done: () => void } | undefined;
    const done = new Promise<void>((resolve) => {
      waiter = { keyId, done: resolve };
    });
    const entry = waiter as { readonly keyId: string; readonly done: () => void };
    if (this.#histories.some((history) => history[history.length - 1]?.keyId === keyId)) entry.done();
    else this.#adoptionWaiters.add(entry);
    return { done, cancel: () => this.#adoptionWaiters.delete(entry) };
  }

  /**
   * A replica reported that its configuration installed a rotation at `sequence`. It counts as
   * committed on the report of the member itself (whose own configuration installed it) or of
   * enough replicas that one is correct.
   */
  #rotationInstalled(node: number, certificate: Uint8Array, sequence: number): void {
    let cert: RotationCertificate;
    try {
      cert = decodeRotationCertificate(certificate);
    } catch {
      return;
    }
    const id = `${cert.next.keyId}@${sequence}`;
    const known = this.#rotations.get(id) ?? { cert, certificate: certificate.slice(), sequence, reporters: new Set<number>(), committed: false, adopted: undefined };
    known.reporters.add(node);
    known.committed ||= node === cert.member || known.reporters.size >= this.#replyQuorum;
    this.#rotations.set(id, known);
  }

  /**
   * A replica reported that its configuration took the policy step `step` at `sequence`, with
   * these rotations. It counts as committed on the report of enough replicas that one is correct:
   * a member's own does not do, since the step changes every member's key. Its rotations are then
   * committed ones, adopted like any other, and the step's policy is in force.
   */
  #migrationInstalled(node: number, step: PolicyStep, sequence: number, certificates: readonly Uint8Array[]): void {
    this.#steps.add(node, { ...step, sequence, certificates });
    // A step taken may let one reported meanwhile from the policy it put in force follow.
    for (let agreed = this.#steps.agreed(this.#policy, this.#replyQuorum); agreed !== undefined; agreed = this.#steps.agreed(this.#policy, this.#replyQuorum)) {
      try {
        this.#takeStep(agreed);
      } catch {
        // What f+1 replicas' configurations installed, the same rules accept: no correct replica made this report.
        this.#steps.discard(agreed);
      }
    }
  }

  /** Takes the policy step `step`, which replicas reported installed: its rotations are committed ones, adopted like any other, and its policy is in force. */
  #takeStep(step: ReportedStep): void {
    checkPolicyTransition(step.from, step.to);
    const certs = step.certificates.map(decodeRotationCertificate);
    this.#trustGrew({ ...this.#trust, migrations: [...(this.#trust.migrations ?? []), { policy: step.to, sequence: step.sequence }] });
    const reporters = new Set<number>();
    for (const [i, cert] of certs.entries()) {
      const certificate = (step.certificates[i] as Uint8Array).slice();
      this.#rotations.set(`${cert.next.keyId}@${step.sequence}`, { cert, certificate, sequence: step.sequence, reporters, committed: true, adopted: undefined, step: { from: step.from, to: step.to } });
    }
    this.#policy = step.to;
    for (const cert of certs) {
      const adoption = this.#earlyAdoptions.get(cert.member);
      if (adoption?.keyId !== cert.next.keyId) continue;
      this.#earlyAdoptions.delete(cert.member);
      this.#rotationAdopted(cert.member, cert.next.keyId, adoption.through);
    }
  }

  /** The cluster's trust is `trust` from now on: for receipts, and for the tree heads collected here. */
  #trustGrew(trust: Trust): void {
    this.#trust = checkTrust(trust);
    this.#trustJson = trustToJson(this.#trust);
    this.#collector.updateTrust(this.#trust);
  }

  /** Replica `node`'s signer adopted key `keyId`: the trust grows by it, from the position its rotation committed at. */
  #rotationAdopted(node: number, keyId: string, through: SignedPosition): void {
    const known = [...this.#rotations.values()].find((r) => r.committed && r.cert.member === node && r.cert.next.keyId === keyId);
    const history = this.#histories[node];
    if (history === undefined) return;
    // A member adopts the key a policy step gave it once its own configuration took the step, which may be before enough replicas reported the step here.
    if (known === undefined) this.#earlyAdoptions.set(node, { keyId, through });
    if (known === undefined || known.adopted !== undefined) return;
    const current = history[history.length - 1] as PublicKeyDescriptor;
    // Adopted before this cluster object read the signer's keys (a restart), or now.
    if (current.keyId !== keyId) {
      if (current.keyId !== known.cert.old.keyId) return;
      const next: PublicKeyDescriptor = { ...known.cert.next, epoch: known.cert.epoch, fromSequence: known.sequence };
      this.#histories[node] = [...history.slice(0, -1), { ...current, untilSequence: known.sequence - 1 }, next];
      this.#trustGrew({ ...this.#trust, members: this.#trust.members.map((m, k) => (k === node ? { ...m, keys: trustKeysOf(this.#histories[node] as PublicKeyDescriptor[]) } : m)) });
    }
    known.adopted = through;
    for (const waiter of [...this.#adoptionWaiters]) {
      if (waiter.keyId !== keyId) continue;
      this.#adoptionWaiters.delete(waiter);
      waiter.done();
    }
  }

  /**
   * Starts a cluster in `system`. Use `system.spawnCluster(options)`.
   * @throws {ConsensusError} `INVALID_CONFIG` for an `n` and `f` the protocol cannot run with;
   *   {@link ConfigError} for other bad options, and for a system whose `maxMessageBytes` is
   *   below 2 MiB (replicas send large envelopes in 1 MiB parts); `SpawnError` when a replica cannot start (its
   *   storage is corrupted or another cluster's, for instance — the cause says which).
   */
  static async spawn<Args>(system: ActorSystem, options: ClusterOptions<Args>): Promise<Cluster> {
    const config = consensusConfig({ nodeId: 0, n: options.n, algorithm: options.protocol, ...(options.f === undefined ? {} : { f: options.f }) });
    const policy = options.policy ?? 'hybrid';
    if (!isSignaturePolicy(policy)) throw new ConfigError(`unknown signature policy ${JSON.stringify(policy)}`);
    if (system.maxMessageBytes < MIN_MESSAGE_BYTES) {
      throw new ConfigError(`a cluster's replicas send envelopes in parts of ${PART_BYTES} bytes: the system's maxMessageBytes must be at least ${MIN_MESSAGE_BYTES}, got ${system.maxMessageBytes}`);
    }
    for (const [name, value] of [['batch', options.batch], ['timeoutMs', options.timeoutMs], ['retryMs', options.retryMs], ['snapshotInterval', options.snapshotInterval]] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) throw new ConfigError(`${name} must be a positive integer, got ${value}`);
    }
    const index = clustersPerSystem.get(system) ?? 0;
    clustersPerSystem.set(system, index + 1);
    const id = options.id ?? `cluster-${index}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw new ConfigError(`a cluster id is 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(id)}`);
    const temporary = options.dataDir === undefined;
    const drawn = temporary && options.passphrase === undefined && process.env['KNHK_KEY_PASSPHRASE'] === undefined;
    const passphrase = options.passphrase ?? process.env['KNHK_KEY_PASSPHRASE'] ?? (drawn ? randomBytes(32).toString('base64url') : undefined);
    if (passphrase === undefined) throw new ConfigError('a cluster with a dataDir needs a passphrase for its key files (option passphrase or KNHK_KEY_PASSPHRASE)');
    const kdfLog2N = options.kdfLog2N ?? (drawn ? DRAWN_PASSPHRASE_KDF_LOG2N : undefined);
    const keyLifetimeMs = options.keyLifetimeMs ?? DEFAULT_KEY_LIFETIME_MS;
    const rotationLeadMs = options.rotationLeadMs ?? Math.min(DEFAULT_ROTATION_LEAD_MS, Math.floor(keyLifetimeMs / 2));
    const rotationCheckMs = options.rotationCheckMs ?? Math.min(HOUR_MS, Math.max(1, Math.floor(rotationLeadMs / 4)));
    // Replicas check rotated keys against the default lifetime: a longer one would be refused.
    if (!(Number.isSafeInteger(keyLifetimeMs) && keyLifetimeMs > 0 && keyLifetimeMs <= DEFAULT_KEY_LIFETIME_MS)) {
      throw new ConfigError(`keyLifetimeMs must be a whole number of ms in (0, ${DEFAULT_KEY_LIFETIME_MS}], got ${keyLifetimeMs}`);
    }
    if (!(Number.isSafeInteger(rotationLeadMs) && rotationLeadMs > 0 && rotationLeadMs < keyLifetimeMs)) {
      throw new ConfigError(`rotationLeadMs must be a whole number of ms in (0, keyLifetimeMs), got ${rotationLeadMs}`);
    }
    // Within the lead, so that a due key is seen before it expires; within a timer's range (Node runs longer intervals every millisecond).
    if (!(Number.isSafeInteger(rotationCheckMs) && rotationCheckMs > 0 && rotationCheckMs < rotationLeadMs && rotationCheckMs <= MAX_DELAY_MS)) {
      throw new ConfigError(`rotationCheckMs must be a whole number of ms in (0, min(rotationLeadMs, ${MAX_DELAY_MS})), got ${rotationCheckMs}`);
    }
    const backend = options.cryptoBackend;
    // Refused here, in the caller's thread, rather than as a failing start of every actor.
    observedSchemes(backend);
    const stateMachine = await stateMachineRef(options.stateMachine ?? KeyValue, options.stateMachineArgs);
    const dataDir = temporary ? await mkdtemp(join(tmpdir(), `knhk-${id}-`)) : resolve(options.dataDir as string);
    const lock = temporary ? undefined : await lockDataDir(dataDir);
    /** Gives the data directory up: removes a temporary one, unlocks a given one. */
    const leave = (): Promise<void> => (lock === undefined ? rm(dataDir, { recursive: true, force: true }) : lock.release());
    // Nobody is left to tell of a failure once the system has stopped: a lock left behind names a
    // process that is gone by the next start, which takes it over.
    void system.terminated.then(leave).catch(() => undefined);

    const name = (what: string): string => `${id}/${what}`;
    const replicas = config.members.map((i) => name(`replica-${i}`));
    const faults: { links: LinkFaults; byzantine: (ByzantineMode | undefined)[] } = { links: HEALTHY, byzantine: [] };
    let cluster: Cluster | undefined;
    /** Reports that arrive before the cluster object exists (replicas report what their stores hold as they start). */
    const early: ((c: Cluster) => void)[] = [];
    const whenReady = (report: (c: Cluster) => void): void => {
      if (cluster === undefined) early.push(report);
      else report(cluster);
    };
    const sink: AgentSink = {
      replicas,
      faultsFor: (node) => {
        const mode = faults.byzantine[node];
        return { links: faults.links, ...(mode === undefined ? {} : { byzantine: mode }) };
      },
      // A cluster started from its data directory replays what its replicas executed before it exists.
      applied: (node, executed) => whenReady((c) => c.#applied(node, executed)),
      halted: (node, code, reason) => whenReady((c) => c.#halted(node, { code, reason })),
      started: (node) => whenReady((c) => c.#halted(node, undefined)),
      evidence: (reporter, kind, accused, detail) => {
        if (cluster !== undefined) cluster.#evidence.add(reporter, accused, kind, detail);
      },
      treeHead: (node, signed) => {
        if (cluster !== undefined) void cluster.#treeHead(node, signed);
      },
      rotations: () =>
        cluster === undefined
          ? []
          : [...cluster.#rotations.values()]
              .filter((r) => r.committed)
              .sort((a, b) => a.sequence - b.sequence)
              .map(({ certificate, sequence, adopted, step }) => ({ certificate, sequence, ...(adopted === undefined ? {} : { adopted }), ...(step === undefined ? {} : { step }) })),
      rotationInstalled: (node, certificate, sequence) => whenReady((c) => c.#rotationInstalled(node, certificate, sequence)),
      migrationInstalled: (node, step, sequence, certificates) => whenReady((c) => c.#migrationInstalled(node, step, sequence, certificates)),
      rotationAdopted: (node, keyId, through) => whenReady((c) => c.#rotationAdopted(node, keyId, through)),
    };

    // A cluster that keeps failing is given up alone: `temporary`, so the root forgets it instead of stopping the system.
    const supervisor = await system.supervisor({ name: id, strategy: 'one_for_one', intensity: 50, periodMs: 10_000, restart: 'temporary' }).catch(async (error: unknown) => {
      // Another cluster of this id runs (its supervisor is not this spawn's to stop): only the directory is given up.
      await leave();
      throw error;
    });
    try {
      await supervisor.spawn(ClusterAgent, { name: name('agent'), args: sink });
      const client = await supervisor.spawn(Client, {
        name: name('client'),
        args: {
          replicas,
          replyQuorum: config.replyQuorum,
          retryMs: options.retryMs ?? 1000,
          sessionPrefix: `${id}.${randomBytes(6).toString('hex')}`,
          leaderOf: options.protocol === 'pbft' ? 'view-primary' : options.protocol === 'raft' ? 'sender' : 'none',
          algorithm: options.protocol,
          policy,
        },
      });
      const context = new TextEncoder().encode(`knhk/consensus/${id}`);
      const histories: PublicKeyDescriptor[][] = [];
      for (const i of config.members) {
        const signer = await supervisor.spawn(Signer, {
          name: name(`signer-${i}`),
          thread: true,
          args: {
            cluster: id,
            replica: name(`replica-${i}`),
            directory: join(dataDir, `replica-${i}`, 'keys'),
            member: i,
            scheme: POLICY_SCHEME[policy],
            passphrase,
            context,
            keyLifetimeMs,
            rotationLeadMs,
            ...(backend === undefined ? {} : { cryptoBackend: backend }),
            ...(kdfLog2N === undefined ? {} : { kdfLog2N }),
          },
        });
        const described = (await signer.ask({ type: 'describe' }, { timeoutMs: 60_000 })) as unknown as { history: PublicKeyDescriptor[] };
        histories.push(described.history);
      }
      const inForce = keysInForce(histories, observedSchemes(backend));
      await supervisor.spawn(Verifier, { name: name('verifier'), thread: true, args: { cluster: id, policy: inForce.policy, members: inForce.members, context, agent: name('agent'), reportQuorum: config.replyQuorum, replicas, ...(backend === undefined ? {} : { cryptoBackend: backend }) } });
      const tuning: ReplicaTuning = {
        batch: options.batch ?? DEFAULT_BATCH,
        timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS[options.protocol],
        ...(options.snapshotInterval === undefined ? {} : { snapshotInterval: options.snapshotInterval }),
      };
      const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
      for (const i of config.members) {
        await supervisor.spawn(Replica, {
          name: replicas[i] as string,
          thread: true,
          args: {
            clusterId: id,
            protocol: options.protocol,
            policy,
            n: config.n,
            nodeId: i,
            directory: replicaStore(dataDir, i),
            tuning,
            names: { replicas, signer: name(`signer-${i}`), verifier: name('verifier'), agent: name('agent'), client: name('client') },
            genesis: histories.map((history) => history[0] as PublicKeyDescriptor),
            seed: (seed + i * 7919) >>> 0,
            ...(backend === undefined ? {} : { cryptoBackend: backend }),
            stateMachine,
          },
        });
      }
      // A cluster restarted after policy steps is in the policy its signers reached, from the positions they record.
      const migrations = stepsTaken(histories, observedSchemes(backend), policy, inForce.policy);
      const trust = checkTrust({
        version: TRUST_VERSION,
        cluster: id,
        n: config.n,
        // Raft tolerates crashes only: its receipts need a majority of signatures, which a trust file says with f = 0.
        f: isByzantineTolerant(config.algorithm) ? config.f : 0,
        policy,
        members: histories.map((history, i) => ({ node: String(i), keys: trustKeysOf(history) })),
        ...(migrations.length > 0 ? { migrations } : {}),
      });
      const reached = migrations.at(-1)?.policy ?? policy;
      const made = new Cluster({ system, supervisor, client: client as never, config, id, policy: reached, dataDir, leave, histories, faults, trust, backend, stateMachine: stateMachine.name });
      cluster = made;
      for (const report of early.splice(0)) report(made);
      made.#rotationChecks = setInterval(() => made.#rotateDueKeys(), rotationCheckMs);
      void system.terminated.then(() => clearInterval(made.#rotationChecks));
      return made;
    } catch (error) {
      await system.root.stopChild(id);
      await leave();
      throw error;
    }
  }

  /**
   * Submits a command and resolves once the protocol has proved it committed (see client.ts):
   * the bytes the state machine applies, or a key-value operation, encoded for the built-in
   * key-value machine.
   * @throws {AskTimeout} when no proof arrived within `timeoutMs` (default 30 s): the command may
   *   still commit later — the outcome is unknown, not failed.
   * @throws {ConfigError} for a key-value operation to a cluster of another state machine.
   * @throws {ConsensusError} with the halting error's code (`STATE_TOO_LARGE`, `CORRUPT_STATE`), or
   *   {@link StorageError} with its code naming the first halted replica's store, once more
   *   replicas halted than the others can form a quorum without (see {@link ReplicaStatus.halted};
   *   halted replicas alone are counted, not crashed ones): at once, without sending the command,
   *   or for a submission that was waiting then, whose outcome is unknown, as after a timeout.
   */
  async submit(command: Uint8Array | KvOperation, options: { readonly timeoutMs?: number } = {}): Promise<Submitted> {
    if (!(command instanceof Uint8Array) && this.stateMachine !== KeyValue.name) {
      throw new ConfigError(`a key-value operation was submitted to a cluster of ${this.stateMachine}, which takes bytes`);
    }
    const payload = command instanceof Uint8Array ? command : kvPayload(command);
    if (this.#unavailable !== undefined) throw this.#unavailable;
    const result = await this.#unlessUnavailable(this.#client.ask({ type: 'submit', payload, policy: this.#policy }, { timeoutMs: options.timeoutMs ?? 30_000 }));
    let receipt: Promise<Receipt> | undefined;
    const receiptOf = (): Promise<Receipt> => (receipt ??= this.receipt({ ...result, payload }));
    return Object.defineProperty({ ...result }, 'receipt', { get: receiptOf, enumerable: false }) as Submitted;
  }

  /**
   * The receipt of a committed command: its receipt body, an inclusion proof in the receipt log,
   * and the log's tree head signed by a quorum of replicas (protocols/receipts). It is fetched from
   * a replica and verified against {@link trust} (on the pool) before it is returned, so a
   * Byzantine replica cannot hand out a bad one, nor another command's: the body must be the
   * command's (its session and timestamp, and its payload's hash when `command.payload` is given,
   * as for a {@link Submitted}'s receipt).
   * @throws {ReceiptError} `UNAVAILABLE` when no replica can make it within `timeoutMs` (default 30 s).
   */
  async receipt(command: ReceiptSubject, options: { readonly timeoutMs?: number } = {}): Promise<Receipt> {
    const deadline = performance.now() + (options.timeoutMs ?? 30_000);
    const first = this.#firstAsked();
    for (let round = 0; ; round++) {
      // A round that found no receipt is followed by one that starts at the next replica, not with the same one's wait.
      for (let k = 0; k < this.n; k++) {
        const ref = this.#system.lookup(this.#replicaName((first + round + k) % this.n));
        if (ref === undefined) continue;
        const located = await askUntil<{ position?: number }>(ref, { type: 'locate', client: command.client, timestamp: command.timestamp }, deadline);
        if (located?.position === undefined) continue;
        // The position is the replica's word: a head that never comes is waited for as long as one replica is.
        const signed = await this.#signedHead(located.position, Math.min(deadline, performance.now() + RECEIPT_ASK_MS));
        if (signed === undefined) continue;
        const text = await askUntil<{ json?: string }>(ref, { type: 'receipt', client: command.client, timestamp: command.timestamp, signed }, deadline);
        const answer = receiptAnswer(text?.json, command);
        if (answer !== undefined && (await verifyReceiptAsync(this.#system, answer.json, this.#trustJson, this.#backend)).ok) return answer.receipt;
      }
      if (performance.now() >= deadline) throw new ReceiptError('UNAVAILABLE', `no replica produced a valid receipt for ${command.client}/${command.timestamp} in time`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Terminates replica `i`'s thread wherever it is (a real crash, mid-write included) and keeps it down until {@link restart}. */
  crash(i: number): Promise<void> {
    return this.#supervisor.terminateChild(this.#replicaName(i), { kill: true });
  }

  /** Starts replica `i` again after {@link crash}: it recovers from its store and catches up. */
  restart(i: number): Promise<void> {
    return this.#supervisor.restartChild(this.#replicaName(i));
  }

  /** Cuts the network between replicas into `groups` (each replica in exactly one). */
  partition(groups: readonly (readonly number[])[]): void {
    checkPartition(groups, this.n);
    this.#faults.links = { ...this.#faults.links, partition: groups.map((g) => [...g]) };
    this.#publish();
  }

  /** Ends the partition and removes every link delay. */
  heal(): void {
    this.#faults.links = HEALTHY;
    this.#publish();
  }

  /** Delays every message on the link `from` → `to` by `ms` plus up to `jitterMs`. */
  delay(delay: LinkDelay): void {
    checkDelay(delay, this.n);
    this.#faults.links = { ...this.#faults.links, delays: [...this.#faults.links.delays, { ...delay }] };
    this.#publish();
  }

  /** Switches replica `i` into a Byzantine mode (the simulator's modes), or back to honest with `null`. */
  byzantine(i: number, mode: ByzantineMode | null): void {
    this.#replicaName(i);
    if (mode !== null && !BYZANTINE_MODES.includes(mode)) throw new ConfigError(`unknown Byzantine mode ${JSON.stringify(mode)}`);
    this.#faults.byzantine[i] = mode ?? undefined;
    this.#publish();
  }

  /** Per replica: up or not, role, view/term, commit index, state hash, restarts, Byzantine mode. */
  async status(): Promise<ReplicaStatus[]> {
    const children = new Map(this.#supervisor.children().map((c) => [c.name, c]));
    return Promise.all(
      Array.from({ length: this.n }, async (_, i): Promise<ReplicaStatus> => {
        const name = this.#replicaName(i);
        const child = children.get(name);
        const exit = child?.lastExit;
        const ref = this.#system.lookup<{ type: 'status' }, ReplicaReport>(name);
        const report = ref && child?.running ? await ref.ask({ type: 'status' }, { timeoutMs: 10_000 }).catch(() => undefined) : undefined;
        return {
          node: i,
          up: report !== undefined,
          role: report?.role ?? 'down',
          view: report?.view ?? 0,
          commitIndex: report?.commitIndex ?? this.#highest[i] ?? 0,
          leader: report?.leader ?? null,
          stateHash: report === undefined ? '' : hex(report.stateHash),
          restarts: child?.restarts ?? 0,
          lastCrash: exit?.kind === 'crash' ? `${exit.error.name}: ${exit.error.message}` : null,
          halted: report?.halted ?? null,
          byzantine: this.#faults.byzantine[i] ?? null,
          refused: { malformed: report?.malformed ?? 0, forged: report?.forged ?? 0, nonMember: report?.nonMember ?? 0, unverified: report?.unverified ?? 0 },
          unsent: report?.unsent ?? 0,
          receiptLog: report?.receiptLog ?? 0,
          receiptLogComplete: report?.receiptLogComplete ?? false,
        };
      }),
    );
  }

  /**
   * Evidence of misbehaviour reported so far, one report per reporter, accused and kind (see
   * {@link EvidenceReport}): a replica's report is its word (a faulty replica may accuse anyone);
   * the cluster's own (reporter -1) rest on signatures it verified.
   */
  evidence(): readonly EvidenceReport[] {
    return this.#evidence.reports();
  }

  /** What replica `i` reported executing at `position`, if it has and it is among the last {@link EXECUTIONS_KEPT}. */
  executed(i: number, position: number): ExecutedPosition | undefined {
    return this.#executions[i]?.get(position);
  }

  /**
   * Resolves once replica `i` has executed `position` (or jumped past it by state transfer).
   * @throws {CatchUpTimeout} when it has not within `timeoutMs` (default 60 s).
   */
  executedUpTo(i: number, position: number, options: { readonly timeoutMs?: number } = {}): Promise<void> {
    if ((this.#highest[i] ?? 0) >= position) return Promise.resolve();
    const timeoutMs = options.timeoutMs ?? CATCH_UP_TIMEOUT_MS;
    return new Promise((done, fail) => {
      const listener = (node: number, executed: ExecutedPosition): void => {
        if (node !== i || executed.position < position) return;
        settle();
        done();
      };
      const timer = setTimeout(() => {
        settle();
        fail(new CatchUpTimeout(i, position, this.#highest[i] ?? 0, timeoutMs));
      }, timeoutMs).unref();
      const settle = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      this.#listeners.add(listener);
    });
  }

  /** Calls `listener` for every execution a replica reports from now on; returns the unsubscribe function. */
  onExecuted(listener: (node: number, executed: ExecutedPosition) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops every actor of the cluster (replicas close their stores), and removes a temporary data directory or unlocks a given one. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#rotationChecks);
    await this.#system.root.stopChild(this.id);
    await this.#leave();
  }

  /** `proof`, unless the cluster becomes unavailable first; then its error. */
  #unlessUnavailable<T>(proof: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.add(reject);
      proof.then(resolve, reject).finally(() => this.#waiting.delete(reject));
    });
  }

  /** Replica `node` halted on `halt`, or (undefined) started again; fails the waiting submissions once too many halted. */
  #halted(node: number, halt: { readonly code: HaltingCode; readonly reason: string } | undefined): void {
    if (halt === undefined) this.#halts.delete(node);
    else this.#halts.set(node, halt);
    if (this.#halts.size <= this.#haltsTolerated) {
      this.#unavailable = undefined;
      return;
    }
    if (this.#unavailable !== undefined) return;
    const [first] = this.#halts;
    if (first === undefined) return;
    const [firstNode, { code, reason }] = first;
    const nodes = [...this.#halts.keys()].sort((a, b) => a - b).join(', ');
    const message = `replicas ${nodes} halted, more than the cluster can commit without: ${reason}`;
    this.#unavailable = isStorageHalt(code) ? new StorageError(code, replicaStore(this.dataDir, firstNode), message) : new ConsensusError(code, message);
    for (const reject of this.#waiting) reject(this.#unavailable);
    this.#waiting.clear();
  }

  #applied(node: number, executed: ExecutedPosition): void {
    const recent = this.#executions[node];
    if (recent === undefined) return;
    recent.set(executed.position, executed);
    this.#highest[node] = Math.max(this.#highest[node] ?? 0, executed.position);
    for (const listener of [...this.#listeners]) listener(node, executed);
  }

  /**
   * The receipts of every command executed at `position` (a batch), each verified against
   * {@link trust} on the pool. Empty when the position executed no command. A receipt proves its
   * command is in the log, not that the batch is whole: as many replicas as prove a command's
   * result (f+1; one for Raft) must give the same receipts (or none).
   * @throws {ReceiptError} `UNAVAILABLE` when no replica can make them within `timeoutMs` (default 30 s),
   *   for instance because the position is older than the last {@link EXECUTIONS_KEPT} this cluster saw signed.
   */
  async receiptsAt(position: number, options: { readonly timeoutMs?: number } = {}): Promise<Receipt[]> {
    const deadline = performance.now() + (options.timeoutMs ?? 30_000);
    const signed = await this.#signedHead(position, deadline);
    const alike = new Map<string, PositionAnswer[]>();
    const first = this.#firstAsked();
    for (let k = 0; signed !== undefined && k < this.n; k++) {
      const ref = this.#system.lookup(this.#replicaName((first + k) % this.n));
      const text = ref && (await askUntil<{ json?: string }>(ref, { type: 'receipts-at', position, signed }, deadline));
      const answer = positionAnswer(text?.json, position);
      if (answer === undefined) continue;
      const answers = [...(alike.get(answer.key) ?? []), answer];
      alike.set(answer.key, answers);
      if (answers.length < this.#replyQuorum) continue;
      // The replicas agree on the bodies; any one's proofs that verify will do.
      for (const { receipts } of answers) {
        const verdicts = await Promise.all(receipts.map(({ json }) => verifyReceiptAsync(this.#system, json, this.#trustJson, this.#backend)));
        if (verdicts.every((v) => v.ok)) return receipts.map(({ receipt }) => receipt);
      }
    }
    throw new ReceiptError('UNAVAILABLE', `no replica produced valid receipts for position ${position} in time`);
  }

  /** The replica a receipt request asks first, one further at each request (see {@link #receiptTurn}). */
  #firstAsked(): number {
    const first = this.#receiptTurn;
    this.#receiptTurn = (first + 1) % this.n;
    return first;
  }

  /**
   * Replica `node`'s tree-head signature (the agent checked that `node` sent it): checked on the
   * pool, then counted towards its position's quorum. A signature in another member's name is
   * dropped, as is a head too far past what replicas vouch they executed (see {@link #vouched}):
   * the collector keeps every head it is given until its position is settled.
   */
  async #treeHead(node: number, signed: SignedTreeHead): Promise<void> {
    const [signature] = signed.signatures;
    const member = this.#trust.members[node];
    if (signature === undefined || signature.node !== String(node) || member === undefined || signed.treeHead.sequence > this.#vouched() + EXECUTIONS_KEPT) return;
    const key = keyAt(member, signature.keyId, signed.treeHead.sequence);
    if (key === undefined || signature.scheme !== key.scheme) return;
    const input = treeHeadSigningInput(signed.treeHead, this.#registry.get(key.scheme));
    const valid = await verifyAsync(this.#system, {
      scheme: key.scheme,
      publicKey: key.publicKey,
      message: input.message,
      signature: signature.signature,
      ...(input.context === undefined ? {} : { context: input.context }),
      ...(this.#backend === undefined ? {} : { backend: this.#backend }),
    });
    if (!valid) {
      this.#evidence.add(-1, node, 'invalid-tree-head-signature', `position ${signed.treeHead.sequence}`);
      return;
    }
    const update = this.#collector.add(signed.treeHead, signature);
    if (update.kind === 'fork' || update.kind === 'complete') {
      for (const accused of update.accused) {
        this.#evidence.add(-1, Number(accused), 'receipt-log-fork', `signed a tree head for position ${signed.treeHead.sequence} other than the one a quorum signed`);
      }
    }
    if (update.kind === 'complete') {
      const position = update.signed.treeHead.sequence;
      this.#signedHeads.set(position, update.signed);
      this.#signedPositions.splice(this.#firstSignedAtOrAfter(position), 0, position);
      if (this.#signedPositions.length > EXECUTIONS_KEPT) this.#signedHeads.delete(this.#signedPositions.shift() as number);
      this.#collector.forget(position - EXECUTIONS_KEPT);
      for (const waiter of [...this.#headWaiters]) {
        if (waiter.position > position) continue;
        this.#headWaiters.delete(waiter);
        waiter.wake();
      }
    }
  }

  /**
   * The highest position that as many replicas as prove a result (f+1; one for Raft) reported
   * executing: at least one correct replica did, whatever faulty ones report.
   */
  #vouched(): number {
    return [...this.#highest].sort((a, b) => b - a)[this.#replyQuorum - 1] ?? 0;
  }

  /** Index in {@link #signedPositions} of the first position ≥ `position` (binary search). */
  #firstSignedAtOrAfter(position: number): number {
    let low = 0;
    let high = this.#signedPositions.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#signedPositions[mid] as number) < position) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /**
   * The earliest tree head at or after `position` that a quorum signed (a receipt may be proved
   * against any later head of the log), once there is one, or undefined at the deadline.
   */
  async #signedHead(position: number, deadline: number): Promise<SignedTreeHead | undefined> {
    const find = (): SignedTreeHead | undefined => {
      const at = this.#signedPositions[this.#firstSignedAtOrAfter(position)];
      return at === undefined ? undefined : this.#signedHeads.get(at);
    };
    const known = find();
    if (known !== undefined) return known;
    await new Promise<void>((wake) => {
      const waiter = {
        position,
        wake: () => {
          clearTimeout(timer);
          wake();
        },
      };
      const timer = setTimeout(() => {
        this.#headWaiters.delete(waiter);
        wake();
      }, Math.max(0, deadline - performance.now()));
      this.#headWaiters.add(waiter);
    });
    return find();
  }

  #replicaName(i: number): string {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.n) throw new ConfigError(`no replica ${i} in a cluster of ${this.n}`);
    return `${this.id}/replica-${i}`;
  }

  /** Tells every running replica the faults now in force; a replica that is down learns them when it starts. */
  #publish(): void {
    for (let i = 0; i < this.n; i++) {
      const mode = this.#faults.byzantine[i];
      this.#system.lookup(this.#replicaName(i))?.tell({ type: 'faults', links: this.#faults.links, ...(mode === undefined ? {} : { byzantine: mode }) }, { urgent: true });
    }
  }
}
