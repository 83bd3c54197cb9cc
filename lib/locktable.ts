import { AsyncLocalStorage } from 'node:async_hooks';
import createDebug from 'debug';
import { Acquirer } from './acquiring.js';
import type { Bound } from './bound.js';
import { DbClock } from './clock.js';
import { entryOf, groupOf, toHolder, toStoredOwner, type Entry, type StoredOwner } from './document.js';
import { ClosedError, describeHolder, InvalidOptionError, LockedError, NotHeldError, type Holder } from './errors.js';
import { EventSink, type LockEventKind, type LockEvents } from './events.js';
import { toLockError } from './faults.js';
import { HeldLeases, inTurn, keepAliveOf, periodOf, type Held } from './held.js';
import { Keeper } from './keepalive.js';
import { parseLease, type Lease } from './lease.js';
import { Leftovers } from './leftovers.js';
import { judgeEntry } from './liveness.js';
import type { LockMetrics } from './metrics.js';
import { assertName, LockTypes, type LockNameOf, type PlatformLockName } from './names.js';
import { compileConflicts, type RuleCatalogue } from './rules.js';
import { MAX_TTL_MS, resolveCall, resolveOptions, splitUsingOptions, type AcquireOptions, type ResolvedOptions, type WaitOptions } from './options.js';
import { currentOwner, localView, MAX_PID, type LocalView, type Owner } from './owner.js';
import type { Snapshot } from './store.js';
import * as T from './transitions.js';
import type { KeepAlive, KeepAliveOptions, LockInfo, LockTableOptions, OwnerMatch, ReleasedName, UsingOptions, WaiterInfo } from './types.js';
import { holderOf, waitingOf, Waiters, type Blocked } from './waiting.js';
import { fenced, isGiveUp, openStatements, Writer } from './writer.js';

const log = {
  release: createDebug('locktable:release'),
  reap: createDebug('locktable:reap'),
  retry: createDebug('locktable:retry'),
};

export type { Lease } from './lease.js';
export type { KeepAlive, KeepAliveOptions, LockInfo, LockTableOptions, OwnerMatch, ReleasedName, UsingOptions, WaiterInfo } from './types.js';

/**
 * The nonces of the leases whose using() work is running in this async
 * context: a wait() made from inside that work on one of their names could
 * only end when the work does, which waits for it.
 */
const working = new AsyncLocalStorage<ReadonlySet<string>>();

/** One using() call under way: its lease's nonce and renewal once its work runs; `done` when it has returned (released). */
interface Running {
  done: Promise<void>;
  nonce?: string;
  keeper?: Keeper | undefined;
}

/** How long close() waits, by default, for using() work under way to stop and release, ms. */
export const CLOSE_TIMEOUT_MS = 30_000;

/**
 * Named locks of one space, shared by every process that uses the same row.
 * Every operation is a few short statements on any pooled connection: nothing
 * holds a connection or a transaction while a lock is held.
 */
