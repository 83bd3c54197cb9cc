/** Stable error codes. They are part of the public API: match on `err.code`. */
export type LockErrorCode =
  | 'ELOCKED'
  | 'ENOTHELD'
  | 'EINVALIDNAME'
  | 'EINVALIDOPTION'
  | 'ECORRUPT'
  | 'EFORMAT'
  | 'ENOTMIGRATED'
  | 'EFOREIGN'
  | 'ETIMEDOUT'
  | 'EABORTED'
  | 'ECONTENDED'
  | 'EDATABASE'
  | 'ECLOSED'
  | 'EDEADLK';

/** Who holds a lock that was in the way. Times are database time. */
export interface Holder {
  name: string;
  type: string;
  owner: import('./owner.js').Owner;
  token: number;
  acquiredAt: Date;
  expiresAt?: Date;
  /**
   * In an ELOCKED or ETIMEDOUT error (and a contended event): present when
   * this holder is in the way by a conflict rule of the catalogue, holding
   * another name than those asked for; the rule, e.g. `box_update <-> app_task_*`.
   */
  rule?: string;
}

/** A waiter in line for a name (fair waiting). Times are database time. */
export interface Waiting {
  name: string;
  /** Place in line for this name among live waiters, 1 = first. */
  position: number;
  /** The waiter's id: the same on every name one wait() waits for. */
  id: string;
  owner: import('./owner.js').Owner;
  /** In line since. */
  since: Date;
  /** The intent lapses then unless its waiter renews it (it does while it waits). */
  expiresAt: Date;
  /** Present when it is in the way by a conflict rule (it waits for another name than those asked for): the rule. */
  rule?: string;
}

/** Why a lease is no longer held. */
export type NotHeldReason =
  | 'released' // no entry and no record of a forced removal: released earlier (or its record aged out)
  | 'reaped' // removed by reapDead() because its owner was judged dead
  | 'wiped' // removed by releaseAll()
  | 'owner' // removed by releaseByOwner()
  | 'forced' // removed by releaseName() / the CLI
  | 'expired' // its lease ran out and another acquirer replaced it
  | 'taken'; // the name is now held by another acquisition

/**
 * Base class of every error this library throws. `code` is stable; the
 * driver's error, when there is one, is kept as `cause` so that its
 * `code`/`errno`/`sqlState` survive.
 */
