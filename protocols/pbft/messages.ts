/**
 * PBFT's messages (Castro & Liskov, TOCS'02 §4). Every one is signed by its sender (no MAC
 * authenticators), so prepared certificates, view changes and checkpoint proofs can be checked by
 * anyone who knows the members' keys. Builders put fields in schema order: a body's digest, and
 * so its signature, depends on that order.
 */
import { t, type Infer, type Schema } from '../../schema/schema.js';
import { batchSchema, type Command } from '../consensus/command.js';
import { digestOf, type Digest } from '../consensus/codec.js';
import { quorumCertSchema, signedSchema, type QuorumCert, type Signed } from '../consensus/certificate.js';
import { MAX_STATE_BYTES } from '../consensus/state-machine.js';
import type { SignedPosition } from '../consensus/core.js';

const digest = t.bytes({ length: 32 });
const seq = t.uint();

/**
 * ⟨PRE-PREPARE, v, n, d⟩ with the batch piggybacked and the timestamp the primary proposes (§4.2),
 * and `proposedIn`, the view in which the batch was first proposed: a new primary re-proposing a
 * prepared batch (§4.4) keeps it. The digest binds it, so every replica executes a sequence with
 * the same one, whichever view it committed in — a receipt names it, and replicas' receipt logs
 * must agree byte for byte.
 */
export const prePrepareSchema = t.object({
  type: t.literal('pre-prepare'),
  view: t.uint(),
  proposedIn: t.uint(),
  sequence: seq,
  digest,
  timestamp: t.uint(),
  batch: batchSchema,
});
/** A pre-prepare body. */
export type PrePrepare = Infer<typeof prePrepareSchema>;

/** ⟨PREPARE, v, n, d, i⟩ (§4.2). */
export const prepareSchema = t.object({ type: t.literal('prepare'), view: t.uint(), sequence: seq, digest });
/** A prepare body. */
export type Prepare = Infer<typeof prepareSchema>;

/** ⟨COMMIT, v, n, d, i⟩ (§4.2). */
export const commitSchema = t.object({ type: t.literal('commit'), view: t.uint(), sequence: seq, digest });
/** A commit body. */
export type Commit = Infer<typeof commitSchema>;

/** ⟨CHECKPOINT, n, d, i⟩: the state digest after executing sequence n (§4.3). */
export const checkpointSchema = t.object({ type: t.literal('checkpoint'), sequence: seq, stateDigest: digest });
/** A checkpoint body. */
export type Checkpoint = Infer<typeof checkpointSchema>;

/** The prepares of a prepared certificate. */
export const certificatePreparesSchema = t.array(signedSchema(prepareSchema), { maxLength: 1024 });

/** A prepared certificate: a pre-prepare and quorum−1 matching prepares from other backups (§4.4). */
export const preparedCertSchema = t.object({
  prePrepare: signedSchema(prePrepareSchema),
  prepares: certificatePreparesSchema,
});
/** A prepared certificate. */
export type PreparedCert = Infer<typeof preparedCertSchema>;

/** A stable checkpoint: its sequence and digest and the quorum of checkpoint messages proving it. */
export const stableCheckpointSchema = t.object({
  sequence: seq,
  stateDigest: digest,
  proof: t.array(signedSchema(checkpointSchema), { maxLength: 1024 }),
});
/** A stable checkpoint with its proof (the genesis checkpoint, sequence 0, needs none). */
export type StableCheckpoint = Infer<typeof stableCheckpointSchema>;

/** ⟨VIEW-CHANGE, v+1, n, C, P, i⟩ (§4.4). */
export const viewChangeSchema = t.object({
  type: t.literal('view-change'),
  view: t.uint(),
  checkpoint: stableCheckpointSchema,
  prepared: t.array(preparedCertSchema, { maxLength: 4096 }),
});
/** A view-change body. */
export type ViewChange = Infer<typeof viewChangeSchema>;

/** ⟨NEW-VIEW, v+1, V, O⟩ (§4.4). */
export const newViewSchema = t.object({
  type: t.literal('new-view'),
  view: t.uint(),
  viewChanges: t.array(signedSchema(viewChangeSchema), { maxLength: 1024 }),
  prePrepares: t.array(signedSchema(prePrepareSchema), { maxLength: 4096 }),
});
/** A new-view body. */
export type NewView = Infer<typeof newViewSchema>;

/**
 * Signed view-change and new-view messages relayed by any replica to one left behind: the
 * NEW-VIEW of the relayer's current view, or the view changes it holds for the view the peer is
 * stuck in (Castro's thesis §5.2 retransmits what a lagging peer lacks). Each keeps its original
 * signature, so relaying proves nothing about the relayer and needs no trust in it.
 */
export const relaySchema = t.object({
  type: t.literal('relay'),
  viewChanges: t.array(signedSchema(viewChangeSchema), { maxLength: 1024 }),
  newView: t.optional(signedSchema(newViewSchema)),
});
/** A relay body. */
export type Relay = Infer<typeof relaySchema>;

/** A replica behind a stable checkpoint asks for the state at it (§5.3.2, state transfer). */
export const fetchStateSchema = t.object({ type: t.literal('fetch-state'), sequence: seq });
/** A fetch-state body. */
export type FetchState = Infer<typeof fetchStateSchema>;

/** The state at a stable checkpoint, with its proof; the receiver checks the snapshot's hash. */
export const stateSchema = t.object({ type: t.literal('state'), checkpoint: stableCheckpointSchema, snapshot: t.bytes({ maxLength: MAX_STATE_BYTES }) });
/** A state body. */
export type StateTransfer = Infer<typeof stateSchema>;

