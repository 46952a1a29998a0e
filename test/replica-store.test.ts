/**
 * The LMDB replica store: records survive a reopen, a step is atomic even when its thread is
 * killed mid-write, damaged or foreign storage is refused (a damaged LMDB file before LMDB maps
 * it, where it crashed the process), and a PBFT replica restarts from it.
 */
import test from 'ava';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { open as openLmdb } from 'lmdb';
import { ReplicaStore, StorageError, STORE_FORMAT, type ReplicaIdentity } from '../actors/replica-store.js';
import { tempDir } from './helpers/temp.js';
import { dataFile, metaInForce, overwriteRecord, pointRootAway, sealed } from './helpers/store.js';
import { command, consensusConfig, KvStateMachine, kvPayload, type Ready } from '../protocols/consensus/index.js';
import { PbftCore, prepare, prePrepare, commit, type PbftMessage } from '../protocols/pbft/index.js';

const identity: ReplicaIdentity = { clusterId: 'c1', nodeId: 1, protocol: 'pbft', n: 4, stateMachine: 'knhk/kv' };

test('records survive a reopen, deletes included, with nested bytes intact', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  await store.apply([
    { key: 'view', value: { view: 3, changing: false } },
    { key: 'slot/1', value: { bytes: new Uint8Array([1, 2, 3]), list: [1, 'two'] } },
    { key: 'gone', value: 1 },
  ]);
  await store.apply([{ key: 'gone' }]);
  await store.close();
  const again = await ReplicaStore.open(dir, identity);
  t.teardown(() => again.close());
  t.is(again.opens, 2);
  const records = again.load();
  t.deepEqual([...records.keys()].sort(), ['slot/1', 'view']);
  t.deepEqual(records.get('view'), { view: 3, changing: false });
  const slot = records.get('slot/1') as { bytes: Uint8Array; list: unknown[] };
  t.deepEqual([...slot.bytes], [1, 2, 3]);
  t.deepEqual(slot.list, [1, 'two']);
});

test('a directory holding another replica, cluster or state machine is refused', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  await (await ReplicaStore.open(dir, identity)).close();
  for (const other of [{ ...identity, nodeId: 2 }, { ...identity, clusterId: 'c2' }, { ...identity, protocol: 'raft' as const }, { ...identity, n: 7 }, { ...identity, stateMachine: 'example/ledger/v1' }]) {
    const error = await t.throwsAsync(ReplicaStore.open(dir, other), { instanceOf: StorageError });
    t.is(error?.code, 'STORAGE_MISMATCH');
  }
  await (await ReplicaStore.open(dir, identity)).close();
});

test('an identity recorded without a state machine, as stores were written before clusters took other machines, is the key-value machine\'s', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  await (await ReplicaStore.open(dir, identity)).close();
  const { stateMachine: _, ...older } = identity;
  await overwriteRecord(dir, 'meta:identity', sealed(older));
  await (await ReplicaStore.open(dir, identity)).close();
  const error = await t.throwsAsync(ReplicaStore.open(dir, { ...identity, stateMachine: 'example/ledger/v1' }), { instanceOf: StorageError });
  t.is(error?.code, 'STORAGE_MISMATCH');
  t.regex(error?.message ?? '', /"stateMachine":"knhk\/kv".*"stateMachine":"example\/ledger\/v1"/);
});

test('a store written in another format, or before formats were recorded, is refused by name; a damaged format record is corruption', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  await (await ReplicaStore.open(dir, identity)).close();
  const refusal = async (bytes: Uint8Array | undefined): Promise<StorageError | undefined> => {
    await overwriteRecord(dir, 'meta:format', bytes);
    return t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  };
  const other = await refusal(sealed(STORE_FORMAT + 1));
  t.is(other?.code, 'STORAGE_FORMAT');
  t.regex(other?.message ?? '', new RegExp(`store format ${STORE_FORMAT + 1}; this build reads store format ${STORE_FORMAT} only`));
  const older = await refusal(undefined);
  t.is(older?.code, 'STORAGE_FORMAT');
  t.regex(older?.message ?? '', /before store formats were recorded/);
  const damaged = sealed(STORE_FORMAT);
  damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0x01;
  const corrupt = await refusal(damaged);
  t.is(corrupt?.code, 'STORAGE_CORRUPT');
  t.regex(corrupt?.message ?? '', /meta:format/);
  await overwriteRecord(dir, 'meta:format', sealed(STORE_FORMAT));
  const store = await ReplicaStore.open(dir, identity);
  t.is(store.opens, 2, 'refused opens leave the store as it was');
  await store.close();
});

