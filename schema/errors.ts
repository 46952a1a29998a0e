/**
 * The error base shared by every layer of knhk, and the error a schema raises on a value of the
 * wrong shape. They live here, below the runtime and the protocols, because both use schemas.
 */

/** Base class of every error knhk raises on purpose. */
export class KnhkError extends Error {
  /** Stable machine-readable code, e.g. `ASK_TIMEOUT`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A message failed its schema check (when sending, or after decoding). */
export class SchemaError extends KnhkError {
  /** Path of the offending field, e.g. `$.votes[2].signature`. */
  readonly path: string;
  /** What the field should have been. */
  readonly expected: string;
  constructor(path: string, expected: string) {
    super('SCHEMA_ERROR', `${path}: expected ${expected}`);
    this.path = path;
    this.expected = expected;
  }

  /**
   * The same error one level up: a schema nested in another reports its path relative to where
   * it was parsed, and its parent puts the field's own path in front. Paths are thus built only
   * for a value that fails, never for the many that pass.
   */
  within(prefix: string): SchemaError {
    return new SchemaError(prefix + this.path, this.expected);
  }
}

