/**
 * The live check: compares telemetry a running system emitted with what the registry declares,
 * both ways. Emitted but undeclared (a span, event or metric the registry lacks; an attribute a
 * signal does not list; a value of the wrong type or outside its enum; a wrong unit, instrument or
 * span kind; a required attribute left out) and declared but never emitted (a signal, or an
 * attribute of a signal that no emitted instance carried) are both problems.
 */
import type { AttributeUse, Instrument, Registry, SpanKindName } from './model.js';
import { conforms } from './model.js';

/** A span as the check needs it (an SDK `ReadableSpan` maps onto it). */
export interface EmittedSpan {
  readonly name: string;
  /** Checked when known: spans sent as data from another thread may come without it. */
  readonly kind?: SpanKindName;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly events: readonly { readonly name: string; readonly attributes?: Readonly<Record<string, unknown>> }[];
}

/** A metric as the check needs it: its descriptor and the attributes of each of its series. */
export interface EmittedMetric {
  readonly name: string;
  readonly unit: string;
  readonly instrument: Instrument;
  readonly series: readonly Readonly<Record<string, unknown>>[];
}

/** What the check found. */
export interface LiveCheckReport {
  /** Emitted telemetry the registry does not declare, or declares otherwise. */
  readonly undeclared: readonly string[];
  /** Declared telemetry (within the checked scope) never emitted: signals, and their required and recommended attributes. */
  readonly missing: readonly string[];
  /** Declared signals within the scope, and how many of them were emitted. */
  readonly coverage: { readonly declared: number; readonly emitted: number };
}

/** What the check looks at: which declared signals must have been emitted (all, by default). */
export interface LiveCheckScope {
  /** Selects the declared signals whose absence is a problem, by the YAML file that declares them and their name. */
  readonly declared?: (file: string, name: string) => boolean;
}

/** Attributes seen per signal, to find declared ones never emitted. */
type Seen = Map<string, Set<string>>;

function checkAttributes(what: string, declared: readonly AttributeUse[], attributes: Readonly<Record<string, unknown>>, seen: Set<string>, problems: Set<string>): void {
  const byId = new Map(declared.map((a) => [a.id, a]));
  for (const [key, value] of Object.entries(attributes)) {
    const use = byId.get(key);
    if (use === undefined) {
      problems.add(`${what}: undeclared attribute ${key}`);
      continue;
    }
    seen.add(key);
    const wrong = conforms(use, value);
    if (wrong !== undefined) problems.add(`${what}: ${wrong}`);
  }
  for (const use of declared) if (use.requirementLevel === 'required' && !(use.id in attributes)) problems.add(`${what}: required attribute ${use.id} missing`);
}

function record(seen: Seen, name: string): Set<string> {
  let attributes = seen.get(name);
  if (attributes === undefined) {
    attributes = new Set();
    seen.set(name, attributes);
  }
  return attributes;
}

/** Runs the live check of `spans` and `metrics` against `registry`. */
export function liveCheck(registry: Registry, emitted: { readonly spans: readonly EmittedSpan[]; readonly metrics: readonly EmittedMetric[] }, scope: LiveCheckScope = {}): LiveCheckReport {
  const undeclared = new Set<string>();
  const spans: Seen = new Map();
  const events: Seen = new Map();
  const metrics: Seen = new Map();

  for (const span of emitted.spans) {
    const declared = registry.spans.get(span.name);
    if (declared === undefined) undeclared.add(`undeclared span ${span.name}`);
    else {
      if (span.kind !== undefined && declared.kind !== span.kind) undeclared.add(`span ${span.name}: kind ${span.kind}, declared ${declared.kind}`);
      checkAttributes(`span ${span.name}`, declared.attributes, span.attributes, record(spans, span.name), undeclared);
    }
    for (const event of span.events) {
      const declaredEvent = registry.events.get(event.name);
      if (declaredEvent === undefined) undeclared.add(`undeclared event ${event.name} (on span ${span.name})`);
      else checkAttributes(`event ${event.name}`, declaredEvent.attributes, event.attributes ?? {}, record(events, event.name), undeclared);
    }
  }
  for (const metric of emitted.metrics) {
    const declared = registry.metrics.get(metric.name);
    if (declared === undefined) {
      undeclared.add(`undeclared metric ${metric.name}`);
      continue;
    }
    if (declared.unit !== metric.unit) undeclared.add(`metric ${metric.name}: unit ${JSON.stringify(metric.unit)}, declared ${JSON.stringify(declared.unit)}`);
    if (declared.instrument !== metric.instrument) undeclared.add(`metric ${metric.name}: a ${metric.instrument}, declared a ${declared.instrument}`);
    const seen = record(metrics, metric.name);
    for (const series of metric.series) checkAttributes(`metric ${metric.name}`, declared.attributes, series, seen, undeclared);
  }

  const missing: string[] = [];
  let declaredCount = 0;
  let emittedCount = 0;
  const inScope = scope.declared ?? (() => true);
  const families: [string, ReadonlyMap<string, { readonly file: string; readonly attributes: readonly AttributeUse[] }>, Seen][] = [
    ['span', registry.spans, spans],
    ['event', registry.events, events],
    ['metric', registry.metrics, metrics],
  ];
  for (const [family, definitions, seen] of families) {
    for (const [name, definition] of definitions) {
      if (!inScope(definition.file, name)) continue;
      declaredCount++;
      const attributes = seen.get(name);
      if (attributes === undefined) {
        missing.push(`${family} ${name} was never emitted`);
        continue;
      }
      emittedCount++;
      // A conditionally required or opt-in attribute is absent by design when its condition never held (no failure, no opt-in).
      for (const use of definition.attributes) {
        if ((use.requirementLevel === 'required' || use.requirementLevel === 'recommended') && !attributes.has(use.id)) missing.push(`${family} ${name}: attribute ${use.id} was never emitted`);
      }
    }
  }
  return { undeclared: [...undeclared].sort(), missing: missing.sort(), coverage: { declared: declaredCount, emitted: emittedCount } };
}
