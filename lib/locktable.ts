import { AsyncLocalStorage } from 'node:async_hooks';
import createDebug from 'debug';
import { applied, canJoin, CLOCK_TOLERANCE_MS, ownerPath, planFast, settleFast, type BatchContext, type Member, type Outcome } from './batch.js';
import { Bound, watchAbort } from './bound.js';
import { DbClock } from './clock.js';
import { Causal, NodeList, openNodes } from './cluster.js';
import { BOUND_CODES, boundedDb, connectionsSettled, openDb, quoteTable, type Conn, type Db } from './db.js';
import {
  emptyDocument,
  entryOf,
  groupOf,
  fromStoredOwner,
  lineOf,
  ownerKey,
  parseDocument,
  strayOwnerRecords,
  serializeDocument,
  toHolder,
  toStoredOwner,
  toWaiting,
  type Entry,
  type Intent,
  type StoredOwner,
  type LockDocument,
} from './document.js';
import {
  ClosedError,
  ContendedError,
  DatabaseError,
  InvalidOptionError,
  LockedError,
  NotHeldError,
  TimeoutError,
  AbortError,
  DeadlockError,
  describeHolder,
  type Holder,
  type Waiting,
  LockError,
} from './errors.js';
import { EventSink, type LockEventKind, type LockEvents } from './events.js';
import { isAmbiguous, isTransient, toLockError, toUnresolvedError } from './faults.js';
import { Gate, type Expiry } from './gate.js';
import { Keeper } from './keepalive.js';
import { parseLease, type Lease } from './lease.js';
import { Leftovers } from './leftovers.js';
import { confirmRelease, heldUnder, settleLost } from './settle.js';
import { judge, judgeEntry, type Liveness } from './liveness.js';
import type { LockMetrics } from './metrics.js';
import { assertName, LockTypes, MAX_NAME_LENGTH, normalizeNames, notInCatalogue, type LockNameOf, type PlatformLockName } from './names.js';
import { MAX_TTL_MS, resolveCall, resolveOptions, splitUsingOptions, type AcquireOptions, type ResolvedOptions, type WaitOptions } from './options.js';
import { nonce as newNonce } from './nonce.js';
import { currentOwner, localView, MAX_PID, type LocalView, type Owner } from './owner.js';
import { backoff } from './retry.js';
import { createSpace, dropOwnerRecord, fastWrite, readNow, readSpace, readSpaceLocked, readVersion, writeIfVersion, type Snapshot } from './store.js';
import * as T from './transitions.js';
import { shouldWake, watchCandidate, type Watched } from './watch.js';

/** ER_BAD_FIELD_ERROR: a column the statement names does not exist. */
const BAD_FIELD = 1054;

const log = {
  acquire: createDebug('locktable:acquire'),
  release: createDebug('locktable:release'),
  wait: createDebug('locktable:wait'),
  reap: createDebug('locktable:reap'),
  retry: createDebug('locktable:retry'),
};

export type { Lease } from './lease.js';

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

/** Everything of one acquisition that every lease object of it shares. */
interface Held {
  readonly nonce: string;
  readonly names: readonly string[];
  readonly token: number;
  readonly owner: Owner;
  /** Database ms. */
  readonly acquiredAt: number;
  /** The lease's length as last set, for renewals; undefined: it does not expire. */
  ttlMs: number | undefined;
  /** Database ms, as last known here. */
  expiresAt: number | undefined;
  /**
   * When it certainly runs out unless renewed, in local monotonic ms
   * (performance.now()): from a moment before the database read the time it
   * counted the lease from, so never later than the database's expiry.
   */
  localExpiresAt: number | undefined;
  released: boolean;
  /** The renewal period keepAlive() was given, ms; undefined: a third of ttlMs. */
  periodMs?: number | undefined;
  /** Why it was lost, once a renewal, an extend or the expiry said so. */
  lost?: NotHeldError;
  keeper?: Keeper;
}

/**
 * The nonces of the leases whose using() work is running in this async
 * context: a wait() made from inside that work on one of their names could
 * only end when the work does, which waits for it.
 */
const working = new AsyncLocalStorage<ReadonlySet<string>>();

/** Default check period of a lease kept alive that does not expire, ms. */
const CHECK_MS = 5_000;

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

type Step<R> = { write?: LockDocument; result: R };

/** How #mutate settles a write whose reply was lost (the connection broke after it was sent). */
interface Settle<R> {
  /** Told at once, with the version the lost write was to replace. */
  lost?(expected: number): void;
  /** On the next read that succeeds: the operation's result if the lost write was applied, undefined if not. */
  confirm?(doc: LockDocument, snap: Snapshot): R | undefined;
  /** A write of this operation was sent before (a one-statement write not yet settled) and may still land: the first read goes through `confirm` too. */
  pending?: boolean;
}

interface Waiter extends Watched {
  wake(): void;
}

/** A wait() of this table in line (fair waiting): its id and names, for renewal and close(). */
interface Queued {
  names: readonly string[];
  /** Whether its intent is in the document, as far as this table knows. */
  inLine: boolean;
  /** performance.now() when it got in line. */
  since: number;
}

type Blocked = { blockers: T.Blocker[]; ahead: T.Ahead[]; version: number; positions?: Record<string, number> };

/** How long an aborted or timed-out wait waits to leave the line before it returns (the rest goes on in the background), ms. */
const LEAVE_GRACE_MS = 50;

/**
 * Named locks of one space, shared by every process that uses the same row.
 * Every operation is a few short statements on any pooled connection: nothing
 * holds a connection or a transaction while a lock is held.
 */
