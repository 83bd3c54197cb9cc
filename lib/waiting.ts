// Waiting: wait()'s loop, the one poller per table that wakes its waiters,
// and fair waiting's line (each wait() in line keeps an intent in the
// document, renewed while it waits, dropped when it ends). The attempts
// themselves, and every write, are the table's (given as ports).
import createDebug from 'debug';
import { Bound, watchAbort } from './bound.js';
import { toHolder, toWaiting, type Intent, type LockDocument } from './document.js';
import { AbortError, ClosedError, DeadlockError, TimeoutError, type Holder, type Waiting } from './errors.js';
import type { LockEvents } from './events.js';
import type { Lease } from './lease.js';
import { judgeEntry } from './liveness.js';
import type { ResolvedOptions, WaitOptions } from './options.js';
import { nonce as newNonce } from './nonce.js';
import { pollView, type Owner } from './owner.js';
import type { Snapshot } from './store.js';
import * as T from './transitions.js';
import { dueIn, inFront, movedUp, paced, seesFree, shouldWake, viewOf, watchPaths, type Pace, type View, type Watched } from './watch.js';
import { fenced, isGiveUp, type Step } from './writer.js';

const log = createDebug('locktable:wait');

/**
 * An attempt that found a name taken: who holds it, who is in line first, at
 * which version; `positions` when its wait is in line (its place in each),
 * `added` when this attempt's write put it there.
 */
export type Blocked = { blockers: T.Blocker[]; ahead: T.Ahead[]; version: number; positions?: Record<string, number>; added?: boolean };

interface Waiter extends Watched {
  /** `free`: the poll saw every name it waits for held by no one, and no one in line in front of it. */
  wake(free?: boolean): void;
}

/** A wait() of this table in line (fair waiting): its id and names, for renewal and close(). */
interface Queued {
  names: readonly string[];
  /** Whether its intent is in the document, as far as this table knows. */
  inLine: boolean;
  /** performance.now() when it got in line. */
  since: number;
  /** An attempt of it failed (cut by its bound or signal, say): a write of it that puts it in line may still land. */
  unsettled?: boolean;
}

type DequeuedReason = LockEvents['dequeued']['reason'];

/** How long an aborted or timed-out wait waits to leave the line before it returns (the rest goes on in the background), ms. */
const LEAVE_GRACE_MS = 50;

/** What the waiters need of their table. */
export interface WaitingPorts {
  space: string;
  owner: Owner;
  options: Pick<ResolvedOptions, 'wait' | 'retry'>;
  /**
   * One attempt of wait(): `waiter` is its id in line (none when barging),
   * `bound` when the attempt gives up, `take` when the poll saw the way
   * clear (lib/acquiring.ts attempt()).
   */
  acquire(names: string[], options: WaitOptions, contended: boolean, waiter: string | undefined, bound: Bound, take: boolean): Promise<{ lease: Lease } | Blocked>;
  /** Publishes what an attempt did (acquired, or contended the first time); returns it. */
  observe(names: string[], startedAt: number, outcome: { lease: Lease } | Blocked, contended: boolean): { lease: Lease } | Blocked;
  /** The blockers held by the using() work this wait() was called from (it would wait for itself). */
  ownBlockers(blockers: readonly T.Blocker[]): T.Blocker[];
  /** The poll's read (Writer.readVersion): what the document holds at `paths` (null when the version did not move since `since`). */
  readVersion(since: number, paths: readonly string[]): Promise<{ version: number; seen: unknown[] | null } | undefined>;
  /** The database's time as estimated here, ms; undefined before any read. */
  now(): number | undefined;
  /** A read-decide-write (Writer.mutate, through the gate), within `within` ms (default retry.deadlineMs). */
  mutate<R>(what: string, step: (doc: LockDocument, snap: Snapshot) => Step<R>, within?: number): Promise<R>;
  event<K extends 'queued' | 'dequeued'>(kind: K, event: LockEvents[K]): void;
  isClosed(): boolean;
  isClosing(): boolean;
}

/** wait()'s waiters of one table, and their place in line. */
export class Waiters {
  readonly #ports: WaitingPorts;
  readonly #waiters = new Set<Waiter>();
  /** This table's wait() calls in line, by waiter id. */
  readonly #queued = new Map<string, Queued>();
  #intentTimer: NodeJS.Timeout | undefined;
  #polling = false;
  /** The version the last poll saw; -1 makes the next poll check the blockers. */
  #polledVersion = -1;
  readonly #activeWaits = new Set<Promise<void>>();

