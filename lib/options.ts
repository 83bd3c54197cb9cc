import { z } from 'zod';
import { InvalidOptionError } from './errors.js';
import { MAX_LIMIT } from './document.js';
import { normalizeNames } from './names.js';
import { closest } from './suggest.js';

const msSchema = (max: number) => z.number().int().nonnegative().max(max);

// Measured in bench/ (in-process callers on distinct names): one statement in
// flight combines the most and never makes the process's own statements queue
// on the row lock inside the server; two keep most of that and let one slow
// statement (a stalled connection, a long read) not hold up everything else.
const DEFAULT_IN_FLIGHT = 2;

const schema = z
  .object({
    db: z.unknown(),
    table: z.string().default('locks'),
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
    /** Refuse (EINVALIDNAME) names the catalogue does not know, for callers the compiler does not check. */
    strictNames: z.boolean().default(false),
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
    /**
     * Lease length for acquisitions that give none, ms (database time). For
     * workers whose death cannot be judged from where others run (another
     * host or pid namespace): using() renews it while the work runs.
     */
    ttlMs: z.number().int().min(1).max(365 * 24 * 3_600_000).optional(),
    retry: z
      .object({
        baseMs: msSchema(10_000).default(2),
        capMs: msSchema(60_000).default(50),
        /** How long one operation keeps retrying lost races and transient faults. */
        deadlineMs: msSchema(3_600_000).default(15_000),
      })
      .strict()
      .default({ baseMs: 2, capMs: 50, deadlineMs: 15_000 }),
    wait: z
      .object({
        /** First and last interval of the version poll of wait(). */
        pollMinMs: msSchema(10_000).default(5),
        pollMaxMs: msSchema(60_000).default(50),
        /**
         * How long a waiter's place in line lasts unless renewed; a waiter
         * renews it every third of that while it waits. A waiter whose
         * process is gone on this host is dropped at once; elsewhere (or a
         * stuck one) when this runs out.
         */
        intentTtlMs: z.number().int().min(100).max(600_000).default(10_000),
      })
      .strict()
      .default({ pollMinMs: 5, pollMaxMs: 50, intentTtlMs: 10_000 }),
  })
  .strict();

export type LockTableOptionsInput = z.input<typeof schema>;
export type ResolvedOptions = Readonly<z.output<typeof schema>>;

/** Validates once, rejects contradictions with a precise message, freezes. */
export function resolveOptions(input: unknown): ResolvedOptions {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidOptionError(`createLockTable takes an options object such as { db: 'mysql://user:password@host:port/database' }, got ${describeValue(input)}`);
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw optionError(input, parsed.error.issues[0]!, TABLE_FIELDS);
  const o = parsed.data;
  if (o.db === undefined) throw new InvalidOptionError('db is required: pass a mysql2 pool or a mysql://user:password@host:port/database URI');
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
  /**
   * Take names no one holds even when waiters are in line for them (and, for
   * wait(), wait without getting in line). Default false: a name with a live
   * waiter in line is not free for a later acquisition.
   */
  barge?: boolean;
  /**
   * 'exclusive' (default): the one holder of each name. 'shared': one of any
   * number of holders of each name at once (each with its own lease, token
   * and crash clean-up); excludes and is excluded by exclusive holders.
   */
  mode?: 'exclusive' | 'shared';
  /**
   * A semaphore: at most `limit` holders of each name at once (1-1000;
   * implies mode 'shared'). The limit is stored with the name while it has
   * holders; a call with another limit (or a plain shared call) meanwhile
   * fails with EINVALIDOPTION.
   */
  limit?: number;
  /**
   * Abort the call: it rejects with EABORTED within ~50 ms (a write already
   * sent is settled by its nonce, never left held: docs/time-and-bounds.md).
   */
  signal?: AbortSignal;
}

export interface WaitOptions extends AcquireOptions {
  /** Give up with ETIMEDOUT after this long. Default: wait until acquired or aborted. */
  timeoutMs?: number;
}

/** Longest lease, ms: a year. Beyond it expiry times stop being exact integers in the document soon enough. */
export const MAX_TTL_MS = 365 * 24 * 3_600_000;

const acquireSchema = z
  .object({
    ttlMs: z.number().int().min(1).max(MAX_TTL_MS).optional(),
    barge: z.boolean().optional(),
    mode: z.enum(['exclusive', 'shared']).optional(),
    limit: z.number().int().min(1).max(MAX_LIMIT).optional(),
    signal: z.instanceof(AbortSignal).optional(),
    timeoutMs: z.number().int().nonnegative().max(2_147_483_647).optional(),
  })
  .strict();

/** Validates the names and per-call options of acquire/tryAcquire/wait. */
export function resolveCall(names: unknown, options: unknown): { names: string[]; options: WaitOptions } {
  const list = normalizeNames(names);
  if (options === undefined) return { names: list, options: {} }; // the hot path: nothing to validate
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError(`the options of acquire, tryAcquire and wait are an object { ttlMs?, barge?, mode?, limit?, signal?, timeoutMs? }, got ${describeValue(options)}`);
  }
  const parsed = acquireSchema.safeParse(options);
  if (!parsed.success) throw optionError(options, parsed.error.issues[0]!, CALL_FIELDS);
  if (parsed.data.mode === 'exclusive' && parsed.data.limit !== undefined) {
    throw new InvalidOptionError(`option limit: a semaphore (limit ${parsed.data.limit}) is shared by definition; leave out mode: 'exclusive', or the limit for an exclusive lock`);
  }
  return { names: list, options: parsed.data as WaitOptions };
}