export class LockTable<N extends string = PlatformLockName> {
  readonly space: string;
  readonly owner: Owner;
  readonly #options: ResolvedOptions;
  /**
   * Where statements go: one pool, or a node list (lib/cluster.ts); causal on
   * Galera. `raw` is the handle underneath (with its mysql2 pool, when there is
   * one), which #conn bounds per call. `end` when we opened it.
   */
  readonly #db: { pool: Causal; raw: Db; end?: () => Promise<void>; nodes?: NodeList; mysql2?: Db['mysql2'] };
  /** The lock table's name, validated and quoted for SQL. */
  readonly #table: string;
  readonly #typeOf: (name: string) => string | undefined;
  /** The catalogue, when strictNames refuses names outside it. */
  readonly #strictCatalogue: object | undefined;
  /** Every lease object this table made or validated → its acquisition: release() and extend() need not re-check them. */
  readonly #heldBy = new WeakMap<Lease, Held>();
  /** Acquisitions not yet released, by nonce: a lease rebuilt from JSON finds its own. */
  readonly #held = new Map<string, Held>();
  readonly #waiters = new Set<Waiter>();
  /** This table's wait() calls in line, by waiter id. */
  readonly #queued = new Map<string, Queued>();
  #intentTimer: NodeJS.Timeout | undefined;
  #polling = false;
  /** The version the last poll saw; -1 makes the next poll check the blockers. */
  #polledVersion = -1;
  #closed = false;
  /** close() has begun: waits end with ECLOSED instead of trying again. */
  #closing = false;
  readonly #activeWaits = new Set<Promise<void>>();
  readonly #events: EventSink;
  /** What this process may hold without a caller knowing, released in the background (see leftovers.ts). */
  readonly #leftovers = new Leftovers({
    release: (item, last) => this.#releaseNonce(item.names, item.nonce, last ? Math.min(1_000, this.#options.retry.deadlineMs) : undefined, item.maybe),
    log: log.retry,
  });
  /** The database's clock as estimated here: for the one-statement writes, and for waiters to notice expiry without a query. */
  readonly #clock = new DbClock();
  /** At most maxInFlight statements at once; acquires and releases queued behind them go as one statement. */
  readonly #gate: Gate<Member, Outcome>;
  readonly #batch: BatchContext;
  /** Whether a one-statement acquire wrote this table's owner record: close() then drops it if no lock refers to it. */
  #wroteOwnerRecord = false;

  constructor(options: LockTableOptions<unknown>) {
    this.#options = resolveOptions(options);
    this.#table = quoteTable(this.#options.table);
    const cluster = openNodes(this.#options.db, this.#options.poolSize, this.#options.retry.deadlineMs);
    if (cluster) {
      this.#db = { pool: new Causal(cluster.nodes), raw: { pool: cluster.nodes }, nodes: cluster.nodes, ...(cluster.owned ? { end: () => cluster.nodes.end() } : {}) };
    } else {
      const db = openDb(this.#options.db, this.#options.poolSize);
      this.#db = { pool: new Causal(db.pool), raw: db, ...(db.mysql2 ? { mysql2: db.mysql2 } : {}), ...(db.end ? { end: db.end } : {}) };
    }
    this.space = this.#options.space;
    this.#events = new EventSink(this.space);
    this.owner = currentOwner({ taskId: this.#options.owner.taskId });
    const types = (this.#options.types ?? LockTypes) as { typeOf(name: string): string | undefined };
    this.#typeOf = (name) => types.typeOf(name);
    this.#strictCatalogue = this.#options.strictNames ? types : undefined;
    this.#batch = { owner: toStoredOwner(this.owner) };
    this.#gate = new Gate<Member, Outcome>({
      limit: this.#options.maxInFlight,
      runBatch: async (members) => (await this.#writeFast(members)).map((value) => ({ ok: true as const, value })),
      canJoin,
      closedError: () => new ClosedError(),
    });
  }

  /**
   * Takes every name or none, or fails with ELOCKED naming each holder in the
   * way. Locks whose holder is provably dead (or whose lease expired) are taken over.
   *
   * @example
   * const lease = await locks.acquire([LockTypes.appTask(appId), LockTypes.appBackup(appId)]);
   */
  async acquire(names: N | readonly N[], options?: AcquireOptions): Promise<Lease> {
    const call = this.#resolveCall(names, options);
    const started = performance.now();
    const outcome = this.#observeAcquire('acquire', call.names, started, await this.#acquire(call.names, call.options, false, undefined, this.#bound(undefined, call.options.signal)));
    if ('lease' in outcome) return outcome.lease;
    throw new LockedError(outcome.blockers.map((b) => toHolder(b.name, b.entry)), undefined, outcome.ahead.map(waitingOf));
  }

  /** As acquire(), but resolves null when a name is held (or has waiters in line first). */
  async tryAcquire(names: N | readonly N[], options?: AcquireOptions): Promise<Lease | null> {
    const call = this.#resolveCall(names, options);
    const started = performance.now();
    const outcome = this.#observeAcquire('tryAcquire', call.names, started, await this.#acquire(call.names, call.options, false, undefined, this.#bound(undefined, call.options.signal)));
    return 'lease' in outcome ? outcome.lease : null;
  }

  /**
   * Waits until every name can be taken at once. Fair: unless `barge`, the
   * waiter gets in line for all its names at once (recorded in the document),
   * and no later acquisition takes a name it waits for; waiters are served in
   * the order they got in line (see docs/lock-kinds.md). Wakes when a
   * holder or a waiter in front releases, leaves or dies, or when a lease
   * expires. Rejects with ETIMEDOUT (naming holders and waiters in front)
   * or EABORTED, either way leaving the line; and at once with EDEADLK when
   * called from inside using() work whose lease holds a name (it would wait
   * for itself). Elsewhere a name held by another task of this process is
   * waited for like any other.
   *
   * @example
   * const lease = await locks.wait([LockTypes.BOX_UPDATE], { timeoutMs: 60_000, signal });
   */
  async wait(names: N | readonly N[], options?: WaitOptions): Promise<Lease> {
    const call = this.#resolveCall(names, options);
    const run = this.#wait(call);
    // close() lets every wait end (and leave the line) before it closes the pool.
    const settled = run.then(
      () => {},
      () => {},
    );
    this.#activeWaits.add(settled);
    void settled.then(() => this.#activeWaits.delete(settled));
    return run;
  }

  async #wait(call: { names: string[]; options: WaitOptions }): Promise<Lease> {
    const { signal, timeoutMs } = call.options;
    const startedAt = performance.now();
    const elapsed = () => performance.now() - startedAt;
    const id = call.options.barge ? undefined : newNonce();
    const timeout = (o: Blocked) => new TimeoutError(timeoutMs!, o.blockers.map((b) => toHolder(b.name, b.entry)), o.ahead.map(waitingOf));
    let reason: DequeuedReason = 'failed';
    // The last attempt that found the names taken: what a timeout reports.
    let last: Blocked | undefined;
    if (id !== undefined) this.#queued.set(id, { names: call.names, inLine: false, since: startedAt });
    try {
      for (let contended = false; ; contended = true) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (this.#closing) throw new ClosedError();
        // After a wake-up, decide from a read: every waiter of the name woke at
        // once, a read does not queue on the row lock, and only those that find
        // it free go on to write.
        // Each attempt is bounded by retry.deadlineMs, and by what is left of timeoutMs and the signal.
        const rest = timeoutMs === undefined ? Infinity : Math.max(0, timeoutMs - elapsed());
        // Woken by its timer a fraction of a ms early: out of time, not worth another attempt.
        if (last && rest < 1) throw timeout(last);
        let attempt;
        try {
          attempt = await this.#acquire(call.names, call.options, contended, id, new Bound(Math.min(this.#options.retry.deadlineMs, rest), signal));
        } catch (err) {
          // The database did not let the attempt through before the wait's own timeout: ETIMEDOUT, the fault as cause.
          if (timeoutMs !== undefined && isGiveUp(err) && elapsed() >= timeoutMs) {
            throw new TimeoutError(timeoutMs, last?.blockers.map((b) => toHolder(b.name, b.entry)) ?? [], last?.ahead.map(waitingOf) ?? [], err);
          }
          throw err;
        }
        const outcome = this.#observeAcquire('wait', call.names, startedAt, attempt, contended);
        if ('lease' in outcome) {
          log.wait('%s acquired after %d ms', call.names.join(','), Math.round(elapsed()));
          reason = 'acquired';
          return outcome.lease;
        }
        last = outcome;
        if (id !== undefined && outcome.positions) this.#inLine(id, call.names, outcome.positions);
        const inside = working.getStore();
        const own = inside ? outcome.blockers.filter((b) => inside.has(b.entry.n) && this.#held.get(b.entry.n)?.released === false) : [];
        if (own.length) throw new DeadlockError(own.map((b) => toHolder(b.name, b.entry)));
        const left = timeoutMs === undefined ? undefined : timeoutMs - elapsed();
        if (left !== undefined && left <= 0) throw timeout(outcome);
        const woke = await this.#sleepUntilChange(outcome.version, outcome.blockers, left, signal, outcome.ahead);
        if (!woke && timeoutMs !== undefined && elapsed() >= timeoutMs) throw timeout(outcome);
      }
    } catch (err) {
      reason = err instanceof TimeoutError ? 'timeout' : err instanceof AbortError ? 'aborted' : err instanceof ClosedError ? 'closed' : 'failed';
      throw err;
    } finally {
      // Leaving the line is a write. A wait that ends leaves the line before
      // it settles, so that what the caller does next (an acquire) no longer
      // finds its intent; but an abort or a timeout does not wait for it past
      // LEAVE_GRACE_MS (the database may be what ran out the time): then it
      // goes on in the background, and the intent expires on its own if it
      // cannot be dropped.
      if (id !== undefined) {
        const leaving = this.#leaveLine(id, reason);
        if (reason === 'aborted' || reason === 'timeout') {
          // close() waits for it with the waits themselves.
          const tracked: Promise<void> = leaving.finally(() => this.#activeWaits.delete(tracked));
          this.#activeWaits.add(tracked);
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([tracked, new Promise<void>((r) => (timer = setTimeout(r, LEAVE_GRACE_MS)))]);
          clearTimeout(timer);
        } else await leaving;
      }
    }
  }

  /**
   * Releases what the lease still holds (any lease object of the acquisition:
   * the one acquire() returned, one extend() returned, one rebuilt from JSON),
   * stopping its renewal first. Fails with ENOTHELD (saying why: reaped,
   * wiped, taken by another, expired…) for names it no longer held, or when
   * the lease was lost while kept alive; what it still held is released all
   * the same. Releasing twice is a no-op. EINVALIDOPTION for what is not a lease.
   */
  async release(lease: Lease): Promise<void> {
    const held = this.#heldOf(lease);
    if (held.released) return;
    // Only when there is one: an await here would let statements queued after this release go before it.
    if (held.keeper) await held.keeper.stop();
    let outcome: Pick<T.ReleaseOutcome, 'released' | 'missing'> | undefined;
    // One bound for the whole call: the one statement, and the read-decide-write after it.
    const bound = this.#bound();
    try {
      // One statement first (with whatever else is queued); if it is refused
      // (an entry gone or not ours), read and decide, which says why.
      if (this.#options.fastPath) {
        // Given up at the bound while its statement ran: the catch below keeps releasing in the background.
        const fast = await this.#withinBound(this.#gate.submit({ kind: 'release', names: held.names, nonce: held.nonce }, this.#expiry(bound, 'release')), bound, 'release');
        if (fast.kind === 'released') outcome = { released: fast.names, missing: [] };
        // Its statement may still land (sent to a node statements no longer go to): the read confirms first.
        else if (fast.kind === 'refused' && fast.remnantAt !== undefined) outcome = await this.#releaseFromRead('release', held.names, held.nonce, bound, true);
      }
      outcome ??= await this.#releaseFromRead('release', held.names, held.nonce, bound);
    } catch (err) {
      // The database did not let us release in time: the lock would stay held
      // by this live process, which no one reaps. Keep trying in the background;
      // a later release(lease) is then a no-op.
      if (isGiveUp(err)) this.#leftovers.add({ names: held.names, nonce: held.nonce, done: () => this.#settled(held) });
      throw err;
    }
    this.#settled(held);
    if (outcome.released.length) {
      if (log.release.enabled) log.release('%s (token %d)', outcome.released.join(','), held.token);
      this.#event('released', { space: this.space, names: outcome.released, token: held.token, owner: held.owner, heldMs: Math.max(0, (this.#clock.now() ?? held.acquiredAt) - held.acquiredAt) });
      this.#wakeWaiters();
    }
    if (outcome.missing.length) {
      const names = outcome.missing.map((m) => m.name);
      const reason = outcome.missing[0]!.reason;
      const heldBy = outcome.missing.flatMap((m) => (m.heldBy ? [toHolder(m.name, m.heldBy)] : []));
      // A loss the renewal already reported is not counted twice.
      if (!held.lost) this.#event('lost', { space: this.space, op: 'release', names, token: held.token, reason, heldBy });
      throw new NotHeldError(names, reason, heldBy);
    }
    // Released, but the work was told the lease was lost (it ran out before a renewal): say so.
    if (held.lost) throw held.lost;
  }

  /**
   * Acquires, runs `fn(lease, signal)`, and always releases. By default fails
   * at once with ELOCKED when a name is held; `{ wait: true }` waits (with
   * `timeoutMs`, `signal`). With a `ttlMs` (or the table's), the lease is
   * renewed every third of it while `fn` runs (see keepAlive()); `signal`
   * aborts, with a NotHeldError as its reason, if the lease is lost
   * meanwhile: the work should stop and not publish what it did.
   *
   * When `fn` throws, its error is what using() throws; if the release failed
   * too, that failure is attached to it as `releaseError` (or, when the thrown
   * value cannot carry it, both come as an AggregateError). A release that
   * could not reach the database is retried in the background.
   * EINVALIDOPTION, before anything is acquired, when `fn` is not a function.
   *
   * @example
   * await locks.using([LockTypes.fullBackupTask(siteId)], async (lease, signal) => {
   *   await backup(siteId, { fencingToken: lease.token, signal });
   * }, { ttlMs: 30_000 });
   */
  async using<T>(names: N | readonly N[], fn: (lease: Lease, signal: AbortSignal) => Promise<T> | T, options: UsingOptions = {}): Promise<T> {
    if (typeof fn !== 'function') {
      throw new InvalidOptionError(`using: the work is a function, got ${fn === null ? 'null' : typeof fn}: using(names, async (lease, signal) => …, options)`);
    }
    const { wait, rest } = splitUsingOptions(options);
    // acquire() honours signal, and validates (and ignores) timeoutMs too: a bad one is refused, not silently dropped.
    const lease = wait ? await this.wait(names, rest) : await this.acquire(names, rest);
    let kept: KeepAlive;
    try {
      kept = this.keepAlive(lease);
    } catch (err) {
      await this.release(lease).catch(() => {});
      throw err;
    }
    let result: T;
    try {
      const nonces = new Set(working.getStore());
      nonces.add(lease.nonce);
      result = await working.run(nonces, () => fn(lease, kept.signal));
    } catch (workError) {
      try {
        await this.release(lease);
      } catch (releaseError) {
        throw withReleaseError(workError, releaseError);
      }
      throw workError;
    }
    await this.release(lease);
    return result;
  }

  /**
   * Keeps a lease alive: renews it (extend(), database time) every `periodMs`
   * until it is released or stop() is called; a renewal that fails for a
   * transient reason (a connection the server closed) is retried on another
   * connection. `signal` aborts with a NotHeldError (reason `forced`,
   * `reaped`, `wiped`, `owner`, `taken` or `expired`) when the lease is lost,
   * and a `lost` event is published at that moment. A lease without expiry is
   * only checked, every 5 s by default. Calling it again for the same
   * acquisition returns the same renewal while it runs (a new one after
   * stop()). Timers do not keep the process alive. EINVALIDOPTION for a bad
   * lease or option; ENOTHELD for a lease released or already lost; ECLOSED
   * after close().
   *
   * @example
   * const lease = await locks.acquire(LockTypes.appBackup(appId), { ttlMs: 30_000 });
   * const { signal } = locks.keepAlive(lease);
   * try { await backup(appId, { signal }); } finally { await locks.release(lease); }
   */
  keepAlive(lease: Lease, options: KeepAliveOptions = {}): KeepAlive {
    const held = this.#heldOf(lease);
    if (!options || typeof options !== 'object') throw new InvalidOptionError('keepAlive: options are { ttlMs?, periodMs? }');
    const { ttlMs, periodMs, ...unknown } = options;
    if (Object.keys(unknown).length) throw new InvalidOptionError(`keepAlive: unknown option ${Object.keys(unknown)[0]}`);
    if (ttlMs !== undefined && (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS)) {
      throw new InvalidOptionError(`keepAlive: ttlMs is a positive integer number of milliseconds up to ${MAX_TTL_MS}`);
    }
    if (periodMs !== undefined && (!Number.isInteger(periodMs) || periodMs < 1 || periodMs > 2_147_483_647)) {
      throw new InvalidOptionError('keepAlive: periodMs is a positive integer number of milliseconds');
    }
    // Closing counts: close() stops the renewals that exist when it starts.
    if (this.#closed || this.#closing) throw new ClosedError();
    if (held.released) throw new NotHeldError([...held.names], 'released');
    if (held.lost) throw held.lost;
    // A renewal stopped with stop() is not one to hand out again: a new one starts.
    if (held.keeper && !held.keeper.stopped) return keepAliveOf(held.keeper);
    const ttl = ttlMs ?? held.ttlMs;
    if (ttl === undefined && held.expiresAt !== undefined) {
      throw new InvalidOptionError('keepAlive: pass { ttlMs }: this lease expires, and was not acquired or extended by this table, so its length is not known here');
    }
    if (ttl !== undefined && periodMs !== undefined && periodMs >= ttl) {
      throw new InvalidOptionError(`keepAlive: periodMs (${periodMs}) must be shorter than the lease (${ttl} ms), or it runs out between renewals`);
    }
    held.ttlMs = ttl;
    held.periodMs = periodMs;
    held.keeper = new Keeper(
      {
        names: held.names,
        periodMs: periodOf(held),
        // The lease's length as last set: an extend(lease, null) meanwhile leaves only checks to do.
        renew: (deadlineMs) => this.#renew(held, held.ttlMs, deadlineMs),
        onLost: (err) => {
          held.lost = err;
          this.#event('lost', { space: this.space, op: 'keepAlive', names: err.names, token: held.token, reason: err.reason, heldBy: err.heldBy });
        },
      },
      held.localExpiresAt,
    );
    return keepAliveOf(held.keeper);
  }

  /**
   * Rebuilds a lease from its JSON (`JSON.stringify(lease)`, as a string or
   * parsed), validated, for release(), extend() or keepAlive() in another
   * process. It is the same lease as the original. EINVALIDOPTION when it is
   * not a lease, or is one of another space.
   *
   * @example
   * // server: child.send({ lease: JSON.stringify(lease) }); task:
   * await locks.release(locks.lease(message.lease));
   */
  lease(json: unknown): Lease {
    const lease = parseLease(json);
    return this.#issue(lease, this.#heldOf(lease));
  }

  /**
   * Sets a new lease length (from now, database time) on every name the lease
   * holds, or `null` to make it last until released. Returns the renewed lease.
   */
  async extend(lease: Lease, ttlMs: number | null): Promise<Lease> {
    const held = this.#heldOf(lease);
    // Bounded like acquire()'s: an expiry past 2^53 would be written as an inexact number the document refuses.
    if (ttlMs !== null && (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS)) {
      throw new InvalidOptionError(`extend: ttlMs is a positive integer number of milliseconds up to ${MAX_TTL_MS}, or null`);
    }
    // A lease the work was told it lost stays lost, even where the database would still renew it.
    if (held.lost) throw held.lost;
    const expiresAt = await this.#extend(held, ttlMs === null ? undefined : ttlMs, 'extend');
    held.keeper?.renewed(held.localExpiresAt, periodOf(held));
    const { expiresAt: _old, ...rest } = this.#leaseOf(held, lease);
    const renewed: Lease = expiresAt === undefined ? { ...rest } : { ...rest, expiresAt: new Date(expiresAt) };
    return this.#issue(renewed, held);
  }

  /** One renewal of a kept-alive lease: resolves with its new expiry in local monotonic ms. */
  async #renew(held: Held, ttlMs: number | undefined, deadlineMs: number): Promise<number | undefined> {
    if (ttlMs === undefined) {
      // No expiry: only check that it is still ours.
      const r = await this.#gate.run(() => this.#mutate('keepAlive', (doc) => ({ result: T.release(doc, held.names, held.nonce) }), {}, deadlineMs));
      if (r.missing.length) throw notHeld(r.missing);
      return undefined;
    }
    await this.#extend(held, ttlMs, 'keepAlive', deadlineMs);
    return held.localExpiresAt;
  }

  /** Sets the expiry (database ms from now; undefined: none) of what `held` holds; ENOTHELD, and the lease lost, when it holds nothing. */
  async #extend(held: Held, ttlMs: number | undefined, op: 'extend' | 'keepAlive', deadlineMs?: number): Promise<number | undefined> {
    // Before any read of this renewal: the database's `now` it counts from is later.
    const sent = performance.now();
    const outcome = await this.#gate.run(() =>
      this.#mutate(
        op,
        (doc, snap) => {
          const expiresAt = ttlMs === undefined ? undefined : snap.now + ttlMs;
          const r = T.extend(doc, held.names, held.nonce, expiresAt, snap.now);
          return r.missing.length ? { result: { ...r, expiresAt } } : { write: r.doc, result: { ...r, expiresAt } };
        },
        {},
        deadlineMs,
      ),
    );
    if (outcome.missing.length) {
      const err = notHeld(outcome.missing);
      if (op === 'extend') {
        this.#event('lost', { space: this.space, op, names: err.names, token: held.token, reason: err.reason, heldBy: err.heldBy });
        held.keeper?.lose(err);
        held.lost ??= err;
      }
      throw err;
    }
    held.ttlMs = ttlMs;
    held.expiresAt = outcome.expiresAt;
    held.localExpiresAt = ttlMs === undefined ? undefined : sent + ttlMs;
    return outcome.expiresAt;
  }

  /** Releases every lock of the space: the platform server's start-up wipe. Returns what it removed. */
  async releaseAll(): Promise<Holder[]> {
    return this.#removeWhere('wiped', () => true);
  }

  /**
   * Releases every lock of one owner, live or not: the server's cleanup when
   * a task exits. `{ taskId }` matches the task id the owner's table was
   * given. `{ pid }` matches the process tree started as `pid` on this host
   * (or `host`): locks of that process, and of processes below it up to 4
   * levels (a task spawned through sudo, runuser, setpriv or a shell), as
   * recorded when they started; see OwnerMatch for `startTime`. Resolves with
   * what it removed. EINVALIDOPTION for anything else.
   */
  async releaseByOwner(match: OwnerMatch): Promise<Holder[]> {
    const m = match as { taskId?: unknown; pid?: unknown; host?: unknown; startTime?: unknown };
    if (m && typeof m.taskId === 'string' && m.taskId && m.pid === undefined && m.startTime === undefined && m.host === undefined) {
      return this.#removeWhere('owner', (_, e) => e.o.t === m.taskId);
    }
    if (m && isPid(m.pid) && m.taskId === undefined) {
      const pid = m.pid;
      const host = m.host === undefined ? this.owner.host : m.host;
      if (typeof host !== 'string') throw new InvalidOptionError('releaseByOwner: host is a string');
      if (m.startTime !== undefined && !(Number.isSafeInteger(m.startTime) && (m.startTime as number) >= 0)) {
        throw new InvalidOptionError('releaseByOwner: startTime is the process start time in clock ticks since boot (/proc/<pid>/stat field 22), an integer ≥ 0');
      }
      let start = m.startTime as number | undefined;
      // A pid alive here now is that process: a record of an earlier process with the same pid is not its.
      if (start === undefined && host === this.owner.host) start = localView().probe(pid)?.startTime;
      return this.#removeWhere('owner', (_, e) => e.o.h === host && ownedByTree(e.o, pid, start));
    }
    throw new InvalidOptionError(`releaseByOwner: pass exactly one of { taskId: string } or { pid: integer 1..${MAX_PID}, startTime?, host? }`);
  }

  /**
   * Releases every lock whose owner is provably dead (see judge()): a gone or
   * reused pid of this boot, another boot of this machine, or an expired
   * lease. Never a live owner's, and never one it cannot judge. Also drops the
   * owner records no lock refers to any more (left by processes that exited
   * without close()), so an idle space's document returns to its small size.
   */
  async reapDead(): Promise<Holder[]> {
    const here = localView();
    let now = 0;
    const removed = await this.#removeWhere(
      'reaped',
      (_, e) => judgeEntry(e, now, here) === 'dead',
      (snap) => (now = snap.now),
      true,
    );
    if (removed.length) log.reap('released %s', removed.map((h) => h.name).join(','));
    return removed;
  }

  /** A snapshot of every held lock, with each owner's liveness as judged from here. Advisory: it may change at once. */
  async list(): Promise<LockInfo[]> {
    const bound = this.#bound();
    const { doc, snap } = await this.#gate.run(() => this.#mutate('list', (doc, snap) => ({ result: { doc, snap } }), {}, bound), this.#expiry(bound, 'list'));
    const here = localView();
    const infos = Object.entries(doc.l).map(([name, e]) => lockInfo(name, e, snap.now, here));
    for (const [name, group] of Object.entries(doc.s ?? {})) {
      for (const h of group.h) {
        const info: LockInfo = { ...lockInfo(name, { ...h, t: group.t }, snap.now, here), mode: 'shared' };
        if (group.c !== undefined) info.limit = group.c;
        infos.push(info);
      }
    }
    // Stable: the holders of one group keep their order (oldest first).
    return infos.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Every waiter in line, name by name in name order and in line order
   * within a name (`position`, 1 = first), with its owner's liveness as
   * judged from here. Intents already expired are left out. Advisory.
   */
  async listWaiters(): Promise<WaiterInfo[]> {
    const { doc, snap } = await this.#gate.run(() => this.#mutate('list', (doc, snap) => ({ result: { doc, snap } })));
    const here = localView();
    const names = new Map(T.waiters(doc).map((w) => [w.id, w.names]));
    const out: WaiterInfo[] = [];
    for (const name of Object.keys(doc.q ?? {}).sort()) {
      for (const a of T.waitersAhead(doc, name, undefined, snap.now)) {
        const liveness = judge(fromStoredOwner(a.intent.o), a.intent.e, snap.now, here);
        out.push({ ...waitingOf(a), names: names.get(a.intent.n) ?? [name], liveness, ageMs: Math.max(0, snap.now - a.intent.a) });
      }
    }
    return out;
  }

  /**
   * Releases one lock by name, whoever holds it: the operator's way out of a
   * stuck lock. Unless `force` is set it refuses with ELOCKED when the owner is
   * not provably dead (alive, or on another host), and the error's holder says
   * whose it is and its liveness. Resolves with the lock it removed, or null
   * when the name was not held. The holder's later release() reports
   * ENOTHELD 'forced' (or 'reaped' when its owner was dead).
   *
   * @example
   * await locks.releaseName('box_update');                  // only if its owner is dead
   * await locks.releaseName('box_update', { force: true }); // whoever holds it
   */
  async releaseName(name: N | string, options: { force?: boolean } = {}): Promise<LockInfo | null> {
    assertName(name);
    if (!options || typeof options !== 'object' || (options.force !== undefined && typeof options.force !== 'boolean')) {
      throw new InvalidOptionError('releaseName: options are { force?: boolean }');
    }
    const here = localView();
    const bound = this.#bound();
    const outcome = await this.#gate.run(() =>
      this.#mutate<null | { refused: LockInfo } | { removed: LockInfo; entry: Entry; why: 'reaped' | 'forced' }>('forced', (doc, snap) => {
        const entry = entryOf(doc, name);
        if (!entry) return { result: null };
        const info = lockInfo(name, entry, snap.now, here);
        if (info.liveness !== 'dead' && !options.force) return { result: { refused: info } };
        const why = info.liveness === 'dead' ? 'reaped' : 'forced';
        return { write: T.removeWhere(doc, (n) => n === name, why, snap.now).doc, result: { removed: info, entry, why } };
      }, {}, bound),
      this.#expiry(bound, 'releaseName'),
    );
    if (outcome === null) return null;
    if ('refused' in outcome) {
      const h = outcome.refused;
      const why = h.liveness === 'alive' ? 'is alive' : 'cannot be judged from here (another machine or pid namespace)';
      throw new LockedError([h], `${name} is held by ${describeHolder(h)}, whose owner ${why}: pass { force: true } to release it anyway`);
    }
    log.reap('releaseName %s (%s, owner %s)', name, outcome.why, outcome.removed.liveness);
    this.#reaped('releaseName', [{ name, entry: outcome.entry, why: outcome.why }]);
    this.#wakeWaiters();
    return outcome.removed;
  }

  /**
   * Counters and wait/hold-time summaries of this table since it was created;
   * a copy. Per process: each worker has its own. See also the diagnostics
   * channels in `LockChannels`.
   *
   * @example
   * const { counters, waitMs } = locks.metrics(); // counters.contended, waitMs.p99, …
   */
  metrics(): LockMetrics {
    return this.#events.snapshot();
  }

  /**
   * The one operation that overwrites an invalid document: replaces it with an
   * empty one, and only if its text is still exactly `expectedRaw` (the `raw`
   * of the ECORRUPT error you inspected). Every lock in it is lost.
   */
  async repair(expectedRaw: string): Promise<{ replaced: string }> {
    if (typeof expectedRaw !== 'string') throw new InvalidOptionError('repair: pass the raw text of the ECORRUPT error you inspected');
    try {
      const bound = this.#bound();
      return await this.#gate.run(() => this.#repair(expectedRaw, bound), this.#expiry(bound, 'repair'));
    } catch (err) {
      throw toLockError(err, 'repair');
    }
  }

  async #repair(expectedRaw: string, bound: Bound): Promise<{ replaced: string }> {
    const db = this.#conn(bound);
    const snap = await this.#read(db);
    if (snap.raw !== expectedRaw) {
      throw new InvalidOptionError('repair: the stored document is not the text you inspected; read the new ECORRUPT error and try again');
    }
    if (!(await writeIfVersion(db, this.#table, this.space, snap.version, serializeDocument(emptyDocument())))) {
      throw new InvalidOptionError('repair: the document changed while repairing; inspect it again');
    }
    return { replaced: snap.raw };
  }

  /**
   * Closes the pool if this table opened it (from a URI); a pool you passed
   * stays open. Pending waits fail with ECLOSED. Renewals stop and leases stay
   * held; the signal of a lease still kept alive aborts (reason expired) when
   * it runs out.
   */
  async close(): Promise<void> {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    this.#wakeWaiters();
    // Pending waits end with ECLOSED and leave the line (this process stays
    // alive, so no one else would drop their intents before they expire).
    await Promise.allSettled([...this.#activeWaits]);
    // Renewals stop (their leases stay held until they expire or are released
    // elsewhere); work may still run under them, so their signals still abort
    // when they run out.
    await Promise.all([...this.#held.values()].map((h) => h.keeper?.stopRenewing()));
    // What is in flight finishes first (each within its bound): a statement a
    // caller gave up on (an abort) may still land and leave a leftover.
    await this.#gate.whenIdle();
    // One last try at what is still to be released, while the pool is open.
    await this.#leftovers.flush();
    this.#closed = true;
    if (this.#intentTimer) clearTimeout(this.#intentTimer);
    this.#gate.close();
    this.#wakeWaiters();
    if (this.#wroteOwnerRecord) {
      // Best effort: a record left behind costs ~150 bytes until the next full write drops it.
      const key = ownerKey(this.#batch.owner);
      await dropOwnerRecord(this.#conn(new Bound(Math.min(1_000, this.#options.retry.deadlineMs))), this.#table, this.space, ownerPath(key), key).catch((err: Error) =>
        log.release('could not drop the owner record: %s', err.message),
      );
    }
    if (this.#db.end) {
      if (this.#db.mysql2) await connectionsSettled(this.#db.mysql2);
      await this.#db.end();
    }
  }

  // ---------------------------------------------------------------------------

  /** `waiter`: the id of the wait() this attempt belongs to, which gets (or stays) in line when blocked. `bound`: when it gives up. */
  async #acquire(names: string[], options: AcquireOptions, readFirst = false, waiter?: string, bound: Bound = this.#bound()): Promise<{ lease: Lease } | Blocked> {
    let nonce = newNonce();
    // Writes of this acquisition whose reply was lost: nonce → the version each
    // was to replace. Any of them may have been applied, or may still be (a
    // statement cut off from its client can finish on the server after the
    // client has re-read), so every read looks for them, not just the next one.
    const lost = new Map<string, number>();
    const owner = this.#batch.owner;
    const here = localView();
    // The catalogue is the host's code: what it returns is checked here, before
    // any SQL, since a type the document schema refuses would make the row
    // unreadable (ECORRUPT) for every process once written.
    const types = new Map(names.map((n) => [n, checkedType(n, () => this.#typeOf(n), this.#strictCatalogue)]));
    const typeOf = (n: string) => types.get(n)!;
    // Before any statement of this attempt: the acquisition time the database records is later
    // (a one-statement write's estimate of it by at most CLOCK_TOLERANCE_MS earlier).
    const sent = performance.now();
    const leaseFrom = (held: string, entries: Record<string, Entry>, fast = false): Lease => {
      const e = entries[names[0]!]!;
      const lease: Lease = { space: this.space, names: Object.freeze([...names]), token: e.f, nonce: held, owner: this.owner, acquiredAt: new Date(e.a) };
      if (e.e !== undefined) (lease as { expiresAt?: Date }).expiresAt = new Date(e.e);
      const h = this.#newHeld(lease, options.ttlMs);
      if (options.ttlMs !== undefined) h.localExpiresAt = sent + options.ttlMs - (fast ? CLOCK_TOLERANCE_MS : 0);
      return lease;
    };
    // One statement first, with whatever else is queued (lib/batch.ts). If it
    // is refused — a name held, or anything else the read-decide-write path
    // must judge — nothing was written, and that path decides below.
    // Shared and semaphore acquisitions always read and decide: the one statement serves plain exclusive ones only.
    const shared = options.mode === 'shared' || options.limit !== undefined;
    const mode = shared ? ('shared' as const) : undefined;
    if (this.#options.fastPath && !readFirst && !shared) {
      let fast: Outcome;
      try {
        // A statement that lands after the caller gave up at its bound holds the
        // names for no one: released in the background.
        const late = () => this.#leftovers.add({ names, nonce });
        fast = await this.#withinBound(
          this.#gate.submit({ kind: 'acquire', names, nonce, ttlMs: options.ttlMs, types }, this.#expiry(bound, 'acquire')),
          bound,
          'acquire',
          (o) => o.kind === 'acquired' && late(),
          (err) => err instanceof DatabaseError && err.outcomeUnknown && this.#leftovers.add({ names, nonce, maybe: true }),
        );
      } catch (err) {
        // A statement that could not be settled may hold the names: released in the background.
        if (err instanceof DatabaseError && err.outcomeUnknown) this.#leftovers.add({ names, nonce, maybe: true });
        throw err;
      }
      if (fast.kind === 'acquired') {
        const lease = leaseFrom(nonce, fast.entries, true);
        if (log.acquire.enabled) log.acquire('%s token %d', names.join(','), lease.token);
        return { lease };
      }
      if (fast.kind === 'refused' && fast.remnantAt !== undefined) {
        // It did apply, but ran out or lost a name since: acquire anew, and what is left of it is ours to replace.
        lost.set(nonce, fast.remnantAt);
        nonce = newNonce();
      }
    }
    type Won = { nonce: string; entries: Record<string, Entry>; removed?: T.Removed[] };
    let outcome: Blocked | Won | { conflicts: T.Conflict[] };
    try {
      outcome = await this.#gate.run(() => this.#mutate<Blocked | Won | { conflicts: T.Conflict[] }>(
        'acquire',
        (doc, snap) => {
          const settled = settleLost(doc, snap, names, lost);
          if (settled) return { result: { nonce: settled, entries: Object.fromEntries(names.map((n) => [n, heldUnder(doc, n, settled)!])) } };
          const dead = new Set(
            names.filter((n) => {
              const held = entryOf(doc, n);
              if (held === undefined) return false;
              // A remnant of our own lost write (the rest of it removed since): ours to replace.
              if (lost.has(held.n)) return true;
              return judgeEntry(held, snap.now, here) === 'dead';
            }),
          );
          // Waiters in line whose owner is provably dead leave it in this write.
          const deadWaiters = new Set<string>();
          for (const n of names) {
            for (const i of lineOf(doc, n)) if (i.n !== waiter && judge(fromStoredOwner(i.o), i.e, snap.now, here) === 'dead') deadWaiters.add(i.n);
          }
          // Shared holders judged dead (or remnants of our own lost writes) are taken over too.
          const deadShares = new Set<string>();
          for (const n of names) {
            const group = groupOf(doc, n);
            for (const h of group?.h ?? []) if (lost.has(h.n) || judgeEntry(h, snap.now, here) === 'dead') deadShares.add(h.n);
          }
          const input = { names, typeOf, owner, nonce, token: snap.version + 1, now: snap.now, ttlMs: options.ttlMs, dead, deadShares, waiter, barge: options.barge, deadWaiters, mode, limit: options.limit };
          const r = T.acquire(doc, input);
          if (!r.ok) {
            if (r.conflicts) return { result: { conflicts: r.conflicts } };
            const blocked = { blockers: r.blockers, ahead: r.ahead, version: snap.version };
            if (waiter === undefined || options.barge) return { result: blocked };
            const q = T.enqueue(doc, { names, waiter, owner, now: snap.now, ttlMs: this.#options.wait.intentTtlMs, deadWaiters, mode, limit: options.limit });
            if (!q.changed) return { result: blocked };
            const positions = Object.fromEntries(names.map((n) => [n, T.waitersAhead(q.doc, n, waiter, snap.now).length + 1]));
            return { write: q.doc, result: { ...blocked, version: snap.version + 1, ...(q.added ? { positions } : {}) } };
          }
          if (r.removed.length) log.reap('acquire took over %s', r.removed.map((x) => `${x.name} (${x.why})`).join(','));
          return { write: r.doc, result: { nonce, entries: r.entries, removed: r.removed } };
        },
        {
          lost: (expected) => {
            lost.set(nonce, expected);
            nonce = newNonce(); // the next attempt must not be mistaken for this one
          },
        },
        bound,
      ), this.#expiry(bound, 'acquire'));
    } catch (err) {
      if (!lost.size) throw err;
      // A lost write may hold the names, and no caller has a lease for it:
      // release it in the background, whatever the caller does next.
      for (const lostNonce of lost.keys()) this.#leftovers.add({ names, nonce: lostNonce, maybe: true });
      throw err instanceof DatabaseError && !err.outcomeUnknown ? toUnresolvedError(err.cause, 'acquire') : err;
    }
    if ('conflicts' in outcome) throw limitConflict(outcome.conflicts);
    if ('blockers' in outcome) return outcome;
    const lease = leaseFrom(outcome.nonce, outcome.entries);
    if (outcome.removed?.length) this.#reaped('acquire', outcome.removed);
    log.acquire('%s token %d', names.join(','), lease.token);
    return { lease };
  }

  /**
   * Release through read-decide-write: removes what is still held under
   * `nonce`, says why the rest is gone. `pending`: a release statement of it
   * may still land, so entries gone without a tombstone count as released.
   */
  #releaseFromRead(what: string, names: readonly string[], nonce: string, bound: Bound, pending = false): Promise<T.ReleaseOutcome> {
    return this.#gate.run(() =>
      this.#mutate(
        what,
        (doc) => {
          const r = T.release(doc, names, nonce);
          return r.released.length ? { write: r.doc, result: r } : { result: r };
        },
        { confirm: (doc) => confirmRelease(doc, names, nonce), pending },
        bound,
      ),
      this.#expiry(bound, what),
    );
  }

  /**
   * Releases whatever is still held under `nonce` (background clean-up of
   * leftovers.ts). `maybe`: a write under that nonce may still land (its
   * outcome is unknown), so finding nothing held settles it only once a write
   * of the row has committed after that read: after it the lost write can no
   * longer apply (a compare-and-swap finds another version, a one-statement
   * write is past its time, and on Galera certification refuses it). When no
   * one else writes, this release makes that write itself, the document unchanged.
   */
  async #releaseNonce(names: readonly string[], nonce: string, deadlineMs?: number, maybe = false): Promise<void> {
    const bound = this.#bound(deadlineMs);
    let clear: number | undefined;
    const outcome = maybe
      ? await this.#gate.run(
          () =>
            this.#mutate(
              'background release',
              (doc, snap) => {
                const r = T.release(doc, names, nonce);
                if (r.released.length) return { write: r.doc, result: r };
                if (clear !== undefined && snap.version > clear) return { result: r };
                clear = snap.version;
                return { write: doc, result: r };
              },
              {},
              bound,
            ),
          this.#expiry(bound, 'background release'),
        )
      : await this.#releaseFromRead('background release', names, nonce, bound);
    if (outcome.released.length) {
      log.release('%s released in the background', outcome.released.join(','));
      this.#wakeWaiters();
    }
  }

  /**
   * The gate's batch runner: the queued acquires and releases as one
   * conditional statement. Each member gets its outcome, or `refused` when the
   * statement did not apply for it (it then reads and decides on its own).
   */
  async #writeFast(members: Member[]): Promise<Outcome[]> {
    const refused = (): Outcome[] => members.map(() => ({ kind: 'refused' }));
    const { baseMs, capMs } = this.#options.retry;
    // The statement of a batch is bounded by retry.deadlineMs; each member's
    // caller gives up on its own bound (#withinBound) whatever the statement does.
    const bound = this.#bound();
    // Before the first read there is no estimate of the database's time, and
    // the host's clock is never one: read it first (once per table).
    if (!this.#clock.known) {
      try {
        await this.#clock.track(() => readNow(this.#conn(bound)));
      } catch (err) {
        if (!isTransient(err)) throw toLockError(err, 'read');
        return refused(); // nothing was written: each member decides from a read, within its own bound
      }
    }
    // On Galera: whether this attempt waits for its node to apply what the cluster committed.
    let causalWrite = false;
    for (let attempt = 0; ; attempt++) {
      const fast = planFast(members, this.#batch, this.#clock.now()!);
      if (!fast) return refused();
      this.#assertOpen();
      const sentTo = this.#db.nodes?.current;
      let version: number | undefined;
      try {
        version = await fastWrite(this.#conn(bound, causalWrite), this.#table, this.space, fast.plan);
      } catch (err) {
        if ((err as { errno?: number }).errno === BAD_FIELD) {
          // No dataCrcNow (migration 003 pending, or a table that is not ours):
          // refused before it ran, nothing written. The read decides, as for any refusal.
          log.retry('one-statement write refused by the schema (%s): deciding from a read', (err as Error).message);
          return refused();
        }
        if (!isTransient(err)) throw toLockError(err, operationOf(members));
        log.retry('one-statement write failed: %s', (err as Error).message);
        // It may have applied (cut at the bound included): settle it before anything else.
        if (isAmbiguous(err)) return this.#settleFast(members, fast, bound, sentTo);
        // Rolled back or never run (a deadlock, or on Galera a lost
        // certification; a node not ready; no connection within the bound):
        // the same statement again, on the next node if this one failed.
        // Dropping to compare-and-swap instead would compete on a version that
        // a busy row moves on every write.
        if (bound.fired()) return refused();
        this.#event('retried', { space: this.space, op: operationOf(members), attempt: attempt + 1, reason: String((err as { code?: unknown }).code ?? (err as Error).message) });
        await bound.sleep(backoff(attempt, baseMs, capMs));
        if (bound.fired()) return refused();
        continue;
      }
      if (version === undefined) {
        // Refused on a Galera node's state, which may lag: once more on the cluster's.
        if (!causalWrite && !bound.fired() && (await this.#db.pool.galera())) {
          causalWrite = true;
          continue;
        }
        log.retry('one-statement write refused (%d members): deciding from a read', members.length);
        return refused();
      }
      if (fast.plan.owner) this.#wroteOwnerRecord = true;
      return applied(members, fast, version);
    }
  }

  /**
   * A one-statement write whose reply was lost may have applied, or may still
   * apply while it waits for the row's lock. It can only as long as the row is
   * evaluated within the clock tolerance of its time (SYSDATE, see store.ts).
   * So once the server's clock is past that, a locking read — queued behind
   * the statement if it is still waiting — shows for good whether it did; its
   * own nonces say so (lib/batch.ts settleFast). Until the deadline.
   *
   * On a cluster the statement may have gone to a node that statements no
   * longer go to (`sentTo`): there it may still be certified and commit after
   * the time check, and that node may not answer for a long while. The caller
   * does not wait for it: a causal read on the current node shows the write if
   * the cluster committed it. If not, it can commit only until another write
   * of the row commits (Galera certifies a write against every write committed
   * since its node executed it, and every write of a space touches its one
   * row). So each member goes on from a read with its nonce kept "maybe
   * applied" (`remnantAt`: the version it can no longer apply after once a
   * later write commits): an acquire takes its names anew or finds the lost
   * write, a release removes what is still there.
   */
  async #settleFast(members: Member[], fast: NonNullable<ReturnType<typeof planFast>>, bound: Bound, sentTo?: number): Promise<Outcome[]> {
    const { baseMs, capMs } = this.#options.retry;
    const closesAt = fast.plan.at.ms + fast.plan.at.toleranceMs;
    const db = this.#conn(bound);
    const nodes = this.#db.nodes;
    let failure: unknown = Object.assign(new Error('no time left to settle the write'), { code: 'ETIMEDOUT' });
    for (let attempt = 0; !bound.fired(); attempt++) {
      this.#assertOpen();
      try {
        const moved = nodes !== undefined && sentTo !== undefined && nodes.current !== sentTo;
        const snap = await readSpaceLocked(db, this.#table, this.space);
        if (!snap) throw new LockError('ENOTMIGRATED', `the row of space '${this.space}' is gone`);
        if (moved) {
          const outcomes = settleFast(parseDocument(this.space, snap.raw), snap, members, fast);
          if (outcomes.some((o) => o.kind !== 'refused' || o.remnantAt !== undefined)) return outcomes;
          log.retry('settling a write sent to %s: not visible on %s; going on from a read, its nonce kept', nodes.nodes[sentTo]!.label, nodes.nodes[nodes.current]!.label);
          return members.map((_, i) => (fast.included[i] ? { kind: 'refused', remnantAt: snap.version } : { kind: 'refused' }));
        }
        if (snap.now > closesAt) return settleFast(parseDocument(this.space, snap.raw), snap, members, fast);
        await bound.sleep(closesAt - snap.now + 1);
        continue;
      } catch (err) {
        if (!isTransient(err)) throw toLockError(err, operationOf(members));
        failure = err;
      }
      await bound.sleep(backoff(attempt, baseMs, capMs));
    }
    throw toUnresolvedError(failure, operationOf(members));
  }

  /** Removes the locks `match` selects, and the waiters in line it selects (by their owner and expiry) in the same write. */
  async #removeWhere(
    why: 'wiped' | 'owner' | 'reaped',
    match: (name: string, held: { o: Entry['o']; e?: number | undefined }) => boolean,
    before?: (snap: Snapshot) => void,
    dropStrays = false,
  ): Promise<Holder[]> {
    const bound = this.#bound();
    const { removed, dropped } = await this.#gate.run(() =>
      this.#mutate(why, (doc, snap) => {
        before?.(snap);
        const r = T.removeWhere(doc, match, why, snap.now);
        const next = T.dropWaiters(r.doc, (intent, name) => match(name, intent));
        const result = { removed: r.removed, dropped: next !== r.doc };
        // A full write keeps only the owner records its entries refer to.
        const strays = dropStrays && strayOwnerRecords(snap.raw) > 0;
        return r.removed.length || result.dropped || strays ? { write: next, result } : { result };
      }, {}, bound),
      this.#expiry(bound, why),
    );
    if (dropped) this.#wakeWaiters();
    if (removed.length) {
      this.#wakeWaiters();
      this.#reaped(why === 'wiped' ? 'releaseAll' : why === 'owner' ? 'releaseByOwner' : 'reapDead', removed);
    }
    return removed.map((x) => toHolder(x.name, x.entry));
  }

  /**
   * The one write path: read (version, document, database time) → pure step →
   * compare-and-swap. A lost race or a transient fault is retried with jittered
   * backoff until the bound (retry.deadlineMs, or the caller's timeout or
   * signal): every statement, and every wait for a connection, ends with it.
   * When a write's reply was lost, `confirm` decides from the re-read document
   * whether it was applied.
   */
  async #mutate<R>(
    what: string,
    step: (doc: LockDocument, snap: Snapshot) => Step<R>,
    settle: Settle<R> = {},
    within: Bound | number = this.#options.retry.deadlineMs,
  ): Promise<R> {
    const bound = typeof within === 'number' ? this.#bound(within) : within;
    const { baseMs, capMs } = this.#options.retry;
    const db = this.#conn(bound);
    // A write was sent and its reply lost: until a read settles it, it may have been applied.
    let uncertain = settle.pending === true;
    // The last fault the database itself gave: what a give-up reports, rather
    // than the bound cutting off the attempt after it (lib/db.ts BOUND_CODES).
    let fault: unknown;
    for (let attempt = 0; ; attempt++) {
      this.#assertOpen();
      // Out of time before the first attempt (a one-statement try used it up): nothing was tried here.
      if (attempt === 0 && bound.fired()) throw this.#boundError(bound, what);
      let failure: unknown;
      try {
        const snap = await this.#read(db);
        const doc = parseDocument(this.space, snap.raw);
        if (uncertain && settle.confirm) {
          const confirmed = settle.confirm(doc, snap);
          if (confirmed !== undefined) return confirmed;
        }
        uncertain = false;
        const next = step(doc, snap);
        if (!next.write) return next.result;
        try {
          if (await writeIfVersion(db, this.#table, this.space, snap.version, serializeDocument(next.write))) return next.result;
          failure = undefined; // lost the race
        } catch (err) {
          if (isAmbiguous(err)) {
            uncertain = true;
            settle.lost?.(snap.version);
          }
          throw err;
        }
      } catch (err) {
        if (!isTransient(err)) throw toLockError(err, what);
        failure = err;
        if (!isBoundCut(err) || fault === undefined) fault = err;
      }
      const giveUp = () => {
        if (bound.fired() === 'aborted') return bound.abortError();
        if (uncertain) return toUnresolvedError(isBoundCut(failure) ? fault : failure, what);
        if (failure) return toLockError(isBoundCut(failure) ? fault : failure, what);
        return new ContendedError(attempt + 1);
      };
      if (bound.fired()) throw giveUp();
      log.retry('%s attempt %d: %s', what, attempt + 1, failure ? (failure as Error).message : 'lost the race');
      this.#event('retried', { space: this.space, op: what, attempt: attempt + 1, reason: failure ? String((failure as { code?: unknown }).code ?? (failure as Error).message) : 'lost the race' });
      await bound.sleep(backoff(attempt, baseMs, capMs));
      if (bound.fired()) throw giveUp();
    }
  }

  async #read(db: Conn): Promise<Snapshot> {
    this.#assertOpen();
    let snap = await this.#clock.track(() =>
      readSpace(db, this.#table, this.space).catch((err) => {
        throw isTransient(err) ? err : toLockError(err, 'read');
      }),
    );
    if (!snap) {
      await createSpace(db, this.#table, this.space, serializeDocument(emptyDocument()));
      snap = await this.#clock.track(() => readSpace(db, this.#table, this.space));
      if (!snap) throw new LockError('ENOTMIGRATED', `the row of space '${this.space}' could not be created`);
    }
    return snap;
  }

  // wait() support: one poller per table, however many waiters. It reads the
  // version, and when that moved whether the waiters' blockers are still there
  // (lib/watch.ts); a waiter wakes when one of its blockers is gone, when a
  // blocker is judged dead from here, or when a blocker's lease has expired by
  // the database clock.
  #sleepUntilChange(
    version: number,
    blockers: Waiter['blockers'],
    timeoutMs: number | undefined,
    signal?: AbortSignal,
    ahead: Waiter['ahead'] = [],
  ): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let unwatch: (() => void) | undefined;
      const done = (value: boolean | Error) => {
        this.#waiters.delete(waiter);
        if (timer) clearTimeout(timer);
        unwatch?.();
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      const onAbort = () => done(new AbortError(signal!.reason));
      const waiter: Waiter = { version, blockers, ahead, wake: () => done(this.#closed || this.#closing ? new ClosedError() : true) };
      if (this.#closing) return waiter.wake();
      // Aborted while the last attempt was in flight: the 'abort' event has already fired.
      if (signal?.aborted) return onAbort();
      if (timeoutMs !== undefined) timer = setTimeout(() => done(false), timeoutMs);
      if (signal?.aborted) return onAbort();
      if (signal) unwatch = watchAbort(signal, onAbort);
      this.#waiters.add(waiter);
      // It saw its blockers at another version than the last poll: the next poll must check them.
      if (version !== this.#polledVersion) this.#polledVersion = -1;
      void this.#poll();
    });
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    const { pollMinMs, pollMaxMs } = this.#options.wait;
    const here = localView();
    let interval = pollMinMs;
    try {
      while (this.#waiters.size && !this.#closed) {
        await new Promise((r) => setTimeout(r, interval));
        let seen: { version: number; same: boolean | null } | undefined;
        try {
          const since = this.#polledVersion;
          const holds = watchCandidate(this.#waiters);
          const bound = this.#bound();
          seen = await this.#gate.run(() => this.#clock.track(() => readVersion(this.#conn(bound), this.#table, this.space, since, holds)), this.#expiry(bound, 'poll'));
          if (seen && this.#polledVersion === since) this.#polledVersion = seen.version;
        } catch (err) {
          if (this.#closed) break;
          log.wait('poll failed, will retry: %s', (err as Error).message);
          interval = Math.min(pollMaxMs, interval * 2);
          continue;
        }
        // Known after the poll's read; without it (no row) expiry is not judged here.
        const now = this.#clock.now() ?? Number.NEGATIVE_INFINITY;
        let woke = 0;
        for (const w of [...this.#waiters]) {
          const holderGone =
            w.blockers.some((b) => judgeEntry(b.entry, now, here) === 'dead') ||
            (w.ahead ?? []).some((a) => judge(fromStoredOwner(a.intent.o), a.intent.e, now, here) === 'dead');
          // A missing row (never, for a migrated space) wakes everyone: the attempt says why.
          if (!seen || shouldWake(w, seen, holderGone)) {
            w.wake();
            woke++;
          }
        }
        interval = woke ? pollMinMs : Math.min(pollMaxMs, Math.ceil(interval * 1.5));
      }
    } finally {
      this.#polling = false;
    }
  }

  // Bounds: every call gives up after its own bound (lib/bound.ts).

  /** A bound of `ms` (default retry.deadlineMs) from now, and `signal`. */
  #bound(ms: number = this.#options.retry.deadlineMs, signal?: AbortSignal): Bound {
    return new Bound(ms, signal);
  }

  /**
   * The database handle for one call, every statement within `bound`
   * (boundedDb: on a mysql2 pool each statement takes its own connection; on
   * a node list, which bounds each statement itself and fails over, the
   * statement is raced against the caller's bound). Causal on Galera as
   * #db.pool is, sharing its one @@wsrep_on probe (sent through this bounded
   * handle); `writes`: conditional writes causal too.
   */
  #conn(bound: Bound, writes = false): Causal {
    return new Causal(boundedDb(this.#db.raw, bound), writes, this.#db.pool);
  }

  /** The error of a call that gave up at its bound while it waited (queued, or for a statement of others). */
  #boundError(bound: Bound, what: string): LockError {
    if (bound.fired() === 'aborted') return bound.abortError();
    return new DatabaseError(
      `${what}: gave up after ${bound.ms} ms: the database did not let it through in time (queued behind this table's ${this.#options.maxInFlight} statements in flight, no free connection in the pool, or a server that does not answer)`,
      undefined,
    );
  }

  /** For the gate: a queued call leaves the queue when its bound fires. */
  #expiry(bound: Bound, what: string): Expiry {
    return (expire) => bound.onFire(() => expire(this.#boundError(bound, what)));
  }

  /**
   * `work` (already queued or running), but given up when `bound` fires first.
   * Whatever it does later is passed to `late` / `lateError`: it can no longer
   * reach the caller.
   */
  #withinBound<V>(work: Promise<V>, bound: Bound, what: string, late?: (value: V) => void, lateError?: (err: unknown) => void): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      let over = false;
      const cancel = bound.onFire(() => {
        over = true;
        // The work left the gate's queue (else the gate's expiry would have
        // failed it first): its statement may have been sent, and may apply.
        reject(
          bound.fired() === 'aborted'
            ? bound.abortError()
            : new DatabaseError(
                `${what}: gave up after ${bound.ms} ms with its statement in flight, so whether it took effect is unknown (an acquisition that did is released in the background)`,
                undefined,
                { outcomeUnknown: true },
              ),
        );
      });
      work.then(
        (value) => {
          if (over) return late?.(value);
          over = true;
          cancel();
          resolve(value);
        },
        (err) => {
          if (over) return lateError?.(err);
          over = true;
          cancel();
          reject(err);
        },
      );
    });
  }

  // Fair waiting: a wait() in line keeps its intent alive (one write renews
  // every waiter of this table, every third of the intent's lifetime), and
  // leaves the line when it ends.
  #inLine(id: string, names: readonly string[], positions: Record<string, number>): void {
    const q = this.#queued.get(id);
    if (!q) return;
    if (q.inLine) this.#event('dequeued', { space: this.space, names, waiter: id, reason: 'dropped', waitedMs: performance.now() - q.since });
    q.inLine = true;
    q.since = performance.now();
    this.#event('queued', { space: this.space, names, waiter: id, owner: this.owner, positions });
    this.#scheduleRenewal();
  }

  async #leaveLine(id: string, reason: DequeuedReason): Promise<void> {
    const q = this.#queued.get(id);
    this.#queued.delete(id);
    if (!q?.inLine) return;
    // Acquiring took it out of line in the same write.
    if (reason !== 'acquired' && !this.#closed) {
      await this.#dropIntents((i) => i.n === id).catch((err: Error) => log.wait('could not leave the line (the intent expires on its own): %s', err.message));
    }
    this.#event('dequeued', { space: this.space, names: q.names, waiter: id, reason, waitedMs: performance.now() - q.since });
  }

  /** Removes the intents `match` selects; a wake-up for waiters of this table behind them. */
  async #dropIntents(match: (intent: Intent) => boolean): Promise<void> {
    const dropped = await this.#gate.run(() =>
      this.#mutate(
        'dequeue',
        (doc) => {
          const next = T.dropWaiters(doc, match);
          return next === doc ? { result: false } : { write: next, result: true };
        },
        {},
        Math.min(2_000, this.#options.retry.deadlineMs),
      ),
    );
    if (dropped) this.#wakeWaiters();
  }

  #scheduleRenewal(): void {
    if (this.#intentTimer || this.#closed) return;
    this.#intentTimer = setTimeout(() => void this.#renewIntents(), Math.max(1, Math.floor(this.#options.wait.intentTtlMs / 3)));
    this.#intentTimer.unref();
  }

  async #renewIntents(): Promise<void> {
    this.#intentTimer = undefined;
    const ids = new Set([...this.#queued].filter(([, q]) => q.inLine).map(([id]) => id));
    if (!ids.size || this.#closed) return;
    try {
      const ttl = this.#options.wait.intentTtlMs;
      const missing = await this.#gate.run(() =>
        this.#mutate('renew', (doc, snap) => {
          const r = T.renewWaiters(doc, ids, snap.now + ttl);
          return r.doc === doc ? { result: r.missing } : { write: r.doc, result: r.missing };
        }),
      );
      // Dropped meanwhile (expired while this process could not renew, or
      // judged dead): the next attempt gets back in line, at the back.
      if (missing.length) this.#wakeWaiters();
    } catch (err) {
      log.wait('renewing intents failed, will retry: %s', (err as Error).message);
    }
    this.#scheduleRenewal();
  }

  // Observability: every event goes through #event, so that counters,
  // summaries and channels can never disagree.
  #event<K extends LockEventKind>(kind: K, event: LockEvents[K]): void {
    this.#events.emit(kind, event);
  }

  #observeAcquire<O extends { lease: Lease } | Blocked>(
    op: 'acquire' | 'tryAcquire' | 'wait',
    names: string[],
    started: number,
    outcome: O,
    contendedBefore = false,
  ): O {
    if ('lease' in outcome) {
      const { lease } = outcome;
      const event: LockEvents['acquired'] = { space: this.space, op, names: lease.names, token: lease.token, owner: lease.owner, waitedMs: performance.now() - started };
      if (lease.expiresAt) event.expiresAt = lease.expiresAt;
      this.#event('acquired', event);
    } else if (!contendedBefore) {
      this.#event('contended', { space: this.space, op, names, holders: outcome.blockers.map((b) => toHolder(b.name, b.entry)), waiters: outcome.ahead.map(waitingOf) });
    }
    return outcome;
  }

  #reaped(op: LockEvents['reaped']['op'], removed: T.Removed[]): void {
    this.#event('reaped', { space: this.space, op, locks: removed.map((x) => ({ ...toHolder(x.name, x.entry), reason: x.why })), by: this.owner });
  }

  #wakeWaiters(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  /** Freezes a lease this table made and ties it to its acquisition; `await using` releases it where the runtime has Symbol.asyncDispose. */
  #issue(lease: Lease, held: Held): Lease {
    const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
    if (dispose) Object.defineProperty(lease, dispose, { value: () => this.release(lease) });
    Object.freeze(lease);
    this.#heldBy.set(lease, held);
    return lease;
  }

  /** A new acquisition, from its first lease. */
  #newHeld(lease: Lease, ttlMs: number | undefined): Held {
    const held: Held = {
      nonce: lease.nonce,
      names: lease.names,
      token: lease.token,
      owner: lease.owner,
      acquiredAt: lease.acquiredAt.getTime(),
      ttlMs,
      expiresAt: lease.expiresAt?.getTime(),
      localExpiresAt: this.#localTime(lease.expiresAt?.getTime()),
      released: false,
    };
    this.#held.set(held.nonce, held);
    this.#issue(lease, held);
    return held;
  }

  /**
   * The acquisition of any lease object: one this table made, or a plain one
   * (rebuilt from JSON, made by another process) validated here and tied to
   * the acquisition of its nonce. EINVALIDOPTION for anything else.
   */
  #heldOf(lease: Lease): Held {
    const known = lease && typeof lease === 'object' ? this.#heldBy.get(lease) : undefined;
    if (known) return known;
    const parsed = parseLease(lease);
    if (parsed.space !== this.space) {
      throw new InvalidOptionError(`the lease belongs to space '${parsed.space}', not '${this.space}'`);
    }
    let held = this.#held.get(parsed.nonce);
    if (held && (held.names.length !== parsed.names.length || held.names.some((n, i) => n !== parsed.names[i]))) {
      // Some of an acquisition's names (a lease narrowed by hand): released on their own, it leaves the acquisition as it is.
      return { ...held, names: parsed.names, keeper: undefined, released: false };
    }
    // A lease from elsewhere does not say how long its renewals should make it: keepAlive() asks.
    if (!held) held = this.#newHeld(parsed, undefined);
    else this.#issue(parsed, held);
    if (typeof lease === 'object' && lease !== null) this.#heldBy.set(lease, held);
    return held;
  }

  /** A lease object of `held`, from `lease` (which may be a plain one). */
  #leaseOf(held: Held, lease: Lease): Lease {
    if (this.#heldBy.get(lease) === held && lease.acquiredAt instanceof Date) return lease;
    return parseLease(lease);
  }

  /** Released (or given up on for good): no longer this table's. */
  #settled(held: Held): void {
    held.released = true;
    this.#held.delete(held.nonce);
  }

  /** A database time (ms) as a local monotonic time, through the database clock estimate (a lease from elsewhere: the best there is). */
  #localTime(dbMs: number | undefined): number | undefined {
    // Before this table's first read the host's wall clock is the guess: it only schedules a renewal here, no time is stored from it.
    return dbMs === undefined ? undefined : performance.now() + (dbMs - (this.#clock.now() ?? Date.now()));
  }

  /** resolveCall(), with the table's default lease length. */
  #resolveCall(names: unknown, options: unknown): { names: string[]; options: WaitOptions } {
    const call = resolveCall(names, options);
    if (call.options.ttlMs === undefined && this.#options.ttlMs !== undefined) call.options = { ...call.options, ttlMs: this.#options.ttlMs };
    return call;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError();
  }
}

