/**
 * The deterministic simulator: n consensus cores on one thread, a simulated network and client,
 * virtual time, and one seeded PRNG for every random choice, so a seed replays a run exactly.
 *
 * Each replica processes one input at a time. Receiving a message costs it the verification of
 * every signature it has not seen before (the envelope's and those nested in certificates);
 * sending costs one signature per message; its outputs leave when that work is done
 * (see cost.ts). A safety checker watches every correct replica's executions and throws a
 * {@link SafetyViolation} at the first disagreement.
 */
import type { Schema } from '../../schema/schema.js';
import { decode, digestOf, encode, hex } from '../consensus/codec.js';
import { command as makeCommand, type Command } from '../consensus/command.js';
import { consensusConfig, isByzantineTolerant, type ConsensusAlgorithm, type ConsensusConfig, type NodeId } from '../consensus/config.js';
import { signedSchema, type Signed } from '../consensus/certificate.js';
import { replyKey, standsWithin, type Core, type Evidence, type Input, type NodeStatus, type ProtocolDefinition, type ReadState, type Reply, type SignedPosition } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';
import { storedStateRecord } from '../consensus/state-archive.js';
import { KvStateMachine, kvPayload, type KvOperation } from '../consensus/kv.js';
import type { ConsensusState } from '../consensus/state-machine.js';
import { answerClient, corrupt, remember, type ByzantineMode } from './byzantine.js';
import { SafetyChecker, SafetyViolation } from './checker.js';
import { CRYPTO_COSTS, type CryptoCost, type CryptoCostPreset } from './cost.js';
import { EventQueue } from './event-queue.js';
import { CLIENT, Network, type LinkOptions, type NetworkOptions } from './network.js';
import { Prng } from './prng.js';
import { protocolDefinition, type Message } from './protocols.js';
import { SimulatedSigner } from './signer.js';

/** How a simulation is set up. */
export interface SimulationOptions<M extends Message> {
  /** A protocol by name, or a definition (your own core, or a deliberately broken one in tests). */
  readonly protocol: ConsensusAlgorithm | ProtocolDefinition<M>;
  /** Number of replicas. */
  readonly n: number;
  /** Faults to tolerate (default: the most n allows). */
  readonly f?: number;
  /** The seed of every random choice in the run. */
  readonly seed: number;
  /** Link behaviour (default: 1–5 ms, no loss). */
  readonly network?: NetworkOptions;
  /** Builds each replica's state machine (default: {@link KvStateMachine}). */
  readonly stateMachine?: () => ConsensusState;
  /** Signature costs charged to replicas' CPUs (default `free`). */
  readonly crypto?: CryptoCostPreset | CryptoCost;
  /** Clients submitting concurrently; each has one request outstanding at a time (default 4). */
  readonly clients?: number;
  /** How long a client waits before sending its request to every replica again (default 500 ms). */
  readonly clientRetryMs?: number;
  /**
   * Virtual ms after a step that left a core paused part-way through execution before it is
   * stepped `resume` (core.ts); inputs due in between reach the paused core, which must execute
   * the rest before taking them. A stress of that rule: worker-backed hosts hold their inputs until
   * a paused core has finished. Absent, a paused core is resumed at once, within the step.
   */
  readonly resumeAfterMs?: number;
}

/** A client command in flight or answered. */
export interface Submission {
  readonly command: Command;
  /** True once the client holds `replyQuorum` matching replies. */
  readonly done: boolean;
  /** Virtual ms from the client's first send to its accepting the result. */
  readonly latencyMs: number | undefined;
  /** The accepted response. */
  readonly response: Uint8Array | undefined;
}

/** A replica's status as the simulator sees it. */
export interface SimulatedStatus extends NodeStatus {
  /** False while crashed (the other fields are then those it had when it crashed). */
  readonly up: boolean;
  readonly byzantine: ByzantineMode | null;
  readonly restarts: number;
}

