// The public shapes of a lock table's options, arguments and results.
// locktable.ts re-exports them, and index.ts from it.
import type { Holder, Waiting } from './errors.js';
import type { Liveness } from './liveness.js';
import type { LockTypes } from './names.js';
import type { WaitOptions } from './options.js';

/** One held lock, as list() sees it. */
export interface LockInfo extends Holder {
  /** Judged from this process: `unknown` for another machine (boot id) or pid namespace. */
  liveness: Liveness;
  /** Age in ms, database time. */
  ageMs: number;
  /** Present for a holder of a shared name or semaphore (one of several holders of `name`); absent for an exclusive lock. */
  mode?: 'shared';
  /** A semaphore's limit: the most holders of `name` at once. */
  limit?: number;
}

/** What releaseName() removed: the lock, or for a name held shared the first holder, with `holders` (every holder it removed). */
export interface ReleasedName extends LockInfo {
  holders?: LockInfo[];
}

/** One waiter in line, as listWaiters() sees it. */
export interface WaiterInfo extends Waiting {
  /** Every name this waiter waits for (it is in line for each). */
  names: string[];
  /** Its owner judged from this process. A dead waiter is dropped by the next write that meets it. */
  liveness: Liveness;
  /** How long it has been in line, ms of database time. */
  ageMs: number;
}

/**
 * Whose locks releaseByOwner() releases. `{ pid }`: those of the process tree
 * started as `pid` — the process itself, and processes whose recorded
 * ancestors (up to 4 levels, as when sudo, runuser or a shell sits between)
 * include it. `startTime` (clock ticks since boot, /proc/<pid>/stat field 22)
 * pins which process of that pid; without it, a pid alive now on this host is
 * pinned to its current start time (a reused pid does not match), and a pid
 * gone matches whichever process had it.
 */
export type OwnerMatch = { taskId: string } | { pid: number; startTime?: number; host?: string };

export interface UsingOptions extends WaitOptions {
  /** Wait for the locks instead of failing with ELOCKED. Default false. */
  wait?: boolean;
}

export interface KeepAliveOptions {
  /** Lease length each renewal sets, ms from the renewal (database time). Default: the lease's own length (its ttlMs, or the table's). */
  ttlMs?: number;
  /** Renewal period, ms. Default a third of ttlMs; 5,000 for a lease without expiry (then it only checks that the lease is still held). */
  periodMs?: number;
}

/**
 * A lease kept alive: renewed (or, without expiry, checked) every periodMs
 * until stopped. `signal` aborts, with a NotHeldError as its reason, when the
 * lease is lost: released by someone else (forced, reaped, wiped, owner),
 * taken over, or not renewed before it expired.
 */
export interface KeepAlive {
  readonly signal: AbortSignal;
  /** Stops renewing and waits for a renewal in flight. The lease stays held: release it. */
  stop(): Promise<void>;
}

export interface LockTableOptions<C = typeof LockTypes> {
  /**
   * A mysql2 or mysql pool, a Queryable, or a mysql:// URI (docs/shared-database.md). A pool stays yours; a URI's pool is closed by close().
   * For a Galera cluster: a list of URIs, one per node, the preferred writer first (or a mysql2 PoolCluster, its
   * nodes in the order added): every statement goes to the first node that works (see docs/galera.md).
   */
  db: unknown;
  /** The lock table: 1-64 characters of A-Z a-z 0-9 _. Default 'locks'. migrate() must have been run for it. */
  table?: string;
  /** The row that holds this table's locks. Default 'platform'. */
  space?: string;
  /** Recorded with every lock this table takes. */
  owner?: { taskId?: string };
  /** The catalogue names are typed and typed from. Default LockTypes. */
  types?: C;
  /**
   * Lease length (ms, database time) of every acquisition that gives none.
   * For workers whose death cannot be judged where others run (another host
   * or pid namespace): using() renews it while the work runs. Default none.
   */
  ttlMs?: number;
  /**
   * Refuse names outside the catalogue at run time: acquire, tryAcquire, wait
   * and using fail with EINVALIDNAME naming the builder to use. For callers the
   * compiler does not check (JavaScript, names from configuration). Default false.
   */
  strictNames?: boolean;
  /** Pool size when `db` is a URI. Default 4. */
  poolSize?: number;
  /** Lock statements in flight at most; acquires and releases queued behind them go as one statement. Default 2 (at most poolSize for a URI). */
  maxInFlight?: number;
  /** Plain acquires and releases as one conditional statement each. Default true; false only to compare. */
  fastPath?: boolean;
  retry?: { baseMs?: number; capMs?: number; deadlineMs?: number };
  /** wait()'s poll, and how long a waiter's place in line lasts unless renewed (ms; default 10,000; see docs/lock-kinds.md). */
  wait?: { pollMinMs?: number; pollMaxMs?: number; intentTtlMs?: number };
}
