import { z } from 'zod';
import { InvalidOptionError } from './errors.js';
import { normalizeNames } from './names.js';

const ms = (max: number) => z.number().int().nonnegative().max(max);

// Measured in bench/ (in-process callers on distinct names): one statement in
// flight combines the most and never makes the process's own statements queue
// on the row lock inside the server; two keep most of that and let one slow
// statement (a stalled connection, a long read) not hold up everything else.
const DEFAULT_IN_FLIGHT = 2;

const schema = z
  .object({
    db: z.unknown(),
    space: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,128}$/, 'a space is 1-128 characters of A-Z a-z 0-9 _ . -')
      .default('platform'),
    owner: z
      .object({
        taskId: z.string().min(1).max(255).optional(),
      })
      .strict()
      .default({}),
    /** A catalogue from defineLockTypes(), used to record each lock's type. */
    types: z.object({ typeOf: z.function() }).passthrough().optional(),
    /** Size of the pool locktable opens when `db` is a URI. */
    poolSize: z.number().int().min(1).max(64).default(4),
    /**
     * Lock statements in flight at most, per table. What queues behind them is
     * combined into one write. Small on purpose: statements of one process on
     * the one row only queue on its lock inside the server, and past ~16
     * writers queued there the server's throughput collapses.
     */
    maxInFlight: z.number().int().min(1).max(64).default(DEFAULT_IN_FLIGHT),
    /**
     * Plain acquires and releases as one conditional statement each. Turn off
     * only to compare: every operation then reads, decides here, and writes.
     */
    fastPath: z.boolean().default(true),
    retry: z
      .object({
        baseMs: ms(10_000).default(2),
        capMs: ms(60_000).default(50),
        /** How long one operation keeps retrying lost races and transient faults. */
        deadlineMs: ms(3_600_000).default(15_000),
      })
      .strict()
      .default({ baseMs: 2, capMs: 50, deadlineMs: 15_000 }),
    wait: z
      .object({
        /** First and last interval of the version poll of wait(). */
        pollMinMs: ms(10_000).default(5),
        pollMaxMs: ms(60_000).default(50),
      })
      .strict()
      .default({ pollMinMs: 5, pollMaxMs: 50 }),
  })
  .strict();

export type LockTableOptionsInput = z.input<typeof schema>;
export type ResolvedOptions = Readonly<z.output<typeof schema>>;

/** Validates once, rejects contradictions with a precise message, freezes. */
export function resolveOptions(input: unknown): ResolvedOptions {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new InvalidOptionError(`option ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const o = parsed.data;
  if (o.db === undefined) throw new InvalidOptionError('option db: required (a mysql2 pool or a mysql:// URI)');
  if (o.retry.baseMs > o.retry.capMs) {
    throw new InvalidOptionError(`option retry: baseMs (${o.retry.baseMs}) is larger than capMs (${o.retry.capMs})`);
  }
  const given = input as { maxInFlight?: unknown };
  if (typeof o.db === 'string' || Array.isArray(o.db)) {
    // Our own pool: more statements in flight than connections would only queue in the pool.
    if (given.maxInFlight === undefined) o.maxInFlight = Math.min(o.maxInFlight, o.poolSize);
    else if (o.maxInFlight > o.poolSize) {
      throw new InvalidOptionError(`option maxInFlight: ${o.maxInFlight} statements in flight need at least as many connections, but poolSize is ${o.poolSize}`);
    }
  }
  if (o.wait.pollMinMs > o.wait.pollMaxMs) {
    throw new InvalidOptionError(`option wait: pollMinMs (${o.wait.pollMinMs}) is larger than pollMaxMs (${o.wait.pollMaxMs})`);
  }
  return deepFreeze(o);
}

export interface AcquireOptions {
  /** Lease length: the lock expires this long after acquisition (database time) unless extended. */
  ttlMs?: number;
}

export interface WaitOptions extends AcquireOptions {
  signal?: AbortSignal;
  /** Give up with ETIMEDOUT after this long. Default: wait until acquired or aborted. */
  timeoutMs?: number;
}

/** Longest lease, ms: a year. Beyond it expiry times stop being exact integers in the document soon enough. */
export const MAX_TTL_MS = 365 * 24 * 3_600_000;

const acquireSchema = z
  .object({
    ttlMs: z.number().int().min(1).max(MAX_TTL_MS).optional(),
    signal: z.instanceof(AbortSignal).optional(),
    timeoutMs: z.number().int().nonnegative().max(2_147_483_647).optional(),
  })
  .strict();

/** Validates the names and per-call options of acquire/tryAcquire/wait. */
export function resolveCall(names: unknown, options: unknown): { names: string[]; options: WaitOptions } {
  const list = normalizeNames(names);
  if (options === undefined) return { names: list, options: {} }; // the hot path: nothing to validate
  const parsed = acquireSchema.safeParse(options);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new InvalidOptionError(`option ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return { names: list, options: parsed.data as WaitOptions };
}

/**
 * Splits using()'s options into `wait` and the rest, refusing what is not an
 * options object or a `wait` that is not a boolean; the rest is validated by
 * acquire() or wait().
 */
export function splitUsingOptions(options: unknown): { wait: boolean; rest: WaitOptions } {
  if (options === undefined || options === null) return { wait: false, rest: {} };
  if (typeof options !== 'object' || Array.isArray(options)) throw new InvalidOptionError('using: options is an object');
  const { wait, ...rest } = options as { wait?: unknown };
  if (wait !== undefined && typeof wait !== 'boolean') throw new InvalidOptionError('option wait: a boolean');
  return { wait: wait === true, rest: rest as WaitOptions };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    // The pool and the catalogue are the host's objects: leave them alone.
    for (const [k, v] of Object.entries(o)) if (k !== 'db' && k !== 'types') deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
