/**
 * Supervisors with Erlang/OTP semantics (OTP Design Principles, "Supervisor Behaviour"):
 *
 * - strategies `one_for_one` (restart the child that ended), `one_for_all` (terminate the others,
 *   restart all), `rest_for_one` (terminate those started after it, restart it and them);
 * - restart types `permanent` (always restarted), `transient` (restarted only after a crash),
 *   `temporary` (never restarted, forgotten when it ends);
 * - restart intensity: more than `intensity` restarts within `periodMs` and the supervisor
 *   terminates its children (last started first) and exits itself, which its own supervisor
 *   treats as a crash of a child; at the root, the actor system stops;
 * - optional exponential back-off before each restart; ordered shutdown with a per-child timeout.
 *
 * A worker thread that throws, exits or exceeds its resource limits is a crashed child, as is an
 * in-thread actor whose handler throws.
 */
import type { ResourceLimits } from 'node:worker_threads';
import type { ActorRef } from './actor-ref.js';
import type { Behavior, ExitReason } from './behavior.js';
import type { Clock } from './clock.js';
import { checkDelay, ConfigError, SystemStopped } from './errors.js';
import type { Incarnation, IncarnationSpec } from './incarnation.js';
import type { MailboxOptions } from './mailbox.js';

/** Which siblings are restarted with a child that ended. */
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/** When a child is restarted. */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** Exponential restart back-off: the n-th restart within the period waits min(max, initial·2ⁿ⁻¹). */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Options of a supervisor. Defaults are OTP's: one_for_one, intensity 1, period 5 s. */
export interface SupervisorOptions {
  readonly name: string;
  readonly strategy?: Strategy;
  readonly intensity?: number;
  readonly periodMs?: number;
  readonly backoff?: Backoff;
  /** How a supervisor child is restarted by its parent (default `permanent`). */
  readonly restart?: RestartType;
}

/** Options of an actor child. */
export interface SpawnOptions<Args> {
  /** Unique name within the system. */
  readonly name: string;
  /** Run in a worker thread of its own (default: in the calling thread). */
  readonly thread?: boolean;
  /** Start arguments (must be structured-cloneable when `thread` is set). */
  readonly args?: Args;
  /** Restart type (default `permanent`). */
  readonly restart?: RestartType;
  /** Milliseconds the actor has to stop before it is killed (default 5000; `Infinity` waits, like OTP's `infinity`). */
  readonly shutdownMs?: number;
  /** Mailbox capacity and overflow policy. */
  readonly mailbox?: MailboxOptions;
  /** V8 heap limits of the worker thread (exceeding them crashes the child). */
  readonly resourceLimits?: ResourceLimits;
}

/** A supervisor's view of one child. */
export interface ChildInfo {
  readonly name: string;
  readonly kind: 'actor' | 'supervisor';
  readonly restart: RestartType;
  /** Current (or last) incarnation number. */
  readonly incarnation: number;
  /** Restarts performed by this supervisor for this child. */
  readonly restarts: number;
  readonly running: boolean;
  /** How its latest incarnation to end by itself ended (a crash's error, as OTP's crash report gives it); undefined while none has. */
  readonly lastExit: ExitReason | undefined;
}

/** What a supervisor needs from the system. */
export interface SupervisorHost {
  readonly clock: Clock;
  /** Starts an incarnation; `onExit` fires once when it ends. */
  startIncarnation(spec: IncarnationSpec, onExit: (reason: ExitReason) => void): Promise<Incarnation>;
  /** Claims a name (throws if taken). */
  claimName(name: string): void;
  /** Releases a name. */
  releaseName(name: string): void;
  /** Makes a reference for the main thread. */
  ref<M, R>(shape: Incarnation['ref']): ActorRef<M, R>;
  /** Counts a restart. */
  restarted(name: string): void;
}

interface ChildSpec {
  readonly name: string;
  readonly kind: 'actor' | 'supervisor';
  readonly restart: RestartType;
  readonly shutdownMs: number;
  /** Starts the child; resolves with its stop function and (for actors) its incarnation. */
  start(incarnation: number, onExit: (reason: ExitReason) => void): Promise<{ incarnation?: Incarnation; shutdown(ms: number): Promise<void> }>;
  /** The child is forgotten, never to be restarted (a supervisor forgets its own children then). */
  forget?(): void;
}

