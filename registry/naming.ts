/**
 * OpenTelemetry's naming rules for attribute keys, metric, span and event names, and registry
 * ids, as far as a machine can judge them. registry/README.md states them in prose; the rules a
 * reviewer must judge (singular namespaces, pluralisation) are listed there, not guessed at here.
 */

/** One dot-separated component: lowercase snake_case words, never starting with a digit. */
const COMPONENT = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

/** OpenTelemetry's limit on instrument names; applied to every name so none is cut anywhere. */
const MAX_NAME = 255;

/**
 * Words that name a unit. A metric carries its unit beside its name (and Prometheus exporters
 * append it again), so one of these inside a metric name says the same thing twice.
 */
const UNIT_WORDS = new Set([
  'ns', 'us', 'ms', 's', 'sec', 'secs', 'second', 'seconds', 'millisecond', 'milliseconds',
  'microsecond', 'microseconds', 'nanosecond', 'nanoseconds', 'minute', 'minutes', 'hour', 'hours',
  'byte', 'bytes', 'kb', 'mb', 'gb', 'kib', 'mib', 'gib', 'bit', 'bits', 'percent', 'pct',
]);

/** What a name names; the rules differ a little between them. */
export type NameKind = 'attribute' | 'metric' | 'span' | 'event' | 'group' | 'member';

/** Why `name` breaks the naming rules for a `kind`, or `undefined` when it follows them. */
export function nameProblem(name: string, kind: NameKind): string | undefined {
  if (name === '') return `empty ${kind} name`;
  if (name.length > MAX_NAME) return `${kind} name ${name} is longer than ${MAX_NAME} characters`;
  if (name !== name.toLowerCase()) return `${kind} name ${name} is not lowercase`;
  if (kind === 'member') {
    return COMPONENT.test(name) ? undefined : `enum member id ${name} is not one snake_case word`;
  }
  const parts = name.split('.');
  const bad = parts.find((part) => !COMPONENT.test(part));
  if (bad !== undefined) {
    return bad === ''
      ? `${kind} name ${name} has an empty component (leading, trailing or doubled dot)`
      : `${kind} name ${name}: component "${bad}" is not snake_case (lowercase letters and digits, words joined by single underscores, no leading digit)`;
  }
  if ((kind === 'attribute' || kind === 'metric') && parts.length < 2) {
    return `${kind} name ${name} has no namespace (expected <namespace>.<name>)`;
  }
  if (parts[0] === 'otel' && kind !== 'group') return `${kind} name ${name} is in the otel namespace, which OpenTelemetry reserves`;
  if (kind === 'metric') {
    const last = parts[parts.length - 1] ?? '';
    const unit = last.split('_').find((word) => UNIT_WORDS.has(word));
    if (unit !== undefined) return `metric name ${name} contains the unit "${unit}"; the unit belongs in \`unit\``;
    if (last === 'total' || last.endsWith('_total')) {
      return `metric name ${name} ends in "total", which Prometheus exporters append to counters themselves`;
    }
  }
  return undefined;
}

/**
 * Pairs `[name, longer]` where `name` is also a namespace of `longer` (`a.b` and `a.b.c`): a key
 * cannot be both a value and a prefix, or flattening exporters (Prometheus, JSON) collide.
 */
export function namespaceClashes(names: Iterable<string>): Array<readonly [string, string]> {
  const all = new Set(names);
  const clashes: Array<readonly [string, string]> = [];
  for (const longer of all) {
    const parts = longer.split('.');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('.');
      if (all.has(prefix)) clashes.push([prefix, longer]);
    }
  }
  return clashes.sort((a, b) => (a[0] + a[1]).localeCompare(b[0] + b[1]));
}
