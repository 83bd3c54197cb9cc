// A lease, and how it travels between processes: JSON.stringify(lease) gives
// its plain form (dates as ISO strings); parseLease() validates such a form and
// rebuilds the lease, so that a task can release what a server acquired for it.
import { z } from 'zod';
import { MAX_LIMIT } from './document.js';
import { InvalidOptionError } from './errors.js';
import { normalizeNames } from './names.js';
import type { Owner } from './owner.js';

/**
 * Proof of an acquisition. Pass it to release(), extend() or keepAlive(); it
 * is frozen. Every lease object of one acquisition — the one acquire()
 * returned, the one extend() returned, one rebuilt from JSON — is the same
 * lease to those calls. `JSON.stringify(lease)` is its portable form; rebuild
 * it with `locks.lease(json)`.
 */
export interface Lease {
  readonly space: string;
  readonly names: readonly string[];
  /** Fencing token: the row version the acquiring write produced; strictly increasing within a space. */
  readonly token: number;
  /** Random per acquisition: every later write proves ownership with it. */
  readonly nonce: string;
  readonly owner: Owner;
  /** Database time. */
  readonly acquiredAt: Date;
  /** Database time, when the lease was last given one. */
  readonly expiresAt?: Date;
  /** Present for a shared lock or a semaphore: each name is held as one of several holders. Absent for an exclusive lease. */
  readonly mode?: 'shared';
  /** A semaphore's limit: the most holders of each name at once. */
  readonly limit?: number;
}

const date = z.union([z.date(), z.string().datetime({ offset: true })]).transform((d) => new Date(d));
const int = z.number().int().nonnegative();

const ownerSchema = z
  .object({
    host: z.string().max(255),
    bootId: z.string().max(64),
    pidNs: z.string().max(64),
    pid: z.number().int().positive(),
    startTime: int,
    user: z.string().max(255),
    taskId: z.string().max(255).optional(),
    ancestors: z.array(z.object({ pid: z.number().int().positive(), startTime: int }).strict()).max(8).optional(),
  })
  .strict();

const leaseSchema = z
  .object({
    space: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
    names: z.array(z.string()),
    token: z.number().int().positive(),
    // Any string: a nonce no acquisition has is simply not held (ENOTHELD), as the database says.
    nonce: z.string(),
    owner: ownerSchema,
    acquiredAt: date,
    expiresAt: date.optional(),
    mode: z.literal('shared').optional(),
    limit: z.number().int().min(1).max(MAX_LIMIT).optional(),
  })
  .strict();

/**
 * Validates a lease's plain form (a lease, `JSON.stringify(lease)`, or the
 * object `JSON.parse` gives back) and rebuilds it, frozen. Throws
 * EINVALIDOPTION saying what is wrong, EINVALIDNAME for a bad name.
 */
export function parseLease(value: unknown): Lease {
  let input = value;
  if (typeof value === 'string') {
    try {
      input = JSON.parse(value);
    } catch (err) {
      throw new InvalidOptionError(`lease: not JSON (${(err as Error).message}); pass JSON.stringify(lease) or the lease itself`);
    }
  }
  const parsed = leaseSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new InvalidOptionError(`lease: ${i.path.join('.') || '(root)'}: ${i.message}; pass the lease that acquire(), tryAcquire() or wait() returned, or JSON.stringify() of it`);
  }
  const p = parsed.data;
  const names = Object.freeze(normalizeNames(p.names));
  const { ancestors, ...rest } = p.owner;
  const owner: Owner = { ...rest };
  if (ancestors) owner.ancestors = Object.freeze(ancestors.map((a) => Object.freeze({ ...a })));
  const lease: { -readonly [K in keyof Lease]: Lease[K] } = {
    space: p.space,
    names,
    token: p.token,
    nonce: p.nonce,
    owner: Object.freeze(owner),
    acquiredAt: p.acquiredAt,
  };
  if (p.expiresAt) lease.expiresAt = p.expiresAt;
  if (p.mode) lease.mode = p.mode;
  if (p.limit !== undefined) lease.limit = p.limit;
  return lease;
}