test('a damaged record is reported with its key, never used', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  await store.apply([{ key: 'view', value: { view: 1, changing: false } }, { key: 'slot/7', value: { x: 1 } }]);
  await store.close();
  const raw = openLmdb({ path: dir, encoding: 'binary', compression: false });
  const bytes = Uint8Array.from(raw.get('core:slot/7') as Uint8Array);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x01;
  await raw.put('core:slot/7', bytes);
  await raw.close();
  const reopened = await ReplicaStore.open(dir, identity);
  t.teardown(() => reopened.close());
  const error = t.throws(() => reopened.load(), { instanceOf: StorageError });
  t.is(error?.code, 'STORAGE_CORRUPT');
  t.regex(error?.message ?? '', /slot\/7/);
});

/** A closed store in a fresh directory whose main tree is two levels deep (300 receipt records). */
async function storeOfTwoLevels(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  for (let position = 1; position <= 300; position++) await store.putReceipts(position, new Uint8Array(100).fill(position));
  await store.close();
  return dir;
}

test('a data.mdb cut short or damaged where LMDB would crash the process is refused as STORAGE_CORRUPT before it is mapped; a new one opens', async (t) => {
  const dir = await storeOfTwoLevels(t);
  const healthy = await readFile(dataFile(dir));
  const { mainRoot, pageSize } = await metaInForce(dir);
  const damaged = (damage: (bytes: Buffer) => Buffer): Buffer => damage(Buffer.from(healthy));
  const cases: [string, Buffer, RegExp][] = [
    ['cut to 3 pages', healthy.subarray(0, 3 * pageSize), /past the end of the file \(3 whole pages of 4096 bytes\)/],
    ['cut to 8192 bytes', healthy.subarray(0, 8192), /past the end of the file \(2 whole pages of 4096 bytes\)/],
    ['its meta pages zeroed', damaged((bytes) => bytes.fill(0, 0, 2 * pageSize)), /meta page 0 does not have the header of a meta page/],
    ['meta page 1 zeroed', damaged((bytes) => bytes.fill(0, pageSize, 2 * pageSize)), /meta page 1 does not have the header of a meta page/],
    ['the magic of meta page 0 changed', damaged((bytes) => bytes.fill(0, 24, 25)), /meta page 0 has magic 0xbeefc000/],
    ['the header of the main tree\'s root flipped', damaged((bytes) => bytes.fill(0x5a, mainRoot * pageSize, mainRoot * pageSize + 24)), new RegExp(`page ${mainRoot} of the main tree does not have the header of a branch or leaf page`)],
    ['byte 20 of every page flipped', damaged((bytes) => { for (let at = 20; at < bytes.length; at += pageSize) bytes[at] = (bytes[at] as number) ^ 0xff; return bytes; }), /of the main tree (has its free space at|does not lie inside its page)/],
  ];
  for (const [what, bytes, reason] of cases) {
    await writeFile(dataFile(dir), bytes);
    const error = await t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError }, what);
    t.is(error?.code, 'STORAGE_CORRUPT', what);
    t.is(error?.path, dir, what);
    t.regex(error?.message ?? '', reason, what);
  }
  await writeFile(dataFile(dir), healthy);
  const restored = await ReplicaStore.open(dir, identity);
  t.is(restored.opens, 2, 'refused opens leave the store as it was');
  await restored.close();
  // What a first open killed before LMDB wrote its meta pages leaves: a store not written yet.
  const fresh = await tempDir(t, 'knhk-store-');
  await writeFile(dataFile(fresh), new Uint8Array(0));
  await (await ReplicaStore.open(fresh, identity)).close();
});

test('a data.mdb that ends before the last page of its meta opens, when every page past its end is free', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  // A step's redo record takes the last pages and frees them in the same transaction, so LMDB
  // never writes them; growing steps, and removals between them, leave the file short so.
  for (let step = 0; step < 5; step++) {
    await store.apply(Array.from({ length: step + 1 }, (_, j) => ({ key: `k${j}`, value: new Uint8Array(1000 * (7 * j + step)) })));
    if (step % 2 === 1) await store.apply([{ key: `k${step}` }, { key: 'x', value: new Uint8Array(0) }]);
  }
  await store.close();
  const { pageSize, lastPage } = await metaInForce(dir);
  const { size } = await stat(dataFile(dir));
  t.true(size < (lastPage + 1) * pageSize, `the file (${size / pageSize} pages) ends before page ${lastPage}`);
  const reopened = await ReplicaStore.open(dir, identity);
  t.teardown(() => reopened.close());
  t.deepEqual([...reopened.load().keys()].sort(), ['k0', 'k1', 'k2', 'k3', 'k4', 'x']);
});

