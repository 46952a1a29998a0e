/**
 * Actors of the actor benchmark (loaded by worker threads by URL).
 */
import { defineBehavior, t, type ActorRef } from '../runtime/index.js';

const Payload = { seq: t.uint(), body: t.bytes() };

/** A message as the benchmark's actors carry it. */
export interface BenchMessage {
  readonly seq: number;
  readonly body: Uint8Array;
}

/** Answers every `ping` with its payload. */
export const Echo = defineBehavior({
  module: import.meta.url,
  export: 'Echo',
  messages: t.variants({ ping: Payload }),
  replies: t.object(Payload),
  start() {
    return {
      receive(msg, from) {
        from.reply({ seq: msg.seq, body: msg.body });
      },
    };
  },
});

/**
 * Counts every `data` since it started; an `expect` ask is answered once the count reaches its
 * `total`. A running total, because the driver's `expect` and a source's data reach the sink over
 * different ports, in either order: a count reset by `expect` would lose what came first.
 */
export const Sink = defineBehavior({
  module: import.meta.url,
  export: 'Sink',
  messages: t.variants({ data: Payload, expect: { total: t.uint() } }),
  replies: t.uint(),
  start() {
    let received = 0;
    let waiting: { total: number; reply: (n: number) => void } | undefined;
    return {
      receive(msg, from) {
        if (msg.type === 'expect') waiting = { total: msg.total, reply: (n) => from.reply(n) };
        else received++;
        if (waiting !== undefined && received >= waiting.total) {
          waiting.reply(received);
          waiting = undefined;
        }
      },
    };
  },
});

/** Sends `count` tells in one turn (`blast`), or `count` sequential asks (`pingpong`); answers the elapsed ms. */
export const Source = defineBehavior({
  module: import.meta.url,
  export: 'Source',
  messages: t.variants({
    blast: { to: t.ref<ActorRef<{ type: 'data' } & BenchMessage>>(), count: t.uint(), size: t.uint() },
    pingpong: { to: t.ref<ActorRef<{ type: 'ping' } & BenchMessage, BenchMessage>>(), count: t.uint(), size: t.uint() },
  }),
  replies: t.number(),
  start() {
    return {
      async receive(msg, from) {
        const body = new Uint8Array(msg.size).fill(7);
        const t0 = performance.now();
        if (msg.type === 'blast') {
          for (let seq = 0; seq < msg.count; seq++) msg.to.tell({ type: 'data', seq, body });
        } else {
          for (let seq = 0; seq < msg.count; seq++) await msg.to.ask({ type: 'ping', seq, body });
        }
        from.reply(performance.now() - t0);
      },
    };
  },
});
