/**
 * How a replica stores the receipt bodies of one executed position. The bodies of a position
 * share everything but each command's client, timestamp and hash (protocols/receipts/batch.ts),
 * and the cluster and protocol are the journal's own, so a record keeps the shared facts once:
 * about 50 bytes per command instead of 300, which is what the receipt log costs on disk.
 * Expanding a record gives back the bodies byte for byte, and so the same leaves. The policy is
 * stored with each position: a migration changes it, and a journal reopened after a restart
 * reads its records before the replica's configuration knows of the migrations again (records
 * written before there were migrations lack it, and are under the cluster's first policy).
 */
import { t } from '../schema/schema.js';
import { signaturePolicySchema } from '../protocols/consensus/index.js';
import { MAX_CLIENT_LENGTH, RECEIPT_VERSION, policyAt, sameHash, type LogContext, type ReceiptBody } from '../protocols/receipts/index.js';

const MAX_COMMANDS = 1 << 20;
const digest = t.bytes({ length: 32 });

const recordSchema = t.object({
  view: t.uint(),
  timestamp: t.uint(),
  firstLeaf: t.uint(),
  stateHashBefore: digest,
  stateHashAfter: digest,
  clients: t.array(t.string({ maxLength: MAX_CLIENT_LENGTH }), { maxLength: MAX_COMMANDS }),
  timestamps: t.array(t.uint(), { maxLength: MAX_COMMANDS }),
  commandHashes: t.array(digest, { maxLength: MAX_COMMANDS }),
  policy: t.optional(signaturePolicySchema),
});

/** The stored form of one position's receipt bodies. */
export type ReceiptRecord = ReturnType<(typeof recordSchema)['parse']>;

/**
 * Whether `bodies` are what `receiptBodies` builds for one position of this log: `position`, the
 * journal's cluster, protocol and policy, one view, timestamp and pair of state hashes, and
 * consecutive batch and leaf indices. Only such bodies survive {@link toRecord} unchanged.
 */
export function isPositionOfLog(bodies: readonly ReceiptBody[], position: number, context: LogContext): boolean {
  const first = bodies[0];
  if (first === undefined) return true;
  const policy = policyAt(context, position);
  return bodies.every(
    (body, i) =>
      body.version === RECEIPT_VERSION &&
      body.cluster === context.cluster &&
      body.protocol === context.protocol &&
      body.policy === policy &&
      body.sequence === position &&
      body.batchIndex === i &&
      body.leafIndex === first.leafIndex + i &&
      body.view === first.view &&
      body.timestamp === first.timestamp &&
      sameHash(body.stateHashBefore, first.stateHashBefore) &&
      sameHash(body.stateHashAfter, first.stateHashAfter),
  );
}

/** No state hash: what the record of a position without commands (a null request) holds. */
const NO_HASH = new Uint8Array(32);

/** The record of one position's bodies, which must satisfy {@link isPositionOfLog}. */
export function toRecord(bodies: readonly ReceiptBody[]): ReceiptRecord {
  const first = bodies[0];
  if (first === undefined) return { view: 0, timestamp: 0, firstLeaf: 0, stateHashBefore: NO_HASH, stateHashAfter: NO_HASH, clients: [], timestamps: [], commandHashes: [] };
  return {
    view: first.view,
    timestamp: first.timestamp,
    firstLeaf: first.leafIndex,
    stateHashBefore: first.stateHashBefore,
    stateHashAfter: first.stateHashAfter,
    clients: bodies.map((body) => body.client),
    timestamps: bodies.map((body) => body.clientTimestamp),
    commandHashes: bodies.map((body) => body.commandHash),
    policy: first.policy,
  };
}

/**
 * The bodies `stored` holds for `position` in the log of `context`.
 * @throws {Error} naming what is wrong, for bytes that are not such a record.
 */
export function fromRecord(stored: unknown, position: number, context: LogContext): ReceiptBody[] {
  const record = recordSchema.parse(stored, '$receipts');
  const n = record.clients.length;
  if (record.timestamps.length !== n || record.commandHashes.length !== n) throw new Error(`receipt record of position ${position} has lists of different lengths`);
  return record.clients.map((client, i) => ({
    version: RECEIPT_VERSION,
    cluster: context.cluster,
    protocol: context.protocol,
    sequence: position,
    view: record.view,
    batchIndex: i,
    client,
    clientTimestamp: record.timestamps[i] as number,
    commandHash: record.commandHashes[i] as Uint8Array,
    stateHashBefore: record.stateHashBefore,
    stateHashAfter: record.stateHashAfter,
    timestamp: record.timestamp,
    policy: record.policy ?? context.policy,
    leafIndex: record.firstLeaf + i,
  }));
}
