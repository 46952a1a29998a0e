/**
 * Consensus telemetry of a hosted replica, as registry/consensus.yaml and the `consensus.*`
 * metrics of registry/metrics.yaml declare it. Cores are pure and report nothing: their host shows
 * this what passes through it — the messages the core steps on, the bodies it sends, the positions
 * it executes, the evidence it proves, its status after each step — and the protocol's
 * {@link PositionReader} says what a body means for which log position.
 *
 * Spans: one per log position (`consensus.pbft.round`, `consensus.hotstuff.block`,
 * `consensus.raft.log_entry`) from the first proposal seen to its execution or abandonment, with a
 * `consensus.state_transition` child when it executes; one `consensus.step` per group of inputs the
 * host steps and carries out. With no SDK registered spans are non-recording and instruments
 * no-ops: attribute objects are built for recording spans only, metric attributes once per replica.
 *
 * Traces follow commands. A position proposed here is a child of the arrival of the first of its
 * commands (the client's `consensus.command` trace) and links to the others'; a position first
 * seen in a peer's message is a child of that message's arrival; everything sent about a position
 * goes out in the position's context, so the next replica continues the same trace. A step is a
 * root linked to the traced inputs it serves, the fan-in of a group commit, and what it sends about
 * no position in particular (votes, acknowledgements, checkpoints, view changes) goes out in its
 * trace, not in a command's. A position proposed with no traced command (an empty block, a
 * leader's no-op) starts a trace of its own. So a command's trace holds the agreement on its
 * position and nothing of its neighbours'.
 */
import { ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type SpanContext } from '@opentelemetry/api';
import {
  hex,
  storedStateRecord,
  type AppliedEntry,
  type AppliedSnapshot,
  type Command,
  type ConsensusConfig,
  type Evidence,
  type Input,
  type NodeId,
  type NodeStatus,
  type ProtocolDefinition,
  type Ready,
  type StoredStateRecord,
} from '../protocols/consensus/index.js';
import { CONSENSUS_PHASES, type ConsensusPhase, type PositionReader, type PositionSighting } from '../protocols/consensus/core.js';
import { INSTRUMENTED, instrumentsOf, tracerOf } from '../runtime/index.js';
import { RecentMap } from './recent-map.js';

/** Instrumentation scope of replication telemetry, replicas' and clients'. */
export const CONSENSUS_SCOPE = 'knhk.consensus';

const tracer = tracerOf(CONSENSUS_SCOPE);

/** Most links a span keeps to the traced inputs or commands it serves beside its parent. */
const MAX_LINKS = 16;

/** Commands whose arrival is remembered until a proposal of them is seen: the latest this many at least, twice as many at most. */
const MAX_AWAITING = 2048;

/** The valid span context of `ctx`, if it has one. */
function spanContextOf(ctx: Context | undefined): SpanContext | undefined {
  const sc = ctx === undefined ? undefined : trace.getSpanContext(ctx);
  return sc !== undefined && trace.isSpanContextValid(sc) ? sc : undefined;
}

/** The distinct span contexts of `traced`, in order, the invalid and absent left out. */
function spanContexts(traced: Iterable<Context | undefined>): SpanContext[] {
  const seen = new Map<string, SpanContext>();
  for (const ctx of traced) {
    const sc = spanContextOf(ctx);
    if (sc !== undefined && !seen.has(sc.spanId)) seen.set(sc.spanId, sc);
  }
  return [...seen.values()];
}

/** Starts `name` as a child of the first of `causes` and linked to the others; a root when there are none. */
function startCaused(name: string, causes: readonly SpanContext[]): Span {
  const [parent, ...others] = causes;
  const links: Link[] = others.slice(0, MAX_LINKS).map((context) => ({ context }));
  return tracer().startSpan(name, links.length === 0 ? undefined : { links }, parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parent));
}

/** Starts a step: a root linked to the traced input it serves first (the host links the others as it steps them). */
function startStep(input: SpanContext | undefined): Span {
  return tracer().startSpan('consensus.step', input === undefined ? undefined : { links: [{ context: input }] }, ROOT_CONTEXT);
}

/** The context to send or reply in under `span`, or `undefined` when the span records nothing (no SDK: nothing to carry). */
function contextOf(span: Span): Context | undefined {
  return span.isRecording() ? trace.setSpan(ROOT_CONTEXT, span) : undefined;
}

const commandKey = (command: Command): string => `${command.client}\u0000${command.timestamp}`;

