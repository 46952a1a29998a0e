/**
 * Actor references. A reference names one incarnation of an actor: after a restart the old
 * reference still exists but what is sent through it becomes a dead letter, because the sender
 * meant the actor it knew, not its successor (resolve the successor with `lookup`).
 */
import type { RefShape } from '../schema/schema.js';

/** Options of `tell`. */
export interface TellOptions {
  /** Deliver on the urgent lane, ahead of bulk traffic (heartbeats, view changes, timers). */
  readonly urgent?: boolean;
}

/** Options of `ask`. */
export interface AskOptions extends TellOptions {
  /** Milliseconds to wait for the reply before rejecting with `AskTimeout` (default 5000). */
  readonly timeoutMs?: number;
}

/** Who is sending: an actor incarnation of the sending thread, or plain code (`undefined`). */
export interface SenderId {
  readonly name: string;
  readonly incarnation: number;
}

/** The part of a thread's runtime a reference needs. */
export interface RefHost {
  tell(sender: SenderId | undefined, to: RefShape, msg: unknown, urgent: boolean): void;
  ask(sender: SenderId | undefined, to: RefShape, msg: unknown, urgent: boolean, timeoutMs: number): Promise<unknown>;
}

/** A typed reference to one incarnation of an actor. `Msg` is what it accepts, `Reply` what it answers. */
export class ActorRef<Msg = unknown, Reply = unknown> implements RefShape {
  /** The actor's name, unique within its system. */
  readonly name: string;
  /** Which incarnation (0 for the first start, +1 per restart). */
  readonly incarnation: number;
  /** The thread hosting that incarnation (0 for the main thread). */
  readonly thread: number;
  readonly #host: RefHost;
  readonly #sender: SenderId | undefined;

  /** @internal References are made by the runtime; user code obtains them from spawn, lookup or messages. */
  constructor(shape: RefShape, host: RefHost, sender: SenderId | undefined) {
    this.name = shape.name;
    this.incarnation = shape.incarnation;
    this.thread = shape.thread;
    this.#host = host;
    this.#sender = sender;
  }

  /** Sends without waiting. Failures to deliver become dead letters (and signals to an actor sender). */
  tell(msg: Msg, options: TellOptions = {}): void {
    this.#host.tell(this.#sender, this, msg, options.urgent ?? false);
  }

  /** Sends and waits for the reply; rejects with `AskTimeout` after `timeoutMs`. */
  ask(msg: Msg, options: AskOptions = {}): Promise<Reply> {
    return this.#host.ask(this.#sender, this, msg, options.urgent ?? false, options.timeoutMs ?? 5000) as Promise<Reply>;
  }

  /** True if both references name the same incarnation. */
  equals(other: RefShape): boolean {
    return this.name === other.name && this.incarnation === other.incarnation && this.thread === other.thread;
  }

  /** `name#incarnation`. */
  toString(): string {
    return `${this.name}#${this.incarnation}`;
  }
}

/** Formats a reference shape as `name#incarnation`. */
export function refLabel(ref: { readonly name: string; readonly incarnation: number }): string {
  return `${ref.name}#${ref.incarnation}`;
}
