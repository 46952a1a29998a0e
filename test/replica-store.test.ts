/**
 * The LMDB replica store: records survive a reopen, a step is atomic even when its thread is
 * killed mid-write, damaged or foreign storage is refused (a damaged LMDB file before LMDB maps
 * it, where it crashed the process), and a PBFT replica restarts from it.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { open as openLmdb } from 'lmdb';
import { ReplicaStore, StorageError, STORE_FORMAT, type ReplicaIdentity } from '../actors/replica-store.js';
import { tempDir } from './helpers/temp.js';
import { dataFile, metaInForce, overwriteRecord, pointRootAway, rawRecord, sealed } from './helpers/store.js';
import { WITNESS_FILE, writeWitness } from '../actors/store-witness.js';
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

test('a store written in another format, or before formats were recorded, is refused by name; a damaged format record is corruption', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  await (await ReplicaStore.open(dir, identity)).close();
  const refusal = async (bytes: Uint8Array | undefined): Promise<StorageError | undefined> => {
    await overwriteRecord(dir, 'meta:format', bytes);
    return t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  };
  const other = await refusal(sealed('meta:format', STORE_FORMAT + 1));
  t.is(other?.code, 'STORAGE_FORMAT');
  t.regex(other?.message ?? '', new RegExp(`store format ${STORE_FORMAT + 1}; this build reads store format ${STORE_FORMAT} only`));
  const older = await refusal(undefined);
  t.is(older?.code, 'STORAGE_FORMAT');
  t.regex(older?.message ?? '', /before store formats were recorded/);
  const damaged = sealed('meta:format', STORE_FORMAT);
  damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0x01;
  const corrupt = await refusal(damaged);
  t.is(corrupt?.code, 'STORAGE_CORRUPT');
  t.regex(corrupt?.message ?? '', /meta:format/);
  await overwriteRecord(dir, 'meta:format', sealed('meta:format', STORE_FORMAT));
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

test('a record moved under another key fails its checksum, and a store without its identity record is refused', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const store = await ReplicaStore.open(dir, identity);
  await store.apply([{ key: 'slot/7', value: { x: 7 } }, { key: 'slot/8', value: { x: 8 } }]);
  await store.close();
  const seven = await rawRecord(dir, 'core:slot/7');
  await overwriteRecord(dir, 'core:slot/8', seven);
  const moved = await ReplicaStore.open(dir, identity);
  const error = t.throws(() => moved.load(), { instanceOf: StorageError });
  await moved.close();
  t.is(error?.code, 'STORAGE_CORRUPT');
  t.regex(error?.message ?? '', /record "core:slot\/8" does not match its checksum/);

  await overwriteRecord(dir, 'meta:identity', undefined);
  const anonymous = await t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  t.is(anonymous?.code, 'STORAGE_CORRUPT');
  t.regex(anonymous?.message ?? '', /has a format record but no "meta:identity" record/);
});

test('a data file lost, emptied or replaced by an older copy of itself is refused by the witness beside it, where it read as a new or a healthy store', async (t) => {
  const dir = await tempDir(t, 'knhk-store-');
  const first = await ReplicaStore.open(dir, identity);
  await first.apply([{ key: 'voted', value: { term: 3, for: 2 } }]);
  await first.close();
  t.deepEqual(JSON.parse(await readFile(join(dir, WITNESS_FILE), 'utf8')), { opens: 1 });
  const older = await readFile(dataFile(dir));
  const second = await ReplicaStore.open(dir, identity);
  await second.apply([{ key: 'voted', value: { term: 4, for: 1 } }]);
  await second.close();
  const current = await readFile(dataFile(dir));
  const refusal = async (data: Uint8Array | undefined): Promise<StorageError | undefined> => {
    await (data === undefined ? rm(dataFile(dir)) : writeFile(dataFile(dir), data));
    return t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  };

  const rolledBack = await refusal(older);
  t.is(rolledBack?.code, 'STORAGE_ROLLBACK');
  t.regex(rolledBack?.message ?? '', /data\.mdb has been opened 1 times, but witness\.json says 2: it is an older copy of the store/);
  for (const [what, data] of [['emptied', new Uint8Array(0)], ['lost', undefined]] as const) {
    const error = await refusal(data);
    t.is(error?.code, 'STORAGE_CORRUPT', what);
    t.regex(error?.message ?? '', /data\.mdb holds no store, but witness\.json says the store was opened 2 times: its data file was lost or emptied/, what);
  }

  await writeFile(dataFile(dir), current);
  await writeFile(join(dir, WITNESS_FILE), '{"opens": "many"}');
  t.is((await t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError }))?.code, 'STORAGE_CORRUPT', 'a witness that is not one');
  await rm(join(dir, WITNESS_FILE));
  const unwitnessed = await t.throwsAsync(ReplicaStore.open(dir, identity), { instanceOf: StorageError });
  t.is(unwitnessed?.code, 'STORAGE_CORRUPT');
  t.regex(unwitnessed?.message ?? '', /witness\.json is missing beside a store that holds records/);

  await writeWitness(dir, { opens: 2 });
  const third = await ReplicaStore.open(dir, identity);
  t.is(third.opens, 3, 'the store and its witness agree again: refused opens counted nothing');
  t.deepEqual(third.load().get('voted'), { term: 4, for: 1 });
  await third.close();
  t.deepEqual(JSON.parse(await readFile(join(dir, WITNESS_FILE), 'utf8')), { opens: 3 });

  // What a first open killed after the store's first commit leaves: a store of no records and no witness.
  const fresh = await tempDir(t, 'knhk-store-');
  await (await ReplicaStore.open(fresh, identity)).close();
  await rm(join(fresh, WITNESS_FILE));
  const resumed = await ReplicaStore.open(fresh, identity);
  t.is(resumed.opens, 2);
  await resumed.close();
});

test('a write that cannot be committed is STORAGE_WRITE with the file system\'s cause, and stores nothing of its step', async (t) => {
  t.timeout(60_000);
  if (process.platform !== 'linux') return t.pass('the file size limit this test writes under is set with the shell of Linux machines');
  const dir = await tempDir(t, 'knhk-store-');
  // RLIMIT_FSIZE in KiB: room for the store and some steps, then EFBIG (the writer ignores SIGXFSZ).
  const child = spawn('sh', ['-c', `ulimit -f 512 && exec "${process.execPath}" "${fileURLToPath(new URL('./fixtures/store-filler.js', import.meta.url))}" "${dir}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  // lmdb-js's native teardown can abort the process after a failed commit: its exit is not asserted.
  await new Promise((resolve) => child.once('close', resolve));
  const line = stdout.split('\n').find((text) => text.startsWith('{'));
  if (line === undefined) return t.fail(`the writer reported nothing: ${stdout}`);
  const report = JSON.parse(line) as { steps: number; name: string; code: string; message: string; cause: string };
  t.true(report.steps > 0, 'steps were stored before the limit');
  t.is(report.name, 'StorageError');
  t.is(report.code, 'STORAGE_WRITE');
  // LMDB reports what the file system said: EFBIG or EIO, as the limit fell inside a page or at its start.
  t.regex(report.message, /could not commit a step \(error \d+\): \S/);
  t.is(report.cause, 'Error');
  const store = await ReplicaStore.open(dir, identity);
  t.teardown(() => store.close());
  const records = store.load();
  t.is(records.get('step'), report.steps, 'the failed step stored nothing, the ones before it everything');
  t.is([...records.keys()].filter((key) => key.startsWith('blob/')).length, report.steps);
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
  await raw.put('meta:redo', sealed('meta:redo', [['core:a', sealed('core:a', 2)], ['core:b', sealed('core:b', 2)], ['core:c']]));
  await raw.put('core:a', sealed('core:a', 2));
  await raw.close();
  const reopened = await ReplicaStore.open(dir, identity);
  const records = reopened.load();
  await reopened.close();
  t.deepEqual(Object.fromEntries(records), { a: 2, b: 2 });
  const after = openLmdb({ path: dir, encoding: 'binary', compression: false });
  t.is(after.get('meta:redo'), undefined, 'the finished step leaves no redo record');
  await after.put('meta:redo', sealed('meta:redo', [['core:a', 'not bytes']]));
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
