/** Writing a replica store's records behind its back, as damage or an older build would. */
import { open as openLmdb } from 'lmdb';
import { encode, hashBytes } from '../../protocols/consensus/index.js';

/** A record as the store keeps it: SHA-256(payload) ‖ payload. */
export function sealed(value: unknown): Uint8Array {
  const payload = encode(value);
  return Uint8Array.from([...hashBytes(payload), ...payload]);
}

/** The keys of the closed store in `dir`, in order. */
export async function recordKeys(dir: string): Promise<string[]> {
  const raw = openLmdb<Uint8Array, string>({ path: dir, encoding: 'binary', compression: false });
  try {
    return [...raw.getKeys()];
  } finally {
    await raw.close();
  }
}

/** Replaces the raw record `key` of the closed store in `dir` with `bytes`, or removes it. */
export async function overwriteRecord(dir: string, key: string, bytes: Uint8Array | undefined): Promise<void> {
  const raw = openLmdb({ path: dir, encoding: 'binary', compression: false });
  try {
    await (bytes === undefined ? raw.remove(key) : raw.put(key, bytes));
  } finally {
    await raw.close();
  }
}