const POSITION_SPANS = { pbft: 'consensus.pbft.round', hotstuff: 'consensus.hotstuff.block', raft: 'consensus.raft.log_entry' } as const;

/**
 * Positions followed at once; past it the one followed longest is given up. Cores bound what they
 * keep, but the host sees a message before its core judges it, and a Byzantine proposer could
 * otherwise name new positions without end.
 */
const MAX_FOLLOWED = 1024;

/** From 1 KiB to 64 MiB, four times larger each: from the changes of a few keys to a large state whole. */
const STORED_BYTES_BUCKETS = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => 4 ** k * 256);

const rank = (phase: ConsensusPhase): number => CONSENSUS_PHASES.indexOf(phase);
const COMMITTED = rank('commit');

const instruments = instrumentsOf(CONSENSUS_SCOPE, (meter) => ({
  throughput: meter.createCounter('consensus.throughput', { description: 'Commands committed and executed by a replica.', unit: '{command}' }),
  commandsFailed: meter.createCounter('consensus.command.failed', { description: "Commands a replica's state machine threw on, each answered with an empty response.", unit: '{command}' }),
  committed: meter.createCounter('consensus.proposal.committed', { description: 'Log positions a replica saw committed.', unit: '{proposal}' }),
  applied: meter.createCounter('consensus.proposal.applied', { description: 'Log positions a replica executed on its state machine.', unit: '{proposal}' }),
  pending: meter.createUpDownCounter('consensus.proposal.pending', { description: 'Proposals a leader or primary has made that are not committed yet.', unit: '{proposal}' }),
  failed: meter.createCounter('consensus.proposal.failed', { description: 'Proposals abandoned without being committed.', unit: '{proposal}' }),
  viewChanges: meter.createCounter('consensus.view_changes', { description: 'Moves of a replica to a higher view or term.', unit: '{view_change}' }),
  leaderChanges: meter.createCounter('consensus.leader.changes', { description: 'Times the leader a replica knows became a different replica.', unit: '{change}' }),
  hasLeader: meter.createGauge('consensus.has_leader', { description: '1 when a replica knows the leader of its view or term, 0 otherwise.', unit: '1' }),
  byzantine: meter.createCounter('consensus.byzantine_detected', {
    description: 'Misbehaviour a replica proved with signed messages, or messages it refused for an invalid signature.',
    unit: '{evidence}',
  }),
  stateStored: meter.createHistogram('consensus.state.stored', {
    description: 'Bytes of replicated state a replica stored at a checkpoint or snapshot: the whole state, or its changes since the last one stored.',
    unit: 'By',
    advice: { explicitBucketBoundaries: STORED_BYTES_BUCKETS },
  }),
}));

type Instruments = ReturnType<typeof instruments>;

/** A log position this replica follows. */
interface Position {
  readonly span: Span;
  readonly sequence: number;
  readonly view: number;
  phase: ConsensusPhase;
  /** Replicas whose messages about the position in its view were seen, this one's own included. */
  readonly heard: Set<NodeId>;
  /** Signatures of the largest certificate seen proving a phase of it. */
  certified: number;
  /** It committed here (its finality is recorded). */
  final: boolean;
  /** This replica proposed it, so it is pending until it commits or ends. */
  readonly proposedHere: boolean;
}

/** What a host feeds its replica's telemetry. */
export type ReplicaInstrumentation<M extends { readonly type: string }> = Pick<
  ReplicaTelemetry<M>,
  'stepping' | 'sending' | 'positionContext' | 'carriedOut' | 'refusedSignature' | 'stop'
>;

const UNINSTRUMENTED: ReplicaInstrumentation<never> = {
  stepping() {},
  sending: () => undefined,
  positionContext: () => undefined,
  carriedOut() {},
  refusedSignature() {},
  stop() {},
};

/** The telemetry of a replica, or nothing at all when instrumentation is compiled out ({@link INSTRUMENTED}). */
export function replicaTelemetry<M extends { readonly type: string }>(definition: ProtocolDefinition<M>, config: ConsensusConfig): ReplicaInstrumentation<M> {
  return INSTRUMENTED ? new ReplicaTelemetry(definition, config) : (UNINSTRUMENTED as ReplicaInstrumentation<M>);
}

