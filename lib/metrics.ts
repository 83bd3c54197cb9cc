// Counters and time summaries kept by each lock table, read with metrics().
// Pure: no clock, no I/O; callers pass the durations they measured.

/**
 * A summary of durations in ms. `count`, `sum`, `min` and `max` are exact;
 * the quantiles come from a bounded uniform sample (a reservoir of
 * RESERVOIR_SIZE values), so they are estimates once more values were seen.
 * `min`, `max` and the quantiles are null while `count` is 0.
 */
export interface DurationSummary {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** Event counts since the lock table was created. */
export interface LockCounters {
  /** Leases acquired (acquire, tryAcquire, wait, using). */
  acquired: number;
  /** Leases released by their holder, at least in part. */
  released: number;
  /** Acquisition calls that found a name held (once per call, however long wait() then waits). */
  contended: number;
  /** Writes retried after a lost compare-and-swap race or a transient fault. */
  retried: number;
  /** Locks (not calls) removed from their owner by this table: reapDead, a take-over, releaseByOwner, releaseAll, releaseName. */
  reaped: number;
  /** Leases whose release or extend found them gone, at least in part. */
  lost: number;
  /** Waiters this table put in line (once per wait() call that had to queue). */
  queued: number;
  /** Waiters of this table that left the line: acquired, timed out, aborted, closed, or dropped. */
  dequeued: number;
}

/** What metrics() returns: a copy, safe to keep. */
export interface LockMetrics {
  space: string;
  counters: LockCounters;
  /** From the acquisition call to the lease, for each acquisition (local clock). */
  waitMs: DurationSummary;
  /** From acquisition to release (database clock), for each lease this table released. */
  holdMs: DurationSummary;
}

/** How many values each summary keeps for its quantiles. */
export const RESERVOIR_SIZE = 1024;

/**
 * Exact count/sum/min/max plus a uniform sample of at most `size` values
 * (Vitter's algorithm R), so memory stays bounded however long the process runs.
 */
export class Reservoir {
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;
  readonly #sample: number[] = [];
  readonly #size: number;
  readonly #random: () => number;

  constructor(size = RESERVOIR_SIZE, random: () => number = Math.random) {
    this.#size = size;
    this.#random = random;
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    if (this.#sample.length < this.#size) {
      this.#sample.push(value);
      return;
    }
    const slot = Math.floor(this.#random() * this.#count);
    if (slot < this.#size) this.#sample[slot] = value;
  }

  summary(): DurationSummary {
    if (this.#count === 0) return { count: 0, sum: 0, min: null, max: null, p50: null, p90: null, p99: null };
    const sorted = [...this.#sample].sort((a, b) => a - b);
    return {
      count: this.#count,
      sum: this.#sum,
      min: this.#min,
      max: this.#max,
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
    };
  }
}

/** Nearest-rank quantile of an ascending, non-empty list. */
export function quantile(sorted: readonly number[], q: number): number {
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function emptyCounters(): LockCounters {
  return { acquired: 0, released: 0, contended: 0, retried: 0, reaped: 0, lost: 0, queued: 0, dequeued: 0 };
}