/**
 * Splits using()'s options into `wait` and the rest, refusing what is not an
 * options object, a `wait` that is not a boolean, or an unknown option; the
 * rest's values are validated by acquire() or wait().
 */
export function splitUsingOptions(options: unknown): { wait: boolean; rest: WaitOptions } {
  if (options === undefined || options === null) return { wait: false, rest: {} };
  if (typeof options !== 'object' || Array.isArray(options)) throw new InvalidOptionError(`the options of using are an object { wait?, ttlMs?, barge?, mode?, limit?, signal?, timeoutMs? }, got ${describeValue(options)}`);
  const { wait, ...rest } = options as { wait?: unknown };
  if (wait !== undefined && typeof wait !== 'boolean') throw new InvalidOptionError(`wait must be true or false, got ${describeValue(wait)}`);
  // Here, not in acquire(): its message would list the options without wait.
  const unknown = Object.keys(rest).find((k) => !Object.hasOwn(CALL_FIELDS, k));
  if (unknown !== undefined) {
    const known = ['wait', ...Object.keys(CALL_FIELDS)];
    const guess = closest(unknown, known);
    throw new InvalidOptionError(`unknown option ${unknown}${guess ? `: did you mean ${guess}?` : ''} (the options are ${known.join(', ')})`);
  }
  return { wait: wait === true, rest: rest as WaitOptions };
}

/** What an option must be, for the message that refuses it: a whole number in bounds, or a description. */
type Field = { whole: string; min: number; max: number; note?: string } | { text: string };

const ms = (min: number, max: number, note?: string): Field => ({ whole: 'milliseconds', min, max, ...(note ? { note } : {}) });

const TABLE_FIELDS: Record<string, Field> = {
  db: { text: 'a mysql2 pool or a mysql://user:password@host:port/database URI' },
  space: { text: 'a space name: 1-128 characters of A-Z a-z 0-9 _ . -' },
  owner: { text: 'an object { taskId? }' },
  'owner.taskId': { text: 'a string of 1-255 characters' },
  types: { text: 'a catalogue from defineLockTypes() (an object with typeOf(name))' },
  strictNames: { text: 'true or false' },
  poolSize: { whole: 'connections', min: 1, max: 64 },
  maxInFlight: { whole: 'statements', min: 1, max: 64 },
  fastPath: { text: 'true or false' },
  ttlMs: ms(1, 365 * 24 * 3_600_000, 'a year'),
  retry: { text: 'an object { baseMs?, capMs?, deadlineMs? }' },
  'retry.baseMs': ms(0, 10_000),
  'retry.capMs': ms(0, 60_000),
  'retry.deadlineMs': ms(0, 3_600_000, 'an hour'),
  wait: { text: 'an object { pollMinMs?, pollMaxMs?, intentTtlMs? }' },
  'wait.pollMinMs': ms(0, 10_000),
  'wait.pollMaxMs': ms(0, 60_000),
  'wait.intentTtlMs': ms(100, 600_000, 'ten minutes'),
};

const CALL_FIELDS: Record<string, Field> = {
  ttlMs: ms(1, MAX_TTL_MS, 'a year'),
  barge: { text: 'true or false' },
  mode: { text: "'exclusive' or 'shared'" },
  limit: { whole: 'holders', min: 1, max: MAX_LIMIT },
  signal: { text: 'an AbortSignal' },
  timeoutMs: ms(0, 2_147_483_647),
};

/**
 * Our message for the first thing zod found wrong: which option, what it must
 * be, what it got, or for an unknown option the likely intended one.
 */
function optionError(input: unknown, issue: z.core.$ZodIssue, fields: Record<string, Field>): InvalidOptionError {
  const at = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const parent = at.length ? `${at.join('.')}.` : '';
    const known = Object.keys(fields)
      .filter((k) => k.startsWith(parent) && !k.slice(parent.length).includes('.'))
      .map((k) => k.slice(parent.length));
    const key = issue.keys[0]!;
    const guess = closest(key, known);
    return new InvalidOptionError(
      `unknown option ${parent}${key}${guess ? `: did you mean ${parent}${guess}?` : ''} (the options${parent ? ` of ${at.join('.')}` : ''} are ${known.join(', ')})`,
    );
  }
  const key = at.join('.');
  const field = fields[key];
  const value = at.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), input);
  const got = `got ${describeValue(value)}`;
  if (!field) return new InvalidOptionError(`${key || 'options'}: ${issue.message}, ${got}`);
  if ('text' in field) return new InvalidOptionError(`${key} must be ${field.text}, ${got}`);
  const unit = field.whole === 'milliseconds' ? 'ms' : field.whole;
  if (typeof value === 'number' && Number.isInteger(value)) {
    if (value < field.min) return new InvalidOptionError(`${key} must be ≥ ${field.min} ${unit}, ${got}`);
    if (value > field.max) return new InvalidOptionError(`${key} must be ≤ ${field.max} ${unit}${field.note ? ` (${field.note})` : ''}, ${got}`);
  }
  const range = field.max >= 1_000_000 ? `≥ ${field.min}` : `from ${field.min} to ${field.max}`;
  return new InvalidOptionError(`${key} must be a whole number of ${field.whole} ${range}, ${got}`);
}

/** A value as a message shows it: numbers and booleans as themselves, strings quoted, the rest by kind. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v === 'function' ? 'function' : (v as object).constructor?.name ?? 'object'}`;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    // The pool and the catalogue are the host's objects: leave them alone.
    for (const [k, v] of Object.entries(o)) if (k !== 'db' && k !== 'types') deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
