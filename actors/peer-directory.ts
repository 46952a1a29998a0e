/**
 * References to a fixed set of named actors whose incarnations come and go (replicas restarted
 * by their supervisor). A reference is looked up on first use and watched; when its incarnation
 * ends, or a message to it comes back undeliverable, it is forgotten and the next send looks the
 * name up again. Sends to one peer keep their order, lookups included.
 */
import type { ActorContext, ActorRef, Signal } from '../runtime/index.js';

/** Named peers of one actor. */
export class PeerDirectory {
  readonly #ctx: Pick<ActorContext<unknown>, 'lookup' | 'watch'>;
  readonly #names: readonly string[];
  readonly #refs = new Map<number, Promise<ActorRef | undefined>>();

  /** Peers of the actor with context `ctx`; peer i is the actor named `names[i]`. */
  constructor(ctx: Pick<ActorContext<unknown>, 'lookup' | 'watch'>, names: readonly string[]) {
    this.#ctx = ctx;
    this.#names = names;
  }

  /** Sends `msg` to peer `i` if it runs (else the message is lost, as on a network). */
  tell(i: number, msg: unknown, urgent = false): void {
    void this.#ref(i).then((ref) => ref?.tell(msg, { urgent }));
  }

  /** Forgets references made stale by `signal`; pass every signal the actor receives. */
  signal(signal: Signal): void {
    const name = signal.type === 'terminated' ? signal.ref.name : signal.to.name;
    const i = this.#names.indexOf(name);
    if (i >= 0) this.#refs.delete(i);
  }

  #ref(i: number): Promise<ActorRef | undefined> {
    let ref = this.#refs.get(i);
    if (ref === undefined) {
      const name = this.#names[i];
      if (name === undefined) return Promise.resolve(undefined);
      ref = this.#ctx.lookup(name).then((found) => {
        if (found === undefined) this.#refs.delete(i);
        else this.#ctx.watch(found);
        return found;
      });
      this.#refs.set(i, ref);
    }
    return ref;
  }
}
