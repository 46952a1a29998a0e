/**
 * What the registry declares, in the shape a live check needs: names, kinds, units, and for
 * every attribute its type and enum values, already resolved through `ref`. Built by
 * `loadRegistry` (check.ts) from YAML the check has accepted.
 */

/** Stability levels of Weaver's schema. */
export type Stability = 'stable' | 'development' | 'alpha' | 'beta' | 'release_candidate';

/** Metric instruments of Weaver's schema (synchronous and observable alike). */
export type Instrument = 'counter' | 'gauge' | 'histogram' | 'updowncounter';

/** Span kinds of Weaver's schema, as OpenTelemetry names them in lowercase. */
export type SpanKindName = 'client' | 'server' | 'producer' | 'consumer' | 'internal';

/** Requirement levels of Weaver's schema. */
export type RequirementLevel = 'required' | 'conditionally_required' | 'recommended' | 'opt_in';

/**
 * Attribute value types the registry allows (Weaver's `any` and `template[…]` are refused by
 * policy: a live check compares exact keys and typed values). `enum` stands for a `members` list.
 */
export type AttributeType = 'string' | 'int' | 'double' | 'boolean' | 'string[]' | 'int[]' | 'double[]' | 'boolean[]' | 'enum';

/** The value type of an attribute, with its allowed values when it is an enum. */
export interface TypedAttribute {
  readonly id: string;
  readonly type: AttributeType;
  /** The members' values, for `enum` only. */
  readonly enumValues?: readonly (string | number)[];
}

/** An attribute as defined in an attribute group. */
export interface AttributeDefinition extends TypedAttribute {
  readonly brief: string;
  readonly stability: Stability;
  /** Level when a signal refers to the attribute without stating its own. */
  readonly requirementLevel: RequirementLevel;
  /** The condition of `conditionally_required` (or the reason given with `recommended`). */
  readonly requirementNote?: string;
  /** YAML file that defines it, relative to the registry directory. */
  readonly file: string;
}

/** An attribute as a span, event or metric uses it: the definition with the signal's overrides. */
export interface AttributeUse extends TypedAttribute {
  readonly requirementLevel: RequirementLevel;
  /** The condition of `conditionally_required` (or the reason given with `recommended`). */
  readonly requirementNote?: string;
}

/** Fields every declared signal has. */
interface SignalDefinition {
  /** The Weaver group id (`span.<name>`, `event.<name>`, `metric.<name>`). */
  readonly groupId: string;
  readonly brief: string;
  readonly stability: Stability;
  readonly attributes: readonly AttributeUse[];
  /** YAML file that declares it, relative to the registry directory. */
  readonly file: string;
}

/** A span, named by its group id without the `span.` prefix. */
export interface SpanDefinition extends SignalDefinition {
  readonly name: string;
  readonly kind: SpanKindName;
}

/** An event (recorded as a span event), named by its `name`. */
export interface EventDefinition extends SignalDefinition {
  readonly name: string;
}

/** A metric, named by its `metric_name`. */
export interface MetricDefinition extends SignalDefinition {
  readonly name: string;
  readonly instrument: Instrument;
  /** UCUM unit, exactly as an instrument must be created with it. */
  readonly unit: string;
}

/** Everything the registry declares, keyed by the name the emitted telemetry carries. */
export interface Registry {
  readonly attributes: ReadonlyMap<string, AttributeDefinition>;
  readonly spans: ReadonlyMap<string, SpanDefinition>;
  readonly events: ReadonlyMap<string, EventDefinition>;
  readonly metrics: ReadonlyMap<string, MetricDefinition>;
}

/** The rule a problem breaks, so that tests and readers can tell problems apart. */
export type Rule =
  | 'yaml'
  | 'schema'
  | 'duplicate-id'
  | 'unresolved-ref'
  | 'unit'
  | 'naming'
  | 'stability'
  | 'enum'
  | 'examples'
  | 'policy';

/** One thing wrong with the registry. */
export interface Problem {
  /** YAML file, relative to the registry directory (empty for problems of the directory itself). */
  readonly file: string;
  /** 1-based line of the offending node, when known. */
  readonly line?: number;
  /** Id of the group concerned, when there is one. */
  readonly group?: string;
  readonly rule: Rule;
  readonly message: string;
}

/** One line per problem: `file:line [rule] group: message`. */
export function formatProblem(problem: Problem): string {
  const where = problem.file === '' ? '(registry)' : problem.line === undefined ? problem.file : `${problem.file}:${problem.line}`;
  return `${where} [${problem.rule}]${problem.group === undefined ? '' : ` ${problem.group}:`} ${problem.message}`;
}

function scalarConforms(type: 'string' | 'int' | 'double' | 'boolean', value: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'double':
      return typeof value === 'number';
  }
}

/**
 * Why `value` (an emitted attribute value) does not fit the declared `attribute`, or `undefined`
 * when it does. An `int` must be an integral number (JavaScript has no separate integer type);
 * a `double` may be any number; an enum value must be one of the members' values.
 */
export function conforms(attribute: TypedAttribute, value: unknown): string | undefined {
  const shown = JSON.stringify(value) ?? String(value);
  if (attribute.type === 'enum') {
    const values = attribute.enumValues ?? [];
    return values.some((v) => v === value) ? undefined : `${attribute.id}: ${shown} is not one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  if (attribute.type.endsWith('[]')) {
    const element = attribute.type.slice(0, -2) as 'string' | 'int' | 'double' | 'boolean';
    return Array.isArray(value) && value.every((v: unknown) => v === null || v === undefined || scalarConforms(element, v))
      ? undefined
      : `${attribute.id}: ${shown} is not of type ${attribute.type}`;
  }
  return scalarConforms(attribute.type as 'string' | 'int' | 'double' | 'boolean', value) ? undefined : `${attribute.id}: ${shown} is not of type ${attribute.type}`;
}