/** The consensus telemetry of one replica, fed by its host. */
export class ReplicaTelemetry<M extends { readonly type: string }> {
  readonly #self: NodeId;
  readonly #quorum: number;
  readonly #reader: PositionReader<M> | undefined;
  readonly #spanName: string;
  /** `consensus.algorithm` and `consensus.node_id`: every metric's attributes. */
  readonly #labels: Attributes;
  readonly #forgedLabels: Attributes;
  readonly #storedLabels: Readonly<Record<StoredStateRecord['record'], Attributes>>;
  readonly #followed = new Map<number, Position>();
  /** Where each command not yet seen proposed arrived here (the span handling its request), by client and timestamp. */
  readonly #awaiting = new RecentMap<string, SpanContext>(MAX_AWAITING);
  #step: Span | undefined;
  /** The spans the step under way links to (the inputs it steps arrived in). */
  #stepLinks = new Set<string>();
  /** Highest position executed or transferred: what a message says about positions up to it is old news. */
  #executed = 0;
  #view: number | undefined;
  #leader: NodeId | undefined;
  /** The has-leader value last recorded, and the instruments it went to (another meter provider needs it again). */
  #gauged: { readonly to: Instruments; readonly value: number } | undefined;

  /** Telemetry of the replica `config` describes, running `definition`. */
  constructor(definition: ProtocolDefinition<M>, config: ConsensusConfig) {
    this.#self = config.nodeId;
    this.#quorum = config.quorumSize;
    this.#reader = definition.positions;
    this.#spanName = POSITION_SPANS[config.algorithm];
    this.#labels = { 'consensus.algorithm': config.algorithm, 'consensus.node_id': config.nodeId };
    this.#forgedLabels = { ...this.#labels, 'consensus.evidence.kind': 'invalid-signature' };
    this.#storedLabels = { snapshot: { ...this.#labels, 'consensus.state.record': 'snapshot' }, changes: { ...this.#labels, 'consensus.state.record': 'changes' } };
  }

  /**
   * An input is about to step the core: the step begins, or the step under way links it too, and
   * what its message shows is noted. `arrival` is the context it arrived in (the span that handled
   * the message or request carrying it), if it was traced.
   */
  stepping(input: Input<M>, arrival: Context | undefined): void {
    const traced = spanContextOf(arrival);
    if (this.#step === undefined) {
      this.#step = startStep(traced);
      this.#stepLinks = new Set(traced === undefined ? [] : [traced.spanId]);
    } else if (traced !== undefined && this.#stepLinks.size < MAX_LINKS && !this.#stepLinks.has(traced.spanId)) {
      this.#step.addLink({ context: traced });
      this.#stepLinks.add(traced.spanId);
    }
    if (input.kind === 'message') this.#read(input.message.from, input.message.body, arrival);
    else if (input.kind === 'request') this.#arrived(input.command, arrival);
  }

