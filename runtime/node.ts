/**
 * A node is the runtime of one thread within one actor system: it hosts that thread's actors
 * (cells), owns its links to other threads, routes frames, settles asks and reports dead letters.
 * The main thread's node and every worker's node are the same class; only their hooks differ.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ObservableCallback } from '@opentelemetry/api';
import { ActorRef, refLabel, type RefHost, type SenderId } from './actor-ref.js';
import { serializeError, type Behavior } from './behavior.js';
import { Cell, type CellOptions } from './cell.js';
import type { Clock } from './clock.js';
import type { DeadLetter, DeadLetterReason } from './dead-letter.js';
import { decodeValue, encodeLocalPayload, encodeValueView, EnvelopeKind, CLONE_BYTES, isBadFrame, readBatch, type EnvelopeHeader, type Frame } from './envelope.js';
import { ActorNotRunning, AskTimeout, checkDelay, DecodeError, KnhkError, reviveError, SchemaError } from './errors.js';
import { Link, type Endpoint, type Post } from './link.js';
import type { RefShape } from '../schema/schema.js';
import { serializedErrorSchema } from './signal.js';
import { traceFields, type RuntimeInstruments } from './telemetry.js';
import type { PoolJob } from './pool-worker.js';

/** What a node needs from its environment (the system in the main thread, the host in a worker). */
export interface NodeHooks {
  /** Asked when a frame must go to a thread this node has no link to. */
  connect(thread: number): void;
  /** Receives every dead letter of this node. */
  deadLetter(letter: DeadLetter): void;
  /** Resolves the current incarnation of a named actor. */
  lookup(name: string): Promise<RefShape | undefined>;
  /** Registers `watcher` to receive `terminated` when `target` ends. */
  watch(watcher: RefShape, target: RefShape): void;
  /** Runs a pool task. */
  runTask(job: PoolJob): Promise<unknown>;
}

/** Node construction options. */
export interface NodeOptions {
  readonly thread: number;
  readonly maxMessageBytes: number;
  readonly clock: Clock;
  readonly hooks: NodeHooks;
  readonly instruments: RuntimeInstruments;
}

interface PendingAsk {
  readonly sender: SenderId | undefined;
  readonly target: string;
  readonly thread: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<Clock['setTimer']>;
}

