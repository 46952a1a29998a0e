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
import { quorumCertSchema, type Signed } from '../consensus/certificate.js';
import { blockSchema } from './block.js';
import { signedTimeouts, signedVotes, timeoutCertSchema } from './certificates.js';

/** Most blocks one `block-response` carries. */
export const MAX_BLOCKS_PER_RESPONSE = 64;

/** Largest state snapshot a `snapshot` message carries. */
export const MAX_SNAPSHOT_BYTES = 1 << 26;

/** Schema of every HotStuff message body. */
export const hotStuffMessageSchema = t.variants({
  proposal: { block: blockSchema, tc: t.optional(timeoutCertSchema) },
  vote: { view: t.uint(), block: t.bytes({ length: 32 }) },
  timeout: { view: t.uint() },
  'new-view': { view: t.uint(), highQC: quorumCertSchema, tc: t.optional(timeoutCertSchema) },
  'block-request': { hash: t.bytes({ length: 32 }), height: t.uint(), count: t.uint(MAX_BLOCKS_PER_RESPONSE) },
  'block-response': { blocks: t.array(blockSchema, { maxLength: MAX_BLOCKS_PER_RESPONSE }) },
  snapshot: { block: blockSchema, state: t.bytes({ maxLength: MAX_SNAPSHOT_BYTES }) },
});

/** A HotStuff message body. */
export type HotStuffMessage = Infer<typeof hotStuffMessageSchema>;

/** The body of a message of type `K`. */
export type MessageOf<K extends HotStuffMessage['type']> = Extract<HotStuffMessage, { readonly type: K }>;

/** Every signature nested in `body` (QC votes and TC timeouts), with its signed body rebuilt. */
export function nestedSignatures(body: HotStuffMessage): Signed<unknown>[] {
  switch (body.type) {
    case 'proposal':
      return [...signedVotes(body.block.justify), ...(body.tc === undefined ? [] : signedTimeouts(body.tc))];
    case 'new-view':
      return [...signedVotes(body.highQC), ...(body.tc === undefined ? [] : signedTimeouts(body.tc))];
    case 'block-response':
      return body.blocks.flatMap((b) => signedVotes(b.justify));
    case 'snapshot':
      return signedVotes(body.block.justify);
    case 'vote':
    case 'timeout':
    case 'block-request':
      return [];
  }
}
