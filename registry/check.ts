/**
 * The registry check (`npm run registry:check`, or `node dist/registry/check.js [dir]`): every
 * YAML file of the registry against Weaver's JSON Schema, then the policies a schema cannot
 * express — what `weaver registry check` adds, plus knhk's own (registry/README.md lists them).
 *
 * Also the loader a live check compares emitted telemetry with: `loadRegistry` returns what the
 * registry declares, resolved, and refuses a registry that does not pass the check.
 */
import { realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRegistryFile, yamlFiles, type RegistryFile } from './files.js';
import {
  formatProblem,
  type AttributeDefinition,
  type AttributeType,
  type AttributeUse,
  type EventDefinition,
  type Instrument,
  type MetricDefinition,
  type Problem,
  type Registry,
  type RequirementLevel,
  type Rule,
  type SpanDefinition,
  type SpanKindName,
  type Stability,
} from './model.js';
import { namespaceClashes, nameProblem } from './naming.js';
import { schemaProblems } from './semconv-schema.js';
import { unitProblem } from './ucum.js';

export { conforms, formatProblem } from './model.js';
export type * from './model.js';

/**
 * The project's registry directory. This module runs from `dist/registry/`, and the YAML stays in
 * `registry/` at the package root (published with the package), two levels up.
 */
export const REGISTRY_DIR: string = fileURLToPath(new URL('../../registry/', import.meta.url));

/** Weaver's semantic-convention JSON Schema, as copied into the project. */
export const SCHEMA_PATH: string = join(REGISTRY_DIR, 'schema', 'weaver-semconv.schema.json');

/** Options of {@link checkRegistry} and {@link loadRegistry}. */
export interface CheckOptions {
  /** JSON Schema to validate against; the project's copy by default, whatever directory is checked. */
  readonly schemaPath?: string;
}