/** The runtime of one thread. */
export class Node implements RefHost {
  readonly thread: number;
  readonly maxMessageBytes: number;
  readonly clock: Clock;
  readonly hooks: NodeHooks;
  readonly instruments: RuntimeInstruments;
  /** Actors hosted by this thread, by name (current incarnation only). */
  readonly cells = new Map<string, Cell>();
  readonly #links = new Map<number, Link>();
  readonly #listeners = new Map<Endpoint, (value: unknown) => void>();
  readonly #asks = new Map<number, PendingAsk>();
  #correlation = 0;
  #turnStart = -1;
  readonly #observeMailboxes: ObservableCallback = (result) => {
    for (const [name, cell] of this.cells) result.observe(cell.mailboxDepth, { 'actor.name': name });
  };

  constructor(options: NodeOptions) {
    this.thread = options.thread;
    this.maxMessageBytes = options.maxMessageBytes;
    this.clock = options.clock;
    this.hooks = options.hooks;
    this.instruments = options.instruments;
    this.instruments.mailboxDepth.addCallback(this.#observeMailboxes);
  }

  /**
   * Milliseconds since this thread began draining mailboxes in the current event-loop turn. The
   * turn's start is forgotten by a `setImmediate`, which runs once the turn (and its microtasks) is over.
   */
  turnElapsed(now: number): number {
    if (this.#turnStart < 0) {
      this.#turnStart = now;
      setImmediate(() => {
        this.#turnStart = -1;
      });
    }
    return now - this.#turnStart;
  }

  /** A reference bound to `sender` (what it sends is sent by that actor). */
  ref<M = unknown, R = unknown>(shape: RefShape, sender?: SenderId): ActorRef<M, R> {
    return new ActorRef<M, R>(shape, this, sender);
  }

  /** Starts an actor incarnation in this thread. */
  spawnCell<Msg, Args, Reply>(behavior: Behavior<Msg, Args, Reply>, options: CellOptions): Cell {
    const cell = new Cell(this, behavior as Behavior<unknown, unknown, unknown>, options);
    this.cells.set(options.name, cell);
    return cell;
  }

  tell(sender: SenderId | undefined, to: RefShape, msg: unknown, urgent: boolean): void {
    this.send(EnvelopeKind.Tell, sender, to, msg, urgent);
  }

  ask(sender: SenderId | undefined, to: RefShape, msg: unknown, urgent: boolean, timeoutMs: number): Promise<unknown> {
    try {
      checkDelay(timeoutMs, 'ask timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    // Correlation ids are u32 on the wire; they only need to be unique among pending asks.
    const correlation = (this.#correlation = (this.#correlation + 1) >>> 0);
    const target = refLabel(to);
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimer(() => {
        this.#asks.delete(correlation);
        reject(new AskTimeout(target, timeoutMs));
      }, timeoutMs);
      this.#asks.set(correlation, { sender, target, thread: to.thread, resolve, reject, timer });
      try {
        this.send(EnvelopeKind.Ask, sender, to, msg, urgent, correlation);
      } catch (error) {
        this.clock.clearTimer(timer);
        this.#asks.delete(correlation);
        reject(error);
      }
    });
  }

  /** Encodes and routes one message. Throws `MessageTooLarge` synchronously. */
  send(kind: EnvelopeKind, sender: SenderId | undefined, to: RefShape, value: unknown, urgent: boolean, correlation?: number): void {
    const local = to.thread === this.thread;
    // A remote frame is copied into its batch at once, so msgpackr's pooled view suffices.
    const payload = local ? encodeLocalPayload(value, this.maxMessageBytes) : encodeValueView(value, this.maxMessageBytes);
    const header: EnvelopeHeader = {
      kind,
      urgent: urgent || kind === EnvelopeKind.Signal,
      to: to.name,
      toIncarnation: to.incarnation,
      fromThread: this.thread,
      ...(sender ? { from: sender.name, fromIncarnation: sender.incarnation } : {}),
      ...(correlation === undefined ? {} : { correlation }),
      ...traceFields(),
    };
    if (local) this.deliver({ header, payload });
    else this.#link(to.thread).push(header, payload);
  }

  /** Sends a runtime signal to an actor (urgent lane). */
  signal(to: RefShape, signal: unknown): void {
    this.send(EnvelopeKind.Signal, undefined, to, signal, true);
  }

  /** Answers the ask carried by `header` with a value or an error. */
  reply(header: EnvelopeHeader, ok: boolean, value: unknown, sender: SenderId): void {
    const to = { name: header.from ?? '', incarnation: header.fromIncarnation ?? 0, thread: header.fromThread };
    this.send(ok ? EnvelopeKind.Reply : EnvelopeKind.ReplyError, sender, to, value, header.urgent, header.correlation);
  }

  /** Routes a frame that arrived for this thread. */
  deliver(frame: Frame): void {
    const { header } = frame;
    if (header.kind === EnvelopeKind.Reply || header.kind === EnvelopeKind.ReplyError) {
      this.#settle(frame);
      return;
    }
    const cell = this.cells.get(header.to);
    if (!cell || cell.incarnation !== header.toIncarnation || !cell.accepting) {
      this.undeliverable(frame, 'not-running', new ActorNotRunning(refLabel({ name: header.to, incarnation: header.toIncarnation }), cell ? 'stale incarnation' : 'no such actor in this thread'));
      return;
    }
    cell.deliver(frame);
  }

  /** Decodes a batch received from another thread and delivers its frames. */
  receiveBatch(batch: Uint8Array): void {
    for (const item of readBatch(batch)) {
      if (isBadFrame(item)) this.deadLetter({ to: '?', reason: 'invalid', error: serializeError(item.error), bytes: item.bytes });
      else this.deliver(item);
    }
  }

  /**
   * Turns an undeliverable frame into a dead letter and tells its sender: an ask fails at once
   * with `error`, an actor that told receives an `undeliverable` signal.
   */
  undeliverable(frame: Frame, reason: DeadLetterReason, error: KnhkError): void {
    const { header } = frame;
    this.#frameDeadLetter(frame, reason, error);
    const self = { name: header.to, incarnation: header.toIncarnation };
    if (header.kind === EnvelopeKind.Ask) this.reply(header, false, serializeError(error), self);
    else if (header.kind === EnvelopeKind.Tell && header.from !== undefined) {
      const sender = { name: header.from, incarnation: header.fromIncarnation ?? 0, thread: header.fromThread };
      this.signal(sender, { type: 'undeliverable', to: { ...self, thread: this.thread }, code: error.code, message: error.message });
    }
  }

  /** Reports a dead letter (counted, then handed to the hooks). */
  deadLetter(letter: DeadLetter): void {
    this.instruments.deadLetters.add(1, { 'actor.dead_letter.reason': letter.reason });
    this.hooks.deadLetter(letter);
  }

  /** Rejects the pending asks of an actor that has exited. */
  abandonAsks(sender: SenderId): void {
    this.#rejectAsks(
      (ask) => ask.sender?.name === sender.name && ask.sender.incarnation === sender.incarnation,
      () => new ActorNotRunning(refLabel(sender), 'the asking actor exited'),
    );
  }

  #rejectAsks(match: (ask: PendingAsk) => boolean, error: (ask: PendingAsk) => Error): void {
    for (const [correlation, ask] of this.#asks) {
      if (!match(ask)) continue;
      this.clock.clearTimer(ask.timer);
      this.#asks.delete(correlation);
      ask.reject(error(ask));
    }
  }

  /** Reports `frame` as a dead letter, with its message decoded when it can be, its bytes otherwise. */
  #frameDeadLetter(frame: Frame, reason: DeadLetterReason, error?: KnhkError): void {
    const { header } = frame;
    let message: unknown;
    try {
      message = decodeValue(frame.payload);
    } catch {
      message = undefined;
    }
    this.deadLetter({
      to: refLabel({ name: header.to, incarnation: header.toIncarnation }),
      ...(header.from === undefined ? {} : { from: refLabel({ name: header.from, incarnation: header.fromIncarnation ?? 0 }) }),
      reason,
      ...(error === undefined ? {} : { error: serializeError(error) }),
      // A payload may be a view into a shared slab: a copy of its own keeps a dead letter that
      // crosses threads from cloning the whole slab.
      ...(message === undefined ? { bytes: new Uint8Array(frame.payload) } : { message }),
    });
  }

  #settle(frame: Frame): void {
    const { header } = frame;
    const ask = header.correlation === undefined ? undefined : this.#asks.get(header.correlation);
    const mine = ask && (ask.sender?.name ?? '') === header.to && (ask.sender?.incarnation ?? 0) === header.toIncarnation;
    if (!ask || !mine) {
      this.#frameDeadLetter(frame, 'late-reply');
      return;
    }
    this.#asks.delete(header.correlation as number);
    this.clock.clearTimer(ask.timer);
    try {
      const value = decodeValue(frame.payload);
      if (header.kind === EnvelopeKind.Reply) ask.resolve(value);
      else ask.reject(reviveError(serializedErrorSchema.parse(value)));
    } catch (error) {
      ask.reject(error instanceof DecodeError || error instanceof SchemaError ? error : new DecodeError('bad reply', { cause: error }));
    }
  }

  /**
   * Connects this node to another thread through `endpoint`: batches arriving there are
   * delivered here, and frames for that thread leave through it. Anything else that arrives is
   * given to `onControl`.
   */
  attach(thread: number, endpoint: Endpoint, onControl?: (value: unknown) => void): void {
    const listener = (value: unknown): void => {
      if (value instanceof Uint8Array) this.#receivePosted(thread, value);
      else if (Array.isArray(value)) {
        for (const item of value as unknown as Post) {
          if (item instanceof Uint8Array) this.#receivePosted(thread, item);
          else if (item instanceof ArrayBuffer) this.#links.get(thread)?.recycle(item);
        }
      } else onControl?.(value);
    };
    endpoint.on('message', listener);
    this.#listeners.set(endpoint, listener);
    const link = this.#links.get(thread);
    if (!link) this.#links.set(thread, new Link(thread, endpoint));
    else if (!link.connected) link.attach(endpoint);
  }

  /** Delivers a batch posted by `thread`, then hands its buffer back for reuse unless it was cloned. */
  #receivePosted(thread: number, batch: Uint8Array): void {
    this.receiveBatch(batch);
    if (batch.buffer.byteLength >= CLONE_BYTES) this.#links.get(thread)?.giveBack(batch.buffer as ArrayBuffer);
  }

  /** Stops listening on an endpoint attached with {@link Node.attach}. */
  detachEndpoint(endpoint: Endpoint): void {
    const listener = this.#listeners.get(endpoint);
    if (listener) endpoint.off('message', listener);
    this.#listeners.delete(endpoint);
  }

  /** Forgets the link to a thread that is gone; what waited for it becomes dead letters. */
  unreachable(thread: number): void {
    const link = this.#links.get(thread);
    this.#links.delete(thread);
    const pending = link ? link.takePending() : new Uint8Array(0);
    for (const item of readBatch(pending)) {
      if (isBadFrame(item)) continue;
      this.undeliverable(item, 'unreachable', new ActorNotRunning(refLabel({ name: item.header.to, incarnation: item.header.toIncarnation }), `thread ${thread} is gone`));
    }
    // Asks already posted there will never be answered: fail them now rather than at their timeout.
    this.#rejectAsks(
      (ask) => ask.thread === thread,
      (ask) => new ActorNotRunning(ask.target, `its thread ${thread} is gone`),
    );
  }

  /** The link to a thread (posts and frames counters, for tests and benchmarks). */
  linkTo(thread: number): Link | undefined {
    return this.#links.get(thread);
  }

  /** Sends a control object to a thread after the frames already queued for it. */
  control(thread: number, value: unknown, transfer: readonly MessagePort[] = []): void {
    this.#link(thread).control(value, transfer);
  }

  /** Flushes every link now (used before a thread exits). */
  flush(): void {
    for (const link of this.#links.values()) link.flush();
  }

  /** Detaches every endpoint and drops all links (the node is being shut down). */
  close(): void {
    this.instruments.mailboxDepth.removeCallback(this.#observeMailboxes);
    for (const endpoint of [...this.#listeners.keys()]) this.detachEndpoint(endpoint);
    this.#rejectAsks(
      () => true,
      (ask) => new ActorNotRunning(ask.target, 'the actor system stopped'),
    );
    this.#links.clear();
  }

  #link(thread: number): Link {
    let link = this.#links.get(thread);
    if (!link) {
      link = new Link(thread);
      this.#links.set(thread, link);
      this.hooks.connect(thread);
    }
    return link;
  }
}
