/**
 * Encrypted key files on disk (DESIGN.md "Cryptography": at rest, secret keys are encrypted with
 * a passphrase-derived key). The format and the cryptography are `protocols/crypto/key-envelope.ts`,
 * which does no I/O; this module draws the salt and nonce, and makes every write atomic.
 *
 * Atomicity: a key file is replaced by write-to-temporary, fsync, rename, fsync of the directory.
 * POSIX rename(2) replaces the target in one step, so a reader, or a restart after a crash, sees
 * either the old complete file or the new complete file, never a mixture; the fsync before the
 * rename makes sure the new name never points at data still in the page cache, and the one after
 * makes the rename itself survive a power loss. A crash can leave a temporary file behind (named
 * `.<target>.<random>.tmp`); it is never read as a key, the target is untouched, and the
 * directory's owner removes it the next time it opens the store ({@link KeyStore.removeStaged}).
 */
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  CryptoError,
  KEY_FILE_NONCE_BYTES,
  KEY_FILE_SALT_BYTES,
  isKeyId,
  openKey,
  sealKey,
  type KeyId,
  type OpenOptions,
  type Passphrase,
  type SchemeRegistry,
  type ScryptParameters,
  type SigningKey,
  type ValidityWindow,
} from '../protocols/crypto/index.js';

/** Largest key file read: the biggest (Falcon-512) is a few KiB. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** Owner read and write only: a key file is nobody else's business, even encrypted. */
export const KEY_FILE_MODE = 0o600;
/** Owner only, for a key store's directory. */
const KEY_DIRECTORY_MODE = 0o700;
const KEY_FILE_SUFFIX = '.key';

/** Options of {@link writeKeyFile}. */
export interface WriteOptions {
  /** scrypt cost; default `DEFAULT_SCRYPT` (N = 2^17, r = 8, p = 1). Tests lower it for speed. */
  readonly kdf?: ScryptParameters;
}

/** Whether `error` is a file-system error with errno code `code` (`ENOENT`, say). */
export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/** Removes the file at `path`; one already gone is no error. */
export async function removeIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw error;
  }
}

