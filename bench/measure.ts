// Driving callers for a fixed time, and what is measured: cycles completed in
// the window, the latency of each, the statements sent in it.
import type { Session } from './contenders.js';

export interface Sample {
  /** Cycles completed inside the measured window. */
  cycles: number;
  /** Length of the window, ms. */
  windowMs: number;
  /** Latency of each completed cycle (acquire + release), ms. */
  latencies: number[];
  /** Statements sent inside the window. */
  statements: number;
  /** Cycles that failed (should be none). */
  errors: number;
  firstError?: string;
}

/**
 * Runs `callers` loops of session.cycle(names[i]) until `endAt`, measuring
 * only from `measureFrom` (both performance.now() times): the warm-up is not
 * counted. `latencies: false` keeps none (the RSS soak: 8 bytes a cycle would
 * be the benchmark's own growth, not the library's).
 */
export async function drive(session: Session, names: string[], measureFrom: number, endAt: number, options: { latencies?: boolean } = {}): Promise<Sample> {
  const keep = options.latencies ?? true;
  const latencies: number[] = [];
  let cycles = 0;
  let errors = 0;
  let firstError: string | undefined;
  let statementsAtStart: number | undefined;
  let statementsAtEnd: number | undefined;
  const startTimer = setTimeout(() => (statementsAtStart = session.statements), Math.max(0, measureFrom - performance.now()));
  const endTimer = setTimeout(() => (statementsAtEnd = session.statements), Math.max(0, endAt - performance.now()));
  await Promise.all(
    names.map(async (name) => {
      while (performance.now() < endAt) {
        const t0 = performance.now();
        try {
          await session.cycle(name);
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          continue;
        }
        const t1 = performance.now();
        if (t0 >= measureFrom && t1 <= endAt) {
          cycles++;
          if (keep) latencies.push(t1 - t0);
        }
      }
    }),
  );
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  const statements = (statementsAtEnd ?? session.statements) - (statementsAtStart ?? 0);
  const sample: Sample = { cycles, windowMs: endAt - measureFrom, latencies, statements, errors };
  if (firstError !== undefined) sample.firstError = firstError;
  return sample;
}

/**
 * Merges samples: of several processes measured over the same window
 * (`parallel`: the window is theirs), or of slices measured one after another
 * (`sequential`: the windows add up).
 */
export function merge(samples: Sample[], how: 'parallel' | 'sequential'): Sample {
  const out: Sample = { cycles: 0, windowMs: 0, latencies: [], statements: 0, errors: 0 };
  for (const s of samples) {
    out.cycles += s.cycles;
    out.windowMs = how === 'parallel' ? Math.max(out.windowMs, s.windowMs) : out.windowMs + s.windowMs;
    for (const l of s.latencies) out.latencies.push(l);
    out.statements += s.statements;
    out.errors += s.errors;
    if (s.firstError !== undefined) out.firstError ??= s.firstError;
  }
  return out;
}

/** The p-th percentile (0-100), nearest rank. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  cyclesPerSec: number;
  p50: number;
  p99: number;
  /** Statements per operation: per acquire or per release (a cycle is two). */
  statementsPerOp: number;
  cycles: number;
  errors: number;
}

export function summarise(s: Sample): Summary {
  return {
    cyclesPerSec: s.windowMs > 0 ? (s.cycles * 1000) / s.windowMs : 0,
    p50: percentile(s.latencies, 50),
    p99: percentile(s.latencies, 99),
    statementsPerOp: s.cycles ? s.statements / (2 * s.cycles) : NaN,
    cycles: s.cycles,
    errors: s.errors,
  };
}
