// The acquisitions a table holds, and the lease objects that stand for
// them: a lease this table made or validated maps to its acquisition, so that
// release(), extend() and keepAlive() need not check it again, and a lease
// rebuilt from JSON finds the acquisition of its nonce.
import type { DbClock } from './clock.js';
import { InvalidOptionError, type NotHeldError } from './errors.js';
import type { Keeper } from './keepalive.js';
import { parseLease, type Lease } from './lease.js';
import type { Owner } from './owner.js';
import type { KeepAlive } from './types.js';

/** Default check period of a lease kept alive that does not expire, ms. */
const CHECK_MS = 5_000;

/** Everything of one acquisition that every lease object of it shares. */
export interface Held {
  readonly nonce: string;
  /** The names it still holds, as far as this table knows: a narrowed lease's release takes its names out. */
  names: readonly string[];
  /** The names it was acquired with. */
  readonly acquiredNames: readonly string[];
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
  /** For a narrowed lease (some of an acquisition's names): the acquisition it is part of. */
  readonly whole?: Held;
  /** The end of the last renewal, extend() or narrowed release queued on this acquisition (see inTurn()). */
  turn?: Promise<void>;
  /** 'shared' for a shared lock or semaphore (from its lease): its release goes straight to the read and write, the one statement only releases exclusive entries. */
  readonly mode?: 'shared';
  /** A semaphore's limit, from its lease. */
  readonly limit?: number;
}

/** The acquisitions of one table not yet released, and every lease object of them. */
export class HeldLeases {
  readonly #space: string;
  /** The table's estimate of the database's clock, to place a lease's expiry on the local monotonic clock. */
  readonly #clock: DbClock;
  /** The table's release(), for `await using`. */
  readonly #release: (lease: Lease) => Promise<void>;
  /** Every lease object this table made or validated → its acquisition: release() and extend() need not re-check them. */
  readonly #heldBy = new WeakMap<Lease, Held>();
  /** Acquisitions not yet released, by nonce: a lease rebuilt from JSON finds its own. */
  readonly #held = new Map<string, Held>();

  constructor(space: string, clock: DbClock, release: (lease: Lease) => Promise<void>) {
    this.#space = space;
    this.#clock = clock;
    this.#release = release;
  }

  /** The acquisition of `nonce`, while it is not released. */
  get(nonce: string): Held | undefined {
    return this.#held.get(nonce);
  }

  /** Every acquisition not yet released. */
  values(): IterableIterator<Held> {
    return this.#held.values();
  }

