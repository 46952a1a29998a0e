/**
 * Clusters on worker threads replicating a state machine of their user's (the ledger of
 * examples/ledger): each replica makes it in its thread from its definition and arguments,
 * executes it, stores it, brings it back after a crash and a whole restart, answers a command it
 * throws on, and refuses a store another machine wrote.
 */
import test from 'ava';
import { ActorSystem } from '../actors/system.js';
import { statusLine } from '../actors/cluster.js';
import { lockDataDir } from '../actors/data-dir-lock.js';
import { ConfigError } from '../runtime/index.js';
import { verifyReceipt } from '../protocols/receipts/index.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Ledger, LedgerMachine, ledgerPayload, ledgerResponse, type LedgerOperation } from '../examples/ledger/ledger.js';
import { Misplaced, POISON, ThrowingLedger } from './fixtures/state-machines.js';
import { command, kvResponse } from '../protocols/consensus/index.js';
import { testSeed } from './helpers/seed.js';
import { tempDir } from './helpers/temp.js';

test.serial('a cluster replicates a state machine of its own, made in every replica thread from its definition and arguments, through a crash, a restart and a whole-cluster restart, and answers a command it throws on', async (t) => {
  t.timeout(180_000);
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const options = {
    id: 'ledger',
    protocol: 'pbft',
    n: 4,
    policy: 'classical',
    dataDir: await tempDir(t, 'knhk-ledger-'),
    passphrase: 'ledger',
    kdfLog2N: 10,
    seed: testSeed(t),
    snapshotInterval: 2,
    stateMachine: ThrowingLedger,
    stateMachineArgs: { overdraft: 5 },
  } as const;
  let cluster = await system.spawnCluster(options);
  t.is(cluster.stateMachine, ThrowingLedger.name);
  await t.throwsAsync(cluster.submit({ type: 'put', key: 'k', value: 'v' }), { instanceOf: ConfigError, message: /key-value operation.*knhk-test\/throwing-ledger/ });
  // What the replicas must end with: the same machine, applying the same commands here.
  const local = new LedgerMachine(5);
  const submit = async (operation: LedgerOperation) => {
    const submitted = await cluster.submit(ledgerPayload(operation));
    const expected = local.apply(command('local', 0, ledgerPayload(operation)));
    t.deepEqual(ledgerResponse(submitted.response), ledgerResponse(expected), JSON.stringify(operation));
    return submitted;
  };
  t.deepEqual(ledgerResponse((await submit({ type: 'deposit', account: 'alice', amount: 10 })).response), { ok: true, balances: { alice: 10 } });
  // The overdraft the cluster was given, 5, lets alice go to -5 and no further.
  t.deepEqual(ledgerResponse((await submit({ type: 'transfer', from: 'alice', to: 'bob', amount: 15 })).response), { ok: true, balances: { alice: -5, bob: 15 } });
  t.deepEqual(ledgerResponse((await submit({ type: 'transfer', from: 'alice', to: 'bob', amount: 1 })).response), { ok: false, reason: 'insufficient funds' });
  t.deepEqual(ledgerResponse((await cluster.submit(new TextEncoder().encode('{ not json'))).response), { ok: false, reason: 'malformed' });
  // A command the machine throws on is answered empty at every replica, which go on.
  t.deepEqual([...(await cluster.submit(POISON)).response], []);

  await cluster.crash(3);
  for (let k = 0; k < 6; k++) await submit({ type: 'transfer', from: 'bob', to: `carol-${k % 2}`, amount: 2 });
  await cluster.restart(3);
  const last = await submit({ type: 'deposit', account: 'dave', amount: 7 });
  await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, last.position, { timeoutMs: 90_000 })));
  const status = await cluster.status();
  t.log(status.map(statusLine).join('\n'));
  const expected = Buffer.from(local.hash()).toString('hex');
  t.deepEqual(
    status.map((s) => s.stateHash),
    status.map(() => expected),
    'every replica, the restarted one too, holds the ledger the commands make',
  );
  t.true(verifyReceipt(await last.receipt, cluster.trust).ok, 'the receipt of a ledger command verifies');

  // Stopped whole and spawned again, the replicas restore the ledger from their stores.
  await cluster.stop();
  cluster = await system.spawnCluster(options);
  const after = await submit({ type: 'transfer', from: 'dave', to: 'alice', amount: 7 });
  t.deepEqual(ledgerResponse(after.response), { ok: true, balances: { dave: 0, alice: 2 } });
  await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, after.position, { timeoutMs: 90_000 })));
  const hash = Buffer.from(local.hash()).toString('hex');
  t.deepEqual(
    (await cluster.status()).map((s) => s.stateHash),
    [hash, hash, hash, hash],
  );
});

