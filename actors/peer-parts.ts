/**
 * Envelopes between replicas larger than one actor message may be: a state transfer, a snapshot
 * or a catch-up of a large state, which the runtime's frame limit (`maxMessageBytes`, 8 MiB by
 * default) would refuse whole. The sender cuts such an envelope into numbered parts sent in order
 * on the one link; the receiver joins them and hands on the envelope, which its signature and
 * schema then check as any other. Parts of an urgent envelope travel in the urgent lane and may
 * overtake those of a bulk one, so a replica joins {@link JOINING_PER_PEER} envelopes per peer at
 * a time, of at most {@link MAX_JOINED_BYTES} each: a faulty peer cannot make it hold more.
 */
import { MAX_STATE_BYTES } from '../protocols/consensus/index.js';
import { t } from '../runtime/index.js';

/** Envelopes up to this size go whole; larger ones in parts of this size. */
export const PART_BYTES = 1 << 20;

/** The smallest `maxMessageBytes` a system running a cluster needs: a part with room to spare for what wraps it. */
export const MIN_MESSAGE_BYTES = 2 * PART_BYTES;

/**
 * The largest envelope sent in parts: the largest state a replica sends ({@link MAX_STATE_BYTES}),
 * with room for what wraps it (a checkpoint's certificate, the signed envelope, a HotStuff block
 * of up to 4 MiB of commands). A larger envelope is not sent (`cutIntoParts`).
 */
export const MAX_JOINED_BYTES = MAX_STATE_BYTES + (4 << 20);

/** Envelopes a replica joins at once from one peer: an urgent one and a bulk one. */
export const JOINING_PER_PEER = 2;

/** Schema of one part: the `index`th of `count` parts of envelope `id` (a counter of its sender's). */
export const peerPartSchema = {
  id: t.uint(),
  index: t.uint(),
  count: t.int({ min: 2, max: Math.ceil(MAX_JOINED_BYTES / PART_BYTES) }),
  bytes: t.bytes({ maxLength: PART_BYTES }),
};

/** One part as sent. */
export interface PeerPart {
  readonly id: number;
  readonly index: number;
  readonly count: number;
  readonly bytes: Uint8Array;
}

/**
 * The parts of `bytes`, numbered under `id`: none when it exceeds {@link MAX_JOINED_BYTES} (no
 * peer would take it: it is lost, as a network would lose it), one when it fits in one message.
 */
export function cutIntoParts(bytes: Uint8Array, id: number): PeerPart[] {
  if (bytes.length <= PART_BYTES) return [{ id, index: 0, count: 1, bytes }];
  if (bytes.length > MAX_JOINED_BYTES) return [];
  const count = Math.ceil(bytes.length / PART_BYTES);
  return Array.from({ length: count }, (_, index) => ({ id, index, count, bytes: bytes.subarray(index * PART_BYTES, Math.min(bytes.length, (index + 1) * PART_BYTES)) }));
}

/** Cuts the envelopes one replica sends: numbers those that go in parts, counts those too large to send. */
export class PartCutter {
  #inParts = 0;
  #unsent = 0;

  /** Envelopes not sent for exceeding {@link MAX_JOINED_BYTES}. */
  get unsent(): number {
    return this.#unsent;
  }

  /** The parts of `bytes` to send, under the next id when there are several (`cutIntoParts`). */
  cut(bytes: Uint8Array): PeerPart[] {
    const parts = cutIntoParts(bytes, this.#inParts);
    if (parts.length === 0) this.#unsent++;
    if (parts.length > 1) this.#inParts++;
    return parts;
  }
}

/** Joins the parts each peer sends. */
export class PartJoiner {
  /** Envelopes being joined, oldest first, by peer, then by id. */
  readonly #joining = new Map<string, Map<number, { count: number; parts: Uint8Array[] }>>();

  /**
   * Takes part `part` from `peer`; returns the envelope when it was the last. A first part starts
   * an envelope, and ends the oldest one a peer left unfinished if it had too many (it crashed, or
   * a link dropped a part). A part out of order, or cut unlike its sender would cut it, ends its
   * envelope: the protocol's own retries ask for what it carried again.
   */
  accept(peer: string, part: PeerPart): Uint8Array | undefined {
    let joining = this.#joining.get(peer);
    if (joining === undefined) this.#joining.set(peer, (joining = new Map()));
    if (part.index === 0) {
      joining.delete(part.id);
      if (joining.size >= JOINING_PER_PEER) joining.delete(joining.keys().next().value as number);
      joining.set(part.id, { count: part.count, parts: [] });
    }
    const envelope = joining.get(part.id);
    const last = part.index === part.count - 1;
    const wellCut = part.index < part.count && (last ? part.bytes.length > 0 : part.bytes.length === PART_BYTES);
    if (envelope === undefined || !wellCut || envelope.count !== part.count || envelope.parts.length !== part.index) {
      joining.delete(part.id);
      return undefined;
    }
    envelope.parts.push(part.bytes);
    if (!last) return undefined;
    joining.delete(part.id);
    return Buffer.concat(envelope.parts);
  }
}
