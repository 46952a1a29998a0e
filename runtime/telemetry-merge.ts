/**
 * Merging the metrics of several threads into one view. Every thread of a system has its own
 * meter provider (instruments cannot be shared across threads), and each reports cumulative
 * values, so the system's value of a series is the sum over threads: counters and up-down
 * counters add, histograms add bucket by bucket, and a gauge keeps the latest reading. Series
 * that differ in attributes stay apart; the same metric from two threads becomes one metric.
 */
import { DataPointType, type DataPoint, type Histogram, type MetricData, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import type { HrTime } from '@opentelemetry/api';

const earlier = (a: HrTime, b: HrTime): HrTime => (a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]) ? a : b);
const later = (a: HrTime, b: HrTime): HrTime => (earlier(a, b) === a ? b : a);

/** A series' identity: its attributes, in key order. */
function seriesKey(point: DataPoint<unknown>): string {
  return JSON.stringify(Object.entries(point.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function addHistograms(a: Histogram, b: Histogram): Histogram | undefined {
  const bounds = a.buckets.boundaries;
  if (bounds.length !== b.buckets.boundaries.length || bounds.some((x, i) => x !== b.buckets.boundaries[i])) return undefined;
  return {
    buckets: { boundaries: bounds, counts: a.buckets.counts.map((c, i) => c + (b.buckets.counts[i] ?? 0)) },
    count: a.count + b.count,
    ...(a.sum === undefined || b.sum === undefined ? {} : { sum: a.sum + b.sum }),
    ...(a.min === undefined || b.min === undefined ? {} : { min: Math.min(a.min, b.min) }),
    ...(a.max === undefined || b.max === undefined ? {} : { max: Math.max(a.max, b.max) }),
  } as Histogram;
}

/** One series reported by two threads; `undefined` when they cannot be combined (histograms with different buckets). */
function combine(type: DataPointType, a: DataPoint<unknown>, b: DataPoint<unknown>): DataPoint<unknown> | undefined {
  const span = { startTime: earlier(a.startTime, b.startTime), endTime: later(a.endTime, b.endTime), attributes: a.attributes };
  switch (type) {
    case DataPointType.SUM:
      return { ...span, value: (a.value as number) + (b.value as number) };
    case DataPointType.HISTOGRAM: {
      const value = addHistograms(a.value as Histogram, b.value as Histogram);
      return value === undefined ? undefined : { ...span, value };
    }
    case DataPointType.GAUGE:
      return later(a.endTime, b.endTime) === a.endTime ? a : b;
    default:
      return undefined;
  }
}

function mergeMetric(into: MetricData, next: MetricData): MetricData {
  if (into.dataPointType !== next.dataPointType) return into;
  const points = new Map<string, DataPoint<unknown>>();
  const apart: DataPoint<unknown>[] = [];
  for (const point of [...(into.dataPoints as DataPoint<unknown>[]), ...(next.dataPoints as DataPoint<unknown>[])]) {
    const key = seriesKey(point);
    const held = points.get(key);
    const merged = held === undefined ? point : combine(into.dataPointType, held, point);
    if (merged === undefined) apart.push(point);
    else points.set(key, merged);
  }
  return { ...into, dataPoints: [...points.values(), ...apart] } as MetricData;
}

/**
 * Merges the scope metrics of several threads: one entry per instrumentation scope, one metric per
 * name within it, one data point per series. A metric whose point type differs between threads
 * (two instruments of one name) keeps the first thread's.
 */
export function mergeScopeMetrics(threads: readonly (readonly ScopeMetrics[])[]): ScopeMetrics[] {
  const scopes = new Map<string, { scope: ScopeMetrics['scope']; metrics: Map<string, MetricData> }>();
  for (const thread of threads) {
    for (const { scope, metrics } of thread) {
      const key = `${scope.name}\u0000${scope.version ?? ''}`;
      let entry = scopes.get(key);
      if (entry === undefined) {
        entry = { scope, metrics: new Map() };
        scopes.set(key, entry);
      }
      for (const metric of metrics) {
        const held = entry.metrics.get(metric.descriptor.name);
        entry.metrics.set(metric.descriptor.name, held === undefined ? metric : mergeMetric(held, metric));
      }
    }
  }
  return [...scopes.values()].map(({ scope, metrics }) => ({ scope, metrics: [...metrics.values()] }));
}
