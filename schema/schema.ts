/**
 * Message schemas: small, explicit validators whose TypeScript types are inferred.
 *
 * Every message that crosses a thread or network boundary is decoded from msgpack and then
 * parsed by its schema. Objects must have exactly their declared keys (an unknown key is an
 * error) and a plain prototype, so a decoded message is exactly what its type says it is.
 */
import { SchemaError } from './errors.js';

/** Hooks a schema may need while parsing (reviving actor references, for example). */
export interface ParseContext {
  /** Turns a decoded `{ name, incarnation, thread }` triple into a live reference. */
  reviveRef?(raw: RefShape): unknown;
}

/** The wire shape of an actor reference. */
export interface RefShape {
  readonly name: string;
  readonly incarnation: number;
  readonly thread: number;
}

/** A validator for values of type `T`. */
export interface Schema<T> {
  /** Human-readable description used in error messages. */
  readonly expected: string;
  /**
   * Returns the validated value or throws a {@link SchemaError} whose path starts with `path`
   * (default `$`). Objects are checked in place.
   */
  parse(value: unknown, path?: string, ctx?: ParseContext): T;
}

/** The type a schema accepts. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends OptionalSchema<unknown> ? K : never;
}[keyof S];
type ObjectOf<S extends Shape> = {
  readonly [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]>;
} & {
  readonly [K in OptionalKeys<S>]?: Infer<S[K]>;
};
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** A schema whose key may be absent from its enclosing object. */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

function schema<T>(expected: string, check: (value: unknown, path: string, ctx: ParseContext) => T): Schema<T> {
  return {
    expected,
    parse(value, path = '$', ctx = {}) {
      return check(value, path, ctx);
    },
  };
}

function fail(path: string, expected: string): never {
  throw new SchemaError(path, expected);
}

/**
 * Parses the field `key` (an index for an array item) of the value at `path` with a path relative
 * to the field, and only on failure says where the field sits.
 */
