/**
 * Test helpers: a system that is stopped when the test ends, waiting for dead letters, and
 * polling for a condition (for effects that have no event of their own to await).
 */
import type { ExecutionContext } from 'ava';
import { ActorSystem, type ActorSystemOptions, type DeadLetter } from '../../runtime/index.js';

/** Starts a system that the test's teardown stops. */
export async function startSystem(t: ExecutionContext, options: ActorSystemOptions = {}): Promise<ActorSystem> {
  const system = await ActorSystem.start(options);
  t.teardown(() => system.stop());
  return system;
}

/** Resolves with the first dead letter matching `match`. */
export function nextDeadLetter(system: ActorSystem, match: (letter: DeadLetter) => boolean = () => true): Promise<DeadLetter> {
  return new Promise((resolve) => {
    const off = system.onDeadLetter((letter) => {
      if (!match(letter)) return;
      off();
      resolve(letter);
    });
  });
}

/** Polls `probe` until it returns true; fails after `timeoutMs` (generous: this is not a timing test). */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
