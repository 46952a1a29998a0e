/**
 * Runs the ledger (ledger.ts) on a four-replica PBFT cluster with hybrid signatures: deposits and
 * transfers, one refused, a replica crashed and restarted meanwhile, every replica's ledger
 * compared, the last command's receipt verified. Exits 1 if replicas differ or the receipt fails.
 * Run it with `node dist/examples/ledger/main.js`.
 * @module
 */
import { ActorSystem, verifyReceipt, type Submitted } from '../../index.js';
import { Ledger, ledgerPayload, ledgerResponse, type LedgerOperation } from './ledger.js';

const system = await ActorSystem.start();
try {
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, stateMachine: Ledger, stateMachineArgs: { overdraft: 0 } });
  const run = async (operation: LedgerOperation): Promise<Submitted> => {
    const submitted = await cluster.submit(ledgerPayload(operation));
    console.log(`${JSON.stringify(operation)} → ${JSON.stringify(ledgerResponse(submitted.response))} (position ${submitted.position})`);
    return submitted;
  };
  await run({ type: 'deposit', account: 'alice', amount: 100 });
  await run({ type: 'transfer', from: 'alice', to: 'bob', amount: 30 });
  await run({ type: 'transfer', from: 'bob', to: 'carol', amount: 50 });
  await cluster.crash(3);
  console.log('replica 3 crashed');
  await run({ type: 'transfer', from: 'alice', to: 'carol', amount: 50 });
  await cluster.restart(3);
  console.log('replica 3 restarted from its store');
  const last = await run({ type: 'transfer', from: 'carol', to: 'bob', amount: 20 });
  await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, last.position)));
  const ledgers = new Set((await cluster.status()).map((replica) => replica.stateHash));
  console.log(ledgers.size === 1 ? `every replica holds the same ledger (${[...ledgers][0]?.slice(0, 16)}…)` : `replicas hold ${ledgers.size} different ledgers`);
  const verdict = verifyReceipt(await last.receipt, cluster.trust);
  console.log(`receipt of position ${last.position}: ${verdict.ok ? 'verified' : `invalid (${JSON.stringify(verdict)})`}`);
  if (ledgers.size !== 1 || !verdict.ok) process.exitCode = 1;
} finally {
  await system.stop();
}