/** Thrown by {@link loadRegistry} for a registry that does not pass the check. */
export class RegistryError extends Error {
  /** Everything the check found. */
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    super(`the registry has ${problems.length} problem(s):\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'RegistryError';
    this.problems = problems;
  }
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

const STABILITIES: readonly string[] = ['stable', 'development', 'alpha', 'beta', 'release_candidate'];
const INSTRUMENTS: readonly string[] = ['counter', 'gauge', 'histogram', 'updowncounter'];
const SPAN_KINDS: readonly string[] = ['client', 'server', 'producer', 'consumer', 'internal'];
const SCALAR_TYPES: readonly string[] = ['string', 'int', 'double', 'boolean', 'string[]', 'int[]', 'double[]', 'boolean[]'];

/** Group id prefix by group type: the signal's name follows it (knhk policy, after OpenTelemetry's own registry). */
const PREFIX: Readonly<Record<string, string>> = { span: 'span.', event: 'event.', metric: 'metric.', attribute_group: 'registry.' };

/** A place in the registry, for problems. */
interface Where {
  readonly file: string;
  readonly line: number | undefined;
  readonly group: string;
}

/** An attribute entry as written in a group, with where it was written. */
interface Entry {
  readonly where: Where;
  readonly raw: Json;
}

/** A group as written, with its file. */
interface Group {
  readonly where: Where;
  readonly raw: Json;
  readonly id: string;
  readonly type: string;
  readonly attributes: readonly Entry[];
}

function requirement(value: unknown): { level: RequirementLevel; note?: string } | undefined {
  if (value === 'required' || value === 'recommended' || value === 'opt_in' || value === 'conditionally_required') return { level: value };
  if (!isRecord(value)) return undefined;
  for (const level of ['conditionally_required', 'recommended', 'opt_in'] as const) {
    const note = text(value[level]);
    if (note !== undefined) return { level, note };
  }
  return undefined;
}

/** The declared type of an attribute definition, or `undefined` when it is not one knhk allows. */
function attributeType(raw: Json): { type: AttributeType; enumValues?: (string | number)[] } | undefined {
  const type = raw['type'];
  if (typeof type === 'string') return SCALAR_TYPES.includes(type) ? { type: type as AttributeType } : undefined;
  if (isRecord(type) && Array.isArray(type['members'])) {
    const values = type['members'].filter(isRecord).map((m) => m['value']).filter((v): v is string | number => typeof v === 'string' || typeof v === 'number');
    return { type: 'enum', enumValues: values };
  }
  return undefined;
}

function exampleFits(type: string, value: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'double':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return false;
  }
}

/** The examples of a definition, one entry per example (an array type's example is an array). */
function exampleList(type: string, examples: unknown): unknown[] {
  const list = Array.isArray(examples) ? examples : [examples];
  if (!type.endsWith('[]')) return list;
  return list.every(Array.isArray) ? list : [list];
}

/** Collects problems, each with its place. */
class Findings {
  readonly problems: Problem[] = [];
  add(where: Where | { file: string; line?: number | undefined; group?: string }, rule: Rule, message: string): void {
    const { file, line, group } = where;
    this.problems.push({ file, ...(line === undefined ? {} : { line }), ...(group === undefined ? {} : { group }), rule, message });
  }
}

/** Reads the groups of every file that parsed, with enough shape to apply the policies. */
function groupsOf(files: readonly RegistryFile[]): Group[] {
  const groups: Group[] = [];
  for (const file of files) {
    const list = isRecord(file.data) ? file.data['groups'] : undefined;
    if (!Array.isArray(list)) continue;
    list.forEach((raw: unknown, index) => {
      if (!isRecord(raw)) return;
      const id = text(raw['id']);
      const type = text(raw['type']);
      // Without an id and a type a group cannot be reasoned about; the schema check has reported it.
      if (id === undefined || type === undefined) return;
      const where = { file: file.file, line: file.lineOf(['groups', index]), group: id };
      const attributes = Array.isArray(raw['attributes'])
        ? raw['attributes'].flatMap((entry: unknown, j): Entry[] =>
            isRecord(entry) ? [{ where: { ...where, line: file.lineOf(['groups', index, 'attributes', j]) }, raw: entry }] : [],
          )
        : [];
      groups.push({ where, raw, id, type, attributes });
    });
  }
  return groups;
}

function checkEnum(findings: Findings, where: Where, id: string, members: unknown): void {
  if (!Array.isArray(members) || members.length === 0) {
    findings.add(where, 'enum', `enum attribute ${id} has no members`);
    return;
  }
  const ids = new Set<string>();
  const values = new Set<string | number>();
  const kinds = new Set<string>();
  for (const member of members.filter(isRecord)) {
    const memberId = text(member['id']);
    const value = member['value'];
    if (memberId !== undefined) {
      const problem = nameProblem(memberId, 'member');
      if (problem !== undefined) findings.add(where, 'naming', `${id}: ${problem}`);
      if (ids.has(memberId)) findings.add(where, 'enum', `${id}: member id ${memberId} appears twice`);
      ids.add(memberId);
    }
    if (member['stability'] === undefined) findings.add(where, 'stability', `${id}: member ${memberId ?? '?'} has no stability`);
    if (typeof value === 'string' || typeof value === 'number') {
      if (values.has(value)) findings.add(where, 'enum', `${id}: value ${JSON.stringify(value)} appears twice`);
      values.add(value);
      kinds.add(typeof value);
      if (value === '') findings.add(where, 'enum', `${id}: member ${memberId ?? '?'} has an empty value`);
      if (typeof value === 'number' && !Number.isInteger(value)) findings.add(where, 'enum', `${id}: member ${memberId ?? '?'} has a value that is not an integer`);
    }
  }
  if (kinds.size > 1) findings.add(where, 'enum', `${id}: members mix string and number values`);
}

/** Checks one attribute definition (an entry with `id`). */
function checkDefinition(findings: Findings, group: Group, entry: Entry, id: string): void {
  const { where, raw } = entry;
  if (group.type !== 'attribute_group') {
    findings.add(where, 'policy', `attribute ${id} is defined in a ${group.type} group; define it in an attribute_group (registry.<namespace>) and \`ref\` it here`);
  } else if (group.id.startsWith(PREFIX['attribute_group'] ?? '')) {
    const namespace = group.id.slice((PREFIX['attribute_group'] ?? '').length);
    if (!id.startsWith(`${namespace}.`)) findings.add(where, 'naming', `attribute ${id} is outside its group's namespace ${namespace}`);
  }
  const naming = nameProblem(id, 'attribute');
  if (naming !== undefined) findings.add(where, 'naming', naming);
  if (raw['stability'] === undefined) findings.add(where, 'stability', `attribute ${id} has no stability`);
  if (!(text(raw['brief'])?.trim())) findings.add(where, 'policy', `attribute ${id} has no brief`);
  if (raw['requirement_level'] === undefined) findings.add(where, 'policy', `attribute ${id} has no requirement_level (the level signals inherit)`);
  const type = raw['type'];
  if (typeof type === 'string' && !SCALAR_TYPES.includes(type)) {
    findings.add(where, 'policy', `attribute ${id} has type ${type}; knhk allows ${SCALAR_TYPES.join(', ')} and enums, which a live check can compare exactly`);
    return;
  }
  if (isRecord(type)) {
    checkEnum(findings, where, id, type['members']);
    return;
  }
  if (typeof type !== 'string' || type === 'boolean' || type === 'boolean[]') return;
  if (raw['examples'] === undefined) {
    findings.add(where, 'examples', `attribute ${id} (${type}) has no examples`);
    return;
  }
  const element = type.replace(/\[\]$/, '');
  for (const example of exampleList(type, raw['examples'])) {
    const items = type.endsWith('[]') ? (Array.isArray(example) ? example : [example]) : [example];
    if (type.endsWith('[]') && !Array.isArray(example)) findings.add(where, 'examples', `attribute ${id}: example ${JSON.stringify(example)} is not an array`);
    else if (!items.every((item) => exampleFits(element, item))) findings.add(where, 'examples', `attribute ${id}: example ${JSON.stringify(example)} is not a ${type}`);
  }
}

