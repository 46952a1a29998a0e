/** Writing a replica store's records or its LMDB file behind its back, as damage or an older build would. */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { encode, hashBytes } from '../../protocols/consensus/index.js';

/** Record `key` as the store keeps it: SHA-256(msgpack(key) ‖ payload) ‖ payload, the format record SHA-256(payload) ‖ payload. */
export function sealed(key: string, value: unknown): Uint8Array {
  const payload = encode(value);
  const covered = key === 'meta:format' ? payload : Uint8Array.from([...encode(key), ...payload]);
  return Uint8Array.from([...hashBytes(covered), ...payload]);
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

/** The raw record `key` of the store in `dir`, as stored (checksum and payload). */
export async function rawRecord(dir: string, key: string): Promise<Uint8Array | undefined> {
  const raw = openLmdb({ path: dir, encoding: 'binary', compression: false });
  try {
    const bytes = raw.get(key) as Uint8Array | undefined;
    return bytes === undefined ? undefined : Uint8Array.from(bytes);
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

/** The LMDB data file of the store in `dir`. */
export const dataFile = (dir: string): string => join(dir, 'data.mdb');

/**
 * What the meta page in force of the LMDB file in `dir` says (the layout is lmdb-file.ts's): its
 * page size, its last page and the root page of its main tree.
 */
export async function metaInForce(dir: string): Promise<{ pageSize: number; lastPage: number; mainRoot: number }> {
  const file = await readFile(dataFile(dir));
  const pageSize = file.readUInt32LE(48);
  const at = file.readBigUInt64LE(152) >= file.readBigUInt64LE(pageSize + 152) ? 0 : pageSize;
  return { pageSize, lastPage: Number(file.readBigUInt64LE(at + 144)), mainRoot: Number(file.readBigUInt64LE(at + 136)) };
}

/**
 * Points the first node of the main tree's root, a branch page, of the store in `dir` at a page
 * past any file, as damage done while the store is open would: LMDB then reports
 * `MDB_PAGE_NOTFOUND` for what it reads through that node. Resolves with what undoes it.
 */
export async function pointRootAway(dir: string): Promise<() => Promise<void>> {
  const { pageSize, mainRoot } = await metaInForce(dir);
  const file = await open(dataFile(dir), 'r+');
  try {
    const page = Buffer.alloc(pageSize);
    await file.read(page, 0, pageSize, mainRoot * pageSize);
    if ((page.readUInt16LE(18) & 0x01) === 0) throw new Error(`the main tree's root, page ${mainRoot}, is not a branch page`);
    // A branch node keeps its child's page number in its first four bytes (and its flags).
    const pointer = mainRoot * pageSize + 24 + page.readUInt16LE(24);
    const was = Buffer.from(page.subarray(pointer - mainRoot * pageSize, pointer - mainRoot * pageSize + 4));
    await file.write(Buffer.from([0xff, 0xff, 0xff, 0x0f]), 0, 4, pointer);
    return async () => {
      const again = await open(dataFile(dir), 'r+');
      await again.write(was, 0, 4, pointer).finally(() => again.close());
    };
  } finally {
    await file.close();
  }
}