  constructor(ports: WaitingPorts) {
    this.#ports = ports;
  }

  /** wait(), its call resolved: tracked so that close() lets it end first. */
  wait(call: { names: string[]; options: WaitOptions }): Promise<Lease> {
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

  /** Settles when every wait() running now (and its leaving the line) has ended. */
  settled(): Promise<unknown> {
    return Promise.allSettled([...this.#activeWaits]);
  }

  /** Wakes every waiter: its next attempt decides from a read. */
  wake(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  /** close(): no more renewals of intents. */
  stop(): void {
    if (this.#intentTimer) clearTimeout(this.#intentTimer);
  }

  async #wait(call: { names: string[]; options: WaitOptions }): Promise<Lease> {
    const { signal, timeoutMs } = call.options;
    const startedAt = performance.now();
    const elapsed = () => performance.now() - startedAt;
    const id = call.options.barge ? undefined : newNonce();
    const timeout = (o: Blocked) => new TimeoutError(timeoutMs!, o.blockers.map((b) => holderOf(b)), o.ahead.map(waitingOf));
    let reason: DequeuedReason = 'failed';
    // The last attempt that found the names taken: what a timeout reports.
    let last: Blocked | undefined;
    // How fast its line moves, from one sleep to the next.
    const pace: Pace = { movedAt: performance.now() };
    // The last poll saw the way clear: the next attempt takes from the front of the line in one statement.
    let take = false;
    if (id !== undefined) this.#queued.set(id, { names: call.names, inLine: false, since: startedAt });
    try {
      for (let contended = false; ; contended = true) {
        if (signal?.aborted) throw new AbortError(signal.reason);
        if (this.#ports.isClosing()) throw new ClosedError();
        // After a wake-up, decide from a read: every waiter of the name woke at
        // once, a read does not queue on the row lock, and only those that find
        // it free go on to write.
        // Each attempt is bounded by retry.deadlineMs, and by what is left of timeoutMs and the signal.
        const rest = timeoutMs === undefined ? Infinity : Math.max(0, timeoutMs - elapsed());
        // Woken by its timer a fraction of a ms early: out of time, not worth another attempt.
        if (last && rest < 1) throw timeout(last);
        let attempt;
        try {
          attempt = await this.#ports.acquire(call.names, call.options, contended, id, new Bound(Math.min(this.#ports.options.retry.deadlineMs, rest), signal), take);
        } catch (err) {
          if (id !== undefined) this.#queued.get(id)!.unsettled = true;
          // The database did not let the attempt through before the wait's own timeout: ETIMEDOUT, the fault as cause.
          if (timeoutMs !== undefined && isGiveUp(err) && elapsed() >= timeoutMs) {
            throw new TimeoutError(timeoutMs, last?.blockers.map((b) => holderOf(b)) ?? [], last?.ahead.map(waitingOf) ?? [], err);
          }
          throw err;
        }
        const outcome = this.#ports.observe(call.names, startedAt, attempt, contended);
        if ('lease' in outcome) {
          log('%s acquired after %d ms', call.names.join(','), Math.round(elapsed()));
          reason = 'acquired';
          return outcome.lease;
        }
        last = outcome;
        if (id !== undefined && outcome.positions) this.#inLine(id, call.names, outcome.positions, outcome.added === true);
        const own = this.#ports.ownBlockers(outcome.blockers);
        if (own.length) throw new DeadlockError(own.map((b) => holderOf(b)));
        const left = timeoutMs === undefined ? undefined : timeoutMs - elapsed();
        if (left !== undefined && left <= 0) throw timeout(outcome);
        const shared = call.options.mode === 'shared' || call.options.limit !== undefined;
        const woke: boolean | 'free' = await this.#sleepUntilChange({ version: outcome.version, blockers: outcome.blockers, ahead: outcome.ahead, ...(id === undefined ? {} : { waiter: id }), anyGone: shared, pace }, left, signal);
        if (!woke && timeoutMs !== undefined && elapsed() >= timeoutMs) throw timeout(outcome);
        take = woke === 'free';
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
      // A wait that does not know it is in line (its get-in-line write may
      // have applied unseen) does not wait for that either.
      if (id !== undefined) {
        const known = this.#queued.get(id)?.inLine === true;
        const leaving = this.#leaveLine(id, reason);
        if (reason === 'aborted' || reason === 'timeout' || !known) {
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

  // wait() support: one poller per table, however many waiters. It reads the
  // version, and when that moved who holds and who waits for the names its
  // waiters watch (lib/watch.ts); a waiter wakes when everything it saw in its
  // way is gone (a shared or semaphore waiter: any of it), when a holder or a
  // waiter in front is judged dead from here, or when a lease or an intent
  // has expired by the database clock.
  #sleepUntilChange(watched: Watched, timeoutMs: number | undefined, signal?: AbortSignal): Promise<boolean | 'free'> {
    return new Promise<boolean | 'free'>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let unwatch: (() => void) | undefined;
      const done = (value: boolean | 'free' | Error) => {
        this.#waiters.delete(waiter);
        if (timer) clearTimeout(timer);
        unwatch?.();
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      const onAbort = () => done(new AbortError(signal!.reason));
      const waiter: Waiter = { ...watched, wake: (free) => done(this.#ports.isClosed() || this.#ports.isClosing() ? new ClosedError() : free ? 'free' : true) };
      if (this.#ports.isClosing()) return waiter.wake();
      // Aborted while the last attempt was in flight: the 'abort' event has already fired.
      if (signal?.aborted) return onAbort();
      if (timeoutMs !== undefined) timer = setTimeout(() => done(false), timeoutMs);
      if (signal?.aborted) return onAbort();
      if (signal) unwatch = watchAbort(signal, onAbort);
      this.#waiters.add(waiter);
      // It saw its blockers at another version than the last poll: the next poll must check them.
      if (watched.version !== this.#polledVersion) this.#polledVersion = -1;
      void this.#poll();
    });
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    const { pollMinMs, pollMaxMs } = this.#ports.options.wait;
    const here = pollView();
    // The back-off: from pollMinMs up to pollMaxMs while nothing wakes.
    let interval = pollMinMs;
    // The next sleep: the back-off's, or sooner when a waiter's turn is due (dueIn).
    let sleep = pollMinMs;
    try {
      while (this.#waiters.size && !this.#ports.isClosed()) {
        await new Promise((r) => setTimeout(r, sleep));
        let seen: { version: number; view: View | null } | undefined;
        try {
          const since = this.#polledVersion;
          const paths = watchPaths(this.#waiters);
          const read = await this.#ports.readVersion(since, paths);
          seen = read && { version: read.version, view: read.seen && viewOf(paths, read.seen) };
          if (seen && this.#polledVersion === since) this.#polledVersion = seen.version;
        } catch (err) {
          if (this.#ports.isClosed()) break;
          log('poll failed, will retry: %s', (err as Error).message);
          interval = Math.min(pollMaxMs, interval * 2);
          sleep = interval;
          continue;
        }
        // Known after the poll's read; without it (no row) expiry is not judged here.
        const now = this.#ports.now() ?? Number.NEGATIVE_INFINITY;
        let woke = 0;
        let hurry = false;
        let due = Infinity;
        const at = performance.now();
        for (const w of [...this.#waiters]) {
          const holderGone =
            w.blockers.some((b) => judgeEntry(b.entry, now, here) === 'dead') ||
            (w.ahead ?? []).some((a) => judgeEntry(a.intent, now, here) === 'dead');
          // A missing row (never, for a migrated space) wakes everyone: the attempt says why.
          if (!seen || shouldWake(w, seen, holderGone)) {
            w.wake(!holderGone && seen?.view ? seesFree(w, seen.view) : false);
            woke++;
            continue;
          }
          // How many stand in front of it (as it saw them until a poll read the line).
          const was = (w.front ??= inFront(w));
          if (seen.view) {
            const front = inFront(w, seen.view);
            // Moved up near the front of its line: its turn may come within a few short handoffs.
            if (movedUp(w, seen.view, front)) hurry = true;
            if (w.pace && front < was) Object.assign(w.pace, paced(w.pace, was - front, at));
            w.front = front;
          }
          // Its turn comes sooner than the back-off would poll: poll sooner.
          if (w.pace) due = Math.min(due, dueIn(w.front, w.pace, at) ?? Infinity);
        }
        interval = woke || hurry ? pollMinMs : Math.min(pollMaxMs, Math.ceil(interval * 1.5));
        sleep = Math.max(pollMinMs, Math.min(interval, Math.round(due)));
      }
    } finally {
      this.#polling = false;
    }
  }

  // Fair waiting: a wait() in line keeps its intent alive (one write renews
  // every waiter of this table, every third of the intent's lifetime), and
  // leaves the line when it ends.
  // `added`: this attempt's write put it in line; otherwise it was there
  // already (known, or put there by a write whose reply was lost).
  #inLine(id: string, names: readonly string[], positions: Record<string, number>, added: boolean): void {
    const q = this.#queued.get(id);
    if (!q || (q.inLine && !added)) return;
    // Back in line after it was dropped (its intent lapsed or was judged dead).
    if (q.inLine) this.#ports.event('dequeued', { space: this.#ports.space, names, waiter: id, reason: 'dropped', waitedMs: performance.now() - q.since });
    q.inLine = true;
    q.since = performance.now();
    this.#ports.event('queued', { space: this.#ports.space, names, waiter: id, owner: this.#ports.owner, positions });
    this.#scheduleRenewal();
  }

  async #leaveLine(id: string, reason: DequeuedReason): Promise<void> {
    const q = this.#queued.get(id);
    this.#queued.delete(id);
    if (!q) return;
    // Acquiring took it out of line in the same write. Otherwise it may be in
    // line without knowing it (inLine unset): the write that put it there
    // applied but its reply never came (a retry found the intent already
    // there), or may still land (an attempt was cut with it in flight).
    if (reason !== 'acquired' && !this.#ports.isClosed()) {
      await this.#dropIntents((i) => i.n === id, q.unsettled === true).catch((err: Error) => log('could not leave the line (the intent expires on its own): %s', err.message));
    }
    if (q.inLine) this.#ports.event('dequeued', { space: this.#ports.space, names: q.names, waiter: id, reason, waitedMs: performance.now() - q.since });
  }

  /**
   * Removes the intents `match` selects; a wake-up for waiters of this table
   * behind them. `maybe`: a write that adds one may still land, so finding
   * none settles it only as fenced() says.
   */
  async #dropIntents(match: (intent: Intent) => boolean, maybe = false): Promise<void> {
    const drop = (doc: LockDocument): Step<boolean> => {
      const next = T.dropWaiters(doc, match);
      return next !== doc ? { write: next, result: true } : { result: false };
    };
    const dropped = await this.#ports.mutate('dequeue', maybe ? fenced(drop) : drop, Math.min(2_000, this.#ports.options.retry.deadlineMs));
    if (dropped) this.wake();
  }

  #scheduleRenewal(): void {
    if (this.#intentTimer || this.#ports.isClosed()) return;
    this.#intentTimer = setTimeout(() => void this.#renewIntents(), Math.max(1, Math.floor(this.#ports.options.wait.intentTtlMs / 3)));
    this.#intentTimer.unref();
  }

  async #renewIntents(): Promise<void> {
    this.#intentTimer = undefined;
    const ids = new Set([...this.#queued].filter(([, q]) => q.inLine).map(([id]) => id));
    if (!ids.size || this.#ports.isClosed()) return;
    try {
      const ttl = this.#ports.options.wait.intentTtlMs;
      const missing = await this.#ports.mutate('renew', (doc, snap) => {
        const r = T.renewWaiters(doc, ids, snap.now + ttl);
        return r.doc === doc ? { result: r.missing } : { write: r.doc, result: r.missing };
      });
      // Dropped meanwhile (expired while this process could not renew, or
      // judged dead): the next attempt gets back in line, at the back.
      if (missing.length) this.wake();
    } catch (err) {
      log('renewing intents failed, will retry: %s', (err as Error).message);
    }
    this.#scheduleRenewal();
  }
}

/** A waiter in front, as errors and events show it (with the conflict rule that puts it in the way, if that is why). */
export function waitingOf(a: T.Ahead): Waiting {
  return toWaiting(a.name, a.intent, a.position, a.rule);
}

/** A holder in the way, as errors and events show it (with the conflict rule that puts it in the way, if that is why). */
export function holderOf(b: T.Blocker): Holder {
  return toHolder(b.name, b.entry, b.rule);
}
