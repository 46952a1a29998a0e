/**
 * The subset of UCUM (case-sensitive "c/s" codes) the registry accepts for metric units.
 *
 * Full UCUM is large and mostly irrelevant here (no grams, metres or candelas in an actor
 * runtime); a short, closed subset catches the usual mistakes — `μs` for `us`, `B` (the bel) for
 * `By`, bare plural words for annotations — while a reviewer can still read every unit at a glance.
 * registry/README.md lists the subset; widen it here, with the README, when a metric needs more.
 */

/** Unit atoms, and which prefixes each may take. */
const ATOMS: Readonly<Record<string, readonly string[]>> = {
  s: ['n', 'u', 'm'],
  min: [],
  h: [],
  d: [],
  By: ['k', 'M', 'G', 'T', 'Ki', 'Mi', 'Gi', 'Ti'],
  bit: ['k', 'M', 'G', 'Ki', 'Mi', 'Gi'],
  Hz: ['k', 'M', 'G'],
  '%': [],
};

/** UCUM prefixes, to tell a prefix this subset refuses from a word that is no unit at all. */
const PREFIXES: readonly string[] = ['p', 'n', 'u', 'm', 'c', 'd', 'k', 'M', 'G', 'T', 'Ki', 'Mi', 'Gi', 'Ti'];

/** Annotations follow OpenTelemetry's habit: one lowercase, singular, snake_case word in braces. */
const ANNOTATION = /^\{[a-z][a-z0-9]*(?:_[a-z0-9]+)*\}$/;

/** Spellings people reach for, with the code UCUM wants instead. */
const HINTS: Readonly<Record<string, string>> = {
  'µs': 'us',
  'μs': 'us',
  usec: 'us',
  microseconds: 'us',
  msec: 'ms',
  millis: 'ms',
  milliseconds: 'ms',
  sec: 's',
  secs: 's',
  second: 's',
  seconds: 's',
  B: 'By (B is the bel)',
  b: 'By or bit',
  byte: 'By',
  bytes: 'By',
  KB: 'kBy',
  kB: 'kBy',
  MB: 'MBy',
  percent: '% (or 1 for a ratio)',
  ratio: '1',
  count: 'an annotation such as {item}',
};

/** Splits `{tick}` off a component such as `By{packet}`; annotations never contain `.` or `/`. */
function component(text: string): string | undefined {
  if (text === '1' || ANNOTATION.test(text)) return undefined;
  const brace = text.indexOf('{');
  const core = brace < 0 ? text : text.slice(0, brace);
  const note = brace < 0 ? '' : text.slice(brace);
  if (note !== '' && !ANNOTATION.test(note)) return `annotation ${note} is not one lowercase snake_case word in braces`;
  const match = /^(.*?)(-?[1-9])?$/.exec(core);
  const body = match?.[1] ?? core;
  for (const [atom, prefixes] of Object.entries(ATOMS)) {
    if (body === atom) return undefined;
    if (body.endsWith(atom) && prefixes.includes(body.slice(0, body.length - atom.length))) return undefined;
  }
  const hint = HINTS[text] ?? HINTS[body];
  if (hint !== undefined) return `${text} is not UCUM here; use ${hint}`;
  for (const [atom, prefixes] of Object.entries(ATOMS)) {
    const prefix = body.slice(0, body.length - atom.length);
    if (body.endsWith(atom) && PREFIXES.includes(prefix)) {
      return `${text}: prefix ${prefix} is not accepted on ${atom} (accepted: ${prefixes.length === 0 ? 'none' : prefixes.join(', ')})`;
    }
  }
  if (/^[a-z][a-z_]{2,}$/.test(text)) return `${text} is not a unit; a count of things is an annotation such as {${text.replace(/s$/, '')}}`;
  return `${text} is not in the accepted UCUM subset`;
}

/**
 * Why `unit` is not an accepted UCUM unit, or `undefined` when it is. Accepted: `1`, a lone
 * annotation (`{tick}`), or a product of components joined by `.`, optionally divided once by
 * another (`By/s`, `{command}/s`), where a component is an atom with an allowed prefix and an
 * optional exponent and annotation.
 */
export function unitProblem(unit: string): string | undefined {
  if (unit === '') return 'the unit is empty (use 1 for a dimensionless value)';
  if (/\s/.test(unit)) return `unit "${unit}" contains white space`;
  const parts = unit.split('/');
  if (parts.length > 2) return `unit "${unit}" divides more than once`;
  for (const part of parts) {
    if (part === '') return `unit "${unit}" has an empty term`;
    for (const piece of part.split('.')) {
      if (piece === '') return `unit "${unit}" has an empty component`;
      const problem = component(piece);
      if (problem !== undefined) return parts.length === 1 && piece === unit ? problem : `in unit "${unit}": ${problem}`;
    }
  }
  return undefined;
}