/** Traffic and fault counters of a run. */
export interface SimulationStats {
  readonly steps: number;
  /** Steps that resumed a core paused part-way through execution (core.ts), at once or after a turn. */
  readonly resumes: number;
  /** Persist operations that stored a replica's state, whole or as changes (state-archive.ts). */
  readonly storedStates: number;
  readonly virtualMs: number;
  /** Messages sent between replicas (one per recipient, loopback excluded) and their bytes. */
  readonly messages: number;
  readonly bytes: number;
  readonly byType: Readonly<Record<string, { messages: number; bytes: number }>>;
  /** Lost, partitioned away, or addressed to a crashed replica. */
  readonly dropped: number;
  /** Refused before reaching a core: undecodable or schema-invalid, bad signature, non-member sender. */
  readonly rejected: { readonly malformed: number; readonly forged: number; readonly nonMember: number };
  /** Evidence reported by correct replicas. */
  readonly evidence: number;
  readonly committedCommands: number;
}

type SimEvent<M> =
  | { readonly kind: 'deliver'; readonly to: NodeId; readonly packet: Packet<M> }
  | { readonly kind: 'timer'; readonly node: NodeId; readonly timer: string; readonly generation: number }
  | { readonly kind: 'request'; readonly to: NodeId; readonly command: Command }
  | { readonly kind: 'reply'; readonly from: NodeId; readonly reply: Reply }
  | { readonly kind: 'retry'; readonly submission: SubmissionState }
  | { readonly kind: 'action'; readonly run: () => void }
  | { readonly kind: 'resume'; readonly node: NodeId; readonly core: Core<M> };

interface SubmissionState extends Submission {
  command: Command;
  done: boolean;
  latencyMs: number | undefined;
  response: Uint8Array | undefined;
  sentAt: number;
  /** Position and response (hex) → the replicas that answered them, as the client actor counts (actors/client.ts): a replica's first answer only. */
  readonly votes: Map<string, Set<NodeId>>;
}

/**
 * One transmission's bytes, shared by its recipients. Every recipient would decode, validate and
 * verify the same bytes to the same verdict, so the simulator does it once per transmission and
 * hands each recipient the same deeply frozen message (a core that mutated an input would throw).
 */
interface Packet<M> {
  readonly bytes: Uint8Array;
  verdict?: { readonly envelope: Signed<M>; readonly signatures: readonly Signed<unknown>[] } | 'malformed' | 'forged' | 'nonMember';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

interface Replica<M> {
  readonly id: NodeId;
  core: Core<M> | null;
  /** Durable records, encoded as the replica's store would hold them. */
  readonly durable: Map<string, Uint8Array>;
  readonly timers: Map<string, number>;
  busyUntil: number;
  byzantine: ByzantineMode | null;
  /** Byzantine at some point of the run: what it signed need not follow its core. */
  everByzantine: boolean;
  restarts: number;
  lastStatus: NodeStatus;
  readonly seen: Set<string>;
  readonly memory: Uint8Array[];
  readonly reads: ReadState[];
  readonly evidence: Evidence[];
  /** The core a resume event is queued for (one at a time, so a paused core gets one slice per turn). */
  resuming: Core<M> | null;
}

const TRACE_EVENTS = 64;
const SEEN_SIGNATURES = 4096;

/** A deterministic, single-threaded simulation of one replicated cluster and its clients. */
export class Simulation<M extends Message = Message> {
  /** The run's seed. */
  readonly seed: number;
  /** The protocol under test. */
  readonly protocol: ProtocolDefinition<M>;
  readonly #configs: ConsensusConfig[];
  readonly #rng: Prng;
  readonly #network: Network;
  readonly #signer: SimulatedSigner;
  readonly #cost: CryptoCost;
  readonly #envelope: Schema<Signed<M>>;
  readonly #stateMachine: () => ConsensusState;
  readonly #queue = new EventQueue<SimEvent<M>>();
  readonly #replicas: Replica<M>[];
  readonly #checker: SafetyChecker;
  readonly #trace: string[] = [];
  readonly #submissions: SubmissionState[] = [];
  readonly #clientQueues: SubmissionState[][];
  readonly #clientTimestamps: number[];
  readonly #retryMs: number;
  readonly #resumeAfterMs: number | undefined;
  #resumes = 0;
  #storedStates = 0;
  #nextClient = 0;
  #timerGenerations = 0;
  #now = 0;
  #steps = 0;
  #messages = 0;
  #bytes = 0;
  readonly #byType: Record<string, { messages: number; bytes: number }> = {};
  #dropped = 0;
  readonly #rejected = { malformed: 0, forged: 0, nonMember: 0 };
  #evidence = 0;

