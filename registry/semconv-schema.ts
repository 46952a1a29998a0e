/**
 * Validation against Weaver's JSON Schema for semantic-convention files (a copy kept in
 * registry/schema/, so a clean clone needs nothing else).
 *
 * The schema lists a group as `anyOf` five shapes, one of them a catch-all for every type but
 * span and event. Two consequences shape this module: a metric group lacking `unit` still passes
 * through the catch-all, and an invalid group yields errors from all five shapes at once. So each
 * group is also validated against the one definition its `type` selects (the shape the README of
 * the schema describes for that type), and only those errors are reported.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { RegistryFile } from './files.js';
import type { Problem } from './model.js';

/** Schema definition that governs each group type. */
const DEFINITION_OF_TYPE: Readonly<Record<string, string>> = {
  span: 'SpanSemanticConvention',
  event: 'EventSemanticConvention',
  metric: 'MetricSemanticConvention',
  entity: 'EntitySemanticConvention',
  attribute_group: 'SemanticConvention',
};

/** Compiled validators of one schema file. */
interface Validators {
  readonly file: ValidateFunction;
  readonly byType: ReadonlyMap<string, ValidateFunction>;
}

const compiled = new Map<string, Validators>();

function validators(schemaPath: string): Validators {
  const cached = compiled.get(schemaPath);
  if (cached) return cached;
  const schema: unknown = JSON.parse(readFileSync(schemaPath, 'utf8'));
  if (typeof schema !== 'object' || schema === null) throw new Error(`${schemaPath} is not a JSON Schema`);
  // Not strict: the published schema carries a misspelt keyword ("#ref" under `role`) that strict
  // mode rejects; it constrains nothing, so ignoring it changes no verdict.
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const file = ajv.compile(schema);
  const id = (schema as { $id?: unknown }).$id;
  const base = typeof id === 'string' ? id : '';
  const byType = new Map<string, ValidateFunction>();
  for (const [type, definition] of Object.entries(DEFINITION_OF_TYPE)) {
    const validate = ajv.getSchema(`${base}#/$defs/${definition}`);
    if (validate === undefined) throw new Error(`${schemaPath} has no definition ${definition}`);
    byType.set(type, validate);
  }
  const result = { file, byType };
  compiled.set(schemaPath, result);
  return result;
}

function describe(error: ErrorObject, at: string, root: string): string {
  const where = at === '' ? root : at;
  switch (error.keyword) {
    case 'required':
      return `${where} must have \`${String(error.params['missingProperty'])}\``;
    case 'additionalProperties':
      return `${where} has an unknown property \`${String(error.params['additionalProperty'])}\``;
    case 'enum':
      return `${where} must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${where} must be ${JSON.stringify(error.params['allowedValue'])}`;
    default:
      return `${where} ${error.message ?? 'is invalid'}`;
  }
}

