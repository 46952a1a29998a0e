/**
 * Which of a replica's stored keys signs, and the public history of its keys: `custody.json`
 * beside the key files, replaced atomically like them (key-store.ts). The history is public
 * (schemes, public keys, validity windows, epochs and the log positions each key signed for), so
 * it is kept in clear; it is what lets a restarted cluster describe every key a receipt of its
 * log may be signed with, long after a rotation wiped the old secret.
 *
 * A rotation the replica proposed is recorded as pending until it is adopted or withdrawn, so
 * that a signer restarted meanwhile proposes the same successor again and can adopt it.
 *
 * A key file is written before the record that names it (as in force or as pending), and a
 * retired or withdrawn key's file is removed after the record that drops it, so a crash between
 * the two leaves a file the record does not name — never a record naming a missing key. The
 * signer removes the files of retired keys when it opens the store, since a retired secret must
 * not outlive its record. Other files it leaves: a successor whose proposal was never recorded
 * was never answered either, but a build that kept no pending record answered proposals it never
 * recorded, and such a successor may yet be adopted.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { t, type Schema } from '../schema/schema.js';
import { CryptoError, isKeyId, SCHEME_NAMES, type KeyDescriptor, type KeyId } from '../protocols/crypto/index.js';
import { atomicWriteFile } from './key-store.js';

/** One key of a replica and the log positions it signs for. */
export interface CustodyRecord {
  readonly descriptor: KeyDescriptor;
  /** 0 for the replica's first key, one more per rotation. */
  readonly epoch: number;
  /** First log position the key signs for. */
  readonly fromSequence: number;
  /** Last log position it signed for, inclusive; absent for the key in force. */
  readonly untilSequence?: number;
}

/** The custody record's file name, in the signer's key directory. */
export const CUSTODY_FILE = 'custody.json';
/** Largest custody file read: thousands of rotations of the largest keys. */
const MAX_CUSTODY_BYTES = 16 << 20;

/** The fields of one key of a custody history, with its public key as `publicKey` encodes it (bytes in messages, base64url in the file). */
export function custodyFields<P>(publicKey: Schema<P>) {
  return {
    keyId: t.string({ maxLength: 128 }),
    scheme: t.oneOf(...SCHEME_NAMES),
    publicKey,
    createdAt: t.uint(),
    notBefore: t.uint(),
    notAfter: t.uint(),
    epoch: t.uint(),
    fromSequence: t.uint(),
    untilSequence: t.optional(t.uint()),
  };
}

/** What custody.json holds: the history of the replica's keys, and the rotation it proposed while one awaits consensus. */
export interface CustodyFile {
  /** Oldest first; the last is the key in force. */
  readonly keys: readonly CustodyRecord[];
  /** The encoded certificate of the rotation proposed and neither adopted nor withdrawn yet; its successor's key file is in the store. */
  readonly pending?: Uint8Array;
}

const custodySchema = t.object({
  version: t.literal(1),
  keys: t.array(t.object(custodyFields(t.string({ maxLength: 16384 }))), { maxLength: 1 << 16 }),
  pending: t.optional(t.string({ maxLength: 1 << 17 })),
});

const corrupt = (path: string, reason: string, cause?: unknown): never => {
  throw new CryptoError('KEYSTORE_CORRUPT', `${path}: ${reason}`, cause === undefined ? undefined : { cause });
};

/**
 * The custody record of the key store in `directory`, or `undefined` when there is none yet.
 * @throws {CryptoError} `KEYSTORE_CORRUPT` when the file does not parse, or its records do not chain (epochs one apart, positions contiguous).
 */
export async function readCustody(directory: string): Promise<CustodyFile | undefined> {
  const path = join(directory, CUSTODY_FILE);
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_CUSTODY_BYTES) corrupt(path, `larger than ${MAX_CUSTODY_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed;
  try {
    parsed = custodySchema.parse(JSON.parse(text));
  } catch (cause) {
    return corrupt(path, 'not a custody record', cause);
  }
  const records = parsed.keys.map(
    (k): CustodyRecord => ({
      descriptor: { keyId: k.keyId as KeyId, scheme: k.scheme, publicKey: new Uint8Array(Buffer.from(k.publicKey, 'base64url')), createdAt: k.createdAt, notBefore: k.notBefore, notAfter: k.notAfter },
      epoch: k.epoch,
      fromSequence: k.fromSequence,
      ...(k.untilSequence === undefined ? {} : { untilSequence: k.untilSequence }),
    }),
  );
  records.forEach((record, i) => {
    if (!isKeyId(record.descriptor.keyId)) corrupt(path, `record ${i} names no key id`);
    const next = records[i + 1];
    if (next === undefined) {
      if (record.untilSequence !== undefined) corrupt(path, 'the key in force has an end');
    } else if (next.epoch !== record.epoch + 1 || record.untilSequence === undefined || next.fromSequence !== record.untilSequence + 1) {
      corrupt(path, `records ${i} and ${i + 1} do not chain`);
    }
  });
  if (records.length === 0) corrupt(path, 'no key in force');
  return { keys: records, ...(parsed.pending === undefined ? {} : { pending: new Uint8Array(Buffer.from(parsed.pending, 'base64url')) }) };
}

/** Replaces the custody record of the key store in `directory` atomically and durably. */
export async function writeCustody(directory: string, { keys: records, pending }: CustodyFile): Promise<void> {
  const keys = records.map(({ descriptor: d, epoch, fromSequence, untilSequence }) => ({
    keyId: d.keyId,
    scheme: d.scheme,
    publicKey: Buffer.from(d.publicKey).toString('base64url'),
    createdAt: d.createdAt,
    notBefore: d.notBefore,
    notAfter: d.notAfter,
    epoch,
    fromSequence,
    ...(untilSequence === undefined ? {} : { untilSequence }),
  }));
  const file = { version: 1, keys, ...(pending === undefined ? {} : { pending: Buffer.from(pending).toString('base64url') }) };
  await atomicWriteFile(join(directory, CUSTODY_FILE), new TextEncoder().encode(`${JSON.stringify(file, null, 1)}\n`));
}
