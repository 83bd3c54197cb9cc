import createDebug from 'debug';
import { applied, canJoin, ownerPath, planFast, settleFast, type BatchContext, type Member, type Outcome } from './batch.js';
import { Bound, watchAbort } from './bound.js';
import { DbClock } from './clock.js';
import { BOUND_CODES, boundedDb, connectionsSettled, openDb, type Db, type Queryable } from './db.js';
import {
  emptyDocument,
  entryOf,
  ownerKey,
  parseDocument,
  strayOwnerRecords,
  serializeDocument,
  toHolder,
  toStoredOwner,
  type Entry,
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
  describeHolder,
  type Holder,
  LockError,
} from './errors.js';
import { EventSink, type LockEventKind, type LockEvents } from './events.js';
import { isAmbiguous, isTransient, toLockError, toUnresolvedError } from './faults.js';
import { Gate, type Expiry } from './gate.js';
import { Leftovers } from './leftovers.js';
import { confirmRelease, settleLost } from './settle.js';
import { judgeEntry, type Liveness } from './liveness.js';
import type { LockMetrics } from './metrics.js';
import { assertName, LockTypes, MAX_NAME_LENGTH, normalizeNames, notInCatalogue, type LockNameOf, type PlatformLockName } from './names.js';
import { MAX_TTL_MS, resolveCall, resolveOptions, splitUsingOptions, type AcquireOptions, type ResolvedOptions, type WaitOptions } from './options.js';
import { nonce as newNonce } from './nonce.js';
import { currentOwner, localView, type LocalView, type Owner } from './owner.js';
import { backoff } from './retry.js';
import { createSpace, dropOwnerRecord, fastWrite, readNow, readSpace, readSpaceLocked, readVersion, writeIfVersion, type Snapshot } from './store.js';
import * as T from './transitions.js';
import { shouldWake, watchCandidate, type Watched } from './watch.js';

const log = {
  acquire: createDebug('locktable:acquire'),
  release: createDebug('locktable:release'),
  wait: createDebug('locktable:wait'),
  reap: createDebug('locktable:reap'),
  retry: createDebug('locktable:retry'),
};

/** Proof of an acquisition. Pass it to release(); it is frozen. */
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
  readonly expiresAt?: Date;
}

/** One held lock, as list() sees it. */
export interface LockInfo extends Holder {
  /** Judged from this process: `unknown` for another machine (boot id) or pid namespace. */
  liveness: Liveness;
  /** Age in ms, database time. */
  ageMs: number;
}

export type OwnerMatch = { taskId: string } | { pid: number; host?: string };

export interface UsingOptions extends WaitOptions {
  /** Wait for the locks instead of failing with ELOCKED. Default false. */
  wait?: boolean;
}

export interface LockTableOptions<C = typeof LockTypes> {
  /** A mysql2 pool (promise or callback) or a mysql:// URI. A pool stays yours; a URI's pool is closed by close(). */
  db: unknown;
  /** The row that holds this table's locks. Default 'platform'. */
  space?: string;
  /** Recorded with every lock this table takes. */
  owner?: { taskId?: string };
  /** The catalogue names are typed and typed from. Default LockTypes. */
  types?: C;
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
  wait?: { pollMinMs?: number; pollMaxMs?: number };
}

type Step<R> = { write?: LockDocument; result: R };

/** How #mutate settles a write whose reply was lost (the connection broke after it was sent). */
interface Settle<R> {
  /** Told at once, with the version the lost write was to replace. */
  lost?(expected: number): void;
  /** On the next read that succeeds: the operation's result if the lost write was applied, undefined if not. */
  confirm?(doc: LockDocument, snap: Snapshot): R | undefined;
}

interface Waiter extends Watched {
  wake(): void;
}

/**
 * Named locks of one space, shared by every process that uses the same row.
 * Every operation is a few short statements on any pooled connection: nothing
 * holds a connection or a transaction while a lock is held.
 */