  /**
   * The host is about to sign and send `body`, which the core asked for: what it shows is noted,
   * and the answer is the context to send it in — the span of the position it is about, else the
   * step's — or `undefined` when nothing is recorded.
   */
  sending(body: M): Context | undefined {
    const position = this.#read(this.#self, body, undefined);
    return contextOf(position?.span ?? this.#currentStep());
  }

  /** The context of what the host does for log position `sequence` (a reply to its client): its span's, else the step's. */
  positionContext(sequence: number): Context | undefined {
    return contextOf(this.#followed.get(sequence)?.span ?? this.#currentStep());
  }

  /**
   * The host carried out what the core asked after a step (or after a direct call on it): `ready`,
   * with the `evidence` it stands by, left the core in `status`. Ends the step.
   */
  carriedOut(ready: Ready<M>, evidence: readonly Evidence[], status: NodeStatus): void {
    const step = this.#currentStep();
    this.#step = undefined;
    for (const applied of ready.applied) {
      if (applied.kind === 'entry') this.#executedEntry(applied);
      else this.#transferred(applied);
    }
    const m = instruments();
    for (const e of evidence) m.byzantine.add(1, { ...this.#labels, 'consensus.evidence.kind': e.kind, 'consensus.evidence.node_id': e.node });
    for (const op of ready.persist) {
      const stored = storedStateRecord(op.key, op.value);
      if (stored !== undefined) m.stateStored.record(stored.bytes, this.#storedLabels[stored.record]);
    }
    this.#moved(m, status, step);
    this.#sweep(status);
    if (step.isRecording()) step.setAttributes({ ...this.#labels, 'consensus.view': status.view });
    step.end();
  }

  /** A message was refused because a signature in it does not verify under the sender's key. */
  refusedSignature(): void {
    instruments().byzantine.add(1, this.#forgedLabels);
  }

  /** The host stopped: the step under way and every position followed end where they got to. */
  stop(): void {
    for (const position of this.#followed.values()) this.#end(position);
    this.#step?.end();
    this.#step = undefined;
  }

  /** The step under way; one begun by a direct call on the core (a restart's first outputs) has no inputs. */
  #currentStep(): Span {
    if (this.#step === undefined) {
      this.#step = startStep(undefined);
      this.#stepLinks = new Set();
    }
    return this.#step;
  }

  /** A client's request arrived in `arrival`: a position proposed here with the command continues its trace. */
  #arrived(command: Command, arrival: Context | undefined): void {
    const traced = spanContextOf(arrival);
    if (traced === undefined) return;
    this.#awaiting.set(commandKey(command), traced);
  }

  /** Reads `body` from `from`, which arrived in `arrival`; answers the first single position it concerns that is followed. */
  #read(from: NodeId, body: M, arrival: Context | undefined): Position | undefined {
    if (this.#reader === undefined) return undefined;
    let about: Position | undefined;
    for (const sighting of this.#reader.sightings(body)) {
      const position = this.#sighted(from, sighting, arrival);
      about ??= position;
    }
    return about;
  }

  /** The causes of a position first seen in `s` from `from`: the arrival of the message showing it, or, for a proposal of this replica's, of its commands. */
  #causes(from: NodeId, s: PositionSighting, arrival: Context | undefined): SpanContext[] {
    if (from !== this.#self) return spanContexts([arrival]);
    const causes: SpanContext[] = [];
    for (const command of s.commands ?? []) {
      const traced = this.#awaiting.get(commandKey(command));
      if (traced !== undefined && !causes.some((c) => c.spanId === traced.spanId)) causes.push(traced);
    }
    return causes;
  }

  #sighted(from: NodeId, s: PositionSighting, arrival: Context | undefined): Position | undefined {
    if (s.sequence <= this.#executed) return undefined;
    if (s.prefix === true) {
      for (const position of this.#followed.values()) if (position.sequence <= s.sequence) this.#heard(position, from, s);
      return undefined;
    }
    let position = this.#followed.get(s.sequence);
    if (position !== undefined && s.view !== undefined && s.view !== position.view) {
      // A proposal for the position in a later view replaces the one followed: a PBFT round
      // re-proposed after a view change (§4.4), a HotStuff fork, a Raft entry a new leader
      // overwrites (§5.3). Messages of another view about it are not about what is followed.
      if (s.value === undefined || s.view < position.view) return undefined;
      this.#giveUp(position);
      position = undefined;
    }
    if (position === undefined) {
      if (s.value === undefined || s.view === undefined) return undefined;
      position = this.#follow(s.sequence, s.view, s.phase, from === this.#self && s.value === 'proposed', this.#causes(from, s, arrival));
    }
    for (const command of s.commands ?? []) this.#awaiting.delete(commandKey(command));
    this.#heard(position, from, s);
    return position;
  }

  #heard(position: Position, from: NodeId, s: PositionSighting): void {
    position.heard.add(from);
    if (s.votes !== undefined) position.certified = Math.max(position.certified, s.votes);
    // A replica's own message shows how far it got; a certificate takes whoever holds it there too.
    if (from === this.#self || s.votes !== undefined) this.#reach(position, s.phase);
  }

  #follow(sequence: number, view: number, phase: ConsensusPhase, proposedHere: boolean, causes: readonly SpanContext[]): Position {
    if (this.#followed.size >= MAX_FOLLOWED) this.#giveUp(this.#followed.values().next().value as Position);
    // Not a child of the step: a position outlives the steps and messages that move it along.
    const span = startCaused(this.#spanName, causes);
    const position: Position = { span, sequence, view, phase, heard: new Set(), certified: 0, final: false, proposedHere };
    this.#followed.set(sequence, position);
    if (proposedHere) instruments().pending.add(1, this.#labels);
    return position;
  }

  #reach(position: Position, phase: ConsensusPhase): void {
    if (rank(phase) > rank(position.phase)) position.phase = phase;
    if (position.final || rank(position.phase) < COMMITTED) return;
    position.final = true;
    const m = instruments();
    m.committed.add(1, this.#labels);
    if (position.proposedHere) m.pending.add(-1, this.#labels);
    // Finality is an event of the position's own span: the moment its round, block or entry committed here.
    if (position.span.isRecording()) {
      position.span.addEvent('consensus.finality', {
        ...this.#labels,
        'consensus.view': position.view,
        'consensus.sequence': position.sequence,
        'consensus.quorum_size': this.#quorum,
        'consensus.received_votes': votesOf(position),
      });
    }
  }

  #executedEntry(entry: AppliedEntry): void {
    let position = this.#followed.get(entry.position);
    if (position !== undefined && position.view !== entry.view) {
      this.#giveUp(position);
      position = undefined;
    }
    // A position executed without its proposal seen here (replayed from the store after a
    // restart, fetched by a replica that fell behind) is followed from its execution.
    position ??= this.#follow(entry.position, entry.view, 'commit', false, []);
    if (entry.certificate !== undefined) position.certified = Math.max(position.certified, entry.certificate.signatures.length);
    this.#reach(position, 'execute');
    // The core executed the position inside its step, so the host cannot time it: the span marks when the host learnt of it.
    const transition = tracer().startSpan('consensus.state_transition', undefined, trace.setSpan(ROOT_CONTEXT, position.span));
    if (transition.isRecording()) {
      transition.setAttributes({
        ...this.#labels,
        'consensus.view': entry.view,
        'consensus.sequence': entry.position,
        'consensus.state_hash_before': hex(entry.stateHashBefore),
        'consensus.state_hash_after': hex(entry.stateHash),
      });
    }
    transition.end();
    const m = instruments();
    m.applied.add(1, this.#labels);
    if (entry.commands.length > 0) m.throughput.add(entry.commands.length, this.#labels);
    if (entry.failed > 0) m.commandsFailed.add(entry.failed, this.#labels);
    this.#end(position);
    this.#executed = Math.max(this.#executed, entry.position);
  }

  /** A state transfer: the positions it covers end where they got to (they committed elsewhere). */
  #transferred(snapshot: AppliedSnapshot): void {
    for (const position of this.#followed.values()) if (position.sequence <= snapshot.position) this.#end(position);
    instruments().applied.add(1, this.#labels);
    this.#executed = Math.max(this.#executed, snapshot.position);
  }

  /** View or term, leader and has-leader after a step. */
  #moved(m: Instruments, status: NodeStatus, step: Span): void {
    const hasLeader = status.leader === null ? 0 : 1;
    if (this.#gauged?.to !== m || this.#gauged.value !== hasLeader) {
      m.hasLeader.record(hasLeader, this.#labels);
      this.#gauged = { to: m, value: hasLeader };
    }
    if (status.leader !== null) {
      if (this.#leader !== undefined && this.#leader !== status.leader) m.leaderChanges.add(1, this.#labels);
      this.#leader = status.leader;
    }
    const before = this.#view;
    this.#view = status.view;
    if (before === undefined || status.view <= before) return;
    m.viewChanges.add(1, this.#labels);
    // The step's span, not a position's: the move comes from a step (a timer, a view change, a
    // higher term heard) that need not concern any position this replica follows.
    if (step.isRecording()) {
      step.addEvent('consensus.view_change', {
        ...this.#labels,
        'consensus.view': status.view,
        ...(status.leader === null ? {} : { 'consensus.leader_id': status.leader }),
      });
    }
  }

  #sweep(status: NodeStatus): void {
    this.#executed = Math.max(this.#executed, status.commitIndex);
    const viewBound = this.#reader?.viewBound === true;
    for (const position of this.#followed.values()) {
      // Passed by execution without being executed here: another value took the position (a HotStuff fork).
      if (position.sequence <= this.#executed) this.#giveUp(position);
      // Leaving a view abandons its rounds that had not committed (PBFT §4.4).
      else if (viewBound && position.view < status.view && !position.final) this.#giveUp(position);
    }
  }

  /** Stops following a position that will not execute here; a proposal of this replica's that never committed has failed. */
  #giveUp(position: Position): void {
    if (!position.final) {
      if (position.proposedHere) instruments().failed.add(1, this.#labels);
      position.span.setStatus({ code: SpanStatusCode.ERROR, message: 'abandoned' });
    }
    this.#end(position);
  }

  #end(position: Position): void {
    this.#followed.delete(position.sequence);
    if (position.proposedHere && !position.final) instruments().pending.add(-1, this.#labels);
    const { span } = position;
    if (span.isRecording()) {
      span.setAttributes({
        'consensus.node_id': this.#self,
        'consensus.view': position.view,
        'consensus.sequence': position.sequence,
        'consensus.phase': position.phase,
        'consensus.quorum_size': this.#quorum,
        'consensus.received_votes': votesOf(position),
      });
    }
    span.end();
  }
}

/** Votes counted for a position: replicas heard from about it, or the certificate that proved its phase, whichever is more. */
function votesOf(position: Position): number {
  return Math.max(position.certified, position.heard.size);
}
