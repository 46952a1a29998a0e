/**
 * References to a fixed set of named actors whose incarnations come and go (replicas restarted
 * by their supervisor). A reference is looked up on first use and watched; when its incarnation
 * ends, or a message to it comes back undeliverable, it is forgotten and the next send looks the
 * name up again. A message from a newer incarnation replaces the reference at once: a restarted
 * peer's first words can arrive before the news that its predecessor ended, and an answer sent to
 * the predecessor would be lost. Sends to one peer keep their order, lookups included.
 */
import type { ActorContext, ActorRef, Signal } from '../runtime/index.js';

/** Named peers of one actor. */
export class PeerDirectory {
  readonly #ctx: Pick<ActorContext<unknown>, 'lookup' | 'watch'>;
  readonly #names: readonly string[];
  readonly #refs = new Map<number, Promise<ActorRef | undefined>>();
  /** The newest incarnation of each peer that this directory knows of. */
  readonly #newest = new Map<number, ActorRef>();
  /** The last incarnation of each peer known to have ended: its late messages must not bring it back. */
  readonly #ended = new Map<number, number>();

  /** Peers of the actor with context `ctx`; peer i is the actor named `names[i]`. */
  constructor(ctx: Pick<ActorContext<unknown>, 'lookup' | 'watch'>, names: readonly string[]) {
    this.#ctx = ctx;
    this.#names = names;
  }

  /** Sends `msg` to peer `i` if it runs (else the message is lost, as on a network). */
  tell(i: number, msg: unknown, urgent = false): void {
    void this.#ref(i).then((ref) => ref?.tell(msg, { urgent }));
  }

  /** Takes note of the sender of a message received (`from.ref`): a newer incarnation of a peer replaces the one in use. */
  heard(ref: ActorRef | undefined): void {
    const i = ref === undefined ? -1 : this.#names.indexOf(ref.name);
    if (ref === undefined || i < 0 || !this.#isNewer(i, ref)) return;
    this.#ctx.watch(ref);
    // After the sends already waiting on a lookup, so that they keep their order.
    this.#refs.set(i, (this.#refs.get(i) ?? Promise.resolve(undefined)).then(() => ref));
  }

  /** Forgets references made stale by `signal`; pass every signal the actor receives. */
  signal(signal: Signal): void {
    const ref = signal.type === 'terminated' ? signal.ref : signal.to;
    const i = this.#names.indexOf(ref.name);
    if (i < 0) return;
    // Only an exit ends an incarnation for good. Neither an undeliverable message (a full mailbox,
    // say) nor `noproc` does: a watch placed while the incarnation is still starting (it may talk
    // before its start returns and the system registers it) answers `noproc` too.
    if (signal.type === 'terminated' && signal.reason.kind !== 'noproc') this.#ended.set(i, Math.max(ref.incarnation, this.#ended.get(i) ?? -1));
    // The end of an incarnation older than the one in use says nothing about the peer.
    if (ref.incarnation >= (this.#newest.get(i)?.incarnation ?? -1)) {
      this.#refs.delete(i);
      this.#newest.delete(i);
    }
  }

  #isNewer(i: number, ref: ActorRef): boolean {
    if (ref.incarnation <= Math.max(this.#newest.get(i)?.incarnation ?? -1, this.#ended.get(i) ?? -1)) return false;
    this.#newest.set(i, ref);
    return true;
  }

  #ref(i: number): Promise<ActorRef | undefined> {
    let ref = this.#refs.get(i);
    if (ref === undefined) {
      const name = this.#names[i];
      if (name === undefined) return Promise.resolve(undefined);
      const lookup: Promise<ActorRef | undefined> = this.#ctx.lookup(name).then((found) => {
        if (found !== undefined && this.#isNewer(i, found)) this.#ctx.watch(found);
        // A newer incarnation heard from while the lookup ran stays in use.
        const newest = this.#newest.get(i);
        if (newest === undefined && this.#refs.get(i) === lookup) this.#refs.delete(i);
        return newest;
      });
      ref = lookup;
      this.#refs.set(i, ref);
    }
    return ref;
  }
}