/** Where an error points inside its group, e.g. `attributes[2].type`, from a JSON pointer. */
function pointerText(segments: readonly string[]): string {
  return segments.map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

function pathOf(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** An error reduced to where it points and what it says. */
interface Finding {
  readonly path: readonly string[];
  readonly message: string;
}

/**
 * Turns ajv's errors into findings. The `oneOf`/`anyOf`/`if` wrappers only restate their
 * branches, so they are dropped; errors of alternative branches at one place are joined with
 * "or", because meeting any one of them would do.
 */
function findings(errors: readonly ErrorObject[], root: string): Finding[] {
  const result: Finding[] = [];
  const alternatives = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const error of errors) {
    if (['oneOf', 'anyOf', 'allOf', 'if', 'not'].includes(error.keyword)) continue;
    const path = pathOf(error.instancePath);
    const text = describe(error, pointerText(path), root);
    if (/\/(oneOf|anyOf)\//.test(error.schemaPath)) {
      const list = alternatives.get(error.instancePath) ?? [];
      if (!list.includes(text)) list.push(text);
      alternatives.set(error.instancePath, list);
      continue;
    }
    if (seen.has(text)) continue;
    seen.add(text);
    result.push({ path, message: text });
  }
  for (const [pointer, texts] of alternatives) {
    const path = pathOf(pointer);
    const prefix = pointerText(path) === '' ? root : pointerText(path);
    const message = texts.length === 1 ? (texts[0] ?? '') : `${prefix}: ${texts.map((t) => t.slice(prefix.length).trim()).join(', or ')}`;
    if (!seen.has(message)) result.push({ path, message });
  }
  return result;
}

/** JSON-pointer segments as YAML path keys (sequence indices as numbers). */
function yamlPath(segments: readonly string[]): Array<string | number> {
  return segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/**
 * A copy of a file's data with every missing `stability` filled in. The stability rule reports a
 * missing stability at every level by itself; left to the schema, a member without one fails the
 * enum branch of a `oneOf`, and the errors of the other branches ("must have `ref`") hide the cause.
 */
function withStability(value: unknown, level: 'file' | 'group' | 'attribute' | 'member' = 'file'): unknown {
  if (Array.isArray(value)) return value.map((item: unknown) => withStability(item, level));
  if (typeof value !== 'object' || value === null) return value;
  const record = { ...(value as Record<string, unknown>) };
  if (level === 'file') {
    if (Array.isArray(record['groups'])) record['groups'] = withStability(record['groups'], 'group');
    return record;
  }
  const defines = level !== 'attribute' || typeof record['id'] === 'string';
  if (defines && record['stability'] === undefined) record['stability'] = 'development';
  if (level === 'group' && Array.isArray(record['attributes'])) record['attributes'] = withStability(record['attributes'], 'attribute');
  if (level === 'attribute') {
    const type = record['type'];
    if (typeof type === 'object' && type !== null && Array.isArray((type as { members?: unknown }).members)) {
      record['type'] = { ...type, members: withStability((type as { members: unknown[] }).members, 'member') };
    }
  }
  return record;
}

/**
 * Problems of `registry` files against the schema at `schemaPath`. A missing `stability` is left
 * to the stability rule, which reports it once and at every level.
 */
export function schemaProblems(files: readonly RegistryFile[], schemaPath: string): Problem[] {
  const { file: validateFile, byType } = validators(schemaPath);
  const problems: Problem[] = [];
  for (const registryFile of files) {
    if (registryFile.data === undefined) continue;
    const { file } = registryFile;
    const data = withStability(registryFile.data);
    const fileValid = validateFile(data);
    const fileFindings = findings(validateFile.errors ?? [], 'the file');
    // Findings outside `groups[i]` (a missing or misspelt top-level key) come from the whole-file check.
    for (const finding of fileFindings.filter((f) => !(f.path[0] === 'groups' && f.path.length >= 2))) {
      problems.push({ file, line: registryFile.lineOf(yamlPath(finding.path)), rule: 'schema', message: finding.message });
    }
    const groups = (data as { groups?: unknown } | null)?.groups;
    if (!Array.isArray(groups)) continue;
    groups.forEach((group: unknown, index) => {
      const record = typeof group === 'object' && group !== null ? (group as Record<string, unknown>) : undefined;
      const id = typeof record?.['id'] === 'string' ? record['id'] : `groups[${index}]`;
      const type = record?.['type'];
      const validate = typeof type === 'string' ? byType.get(type) : undefined;
      if (validate === undefined) {
        const message = record === undefined
          ? 'a group must be a mapping'
          : `\`type\` must be one of ${Object.keys(DEFINITION_OF_TYPE).join(', ')}, not ${JSON.stringify(type) ?? 'missing'}`;
        problems.push({ file, line: registryFile.lineOf(['groups', index]), group: id, rule: 'schema', message });
        return;
      }
      const ownValid = validate(group);
      const own = ownValid ? [] : findings(validate.errors ?? [], 'the group');
      // Valid for its own type yet rejected by the file schema: report what the file schema says.
      const found = !ownValid || fileValid ? own : fileFindings.filter((f) => f.path[0] === 'groups' && f.path[1] === String(index)).map((f) => ({ ...f, path: f.path.slice(2) }));
      for (const finding of found) {
        problems.push({ file, line: registryFile.lineOf(['groups', index, ...yamlPath(finding.path)]), group: id, rule: 'schema', message: finding.message });
      }
    });
  }
  return problems;
}