test('an error LMDB raises on finding its file damaged while the store is open is STORAGE_CORRUPT, with LMDB\'s error as its cause', async (t) => {
  const dir = await storeOfTwoLevels(t);
  // LMDB's read transaction is unusable after the error: each read is tried on a store of its own.
  const reads: [string, (store: ReplicaStore) => unknown][] = [
    ['a range read', (store) => [...store.receiptPositions()]],
    ['a read of one record', (store) => store.receipts(1)],
  ];
  for (const [what, read] of reads) {
    const store = await ReplicaStore.open(dir, identity);
    const undo = await pointRootAway(dir);
    const error = t.throws(() => read(store), { instanceOf: StorageError }, what);
    await store.close();
    await undo();
    t.is(error?.code, 'STORAGE_CORRUPT', what);
    t.regex(error?.message ?? '', /LMDB found its file damaged .*MDB_PAGE_NOTFOUND/, what);
    t.like(error?.cause, { code: -30797 }, what);
  }
});

test('a step is atomic when its thread is killed mid-write', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  let torn = 0;
  for (let round = 0; round < 6; round++) {
    const worker = new Worker(new URL('./fixtures/store-writer.js', import.meta.url), { workerData: { dir } });
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (i: number) => {
        if (i >= 100 * (round + 1)) resolve();
      });
    });
    await worker.terminate();
    const raw = openLmdb({ path: dir, encoding: 'binary', compression: false });
    if (raw.get('meta:redo') !== undefined) torn++;
    await raw.close();
    const store = await ReplicaStore.open(dir, { clusterId: 'crash-test', nodeId: 0, protocol: 'raft', n: 1, stateMachine: 'knhk/kv' });
    const records = store.load();
    await store.close();
    const a = records.get('a') as number;
    t.is(records.get('b'), a, `round ${round}: a step's records are all there or all absent`);
    const logs = [...records.keys()].filter((k) => k.startsWith('log/')).map((k) => Number(k.slice(4)));
    t.is(logs.length, a, `round ${round}: one log record per completed step`);
    t.is(Math.max(...logs), a);
    const pads = [...records].filter(([k]) => k.startsWith('pad/')).map(([, v]) => (v as Uint8Array)[0]);
    t.deepEqual(pads, Array.from({ length: 16 }, () => a & 0xff), `round ${round}: the records between were written by the same step`);
  }
  // Which kills tore a step is up to the scheduler; the assertions above hold either way.
  t.log(`${torn} of 6 kills tore a step, which reopening finished`);
});

test('opening finishes a step that a killed thread left torn, and refuses a damaged redo record', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  await store.apply([{ key: 'a', value: 1 }, { key: 'b', value: 1 }, { key: 'c', value: 1 }]);
  await store.close();
  // What a kill inside step 2's transaction leaves behind: its redo record and its first record.
  const raw = openLmdb({ path: dir, encoding: 'binary', compression: false });
  await raw.put('meta:redo', sealed([['core:a', sealed(2)], ['core:b', sealed(2)], ['core:c']]));
  await raw.put('core:a', sealed(2));
  await raw.close();
  const reopened = await ReplicaStore.open(dir, identity);
  const records = reopened.load();
  await reopened.close();
  t.deepEqual(Object.fromEntries(records), { a: 2, b: 2 });
  const after = openLmdb({ path: dir, encoding: 'binary', compression: false });
  t.is(after.get('meta:redo'), undefined, 'the finished step leaves no redo record');
  await after.put('meta:redo', sealed([['core:a', 'not bytes']]));
  await after.close();
  const error = await t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  t.is(error?.code, 'STORAGE_CORRUPT');
  t.regex(error?.message ?? '', /meta:redo/);
});

test('a PBFT replica restarts from its store into the state it had persisted', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const config = consensusConfig({ nodeId: 1, n: 4, algorithm: 'pbft' });
  const boot = async (): Promise<{ store: ReplicaStore; core: PbftCore; first: Ready<PbftMessage> }> => {
    const store = await ReplicaStore.open(dir, identity);
    const core = new PbftCore({ config, stateMachine: new KvStateMachine(), durable: store.load() });
    const first = core.ready();
    await store.apply(first.persist);
    return { store, core, first };
  };
  const sig = new Uint8Array(32);
  const { store, core } = await boot();
  const pp = prePrepare(0, 1, 0, [command('alice', 1, kvPayload({ type: 'put', key: 'k', value: 'v' }))]);
  const step = async (from: number, body: PbftMessage): Promise<void> => {
    core.step({ kind: 'message', message: { from, body, signature: sig } }, 0);
    await store.apply(core.ready().persist);
  };
  await step(0, pp);
  for (const from of [2, 3]) await step(from, prepare(0, 1, pp.digest));
  for (const from of [1, 2, 3]) await step(from, commit(0, 1, pp.digest));
  t.is(core.status().commitIndex, 1);
  await store.close();
  const restarted = await boot();
  t.teardown(() => restarted.store.close());
  t.is(restarted.core.status().commitIndex, 1, 'the committed batch is executed again from the log');
  t.is(restarted.first.applied.length, 1);
});