export class LockTable<N extends string = PlatformLockName> {
  readonly space: string;
  readonly owner: Owner;
  readonly #options: ResolvedOptions;
  #closed = false;
  /** close() has begun: waits end with ECLOSED instead of trying again. */
  #closing = false;
  readonly #events: EventSink;
  /** What this process may hold without a caller knowing, released in the background (see leftovers.ts). */
  readonly #leftovers = new Leftovers({
    release: (item, last) => this.#releaseNonce(item.names, item.nonce, last ? Math.min(1_000, this.#options.retry.deadlineMs) : undefined, item.maybe),
    log: log.retry,
  });
  /** The database's clock as estimated here: for the one-statement writes, and for waiters to notice expiry without a query. */
  readonly #clock = new DbClock();
  /** The acquisitions not yet released, and every lease object of them (lib/held.ts). */
  readonly #leases: HeldLeases;
  /** Every statement: the gate, the one write path, the one-statement path, the bounds (lib/writer.ts). */
  readonly #writer: Writer;
  /** wait()'s waiters, their poller and their place in line (lib/waiting.ts). */
  readonly #waiters: Waiters;
  /** Each attempt at an acquisition (lib/acquiring.ts). */
  readonly #acquirer: Acquirer;
  /** The using() calls under way: close() tells their work to stop, and waits for them to release. */
  readonly #usings = new Set<Running>();

  constructor(options: LockTableOptions<unknown>) {
    this.#options = resolveOptions(options);
    const { table, db } = openStatements(this.#options);
    this.space = this.#options.space;
    this.#events = new EventSink(this.space);
    this.owner = currentOwner({ taskId: this.#options.owner.taskId });
    const types = (this.#options.types ?? LockTypes) as { typeOf(name: string): string | undefined };
    const batch = { owner: toStoredOwner(this.owner) };
    this.#leases = new HeldLeases(this.space, this.#clock, (lease) => this.release(lease));
    this.#writer = new Writer({
      options: this.#options,
      space: this.space,
      table,
      db,
      clock: this.#clock,
      batch,
      ports: { isClosed: () => this.#closed, retried: (event) => this.#event('retried', event) },
    });
    this.#acquirer = new Acquirer({
      options: this.#options,
      space: this.space,
      owner: this.owner,
      batch,
      typeOf: (name) => types.typeOf(name),
      strictCatalogue: this.#options.strictNames ? types : undefined,
      // The catalogue's rules, compiled (a catalogue built by hand may give them as a plain record): EINVALIDOPTION/EINVALIDNAME here.
      rules: compileConflicts((types as { conflicts?: unknown }).conflicts, types as RuleCatalogue),
      writer: this.#writer,
      leases: this.#leases,
      leftovers: this.#leftovers,
      reaped: (removed) => this.#reaped('acquire', removed),
    });
    this.#waiters = new Waiters({
      space: this.space,
      owner: this.owner,
      options: this.#options,
      acquire: (names, options, contended, waiter, bound, take) => this.#acquirer.attempt(names, options, contended, waiter, bound, take),
      observe: (names, startedAt, outcome, contended) => this.#observeAcquire('wait', names, startedAt, outcome, contended),
      ownBlockers: (blockers) => {
        const inside = working.getStore();
        return inside ? blockers.filter((b) => inside.has(b.entry.n) && this.#leases.get(b.entry.n)?.released === false) : [];
      },
      readVersion: (since, paths) => this.#writer.readVersion(since, paths),
      now: () => this.#clock.now(),
      mutate: (what, step, within) => this.#writer.gate.run(() => this.#writer.mutate(what, step, {}, within)),
      event: (kind, event) => this.#event(kind, event),
      isClosed: () => this.#closed,
      isClosing: () => this.#closing,
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
    const outcome = this.#observeAcquire('acquire', call.names, started, await this.#acquirer.attempt(call.names, call.options, false, undefined, this.#writer.bound(undefined, call.options.signal)));
    if ('lease' in outcome) return outcome.lease;
    throw new LockedError(outcome.blockers.map((b) => holderOf(b)), undefined, outcome.ahead.map(waitingOf));
  }

  /** As acquire(), but resolves null when a name is held (or has waiters in line first). */
  async tryAcquire(names: N | readonly N[], options?: AcquireOptions): Promise<Lease | null> {
    const call = this.#resolveCall(names, options);
    const started = performance.now();
    const outcome = this.#observeAcquire('tryAcquire', call.names, started, await this.#acquirer.attempt(call.names, call.options, false, undefined, this.#writer.bound(undefined, call.options.signal)));
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
    return this.#waiters.wait(call);
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
    const held = this.#leases.heldOf(lease);
    if (held.released) return;
    // A narrowed lease takes its names out of its acquisition: not while a renewal or extend() of it is in flight.
    if (held.whole) return inTurn(held, () => (held.released ? Promise.resolve() : this.#release(held)));
    return this.#release(held);
  }

  async #release(held: Held): Promise<void> {
    // Only when there is one: an await here would let statements queued after this release go before it.
    if (held.keeper) await held.keeper.stop();
    let outcome: Pick<T.ReleaseOutcome, 'released' | 'missing'> | undefined;
    // One bound for the whole call: the one statement, and the read-decide-write after it.
    const bound = this.#writer.bound();
    try {
      // One statement first (with whatever else is queued); if it is refused
      // (an entry gone or not ours), read and decide, which says why. A shared
      // holder is not in `l`: for it the one statement could only be refused.
      if (this.#options.fastPath && held.mode !== 'shared') {
        // Given up at the bound while its statement ran: the catch below keeps releasing in the background.
        const fast = await this.#writer.withinBound(this.#writer.gate.submit({ kind: 'release', names: held.names, nonce: held.nonce }, this.#writer.expiry(bound, 'release')), bound, 'release');
        if (fast.kind === 'released') outcome = { released: fast.names, missing: [] };
        // Its statement may still land (sent to a node statements no longer go to): every read confirms first.
        else if (fast.kind === 'refused' && fast.remnantAt !== undefined) outcome = await this.#writer.releaseFromRead('release', held.names, held.nonce, bound, true);
      }
      outcome ??= await this.#writer.releaseFromRead('release', held.names, held.nonce, bound);
    } catch (err) {
      // The database did not let us release in time: the lock would stay held
      // by this live process, which no one reaps. Keep trying in the background;
      // a later release(lease) is then a no-op.
      if (isGiveUp(err)) this.#leftovers.add({ names: held.names, nonce: held.nonce, done: () => this.#leases.settled(held) });
      throw err;
    }
    this.#leases.settled(held);
    if (outcome.released.length) {
      if (log.release.enabled) log.release('%s (token %d)', outcome.released.join(','), held.token);
      const released: LockEvents['released'] = { space: this.space, names: outcome.released, token: held.token, owner: held.owner, heldMs: Math.max(0, (this.#clock.now() ?? held.acquiredAt) - held.acquiredAt), mode: held.mode ?? 'exclusive' };
      if (held.limit !== undefined) released.limit = held.limit;
      this.#event('released', released);
      this.#waiters.wake();
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
   * meanwhile: the work should stop and not publish what it did. close()
   * aborts it too, with a ClosedError (ECLOSED; the lock is still held), and
   * waits for the work to return and release (see close()). ECLOSED, before
   * anything is acquired, once close() has begun.
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
    if (this.#closed || this.#closing) throw new ClosedError();
    const running: Running = { done: Promise.resolve() };
    const call = this.#using(names, fn, wait, rest, running);
    running.done = call.then(
      () => {},
      () => {},
    );
    this.#usings.add(running);
    void running.done.then(() => this.#usings.delete(running));
    return call;
  }

  async #using<T>(names: N | readonly N[], fn: (lease: Lease, signal: AbortSignal) => Promise<T> | T, wait: boolean, rest: WaitOptions, running: Running): Promise<T> {
    // acquire() honours signal, and validates (and ignores) timeoutMs too: a bad one is refused, not silently dropped.
    const lease = wait ? await this.wait(names, rest) : await this.acquire(names, rest);
    let kept: KeepAlive;
    try {
      // ECLOSED once close() has begun: then the work does not start, and the lock is released.
      kept = this.keepAlive(lease);
    } catch (err) {
      await this.release(lease).catch(() => {});
      throw err;
    }
    running.nonce = lease.nonce;
    running.keeper = this.#leases.heldOf(lease).keeper;
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
    const held = this.#leases.heldOf(lease);
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
    if (held.whole) {
      throw new InvalidOptionError(`keepAlive: this lease has some of its acquisition's names (${held.names.join(', ')}): keep the acquisition's own lease alive (the one acquire() returned, or its JSON)`);
    }
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
        // What it still holds: a narrowed lease's release takes names out.
        get names() {
          return held.names;
        },
        periodMs: periodOf(held),
        renew: (deadlineMs) => this.#renew(held, deadlineMs),
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
    return this.#leases.issue(lease, this.#leases.heldOf(lease));
  }

  /**
   * Sets a new lease length (from now, database time) on every name the lease
   * holds, or `null` to make it last until released. Returns the renewed lease.
   */
  async extend(lease: Lease, ttlMs: number | null): Promise<Lease> {
    const held = this.#leases.heldOf(lease);
    // Bounded like acquire()'s: an expiry past 2^53 would be written as an inexact number the document refuses.
    if (ttlMs !== null && (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS)) {
      throw new InvalidOptionError(`extend: ttlMs is a positive integer number of milliseconds up to ${MAX_TTL_MS}, or null`);
    }
    // One at a time with the lease's renewals: the last called is the last written, and later renewals keep this length.
    const expiresAt = await inTurn(held, async () => {
      // A lease the work was told it lost stays lost, even where the database would still renew it.
      if (held.lost) throw held.lost;
      const at = await this.#extend(held, ttlMs === null ? undefined : ttlMs, 'extend');
      held.keeper?.renewed(held.localExpiresAt, periodOf(held));
      return at;
    });
    const { expiresAt: _old, ...rest } = this.#leases.leaseOf(held, lease);
    const renewed: Lease = expiresAt === undefined ? { ...rest } : { ...rest, expiresAt: new Date(expiresAt) };
    return this.#leases.issue(renewed, held);
  }

  /**
   * One renewal of a kept-alive lease, in its turn with extend() (inTurn):
   * with the lease's length as last set when its turn comes (an extend()
   * called meanwhile set it; extend(lease, null) leaves only checks to do).
   * Resolves with its new expiry in local monotonic ms.
   */
  #renew(held: Held, deadlineMs: number): Promise<number | undefined> {
    // From now: time spent waiting for its turn counts against the lease's expiry.
    const bound = this.#writer.bound(deadlineMs);
    return inTurn(held, async () => {
      const ttlMs = held.ttlMs;
      if (ttlMs === undefined) {
        // No expiry: only check that it is still ours.
        const r = await this.#writer.gate.run(() => this.#writer.mutate('keepAlive', (doc) => ({ result: T.release(doc, held.names, held.nonce) }), {}, bound));
        if (r.missing.length) throw notHeld(r.missing);
        return undefined;
      }
      await this.#extend(held, ttlMs, 'keepAlive', bound);
      return held.localExpiresAt;
    });
  }

  /** Sets the expiry (database ms from now; undefined: none) of what `held` holds; ENOTHELD, and the lease lost, when it holds nothing. */
  async #extend(held: Held, ttlMs: number | undefined, op: 'extend' | 'keepAlive', within?: Bound): Promise<number | undefined> {
    // Before any read of this renewal: the database's `now` it counts from is later.
    const sent = performance.now();
    const outcome = await this.#writer.gate.run(() =>
      this.#writer.mutate(
        op,
        (doc, snap) => {
          const expiresAt = ttlMs === undefined ? undefined : snap.now + ttlMs;
          const r = T.extend(doc, held.names, held.nonce, expiresAt, snap.now);
          return r.missing.length ? { result: { ...r, expiresAt } } : { write: r.doc, result: { ...r, expiresAt } };
        },
        {},
        within,
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
    const bound = this.#writer.bound();
    const { doc, snap } = await this.#writer.gate.run(() => this.#writer.mutate('list', (doc, snap) => ({ result: { doc, snap } }), {}, bound), this.#writer.expiry(bound, 'list'));
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
    const { doc, snap } = await this.#writer.gate.run(() => this.#writer.mutate('list', (doc, snap) => ({ result: { doc, snap } })));
    const here = localView();
    const names = new Map(T.waiters(doc).map((w) => [w.id, w.names]));
    const out: WaiterInfo[] = [];
    for (const name of Object.keys(doc.q ?? {}).sort()) {
      for (const a of T.waitersAhead(doc, name, undefined, snap.now)) {
        const liveness = judgeEntry(a.intent, snap.now, here);
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
   * A name held shared (a shared lock or semaphore) is released for all its
   * holders at once: without `force` only when every one is provably dead
   * (else ELOCKED naming those that are not, and nothing changes). It then
   * resolves with the first holder removed, `holders` listing every one.
   * (reapDead() removes the dead holders of a name and leaves the live ones.)
   *
   * @example
   * await locks.releaseName('box_update');                  // only if its owner is dead
   * await locks.releaseName('box_update', { force: true }); // whoever holds it
   */
  async releaseName(name: N | string, options: { force?: boolean } = {}): Promise<ReleasedName | null> {
    assertName(name);
    if (!options || typeof options !== 'object' || (options.force !== undefined && typeof options.force !== 'boolean')) {
      throw new InvalidOptionError('releaseName: options are { force?: boolean }');
    }
    const here = localView();
    const bound = this.#writer.bound();
    type Found = { entry: Entry; info: LockInfo };
    const outcome = await this.#writer.gate.run(() =>
      this.#writer.mutate<null | { refused: LockInfo[]; shared: boolean } | { removed: Found[]; shared: boolean; gone: T.Removed[] }>('forced', (doc, snap) => {
        const entry = entryOf(doc, name);
        const group = groupOf(doc, name);
        const found: Found[] = entry
          ? [{ entry, info: lockInfo(name, entry, snap.now, here) }]
          : (group?.h ?? []).map((h) => {
              const e: Entry = { ...h, t: group!.t };
              const info: LockInfo = { ...lockInfo(name, e, snap.now, here), mode: 'shared' };
              if (group!.c !== undefined) info.limit = group!.c;
              return { entry: e, info };
            });
        if (!found.length) return { result: null };
        const shared = !entry;
        const standing = found.filter((f) => f.info.liveness !== 'dead');
        if (standing.length && !options.force) return { result: { refused: standing.map((f) => f.info), shared } };
        // Each holder with its own reason: reaped when its owner was dead, forced otherwise.
        const dead = new Set(found.filter((f) => f.info.liveness === 'dead').map((f) => f.entry.n));
        const reaped = T.removeWhere(doc, (n, e) => n === name && dead.has(e.n), 'reaped', snap.now);
        const forced = T.removeWhere(reaped.doc, (n) => n === name, 'forced', snap.now);
        return { write: forced.doc, result: { removed: found, shared, gone: [...reaped.removed, ...forced.removed] } };
      }, {}, bound),
      this.#writer.expiry(bound, 'releaseName'),
    );
    if (outcome === null) return null;
    if ('refused' in outcome) {
      const hs = outcome.refused;
      const whyOf = (h: LockInfo) => (h.liveness === 'alive' ? 'is alive' : 'cannot be judged from here (another machine or pid namespace)');
      const message = outcome.shared
        ? `${name} is held shared; ${hs.length === 1 ? 'one holder is' : `${hs.length} holders are`} not provably dead: ${hs.map((h) => `${describeHolder(h)}, whose owner ${whyOf(h)}`).join('; ')}: pass { force: true } to release every holder anyway`
        : `${name} is held by ${describeHolder(hs[0]!)}, whose owner ${whyOf(hs[0]!)}: pass { force: true } to release it anyway`;
      throw new LockedError(hs, message);
    }
    log.reap('releaseName %s (%s)', name, outcome.gone.map((g) => g.why).join(','));
    this.#reaped('releaseName', outcome.gone);
    this.#waiters.wake();
    const first: ReleasedName = { ...outcome.removed[0]!.info };
    if (outcome.shared) first.holders = outcome.removed.map((f) => f.info);
    return first;
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
      const bound = this.#writer.bound();
      return await this.#writer.gate.run(() => this.#writer.repair(expectedRaw, bound), this.#writer.expiry(bound, 'repair'));
    } catch (err) {
      throw toLockError(err, 'repair');
    }
  }

  /**
   * Closes the table: pending waits fail with ECLOSED, and so does a using()
   * or keepAlive() called from now on. The signal of using() work still
   * running aborts with a ClosedError (code ECLOSED; the lock is still held):
   * close() waits for that work to return and its lock to be released, up to
   * `timeoutMs` (default 30,000; 0: no wait), renewing its lease meanwhile.
   * Then renewals stop and leases stay held (release them first); the signal
   * of a lease still kept alive aborts (reason expired) when it runs out, and
   * work that outlived the timeout cannot release: its using() fails with
   * ECLOSED. Closes the pool if this table opened it (from a URI); a pool you
   * passed stays open. close() from inside using() work does not wait for that
   * work. EINVALIDOPTION for a bad timeoutMs. See docs/long-tasks.md.
   *
   * @example
   * process.once('SIGTERM', () => void locks.close({ timeoutMs: 10_000 }));
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options?.timeoutMs ?? CLOSE_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 2_147_483_647) {
      throw new InvalidOptionError('close: timeoutMs is how long to wait for using() work to stop, an integer number of milliseconds ≥ 0');
    }
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    this.#waiters.wake();
    // Pending waits end with ECLOSED and leave the line (this process stays
    // alive, so no one else would drop their intents before they expire).
    await this.#waiters.settled();
    // using() work under way is told to stop, and released while the pool is
    // still open: else its release would find the table closed and leave the
    // lock held by this live process. Not the work close() was called from.
    await this.#stopUsings(timeoutMs);
    // Renewals stop (their leases stay held until they expire or are released
    // elsewhere); work may still run under them, so their signals still abort
    // when they run out.
    await Promise.all([...this.#leases.values()].map((h) => h.keeper?.stopRenewing()));
    // What is in flight finishes first (each within its bound): a statement a
    // caller gave up on (an abort) may still land and leave a leftover.
    await this.#writer.gate.whenIdle();
    // One last try at what is still to be released, while the pool is open.
    await this.#leftovers.flush();
    this.#closed = true;
    this.#waiters.stop();
    this.#writer.gate.close();
    this.#waiters.wake();
    await this.#writer.end();
  }

  // ---------------------------------------------------------------------------

  /** Aborts the signal of every using() work under way (ECLOSED) and waits, up to `timeoutMs`, for each to return and release. */
  async #stopUsings(timeoutMs: number): Promise<void> {
    const inside = working.getStore();
    const running = [...this.#usings].filter((u) => !(u.nonce !== undefined && inside?.has(u.nonce)));
    if (!running.length) return;
    const reason = new ClosedError('the lock table is closing: stop the work (its lock is still held, and is released when the work returns)');
    for (const u of running) u.keeper?.interrupt(reason);
    let timer: NodeJS.Timeout | undefined;
    const over = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([Promise.all(running.map((u) => u.done)), over]);
    clearTimeout(timer);
  }

  /**
   * Releases whatever is still held under `nonce` (background clean-up of
   * leftovers.ts). `maybe`: a write under that nonce may still land (its
   * outcome is unknown), so finding nothing held settles it only as the
   * writer's fenced() says.
   */
  async #releaseNonce(names: readonly string[], nonce: string, deadlineMs?: number, maybe = false): Promise<void> {
    const bound = this.#writer.bound(deadlineMs);
    const outcome = maybe
      ? await this.#writer.gate.run(
          () =>
            this.#writer.mutate(
              'background release',
              fenced((doc) => {
                const r = T.release(doc, names, nonce);
                return r.released.length ? { write: r.doc, result: r } : { result: r };
              }),
              {},
              bound,
            ),
          this.#writer.expiry(bound, 'background release'),
        )
      : await this.#writer.releaseFromRead('background release', names, nonce, bound);
    if (outcome.released.length) {
      log.release('%s released in the background', outcome.released.join(','));
      this.#waiters.wake();
    }
  }

  /** Removes the locks `match` selects, and the waiters in line it selects (by their owner and expiry) in the same write. */
  async #removeWhere(
    why: 'wiped' | 'owner' | 'reaped',
    match: (name: string, held: { o: Entry['o']; e?: number | undefined }) => boolean,
    before?: (snap: Snapshot) => void,
    dropStrays = false,
  ): Promise<Holder[]> {
    const { removed, dropped } = await this.#writer.removeWhere(why, match, before, dropStrays);
    if (dropped) this.#waiters.wake();
    if (removed.length) {
      this.#waiters.wake();
      this.#reaped(why === 'wiped' ? 'releaseAll' : why === 'owner' ? 'releaseByOwner' : 'reapDead', removed);
    }
    return removed.map((x) => toHolder(x.name, x.entry));
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
      const event: LockEvents['acquired'] = { space: this.space, op, names: lease.names, token: lease.token, owner: lease.owner, waitedMs: performance.now() - started, mode: lease.mode ?? 'exclusive' };
      if (lease.expiresAt) event.expiresAt = lease.expiresAt;
      if (lease.limit !== undefined) event.limit = lease.limit;
      this.#event('acquired', event);
    } else if (!contendedBefore) {
      this.#event('contended', { space: this.space, op, names, holders: outcome.blockers.map((b) => holderOf(b)), waiters: outcome.ahead.map(waitingOf) });
    }
    return outcome;
  }

  #reaped(op: LockEvents['reaped']['op'], removed: T.Removed[]): void {
    this.#event('reaped', { space: this.space, op, locks: removed.map((x) => ({ ...toHolder(x.name, x.entry), reason: x.why })), by: this.owner });
  }

  /** resolveCall(), with the table's default lease length. */
  #resolveCall(names: unknown, options: unknown): { names: string[]; options: WaitOptions } {
    const call = resolveCall(names, options);
    if (call.options.ttlMs === undefined && this.#options.ttlMs !== undefined) call.options = { ...call.options, ttlMs: this.#options.ttlMs };
    return call;
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

function notHeld(missing: T.ReleaseOutcome['missing']): NotHeldError {
  const heldBy = missing.flatMap((m) => (m.heldBy ? [toHolder(m.name, m.heldBy)] : []));
  return new NotHeldError(missing.map((m) => m.name), missing[0]!.reason, heldBy);
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