/** Checks a group's own id, name and unit against the naming rules and the id convention. */
function checkGroupNames(findings: Findings, group: Group): void {
  const { where, raw, id, type } = group;
  const naming = nameProblem(id, 'group');
  if (naming !== undefined) findings.add(where, 'naming', naming);
  const prefix = PREFIX[type];
  if (prefix === undefined) return;
  if (!id.startsWith(prefix)) {
    findings.add(where, 'naming', `a ${type} group's id must start with "${prefix}"`);
    return;
  }
  const rest = id.slice(prefix.length);
  if (type === 'span') {
    const problem = nameProblem(rest, 'span');
    if (problem !== undefined) findings.add(where, 'naming', problem);
  } else if (type === 'event' || type === 'metric') {
    // Events and metrics carry their name in a field, and their id must be that name prefixed.
    const name = text(raw[type === 'event' ? 'name' : 'metric_name']);
    if (name !== undefined) {
      const problem = nameProblem(name, type);
      if (problem !== undefined) findings.add(where, 'naming', problem);
      if (name !== rest) findings.add(where, 'naming', `${type} group id must be ${type}.${name}`);
    }
    const unit = type === 'metric' ? text(raw['unit']) : undefined;
    const problem = unit === undefined ? undefined : unitProblem(unit);
    if (problem !== undefined) findings.add(where, 'unit', problem);
  } else if (rest === '') {
    findings.add(where, 'naming', 'an attribute group id must name its namespace (registry.<namespace>)');
  }
}

/** Reports every second occurrence of a key, pointing back at the first. */
function duplicates(findings: Findings, items: Iterable<{ key: string; where: Where }>, rule: Rule, what: string): void {
  const first = new Map<string, Where>();
  for (const { key, where } of items) {
    const earlier = first.get(key);
    if (earlier === undefined) first.set(key, where);
    else findings.add(where, rule, `${what} ${key} is already defined at ${earlier.file}${earlier.line === undefined ? '' : `:${earlier.line}`}`);
  }
}

