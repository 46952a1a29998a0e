/**
 * Agreement among peers' answers when a replica fills the gap state transfer left in its receipt
 * log (receipt-journal.ts). The journal checks what it can of filled bodies alone: their positions,
 * that they are bodies its log would build, and the state hash the jump landed on. It cannot check
 * the commands and the state hashes in between: a Byzantine peer could invent them, and the
 * replica would then sign tree heads over a log no correct replica has, and be reported as a fork.
 * So a position is taken only when as many peers as a client needs matching replies (f+1 for PBFT
 * and HotStuff, at least one of them correct; one for Raft, whose peers fail only by crashing) sent
 * the same bodies for it.
 */
import { decode, encode, hashBytes, hex } from '../protocols/consensus/index.js';
import type { PositionBodies } from './receipt-journal.js';

/**
 * The first positions of the peers' answers (each encoded as `ReceiptJournal.bodies` returns
 * them, all for the same range) on which at least `needed` answers agree byte for byte, up to the
 * first position on which they do not. Answers that do not decode as a list count for nothing.
 */
export function agreedBodies(answers: readonly Uint8Array[], needed: number): PositionBodies[] {
  if (!(Number.isSafeInteger(needed) && needed >= 1)) throw new RangeError(`agreement needs at least one answer, got ${needed}`);
  const lists = answers.flatMap((bytes) => {
    try {
      const list = decode(bytes);
      return Array.isArray(list) ? [list as PositionBodies[]] : [];
    } catch {
      return [];
    }
  });
  const agreed: PositionBodies[] = [];
  for (let i = 0; ; i++) {
    const votes = new Map<string, { record: PositionBodies; count: number }>();
    let winner: PositionBodies | undefined;
    for (const list of lists) {
      const record = list[i];
      if (record === undefined) continue;
      const key = hex(hashBytes(encode(record)));
      const vote = votes.get(key) ?? { record, count: 0 };
      vote.count++;
      votes.set(key, vote);
      if (vote.count >= needed) winner = vote.record;
    }
    if (winner === undefined) return agreed;
    agreed.push(winner);
  }
}
