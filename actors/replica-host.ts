/**
 * The real-world host of a consensus core: what the simulator does for a core in virtual time,
 * done with real signatures, a real clock and a durable LMDB store. The replica actor wraps one;
 * tests can drive one directly.
 *
 * Inputs are processed in arrival order, in groups: every input that arrived while the previous
 * group was being carried out steps the core, and then the host follows the core/host contract
 * (protocols/consensus/core.ts) once for the whole group: write the persist ops in one synced
 * transaction, then sign and send the messages, then arm timers and hand over executions,
 * replies, reads and evidence. Grouping is the group commit of databases: one disk sync and one
 * round of signing serve every input of the group, so a replica's throughput is not bounded by
 * its disk's sync latency. Incoming bytes are decoded, checked against the protocol's schema
 * and verified — the envelope's signature and every signature nested in certificates — before
 * the core sees them; what fails is counted and dropped. Consensus telemetry (spans per log
 * position and per step, replication metrics) is fed from here: see consensus-telemetry.ts.
 */
import { context, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { type Clock, type TimerHandle } from '../runtime/clock.js';
import {
  decode,
  digestOf,
  encode,
  hex,
  signedSchema,
  type Applied,
  type Command,
  type ConsensusConfig,
  type ConsensusState,
  type Core,
  type Digest,
  type Evidence,
  type Input,
  type NodeId,
  type NodeStatus,
  type ProtocolDefinition,
  type ReadState,
  type Ready,
  type Reply,
  type Signed,
  type SignedPosition,
} from '../protocols/consensus/index.js';
import { answerClient, corrupt, remember, type ByzantineMode, type Transmission } from '../protocols/sim/byzantine.js';
import { Prng } from '../protocols/sim/prng.js';
import { replicaTelemetry, type ReplicaInstrumentation } from './consensus-telemetry.js';
import { nextTurn, within, type Measure } from '../runtime/index.js';
import type { ReplicaStore } from './replica-store.js';
import { RecentMap } from './recent-map.js';

/** How a replica signs and checks protocol messages. Both may be asynchronous (the crypto pool). */
export interface ReplicaCrypto {
  /** This replica's signature over a message body's digest. */
  sign(digest: Digest): Promise<Uint8Array> | Uint8Array;
  /**
   * Whether `signature` is `node`'s over `digest`: on a message's envelope (`nested` undefined), or
   * on a vote inside a certificate, standing at `nested`, which may have been signed with a key
   * the member has since rotated away from (crypto/key-directory.ts) if it stands where the member
   * had signed up to when it did (Core.signedThrough). Undefined when no verdict can be had now
   * (the verifier is restarting): the envelope is dropped unchecked and counted as `unverified`.
   * A throw is a fault of the replica.
   */
  verify(node: NodeId, digest: Digest, signature: Uint8Array, nested: SignedPosition | undefined): Promise<boolean | undefined> | boolean | undefined;
}

/** What the host reports to its owner. All optional. */
export interface ReplicaListener {
  /** An execution, with the context of its position's span (`undefined` when nothing is recorded), to carry on its trace. */
  applied?(applied: Applied, trace: Context | undefined): void;
  /** Replies to clients for one log position (a batch's commands share one), sent together with that position's trace context. */
  replies?(replies: readonly Reply[]): void;
  read?(read: ReadState): void;
  evidence?(evidence: Evidence): void;
  /** The core broke an invariant or the store failed: the host has stopped. */
  fault?(error: unknown): void;
}

/** What a replica host is built from. */
export interface ReplicaHostOptions<M extends { readonly type: string }> {
  readonly definition: ProtocolDefinition<M>;
  readonly config: ConsensusConfig;
  readonly stateMachine: ConsensusState;
  readonly store: ReplicaStore;
  readonly crypto: ReplicaCrypto;
  /** Delivers an encoded envelope, whose body has type `type`, to a peer (never to this replica: loopbacks stay inside). */
  readonly send: (to: NodeId, bytes: Uint8Array, type: string) => void;
  /** Drives the core's timers. */
  readonly clock: Clock;
  /**
   * The time handed to the core, ms since the epoch (default `Date.now`). Not `clock.now()`: that
   * is `performance.now()`, whose origin is each thread's own start, while a core compares its
   * time with the proposer's (PBFT's and HotStuff's clock-skew checks) and writes it into receipts.
   */
  readonly wallClock?: () => number;
  /** Draws timer jitter (default Math.random). */
  readonly random?: () => number;
  /** Seeds the choices of a Byzantine mode (which peers get which variant), so a chaos run can be replayed. */
  readonly seed?: number;
  readonly listener?: ReplicaListener;
  /**
   * Runs one synchronous stretch of the host's own work (stepping the core with a group of
   * inputs, carrying out its outputs) and accounts for its time; an actor passes its
   * `ActorContext.measure`, so that the work its messages cause counts against its tick budget
   * as much as its handlers. Default: just runs it.
   */
  readonly measure?: Measure;
}

/** A message on its way out, with the trace its sending continues. */
type Traced<M> = Transmission<M> & { readonly trace: Context | undefined };

/** Counters of what a host refused before its core saw it. */
export interface ReplicaHostStats {
  readonly steps: number;
  readonly malformed: number;
  readonly forged: number;
  readonly nonMember: number;
  /** Envelopes dropped because their signatures could not be checked (the verifier was restarting). */
  readonly unverified: number;
}

/** An input waiting to be stepped: the context it arrived in, and for a timer's firing, the operations on the timer by then. */
interface Waiting<M> {
  readonly input: Input<M>;
  readonly arrival: Context | undefined;
  readonly timerOps?: number;
}

/** Verdicts on certificates' votes kept (the latest this many at least, twice as many at most), so a vote relayed again is checked once. */
const VERDICT_CACHE = 4096;

/** A consensus core with real signatures, timers and storage around it. */
export class ReplicaHost<M extends { readonly type: string }> {
  readonly config: ConsensusConfig;
  readonly #options: ReplicaHostOptions<M>;
  readonly #envelope;
  readonly #core: Core<M>;
  readonly #timers = new Map<string, TimerHandle>();
  /** Per timer, the count of operations on it: a firing is stale once the core set or cancelled the timer again. */
  readonly #timerOps = new Map<string, number>();
  readonly #verdicts = new RecentMap<string, boolean>(VERDICT_CACHE);
  #queue: Promise<void> = Promise.resolve();
  /** Inputs waiting for the next group, and the promise that group settles. */
  #inbox: Waiting<M>[] = [];
  #nextGroup: Promise<void> | undefined;
  #stopped = false;
  #steps = 0;
  #byzantine: ByzantineMode | null = null;
  readonly #prng: Prng;
  /** Envelopes received, for a replaying replica to send again. */
  readonly #memory: Uint8Array[] = [];
  readonly #refused = { malformed: 0, forged: 0, nonMember: 0, unverified: 0 };
  readonly #telemetry: ReplicaInstrumentation<M>;
  readonly #measure: Measure;
  /** The state hash the core last reported executing or installing; before any, the state machine's own. */
  #executedHash: Digest | undefined;

  private constructor(options: ReplicaHostOptions<M>) {
    this.#options = options;
    this.config = options.config;
    this.#envelope = signedSchema(options.definition.message);
    this.#prng = new Prng(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.#telemetry = replicaTelemetry(options.definition, options.config);
    this.#measure = options.measure ?? ((work) => work());
    this.#core = options.definition.create({ config: options.config, stateMachine: options.stateMachine, durable: options.store.load() });
  }

  /**
   * Builds the core from the store's records and carries out its first outputs (timers, the
   * re-sends a restart requires).
   * @throws {StorageError} when the store is damaged; {@link ConsensusError} `CORRUPT_STATE` when its records contradict each other.
   */
  static async start<M extends { readonly type: string }>(options: ReplicaHostOptions<M>): Promise<ReplicaHost<M>> {
    const host = new ReplicaHost(options);
    await host.#enqueue(() => host.#carryOut());
    return host;
  }

  /** The core's status. */
  status(): NodeStatus {
    return this.#core.status();
  }

  /** How far what this replica has signed reaches (Core.signedThrough). */
  signedThrough(): SignedPosition {
    return this.#core.signedThrough();
  }

  /**
   * Turns this replica Byzantine in `mode` (the simulator's modes, protocols/sim/byzantine.ts), or
   * honest again with `null`. It keeps its honest core and its own key only: what it sends in
   * another member's name fails verification at the receiver.
   */
  byzantine(mode: ByzantineMode | null): void {
    this.#byzantine = mode;
    this.#memory.length = 0;
  }

  /** The state machine's hash, as of the last position executed (not part-way through a paused batch). */
  stateHash(): Digest {
    return this.#executedHash ?? this.#options.stateMachine.hash();
  }

  /** Refusal counters. */
  stats(): ReplicaHostStats {
    return { steps: this.#steps, ...this.#refused };
  }

  /** The core, for protocol-specific calls (Raft's readIndex, membership changes); follow with {@link flush}. */
  get core(): Core<M> {
    return this.#core;
  }

  /** Carries out what a direct call on {@link core} produced. */
  flush(): Promise<void> {
    return this.#enqueue(() => this.#carryOut());
  }

  /** A client's request; its trace (the active context) continues in the position that orders it. */
  request(command: Command): Promise<void> {
    return this.#input({ kind: 'request', command }, context.active());
  }

  /** Bytes from a peer: decoded, validated and verified before the core sees them. Their trace is the active context's. */
  async receive(bytes: Uint8Array): Promise<void> {
    if (this.#stopped) return;
    const arrival = context.active();
    let envelope: Signed<M>;
    try {
      envelope = this.#envelope.parse(decode(bytes));
    } catch {
      this.#refused.malformed++;
      return;
    }
    const nested = this.#options.definition.nested(envelope.body);
    if ([envelope, ...nested].some((s) => !this.config.members.includes(s.from))) {
      this.#refused.nonMember++;
      return;
    }
    const verdicts = await Promise.all([this.#verifyEnvelope(envelope), ...nested.map((s) => this.#verifyNested(s))]);
    if (verdicts.includes(undefined)) {
      // No verdict (the verifier is restarting): the envelope is lost as on a lossy link, which
      // every protocol here recovers from by retransmission. Counting it as forged would accuse a
      // correct peer; failing would crash this replica with its verifier.
      this.#refused.unverified++;
      return;
    }
    if (verdicts.includes(false)) {
      this.#refused.forged++;
      this.#telemetry.refusedSignature();
      return;
    }
    if (this.#byzantine === 'replay') remember(this.#memory, bytes);
    await this.#input({ kind: 'message', message: envelope }, arrival);
  }

  /** Stops: disarms every timer; inputs still queued are dropped. */
  async stop(): Promise<void> {
    this.#disarm();
    await this.#queue;
    this.#telemetry.stop();
  }

  /** Takes no more inputs and disarms every timer. */
  #disarm(): void {
    this.#stopped = true;
    for (const handle of this.#timers.values()) this.#options.clock.clearTimer(handle);
    this.#timers.clear();
  }

  /**
   * An envelope's verdict is not kept here: it depends on the keys that sign envelopes, which
   * change when a member adopts a rotated key, and only the verifier hears of that (it clears its
   * own verdicts then).
   */
  #verifyEnvelope(signed: Signed<M>): Promise<boolean | undefined> | boolean | undefined {
    return this.#options.crypto.verify(signed.from, digestOf(signed.body), signed.signature, undefined);
  }

  /** A certificate's votes are what is seen again and again: their verdicts are kept. */
  async #verifyNested(signed: Signed<SignedPosition>): Promise<boolean | undefined> {
    const digest = digestOf(signed.body);
    // Keyed by signer, digest and signature: a replica re-using its own valid signature under
    // another member's name must miss the cache. The digest covers the body, and so where it stands.
    const key = `${signed.from}:${hex(digest)}:${hex(signed.signature)}`;
    const cached = this.#verdicts.get(key);
    if (cached !== undefined) return cached;
    const { view, sequence } = signed.body;
    const at = { ...(view === undefined ? {} : { view }), ...(sequence === undefined ? {} : { sequence }) };
    const ok = await this.#options.crypto.verify(signed.from, digest, signed.signature, at);
    if (ok !== undefined) this.#verdicts.set(key, ok);
    return ok;
  }

  #input(input: Input<M>, arrival: Context | undefined, timerOps?: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#inbox.push(timerOps === undefined ? { input, arrival } : { input, arrival, timerOps });
    this.#nextGroup ??= this.#enqueue(() => this.#stepInbox());
    return this.#nextGroup;
  }

  /**
   * Steps the waiting inputs, in stretches: one for the group, unless the core pauses executing
   * (core.ts) after one of them; the core then gets `resume`, a stretch per turn of the event loop,
   * before the rest of the group. Inputs arriving meanwhile form the next group, queued behind
   * this one and whatever else was queued (a `flush`).
   */
  async #stepInbox(): Promise<void> {
    this.#nextGroup = undefined;
    const group = this.#inbox;
    this.#inbox = [];
    const now = this.#options.wallClock ?? Date.now;
    let stepped = 0;
    while (!this.#stopped) {
      if (this.#core.executionPaused === true) {
        await nextTurn();
        if (this.#stopped) return;
        await this.#measure(() => {
          this.#core.step({ kind: 'resume' }, now());
          return this.#carryOut();
        });
        continue;
      }
      if (stepped === group.length) return;
      await this.#measure(() => {
        const at = now();
        const from = stepped;
        while (stepped < group.length && this.#core.executionPaused !== true) {
          const { input, arrival, timerOps } = group[stepped] as Waiting<M>;
          // A firing is checked against every timer operation before it, as the simulator does:
          // one queued behind a step that set or cancelled its timer again is void. So it opens a
          // stretch of its own, after the operations of the inputs before it are carried out.
          if (timerOps !== undefined && stepped > from) break;
          stepped++;
          if (timerOps !== undefined && input.kind === 'timeout' && this.#timerOps.get(input.timer) !== timerOps) continue;
          this.#telemetry.stepping(input, arrival);
          this.#core.step(input, at);
          this.#steps++;
        }
        return this.#carryOut();
      });
    }
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    // Outside whichever trace enqueued it: the telemetry says which context each thing is done in.
    const next = this.#queue.then(() => context.with(ROOT_CONTEXT, async () => {
      if (this.#stopped) return;
      try {
        await work();
      } catch (error) {
        this.#disarm();
        this.#telemetry.stop();
        this.#options.listener?.fault?.(error);
      }
    }));
    this.#queue = next;
    return next;
  }

  /**
   * The contract's order: persist, then sign and send, then timers and the rest. Each stretch
   * between two awaits is measured on its own.
   */
  async #carryOut(): Promise<void> {
    const [ready, persisted] = this.#measure(() => {
      const ready = this.#core.ready();
      return [ready, this.#options.store.apply(ready.persist)] as const;
    });
    await persisted;
    // One mode for the whole step, even if the chaos runner changes it while the step signs.
    const mode = this.#byzantine;
    const [transmissions, signing] = this.#measure(() => this.#sign(ready.messages, mode));
    const signatures = await signing;
    this.#measure(() => this.#finish(ready, mode, transmissions, signatures));
  }

  /**
   * Starts signing the outgoing messages, all at once (the signer pipelines them). A Byzantine
   * replica's forgeries are signed with its own key, which is all it has.
   */
  #sign(messages: Ready<M>['messages'], mode: ByzantineMode | null): readonly [Traced<M>[], Promise<Uint8Array[]>] {
    const self = this.config.nodeId;
    const transmissions = messages.flatMap((out) => {
      const trace = this.#telemetry.sending(out.body);
      const sent = mode === null ? [{ from: self, to: out.to, body: out.body }] : corrupt(mode, self, out, this.#options.definition.adversary, this.config.members, this.#prng);
      return sent.map((tx) => ({ ...tx, trace }));
    });
    // A signature covers the body, not its recipients: bodies alike (Raft's appends to followers in
    // step, for one) are signed once.
    const signatures = new Map<string, Promise<Uint8Array>>();
    const signatureOf = (tx: Traced<M>): Promise<Uint8Array> => {
      const digest = digestOf(tx.body);
      const key = hex(digest);
      let signature = signatures.get(key);
      if (signature === undefined) {
        signature = Promise.resolve(within(tx.trace, () => this.#options.crypto.sign(digest)));
        signatures.set(key, signature);
      }
      return signature;
    };
    return [transmissions, Promise.all(transmissions.map(signatureOf))];
  }

  /** Sends the signed messages in order, then sets timers and reports what the step produced. */
  #finish(ready: Ready<M>, mode: ByzantineMode | null, transmissions: readonly Traced<M>[], signatures: readonly Uint8Array[]): void {
    const { send, clock, listener } = this.#options;
    const self = this.config.nodeId;
    transmissions.forEach((tx, i) => {
      const envelope: Signed<M> = { from: tx.from, body: tx.body, signature: signatures[i] as Uint8Array };
      const bytes = encode(envelope);
      within(tx.trace, () => {
        for (const to of tx.to) {
          if (to !== self) send(to, bytes, tx.body.type);
          else if (tx.from === self) void this.#input({ kind: 'message', message: envelope }, tx.trace);
        }
      });
    });
    if (mode === 'replay' && this.#memory.length > 0 && this.#prng.chance(0.5)) {
      send(this.#prng.pick(this.config.members.filter((id) => id !== self)), this.#prng.pick(this.#memory), 'replay');
    }
    for (const applied of ready.applied) this.#executedHash = applied.stateHash;
    // A host stopped while this step's writes were under way arms nothing: a timer would outlive it.
    for (const op of this.#stopped ? [] : ready.timers) {
      const ops = (this.#timerOps.get(op.timer) ?? 0) + 1;
      this.#timerOps.set(op.timer, ops);
      const armed = this.#timers.get(op.timer);
      if (armed !== undefined) clock.clearTimer(armed);
      this.#timers.delete(op.timer);
      if (op.kind === 'cancel') continue;
      const jitter = op.jitterMs === undefined ? 0 : (this.#options.random ?? Math.random)() * op.jitterMs;
      const handle = clock.setTimer(() => {
        if (this.#timers.get(op.timer) !== handle) return;
        this.#timers.delete(op.timer);
        void this.#input({ kind: 'timeout', timer: op.timer }, undefined, ops);
      }, op.afterMs + jitter);
      this.#timers.set(op.timer, handle);
    }
    for (const applied of ready.applied) listener?.applied?.(applied, this.#telemetry.positionContext(applied.position));
    if (mode !== 'silent') {
      for (const run of byPosition(ready.replies)) within(this.#telemetry.positionContext(run.position), () => listener?.replies?.(mode === null ? run.replies : run.replies.map((reply) => answerClient(mode, reply))));
    }
    for (const read of ready.reads) listener?.read?.(read);
    // A Byzantine replica's accusations are worth nothing.
    const evidence = mode === null ? ready.evidence : [];
    for (const each of evidence) listener?.evidence?.(each);
    this.#telemetry.carriedOut(ready, evidence, this.#core.status());
  }
}

/** Runs of consecutive replies for the same position. */
function byPosition(replies: readonly Reply[]): { readonly position: number; readonly replies: Reply[] }[] {
  const runs: { readonly position: number; readonly replies: Reply[] }[] = [];
  for (const reply of replies) {
    const last = runs[runs.length - 1];
    if (last?.position === reply.position) last.replies.push(reply);
    else runs.push({ position: reply.position, replies: [reply] });
  }
  return runs;
}