/** Applies every policy to the parsed groups. */
function policyProblems(groups: readonly Group[]): Problem[] {
  const findings = new Findings();
  const definitions = new Map<string, Entry>();
  const groupIds = new Set(groups.map((g) => g.id));
  for (const group of groups) {
    const { where, raw, type } = group;
    checkGroupNames(findings, group);
    // An unknown stability value is the schema's to report; a missing one is this rule's at every level.
    if (raw['stability'] === undefined) findings.add(where, 'stability', `${type} group has no stability`);
    if (typeof raw['brief'] === 'string' && raw['brief'].trim() === '') findings.add(where, 'policy', 'the brief is empty');
    const extended = text(raw['extends']);
    if (extended !== undefined && !groupIds.has(extended)) findings.add(where, 'unresolved-ref', `extends ${extended}, which no group defines`);
    const listed: Array<{ key: string; where: Where }> = [];
    for (const entry of group.attributes) {
      const id = text(entry.raw['id']);
      const ref = text(entry.raw['ref']);
      if (id !== undefined && ref === undefined) {
        checkDefinition(findings, group, entry, id);
        if (!definitions.has(id)) definitions.set(id, entry);
      }
      const key = ref ?? id;
      if (key !== undefined) listed.push({ key, where: entry.where });
    }
    duplicates(findings, listed, 'duplicate-id', `attribute listed twice in ${group.id}:`);
  }
  for (const group of groups) {
    for (const entry of group.attributes) {
      const ref = text(entry.raw['ref']);
      if (ref !== undefined && !definitions.has(ref)) findings.add(entry.where, 'unresolved-ref', `ref ${ref} is not an attribute defined in any attribute_group`);
    }
  }
  duplicates(findings, groups.map((g) => ({ key: g.id, where: g.where })), 'duplicate-id', 'group id');
  const definitionList = groups.flatMap((g) => g.attributes.flatMap((e) => {
    const id = text(e.raw['id']);
    return id !== undefined && e.raw['ref'] === undefined ? [{ key: id, where: e.where }] : [];
  }));
  duplicates(findings, definitionList, 'duplicate-id', 'attribute');
  const named = (type: string, field: string): Array<{ key: string; where: Where }> =>
    groups.filter((g) => g.type === type).flatMap((g) => { const key = text(g.raw[field]); return key === undefined ? [] : [{ key, where: g.where }]; });
  duplicates(findings, named('metric', 'metric_name'), 'duplicate-id', 'metric');
  duplicates(findings, named('event', 'name'), 'duplicate-id', 'event');
  for (const [name, longer] of namespaceClashes(definitions.keys())) {
    const entry = definitions.get(name);
    if (entry) findings.add(entry.where, 'naming', `attribute ${name} is also the namespace of attribute ${longer}`);
  }
  const metricGroups = new Map(named('metric', 'metric_name').map((m) => [m.key, m.where]));
  for (const [name, longer] of namespaceClashes(metricGroups.keys())) {
    const where = metricGroups.get(name);
    if (where) findings.add(where, 'naming', `metric ${name} is also the namespace of metric ${longer}`);
  }
  return findings.problems;
}

/** The attributes a signal group uses, resolved through `ref` and `extends`. */
function usesOf(group: Group, byId: ReadonlyMap<string, Group>, definitions: ReadonlyMap<string, AttributeDefinition>, seen = new Set<string>()): AttributeUse[] {
  seen.add(group.id);
  const parent = text(group.raw['extends']);
  const parentGroup = parent === undefined ? undefined : byId.get(parent);
  const inherited = parentGroup && !seen.has(parentGroup.id) ? usesOf(parentGroup, byId, definitions, seen) : [];
  const own = group.attributes.flatMap((entry): AttributeUse[] => {
    const key = text(entry.raw['ref']) ?? text(entry.raw['id']);
    const definition = key === undefined ? undefined : definitions.get(key);
    if (definition === undefined) return [];
    const level = requirement(entry.raw['requirement_level']) ?? { level: definition.requirementLevel, note: definition.requirementNote };
    return [{
      id: definition.id,
      type: definition.type,
      ...(definition.enumValues === undefined ? {} : { enumValues: definition.enumValues }),
      requirementLevel: level.level,
      ...(level.note === undefined ? {} : { requirementNote: level.note }),
    }];
  });
  const ownIds = new Set(own.map((u) => u.id));
  return [...inherited.filter((u) => !ownIds.has(u.id)), ...own];
}

function pick<T extends string>(allowed: readonly string[], value: unknown, fallback: T): T {
  return typeof value === 'string' && allowed.includes(value) ? (value as T) : fallback;
}