type DequeuedReason = LockEvents['dequeued']['reason'];

function waitingOf(a: T.Ahead): Waiting {
  return toWaiting(a.name, a.intent, a.position);
}

/** An entry as list() and releaseName() show it: the holder, its liveness judged from here, and its age (database time). */
/** EINVALIDOPTION for a shared or semaphore call whose limit differs from the one its name's group stores. */
function limitConflict(conflicts: readonly T.Conflict[]): InvalidOptionError {
  const what = (c: number | undefined) => (c === undefined ? 'shared (no limit)' : `a semaphore of limit ${c}`);
  const parts = conflicts.map((c) => `'${c.name}' is held as ${what(c.stored)}, this call asks for ${what(c.asked)}`);
  return new InvalidOptionError(`option limit: ${parts.join('; ')}. Every holder of a name must ask for the same limit while it is held: use the stored one, or wait until its holders have released it`);
}

function lockInfo(name: string, entry: Entry, now: number, here: LocalView): LockInfo {
  return { ...toHolder(name, entry), liveness: judgeEntry(entry, now, here), ageMs: Math.max(0, now - entry.a) };
}

/**
 * Creates a lock table. `db` is a mysql2 pool or a mysql:// URI.
 *
 * @example
 * const locks = createLockTable({ db: pool, owner: { taskId: '42' } });
 * await locks.using([LockTypes.appTask(appId)], async (lease) => { … });
 */