  /**
   * @throws {ConsensusError} `INVALID_CONFIG` for a configuration the protocol cannot run
   * (for BFT, n < 3f+1) or a malformed network model.
   */
  constructor(options: SimulationOptions<M>) {
    this.seed = options.seed >>> 0;
    this.protocol = typeof options.protocol === 'string' ? (protocolDefinition(options.protocol) as unknown as ProtocolDefinition<M>) : options.protocol;
    const { n } = options;
    this.#configs = Array.from({ length: n }, (_, nodeId) =>
      consensusConfig({ nodeId, n, algorithm: this.protocol.algorithm, ...(options.f === undefined ? {} : { f: options.f }) }),
    );
    this.#rng = new Prng(this.seed);
    this.#network = new Network(n, options.network);
    this.#signer = new SimulatedSigner(n, this.#rng);
    const cost = options.crypto ?? 'free';
    this.#cost = typeof cost === 'string' ? CRYPTO_COSTS[cost] : cost;
    this.#envelope = signedSchema(this.protocol.message);
    this.#stateMachine = options.stateMachine ?? (() => new KvStateMachine());
    const clients = options.clients ?? 4;
    if (!Number.isSafeInteger(clients) || clients < 1) throw new ConsensusError('INVALID_CONFIG', `clients must be a positive integer, got ${clients}`);
    this.#clientQueues = Array.from({ length: clients }, () => []);
    this.#clientTimestamps = new Array<number>(clients).fill(0);
    this.#retryMs = options.clientRetryMs ?? 500;
    if (options.resumeAfterMs !== undefined && !(Number.isFinite(options.resumeAfterMs) && options.resumeAfterMs >= 0)) {
      throw new ConsensusError('INVALID_CONFIG', `resumeAfterMs must be a finite number ≥ 0, got ${options.resumeAfterMs}`);
    }
    this.#resumeAfterMs = options.resumeAfterMs;
    this.#checker = new SafetyChecker((detail) => {
      throw new SafetyViolation(this.seed, this.#steps, detail, [...this.#trace]);
    });
    this.#replicas = this.#configs.map((config) => ({
      id: config.nodeId,
      core: null,
      durable: new Map(),
      timers: new Map(),
      busyUntil: 0,
      byzantine: null,
      everByzantine: false,
      restarts: 0,
      lastStatus: { role: 'follower', view: 0, commitIndex: 0, leader: null },
      resuming: null,
      seen: new Set(),
      memory: [],
      reads: [],
      evidence: [],
    }));
    for (const replica of this.#replicas) this.#boot(replica);
  }

  /** Current virtual time in ms. */
  get now(): number {
    return this.#now;
  }

  /** Number of replicas. */
  get n(): number {
    return this.#replicas.length;
  }

  /** The configuration replica `i` runs with. */
  config(i: NodeId): ConsensusConfig {
    return this.#configs[this.#index(i)] as ConsensusConfig;
  }

  /**
   * Submits a command from the next client (round robin). It is sent when that client's previous
   * request has been answered. `op` defaults to a put of a fresh key.
   */
  submit(op?: KvOperation | Uint8Array): Submission {
    const client = this.#nextClient++ % this.#clientQueues.length;
    const timestamp = ++this.#clientTimestamps[client]!;
    const payload = op instanceof Uint8Array ? op : kvPayload(op ?? { type: 'put', key: `k${this.#submissions.length}`, value: `v${this.#submissions.length}` });
    const submission: SubmissionState = {
      command: makeCommand(`client-${client}`, timestamp, payload),
      done: false,
      latencyMs: undefined,
      response: undefined,
      sentAt: -1,
      votes: new Map(),
    };
    this.#submissions.push(submission);
    const queue = this.#clientQueues[client] as SubmissionState[];
    queue.push(submission);
    if (queue.length === 1) this.#send(submission);
    return submission;
  }

  /** Every submission so far, in submission order. */
  submissions(): readonly Submission[] {
    return this.#submissions;
  }

  /** Runs `fn` at virtual time now + `ms` (fault schedules). */
  at(ms: number, fn: () => void): void {
    this.#queue.push(this.#now + Math.max(0, ms), { kind: 'action', run: fn });
  }

  /** Advances virtual time by `ms`, processing every event due. */
  run(options: { readonly ms: number }): void {
    const until = this.#now + options.ms;
    while (this.#queue.peekTime() <= until) this.#process();
    this.#now = until;
  }

  /**
   * Processes events until `predicate` holds or `maxMs` of virtual time pass.
   * @returns whether the predicate held.
   */
  runUntil(predicate: () => boolean, options: { readonly maxMs: number }): boolean {
    const until = this.#now + options.maxMs;
    if (predicate()) return true;
    while (this.#queue.peekTime() <= until) {
      this.#process();
      if (predicate()) return true;
    }
    this.#now = until;
    return predicate();
  }

  /** Runs until every submission is answered, or `maxMs` pass. */
  runUntilCommitted(options: { readonly maxMs: number }): boolean {
    return this.runUntil(() => this.#submissions.every((s) => s.done), options);
  }

  /** Crashes replica `i`: its volatile state is lost, its durable records kept. */
  crash(i: NodeId): void {
    const replica = this.#replica(i);
    if (replica.core === null) return;
    replica.lastStatus = replica.core.status();
    replica.core = null;
    replica.timers.clear();
    replica.seen.clear();
    this.#log(`crash ${i}`);
  }

  /** Restarts a crashed replica from its durable records. */
  restart(i: NodeId): void {
    const replica = this.#replica(i);
    if (replica.core !== null) return;
    replica.restarts++;
    replica.busyUntil = this.#now;
    this.#log(`restart ${i}`);
    this.#boot(replica);
  }

  /** Splits the replicas into groups that cannot reach each other (the client reaches all). */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.#network.partition(groups);
    this.#log(`partition ${JSON.stringify(groups)}`);
  }

  /** Sets the probabilities of loss, duplication and reordering on every link (absent ones become 0). */
  impair(options: Pick<NetworkOptions, 'loss' | 'duplicate' | 'reorder'>): void {
    this.#network.impair(options);
    this.#log(`impair ${JSON.stringify(options)}`);
  }

  /** The run's random stream, for fault schedules and workloads that must replay with the seed. */
  get random(): Prng {
    return this.#rng;
  }

  /** Removes the partition. */
  heal(): void {
    this.#network.heal();
    this.#log('heal');
  }

  /** Cuts replica `i` off from everyone, the client included. */
  disconnect(i: NodeId): void {
    this.#network.disconnect(this.#index(i));
    this.#log(`disconnect ${i}`);
  }

  /** Reconnects replica `i`. */
  connect(i: NodeId): void {
    this.#network.connect(this.#index(i));
    this.#log(`connect ${i}`);
  }

  /** Sets how the one-way link from → to behaves: extra delay, loss, duplication, reordering. */
  link(from: NodeId, to: NodeId, options: LinkOptions): void {
    this.#network.link(this.#index(from), this.#index(to), options);
    this.#log(`link ${from}→${to} ${JSON.stringify(options)}`);
  }

  /** Adds `extraMs` of delay to every message from → to (a {@link link} setting). */
  delay(from: NodeId, to: NodeId, extraMs: readonly [number, number]): void {
    this.link(from, to, { extraDelayMs: extraMs });
  }

  /** Removes every per-link setting. */
  clearLinks(): void {
    this.#network.clearLinks();
  }

  /**
   * Turns replica `i` Byzantine (or honest again with `null`). A Byzantine replica is excluded
   * from the safety checker: the property is about correct replicas.
   * @throws {ConsensusError} `INVALID_CONFIG` for a crash-fault protocol (Raft).
   */
  byzantine(i: NodeId, mode: ByzantineMode | null): void {
    if (mode !== null && !isByzantineTolerant(this.protocol.algorithm)) {
      throw new ConsensusError('INVALID_CONFIG', `${this.protocol.algorithm} tolerates crashes, not Byzantine replicas`);
    }
    const replica = this.#replica(i);
    replica.byzantine = mode;
    replica.everByzantine ||= mode !== null;
    this.#log(`byzantine ${i} ${mode ?? 'off'}`);
  }

  /** Replica `i`'s status. */
  status(i: NodeId): SimulatedStatus {
    const replica = this.#replica(i);
    const status = replica.core?.status() ?? replica.lastStatus;
    return { ...status, up: replica.core !== null, byzantine: replica.byzantine, restarts: replica.restarts };
  }

  /** The commands replica `i` has executed, in order (positions it skipped by state transfer included). */
  committed(i: NodeId): Command[] {
    return this.#checker.commands(this.#checker.executed(this.#index(i)));
  }

  /** The highest position replica `i` executed since it last started. */
  executed(i: NodeId): number {
    return this.#checker.executed(this.#index(i));
  }

  /** Linearizable reads replica `i` released. */
  reads(i: NodeId): readonly ReadState[] {
    return this.#replica(i).reads;
  }

  /** Evidence replica `i` reported. */
  evidence(i: NodeId): readonly Evidence[] {
    return this.#replica(i).evidence;
  }

  /** Replica `i`'s live core, for protocol-specific calls (Raft membership, ReadIndex). */
  core<C extends Core<M> = Core<M>>(i: NodeId): C {
    const core = this.#replica(i).core;
    if (core === null) throw new ConsensusError('INVALID_CONFIG', `replica ${i} is crashed`);
    return core as C;
  }

  /**
   * Hands the outputs of a direct call on {@link core} (a membership change, a read) to the
   * simulated host, as if the replica had just processed an input.
   */
  flush(i: NodeId): void {
    this.#flush(this.#replica(i), 0);
  }

  /** The last events processed, oldest first (what a {@link SafetyViolation} carries). */
  trace(): readonly string[] {
    return [...this.#trace];
  }

  /** Traffic and fault counters. */
  stats(): SimulationStats {
    return {
      steps: this.#steps,
      resumes: this.#resumes,
      storedStates: this.#storedStates,
      virtualMs: this.#now,
      messages: this.#messages,
      bytes: this.#bytes,
      byType: { ...this.#byType },
      dropped: this.#dropped,
      rejected: { ...this.#rejected },
      evidence: this.#evidence,
      committedCommands: this.#checker.commands(this.#checker.height).length,
    };
  }

  #index(i: NodeId): NodeId {
    if (!Number.isInteger(i) || i < 0 || i >= this.#replicas.length) throw new ConsensusError('INVALID_CONFIG', `no replica ${i} in a cluster of ${this.#replicas.length}`);
    return i;
  }

  #replica(i: NodeId): Replica<M> {
    return this.#replicas[this.#index(i)] as Replica<M>;
  }

  #log(line: string): void {
    this.#trace.push(`${this.#now.toFixed(3)}ms #${this.#steps} ${line}`);
    if (this.#trace.length > TRACE_EVENTS) this.#trace.shift();
  }

  #boot(replica: Replica<M>): void {
    const durable = new Map<string, unknown>();
    for (const [key, bytes] of replica.durable) durable.set(key, decode(bytes));
    this.#checker.restarted(replica.id);
    replica.core = this.protocol.create({ config: this.#configs[replica.id] as ConsensusConfig, stateMachine: this.#stateMachine(), durable });
    this.#flush(replica, 0);
  }

  #process(): void {
    const next = this.#queue.pop();
    if (next === undefined) return;
    this.#now = Math.max(this.#now, next.at);
    const event = next.event;
    if ((event.kind === 'deliver' || event.kind === 'request' || event.kind === 'timer' || event.kind === 'resume') && this.#busyUntil(event) > this.#now) {
      this.#queue.push(this.#busyUntil(event), event);
      return;
    }
    this.#steps++;
    switch (event.kind) {
      case 'deliver':
        return this.#deliver(this.#replicas[event.to] as Replica<M>, event.packet);
      case 'timer': {
        const replica = this.#replicas[event.node] as Replica<M>;
        if (replica.core === null || replica.timers.get(event.timer) !== event.generation) return;
        replica.timers.delete(event.timer);
        this.#log(`${event.node} timeout ${event.timer}`);
        return this.#input(replica, { kind: 'timeout', timer: event.timer }, 0);
      }
      case 'request': {
        const replica = this.#replicas[event.to] as Replica<M>;
        if (replica.core === null) return void this.#dropped++;
        return this.#input(replica, { kind: 'request', command: event.command }, 0);
      }
      case 'reply':
        return this.#reply(event.from, event.reply);
      case 'retry':
        if (!event.submission.done) this.#send(event.submission);
        return;
      case 'action':
        return event.run();
      case 'resume': {
        const replica = this.#replicas[event.node] as Replica<M>;
        if (replica.resuming === event.core) replica.resuming = null;
        // A crash or a restart since, or an input that finished the execution, leaves nothing to resume.
        if (replica.core !== event.core || event.core.executionPaused !== true) return;
        return this.#input(replica, { kind: 'resume' }, 0);
      }
    }
  }

  #busyUntil(event: { readonly kind: 'deliver' | 'request'; readonly to: NodeId } | { readonly kind: 'timer' | 'resume'; readonly node: NodeId }): number {
    return (this.#replicas['node' in event ? event.node : event.to] as Replica<M>).busyUntil;
  }

  /** Decodes, validates and verifies a packet once; every signature, nested ones included. */
  #check(packet: Packet<M>): NonNullable<Packet<M>['verdict']> {
    if (packet.verdict !== undefined) return packet.verdict;
    let envelope: Signed<M>;
    try {
      envelope = deepFreeze(this.#envelope.parse(decode(packet.bytes)));
    } catch {
      return (packet.verdict = 'malformed');
    }
    const nested = this.protocol.nested(envelope.body);
    const signatures: Signed<unknown>[] = [envelope, ...nested];
    for (const signed of signatures) {
      if (signed.from >= this.#replicas.length) return (packet.verdict = 'nonMember');
      // Always checked: a verdict cache keyed by signature bytes alone would let a replica
      // re-use its own valid signature under another member's name.
      if (!this.#signer.verify(signed)) {
        this.#log(`forged ${envelope.body.type} claiming ${signed.from}`);
        return (packet.verdict = 'forged');
      }
    }
    for (const signed of nested) this.#checkReach(signed);
    return (packet.verdict = { envelope, signatures });
  }

  /**
   * A correct replica's vote inside a certificate stands within what the replica, as it is now,
   * says it has signed through (Core.signedThrough, which only grows): a verifier holding a key
   * the replica retired accepts the key's votes up to there and no further.
   */
  #checkReach(signed: Signed<SignedPosition>): void {
    const signer = this.#replicas[signed.from];
    if (signer === undefined || signer.core === null || signer.everByzantine) return;
    const reach = signer.core.signedThrough();
    if (standsWithin(signed.body, reach)) return;
    const at = `view ${signed.body.view ?? '-'}, sequence ${signed.body.sequence ?? '-'}`;
    throw new SafetyViolation(this.seed, this.#steps, `replica ${signed.from} signed a vote at ${at}, beyond the view ${reach.view ?? '-'} and sequence ${reach.sequence ?? '-'} it says it signed through`, [...this.#trace]);
  }

  #deliver(replica: Replica<M>, packet: Packet<M>): void {
    if (replica.core === null) return void this.#dropped++;
    const verdict = this.#check(packet);
    if (typeof verdict === 'string') {
      // Refusing a forgery still costs the verification that exposed it.
      if (verdict === 'forged') replica.busyUntil = Math.max(replica.busyUntil, this.#now) + this.#cost.verifyUs / 1000;
      return void this.#rejected[verdict]++;
    }
    const { envelope, signatures } = verdict;
    let costUs = 0;
    for (const signed of signatures) {
      // The CPU model charges what a verdict cache keyed by (signer, signature, body) would: each signature once.
      const key = `${signed.from}:${hex(signed.signature)}`;
      if (replica.seen.has(key) || signed.from === replica.id) continue;
      costUs += this.#cost.verifyUs;
      if (replica.seen.size >= SEEN_SIGNATURES) replica.seen.clear();
      replica.seen.add(key);
    }
    if (replica.byzantine === 'replay') remember(replica.memory, packet.bytes);
    this.#log(`${replica.id} ← ${envelope.from} ${envelope.body.type}`);
    this.#input(replica, { kind: 'message', message: envelope }, costUs);
  }

  #input(replica: Replica<M>, input: Input<M>, costUs: number): void {
    const core = replica.core as Core<M>;
    try {
      core.step(input, this.#now);
      if (input.kind === 'resume') this.#resumes++;
      // A core that paused executing a batch is resumed at once, as if unsliced (core.ts), unless
      // the run gives it a turn (`resumeAfterMs`).
      if (this.#resumeAfterMs === undefined) {
        for (; core.executionPaused === true; this.#resumes++) core.step({ kind: 'resume' }, this.#now);
      } else if (core.executionPaused === true && replica.resuming !== core) {
        replica.resuming = core;
        this.#queue.push(this.#now + this.#resumeAfterMs, { kind: 'resume', node: replica.id, core });
      }
    } catch (error) {
      // A state too large to store is no safety matter: the run cannot go on, and says why.
      if (!(error instanceof ConsensusError) || error.code === 'STATE_TOO_LARGE') throw error;
      // A Byzantine replica's own state is no one's concern but its own: it just stops.
      if (replica.byzantine !== null) return this.crash(replica.id);
      throw new SafetyViolation(this.seed, this.#steps, `replica ${replica.id} broke an invariant: ${error.message}`, [...this.#trace]);
    }
    this.#flush(replica, costUs);
  }

  /** Carries out a core's outputs in the order core.ts prescribes: persist, then send, then the rest. */
  #flush(replica: Replica<M>, costUs: number): void {
    const core = replica.core;
    if (core === null) return;
    const ready = core.ready();
    for (const op of ready.persist) {
      if (op.value === undefined) {
        replica.durable.delete(op.key);
        continue;
      }
      replica.durable.set(op.key, encode(op.value));
      if (storedStateRecord(op.key, op.value) !== undefined) this.#storedStates++;
    }
    const mode = replica.byzantine;
    let signatures = 0;
    const sends: { packet: Packet<M>; type: string; to: readonly NodeId[] }[] = [];
    for (const out of ready.messages) {
      const transmissions = mode === null ? [{ from: replica.id, to: out.to, body: out.body }] : corrupt(mode, replica.id, out, this.protocol.adversary, this.#configs[replica.id]!.members, this.#rng);
      for (const tx of transmissions) {
        const signed: Signed<M> = { from: tx.from, body: tx.body, signature: this.#signer.signDigest(replica.id, digestOf(tx.body)) };
        signatures++;
        sends.push({ packet: { bytes: encode(signed) }, type: tx.body.type, to: tx.to });
      }
    }
    if (mode === 'replay' && replica.memory.length > 0 && this.#rng.chance(0.5)) {
      sends.push({ packet: { bytes: this.#rng.pick(replica.memory) }, type: 'replay', to: [this.#rng.int(this.#replicas.length)] });
    }
    if (mode !== 'silent') signatures += ready.replies.length;
    const leaves = this.#now + (costUs + signatures * this.#cost.signUs) / 1000;
    replica.busyUntil = Math.max(replica.busyUntil, leaves);
    for (const send of sends) {
      for (const to of send.to) {
        if (to !== replica.id) {
          this.#messages++;
          this.#bytes += send.packet.bytes.length;
          const stat = (this.#byType[send.type] ??= { messages: 0, bytes: 0 });
          stat.messages++;
          stat.bytes += send.packet.bytes.length;
        }
        const delays = to >= 0 && to < this.#replicas.length ? this.#network.deliveries(replica.id, to, this.#rng) : [];
        if (delays.length === 0) this.#dropped++;
        for (const d of delays) this.#queue.push(leaves + d, { kind: 'deliver', to, packet: send.packet });
      }
    }
    for (const op of ready.timers) {
      if (op.kind === 'cancel') {
        replica.timers.delete(op.timer);
        continue;
      }
      // Generations are unique across the run, so a cancelled timer's event can never match a later arming.
      const generation = ++this.#timerGenerations;
      replica.timers.set(op.timer, generation);
      const jitter = op.jitterMs === undefined || op.jitterMs <= 0 ? 0 : this.#rng.between(0, op.jitterMs);
      this.#queue.push(leaves + op.afterMs + jitter, { kind: 'timer', node: replica.id, timer: op.timer, generation });
    }
    for (const applied of ready.applied) {
      if (mode === null) this.#checker.applied(replica.id, applied);
    }
    if (mode !== 'silent') {
      for (const reply of ready.replies) {
        if (mode === null) this.#checker.replied(replica.id, reply);
        const answer = answerClient(mode, reply);
        for (const d of this.#network.deliveries(replica.id, CLIENT, this.#rng)) this.#queue.push(leaves + d, { kind: 'reply', from: replica.id, reply: answer });
      }
    }
    replica.reads.push(...ready.reads);
    if (mode === null) {
      replica.evidence.push(...ready.evidence);
      this.#evidence += ready.evidence.length;
      const status = core.status();
      if (this.protocol.uniqueLeader && (status.role === 'leader' || status.role === 'primary')) this.#checker.leader(replica.id, status.view);
    }
  }

  #send(submission: SubmissionState): void {
    if (submission.sentAt < 0) submission.sentAt = this.#now;
    for (const replica of this.#replicas) {
      for (const d of this.#network.deliveries(CLIENT, replica.id, this.#rng)) this.#queue.push(this.#now + d, { kind: 'request', to: replica.id, command: submission.command });
    }
    this.#queue.push(this.#now + this.#retryMs, { kind: 'retry', submission });
  }

  #reply(from: NodeId, reply: Reply): void {
    const client = Number(reply.client.slice('client-'.length));
    const queue = this.#clientQueues[client];
    const submission = queue?.[0];
    if (submission === undefined || submission.done || submission.command.timestamp !== reply.timestamp || submission.command.client !== reply.client) return;
    for (const voters of submission.votes.values()) if (voters.has(from)) return;
    const key = replyKey(reply);
    const voters = submission.votes.get(key) ?? new Set<NodeId>();
    voters.add(from);
    submission.votes.set(key, voters);
    if (voters.size < (this.#configs[0] as ConsensusConfig).replyQuorum) return;
    this.#checker.accepted(reply);
    submission.done = true;
    submission.latencyMs = this.#now - submission.sentAt;
    submission.response = reply.response;
    queue!.shift();
    const next = queue![0];
    if (next !== undefined) this.#send(next);
  }
}