class Child {
  readonly spec: ChildSpec;
  incarnation = -1;
  restarts = 0;
  lastExit: ExitReason | undefined;
  running: { incarnation?: Incarnation; shutdown(ms: number): Promise<void> } | undefined;
  /** Set while the supervisor itself is terminating this child: its exit is then expected. */
  terminating = false;

  constructor(spec: ChildSpec) {
    this.spec = spec;
  }
}

const isAbnormal = (reason: ExitReason): boolean => reason.kind === 'crash';

/** An OTP-style supervisor. Obtain one from `system.supervisor()` or another supervisor. */
export class Supervisor {
  readonly name: string;
  readonly strategy: Strategy;
  readonly intensity: number;
  readonly periodMs: number;
  readonly #backoff: Backoff | undefined;
  readonly #host: SupervisorHost;
  readonly #children: Child[] = [];
  readonly #subs = new Map<string, Supervisor>();
  #restartTimes: number[] = [];
  #state: 'running' | 'terminating' | 'stopped' = 'running';
  #queue: Promise<void> = Promise.resolve();
  #onExit: (reason: ExitReason) => void;
  #backoffWait: (() => void) | undefined;

  /** @internal Supervisors are created by the system or by a parent supervisor. */
  constructor(host: SupervisorHost, options: SupervisorOptions, onExit: (reason: ExitReason) => void) {
    this.name = options.name;
    this.strategy = options.strategy ?? 'one_for_one';
    this.intensity = options.intensity ?? 1;
    this.periodMs = options.periodMs ?? 5000;
    this.#backoff = options.backoff;
    this.#host = host;
    this.#onExit = onExit;
    if (!['one_for_one', 'one_for_all', 'rest_for_one'].includes(this.strategy)) throw new ConfigError(`unknown strategy ${this.strategy}`);
    if (!Number.isSafeInteger(this.intensity) || this.intensity < 0) throw new ConfigError(`intensity must be a non-negative integer, got ${this.intensity}`);
    if (!(this.periodMs > 0)) throw new ConfigError(`periodMs must be positive, got ${this.periodMs}`);
    if (this.#backoff && !(this.#backoff.initialMs >= 0 && this.#backoff.maxMs >= this.#backoff.initialMs)) throw new ConfigError('backoff needs 0 <= initialMs <= maxMs');
  }

  /** True until the supervisor has shut down (by request or because it gave up). */
  get running(): boolean {
    return this.#state === 'running';
  }

  /** Starts an actor as a child of this supervisor and returns a reference to its first incarnation. */
  async spawn<Msg, Args, Reply>(behavior: Behavior<Msg, Args, Reply>, options: SpawnOptions<Args>): Promise<ActorRef<Msg, Reply>> {
    const shutdownMs = options.shutdownMs ?? 5000;
    if (shutdownMs !== Infinity) checkDelay(shutdownMs, 'shutdownMs');
    const spec: ChildSpec = {
      name: options.name,
      kind: 'actor',
      restart: options.restart ?? 'permanent',
      shutdownMs,
      start: async (incarnation, onExit) => {
        const running = await this.#host.startIncarnation(
          {
            behavior: behavior as Behavior<unknown, unknown, unknown>,
            name: options.name,
            incarnation,
            args: options.args,
            thread: options.thread ?? false,
            mailbox: options.mailbox,
            resourceLimits: options.resourceLimits,
          },
          onExit,
        );
        return { incarnation: running, shutdown: (ms) => running.shutdown(ms) };
      },
    };
    const child = await this.#add(spec);
    return this.#host.ref<Msg, Reply>((child.running?.incarnation as Incarnation).ref);
  }

