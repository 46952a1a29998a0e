/**
 * The runtime demo (`npm start`): three counters in worker threads under a `rest_for_one`
 * supervisor take a burst of traffic; one is crashed on purpose; the supervisor restarts it and
 * the one started after it; garbage bytes are sent and become a dead letter; the system stops.
 * Replicated clusters replace this demo once the consensus layers land.
 */
import { ActorSystem, defineBehavior, t } from '../index.js';

/** A counter that can be told to crash. */
export const DemoCounter = defineBehavior({
  module: import.meta.url,
  export: 'DemoCounter',
  messages: t.variants({ add: { n: t.int() }, get: {}, crash: {} }),
  replies: t.int(),
  start() {
    let total = 0;
    return {
      receive(msg, from) {
        if (msg.type === 'add') total += msg.n;
        else if (msg.type === 'get') from.reply(total);
        else throw new Error('crash requested by the demo');
      },
    };
  },
});

/** Runs the demo, writing its narrative to `out`. */
export async function runDemo(out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  const system = await ActorSystem.start();
  try {
    system.onDeadLetter((letter) => out(`dead letter for ${letter.to}: ${letter.reason} (${letter.error?.code ?? 'no error'})`));
    const sup = await system.supervisor({ name: 'counters', strategy: 'rest_for_one', intensity: 3, periodMs: 10_000 });
    const names = ['alpha', 'beta', 'gamma'];
    for (const name of names) await sup.spawn(DemoCounter, { name, thread: true });
    out(`started ${names.join(', ')} in worker threads under a rest_for_one supervisor`);

    const t0 = performance.now();
    const burst = 30_000;
    for (let i = 0; i < burst; i++) system.lookup<{ type: 'add'; n: number }>(names[i % 3] as string)?.tell({ type: 'add', n: 1 });
    const totals = await Promise.all(names.map((name) => system.lookup<{ type: 'get' }, number>(name)?.ask({ type: 'get' })));
    out(`${burst} tells delivered in ${(performance.now() - t0).toFixed(1)} ms; totals ${totals.join(', ')}`);

    const beta = system.lookup<{ type: 'crash' }>('beta');
    if (!beta) throw new Error('beta is not running');
    const ended = system.watch(beta);
    beta.tell({ type: 'crash' });
    const reason = await ended;
    out(`beta#0 ended: ${reason.kind === 'crash' ? reason.error.message : reason.kind}`);
    while (!sup.children().every((c) => c.running && c.incarnation === (c.name === 'alpha' ? 0 : 1))) await new Promise((r) => setTimeout(r, 10));
    out(`restarts: ${sup.children().map((c) => `${c.name}=${c.restarts}`).join(' ')} (gamma was started after beta, so it restarted too)`);

    const gamma = system.lookup('gamma');
    if (gamma) system.injectRaw(gamma, new Uint8Array([0xc1, 0xff, 0x00]));
    const after = await Promise.all(names.map((name) => system.lookup<{ type: 'get' }, number>(name)?.ask({ type: 'get' })));
    out(`after the crash: totals ${after.join(', ')} (restarted actors start fresh)`);
    const status = await system.control(system.lookup('alpha') as NonNullable<ReturnType<typeof system.lookup>>).status();
    out(`alpha handled ${status.handler.handled} messages, longest ${status.handler.maxTicks.toFixed(1)} ticks of 125 µs`);
  } finally {
    await system.stop();
    out('system stopped');
  }
}