/** Builds the declared model from groups that passed the check. */
function buildRegistry(groups: readonly Group[]): Registry {
  const attributes = new Map<string, AttributeDefinition>();
  for (const group of groups.filter((g) => g.type === 'attribute_group')) {
    for (const { raw } of group.attributes) {
      const id = text(raw['id']);
      const typed = attributeType(raw);
      if (id === undefined || typed === undefined || attributes.has(id)) continue;
      const level = requirement(raw['requirement_level']);
      attributes.set(id, {
        id,
        ...typed,
        brief: text(raw['brief']) ?? '',
        stability: pick<Stability>(STABILITIES, raw['stability'], 'development'),
        requirementLevel: level?.level ?? 'recommended',
        ...(level?.note === undefined ? {} : { requirementNote: level.note }),
        file: group.where.file,
      });
    }
  }
  const byId = new Map(groups.map((g) => [g.id, g]));
  const common = (g: Group) => ({
    groupId: g.id,
    brief: text(g.raw['brief']) ?? '',
    stability: pick<Stability>(STABILITIES, g.raw['stability'], 'development'),
    attributes: usesOf(g, byId, attributes),
    file: g.where.file,
  });
  const spans = new Map<string, SpanDefinition>();
  const events = new Map<string, EventDefinition>();
  const metrics = new Map<string, MetricDefinition>();
  for (const g of groups) {
    if (g.type === 'span') {
      const name = g.id.slice((PREFIX['span'] ?? '').length);
      spans.set(name, { name, kind: pick<SpanKindName>(SPAN_KINDS, g.raw['span_kind'], 'internal'), ...common(g) });
    } else if (g.type === 'event') {
      const name = text(g.raw['name']) ?? g.id;
      events.set(name, { name, ...common(g) });
    } else if (g.type === 'metric') {
      const name = text(g.raw['metric_name']) ?? g.id;
      metrics.set(name, { name, instrument: pick<Instrument>(INSTRUMENTS, g.raw['instrument'], 'counter'), unit: text(g.raw['unit']) ?? '', ...common(g) });
    }
  }
  return { attributes, spans, events, metrics };
}

/** Problems and, built from whatever could be read, the declared model. */
function analyse(dir: string, options: CheckOptions): { problems: Problem[]; registry: Registry; files: number } {
  const problems: Problem[] = [];
  let paths: string[];
  try {
    paths = yamlFiles(dir);
  } catch (error) {
    problems.push({ file: '', rule: 'policy', message: `cannot read ${dir}: ${error instanceof Error ? error.message : String(error)}` });
    paths = [];
  }
  if (paths.length === 0 && problems.length === 0) problems.push({ file: '', rule: 'policy', message: `no .yaml files in ${dir}` });
  const files = paths.map((path) => readRegistryFile(dir, path, problems));
  problems.push(...schemaProblems(files, options.schemaPath ?? SCHEMA_PATH));
  const groups = groupsOf(files);
  problems.push(...policyProblems(groups));
  problems.sort((a, b) => a.file.localeCompare(b.file) || (a.line ?? 0) - (b.line ?? 0) || a.rule.localeCompare(b.rule) || a.message.localeCompare(b.message));
  return { problems, registry: buildRegistry(groups), files: files.length };
}

/**
 * Checks the registry in `dir` (every `.yaml`/`.yml` file below it) against Weaver's schema and
 * the project's policies. Returns the problems, sorted by file and line; none means it passes.
 */
export function checkRegistry(dir: string = REGISTRY_DIR, options: CheckOptions = {}): Problem[] {
  return analyse(dir, options).problems;
}

/**
 * What the registry in `dir` declares, keyed by emitted name: attributes by key, spans by span
 * name, events by event name, metrics by metric name. Throws {@link RegistryError} when the
 * registry does not pass {@link checkRegistry}, so a live check never compares against a
 * registry that is itself wrong.
 */
export function loadRegistry(dir: string = REGISTRY_DIR, options: CheckOptions = {}): Registry {
  const { problems, registry } = analyse(dir, options);
  if (problems.length > 0) throw new RegistryError(problems);
  return registry;
}

/** The command line: checks the registry given as the only argument (default: the project's). */
function main(args: readonly string[]): number {
  if (args.length > 1 || args[0] === '--help' || args[0] === '-h') {
    process.stderr.write('usage: node dist/registry/check.js [registry-dir]\n');
    return 2;
  }
  const dir = resolve(args[0] ?? REGISTRY_DIR);
  const { problems, registry, files } = analyse(dir, {});
  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`${formatProblem(problem)}\n`);
    process.stderr.write(`registry check failed: ${problems.length} problem(s) in ${dir}\n`);
    return 1;
  }
  const counts = `${registry.attributes.size} attributes, ${registry.spans.size} spans, ${registry.events.size} events, ${registry.metrics.size} metrics`;
  process.stdout.write(`registry check passed: ${files} files, ${counts}\n`);
  return 0;
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) process.exitCode = main(process.argv.slice(2));
