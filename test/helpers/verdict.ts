/**
 * The outcome of a crypto call as a value: the `CryptoError` code it threw, or `ACCEPTED`.
 * Other exceptions propagate (they are bugs, not verdicts).
 */
import { CryptoError, type CryptoErrorCode } from '../../protocols/crypto/index.js';

/** The verdict of `run` as an error code, `ACCEPTED` when it returned. */
export function verdict(run: () => unknown): CryptoErrorCode | 'ACCEPTED' {
  try {
    run();
    return 'ACCEPTED';
  } catch (e) {
    if (e instanceof CryptoError) return e.code;
    throw e;
  }
}
