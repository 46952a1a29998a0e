/**
 * What a PBFT replica keeps on disk, and how it is read back. A replica persists, before the
 * messages that depend on them leave (consensus/core.ts): the view it is in or changing to, the
 * highest sequence it proposed as primary, every slot's accepted pre-prepare, prepared
 * certificate and commit certificate, the latest stable checkpoint's proof, the latest state it
 * holds at a stable checkpoint (consensus/state-archive.ts: a snapshot and the changes of the
 * stable checkpoints after it), the view-change quorum that justified leaving its last view, and the
 * NEW-VIEW of the view it is in. A slot's three facts are three records, so a pre-prepare's batch
 * is written once however far the slot gets. Records that do not parse, or contradict each other, are a
 * `CORRUPT_STATE` error: storage is never silently trusted.
 */
import { t, type Infer, type Schema } from '../../schema/schema.js';
import { readStored, sameBytes } from '../consensus/codec.js';
import { quorumCertSchema, signedSchema, type QuorumCert, type Signed } from '../consensus/certificate.js';
import { ConsensusError } from '../consensus/errors.js';
import { readArchive, type ArchiveRecords } from '../consensus/state-archive.js';
import { certificatePreparesSchema, newViewSchema, prePrepareSchema, stableCheckpointSchema, viewChangeSchema, type NewView, type PreparedCert, type PrePrepare } from './messages.js';

/** The record keys, one place. */
export const DURABLE_KEYS = {
  view: 'view',
  stable: 'stable',
  leftView: 'left-view',
  newView: 'new-view',
  newViewSent: 'new-view-sent',
  proposed: 'proposed',
} as const;

const SLOT_PREFIX = 'slot/';

/** The facts a slot records, each in a record of its own so that its batch is written once. */
export type SlotFact = 'pre-prepare' | 'prepared' | 'committed';

/** Every fact a slot records. */
export const SLOT_FACTS: readonly SlotFact[] = ['pre-prepare', 'prepared', 'committed'];

/**
 * The key of one of a slot's records: `slot/<sequence>` for its pre-prepare, with `/prepared` or
 * `/committed` after it for the others. The sequence is zero-padded so stores that sort keys keep
 * sequence order.
 */
export function slotKey(sequence: number, fact: SlotFact = 'pre-prepare'): string {
  const key = `${SLOT_PREFIX}${sequence.toString().padStart(16, '0')}`;
  return fact === 'pre-prepare' ? key : `${key}/${fact}`;
}

const prePrepareRecordSchema = t.object({ prePrepare: signedSchema(prePrepareSchema) });
// A prepared certificate whose pre-prepare is the slot's own leaves it out; one from an earlier
// view, whose pre-prepare the slot has since replaced, carries it.
const preparedRecordSchema = t.object({
  prePrepare: t.optional(signedSchema(prePrepareSchema)),
  prepares: certificatePreparesSchema,
});
const committedRecordSchema = t.object({ certificate: quorumCertSchema });

/** A slot as read back. */
export interface SlotRecord {
  readonly prePrepare?: Signed<PrePrepare>;
  readonly preparedCert?: PreparedCert;
  readonly committed?: QuorumCert;
}

/** The record of a slot's prepared certificate, given the slot's accepted pre-prepare. */
export function preparedRecord(cert: PreparedCert, slotPrePrepare: Signed<PrePrepare> | undefined): Infer<typeof preparedRecordSchema> {
  return cert.prePrepare === slotPrePrepare ? { prepares: cert.prepares } : { prePrepare: cert.prePrepare, prepares: cert.prepares };
}

const viewRecordSchema = t.object({ view: t.uint(), changing: t.boolean() });
const stableRecordSchema = t.object({ checkpoint: stableCheckpointSchema });
const leftViewRecordSchema = t.object({ view: t.uint(), viewChanges: t.array(signedSchema(viewChangeSchema)) });
const proposedRecordSchema = t.object({ view: t.uint(), sequence: t.uint() });
const newViewSentSchema = t.object({ body: newViewSchema });

