/** Why a replica's storage cannot be used (replica-store.ts, store-witness.ts, data-dir-lock.ts). */
import { KnhkError } from '../runtime/errors.js';

/** Why a replica's storage cannot be used. */
export type StorageErrorCode =
  /** A record's bytes do not match their checksum or do not decode, or the store's files do not agree with each other. */
  | 'STORAGE_CORRUPT'
  /** The store's data file is an older copy of itself: it has been opened fewer times than its witness says (store-witness.ts). */
  | 'STORAGE_ROLLBACK'
  /** A write could not be committed (a full disk, say): the step it carried was not stored. */
  | 'STORAGE_WRITE'
  /** The directory holds another replica's (or another cluster's) state. */
  | 'STORAGE_MISMATCH'
  /** The directory was written in a store format this build does not read (`STORE_FORMAT`). */
  | 'STORAGE_FORMAT'
  /** Another running cluster holds the data directory (data-dir-lock.ts). */
  | 'STORAGE_IN_USE';

/** A replica's storage is corrupted, is not its own, or cannot be written. */
export class StorageError extends KnhkError {
  declare readonly code: StorageErrorCode;
  /** The replica directory (the data directory, for `STORAGE_IN_USE`). */
  readonly path: string;
  constructor(code: StorageErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, `${path}: ${message}`, options);
    this.path = path;
  }
}