/**
 * What a replica that restarted or stalls announces (Castro's thesis §5.2 status messages): its
 * view, how far it executed and its last stable checkpoint. A peer in a later view answers with
 * that view's NEW-VIEW (a relay), a peer with a later stable checkpoint with its state, or with the
 * checkpoint's proof alone when the replica executed past it, so an idle cluster brings it back too.
 */
export const statusSchema = t.object({ type: t.literal('status'), view: t.uint(), executed: t.uint(), stable: t.uint() });
/** A status body. */
export type Status = Infer<typeof statusSchema>;

/**
 * A stable checkpoint's proof, for a replica that executed past the checkpoint but never saw it
 * become stable (it was away when the checkpoint messages went out): a quorum's signed checkpoint
 * messages, which any one peer can pass on.
 */
export const stableSchema = t.object({ type: t.literal('stable'), checkpoint: stableCheckpointSchema });
/** A stable body. */
export type Stable = Infer<typeof stableSchema>;

/**
 * A committed sequence retransmitted to a replica that missed it (Castro's thesis §5.2): the
 * pre-prepare carrying the batch and the commit certificate for its digest. A quorum of commits
 * proves the batch committed, so the receiver executes it without having prepared it, which is
 * how a replica that returns to an idle cluster gets the tail after the last stable checkpoint.
 */
export const committedSchema = t.object({ type: t.literal('committed'), prePrepare: signedSchema(prePrepareSchema), certificate: quorumCertSchema });
/** A committed body. */
export type Committed = Infer<typeof committedSchema>;

const cases = {
  'pre-prepare': prePrepareSchema,
  prepare: prepareSchema,
  commit: commitSchema,
  checkpoint: checkpointSchema,
  'view-change': viewChangeSchema,
  'new-view': newViewSchema,
  relay: relaySchema,
  'fetch-state': fetchStateSchema,
  state: stateSchema,
  status: statusSchema,
  stable: stableSchema,
  committed: committedSchema,
} as const;

const messageType = t.oneOf(...(Object.keys(cases) as (keyof typeof cases)[]));

/** Every PBFT message body. */
export type PbftMessage = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | Relay | FetchState | StateTransfer | Status | Stable | Committed;

/** Schema of {@link PbftMessage}: dispatches on `type`. */
export const pbftMessageSchema: Schema<PbftMessage> = {
  expected: `PBFT message (${Object.keys(cases).join(' | ')})`,
  parse(value, path = '$', ctx) {
    const type = messageType.parse((value as { type?: unknown } | null)?.type, `${path}.type`);
    return (cases[type] as Schema<PbftMessage>).parse(value, path, ctx);
  },
};

/** The digest a pre-prepare binds: the batch, the proposed timestamp and the view it was first proposed in. */
export function proposalDigest(proposal: Pick<PrePrepare, 'proposedIn' | 'timestamp' | 'batch'>): Digest {
  return digestOf({ proposedIn: proposal.proposedIn, timestamp: proposal.timestamp, batch: proposal.batch });
}

/** Builds a pre-prepare; `proposedIn` is `view` for a new proposal, the original view for a re-proposal. */
export function prePrepare(view: number, sequence: number, timestamp: number, batch: readonly Command[], proposedIn = view): PrePrepare {
  return { type: 'pre-prepare', view, proposedIn, sequence, digest: proposalDigest({ proposedIn, timestamp, batch }), timestamp, batch };
}

/** Builds a prepare. */
export function prepare(view: number, sequence: number, d: Digest): Prepare {
  return { type: 'prepare', view, sequence, digest: d };
}

/**
 * Builds a commit. A committed entry's certificate is a quorum of signatures over
 * `commit(view, position, valueHash)`, so a third party rebuilds the signed bodies from it.
 */
export function commit(view: number, sequence: number, d: Digest): Commit {
  return { type: 'commit', view, sequence, digest: d };
}

/** Builds a checkpoint message. */
export function checkpoint(sequence: number, stateDigest: Digest): Checkpoint {
  return { type: 'checkpoint', sequence, stateDigest };
}

/** Every signed message nested in a body, for the host to verify before the core sees it. */
export function nestedSignatures(body: PbftMessage): Signed<SignedPosition>[] {
  switch (body.type) {
    case 'view-change':
      return viewChangeSignatures(body);
    case 'new-view':
      return newViewSignatures(body);
    case 'relay':
      return [
        ...body.viewChanges.flatMap((vc) => [vc, ...viewChangeSignatures(vc.body)]),
        ...(body.newView === undefined ? [] : [body.newView, ...newViewSignatures(body.newView.body)]),
      ];
    case 'state':
    case 'stable':
      return [...body.checkpoint.proof];
    case 'committed':
      return [body.prePrepare, ...commitsOf(body.prePrepare.body.sequence, body.certificate)];
    default:
      return [];
  }
}

/** The signed commit messages a commit certificate for `sequence` stands for. */
export function commitsOf(sequence: number, cert: QuorumCert): Signed<Commit>[] {
  return cert.signatures.map((s) => ({ from: s.node, body: commit(cert.view, sequence, cert.valueHash), signature: s.signature }));
}

function newViewSignatures(nv: NewView): Signed<SignedPosition>[] {
  return [...nv.viewChanges.flatMap((vc) => [vc, ...viewChangeSignatures(vc.body)]), ...nv.prePrepares];
}

function viewChangeSignatures(vc: ViewChange): Signed<SignedPosition>[] {
  return [...vc.checkpoint.proof, ...vc.prepared.flatMap((p) => [p.prePrepare, ...p.prepares])];
}
