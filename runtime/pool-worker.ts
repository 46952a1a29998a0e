/**
 * The function each Piscina thread runs: finds a task by module URL and export name and runs it.
 * Modules listed in `workerData.preload` are imported first (telemetry set-up, for example).
 */
import { workerData } from 'piscina';
import { installPoolShared, isTask } from './task.js';
import { installContextManager, parentContext, within, type TraceFields } from './telemetry.js';

/** A task invocation as sent to the pool, with the trace context of the span that asked for it. */
export interface PoolJob extends TraceFields {
  readonly module: string;
  readonly export: string;
  readonly input: unknown;
}

const data = workerData as { preload?: readonly string[]; shared?: Readonly<Record<string, SharedArrayBuffer>> } | undefined;
installPoolShared(data?.shared ?? {});
const preload = (data?.preload ?? []).map((url) => import(url));
installContextManager();

/** Runs one job. */
export default async function runJob(job: PoolJob): Promise<unknown> {
  await Promise.all(preload);
  const mod = (await import(job.module)) as Record<string, unknown>;
  const task = mod[job.export];
  if (!isTask(task)) throw new Error(`${job.module} does not export a task named ${job.export}`);
  // The task's spans are children of the span that asked for it, in whichever thread that ran.
  const parent = parentContext(job);
  return within(parent, () => task.run(job.input));
}
