/**
 * A replica store's witness: a small file beside LMDB's `data.mdb` (replica-store.ts) saying that
 * the store was created and how many times it has been opened. What is inside the data file cannot
 * vouch for the file itself: an emptied or missing `data.mdb` reads as a store never written, and
 * a copy restored from an older backup reads as a healthy store. A replica that opened such a file
 * would start as new, or from an older state, having forgotten votes it cast: PBFT and HotStuff
 * would count it among the f faults they tolerate without knowing it, and a Raft replica could
 * vote twice in one term. The witness lets `ReplicaStore.open` refuse both.
 *
 * It is written after the store's own count of opens, each time the store opens, so a kill between
 * the two leaves the store one open ahead of its witness, never behind: a store behind its witness
 * is an older copy of itself. A copy taken since the last open is not told apart (it has the same
 * count); catching it would need a write outside the store at every step.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from './key-store.js';
import { StorageError } from './storage-error.js';

/** The witness's file name, in the store's directory. */
export const WITNESS_FILE = 'witness.json';
/** A witness is a few bytes; anything much larger is not one, and is refused unread. */
const MAX_WITNESS_BYTES = 1024;

/** Whether `value` is a count of a store's opens: a whole number from 1 (the store's own record says the same). */
export const isCountOfOpens = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;

/** What a witness says of its store. */
export interface StoreWitness {
  /** How many times the store has been opened, as it last counted (`ReplicaStore.opens`). */
  readonly opens: number;
}

/**
 * The witness of the store in `dir`, or undefined when it has none.
 * @throws {StorageError} `STORAGE_CORRUPT` when the file is there but is not a witness.
 */
export async function readWitness(dir: string): Promise<StoreWitness | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, WITNESS_FILE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (bytes.length > MAX_WITNESS_BYTES) throw new StorageError('STORAGE_CORRUPT', dir, `${WITNESS_FILE} is ${bytes.length} bytes, more than a witness`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new StorageError('STORAGE_CORRUPT', dir, `${WITNESS_FILE} is not JSON`, { cause });
  }
  const opens = typeof parsed === 'object' && parsed !== null ? (parsed as { opens?: unknown }).opens : undefined;
  if (!isCountOfOpens(opens)) throw new StorageError('STORAGE_CORRUPT', dir, `${WITNESS_FILE} does not hold a count of opens`);
  return { opens };
}

/** Replaces the witness of the store in `dir`, atomically and durably. */
export async function writeWitness(dir: string, witness: StoreWitness): Promise<void> {
  await atomicWriteFile(join(dir, WITNESS_FILE), new TextEncoder().encode(`${JSON.stringify({ opens: witness.opens })}\n`));
}
