/**
 * The contract between a consensus core and its host, modelled on etcd-io/raft's `Step`/`Ready`.
 *
 * A core is a deterministic state machine over inputs. The host (the deterministic simulator, or
 * a replica actor on a worker thread) feeds it one input at a time with `step`, then takes what it
 * must do with `ready` and does it in this order:
 *   1. write `persist` durably, in order, as one atomic transaction (the LMDB replica store does;
 *      cores still order their writes so that any prefix of them would load);
 *   2. only then sign and send `messages` (a vote or reply must never leave before the state that
 *      justifies it is on disk — Raft §5.1's "before responding to RPCs", PBFT's logged messages);
 *   3. set and cancel `timers`, hand `replies` to clients, record `applied` and `evidence`.
 * The host signs every outgoing body and verifies every incoming signature, including those nested
 * in certificates, before a message reaches `step`. A core never reads a clock: time reaches it as
 * timer firings, and as `now` for the few values the protocol agrees on (proposal timestamps) and
 * for rate limits on what peers can make it send.
 *
 * Right after building a core (fresh or from durable records) the host takes `ready()` once: a
 * core arms its first timers and re-sends what a restart requires from its constructor.
 *
 * A core may execute a large batch in slices (DESIGN.md "Time budgets"): it stops after some
 * commands and reports `executionPaused`. The host then gives its event loop a turn and steps
 * `{ kind: 'resume' }` before any other input, until the core is no longer paused. A core that
 * gets any other input while paused finishes executing first, so a host that ignores pauses stays
 * correct and only loses the slicing; no rule of a protocol ever sees half a batch executed.
 */
import { t, type Schema } from '../../schema/schema.js';
import { hex, type Digest } from './codec.js';
import type { Command } from './command.js';
import type { ConsensusAlgorithm, ConsensusConfig, NodeId } from './config.js';
import type { QuorumCert, Signed } from './certificate.js';
import type { ConsensusState } from './state-machine.js';

/** One input to a core. Messages have been verified by the host; requests come from clients; `resume` continues a paused execution. */
export type Input<M> =
  | { readonly kind: 'message'; readonly message: Signed<M> }
  | { readonly kind: 'request'; readonly command: Command }
  | { readonly kind: 'timeout'; readonly timer: string }
  | { readonly kind: 'resume' };

/** A body to sign and send to each of `to` (which may include the sender itself: a loopback). */
export interface Outbound<M> {
  readonly to: readonly NodeId[];
  readonly body: M;
}

/** Set (or re-arm) a named timer to fire after `afterMs` plus a host-drawn delay in [0, jitterMs). */
export interface SetTimer {
  readonly kind: 'set';
  readonly timer: string;
  readonly afterMs: number;
  readonly jitterMs?: number;
}

/** Cancel a named timer; cancelling one that is not set does nothing. */
export interface CancelTimer {
  readonly kind: 'cancel';
  readonly timer: string;
}

/** A timer operation. */
export type TimerOp = SetTimer | CancelTimer;

/** Write `value` under `key` durably, or delete `key` when `value` is absent. */
export interface PersistOp {
  readonly key: string;
  readonly value?: unknown;
}

/** A log position the core executed, in position order. */
export interface AppliedEntry {
  readonly kind: 'entry';
  readonly position: number;
  /**
   * The view or term the position was ordered in, the same at every replica: the HotStuff block's
   * view, the Raft entry's term, the view a PBFT batch was first proposed in (a batch re-proposed
   * after a view change keeps it; the view it committed in can differ between replicas).
   */
  readonly view: number;
  readonly commands: readonly Command[];
  /** One response per command (a retried command gets its first response). */
  readonly responses: readonly Uint8Array[];
  /** How many of the commands the state machine threw on (each answered with an empty response). */
  readonly failed: number;
  /** The state machine's hash before and after this position. */
  readonly stateHashBefore: Digest;
  readonly stateHash: Digest;
  /** The time the protocol agreed for this position (the proposer's, checked by the others), ms. */
  readonly timestamp: number;
  /** The certificate that committed it, where the protocol has one. */
  readonly certificate?: QuorumCert;
}

/** The core jumped to a snapshot or stable checkpoint it did not execute itself (state transfer). */
export interface AppliedSnapshot {
  readonly kind: 'snapshot';
  readonly position: number;
  readonly stateHash: Digest;
}

/** An execution step the host records. */
export type Applied = AppliedEntry | AppliedSnapshot;

/** A response for a client. */
export interface Reply {
  readonly client: string;
  readonly timestamp: number;
  readonly position: number;
  readonly view: number;
  readonly response: Uint8Array;
}

/**
 * What replies must share to count towards one proof: the response and the log position. Correct
 * replicas agree on both (a retry is answered from the client table, which records the position),
 * so a reply that names another is not one of theirs.
 */
export const replyKey = (reply: Reply): string => `${reply.position} ${hex(reply.response)}`;

