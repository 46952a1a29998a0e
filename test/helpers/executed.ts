/** Executed log positions for receipt-log tests: two commands each, state hashes chained by position. */
import { command, hashBytes, type AppliedEntry } from '../../protocols/consensus/index.js';

/** The state hash after `position` (before it: `stateAt(position - 1)`). */
export const stateAt = (position: number): Uint8Array => hashBytes(Uint8Array.of(position));

/** Position `position` executed in `view`: alice's and bob's command, agreed at 1 700 000 000 000 + position ms. */
export function executed(position: number, view = 0): AppliedEntry {
  return {
    kind: 'entry',
    position,
    view,
    commands: [command('alice', position, Uint8Array.of(position)), command('bob', position, Uint8Array.of(position, 1))],
    responses: [new Uint8Array(), new Uint8Array()],
    failed: 0,
    stateHashBefore: stateAt(position - 1),
    stateHash: stateAt(position),
    timestamp: 1_700_000_000_000 + position,
  };
}
