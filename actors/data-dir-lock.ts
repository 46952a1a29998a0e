/**
 * One running cluster per data directory. Two clusters started on one directory, in one process
 * or in two (a second `knhk demo --data-dir`, a second kv-server), would run two incarnations of
 * every replica over the same stores and key files: LMDB lets both write, each would forget the
 * votes the other cast, and a replica that votes twice breaks the protocol's safety without any
 * replica being faulty. The store's witness (store-witness.ts) cannot see it, since both copies
 * count their opens in the one file.
 *
 * A cluster therefore holds a `LOCK` file in its data directory while it runs, naming the process
 * that holds it (and a nonce of its own); a process also remembers the directories its own
 * clusters hold. The file is made whole in a temporary and linked into place, so it never exists
 * half-written and only one of two racing processes gets it. A lock whose process is gone (a crash, a kill) is taken over; one held
 * by a live process, or by another cluster of this one, is refused with `STORAGE_IN_USE`. What a
 * process holds is known to the thread that took it: clusters spawned from two threads of one
 * process (an actor system started inside a worker) are not told apart.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, removeIfThere, stageFile } from './key-store.js';
import { StorageError } from './storage-error.js';

/** The lock's file name, in the data directory. */
export const LOCK_FILE = 'LOCK';

/** The data directories this process's clusters hold. */
const held = new Set<string>();

/** A held data directory; {@link release} gives it up. */
export interface DataDirLock {
  readonly dir: string;
  /** Removes the lock file and forgets the directory. Idempotent. */
  release(): Promise<void>;
}

/** Whether process `pid` runs (on this machine): signal 0 checks without sending anything. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return isErrno(error, 'EPERM');
  }
}

/** A lock file's text: the holder's pid, and a nonce of this lock, so that a release removes its own lock only. */
const lockText = (nonce: string): string => `${process.pid} ${nonce}\n`;

/** The text of the lock file at `path`, or undefined when there is none. */
async function lockAt(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** The pid a lock file's text names, or undefined when it names none (not written by this module). */
function holderIn(text: string | undefined): number | undefined {
  const pid = Number(text?.trim().split(' ')[0]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Links the whole lock file `staged` into place at `path`, taking over once from a holder that is gone. */
async function take(dir: string, path: string, staged: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await link(staged, path);
      return;
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error;
    }
    const holder = holderIn(await lockAt(path));
    // A file naming this process but not recorded as held is left by an earlier process that had its pid.
    const live = holder !== undefined && holder !== process.pid && alive(holder);
    if (live || attempt > 0) {
      throw new StorageError('STORAGE_IN_USE', dir, `${holder === undefined ? 'another process' : `process ${holder}`} runs a cluster on this data directory; if none does, remove ${path}`);
    }
    await removeIfThere(path);
  }
}

/** The lock of `dir` cannot be written: `cause` says why. */
const unwritable = (dir: string, cause: unknown): StorageError =>
  new StorageError('STORAGE_WRITE', dir, `cannot take the data directory's lock: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });

/**
 * Takes the lock of data directory `dir` (created if missing) for this process. The directory is
 * known by its real path, so a second cluster reaching it through a symbolic link is refused too.
 * Two processes that find the same abandoned lock at the same moment may both take it over: the
 * lock guards against a second cluster started by mistake, not against that race.
 * @throws {StorageError} `STORAGE_IN_USE` when another cluster of this process, or a live process,
 *   holds it; `STORAGE_WRITE` when the lock cannot be written (a file system without hard links, a
 *   directory of another user).
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  let real: string;
  try {
    await mkdir(dir, { recursive: true });
    real = await realpath(dir);
  } catch (cause) {
    throw unwritable(dir, cause);
  }
  if (held.has(real)) throw new StorageError('STORAGE_IN_USE', dir, 'another cluster of this process runs on this data directory');
  held.add(real);
  const path = join(real, LOCK_FILE);
  const text = lockText(randomBytes(8).toString('hex'));
  try {
    const staged = await stageFile(path, new TextEncoder().encode(text));
    try {
      await take(dir, path, staged);
    } finally {
      await removeIfThere(staged);
    }
  } catch (cause) {
    held.delete(real);
    throw cause instanceof StorageError ? cause : unwritable(dir, cause);
  }
  let released = false;
  return {
    dir,
    async release() {
      if (released) return;
      released = true;
      held.delete(real);
      // A lock taken over since (this process's stop left it behind) is another's.
      if ((await lockAt(path)) === text) await removeIfThere(path);
    },
  };
}
