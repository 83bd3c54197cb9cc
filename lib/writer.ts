// Writing: every statement of one lock table goes through here. The one
// write path (read, pure step, compare-and-swap, lost replies settled by a
// re-read), the one-statement path the gate batches acquires and releases
// into (lib/batch.ts, store.ts fastWrite) with the settling of its lost
// replies, and the bounds every call gives up at (lib/bound.ts).
import createDebug from 'debug';
import { applied, canJoin, ownerPath, planFast, settleFast, type BatchContext, type Member, type Outcome } from './batch.js';
import { Bound } from './bound.js';
import type { DbClock } from './clock.js';
import { Causal, NodeList, openNodes } from './cluster.js';
import { BOUND_CODES, boundedDb, connectionsSettled, openDb, quoteTable, type Conn, type Db } from './db.js';
import { emptyDocument, ownerKey, parseDocument, serializeDocument, strayOwnerRecords, type Entry, type LockDocument } from './document.js';
import { ClosedError, ContendedError, DatabaseError, InvalidOptionError, LockError } from './errors.js';
import type { LockEvents } from './events.js';
import { isAmbiguous, isTransient, toLockError, toUnresolvedError } from './faults.js';
import { Gate, type Expiry } from './gate.js';
import type { ResolvedOptions } from './options.js';
import { backoff } from './retry.js';
import { confirmRelease } from './settle.js';
import { createSpace, dropOwnerRecord, fastWrite, readNow, readSpace, readSpaceLocked, readVersion, writeIfVersion, type Snapshot } from './store.js';
import * as T from './transitions.js';

/** ER_BAD_FIELD_ERROR: a column the statement names does not exist. */
const BAD_FIELD = 1054;

const log = {
  release: createDebug('locktable:release'),
  retry: createDebug('locktable:retry'),
};

export type Step<R> = { write?: LockDocument; result: R };

/**
 * A mutate() step for clean-up after a write whose outcome is unknown (it may
 * still land): when `step` finds nothing to change, that settles it only once a
 * write of the row has committed after the read that found nothing. After it
 * the late write can no longer apply (a compare-and-swap finds another version,
 * a one-statement write is past its time, and on Galera certification refuses
 * it). When no one else writes, the step makes that write itself, the document
 * unchanged. A new function per operation: it keeps the version of its last read.
 */
export function fenced<R>(step: (doc: LockDocument, snap: Snapshot) => Step<R>): (doc: LockDocument, snap: Snapshot) => Step<R> {
  let clear: number | undefined;
  return (doc, snap) => {
    const s = step(doc, snap);
    if (s.write !== undefined || (clear !== undefined && snap.version > clear)) return s;
    clear = snap.version;
    return { write: doc, result: s.result };
  };
}

/** How mutate() settles a write whose reply was lost (the connection broke after it was sent). */
export interface Settle<R> {
  /** Told at once, with the version the lost write was to replace. */
  lost?(expected: number): void;
  /** On the next read that succeeds: the operation's result if the lost write was applied, undefined if not. */
  confirm?(doc: LockDocument, snap: Snapshot): R | undefined;
  /** A write of this operation was sent before (a one-statement write not yet settled) and may still land: every read goes through `confirm` too. */
  pending?: boolean;
}

/**
 * Where statements go: one pool, or a node list (lib/cluster.ts); causal on
 * Galera. `raw` is the handle underneath (with its mysql2 pool, when there is
 * one), which conn() bounds per call. `end` when we opened it.
 */
export interface Statements {
  pool: Causal;
  raw: Db;
  end?: () => Promise<void>;
  nodes?: NodeList;
  mysql2?: Db['mysql2'];
}

/** The lock table's name, validated and quoted for SQL, and the handle its statements go through (a pool or node list opened from a URI, or the one given). */
export function openStatements(options: ResolvedOptions): { table: string; db: Statements } {
  const table = quoteTable(options.table);
  const cluster = openNodes(options.db, options.poolSize, options.retry.deadlineMs);
  if (cluster) {
    return { table, db: { pool: new Causal(cluster.nodes), raw: { pool: cluster.nodes }, nodes: cluster.nodes, ...(cluster.owned ? { end: () => cluster.nodes.end() } : {}) } };
  }
  const db = openDb(options.db, options.poolSize);
  return { table, db: { pool: new Causal(db.pool), raw: db, ...(db.mysql2 ? { mysql2: db.mysql2 } : {}), ...(db.end ? { end: db.end } : {}) } };
}