/** A linearizable read became safe to serve at `index` (Raft's ReadIndex, thesis §6.4). */
export interface ReadState {
  readonly id: string;
  readonly index: number;
}

/** Kinds of misbehaviour a core can prove with signed messages. */
export type EvidenceKind = 'equivocation' | 'double-vote' | 'invalid-certificate' | 'invalid-proposal';

/** Proof that `node` misbehaved. */
export interface Evidence {
  readonly kind: EvidenceKind;
  readonly node: NodeId;
  readonly detail: string;
  readonly messages: readonly Signed<unknown>[];
}

/** Everything a core asks its host to do after one or more steps. */
export interface Ready<M> {
  readonly persist: readonly PersistOp[];
  readonly messages: readonly Outbound<M>[];
  readonly timers: readonly TimerOp[];
  readonly applied: readonly Applied[];
  readonly replies: readonly Reply[];
  readonly reads: readonly ReadState[];
  readonly evidence: readonly Evidence[];
}

/** A replica's role in its protocol's terms. */
export type Role = 'primary' | 'backup' | 'view-change' | 'leader' | 'replica' | 'follower' | 'candidate' | 'pre-candidate' | 'learner';

/** What a core reports about itself. */
export interface NodeStatus {
  readonly role: Role;
  /** PBFT/HotStuff view, Raft term. */
  readonly view: number;
  /** Highest position executed. */
  readonly commitIndex: number;
  /** The replica this one believes leads, if any. */
  readonly leader: NodeId | null;
}

/**
 * Where a signed body stands: the view (Raft: term) and the log position it names, each where the
 * body names one. Bodies relayed inside certificates name at least one.
 */
export interface SignedPosition {
  readonly view?: number;
  readonly sequence?: number;
}

/** Schema of a {@link SignedPosition}. */
export const signedPositionSchema: Schema<SignedPosition> = t.object({ view: t.optional(t.uint()), sequence: t.optional(t.uint()) });

/**
 * Whether a body standing at `at` lies within `reach`: on every axis both name, not beyond it (an
 * axis `reach` leaves out is not bounded). A body naming no axis at all lies within nothing.
 */
export function standsWithin(at: SignedPosition, reach: SignedPosition): boolean {
  if (at.view === undefined && at.sequence === undefined) return false;
  const within = (value: number | undefined, bound: number | undefined): boolean => value === undefined || bound === undefined || value <= bound;
  return within(at.view, reach.view) && within(at.sequence, reach.sequence);
}

/** A consensus core. */
export interface Core<M> {
  readonly config: ConsensusConfig;
  /** Feeds one input; `now` is the host's time in ms, used only for values the protocol agrees on. */
  step(input: Input<M>, now: number): void;
  /** Takes the outputs accumulated since the last call. */
  ready(): Ready<M>;
  /** Role, view/term, commit index, leader. */
  status(): NodeStatus;
  /**
   * How far what this replica has signed reaches, its earlier incarnations included: no body it
   * signed names a later view or log position (an axis left out is not bounded). When a member
   * retires a key, this bounds the votes the key still vouches for inside certificates, so that a
   * retired key that leaks cannot vouch for votes in views and positions the member never reached.
   */
  signedThrough(): SignedPosition;
  /**
   * True while the core has paused part-way through executing committed commands: step
   * `{ kind: 'resume' }` next. Absent on a core that never pauses.
   */
  readonly executionPaused?: boolean;
}

/** What a core is built from. */
export interface CoreOptions {
  readonly config: ConsensusConfig;
  readonly stateMachine: ConsensusState;
  /** Records an earlier incarnation persisted (empty on first start). */
  readonly durable: ReadonlyMap<string, unknown>;
}

/** Hooks with which a host turns an honest replica into a Byzantine one (simulator and chaos runs). */
export interface Adversary<M> {
  /** True for a leader's proposal (withheld by a `withhold` leader). */
  isProposal(body: M): boolean;
  /**
   * A body that conflicts with `body` and that its sender could sign too — another proposal for
   * the same slot, or a vote for another value — or undefined when `body` is neither.
   * `salt` makes different conflicting variants.
   */
  conflicting(body: M, salt: number): M | undefined;
}

/**
 * The phases a log position passes at a replica, in order (the registry's `consensus.phase`): a
 * Raft entry is appended (§5.3); a proposal reaches the replica (PBFT's pre-prepare, a HotStuff
 * leader's block); PBFT prepares (Castro & Liskov §4.2) where HotStuff forms its first
 * certificate; HotStuff locks on a two-chain (pre-commit, Yin et al. §4); the position commits;
 * HotStuff decides; the state machine executes it. Each protocol passes through the phases it has.
 */
export const CONSENSUS_PHASES = ['append', 'pre-prepare', 'prepare', 'pre-commit', 'commit', 'decide', 'execute'] as const;

