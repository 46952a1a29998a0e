/**
 * The replicas' directory of peers: which incarnation of a restarted peer messages go to.
 */
import test from 'ava';
import { PeerDirectory } from '../actors/peer-directory.js';
import type { ActorRef, Signal } from '../runtime/index.js';

/** A stand-in for one incarnation of a named actor that records what it was told. */
function incarnation(name: string, n: number, inbox: string[]): ActorRef {
  return { name, incarnation: n, tell: (msg: unknown) => void inbox.push(`${n}:${String(msg)}`) } as unknown as ActorRef;
}

/** A context whose registry answers lookups with `registered()`, after `gate` opens. */
function context(registered: () => ActorRef | undefined, gate: Promise<void> = Promise.resolve()) {
  const watched: number[] = [];
  return {
    watched,
    ctx: {
      lookup: async () => {
        await gate;
        return registered();
      },
      watch: (ref: ActorRef) => void watched.push(ref.incarnation),
    } as unknown as ConstructorParameters<typeof PeerDirectory>[0],
  };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a message from a newer incarnation redirects sends to it before the news of the old one ending arrives', async (t) => {
  const inbox: string[] = [];
  const old = incarnation('replica-3', 0, inbox);
  const restarted = incarnation('replica-3', 1, inbox);
  let registered: ActorRef = old;
  const { ctx, watched } = context(() => registered);
  const peers = new PeerDirectory(ctx, ['replica-0', 'replica-3']);
  peers.tell(1, 'a');
  await settle();
  registered = restarted;
  // The restarted replica speaks; its predecessor's termination has not been signalled yet.
  peers.heard(restarted);
  peers.tell(1, 'b');
  await settle();
  t.deepEqual(inbox, ['0:a', '1:b'], 'the answer reaches the incarnation that asked');
  peers.heard(old);
  peers.signal({ type: 'terminated', ref: old, reason: { kind: 'noproc' } } as Signal);
  peers.tell(1, 'c');
  await settle();
  t.deepEqual(inbox, ['0:a', '1:b', '1:c'], 'a late word from, or the end of, the old incarnation changes nothing');
  t.deepEqual(watched, [0, 1]);
  peers.signal({ type: 'undeliverable', to: restarted, code: 'DEAD', message: 'gone' } as Signal);
  registered = incarnation('replica-3', 2, inbox);
  peers.tell(1, 'd');
  await settle();
  t.deepEqual(inbox.at(-1), '2:d', 'the end of the incarnation in use makes the next send look the name up again');
});

test('a late message from an incarnation already known to have ended does not bring it back', async (t) => {
  const inbox: string[] = [];
  const dead = incarnation('replica-2', 5, inbox);
  const restarted = incarnation('replica-2', 6, inbox);
  let registered: ActorRef | undefined;
  const { ctx } = context(() => registered);
  const peers = new PeerDirectory(ctx, ['replica-2']);
  peers.heard(dead);
  // Signals take the urgent lane: the end can overtake the dead incarnation's last messages.
  peers.signal({ type: 'terminated', ref: dead, reason: { kind: 'crash', error: { name: 'Error', message: 'killed' } } } as Signal);
  peers.heard(dead);
  registered = restarted;
  peers.tell(0, 'x');
  await settle();
  t.deepEqual(inbox, ['6:x'], 'the next send looks the name up and reaches the live incarnation');
  // An undeliverable message does not mean the incarnation ended: it stays usable.
  peers.signal({ type: 'undeliverable', to: restarted, code: 'MAILBOX_FULL', message: 'full' } as Signal);
  peers.tell(0, 'y');
  await settle();
  t.deepEqual(inbox, ['6:x', '6:y']);
  // Nor does noproc: a watch placed while the incarnation was still starting gets it. Its next words count.
  peers.signal({ type: 'terminated', ref: restarted, reason: { kind: 'noproc' } } as Signal);
  peers.heard(restarted);
  peers.tell(0, 'z');
  await settle();
  t.deepEqual(inbox, ['6:x', '6:y', '6:z']);
});

test('sends keep their order when a newer incarnation is heard of while a lookup is pending', async (t) => {
  const inbox: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const restarted = incarnation('replica-1', 4, inbox);
  const { ctx } = context(() => incarnation('replica-1', 3, inbox), gate);
  const peers = new PeerDirectory(ctx, ['replica-1']);
  peers.tell(0, 'first');
  peers.heard(restarted);
  peers.tell(0, 'second');
  peers.heard({ name: 'someone-else', incarnation: 9 } as unknown as ActorRef);
  peers.heard(undefined);
  open();
  await settle();
  t.deepEqual(inbox, ['4:first', '4:second'], 'the lookup answered with an older incarnation; the newer one heard of wins, in order');
});