export class LockError extends Error {
  readonly code: LockErrorCode;
  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Some of the names are held by someone else (`holders` says who), or have
 * waiters in line in front of this acquisition (`waiters`, in line order).
 */
export class LockedError extends LockError {
  readonly holders: Holder[];
  readonly waiters: Waiting[];
  constructor(holders: Holder[], message?: string, waiters: Waiting[] = []) {
    super(
      'ELOCKED',
      message ??
        `locked: ${describeBlockers(holders, waiters)}; wait for ${holders.length + waiters.length === 1 ? 'it' : 'them'} with wait() or using(names, fn, { wait: true }), ` +
          'or see who holds what with `locktable list`',
    );
    this.holders = holders;
    this.waiters = waiters;
  }
}

function describeBlockers(holders: Holder[], waiters: Waiting[]): string {
  const parts = holders.map(describeHolder);
  if (waiters.length) parts.push(describeLine(waiters));
  return parts.join('; ');
}

function describeLine(waiters: Waiting[]): string {
  return `waiters in line first (pass { barge: true } to ignore the line): ${waiters.map(describeWaiting).join('; ')}`;
}

export function describeWaiting(w: Waiting): string {
  const o = w.owner;
  const task = o.taskId !== undefined ? `task ${o.taskId}, ` : '';
  return `${w.name} #${w.position} ${task}pid ${o.pid} on ${o.host} since ${w.since.toISOString()}${w.rule ? ` (conflict rule ${w.rule})` : ''}`;
}

/** A release (or renewal) found the lease gone. */
export class NotHeldError extends LockError {
  readonly names: string[];
  readonly reason: NotHeldReason;
  readonly heldBy: Holder[];
  constructor(names: string[], reason: NotHeldReason, heldBy: Holder[] = []) {
    const by = heldBy.length ? `; now held by ${heldBy.map(describeHolder).join('; ')}` : '';
    super('ENOTHELD', `lease no longer held on ${names.join(', ')}: ${reason} (${NOT_HELD_WHY[reason]})${by}`);
    this.names = names;
    this.reason = reason;
    this.heldBy = heldBy;
  }
}

const NOT_HELD_WHY: Record<NotHeldReason, string> = {
  released: 'it was released already: a lease is released once',
  reaped: 'reapDead() released it, judging its owner dead',
  wiped: 'releaseAll() released it',
  owner: 'releaseByOwner() released it',
  forced: 'releaseName() or `locktable release` released it',
  expired: 'its ttlMs ran out and another acquirer took it: extend() the lease before it ends, or give a longer ttlMs',
  taken: 'another acquisition holds the name now',
};

export class InvalidNameError extends LockError {
  readonly value: unknown;
  constructor(value: unknown, why: string) {
    super('EINVALIDNAME', `invalid lock name ${preview(value)}: ${why}`);
    this.value = value;
  }
}

export class InvalidOptionError extends LockError {
  constructor(message: string) {
    super('EINVALIDOPTION', message);
  }
}

/**
 * The stored document failed validation. It is never overwritten by a normal
 * operation; `raw` is its exact text for a human to inspect. When it still
 * looks like a locktable document (a JSON object with a format number `v`),
 * it was damaged, and `repair()` is the one explicit way to replace it. When
 * it does not (`foreign`), the row most likely belongs to another program
 * that uses a table of the same name: the message says so and does not point
 * at repair(), which would destroy that program's data.
 */
export class CorruptDocumentError extends LockError {
  readonly space: string;
  readonly raw: string;
  readonly issues: string[];
  /** The text does not look like a locktable document at all. */
  readonly foreign: boolean;
  constructor(space: string, raw: string, issues: string[]) {
    const foreign = !looksLikeLockDocument(raw);
    super(
      'ECORRUPT',
      foreign
        ? `the row of space '${space}' does not hold a locktable document (${issues.slice(0, 3).join('; ')}); it was left untouched. ` +
            'The table probably belongs to another program: give locktable a table of its own (the table option, --table in the CLI) ' +
            'and run migrate() for it; `locktable doctor` tells whose the table is'
        : `lock document of space '${space}' is invalid (${issues.slice(0, 3).join('; ')}); it was left untouched: ` +
            `inspect it with \`locktable doctor\` and replace it with repair() once understood`,
    );
    this.space = space;
    this.raw = raw;
    this.issues = issues;
    this.foreign = foreign;
  }
}

/** Whether text is, or was before damage, a locktable document: a JSON object with a format number `v` first (as locktable writes it), or one with `v` and `l`. */
export function looksLikeLockDocument(raw: unknown): boolean {
  if (typeof raw !== 'string') return false;
  if (/^\s*\{\s*"v"\s*:/.test(raw)) return true;
  try {
    const value = JSON.parse(raw) as unknown;
    return !!value && typeof value === 'object' && !Array.isArray(value) && 'v' in value && 'l' in value;
  } catch {
    return false;
  }
}

/**
 * The stored document was written by a newer locktable: a newer format
 * number, or (`fields`) fields this version does not know in a document of
 * its own format. It is never overwritten; upgrade every process of the space
 * to the newest locktable among them. `raw`: the text, when it was read whole.
 */
export class FormatError extends LockError {
  /** Where the unknown fields are (`l.box_update.x`), when that is what is newer. */
  readonly fields: string[];
  readonly raw: string | undefined;
  constructor(space: string, format: unknown, fields: string[] = [], raw?: string) {
    super(
      'EFORMAT',
      fields.length
        ? `lock document of space '${space}' has fields this version of locktable does not know (${fields.slice(0, 3).join(', ')}${fields.length > 3 ? `, and ${fields.length - 3} more` : ''}): ` +
            'written by a newer locktable; it was left untouched: upgrade locktable here (every process of a space runs the same version, or newer)'
        : `lock document of space '${space}' has format ${String(format)}, newer than this version of locktable understands: upgrade locktable`,
    );
    this.fields = fields;
    this.raw = raw;
  }
}

export class NotMigratedError extends LockError {
  constructor(message: string, cause?: unknown) {
    super('ENOTMIGRATED', `${message}: run migrate(db) (or \`locktable migrate\`) first`, { cause });
  }
}

/**
 * A table of the name locktable was told to use exists and was not created by
 * locktable (or the migration record is someone else's). Nothing was changed:
 * locktable never alters or adopts such a table. `table` is its name, `columns`
 * what it has (`name type`).
 */
export class ForeignTableError extends LockError {
  readonly table: string;
  readonly columns: string[];
  constructor(table: string, message: string, columns: string[] = []) {
    super('EFOREIGN', message);
    this.table = table;
    this.columns = columns;
  }
}

export class TimeoutError extends LockError {
  readonly holders: Holder[];
  readonly waiters: Waiting[];
  /** `cause`: the database fault that outlasted the timeout, when that is what kept the wait from acquiring. */
  constructor(ms: number, holders: Holder[], waiters: Waiting[] = [], cause?: unknown) {
    super(
      'ETIMEDOUT',
      `gave up after ${ms} ms${holders.length ? `; held by ${holders.map(describeHolder).join('; ')}` : ''}${waiters.length ? `; ${describeLine(waiters)}` : ''}${cause === undefined ? '' : `; the database did not let the last attempt through (${(cause as Error)?.message ?? String(cause)})`}: wait longer (timeoutMs), or see who holds what with \`locktable list\``,
      cause === undefined ? undefined : { cause },
    );
    this.holders = holders;
    this.waiters = waiters;
  }
}

export class AbortError extends LockError {
  constructor(reason?: unknown) {
    super('EABORTED', 'aborted by the signal', { cause: reason });
  }
}

/** A write kept losing its compare-and-swap race until the deadline. */
export class ContendedError extends LockError {
  constructor(attempts: number) {
    super('ECONTENDED', `lost the compare-and-swap race ${attempts} times; the lock row is overloaded: lower concurrency or raise retry.deadlineMs`);
  }
}

export class DatabaseError extends LockError {
  /**
   * True when a write was sent but its reply was lost and no re-read could
   * settle it before the deadline: it may have been applied. For an acquire,
   * locktable keeps trying to release what it may have taken, in the background.
   */
  readonly outcomeUnknown: boolean;
  constructor(message: string, cause: unknown, options: { outcomeUnknown?: boolean } = {}) {
    super('EDATABASE', message, { cause });
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

/** wait() from inside using() work on a name its own lease holds: it would wait for itself. `holders` are those leases. */
export class DeadlockError extends LockError {
  readonly holders: Holder[];
  constructor(holders: Holder[]) {
    super(
      'EDEADLK',
      `would wait for itself: the using() work this wait() runs in holds ${holders.map(describeHolder).join('; ')}; a name cannot be held twice: do not wait for it inside that work`,
    );
    this.holders = holders;
  }
}

export class ClosedError extends LockError {
  constructor(message = 'the lock table was closed: create another with createLockTable() to go on') {
    super('ECLOSED', message);
  }
}

export function describeHolder(h: Holder): string {
  const o = h.owner;
  const task = o.taskId !== undefined ? `task ${o.taskId}, ` : '';
  return `${h.name} by ${task}pid ${o.pid} on ${o.host} since ${h.acquiredAt.toISOString()} (token ${h.token}${h.rule ? `; conflict rule ${h.rule}` : ''})`;
}

function preview(value: unknown): string {
  if (typeof value !== 'string') return `(${value === null ? 'null' : typeof value})`;
  const s = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return `${s}${value.length > 40 ? ` (${value.length} chars)` : ''}`;
}