export function createLockTable<C = typeof LockTypes>(options: LockTableOptions<C>): LockTable<C extends typeof LockTypes ? PlatformLockName : LockNameOf<C>> {
  return new LockTable(options as LockTableOptions<unknown>);
}

function checkedType(name: string, typeOf: () => unknown, strictCatalogue: object | undefined): string {
  let t: unknown;
  try {
    t = typeOf();
  } catch (err) {
    throw Object.assign(new InvalidOptionError(`types.typeOf('${name}') threw: ${(err as Error)?.message ?? String(err)}`), { cause: err });
  }
  if (t === undefined) {
    if (strictCatalogue) throw notInCatalogue(name, strictCatalogue);
    return name;
  }
  if (typeof t !== 'string' || t.length === 0 || t.length > MAX_NAME_LENGTH) {
    throw new InvalidOptionError(`types.typeOf('${name}') returned ${typeof t === 'string' ? `a string of ${t.length} characters` : typeof t}: a type is a string of 1-${MAX_NAME_LENGTH} characters`);
  }
  return t;
}

/** What a one-statement write was doing, for its errors: the operations its members called. */
function operationOf(members: readonly Member[]): string {
  return [...new Set(members.map((m) => m.kind))].join(' and ');
}

/** A statement cut off by its call's bound (lib/db.ts withConnection), not a fault of the database's own. */
function isBoundCut(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === BOUND_CODES.NO_CONNECTION || code === BOUND_CODES.CUT;
}

