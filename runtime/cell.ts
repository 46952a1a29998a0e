/**
 * A cell runs one incarnation of one actor: its mailbox, its handler loop, its timers, its
 * statistics. The loop handles one message at a time; a handler that returns a promise holds the
 * mailbox until it settles; a handler that throws crashes the incarnation.
 */
import { refLabel, type ActorRef, type SenderId } from './actor-ref.js';
import { serializeError, type ActorContext, type ActorHandlers, type Behavior, type ExitReason, type Sender, type Signal } from './behavior.js';
import type { TimerHandle } from './clock.js';
import { decodeValue, encodeValue, EnvelopeKind, type EnvelopeHeader, type Frame } from './envelope.js';
import { ActorNotRunning, checkDelay, DecodeError, KnhkError, MailboxFull, MessageTooLarge, RemoteFailure, ReplyRejected } from './errors.js';
import { Mailbox, type MailboxOptions } from './mailbox.js';
import type { Node } from './node.js';
import type { ParseContext, RefShape } from '../schema/schema.js';
import { signalSchema } from './signal.js';
import { endHandleSpan, parentContext, startHandleSpan, TICK_MS, traceFields, within } from './telemetry.js';
import { TickHistogram } from './tick-histogram.js';
import type { Task } from './task.js';

/** Options of one incarnation. */
export interface CellOptions {
  readonly name: string;
  readonly incarnation: number;
  readonly mailbox?: MailboxOptions;
  /** Called exactly once when the incarnation ends. */
  readonly onExit: (reason: ExitReason) => void;
}

/** Handler statistics of one incarnation (the tick budget of DESIGN.md). */
export interface HandlerStats {
  /** Messages and signals handled. */
  readonly handled: number;
  /**
   * Longest synchronous processing of one message (decode, validation, handler) or one piece of
   * work the actor measured (`ActorContext.measure`), in ticks of 125 µs.
   */
  readonly maxTicks: number;
  /**
   * 99th percentile of the same: to a quarter tick up to 64 ticks, to 1/16 above (a
   * bucket's upper bound, never below the true value nor above `maxTicks`).
   */
  readonly p99Ticks: number;
  /** Messages and measured pieces whose processing exceeded the budget of 8 ticks. */
  readonly overBudget: number;
  /** Messages waiting in the mailbox. */
  readonly mailboxDepth: number;
}

/**
 * The sender handed to a handler. One is made per message, so it is a plain class: the reference
 * to the sender is only built if the handler asks for it.
 */
class MessageSender implements Sender<unknown> {
  readonly #cell: Cell;
  readonly #header: EnvelopeHeader;
  #pending: boolean;

  constructor(cell: Cell, header: EnvelopeHeader) {
    this.#cell = cell;
    this.#header = header;
    this.#pending = header.kind === EnvelopeKind.Ask;
  }

  get ref(): ActorRef | undefined {
    const h = this.#header;
    return h.from === undefined ? undefined : this.#cell.node.ref({ name: h.from, incarnation: h.fromIncarnation ?? 0, thread: h.fromThread }, this.#cell);
  }

  get expectsReply(): boolean {
    return this.#header.kind === EnvelopeKind.Ask;
  }

  /** True while an ask is unanswered. */
  get pending(): boolean {
    return this.#pending;
  }

