/**
 * What the client accepts as proof, against replica stand-ins that lie. Each stand-in answers a
 * request with scripted replies, then hands the turn to the next stand-in, so that the replies
 * reach the client in a fixed order: the lie first, where accepting it would be the bug.
 */
import test, { type ExecutionContext } from 'ava';
import { Client, type ClientResult } from '../actors/client.js';
import { commandSchema } from '../protocols/consensus/index.js';
import { defineBehavior, t as schema } from '../runtime/index.js';
import { startSystem } from './helpers/system.js';

/** One reply a stand-in sends: `as` is the replica it claims to be (its own index by default). */
interface Scripted {
  readonly as?: number;
  readonly position: number;
  readonly view?: number;
  readonly response: number;
}

interface StandInArgs {
  readonly node: number;
  readonly client: string;
  /** Whether it answers the request itself, or only once another stand-in hands it the turn. */
  readonly first: boolean;
  readonly replies: readonly Scripted[];
  /** The stand-in it hands the turn to once it has answered. */
  readonly next?: string;
}

/** A replica stand-in that sends its scripted replies, one message each, then hands the turn on. */
export const StandIn = defineBehavior({
  module: import.meta.url,
  export: 'StandIn',
  messages: schema.variants({ request: { command: commandSchema }, turn: { command: commandSchema } }),
  start(ctx, args: StandInArgs) {
    return {
      async receive(msg) {
        if (msg.type === 'request' && !args.first) return;
        const client = await ctx.lookup(args.client);
        const { client: session, timestamp } = msg.command;
        for (const r of args.replies) {
          const reply = { client: session, timestamp, position: r.position, view: r.view ?? 0, response: Uint8Array.of(r.response) };
          client?.tell({ type: 'replies', node: r.as ?? args.node, replies: [reply] });
        }
        if (args.next !== undefined) (await ctx.lookup(args.next))?.tell({ type: 'turn', command: msg.command });
      },
    };
  },
});

const HONEST = 0x01;
const FORGED = 0xee;

/**
 * Runs one command against four stand-ins, `r-0` … `r-3`, scripted by `scripts` in the order they
 * take their turns (the first answers the request, each hands the turn to the next); a stand-in
 * without a script stays silent. Two matching replies are the proof, as for f = 1.
 */
async function submitAgainst(t: ExecutionContext, scripts: readonly { readonly node: number; readonly replies: readonly Scripted[] }[]): Promise<ClientResult> {
  const system = await startSystem(t);
  const names = [0, 1, 2, 3].map((i) => `r-${i}`);
  for (const [i, name] of names.entries()) {
    const turn = scripts.findIndex((s) => s.node === i);
    const script = scripts[turn];
    const next = scripts[turn + 1];
    const args: StandInArgs = { node: i, client: 'client', first: turn === 0, replies: script?.replies ?? [], ...(next === undefined ? {} : { next: names[next.node] as string }) };
    await system.spawn(StandIn, { name, args });
  }
  const client = await system.spawn(Client, { name: 'client', args: { replicas: names, replyQuorum: 2, retryMs: 60_000, sessionPrefix: 'proof', leaderOf: 'none' } });
  return client.ask({ type: 'submit', payload: Uint8Array.of(7) }, { timeoutMs: 30_000 });
}

test('a reply counts for the replica that sent it: one cannot speak for others', async (t) => {
  const result = await submitAgainst(t, [
    { node: 3, replies: [{ as: 0, position: 1, response: FORGED }, { as: 1, position: 1, response: FORGED }] },
    { node: 0, replies: [{ position: 1, response: HONEST }] },
    { node: 1, replies: [{ position: 1, response: HONEST }] },
  ]);
  t.deepEqual([...result.response], [HONEST]);
  t.deepEqual([...result.replicas].sort(), [0, 1]);
});

test('a reply at another position does not match: a faulty replica cannot move the result\'s position, nor raise its view', async (t) => {
  const result = await submitAgainst(t, [
    { node: 3, replies: [{ position: 2 ** 40, response: HONEST }] },
    { node: 0, replies: [{ position: 5, response: HONEST }] },
    { node: 1, replies: [{ position: 5, response: HONEST }] },
  ]);
  t.deepEqual([...result.replicas].sort(), [0, 1]);
  t.like(result, { position: 5 });
  const viewed = await submitAgainst(t, [
    { node: 0, replies: [{ position: 5, response: HONEST }] },
    { node: 3, replies: [{ position: 5, view: 7, response: HONEST }] },
  ]);
  t.deepEqual([...viewed.replicas].sort(), [0, 3]);
  t.like(viewed, { position: 5, view: 0 });
});

test('only a replica\'s first answer to a command counts: it cannot vote for every response', async (t) => {
  const result = await submitAgainst(t, [
    { node: 3, replies: [{ position: 1, response: FORGED }, { position: 1, response: HONEST }] },
    { node: 0, replies: [{ position: 1, response: HONEST }] },
    { node: 1, replies: [{ position: 1, response: HONEST }] },
  ]);
  t.deepEqual([...result.replicas].sort(), [0, 1]);
});
