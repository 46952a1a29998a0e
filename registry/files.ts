/**
 * Finding and parsing the registry's YAML files, keeping enough of each document to point a
 * problem at its line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { Problem } from './model.js';

/** One parsed YAML file of the registry. */
export interface RegistryFile {
  /** Path relative to the registry directory, with `/` separators on every platform. */
  readonly file: string;
  /** The document as plain data (`undefined` when it did not parse). */
  readonly data: unknown;
  /** 1-based line of the node at `path` (or of its nearest ancestor with a position). */
  lineOf(path: readonly (string | number)[]): number | undefined;
}

/** The `.yaml` and `.yml` files below `dir`, sorted, skipping hidden folders. */
export function yamlFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && /\.ya?ml$/.test(entry.name)) found.push(path);
    }
  };
  walk(dir);
  return found.sort();
}

function nodeLine(doc: Document, counter: LineCounter, path: readonly (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: unknown } | null | undefined)?.range;
    if (Array.isArray(range) && typeof range[0] === 'number') return counter.linePos(range[0]).line;
  }
  return undefined;
}

/**
 * Reads and parses one file. Syntax errors and duplicate keys (which YAML forbids and which would
 * otherwise silently keep the last value) are problems; the file's data is then `undefined`.
 */
export function readRegistryFile(dir: string, path: string, problems: Problem[]): RegistryFile {
  const file = relative(dir, path).split(sep).join('/');
  const counter = new LineCounter();
  const doc = parseDocument(readFileSync(path, 'utf8'), { lineCounter: counter, uniqueKeys: true, prettyErrors: false });
  for (const issue of [...doc.errors, ...doc.warnings]) {
    const at = issue.pos[0];
    problems.push({ file, line: counter.linePos(at).line, rule: 'yaml', message: issue.message.split('\n')[0] ?? issue.message });
  }
  const data: unknown = doc.errors.length === 0 ? doc.toJS() : undefined;
  return { file, data, lineOf: (p) => nodeLine(doc, counter, p) };
}