  reply(value: unknown): void {
    if (this.#header.kind !== EnvelopeKind.Ask) return;
    const cell = this.#cell;
    if (!this.#pending) throw new KnhkError('DOUBLE_REPLY', `${refLabel(cell)} replied twice to one ask`);
    this.#pending = false;
    try {
      cell.behavior.replies?.parse(value, '$reply');
      cell.node.reply(this.#header, true, value, cell);
    } catch (cause) {
      // The asker learns why it gets no value (an invalid or unencodable reply), then the
      // handler sees the error, which crashes the actor unless it catches it.
      const error = cause instanceof KnhkError && cause.code === 'MESSAGE_TOO_LARGE' ? cause : new ReplyRejected(refLabel(cell), { cause });
      cell.node.reply(this.#header, false, serializeError(error), cell);
      throw cause;
    }
  }

  /** Answers the ask with an error (the handler failed before replying). */
  fail(error: KnhkError): void {
    this.#pending = false;
    this.#cell.node.reply(this.#header, false, serializeError(error), this.#cell);
  }
}

type State = 'starting' | 'running' | 'stopping' | 'exited';

// A cell drains its mailbox for at most this long before yielding to the event loop, so that
// frames arriving meanwhile (an urgent heartbeat among them) are queued, and taken first, before
// the next bulk message; and once a thread has spent this long in a turn, further drains wait for
// the next turn, so that timers and I/O keep running.
const SLICE_MS = 1;
const BUDGET_TICKS = 8;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** One running actor incarnation. */
export class Cell implements SenderId {
  readonly name: string;
  readonly incarnation: number;
  /** @internal */
  readonly node: Node;
  /** @internal */
  readonly behavior: Behavior<unknown, unknown, unknown>;
  readonly #metricAttributes: { readonly 'actor.name': string };
  readonly #mailbox: Mailbox<Frame>;
  readonly #onExit: (reason: ExitReason) => void;
  readonly #timers = new Map<string, TimerHandle>();
  readonly #parse: ParseContext;
  #handlers: ActorHandlers<unknown, unknown> | undefined;
  #state: State = 'starting';
  #busy: Promise<void> | undefined;
  /** The sender of the message an asynchronous handler is still working on. */
  #inFlight: MessageSender | undefined;
  #scheduled = false;
  #sliceStart = 0;
  #handled = 0;
  /** Inside a handler or a `measure`d piece of work (work measured inside either is part of it). */
  #measuring = false;
  #overBudget = 0;
  /** Times of messages handled and of `measure`d pieces. */
  readonly #times = new TickHistogram();

  constructor(node: Node, behavior: Behavior<unknown, unknown, unknown>, options: CellOptions) {
    this.node = node;
    this.behavior = behavior;
    this.#metricAttributes = { 'actor.name': options.name };
    this.name = options.name;
    this.incarnation = options.incarnation;
    this.#mailbox = new Mailbox(options.mailbox);
    this.#onExit = options.onExit;
    this.#parse = { reviveRef: (raw: RefShape) => node.ref(raw, this) };
  }

  /** This incarnation as a reference shape. */
  get shape(): RefShape {
    return { name: this.name, incarnation: this.incarnation, thread: this.node.thread };
  }

  /** True while messages are accepted (starting or running). */
  get accepting(): boolean {
    return this.#state === 'starting' || this.#state === 'running';
  }

  /** Messages waiting in the mailbox now. */
  get mailboxDepth(): number {
    return this.#mailbox.size;
  }

  /** Handler statistics so far. */
  get stats(): HandlerStats {
    return { handled: this.#handled, maxTicks: this.#times.max, p99Ticks: this.#times.percentile(99), overBudget: this.#overBudget, mailboxDepth: this.#mailbox.size };
  }

  /** The actor's own view of its state, if it offers one. */
  inspect(): unknown {
    return this.#handlers?.inspect?.();
  }

  /** Runs the behavior's `start`; messages that arrive meanwhile wait in the mailbox. */
  async start(args: unknown): Promise<void> {
    const parsedArgs = this.behavior.args ? this.behavior.args.parse(args, '$args', this.#parse) : args;
    this.#handlers = await this.behavior.start(this.#context(), parsedArgs);
    if (this.#state !== 'starting') return;
    this.#state = 'running';
    this.#schedule();
  }

  /** Queues a frame, applying the overflow policy. */
  deliver(frame: Frame): void {
    const pushed = this.#mailbox.push(frame, frame.header.urgent);
    if (!pushed.ok) {
      this.node.undeliverable(frame, 'mailbox-full', new MailboxFull(refLabel(this)));
      return;
    }
    if (pushed.dropped) this.node.undeliverable(pushed.dropped, 'dropped-oldest', new MailboxFull(refLabel(this)));
    this.#schedule();
  }

  /**
   * Ends the incarnation normally (`normal`: it stopped itself; `shutdown`: its supervisor asked).
   * Waits for a handler in progress, runs the `stop` hook, and reports what was still queued.
   */
  async stop(kind: 'normal' | 'shutdown'): Promise<void> {
    if (this.#state === 'exited' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    if (this.#busy) await this.#busy.catch(() => undefined);
    if ((this.#state as State) === 'exited') return;
    try {
      await this.#handlers?.stop?.();
    } catch (error) {
      this.#exit({ kind: 'crash', error: serializeError(error) });
      return;
    }
    // The kill timer of a shutdown may have ended the incarnation while the hook ran.
    this.#exit({ kind });
  }

  /** Ends the incarnation abnormally. */
  crash(error: unknown): void {
    if (this.#state === 'exited') return;
    this.#exit({ kind: 'crash', error: serializeError(error) });
  }

  #exit(reason: ExitReason): void {
    if (this.#state === 'exited') return;
    this.#state = 'exited';
    for (const handle of this.#timers.values()) this.node.clock.clearTimer(handle);
    this.#timers.clear();
    for (const frame of this.#mailbox.drain()) {
      this.node.undeliverable(frame, 'undelivered-at-exit', new ActorNotRunning(refLabel(this), 'it exited before handling the message'));
    }
    if (this.#inFlight?.pending) this.#inFlight.fail(new ActorNotRunning(refLabel(this), 'it exited while handling the request'));
    if (this.node.cells.get(this.name) === this) this.node.cells.delete(this.name);
    this.node.abandonAsks(this);
    this.#onExit(reason);
  }

  #schedule(): void {
    if (this.#scheduled || this.#busy || this.#state !== 'running' || this.#mailbox.size === 0) return;
    this.#scheduled = true;
    // Within the thread's budget for this turn the mailbox is drained in a microtask (lowest
    // latency); past it, in a later turn, so that actors telling each other cannot starve timers
    // and I/O of this thread.
    if (this.node.turnElapsed(performance.now()) < SLICE_MS) queueMicrotask(this.#drainSlice);
    else setImmediate(this.#drainSlice);
  }

  /** Starts a slice: the cell may now drain for up to {@link SLICE_MS}. */
  readonly #drainSlice = (): void => {
    this.#sliceStart = performance.now();
    this.#drain();
  };

  readonly #drain = (): void => {
    let last = performance.now();
    while (this.#state === 'running' && !this.#busy) {
      const frame = this.#mailbox.shift();
      if (!frame) break;
      this.#process(frame);
      // One clock read per message: the time since the previous read is this message's cost
      // (decode, validation and the handler's synchronous part).
      const now = performance.now();
      this.#account(now - last);
      last = now;
      // Each cell drains for at most one slice at a time, so one busy actor cannot starve the others.
      if (this.#mailbox.size > 0 && now - this.#sliceStart > SLICE_MS) {
        setImmediate(this.#drainSlice);
        return;
      }
    }
    this.#scheduled = false;
  };

  /**
   * An asynchronous handler has settled: go on with the same slice if it has time left (an actor
   * whose handlers await must not be reduced to one message per event-loop turn on a busy thread).
   */
  #resume(): void {
    if (this.#scheduled || this.#state !== 'running' || this.#mailbox.size === 0) return;
    this.#scheduled = true;
    if (performance.now() - this.#sliceStart < SLICE_MS) queueMicrotask(this.#drain);
    else setImmediate(this.#drainSlice);
  }

  #process(frame: Frame): void {
    const { header } = frame;
    let msg: unknown;
    try {
      if (frame.payload.length > this.node.maxMessageBytes) throw new MessageTooLarge(frame.payload.length, this.node.maxMessageBytes);
      const raw = decodeValue(frame.payload);
      msg = header.kind === EnvelopeKind.Signal ? signalSchema.parse(raw, '$signal', this.#parse) : this.behavior.messages.parse(raw, '$', this.#parse);
    } catch (error) {
      const typed = error instanceof KnhkError ? error : new DecodeError('undecodable message', { cause: error });
      this.node.undeliverable(frame, 'invalid', typed);
      return;
    }
    const handlers = this.#handlers as ActorHandlers<unknown, unknown>;
    const sender = header.kind === EnvelopeKind.Signal ? undefined : new MessageSender(this, header);
    const parent = parentContext(header);
    const traced = parent ? startHandleSpan(parent, this.name, typeof (msg as { type?: unknown }).type === 'string' ? (msg as { type: string }).type : 'message') : undefined;
    let result: unknown;
    // The handler's time is accounted as the message's: work it measures is part of it.
    this.#measuring = true;
    try {
      const call = (): unknown => (sender ? handlers.receive(msg, sender) : handlers.signal?.(msg as Signal));
      result = within(traced?.ctx, call);
    } catch (error) {
      if (traced) endHandleSpan(traced.span, error);
      this.#fail(error, sender);
      return;
    } finally {
      this.#measuring = false;
    }
    if (!isThenable(result)) {
      if (traced) endHandleSpan(traced.span);
      return;
    }
    this.#inFlight = sender;
    this.#busy = Promise.resolve(result).then(
      () => {
        if (traced) endHandleSpan(traced.span);
        this.#busy = this.#inFlight = undefined;
        this.#resume();
      },
      (error: unknown) => {
        if (traced) endHandleSpan(traced.span, error);
        this.#busy = this.#inFlight = undefined;
        this.#fail(error, sender);
      },
    );
  }

  #account(ms: number): void {
    this.#handled++;
    this.#record(ms);
  }

  /** One piece of synchronous work, a handler or a measured piece, into the handler-time statistics. */
  #record(ms: number): void {
    const ticks = ms / TICK_MS;
    if (ticks > BUDGET_TICKS) this.#overBudget++;
    this.#times.record(ticks);
    this.node.instruments.handlerTicks.record(ticks, this.#metricAttributes);
  }

  #fail(error: unknown, sender: MessageSender | undefined): void {
    if (sender?.pending) sender.fail(new RemoteFailure(refLabel(this), error instanceof Error ? error.message : String(error)));
    this.crash(error);
  }

  #context(): ActorContext<unknown, unknown> {
    const node = this.node;
    const self = node.ref(this.shape, this);
    const timers = this.#timers;
    const header: EnvelopeHeader = { kind: EnvelopeKind.Tell, urgent: true, to: this.name, toIncarnation: this.incarnation, fromThread: node.thread };
    // The message is encoded when the timer is set, so an unencodable one fails the caller, not
    // the timer callback. Each firing delivers a copy: byte fields decode as views into their
    // payload, and a handler may write to them.
    const fire = (key: string, ms: number, payload: Uint8Array, repeat: boolean): void => {
      timers.set(
        key,
        node.clock.setTimer(() => {
          if (repeat) fire(key, ms, payload, true);
          else timers.delete(key);
          this.deliver({ header, payload: payload.slice() });
        }, ms),
      );
    };
    return {
      self,
      clock: node.clock,
      timers: {
        start: (key, ms, msg, opts = {}) => {
          checkDelay(ms, 'timer delay');
          const payload = encodeValue(msg, node.maxMessageBytes);
          const existing = timers.get(key);
          if (existing) node.clock.clearTimer(existing);
          if (this.#state === 'exited') return;
          fire(key, ms, payload, opts.repeat ?? false);
        },
        cancel: (key) => {
          const handle = timers.get(key);
          if (handle) node.clock.clearTimer(handle);
          timers.delete(key);
        },
        has: (key) => timers.has(key),
      },
      lookup: async <M, R>(name: string) => {
        const shape = await node.hooks.lookup(name);
        return shape ? node.ref<M, R>(shape, this) : undefined;
      },
      watch: (ref) => node.hooks.watch(this.shape, ref),
      runTask: <In, Out>(task: Task<In, Out>, input: In) => node.hooks.runTask({ module: task.module, export: task.export, input, ...traceFields() }) as Promise<Out>,
      stop: () => {
        // Deferred, so that an asynchronous handler calling it has handed over its promise (and
        // the stop waits for it) before the stop begins.
        queueMicrotask(() => void this.stop('normal'));
      },
      measure: (work) => {
        if (this.#measuring) return work();
        this.#measuring = true;
        const start = performance.now();
        try {
          return work();
        } finally {
          this.#measuring = false;
          this.#record(performance.now() - start);
        }
      },
    };
  }
}
