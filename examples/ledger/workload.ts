/**
 * Ledger commands for the deterministic simulator: deposits and transfers among three accounts,
 * drawn from the run's random stream. `knhk sim` takes it with the ledger itself:
 *
 * ```sh
 * knhk sim --state-machine dist/examples/ledger/ledger.js#Ledger --state-machine-args '{"overdraft":5}' \
 *          --workload dist/examples/ledger/workload.js#ledgerWorkload
 * ```
 * @module
 */
import type { Workload } from '../../protocols/sim/index.js';
import { ledgerPayload } from './ledger.js';

const ACCOUNTS = ['alice', 'bob', 'carol'];

/** Deposits three times in ten, transfers otherwise; a transfer may overdraw, and is refused then. */
export const ledgerWorkload: Workload = (random) => {
  const amount = 1 + random.int(10);
  if (random.chance(0.3)) return ledgerPayload({ type: 'deposit', account: random.pick(ACCOUNTS), amount });
  const [from = 'alice', to = 'bob'] = random.shuffle(ACCOUNTS);
  return ledgerPayload({ type: 'transfer', from, to, amount });
};