/** What the writer needs of its table. */
export interface WriterPorts {
  /** Whether the table is closed (close() has let what was in flight finish): every statement then fails with ECLOSED. */
  isClosed(): boolean;
  /** Publishes a `retried` event (the table's one event sink). */
  retried(event: LockEvents['retried']): void;
}

export interface WriterConfig {
  options: ResolvedOptions;
  space: string;
  /** From openStatements(). */
  table: string;
  db: Statements;
  /** The table's estimate of the database's clock: the one-statement writes take their time from it, and every read updates it. */
  clock: DbClock;
  /** This table's owner, as the one-statement writes record it. */
  batch: BatchContext;
  ports: WriterPorts;
}

/**
 * The statements of one lock table: at most maxInFlight at once (the gate),
 * each call within its bound. Every method that writes resolves with the
 * outcome of the write; what it means for leases, waiters and events is the
 * table's business.
 */
export class Writer {
  readonly space: string;
  /** At most maxInFlight statements at once; acquires and releases queued behind them go as one statement. */
  readonly gate: Gate<Member, Outcome>;
  readonly #options: ResolvedOptions;
  readonly #db: Statements;
  /** The lock table's name, validated and quoted for SQL. */
  readonly #table: string;
  readonly #clock: DbClock;
  readonly #batch: BatchContext;
  readonly #ports: WriterPorts;
  /** Whether a one-statement acquire wrote this table's owner record: end() then drops it if no lock refers to it. */
  #wroteOwnerRecord = false;

