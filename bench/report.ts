/**
 * Benchmark results: a table for people, one JSON object for machines (DESIGN.md, Benchmarks).
 */
import { availableParallelism } from 'node:os';

/** One measured value. */
export interface Metric {
  readonly value: number;
  readonly unit: string;
  /** A target this value must meet, shown next to it in the table. */
  readonly target?: { readonly op: '>=' | '<='; readonly value: number };
}

/** What a benchmark returns. */
export interface BenchResult {
  readonly bench: string;
  readonly metrics: Record<string, Metric>;
}

/** The JSON object of DESIGN.md: bench name, node version, cores, metrics. */
export function toJson(result: BenchResult): string {
  const metrics = Object.fromEntries(Object.entries(result.metrics).map(([k, m]) => [k, { value: round(m.value), unit: m.unit }]));
  return JSON.stringify({ bench: result.bench, node: process.version, cpus: availableParallelism(), metrics });
}

/** A fixed-width table with targets and whether each is met. */
export function toTable(result: BenchResult): string {
  const rows = Object.entries(result.metrics).map(([key, m]) => {
    const target = m.target ? `${m.target.op} ${m.target.value}` : '';
    const met = m.target ? ((m.target.op === '>=' ? m.value >= m.target.value : m.value <= m.target.value) ? 'yes' : 'NO') : '';
    return [key, String(round(m.value)), m.unit, target, met];
  });
  const header = ['metric', 'value', 'unit', 'target', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 1 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [`${result.bench} (node ${process.version}, ${availableParallelism()} cpus)`, line(header), ...rows.map(line)].join('\n');
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