/** A phase of agreement on one log position. */
export type ConsensusPhase = (typeof CONSENSUS_PHASES)[number];

/** What one message body shows about one log position. */
export interface PositionSighting {
  /** The position: PBFT sequence number, HotStuff block height, Raft log index. */
  readonly sequence: number;
  /** The view (Raft: term) the position is ordered in, where the body says. */
  readonly view?: number;
  /** The phase the body's sender had reached at the position when it sent the body. */
  readonly phase: ConsensusPhase;
  /** The body carries the value proposed at the position: `proposed` by its sender, or `relayed` from another replica's proposal. */
  readonly value?: 'proposed' | 'relayed';
  /** The client commands of that value, so that a host can follow each command to the position ordering it (its trace). */
  readonly commands?: readonly Command[];
  /** Signatures of a certificate in the body that proves `phase`, so that whoever accepts the body has reached it too. */
  readonly votes?: number;
  /** The sender has reached `phase` at every earlier position as well (Raft's Log Matching Property, §5.3). */
  readonly prefix?: boolean;
}

/** How a host reads log positions out of message bodies, to report agreement as it progresses. Pure. */
export interface PositionReader<M> {
  /** What `body` shows about log positions: nothing for bodies about none. */
  sightings(body: M): readonly PositionSighting[];
  /**
   * True when agreement on a position belongs to one view, so that a replica leaving the view
   * abandons what it had not committed (a PBFT round, §4.4); false when a position outlives views
   * and terms (a HotStuff block, a Raft entry).
   */
  readonly viewBound: boolean;
}

/** Everything a host needs to run a protocol. */
export interface ProtocolDefinition<M extends { readonly type: string }> {
  readonly algorithm: ConsensusAlgorithm;
  /**
   * True when at most one correct replica leads each view or term — Raft's election safety
   * (§5.2), PBFT's primary v mod n — which the simulator then checks. HotStuff's safety never
   * rests on who leads, and a view can have two proposers (hotstuff/pacemaker.ts).
   */
  readonly uniqueLeader: boolean;
  /** Schema of message bodies. */
  readonly message: Schema<M>;
  /**
   * The signed messages nested in a body (certificate votes rebuilt as signed bodies), for the host
   * to verify; each body names where it stands, which bounds the keys it may be signed with.
   */
  nested(body: M): readonly Signed<SignedPosition>[];
  /** Builds a core (fresh, or from an earlier incarnation's durable records). */
  create(options: CoreOptions): Core<M>;
  readonly adversary: Adversary<M>;
  /** Reads log positions out of bodies for reporting; without it a host reports executions only. */
  readonly positions?: PositionReader<M>;
}

/**
 * The output buffer every core uses: it accumulates during `step` and is drained by `ready`.
 */
export class Outputs<M> {
  #persist: PersistOp[] = [];
  #messages: Outbound<M>[] = [];
  #timers: TimerOp[] = [];
  #applied: Applied[] = [];
  #replies: Reply[] = [];
  #reads: ReadState[] = [];
  #evidence: Evidence[] = [];

  /** Writes `value` under `key` before this step's messages leave. */
  persist(key: string, value: unknown): void {
    this.#persist.push({ key, value });
  }
  /** Deletes `key` before this step's messages leave. */
  erase(key: string): void {
    this.#persist.push({ key });
  }
  /** Signs and sends `body` to each of `to` (an empty list sends nothing). */
  send(to: readonly NodeId[], body: M): void {
    if (to.length > 0) this.#messages.push({ to, body });
  }
  /** Arms (or re-arms) a named timer. */
  setTimer(timer: string, afterMs: number, jitterMs?: number): void {
    this.#timers.push(jitterMs === undefined ? { kind: 'set', timer, afterMs } : { kind: 'set', timer, afterMs, jitterMs });
  }
  /** Disarms a named timer. */
  cancelTimer(timer: string): void {
    this.#timers.push({ kind: 'cancel', timer });
  }
  /** Records an executed position or an installed snapshot. */
  applied(entry: Applied): void {
    this.#applied.push(entry);
  }
  /** Answers a client. */
  reply(reply: Reply): void {
    this.#replies.push(reply);
  }
  /** Releases a linearizable read. */
  read(state: ReadState): void {
    this.#reads.push(state);
  }
  /** Reports provable misbehaviour. */
  evidence(evidence: Evidence): void {
    this.#evidence.push(evidence);
  }

  /** Takes everything accumulated so far. */
  drain(): Ready<M> {
    const ready: Ready<M> = {
      persist: this.#persist,
      messages: this.#messages,
      timers: this.#timers,
      applied: this.#applied,
      replies: this.#replies,
      reads: this.#reads,
      evidence: this.#evidence,
    };
    this.#persist = [];
    this.#messages = [];
    this.#timers = [];
    this.#applied = [];
    this.#replies = [];
    this.#reads = [];
    this.#evidence = [];
    return ready;
  }
}