/** Everything read back, validated. */
export interface PbftDurableState {
  readonly view?: Infer<typeof viewRecordSchema>;
  readonly stable?: Infer<typeof stableRecordSchema>;
  /** The state at the last stable checkpoint it stored, positions being sequence numbers. */
  readonly archive: ArchiveRecords;
  readonly leftView?: Infer<typeof leftViewRecordSchema>;
  readonly newView?: Signed<NewView>;
  readonly newViewSent?: Infer<typeof newViewSentSchema>;
  readonly proposed?: Infer<typeof proposedRecordSchema>;
  readonly slots: readonly { readonly sequence: number; readonly record: SlotRecord }[];
}

function factOf(key: string): SlotFact {
  if (key.endsWith('/prepared')) return 'prepared';
  if (key.endsWith('/committed')) return 'committed';
  return 'pre-prepare';
}

/**
 * Reads and checks a replica's records.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that does not parse, state records filed
 * under another sequence or changes without a snapshot before them ({@link readArchive}, which
 * leaves aside those past the stable checkpoint's proof), or a committed slot without the
 * pre-prepare its certificate names.
 */
export function readDurable(durable: ReadonlyMap<string, unknown>): PbftDurableState {
  const get = <T>(key: string, schema: Schema<T>): T | undefined => readStored(durable, key, schema, 'PBFT');
  const stable = get(DURABLE_KEYS.stable, stableRecordSchema);
  const archive = readArchive(durable, stable?.checkpoint.sequence ?? 0, 'PBFT');
  const slots: { sequence: number; record: SlotRecord }[] = [];
  const sequences = new Set<number>();
  for (const key of durable.keys()) {
    if (!key.startsWith(SLOT_PREFIX)) continue;
    const sequence = Number(key.slice(SLOT_PREFIX.length, SLOT_PREFIX.length + 16));
    if (!Number.isSafeInteger(sequence) || sequence < 1 || key !== slotKey(sequence, factOf(key))) throw new ConsensusError('CORRUPT_STATE', `durable PBFT key ${key} names no slot record`);
    sequences.add(sequence);
  }
  for (const sequence of sequences) {
    const prePrepare = get(slotKey(sequence), prePrepareRecordSchema)?.prePrepare;
    const prepared = get(slotKey(sequence, 'prepared'), preparedRecordSchema);
    const committed = get(slotKey(sequence, 'committed'), committedRecordSchema)?.certificate;
    let preparedCert: PreparedCert | undefined;
    if (prepared !== undefined) {
      const certified = prepared.prePrepare ?? prePrepare;
      if (certified === undefined || prepared.prepares.some((p) => p.body.view !== certified.body.view || !sameBytes(p.body.digest, certified.body.digest))) {
        throw new ConsensusError('CORRUPT_STATE', `slot ${sequence}'s prepared certificate does not match its pre-prepare`);
      }
      preparedCert = { prePrepare: certified, prepares: prepared.prepares };
    }
    if (committed !== undefined && (prePrepare === undefined || !sameBytes(committed.valueHash, prePrepare.body.digest))) {
      throw new ConsensusError('CORRUPT_STATE', `slot ${sequence} is committed without its matching pre-prepare`);
    }
    slots.push({
      sequence,
      record: { ...(prePrepare === undefined ? {} : { prePrepare }), ...(preparedCert === undefined ? {} : { preparedCert }), ...(committed === undefined ? {} : { committed }) },
    });
  }
  return {
    view: get(DURABLE_KEYS.view, viewRecordSchema),
    stable,
    archive,
    leftView: get(DURABLE_KEYS.leftView, leftViewRecordSchema),
    newView: get(DURABLE_KEYS.newView, signedSchema(newViewSchema)),
    newViewSent: get(DURABLE_KEYS.newViewSent, newViewSentSchema),
    proposed: get(DURABLE_KEYS.proposed, proposedRecordSchema),
    slots: slots.sort((a, b) => a.sequence - b.sequence),
  };
}