test.serial('a state machine that is not defined, not exported as defined, or given arguments it does not take stops the cluster before anything of it starts; a store another machine wrote is refused, and so is a second cluster on a running one\'s data directory', async (t) => {
  t.timeout(180_000);
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const base = { protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10 } as const;
  const notDefined = { name: 'plain', module: import.meta.url, export: 'plain', create: () => new LedgerMachine(0) };
  await t.throwsAsync(system.spawnCluster({ ...base, stateMachine: notDefined as never }), { instanceOf: ConfigError, message: /defineStateMachine/ });
  await t.throwsAsync(system.spawnCluster({ ...base, stateMachine: Ledger, stateMachineArgs: { overdraft: -1 } }), { instanceOf: ConfigError, message: /stateMachineArgs.*overdraft/ });
  await t.throwsAsync(system.spawnCluster({ ...base, stateMachine: Ledger }), { instanceOf: ConfigError, message: /stateMachineArgs/ });

  await t.throwsAsync(system.spawnCluster({ ...base, stateMachineArgs: { overdraft: 1 } }), { instanceOf: ConfigError, message: /knhk\/kv takes no stateMachineArgs/ });
  await t.throwsAsync(system.spawnCluster({ ...base, stateMachine: Misplaced }), { instanceOf: ConfigError, message: /does not export the state machine knhk-test\/misplaced as Elsewhere/ });
  t.deepEqual(system.status(), [], 'nothing of those clusters started');

  const dataDir = await tempDir(t, 'knhk-machine-');
  const stored = await system.spawnCluster({ ...base, id: 'switched', dataDir, passphrase: 'p' });
  await stored.submit({ type: 'put', key: 'k', value: 'v' });
  // Two clusters on one directory would each forget the votes the other cast: the second is refused before anything of it starts.
  await t.throwsAsync(system.spawnCluster({ ...base, id: 'switched', dataDir, passphrase: 'p' }), { name: 'StorageError', code: 'STORAGE_IN_USE' });
  t.true(kvResponse((await stored.submit({ type: 'get', key: 'k' })).response).ok, 'the first goes on');
  // A spawn refused for its id, taken by the running cluster, leaves its own directory unlocked.
  const elsewhere = await tempDir(t, 'knhk-machine-');
  await t.throwsAsync(system.spawnCluster({ ...base, id: 'switched', dataDir: elsewhere, passphrase: 'p' }));
  await (await lockDataDir(elsewhere)).release();
  await stored.stop();
  const switched = await t.throwsAsync(system.spawnCluster({ ...base, id: 'switched', dataDir, passphrase: 'p', stateMachine: Ledger, stateMachineArgs: { overdraft: 0 } }), { name: 'SpawnError' });
  t.like(switched?.cause, { name: 'StorageError', code: 'STORAGE_MISMATCH' });
  t.regex(switched?.message ?? '', /knhk\/kv.*knhk-example\/ledger\/v1/);
});

test.serial('examples/ledger runs its ledger on a cluster through a crash and a restart, and every replica agrees', async (t) => {
  t.timeout(180_000);
  const main = new URL('../examples/ledger/main.js', import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, [main.pathname]);
  t.log(stdout);
  t.regex(stdout, /"from":"bob","to":"carol","amount":50\} → \{"ok":false,"reason":"insufficient funds"\}/);
  t.regex(stdout, /"from":"carol","to":"bob","amount":20\} → \{"ok":true,"balances":\{"carol":30,"bob":50\}\}/);
  t.regex(stdout, /every replica holds the same ledger/);
  t.regex(stdout, /receipt of position \d+: verified/);
});