/** The database did not let an operation through before its deadline (as opposed to a refusal). */
function isGiveUp(err: unknown): boolean {
  return err instanceof LockError && (err.code === 'EDATABASE' || err.code === 'ECONTENDED');
}


function isPid(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= MAX_PID;
}

/**
 * Whether a stored owner belongs to the process tree started as `pid`: it is
 * that process, or recorded it among its ancestors; with `startTime`, only
 * the process of that pid that started then (a reused pid does not match).
 */
export function ownedByTree(o: StoredOwner, pid: number, startTime: number | undefined): boolean {
  const same = (p: number, s: number) => p === pid && (startTime === undefined || s === 0 || s === startTime);
  return same(o.p, o.s) || (o.a?.some(([p, s]) => same(p, s)) ?? false);
}

/** How often a kept lease is renewed: the period keepAlive() was given while shorter than the lease, else a third of it (checks every 5 s without expiry). */
function periodOf(held: Held): number {
  const ttl = held.ttlMs;
  if (held.periodMs !== undefined && (ttl === undefined || held.periodMs < ttl)) return held.periodMs;
  return ttl === undefined ? CHECK_MS : Math.max(1, Math.floor(ttl / 3));
}

function notHeld(missing: T.ReleaseOutcome['missing']): NotHeldError {
  const heldBy = missing.flatMap((m) => (m.heldBy ? [toHolder(m.name, m.heldBy)] : []));
  return new NotHeldError(missing.map((m) => m.name), missing[0]!.reason, heldBy);
}

/** The public face of a Keeper: its signal, and stop(); `await using` stops it where the runtime has Symbol.asyncDispose. */
function keepAliveOf(keeper: Keeper): KeepAlive {
  const handle: KeepAlive = { signal: keeper.signal, stop: () => keeper.stop() };
  const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
  if (dispose) Object.defineProperty(handle, dispose, { value: () => keeper.stop() });
  return Object.freeze(handle);
}

/**
 * The work failed, and so did the release after it: the work's error stays
 * what the caller gets, with the release's failure attached as `releaseError`.
 * A thrown value that cannot carry it (a primitive, a frozen object) comes
 * with it in an AggregateError instead.
 */
function withReleaseError(workError: unknown, releaseError: unknown): unknown {
  if (workError !== null && (typeof workError === 'object' || typeof workError === 'function') && Object.isExtensible(workError) && !Object.hasOwn(workError, 'releaseError')) {
    Object.defineProperty(workError, 'releaseError', { value: releaseError, configurable: true, writable: true, enumerable: false });
    return workError;
  }
  return new AggregateError([workError, releaseError], `the work failed, and so did releasing its lock: ${String((releaseError as Error)?.message ?? releaseError)}`);
}