export class LockTable<N extends string = PlatformLockName> {
  readonly space: string;
  readonly owner: Owner;
  readonly #options: ResolvedOptions;
  readonly #db: Db;
  readonly #typeOf: (name: string) => string | undefined;
  /** The catalogue, when strictNames refuses names outside it. */
  readonly #strictCatalogue: object | undefined;
  readonly #released = new WeakSet<Lease>();
  /** Leases this table made (frozen): release() and extend() need not re-check them. */
  readonly #issued = new WeakSet<Lease>();
  readonly #waiters = new Set<Waiter>();
  #polling = false;
  /** The version the last poll saw; -1 makes the next poll check the blockers. */
  #polledVersion = -1;
  #closed = false;
  readonly #events: EventSink;
  /** What this process may hold without a caller knowing, released in the background (see leftovers.ts). */
  readonly #leftovers = new Leftovers({
    release: (item, last) => this.#releaseNonce(item.names, item.nonce, last ? Math.min(1_000, this.#options.retry.deadlineMs) : undefined),
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
    this.#db = openDb(this.#options.db, this.#options.poolSize);
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
    const call = resolveCall(names, options);
    const started = performance.now();
    const outcome = this.#observeAcquire('acquire', call.names, started, await this.#acquire(call.names, call.options, this.#bound(undefined, call.options.signal)));
    if ('lease' in outcome) return outcome.lease;
    throw new LockedError(outcome.blockers.map((b) => toHolder(b.name, b.entry)));
  }

  /** As acquire(), but resolves null when a name is held. */
  async tryAcquire(names: N | readonly N[], options?: AcquireOptions): Promise<Lease | null> {
    const call = resolveCall(names, options);
    const started = performance.now();
    const outcome = this.#observeAcquire('tryAcquire', call.names, started, await this.#acquire(call.names, call.options, this.#bound(undefined, call.options.signal)));
    return 'lease' in outcome ? outcome.lease : null;
  }

  /**
   * Waits until every name can be taken at once. Wakes when the row changes
   * (a release anywhere), when a holder dies (its locks are taken over), or
   * when a lease expires. Rejects with ETIMEDOUT or EABORTED.
   *
   * @example
   * const lease = await locks.wait([LockTypes.BOX_UPDATE], { timeoutMs: 60_000, signal });
   */
  async wait(names: N | readonly N[], options?: WaitOptions): Promise<Lease> {
    const call = resolveCall(names, options);
    const { signal, timeoutMs } = call.options;
    const startedAt = performance.now();
    const elapsed = () => performance.now() - startedAt;
    let blockers: Holder[] = [];
    for (let contended = false; ; contended = true) {
      if (signal?.aborted) throw new AbortError(signal.reason);
      // After a wake-up, decide from a read: every waiter of the name woke at
      // once, a read does not queue on the row lock, and only those that find
      // it free go on to write.
      // Each attempt is bounded by retry.deadlineMs, and by what is left of timeoutMs and the signal.
      const left = timeoutMs === undefined ? Infinity : Math.max(0, timeoutMs - elapsed());
      // Woken by its timer a fraction of a ms early: out of time, not worth another attempt.
      if (contended && left < 1) throw new TimeoutError(timeoutMs!, blockers);
      let attempt;
      try {
        attempt = await this.#acquire(call.names, call.options, new Bound(Math.min(this.#options.retry.deadlineMs, left), signal), contended);
      } catch (err) {
        // The database did not let the attempt through before the wait's own timeout: ETIMEDOUT, the fault as cause.
        if (timeoutMs !== undefined && isGiveUp(err) && elapsed() >= timeoutMs) throw new TimeoutError(timeoutMs, blockers, err);
        throw err;
      }
      const outcome = this.#observeAcquire('wait', call.names, startedAt, attempt, contended);
      if ('lease' in outcome) {
        log.wait('%s acquired after %d ms', call.names.join(','), Math.round(elapsed()));
        return outcome.lease;
      }
      blockers = outcome.blockers.map((b) => toHolder(b.name, b.entry));
      const rest = timeoutMs === undefined ? undefined : timeoutMs - elapsed();
      if (rest !== undefined && rest <= 0) throw new TimeoutError(timeoutMs!, blockers);
      const woke = await this.#sleepUntilChange(outcome.version, outcome.blockers, rest, signal);
      if (!woke && timeoutMs !== undefined && elapsed() >= timeoutMs) throw new TimeoutError(timeoutMs, blockers);
    }
  }

  /**
   * Releases what the lease still holds. Fails with ENOTHELD (saying why:
   * reaped, wiped, taken by another…) for names it no longer holds; the
   * names it still held are released all the same. Releasing twice is a no-op.
   */
  async release(lease: Lease): Promise<void> {
    this.#checkLease(lease);
    if (this.#released.has(lease)) return;
    let outcome: Pick<T.ReleaseOutcome, 'released' | 'missing'> | undefined;
    // One bound for the whole call: the one statement, and the read-decide-write after it.
    const bound = this.#bound();
    try {
      // One statement first (with whatever else is queued); if it is refused
      // (an entry gone or not ours), read and decide, which says why.
      if (this.#options.fastPath) {
        // Given up at the bound while its statement ran: the catch below keeps releasing in the background.
        const fast = await this.#withinBound(this.#gate.submit({ kind: 'release', names: lease.names, nonce: lease.nonce }, this.#expiry(bound, 'release')), bound, 'release');
        if (fast.kind === 'released') outcome = { released: fast.names, missing: [] };
      }
      outcome ??= await this.#releaseFromRead('release', lease.names, lease.nonce, bound);
    } catch (err) {
      // The database did not let us release in time: the lock would stay held
      // by this live process, which no one reaps. Keep trying in the background;
      // a later release(lease) is then a no-op.
      if (isGiveUp(err)) this.#leftovers.add({ names: lease.names, nonce: lease.nonce, done: () => this.#released.add(lease) });
      throw err;
    }
    this.#released.add(lease);
    if (outcome.released.length) {
      if (log.release.enabled) log.release('%s (token %d)', outcome.released.join(','), lease.token);
      this.#event('released', { space: this.space, names: outcome.released, token: lease.token, owner: lease.owner, heldMs: this.#heldMs(lease) });
      this.#wakeWaiters();
    }
    if (outcome.missing.length) {
      const names = outcome.missing.map((m) => m.name);
      const reason = outcome.missing[0]!.reason;
      const heldBy = outcome.missing.flatMap((m) => (m.heldBy ? [toHolder(m.name, m.heldBy)] : []));
      this.#event('lost', { space: this.space, op: 'release', names, token: lease.token, reason, heldBy });
      throw new NotHeldError(names, reason, heldBy);
    }
  }

  /**
   * Acquires, runs `fn`, and always releases. By default fails at once with
   * ELOCKED when a name is held; `{ wait: true }` waits (with `timeoutMs`, `signal`).
   *
   * @example
   * await locks.using([LockTypes.fullBackupTask(siteId)], async (lease) => {
   *   await backup(siteId, { fencingToken: lease.token });
   * });
   */
  async using<T>(names: N | readonly N[], fn: (lease: Lease) => Promise<T> | T, options: UsingOptions = {}): Promise<T> {
    const { wait, rest } = splitUsingOptions(options);
    // acquire() honours signal, and validates (and ignores) timeoutMs too: a bad one is refused, not silently dropped.
    const lease = wait ? await this.wait(names, rest) : await this.acquire(names, rest);
    try {
      return await fn(lease);
    } finally {
      await this.release(lease);
    }
  }

  /**
   * Sets a new lease length (from now, database time) on every name the lease
   * holds, or `null` to make it last until released. Returns the renewed lease.
   */
  async extend(lease: Lease, ttlMs: number | null): Promise<Lease> {
    this.#checkLease(lease);
    // Bounded like acquire()'s: an expiry past 2^53 would be written as an inexact number the document refuses.
    if (ttlMs !== null && (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS)) {
      throw new InvalidOptionError(`extend: ttlMs is a positive integer number of milliseconds up to ${MAX_TTL_MS}, or null`);
    }
    const bound = this.#bound();
    const outcome = await this.#gate.run(() =>
      this.#mutate('extend', (doc, snap) => {
        const expiresAt = ttlMs === null ? undefined : snap.now + ttlMs;
        const r = T.extend(doc, lease.names, lease.nonce, expiresAt, snap.now);
        return r.missing.length ? { result: { ...r, expiresAt } } : { write: r.doc, result: { ...r, expiresAt } };
      }, {}, bound),
      this.#expiry(bound, 'extend'),
    );
    if (outcome.missing.length) {
      this.#event('lost', { space: this.space, op: 'extend', names: outcome.missing.map((m) => m.name), token: lease.token, reason: outcome.missing[0]!.reason, heldBy: [] });
      throw new NotHeldError(outcome.missing.map((m) => m.name), outcome.missing[0]!.reason);
    }
    const { expiresAt: _old, ...rest } = lease;
    const renewed: Lease = outcome.expiresAt === undefined ? { ...rest } : { ...rest, expiresAt: new Date(outcome.expiresAt) };
    this.#released.add(lease); // the old object is superseded
    return this.#issue(renewed);
  }

  /** Releases every lock of the space: the platform server's start-up wipe. Returns what it removed. */
  async releaseAll(): Promise<Holder[]> {
    return this.#removeWhere('wiped', () => true);
  }

  /**
   * Releases every lock of one owner: the server's cleanup when a task exits.
   * `{ pid }` matches on this host unless `host` is given.
   */
  async releaseByOwner(match: OwnerMatch): Promise<Holder[]> {
    const m = match as { taskId?: unknown; pid?: unknown; host?: unknown };
    if (m && typeof m.taskId === 'string' && m.taskId && m.pid === undefined) {
      return this.#removeWhere('owner', (_, e) => e.o.t === m.taskId);
    }
    // 2^22 is Linux's largest possible pid (PID_MAX_LIMIT): anything above is not a process.
    if (m && Number.isSafeInteger(m.pid) && (m.pid as number) > 0 && (m.pid as number) <= 4_194_304 && m.taskId === undefined) {
      const host = m.host === undefined ? this.owner.host : m.host;
      if (typeof host !== 'string') throw new InvalidOptionError('releaseByOwner: host is a string');
      return this.#removeWhere('owner', (_, e) => e.o.p === m.pid && e.o.h === host);
    }
    throw new InvalidOptionError('releaseByOwner: pass exactly one of { taskId: string } or { pid: integer 1..4194304, host? }');
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
    return Object.entries(doc.l)
      .map(([name, e]) => lockInfo(name, e, snap.now, here))
      .sort((a, b) => a.name.localeCompare(b.name));
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
    const db = boundedDb(this.#db.pool, bound);
    const snap = await this.#read(db);
    if (snap.raw !== expectedRaw) {
      throw new InvalidOptionError('repair: the stored document is not the text you inspected; read the new ECORRUPT error and try again');
    }
    if (!(await writeIfVersion(db, this.space, snap.version, serializeDocument(emptyDocument())))) {
      throw new InvalidOptionError('repair: the document changed while repairing; inspect it again');
    }
    return { replaced: snap.raw };
  }

  /** Closes the pool if this table opened it (from a URI); a pool you passed stays open. Pending waits fail with ECLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    // What is in flight finishes first (each within its bound): a statement a
    // caller gave up on (an abort) may still land and leave a leftover.
    await this.#gate.whenIdle();
    // One last try at what is still to be released, while the pool is open.
    await this.#leftovers.flush();
    this.#closed = true;
    this.#gate.close();
    this.#wakeWaiters();
    if (this.#wroteOwnerRecord) {
      // Best effort: a record left behind costs ~150 bytes until the next full write drops it.
      const key = ownerKey(this.#batch.owner);
      await dropOwnerRecord(boundedDb(this.#db.pool, new Bound(Math.min(1_000, this.#options.retry.deadlineMs))), this.space, ownerPath(key), key).catch((err: Error) =>
        log.release('could not drop the owner record: %s', err.message),
      );
    }
    if (this.#db.owned) {
      await connectionsSettled(this.#db.pool);
      await this.#db.pool.end();
    }
  }

  // ---------------------------------------------------------------------------

  async #acquire(
    names: string[],
    options: AcquireOptions,
    bound: Bound,
    readFirst = false,
  ): Promise<{ lease: Lease } | { blockers: Array<{ name: string; entry: Entry }>; version: number }> {
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
    const leaseFrom = (held: string, entries: Record<string, Entry>): Lease => {
      const e = entries[names[0]!]!;
      const lease: Lease = { space: this.space, names: Object.freeze([...names]), token: e.f, nonce: held, owner: this.owner, acquiredAt: new Date(e.a) };
      if (e.e !== undefined) (lease as { expiresAt?: Date }).expiresAt = new Date(e.e);
      return this.#issue(lease);
    };
    // One statement first, with whatever else is queued (lib/batch.ts). If it
    // is refused — a name held, or anything else the read-decide-write path
    // must judge — nothing was written, and that path decides below.
    if (this.#options.fastPath && !readFirst) {
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
          (err) => err instanceof DatabaseError && err.outcomeUnknown && late(),
        );
      } catch (err) {
        // A statement that could not be settled may hold the names: released in the background.
        if (err instanceof DatabaseError && err.outcomeUnknown) this.#leftovers.add({ names, nonce });
        throw err;
      }
      if (fast.kind === 'acquired') {
        const lease = leaseFrom(nonce, fast.entries);
        if (log.acquire.enabled) log.acquire('%s token %d', names.join(','), lease.token);
        return { lease };
      }
      if (fast.kind === 'refused' && fast.remnantAt !== undefined) {
        // It did apply, but ran out or lost a name since: acquire anew, and what is left of it is ours to replace.
        lost.set(nonce, fast.remnantAt);
        nonce = newNonce();
      }
    }
    type Blocked = { blockers: Array<{ name: string; entry: Entry }>; version: number };
    type Won = { nonce: string; entries: Record<string, Entry>; removed?: T.Removed[] };
    let outcome: Blocked | Won;
    try {
      outcome = await this.#gate.run(() => this.#mutate<Blocked | Won>(
        'acquire',
        (doc, snap) => {
          const settled = settleLost(doc, snap, names, lost);
          if (settled) return { result: { nonce: settled, entries: doc.l as Record<string, Entry> } };
          const dead = new Set(
            names.filter((n) => {
              const held = entryOf(doc, n);
              if (held === undefined) return false;
              // A remnant of our own lost write (the rest of it removed since): ours to replace.
              if (lost.has(held.n)) return true;
              return judgeEntry(held, snap.now, here) === 'dead';
            }),
          );
          const r = T.acquire(doc, { names, typeOf, owner, nonce, token: snap.version + 1, now: snap.now, ttlMs: options.ttlMs, dead });
          if (!r.ok) return { result: { blockers: r.blockers, version: snap.version } };
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
      for (const lostNonce of lost.keys()) this.#leftovers.add({ names, nonce: lostNonce });
      throw err instanceof DatabaseError && !err.outcomeUnknown ? toUnresolvedError(err.cause, 'acquire') : err;
    }
    if ('blockers' in outcome) return outcome;
    const lease = leaseFrom(outcome.nonce, outcome.entries);
    if (outcome.removed?.length) this.#reaped('acquire', outcome.removed);
    log.acquire('%s token %d', names.join(','), lease.token);
    return { lease };
  }

  /** Release through read-decide-write: removes what is still held under `nonce`, says why the rest is gone. */
  #releaseFromRead(what: string, names: readonly string[], nonce: string, bound: Bound): Promise<T.ReleaseOutcome> {
    return this.#gate.run(() =>
      this.#mutate(
        what,
        (doc) => {
          const r = T.release(doc, names, nonce);
          return r.released.length ? { write: r.doc, result: r } : { result: r };
        },
        { confirm: (doc) => confirmRelease(doc, names, nonce) },
        bound,
      ),
      this.#expiry(bound, what),
    );
  }

  /** Releases whatever is still held under `nonce` (background clean-up of leftovers.ts). */
  async #releaseNonce(names: readonly string[], nonce: string, deadlineMs?: number): Promise<void> {
    const outcome = await this.#releaseFromRead('background release', names, nonce, this.#bound(deadlineMs));
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
    // The statement of a batch is bounded by retry.deadlineMs; each member's
    // caller gives up on its own bound (#withinBound) whatever the statement does.
    const bound = this.#bound();
    const db = boundedDb(this.#db.pool, bound);
    // Before the first read there is no estimate of the database's time, and
    // the host's clock is never one: read it first (once per table).
    if (!this.#clock.known) {
      try {
        await this.#clock.track(() => readNow(db));
      } catch (err) {
        if (!isTransient(err)) throw toLockError(err, 'read');
        return refused(); // nothing was written: each member decides from a read, within its own bound
      }
    }
    const fast = planFast(members, this.#batch, this.#clock.now()!);
    if (!fast) return refused();
    this.#assertOpen();
    let version: number | undefined;
    try {
      version = await fastWrite(db, this.space, fast.plan);
    } catch (err) {
      if (!isTransient(err)) throw toLockError(err, operationOf(members));
      log.retry('one-statement write failed: %s', (err as Error).message);
      // Not sent, or rolled back: nothing was written. Otherwise it may have applied.
      return isAmbiguous(err) ? this.#settleFast(members, fast, bound) : refused();
    }
    if (version === undefined) {
      log.retry('one-statement write refused (%d members): deciding from a read', members.length);
      return refused();
    }
    if (fast.plan.owner) this.#wroteOwnerRecord = true;
    return applied(members, fast, version);
  }

  /**
   * A one-statement write whose reply was lost may have applied, or may still
   * apply while it waits for the row's lock. It can only as long as the row is
   * evaluated within the clock tolerance of its time (SYSDATE, see store.ts).
   * So once the server's clock is past that, a locking read — queued behind
   * the statement if it is still waiting — shows for good whether it did; its
   * own nonces say so (lib/batch.ts settleFast). Until the deadline.
   */
  async #settleFast(members: Member[], fast: NonNullable<ReturnType<typeof planFast>>, bound: Bound): Promise<Outcome[]> {
    const { baseMs, capMs } = this.#options.retry;
    const closesAt = fast.plan.at.ms + fast.plan.at.toleranceMs;
    const db = boundedDb(this.#db.pool, bound);
    let failure: unknown = Object.assign(new Error('no time left to settle the write'), { code: 'ETIMEDOUT' });
    for (let attempt = 0; !bound.fired(); attempt++) {
      this.#assertOpen();
      try {
        const snap = await readSpaceLocked(db, this.space);
        if (!snap) throw new LockError('ENOTMIGRATED', `the row of space '${this.space}' is gone`);
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

  async #removeWhere(
    why: 'wiped' | 'owner' | 'reaped',
    match: (name: string, entry: Entry) => boolean,
    before?: (snap: Snapshot) => void,
    dropStrays = false,
  ): Promise<Holder[]> {
    const bound = this.#bound();
    const removed = await this.#gate.run(() =>
      this.#mutate(why, (doc, snap) => {
        before?.(snap);
        const r = T.removeWhere(doc, match, why, snap.now);
        // A full write keeps only the owner records its entries refer to.
        const write = r.removed.length > 0 || (dropStrays && strayOwnerRecords(snap.raw) > 0);
        return write ? { write: r.doc, result: r.removed } : { result: r.removed };
      }, {}, bound),
      this.#expiry(bound, why),
    );
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
  async #mutate<R>(what: string, step: (doc: LockDocument, snap: Snapshot) => Step<R>, settle: Settle<R>, bound: Bound): Promise<R> {
    const { baseMs, capMs } = this.#options.retry;
    const db = boundedDb(this.#db.pool, bound);
    // A write was sent and its reply lost: until a read settles it, it may have been applied.
    let uncertain = false;
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
          if (await writeIfVersion(db, this.space, snap.version, serializeDocument(next.write))) return next.result;
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

  async #read(db: Queryable): Promise<Snapshot> {
    this.#assertOpen();
    let snap = await this.#clock.track(() =>
      readSpace(db, this.space).catch((err) => {
        throw isTransient(err) ? err : toLockError(err, 'read');
      }),
    );
    if (!snap) {
      await createSpace(db, this.space, serializeDocument(emptyDocument()));
      snap = await this.#clock.track(() => readSpace(db, this.space));
      if (!snap) throw new LockError('ENOTMIGRATED', `the row of space '${this.space}' could not be created`);
    }
    return snap;
  }

  // wait() support: one poller per table, however many waiters. It reads the
  // version, and when that moved whether the waiters' blockers are still there
  // (lib/watch.ts); a waiter wakes when one of its blockers is gone, when a
  // blocker is judged dead from here, or when a blocker's lease has expired by
  // the database clock.
  #sleepUntilChange(version: number, blockers: Waiter['blockers'], timeoutMs: number | undefined, signal?: AbortSignal): Promise<boolean> {
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
      const waiter: Waiter = { version, blockers, wake: () => done(this.#closed ? new ClosedError() : true) };
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
          seen = await this.#gate.run(() => this.#clock.track(() => readVersion(boundedDb(this.#db.pool, bound), this.space, since, holds)), this.#expiry(bound, 'poll'));
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
          const holderGone = w.blockers.some((b) => judgeEntry(b.entry, now, here) === 'dead');
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

  // Observability: every event goes through #event, so that counters,
  // summaries and channels can never disagree.
  #event<K extends LockEventKind>(kind: K, event: LockEvents[K]): void {
    this.#events.emit(kind, event);
  }

  #observeAcquire<O extends { lease: Lease } | { blockers: Array<{ name: string; entry: Entry }> }>(
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
      this.#event('contended', { space: this.space, op, names, holders: outcome.blockers.map((b) => toHolder(b.name, b.entry)) });
    }
    return outcome;
  }

  #reaped(op: LockEvents['reaped']['op'], removed: T.Removed[]): void {
    this.#event('reaped', { space: this.space, op, locks: removed.map((x) => ({ ...toHolder(x.name, x.entry), reason: x.why })), by: this.owner });
  }

  /** From acquisition to now, in database time (estimated from the last read). */
  #heldMs(lease: Lease): number {
    return Math.max(0, (this.#clock.now() ?? lease.acquiredAt.getTime()) - lease.acquiredAt.getTime());
  }

  #wakeWaiters(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  #issue(lease: Lease): Lease {
    Object.freeze(lease);
    this.#issued.add(lease);
    return lease;
  }

  #checkLease(lease: Lease): void {
    if (this.#issued.has(lease)) return;
    if (!lease || typeof lease !== 'object' || typeof lease.nonce !== 'string' || !Array.isArray(lease.names)) {
      throw new InvalidOptionError('pass the lease that acquire(), tryAcquire() or wait() returned');
    }
    normalizeNames(lease.names);
    if (lease.space !== this.space) {
      throw new InvalidOptionError(`the lease belongs to space '${String(lease.space)}', not '${this.space}'`);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError();
  }
}

/** An entry as list() and releaseName() show it: the holder, its liveness judged from here, and its age (database time). */
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
