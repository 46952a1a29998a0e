/**
 * A replica whose store is damaged halts, where it crashed and was restarted into the same damage
 * for ever: met at runtime (a receipt record that fails its checksum, read to answer a peer) or as
 * it starts (the receipt log, the core's records, an LMDB file cut short that would have killed
 * the process). It stays up, says why, is not restarted again, and the others go on committing;
 * once more have halted than a quorum can spare, submissions fail with the storage error. A halted
 * replica closes its store.
 */
import test from 'ava';
import { readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { ActorSystem } from '../actors/system.js';
import { statusLine, type ReplicaStatus } from '../actors/cluster.js';
import { StorageError } from '../actors/replica-store.js';
import { decode } from '../protocols/consensus/index.js';
import { eventually } from './helpers/system.js';
import { dataFile, overwriteRecord, rawRecord, sealed } from './helpers/store.js';

const receiptKey = (position: number): string => `receipt:${String(position).padStart(16, '0')}`;

/** Whether this process maps the LMDB file of the store in `dir`: an open store does, a closed one not (Linux). */
const mapped = async (dir: string): Promise<boolean> => (await readFile('/proc/self/maps', 'utf8')).includes(dataFile(dir));

test.serial('a replica whose store is damaged, met as it runs or as it starts, halts saying why and is not restarted into it again; the others go on committing', async (t) => {
  t.timeout(240_000);
  const system = await ActorSystem.start({ cryptoThreads: 1 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', kdfLog2N: 10 });
  let puts = 0;
  const put = async (): Promise<number> => (await cluster.submit({ type: 'put', key: `k${++puts}`, value: 'v' })).position;
  const store = (node: number): string => join(cluster.dataDir, `replica-${node}`, 'store');
  const statusOf = async (node: number): Promise<ReplicaStatus> => (await cluster.status())[node] as ReplicaStatus;
  /** Resolves with the status of `node` once it is up and halted on a reason matching `reason`. */
  const haltedOn = async (node: number, reason: RegExp): Promise<ReplicaStatus> => {
    await eventually(async () => {
      const status = await statusOf(node);
      return status.up && status.role === 'halted' && reason.test(status.halted ?? '');
    }, 60_000);
    return statusOf(node);
  };
  /** The others commit: a new command, executed by both. */
  const othersCommit = async (victim: number): Promise<void> => {
    const position = await put();
    await Promise.all([0, 1, 2].filter((i) => i !== victim).map((i) => cluster.executedUpTo(i, position)));
  };

  const position = await put();
  if (process.platform === 'linux') t.true(await mapped(store(2)), 'a running replica maps its store (the check below sees a store that is open)');
  const victim = ((await statusOf(0)).leader ?? 0) === 2 ? 1 : 2;
  const replica = system.lookup<{ type: 'receipt-fill'; from: number; to: number }, { bytes: Uint8Array }>(`${cluster.id}/replica-${victim}`);
  if (replica === undefined) return t.fail(`replica ${victim} is not running`);
  const fill = async (): Promise<unknown[]> => decode((await replica.ask({ type: 'receipt-fill', from: position, to: position }, { timeoutMs: 30_000 })).bytes) as unknown[];
  // Once a peer is served the position's bodies, they are in the victim's store, and stay as written there.
  await eventually(async () => (await fill()).length === 1);
  const stored = await rawRecord(store(victim), receiptKey(position));
  if (stored === undefined) return t.fail(`no receipt record at ${position}`);
  const damaged = Uint8Array.from(stored, (byte, i) => (i === stored.length - 1 ? byte ^ 0x01 : byte));
  await overwriteRecord(store(victim), receiptKey(position), damaged);

  const checksum = new RegExp(`^StorageError STORAGE_CORRUPT: .*replica-${victim}/store: record "${receiptKey(position)}" does not match its checksum`);
  t.deepEqual(await fill(), [], 'the question that met the damage is answered as a halted replica answers it');
  const atRuntime = await haltedOn(victim, checksum);
  t.is(atRuntime.restarts, 0, 'halted, not crashed');
  if (process.platform === 'linux') await eventually(async () => !(await mapped(store(victim))));
  t.regex(statusLine(atRuntime), new RegExp(`^${victim}: halted .* restarts 0 \\(StorageError STORAGE_CORRUPT: `));
  await othersCommit(victim);

  // As it starts: the receipt log read back.
  await cluster.crash(victim);
  await cluster.restart(victim);
  t.is((await haltedOn(victim, checksum)).restarts, 1);
  await othersCommit(victim);
  t.is((await statusOf(victim)).restarts, 1, 'not restarted again while the others committed');

  // As it starts: the core's records, consistent with their checksums but not with Raft.
  await cluster.crash(victim);
  await overwriteRecord(store(victim), receiptKey(position), stored);
  await overwriteRecord(store(victim), 'core:raft/term', sealed('core:raft/term', 'not a term'));
  await cluster.restart(victim);
  t.is((await haltedOn(victim, /^ConsensusError CORRUPT_STATE: raft durable state: /)).restarts, 2);
  await othersCommit(victim);

  // As it starts: an LMDB file cut short, which killed the whole process when LMDB mapped it.
  const cut = /^StorageError STORAGE_CORRUPT: .*data\.mdb is damaged: the (main|free-page) tree reaches page \d+, past the end of the file/;
  await cluster.crash(victim);
  await truncate(dataFile(store(victim)), 3 * 4096);
  await cluster.restart(victim);
  t.is((await haltedOn(victim, cut)).restarts, 3);
  await othersCommit(victim);

  // A second replica halted too: Raft's three cannot commit without either, and submissions say why.
  const second = victim === 1 ? 2 : 1;
  await cluster.crash(second);
  await truncate(dataFile(store(second)), 3 * 4096);
  await cluster.restart(second);
  await haltedOn(second, cut);
  const unavailable = await t.throwsAsync(cluster.submit({ type: 'put', key: 'late', value: 'v' }), { instanceOf: StorageError });
  t.is(unavailable?.code, 'STORAGE_CORRUPT');
  t.is(unavailable?.path, store(victim), 'it names the store of the first replica that halted');
  t.regex(unavailable?.message ?? '', new RegExp(`replicas ${Math.min(victim, second)}, ${Math.max(victim, second)} halted, more than the cluster can commit without: `));
  t.log((await cluster.status()).map(statusLine).join('\n'));
  await cluster.stop();
});
