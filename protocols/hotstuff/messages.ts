/**
 * HotStuff's messages and the signatures nested in them.
 *
 * - `proposal`: the leader's block for its view (Algorithm 3's generic message), carrying the QC
 *   on its parent and, when the previous view timed out, the TC that let the leader enter its view;
 * - `vote`: a replica's vote for a block, sent to the next view's leader (Algorithm 3, line 18);
 * - `timeout`: a replica gives up on a view (aggregated into a TC);
 * - `new-view`: a replica's highest QC (and TC), sent with a timeout and to peers seen lagging
 *   (the paper's NEW-VIEW, §4.2 and §5);
 * - `block-request` / `block-response`: fetching missing ancestors;
 * - `snapshot`: state transfer to a replica behind a peer's pruned history.
 */
import { t, type Infer } from '../../schema/schema.js';
import { quorumCertSchema, type QuorumCert, type Signed } from '../consensus/certificate.js';
import { MAX_STATE_BYTES } from '../consensus/state-machine.js';
import type { SignedPosition } from '../consensus/core.js';
import { blockSchema, type Block } from './block.js';
import { signedTimeouts, signedVotes, timeoutCertSchema, type TimeoutCert } from './certificates.js';

/** Most blocks one `block-response` carries. */
export const MAX_BLOCKS_PER_RESPONSE = 64;

/** Schema of every HotStuff message body. */
export const hotStuffMessageSchema = t.variants({
  proposal: { block: blockSchema, tc: t.optional(timeoutCertSchema) },
  vote: { view: t.uint(), block: t.bytes({ length: 32 }) },
  timeout: { view: t.uint() },
  'new-view': { view: t.uint(), highQC: quorumCertSchema, tc: t.optional(timeoutCertSchema) },
  'block-request': { hash: t.bytes({ length: 32 }), height: t.uint(), count: t.uint(MAX_BLOCKS_PER_RESPONSE) },
  'block-response': { blocks: t.array(blockSchema, { maxLength: MAX_BLOCKS_PER_RESPONSE }) },
  snapshot: { block: blockSchema, state: t.bytes({ maxLength: MAX_STATE_BYTES }) },
});

/** A HotStuff message body. */
export type HotStuffMessage = Infer<typeof hotStuffMessageSchema>;

/** The body of a message of type `K`. */
export type MessageOf<K extends HotStuffMessage['type']> = Extract<HotStuffMessage, { readonly type: K }>;

/** A proposal body with its fields in schema order; `tc` only when the leader entered its view on one. */
export function proposalBody(block: Block, tc: TimeoutCert | undefined): MessageOf<'proposal'> {
  return tc === undefined ? { type: 'proposal', block } : { type: 'proposal', block, tc };
}

/** A new-view body with its fields in schema order; `tc` only when it is newer than `highQC`. */
export function newViewBody(view: number, highQC: QuorumCert, tc: TimeoutCert | undefined): MessageOf<'new-view'> {
  return tc === undefined ? { type: 'new-view', view, highQC } : { type: 'new-view', view, highQC, tc };
}

/**
 * The first signature of each distinct signer. A certificate naming a signer twice is refused by
 * the core (checkQC/checkTC) whatever its signatures, so verifying the repeats would be wasted
 * work an attacker could multiply up to the schema's 1 024 entries; since hosts refuse a message
 * naming a non-member, this leaves at most n signatures per certificate to verify.
 */
function firstPerSigner<B>(signed: readonly Signed<B>[]): Signed<B>[] {
  const seen = new Set<number>();
  return signed.filter((s) => {
    if (seen.has(s.from)) return false;
    seen.add(s.from);
    return true;
  });
}

function votesOf(qc: QuorumCert): Signed<SignedPosition>[] {
  return firstPerSigner(signedVotes(qc));
}

function timeoutsOf(tc: TimeoutCert | undefined): Signed<SignedPosition>[] {
  return tc === undefined ? [] : firstPerSigner(signedTimeouts(tc));
}

/**
 * Every signature nested in `body` (QC votes and TC timeouts), with its signed body rebuilt, for
 * the host to verify before the core sees `body`; one per signer and certificate (see above).
 */
export function nestedSignatures(body: HotStuffMessage): Signed<SignedPosition>[] {
  switch (body.type) {
    case 'proposal':
      return [...votesOf(body.block.justify), ...timeoutsOf(body.tc)];
    case 'new-view':
      return [...votesOf(body.highQC), ...timeoutsOf(body.tc)];
    case 'block-response':
      return body.blocks.flatMap((b) => votesOf(b.justify));
    case 'snapshot':
      return votesOf(body.block.justify);
    case 'vote':
    case 'timeout':
    case 'block-request':
      return [];
  }
}
