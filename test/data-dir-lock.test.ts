/**
 * One running cluster per data directory (actors/data-dir-lock.ts): a second lock in this process
 * (by any path to it) or a lock held by a live process is STORAGE_IN_USE; a lock whose process is
 * gone is taken over; a released lock can be taken again, and a release removes its own lock only.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockDataDir, LOCK_FILE } from '../actors/data-dir-lock.js';
import { StorageError } from '../actors/storage-error.js';
import { tempDir } from './helpers/temp.js';

const inUse = { instanceOf: StorageError, code: 'STORAGE_IN_USE' } as const;

test('a data directory is held by one lock of this process at a time, and free again once released', async (t) => {
  const dir = join(await tempDir(t, 'knhk-lock-'), 'data');
  const lock = await lockDataDir(dir);
  t.regex(await readFile(join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid} [0-9a-f]{16}\\n$`));
  await t.throwsAsync(lockDataDir(dir), { ...inUse, message: /another cluster of this process/ });
  const alias = join(dir, '..', 'alias');
  await symlink(dir, alias);
  await t.throwsAsync(lockDataDir(alias), { ...inUse, message: /another cluster of this process/ }, 'reached through a symbolic link, the same directory');
  await rm(alias);
  await lock.release();
  await lock.release();
  t.deepEqual(await readdir(dir), [], 'the lock file is gone, and no temporary is left');
  const again = await lockDataDir(dir);
  // A lock taken over since, by whatever holds the file now, is not this one's to remove.
  await writeFile(join(dir, LOCK_FILE), '1 another\n');
  await again.release();
  t.is(await readFile(join(dir, LOCK_FILE), 'utf8'), '1 another\n');
});

test('a lock held by a live process is refused, naming it; one whose process is gone, or that names none, is taken over', async (t) => {
  const dir = await tempDir(t, 'knhk-lock-');
  const path = join(dir, LOCK_FILE);
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  t.teardown(() => other.kill());
  await new Promise((resolve) => other.once('spawn', resolve));
  await writeFile(path, `${other.pid}\n`);
  await t.throwsAsync(lockDataDir(dir), { ...inUse, message: new RegExp(`process ${other.pid} runs a cluster on this data directory; if none does, remove ${path}`) });
  t.is((await readFile(path, 'utf8')).trim(), String(other.pid), 'the live holder keeps its lock');

  const exited = new Promise((resolve) => other.once('exit', resolve));
  other.kill();
  await exited;
  const taken = await lockDataDir(dir);
  t.regex(await readFile(path, 'utf8'), new RegExp(`^${process.pid} `), 'a lock whose process is gone is taken over');
  await taken.release();

  await writeFile(path, 'not a pid');
  const overGarbage = await lockDataDir(dir);
  t.regex(await readFile(path, 'utf8'), new RegExp(`^${process.pid} `));
  await overGarbage.release();
});
