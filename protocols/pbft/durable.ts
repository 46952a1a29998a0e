/**
 * What a PBFT replica keeps on disk, and how it is read back. A replica persists, before the
 * messages that depend on them leave (consensus/core.ts): the view it is in or changing to, the
 * highest sequence it proposed as primary, every slot's accepted pre-prepare, prepared
 * certificate and commit certificate, the latest stable checkpoint's proof, the latest state it
 * holds at a checkpoint, the view-change quorum that justified leaving its last view, and the
 * NEW-VIEW of the view it is in. Records that do not parse, or contradict each other, are a
 * `CORRUPT_STATE` error: storage is never silently trusted.
 */
import { t, type Infer } from '../../schema/schema.js';
import { hashBytes, sameBytes } from '../consensus/codec.js';
import { quorumCertSchema, signedSchema, type Signed } from '../consensus/certificate.js';
import { ConsensusError } from '../consensus/errors.js';
import { newViewSchema, preparedCertSchema, prePrepareSchema, stableCheckpointSchema, viewChangeSchema, type NewView } from './messages.js';

/** The record keys, one place. */
export const DURABLE_KEYS = {
  view: 'view',
  stable: 'stable',
  snapshot: 'snapshot',
  leftView: 'left-view',
  newView: 'new-view',
  newViewSent: 'new-view-sent',
  proposed: 'proposed',
} as const;

const SLOT_PREFIX = 'slot/';

/** The key of a slot's record; zero-padded so stores that sort keys keep sequence order. */
export function slotKey(sequence: number): string {
  return `${SLOT_PREFIX}${sequence.toString().padStart(16, '0')}`;
}

const slotRecordSchema = t.object({
  prePrepare: t.optional(signedSchema(prePrepareSchema)),
  preparedCert: t.optional(preparedCertSchema),
  committed: t.optional(quorumCertSchema),
});
/** A slot as persisted. */
export type SlotRecord = Infer<typeof slotRecordSchema>;

const viewRecordSchema = t.object({ view: t.uint(), changing: t.boolean() });
const stableRecordSchema = t.object({ checkpoint: stableCheckpointSchema });
const snapshotRecordSchema = t.object({ sequence: t.uint(), stateDigest: t.bytes({ length: 32 }), snapshot: t.bytes() });
const leftViewRecordSchema = t.object({ view: t.uint(), viewChanges: t.array(signedSchema(viewChangeSchema)) });
const proposedRecordSchema = t.object({ view: t.uint(), sequence: t.uint() });
const newViewSentSchema = t.object({ body: newViewSchema });

/** Everything read back, validated. */
export interface PbftDurableState {
  readonly view?: Infer<typeof viewRecordSchema>;
  readonly stable?: Infer<typeof stableRecordSchema>;
  readonly snapshot?: Infer<typeof snapshotRecordSchema>;
  readonly leftView?: Infer<typeof leftViewRecordSchema>;
  readonly newView?: Signed<NewView>;
  readonly newViewSent?: Infer<typeof newViewSentSchema>;
  readonly proposed?: Infer<typeof proposedRecordSchema>;
  readonly slots: readonly { readonly sequence: number; readonly record: SlotRecord }[];
}

/**
 * Reads and checks a replica's records.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that does not parse, a snapshot whose
 * bytes do not match its digest, a snapshot ahead of the stable checkpoint's proof, or a committed
 * slot without the pre-prepare its certificate names.
 */
export function readDurable(durable: ReadonlyMap<string, unknown>): PbftDurableState {
  const get = <T>(key: string, schema: { parse(v: unknown): T }): T | undefined => {
    const value = durable.get(key);
    if (value === undefined) return undefined;
    try {
      return schema.parse(value);
    } catch (cause) {
      throw new ConsensusError('CORRUPT_STATE', `durable PBFT record ${key} does not parse`, { cause });
    }
  };
  const snapshot = get(DURABLE_KEYS.snapshot, snapshotRecordSchema);
  if (snapshot !== undefined && !sameBytes(hashBytes(snapshot.snapshot), snapshot.stateDigest)) {
    throw new ConsensusError('CORRUPT_STATE', `the snapshot at sequence ${snapshot.sequence} does not match its digest`);
  }
  const stable = get(DURABLE_KEYS.stable, stableRecordSchema);
  if (snapshot !== undefined && snapshot.sequence > (stable?.checkpoint.sequence ?? 0)) {
    throw new ConsensusError('CORRUPT_STATE', `the snapshot at sequence ${snapshot.sequence} is ahead of the stable checkpoint`);
  }
  const slots: { sequence: number; record: SlotRecord }[] = [];
  for (const key of durable.keys()) {
    if (!key.startsWith(SLOT_PREFIX)) continue;
    const sequence = Number(key.slice(SLOT_PREFIX.length));
    const record = get(key, slotRecordSchema) as SlotRecord;
    if (!Number.isSafeInteger(sequence) || sequence < 1) throw new ConsensusError('CORRUPT_STATE', `durable PBFT key ${key} names no sequence`);
    if (record.committed !== undefined && (record.prePrepare === undefined || !sameBytes(record.committed.valueHash, record.prePrepare.body.digest))) {
      throw new ConsensusError('CORRUPT_STATE', `slot ${sequence} is committed without its matching pre-prepare`);
    }
    slots.push({ sequence, record });
  }
  return {
    view: get(DURABLE_KEYS.view, viewRecordSchema),
    stable,
    snapshot,
    leftView: get(DURABLE_KEYS.leftView, leftViewRecordSchema),
    newView: get(DURABLE_KEYS.newView, signedSchema(newViewSchema)),
    newViewSent: get(DURABLE_KEYS.newViewSent, newViewSentSchema),
    proposed: get(DURABLE_KEYS.proposed, proposedRecordSchema),
    slots: slots.sort((a, b) => a.sequence - b.sequence),
  };
}