/** Flushes a directory's entries (a rename in it) to stable storage. */
async function syncDirectory(directory: string): Promise<void> {
  // Windows cannot open a directory for fsync, and NTFS journals renames itself.
  if (process.platform === 'win32') return;
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Random bytes in a temporary's name, and the names {@link stageFile} gives its temporaries. */
const STAGED_RANDOM_BYTES = 8;
const STAGED_NAME = new RegExp(`^\\.(.+)\\.[0-9a-f]{${2 * STAGED_RANDOM_BYTES}}\\.tmp$`);

/**
 * First half of {@link atomicWriteFile}: writes `bytes` to a new temporary file next to `path`
 * (same directory, hence same file system, so the later rename is atomic), with mode 0o600, and
 * fsyncs it. Returns the temporary path. On failure the temporary file is removed.
 */
export async function stageFile(path: string, bytes: Uint8Array): Promise<string> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(STAGED_RANDOM_BYTES).toString('hex')}.tmp`);
  // 'wx': exclusive creation, so a stale or hostile file of that name is never reused.
  const handle = await open(temporary, 'wx', KEY_FILE_MODE);
  try {
    // The umask may have cleared bits of the creation mode; set exactly 0o600.
    await handle.chmod(KEY_FILE_MODE);
    await handle.writeFile(bytes);
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  return temporary;
}

/** Second half of {@link atomicWriteFile}: renames `temporary` over `path` and fsyncs the directory. */
export async function commitFile(temporary: string, path: string): Promise<void> {
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Replaces `path` with `bytes` atomically and durably (see the module comment), mode 0o600. */
export async function atomicWriteFile(path: string, bytes: Uint8Array): Promise<void> {
  await commitFile(await stageFile(path, bytes), path);
}

/**
 * Encrypts `key` with its validity `window` under `passphrase` (fresh 32-byte salt and 24-byte
 * nonce from the CSPRNG) and writes it to `path` atomically. Errors as `sealKey`, plus the file
 * system's.
 */
export async function writeKeyFile(path: string, key: SigningKey, window: ValidityWindow, passphrase: Passphrase, options: WriteOptions = {}): Promise<void> {
  const inputs = { salt: randomBytes(KEY_FILE_SALT_BYTES), nonce: randomBytes(KEY_FILE_NONCE_BYTES), kdf: options.kdf };
  await atomicWriteFile(path, await sealKey(key, window, passphrase, inputs));
}

/**
 * Reads and decrypts the key file at `path`. Throws `CryptoError` `KEYSTORE_NOT_FOUND` when there
 * is no such file, otherwise as `openKey`: `KEYSTORE_WRONG_PASSPHRASE`, `KEYSTORE_CORRUPT`,
 * `KEYSTORE_MISMATCH`, `KEYSTORE_UNSUPPORTED`.
 */
export async function readKeyFile(path: string, passphrase: Passphrase, registry: SchemeRegistry, options: OpenOptions = {}): Promise<SigningKey> {
  let file: Uint8Array;
  try {
    // A key file is a few KiB; a larger one is refused before it is read and hashed.
    if ((await stat(path)).size > MAX_KEY_FILE_BYTES) throw new CryptoError('KEYSTORE_CORRUPT', `${path} is larger than any key file (${MAX_KEY_FILE_BYTES} bytes)`);
    file = await readFile(path);
  } catch (cause) {
    if (isErrno(cause, 'ENOENT')) throw new CryptoError('KEYSTORE_NOT_FOUND', `no key file at ${path}`, { cause });
    throw cause;
  }
  return openKey(file, passphrase, registry, options);
}

/** Options of a {@link KeyStore}. */
export interface KeyStoreOptions extends WriteOptions, OpenOptions {}

/**
 * The key files of one directory (a replica's data directory), one file per key, named
 * `<key id>.key`. The passphrase is an argument of each call rather than state of the store, so
 * that the store never holds it longer than one operation.
 */
export class KeyStore {
  /** The directory holding the key files. */
  readonly directory: string;
  readonly #registry: SchemeRegistry;
  readonly #options: KeyStoreOptions;

  /** A store over `directory` (created, mode 0o700, on the first save), opening keys with `registry`'s schemes. */
  constructor(directory: string, registry: SchemeRegistry, options: KeyStoreOptions = {}) {
    this.directory = directory;
    this.#registry = registry;
    this.#options = options;
  }

  /** The path of the file for `id`; anything but a key id (a path, `..`) is refused. */
  pathOf(id: KeyId): string {
    if (!isKeyId(id)) throw new CryptoError('INVALID_INPUT', `not a key id: ${String(id).slice(0, 80)}`);
    return join(this.directory, `${id}${KEY_FILE_SUFFIX}`);
  }

  /** Encrypts and writes `key` with its validity `window` (replacing a file of the same id atomically); answers its path. */
  async save(key: SigningKey, window: ValidityWindow, passphrase: Passphrase): Promise<string> {
    // `mode` applies only to a directory mkdir creates: an existing one is narrowed explicitly,
    // and a new one is made durable in its parent before a key is written into it.
    const created = await mkdir(this.directory, { recursive: true, mode: KEY_DIRECTORY_MODE });
    if (created === undefined) await chmod(this.directory, KEY_DIRECTORY_MODE);
    else await syncDirectory(dirname(this.directory));
    const path = this.pathOf(key.keyId);
    await writeKeyFile(path, key, window, passphrase, this.#options);
    return path;
  }

  /**
   * Reads and decrypts the key `id`, which must have been sealed with validity `window` when one
   * is given. Errors as {@link readKeyFile}, and `KEYSTORE_MISMATCH` when the file holds a key of
   * another id (a file renamed or copied under the wrong name) or of another window.
   */
  async load(id: KeyId, passphrase: Passphrase, window?: ValidityWindow): Promise<SigningKey> {
    const key = await readKeyFile(this.pathOf(id), passphrase, this.#registry, window === undefined ? this.#options : { ...this.#options, window });
    if (key.keyId !== id) {
      key.dispose();
      throw new CryptoError('KEYSTORE_MISMATCH', `the file for key ${id} holds key ${key.keyId}`);
    }
    return key;
  }

  /**
   * Deletes the file of key `id` (a key retired by rotation) and makes the deletion durable. What
   * the file system does with the freed blocks is beyond this: an encrypted key file is what
   * remains at worst. A missing file is not an error.
   */
  async remove(id: KeyId): Promise<void> {
    try {
      await unlink(this.pathOf(id));
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return;
      throw error;
    }
    await syncDirectory(this.directory);
  }

  /**
   * Removes the temporaries of writes a crash interrupted before their rename, of key files and of
   * the files named in `others`: none will ever be renamed, and one may hold a sealed key. Only the
   * directory's one owner may call it, as it opens the store, when none of its writes can be in
   * flight. Anything else (another name, a directory) is left alone. Answers how many it removed.
   */
  async removeStaged(others: readonly string[] = []): Promise<number> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.directory, { withFileTypes: true });
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return 0;
      throw error;
    }
    const isOurs = (target: string): boolean => others.includes(target) || (target.endsWith(KEY_FILE_SUFFIX) && isKeyId(target.slice(0, -KEY_FILE_SUFFIX.length)));
    const staged = entries.filter((entry) => entry.isFile() && isOurs(STAGED_NAME.exec(entry.name)?.[1] ?? ''));
    for (const { name } of staged) await removeIfThere(join(this.directory, name));
    if (staged.length > 0) await syncDirectory(this.directory);
    return staged.length;
  }

  /** The ids of the stored keys, sorted; temporary files and anything else are ignored. */
  async list(): Promise<KeyId[]> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return [];
      throw error;
    }
    return names
      .filter((name) => name.endsWith(KEY_FILE_SUFFIX))
      .map((name) => name.slice(0, -KEY_FILE_SUFFIX.length))
      .filter(isKeyId)
      .sort();
  }
}
