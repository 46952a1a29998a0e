/**
 * What a snippet of code loads: the URLs of every module imported while it runs in a process of its
 * own, seen by a module-loading hook (fixtures/module-log.ts).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** URL of a module of the build, for snippets to import. */
export function built(path: string): string {
  return new URL(`../../${path}`, import.meta.url).href;
}

/** Runs the ES module source `code` in a new Node process and returns the URLs of the modules it imported, in order. */
export async function modulesLoadedBy(code: string): Promise<string[]> {
  const hook = new URL('../fixtures/module-log.js', import.meta.url).href;
  const { stderr } = await promisify(execFile)(process.execPath, ['--import', hook, '--input-type=module', '-e', code]);
  return stderr.split('\n').flatMap((line) => (line.startsWith('loaded ') ? [line.slice('loaded '.length)] : []));
}