function nested<T>(inner: Schema<T>, value: unknown, ctx: ParseContext, path: string, key: string | number): T {
  try {
    return inner.parse(value, '', ctx);
  } catch (error) {
    throw error instanceof SchemaError ? error.within(typeof key === 'number' ? `${path}[${key}]` : `${path}.${key}`) : error;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

interface Bounds {
  readonly min?: number;
  readonly max?: number;
}

function string(opts: { readonly maxLength?: number } = {}): Schema<string> {
  const max = opts.maxLength ?? 1 << 16;
  const expected = `string of at most ${max} characters`;
  return schema(expected, (v, path) => (typeof v === 'string' && v.length <= max ? v : fail(path, expected)));
}

function int(bounds: Bounds = {}): Schema<number> {
  const min = bounds.min ?? Number.MIN_SAFE_INTEGER;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  const expected = `integer in [${min}, ${max}]`;
  return schema(expected, (v, path) => (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? (v as number) : fail(path, expected)));
}

function number(): Schema<number> {
  return schema('finite number', (v, path) => (typeof v === 'number' && Number.isFinite(v) ? v : fail(path, 'finite number')));
}

function boolean(): Schema<boolean> {
  return schema('boolean', (v, path) => (typeof v === 'boolean' ? v : fail(path, 'boolean')));
}

function bytes(opts: { readonly maxLength?: number; readonly length?: number } = {}): Schema<Uint8Array> {
  const max = opts.length ?? opts.maxLength ?? 1 << 24;
  const min = opts.length ?? 0;
  const expected = opts.length === undefined ? `bytes of at most ${max}` : `exactly ${opts.length} bytes`;
  return schema(expected, (v, path) =>
    v instanceof Uint8Array && v.length >= min && v.length <= max ? v : fail(path, expected),
  );
}

function literal<const L extends string | number | boolean>(value: L): Schema<L> {
  const expected = JSON.stringify(value);
  return schema(expected, (v, path) => (v === value ? value : fail(path, expected)));
}

function oneOf<const L extends readonly (string | number)[]>(...values: L): Schema<L[number]> {
  const expected = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  const allowed = new Set<unknown>(values);
  return schema(expected, (v, path) => (allowed.has(v) ? (v as L[number]) : fail(path, expected)));
}

function array<T>(item: Schema<T>, opts: { readonly maxLength?: number } = {}): Schema<readonly T[]> {
  const max = opts.maxLength ?? 1 << 16;
  const expected = `array of at most ${max} × ${item.expected}`;
  return schema(expected, (v, path, ctx) => {
    if (!Array.isArray(v) || v.length > max) fail(path, expected);
    const parsed = new Array<T>(v.length);
    for (let i = 0; i < v.length; i++) parsed[i] = nested(item, v[i], ctx, path, i);
    return parsed;
  });
}

function optional<T>(inner: Schema<T>): OptionalSchema<T> {
  return {
    optional: true,
    expected: `optional ${inner.expected}`,
    parse: (v, path = '$', ctx = {}) => (v === undefined || v === null ? undefined : inner.parse(v, path, ctx)),
  };
}

/**
 * Checks `v` against `shape` in place: `v` must have no key outside the shape (`skip` aside), each
 * field is parsed, and a field whose parsed value differs (a revived reference, a null optional)
 * is replaced. Decoded messages are owned by the runtime, so reusing them saves a copy per message.
 */
function parseFields(shape: Shape, keys: readonly string[], v: Record<string, unknown>, path: string, ctx: ParseContext, skip?: string): void {
  for (const key in v) {
    if (key !== skip && !Object.hasOwn(shape, key)) fail(`${path}.${key}`, 'no such field');
  }
  for (const key of keys) {
    const raw = v[key];
    const parsed = nested(shape[key] as Schema<unknown>, raw, ctx, path, key);
    if (parsed === raw) continue;
    if (parsed === undefined) delete v[key];
    else v[key] = parsed;
  }
}

/** An object with exactly the given fields. Parsing may normalise the value in place (see `parseFields`). */
function object<S extends Shape>(shape: S): Schema<Simplify<ObjectOf<S>>> {
  const keys = Object.keys(shape);
  const expected = `object {${keys.join(', ')}}`;
  return schema(expected, (v, path, ctx) => {
    if (!isPlainObject(v)) fail(path, expected);
    parseFields(shape, keys, v, path, ctx);
    return v as Simplify<ObjectOf<S>>;
  });
}

type VariantsOf<V extends Record<string, Shape>> = {
  [K in keyof V & string]: Simplify<{ readonly type: K } & ObjectOf<V[K]>>;
}[keyof V & string];

/**
 * A discriminated union tagged by `type`: `variants({ ping: { n: t.int() }, pong: {} })` accepts
 * `{ type: 'ping', n: 1 }` and `{ type: 'pong' }`. An unknown tag is a schema error.
 */
function variants<V extends Record<string, Shape>>(cases: V): Schema<VariantsOf<V>> {
  const keys = new Map(Object.entries(cases).map(([tag, shape]) => [tag, Object.keys(shape)]));
  const expected = `message of type ${[...keys.keys()].join(' | ')}`;
  return schema(expected, (v, path, ctx) => {
    if (!isPlainObject(v) || typeof v.type !== 'string' || !Object.hasOwn(cases, v.type)) fail(path, expected);
    parseFields(cases[v.type] as Shape, keys.get(v.type) as string[], v, path, ctx, 'type');
    return v as VariantsOf<V>;
  });
}

const refShape = object({ name: string({ maxLength: 256 }), incarnation: int({ min: 0 }), thread: int({ min: 0 }) });

/**
 * An actor reference inside a message. On the wire it is `{ name, incarnation, thread }`; when
 * parsed by the runtime it is revived into a live `ActorRef` of the receiving thread.
 */
function ref<R = RefShape>(): Schema<R> {
  return schema('actor reference', (v, path, ctx) => {
    const raw = refShape.parse(v, path, ctx);
    return (ctx.reviveRef ? ctx.reviveRef(raw) : raw) as R;
  });
}

/** Accepts any value msgpack can carry; use sparingly (for example for user payloads). */
function unknownValue(): Schema<unknown> {
  return schema('any value', (v) => v);
}

/** Schema constructors. */
export const t = {
  string,
  int,
  uint: (max?: number) => int({ min: 0, ...(max === undefined ? {} : { max }) }),
  number,
  boolean,
  bytes,
  literal,
  oneOf,
  array,
  optional,
  object,
  variants,
  ref,
  unknown: unknownValue,
} as const;
