/**
 * Seeds for randomized tests: taken from KNHK_SEED when set (to replay a failure), otherwise
 * drawn fresh; always logged so that any failing run names the seed that reproduces it.
 */
import type { ExecutionContext } from 'ava';

/** The seed for this test, logged in the test's output. */
export function testSeed(t: ExecutionContext): number {
  const fromEnv = process.env.KNHK_SEED;
  const seed = fromEnv === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(fromEnv);
  t.log(`seed ${seed} (replay with KNHK_SEED=${seed})`);
  // ava shows t.log only when a test ends; a test that hangs past its timeout must still name its seed.
  process.stderr.write(`${t.title}: seed ${seed}\n`);
  return seed;
}