  /** Freezes a lease this table made and ties it to its acquisition; `await using` releases it where the runtime has Symbol.asyncDispose. */
  issue(lease: Lease, held: Held): Lease {
    const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
    if (dispose) Object.defineProperty(lease, dispose, { value: () => this.#release(lease) });
    Object.freeze(lease);
    this.#heldBy.set(lease, held);
    return lease;
  }

  /** A new acquisition, from its first lease. */
  newHeld(lease: Lease, ttlMs: number | undefined): Held {
    const held: Held = {
      nonce: lease.nonce,
      names: lease.names,
      acquiredNames: lease.names,
      token: lease.token,
      owner: lease.owner,
      acquiredAt: lease.acquiredAt.getTime(),
      ttlMs,
      expiresAt: lease.expiresAt?.getTime(),
      localExpiresAt: this.#localTime(lease.expiresAt?.getTime()),
      released: false,
    };
    // Only when present, without spreading an object per acquisition.
    if (lease.mode) (held as { mode?: 'shared' }).mode = lease.mode;
    if (lease.limit !== undefined) (held as { limit?: number }).limit = lease.limit;
    this.#held.set(held.nonce, held);
    this.issue(lease, held);
    return held;
  }

  /**
   * The acquisition of any lease object: one this table made, or a plain one
   * (rebuilt from JSON, made by another process) validated here and tied to
   * the acquisition of its nonce. EINVALIDOPTION for anything else.
   */
  heldOf(lease: Lease): Held {
    const known = lease && typeof lease === 'object' ? this.#heldBy.get(lease) : undefined;
    if (known) return known;
    const parsed = parseLease(lease);
    if (parsed.space !== this.#space) {
      throw new InvalidOptionError(`the lease belongs to space '${parsed.space}', not '${this.#space}'`);
    }
    let held = this.#held.get(parsed.nonce);
    if (held && !sameNames(held.names, parsed.names)) {
      // Some of an acquisition's names (a lease narrowed by hand): released on
      // its own, its names leave the acquisition, which stays this table's for
      // the rest (releases, renewals, close()). Names a narrowed release took
      // out already are released: a no-op now.
      const gone = held.acquiredNames.filter((n) => !held!.names.includes(n));
      const names = parsed.names.filter((n) => !gone.includes(n));
      if (!sameNames(held.names, names)) return { ...held, names, acquiredNames: names, keeper: undefined, released: names.length === 0, whole: held, turn: undefined };
    }
    // A lease from elsewhere does not say how long its renewals should make it: keepAlive() asks.
    if (!held) held = this.newHeld(parsed, undefined);
    else this.issue(parsed, held);
    if (typeof lease === 'object' && lease !== null) this.#heldBy.set(lease, held);
    return held;
  }

  /** A lease object of `held`, from `lease` (which may be a plain one). */
  leaseOf(held: Held, lease: Lease): Lease {
    if (this.#heldBy.get(lease) === held && lease.acquiredAt instanceof Date) return lease;
    return parseLease(lease);
  }

  /** Released (or given up on for good): no longer this table's. A narrowed lease: its names leave its acquisition, which is settled once none is left. */
  settled(held: Held): void {
    held.released = true;
    const whole = held.whole;
    if (!whole) {
      this.#held.delete(held.nonce);
      return;
    }
    whole.names = Object.freeze(whole.names.filter((n) => !held.names.includes(n)));
    if (whole.names.length === 0) {
      void whole.keeper?.stop();
      this.settled(whole);
    }
  }

  /** A database time (ms) as a local monotonic time, through the database clock estimate (a lease from elsewhere: the best there is). */
  #localTime(dbMs: number | undefined): number | undefined {
    // Before this table's first read the host's wall clock is the guess: it only schedules a renewal here, no time is stored from it.
    return dbMs === undefined ? undefined : performance.now() + (dbMs - (this.#clock.now() ?? Date.now()));
  }
}

/** Whether two sorted name lists are the same. */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/**
 * Runs `work` once every renewal, extend() and narrowed release of the same
 * acquisition queued before it has ended: one at a time per lease, in call
 * order, so that the last one called is the last one written (a renewal never
 * overwrites an extend() that was called after it started), and a renewal
 * reads the lease's length when its turn comes. A failure does not hold up the
 * next in line.
 */
export function inTurn<R>(held: Held, work: () => Promise<R>): Promise<R> {
  const acquisition = held.whole ?? held;
  const run = (acquisition.turn ?? Promise.resolve()).then(work);
  const done = run.then(
    () => {},
    () => {},
  );
  acquisition.turn = done;
  // The last in line clears the queue behind it: nothing keeps finished work alive.
  void done.then(() => {
    if (acquisition.turn === done) acquisition.turn = undefined;
  });
  return run;
}

/** How often a kept lease is renewed: the period keepAlive() was given while shorter than the lease, else a third of it (checks every 5 s without expiry). */
export function periodOf(held: Held): number {
  const ttl = held.ttlMs;
  if (held.periodMs !== undefined && (ttl === undefined || held.periodMs < ttl)) return held.periodMs;
  return ttl === undefined ? CHECK_MS : Math.max(1, Math.floor(ttl / 3));
}

/** The public face of a Keeper: its signal, and stop(); `await using` stops it where the runtime has Symbol.asyncDispose. */
export function keepAliveOf(keeper: Keeper): KeepAlive {
  const handle: KeepAlive = { signal: keeper.signal, stop: () => keeper.stop() };
  const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
  if (dispose) Object.defineProperty(handle, dispose, { value: () => keeper.stop() });
  return Object.freeze(handle);
}