  /** Starts a child supervisor. */
  async supervisor(options: SupervisorOptions): Promise<Supervisor> {
    let current: Supervisor | undefined;
    const spec: ChildSpec = {
      name: options.name,
      kind: 'supervisor',
      restart: options.restart ?? 'permanent',
      shutdownMs: Infinity,
      start: async (_incarnation, onExit) => {
        // A restarted supervisor starts again with the children it was given before.
        current = current ? current.#restartWith(onExit) : new Supervisor(this.#host, options, onExit);
        this.#subs.set(options.name, current);
        if (current.#children.length > 0) await current.#startAll(current.#children);
        const sup = current;
        return { shutdown: () => sup.shutdown() };
      },
      forget: () => {
        if (current !== undefined) current.#forgetChildren();
      },
    };
    await this.#add(spec);
    return current as Supervisor;
  }

  /** The children, in start order. */
  children(): ChildInfo[] {
    return this.#children.map((c) => ({
      name: c.spec.name,
      kind: c.spec.kind,
      restart: c.spec.restart,
      incarnation: c.incarnation,
      restarts: c.restarts,
      running: c.running !== undefined,
      lastExit: c.lastExit,
    }));
  }

  /** This supervisor and every supervisor below it, parents first. */
  tree(): Supervisor[] {
    return [this, ...[...this.#subs.values()].flatMap((sub) => sub.tree())];
  }

  /** Terminates a child and forgets it. */
  stopChild(name: string): Promise<void> {
    return this.#serial(async () => {
      const child = this.#children.find((c) => c.spec.name === name);
      if (!child) return;
      await this.#terminate(child);
      this.#forget(child);
    });
  }

  /**
   * Terminates a child but keeps it, not to be restarted until {@link restartChild} (OTP's
   * `supervisor:terminate_child/2`). With `kill`, the child is ended as by OTP's `brutal_kill`:
   * a worker thread is terminated wherever it is, mid-write included, with no chance to clean up.
   */
  terminateChild(name: string, options: { readonly kill?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      const child = this.#named(name);
      const running = child.running;
      if (!running) return;
      if (options.kill && running.incarnation) {
        child.terminating = true;
        await running.incarnation.control.kill('terminated by its supervisor');
        child.running = undefined;
      } else await this.#terminate(child);
    });
  }

  /**
   * Starts a child that {@link terminateChild} terminated, as a new incarnation (OTP's
   * `supervisor:restart_child/2`). Counted as a restart, but not against the restart intensity:
   * it was asked for. A child that is running is left alone.
   */
  restartChild(name: string): Promise<void> {
    return this.#serial(async () => {
      const child = this.#named(name);
      if (child.running) return;
      child.restarts++;
      this.#host.restarted(name);
      await this.#start(child);
    });
  }

  #named(name: string): Child {
    const child = this.#children.find((c) => c.spec.name === name);
    if (!child) throw new ConfigError(`${this.name} has no child named ${JSON.stringify(name)}`);
    return child;
  }

  /** Terminates all children, last started first, and stops this supervisor. */
  shutdown(): Promise<void> {
    if (this.#state !== 'running') return this.#queue;
    this.#state = 'terminating';
    this.#backoffWait?.();
    return this.#serial(async () => {
      await this.#terminateAll(this.#children);
      this.#state = 'stopped';
    }, true);
  }

  #restartWith(onExit: (reason: ExitReason) => void): Supervisor {
    this.#onExit = onExit;
    this.#state = 'running';
    this.#restartTimes = [];
    return this;
  }

  #serial(work: () => Promise<void>, evenIfStopped = false): Promise<void> {
    const next = this.#queue.then(() => (this.#state === 'running' || evenIfStopped ? work() : undefined));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #add(spec: ChildSpec): Promise<Child> {
    if (this.#state !== 'running') return Promise.reject(new SystemStopped());
    return new Promise<Child>((resolve, reject) => {
      void this.#serial(async () => {
        this.#host.claimName(spec.name);
        const child = new Child(spec);
        try {
          await this.#start(child);
        } catch (error) {
          this.#host.releaseName(spec.name);
          throw error;
        }
        this.#children.push(child);
        resolve(child);
      }).catch(reject);
    });
  }

  async #start(child: Child): Promise<void> {
    const incarnation = ++child.incarnation;
    child.terminating = false;
    child.running = await child.spec.start(incarnation, (reason) => {
      void this.#serial(() => this.#childExited(child, incarnation, reason));
    });
  }

  async #startAll(children: readonly Child[]): Promise<void> {
    for (const child of children) {
      if (child.running) continue;
      try {
        await this.#start(child);
      } catch (error) {
        // A child that cannot be restarted counts as one more crash (OTP retries, then gives up).
        // The retry is queued, as OTP's supervisor sends itself `try_again_restart`: exits that
        // arrived meanwhile are handled first, since the child may fail to start precisely
        // because a sibling whose exit is waiting in the queue is down.
        const reason: ExitReason = { kind: 'crash', error: { name: 'SpawnError', message: error instanceof Error ? error.message : String(error) } };
        void this.#serial(() => this.#childExited(child, child.incarnation, reason));
        // one_for_one declares its children independent (a child that needs an earlier sibling
        // belongs under rest_for_one, as in OTP): the siblings after it start now. Under the
        // other strategies they depend on it, and the retry restarts them with it.
        if (this.strategy !== 'one_for_one') return;
      }
    }
  }

  async #childExited(child: Child, incarnation: number, reason: ExitReason): Promise<void> {
    // Exits the supervisor caused itself, and exits of incarnations already replaced, are expected.
    if (incarnation !== child.incarnation || child.terminating || this.#state !== 'running') return;
    child.running = undefined;
    child.lastExit = reason;
    if (!this.#children.includes(child)) return;
    if (child.spec.restart === 'temporary') {
      this.#forget(child);
      return;
    }
    if (child.spec.restart === 'transient' && !isAbnormal(reason)) return;

    const now = this.#host.clock.now();
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < this.periodMs);
    this.#restartTimes.push(now);
    if (this.#restartTimes.length > this.intensity) {
      await this.#giveUp();
      return;
    }
    if (this.#backoff) {
      const n = this.#restartTimes.length;
      await this.#sleep(Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (n - 1)));
      if (this.#state !== 'running') return;
    }

    const index = this.#children.indexOf(child);
    const affected =
      this.strategy === 'one_for_one' ? [child] : this.strategy === 'one_for_all' ? [...this.#children] : this.#children.slice(index);
    await this.#terminateAll(affected.filter((c) => c !== child));
    const restarting = affected.filter((c) => this.#children.includes(c));
    for (const c of restarting) {
      c.restarts++;
      this.#host.restarted(c.spec.name);
    }
    await this.#startAll(restarting);
  }

  async #giveUp(): Promise<void> {
    this.#state = 'terminating';
    await this.#terminateAll(this.#children);
    this.#state = 'stopped';
    this.#onExit({
      kind: 'crash',
      error: { name: 'Escalation', code: 'MAX_RESTART_INTENSITY', message: `${this.name}: more than ${this.intensity} restarts within ${this.periodMs} ms` },
    });
  }

  /** Terminates children, last started first; temporary ones are then forgotten (OTP never restarts them). */
  async #terminateAll(children: readonly Child[]): Promise<void> {
    for (const child of [...children].reverse()) {
      await this.#terminate(child);
      if (child.spec.restart === 'temporary') this.#forget(child);
    }
  }

  async #terminate(child: Child): Promise<void> {
    const running = child.running;
    if (!running) return;
    child.terminating = true;
    await running.shutdown(child.spec.shutdownMs);
    child.running = undefined;
  }

  #forget(child: Child): void {
    const index = this.#children.indexOf(child);
    if (index >= 0) this.#children.splice(index, 1);
    this.#subs.delete(child.spec.name);
    child.spec.forget?.();
    this.#host.releaseName(child.spec.name);
  }

  /**
   * This supervisor was forgotten by its parent, stopped for good: so are its children, whose
   * names are free again. A supervisor its parent restarts keeps them, to start them again.
   */
  #forgetChildren(): void {
    for (const child of [...this.#children]) this.#forget(child);
  }

  /** A back-off wait that shutdown can cut short (it would otherwise queue behind it). */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handle = this.#host.clock.setTimer(() => {
        this.#backoffWait = undefined;
        resolve();
      }, ms);
      this.#backoffWait = () => {
        this.#host.clock.clearTimer(handle);
        this.#backoffWait = undefined;
        resolve();
      };
    });
  }
}
