/**
 * The evidence a cluster keeps: one report per reporter, accused and kind, with how often it was
 * made. A faulty replica may misbehave without end (a forging one, with every message it sends),
 * and a cluster embedded in a long-running server must not keep every instance.
 */

/**
 * Misbehaviour a replica proved with signed messages, or the cluster found in tree-head
 * signatures: one report per reporter, accused and kind, however often it was made.
 */
export interface EvidenceReport {
  /** The replica that reported it (the runtime named it the sender); -1 for the cluster itself. */
  readonly reporter: number;
  readonly accused: number;
  readonly kind: string;
  /** What the first instance was. */
  readonly detail: string;
  /** How many instances were reported. */
  readonly count: number;
}

/** Evidence, aggregated by reporter, accused and kind. */
export class EvidenceLog {
  readonly #reports = new Map<string, { -readonly [K in keyof EvidenceReport]: EvidenceReport[K] }>();

  /** Records one instance. */
  add(reporter: number, accused: number, kind: string, detail: string): void {
    const key = `${reporter}:${accused}:${kind}`;
    const known = this.#reports.get(key);
    if (known === undefined) this.#reports.set(key, { reporter, accused, kind, detail, count: 1 });
    else known.count++;
  }

  /** Every report, in the order each was first made (copies). */
  reports(): EvidenceReport[] {
    return [...this.#reports.values()].map((report) => ({ ...report }));
  }
}