  constructor(config: WriterConfig) {
    this.#options = config.options;
    this.space = config.space;
    this.#table = config.table;
    this.#db = config.db;
    this.#clock = config.clock;
    this.#batch = config.batch;
    this.#ports = config.ports;
    this.gate = new Gate<Member, Outcome>({
      limit: this.#options.maxInFlight,
      runBatch: async (members) => (await this.#writeFast(members)).map((value) => ({ ok: true as const, value })),
      canJoin,
      closedError: () => new ClosedError(),
    });
  }

  /**
   * Release through read-decide-write: removes what is still held under
   * `nonce`, says why the rest is gone. `pending`: a release statement of it
   * may still land, so entries gone without a tombstone count as released.
   */
  releaseFromRead(what: string, names: readonly string[], nonce: string, bound: Bound, pending = false): Promise<T.ReleaseOutcome> {
    return this.gate.run(() =>
      this.mutate(
        what,
        (doc) => {
          const r = T.release(doc, names, nonce);
          return r.released.length ? { write: r.doc, result: r } : { result: r };
        },
        { confirm: (doc) => confirmRelease(doc, names, nonce), pending },
        bound,
      ),
      this.expiry(bound, what),
    );
  }

  /** Removes the locks `match` selects, and the waiters in line it selects (by their owner and expiry) in the same write; `dropped`: whether it dropped any waiter. */
  removeWhere(
    why: 'wiped' | 'owner' | 'reaped',
    match: (name: string, held: { o: Entry['o']; e?: number | undefined }) => boolean,
    before?: (snap: Snapshot) => void,
    dropStrays = false,
  ): Promise<{ removed: T.Removed[]; dropped: boolean }> {
    const bound = this.bound();
    return this.gate.run(() =>
      this.mutate(why, (doc, snap) => {
        before?.(snap);
        const r = T.removeWhere(doc, match, why, snap.now);
        const next = T.dropWaiters(r.doc, (intent, name) => match(name, intent));
        const result = { removed: r.removed, dropped: next !== r.doc };
        // A full write keeps only the owner records its entries refer to.
        const strays = dropStrays && strayOwnerRecords(snap.raw) > 0;
        return r.removed.length || result.dropped || strays ? { write: next, result } : { result };
      }, {}, bound),
      this.expiry(bound, why),
    );
  }

  /** wait()'s poll (lib/store.ts readVersion), within retry.deadlineMs; it keeps the clock estimate anchored. */
  readVersion(since: number, paths: readonly string[]): Promise<{ version: number; seen: unknown[] | null } | undefined> {
    const bound = this.bound();
    return this.gate.run(() => this.#clock.track(() => readVersion(this.#conn(bound), this.#table, this.space, since, paths)), this.expiry(bound, 'poll'));
  }

  /** repair(): replaces the document with an empty one, only if its text is still exactly `expectedRaw`. */
  async repair(expectedRaw: string, bound: Bound): Promise<{ replaced: string }> {
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

  /** The end of close(): drops this table's owner record if it wrote one (best effort), and ends the pool if the table opened it. */
  async end(): Promise<void> {
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

  /**
   * The gate's batch runner: the queued acquires and releases as one
   * conditional statement. Each member gets its outcome, or `refused` when the
   * statement did not apply for it (it then reads and decides on its own).
   */
  async #writeFast(members: Member[]): Promise<Outcome[]> {
    const refused = (): Outcome[] => members.map(() => ({ kind: 'refused' }));
    const { baseMs, capMs } = this.#options.retry;
    // The statement of a batch is bounded by retry.deadlineMs; each member's
    // caller gives up on its own bound (withinBound) whatever the statement does.
    const bound = this.bound();
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
        this.#ports.retried({ space: this.space, op: operationOf(members), attempt: attempt + 1, reason: String((err as { code?: unknown }).code ?? (err as Error).message) });
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

  /**
   * The one write path: read (version, document, database time) → pure step →
   * compare-and-swap. A lost race or a transient fault is retried with jittered
   * backoff until the bound (retry.deadlineMs, or the caller's timeout or
   * signal): every statement, and every wait for a connection, ends with it.
   * When a write's reply was lost, `confirm` decides from the re-read document
   * whether it was applied.
   */
  async mutate<R>(
    what: string,
    step: (doc: LockDocument, snap: Snapshot) => Step<R>,
    settle: Settle<R> = {},
    within: Bound | number = this.#options.retry.deadlineMs,
  ): Promise<R> {
    const bound = typeof within === 'number' ? this.bound(within) : within;
    const { baseMs, capMs } = this.#options.retry;
    const db = this.#conn(bound);
    // A write was sent and its reply lost: until a read settles it, it may have been applied.
    let uncertain = settle.pending === true;
    // Once a write of this operation may have landed unseen, it may land at any
    // moment until this operation's own write does: every later read confirms
    // first, not just the next (a release would otherwise find its own entries
    // gone and report them lost).
    let confirming = uncertain;
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
        if (confirming && settle.confirm) {
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
            confirming = true;
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
      this.#ports.retried({ space: this.space, op: what, attempt: attempt + 1, reason: failure ? String((failure as { code?: unknown }).code ?? (failure as Error).message) : 'lost the race' });
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

  // Bounds: every call gives up after its own bound (lib/bound.ts).

  /** A bound of `ms` (default retry.deadlineMs) from now, and `signal`. */
  bound(ms: number = this.#options.retry.deadlineMs, signal?: AbortSignal): Bound {
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
  expiry(bound: Bound, what: string): Expiry {
    return (expire) => bound.onFire(() => expire(this.#boundError(bound, what)));
  }

  /**
   * `work` (already queued or running), but given up when `bound` fires first.
   * Whatever it does later is passed to `late` / `lateError`: it can no longer
   * reach the caller.
   */
  withinBound<V>(work: Promise<V>, bound: Bound, what: string, late?: (value: V) => void, lateError?: (err: unknown) => void): Promise<V> {
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

  #assertOpen(): void {
    if (this.#ports.isClosed()) throw new ClosedError();
  }
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
export function isGiveUp(err: unknown): boolean {
  return err instanceof LockError && (err.code === 'EDATABASE' || err.code === 'ECONTENDED');
}
