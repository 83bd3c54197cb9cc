// What a lock table tells the outside world: one diagnostics channel per event
// kind, and the counters and summaries behind metrics(). Publishing costs
// nothing when nobody subscribes (node:diagnostics_channel checks first).
import diagnostics from 'node:diagnostics_channel';
import createDebug from 'debug';
import { describeHolder, type Holder, type NotHeldReason, type Waiting } from './errors.js';
import { emptyCounters, Reservoir, type LockMetrics } from './metrics.js';
import type { Owner } from './owner.js';

/**
 * The channel of each event kind. Subscribe with
 * `diagnostics_channel.subscribe(LockChannels.acquired, (event) => …)`.
 * The names are part of the public API.
 */
export const LockChannels = Object.freeze({
  acquired: 'locktable:acquired',
  released: 'locktable:released',
  contended: 'locktable:contended',
  retried: 'locktable:retried',
  reaped: 'locktable:reaped',
  lost: 'locktable:lost',
  queued: 'locktable:queued',
  dequeued: 'locktable:dequeued',
} as const);

export type LockEventKind = keyof typeof LockChannels;

/** A lease was acquired. */
export interface AcquiredEvent {
  space: string;
  op: 'acquire' | 'tryAcquire' | 'wait';
  names: readonly string[];
  token: number;
  owner: Owner;
  /** From the call to the lease, local clock: includes retries and, for wait(), the wait. */
  waitedMs: number;
  expiresAt?: Date;
  /** 'shared' for a shared lock or a semaphore (one of several holders of each name), 'exclusive' otherwise. */
  mode: 'exclusive' | 'shared';
  /** A semaphore's limit (the most holders of each name at once); absent otherwise. */
  limit?: number;
}

/** An acquisition found names held: acquire() throws ELOCKED, tryAcquire() returns null, wait() starts waiting. Once per call. */
export interface ContendedEvent {
  space: string;
  op: 'acquire' | 'tryAcquire' | 'wait';
  names: readonly string[];
  holders: Holder[];
  /** Waiters in line in front of it (fair waiting). */
  waiters: Waiting[];
}

/** A holder released (some of) its lease. */
export interface ReleasedEvent {
  space: string;
  names: readonly string[];
  token: number;
  owner: Owner;
  /** From acquisition to release, database clock. */
  heldMs: number;
  /** As in AcquiredEvent, when this process knows it (a lease rebuilt from JSON of an older version may not say: then 'exclusive'). */
  mode: 'exclusive' | 'shared';
  limit?: number;
}

/** A write is being retried: it lost its compare-and-swap race, or hit a transient fault. */
export interface RetriedEvent {
  space: string;
  /** The operation: acquire, release, extend, reaped, owner, wiped, forced. */
  op: string;
  /** 1 for the first retry. */
  attempt: number;
  /** 'lost the race', or the driver's error code. */
  reason: string;
}

/** Locks were removed from their owners by this table (not released by them). */
export interface ReapedEvent {
  space: string;
  op: 'reapDead' | 'acquire' | 'releaseByOwner' | 'releaseAll' | 'releaseName';
  /** Each removed lock, and why: reaped (owner dead), expired, owner, wiped, forced. */
  locks: Array<Holder & { reason: NotHeldReason }>;
  /** The process that removed them. */
  by: Owner;
}

/** A release, an extend or a lease kept alive found (part of) its lease gone, or a kept-alive lease ran out. */
export interface LostEvent {
  space: string;
  op: 'release' | 'extend' | 'keepAlive';
  names: string[];
  token: number;
  reason: NotHeldReason;
  /** Who holds the names now, where someone does. */
  heldBy: Holder[];
}

/** A waiter of this table got in line for its names (fair waiting; see docs/lock-kinds.md). */
export interface QueuedEvent {
  space: string;
  names: readonly string[];
  /** The waiter's id, as list() and ELOCKED show it. */
  waiter: string;
  owner: Owner;
  /** Its place in line on each name when it got in, 1 = first. */
  positions: Record<string, number>;
}

/** A waiter of this table left the line. */
export interface DequeuedEvent {
  space: string;
  names: readonly string[];
  waiter: string;
  /**
   * acquired: it got its locks; timeout, aborted, closed, failed: its wait()
   * ended without them; dropped: its intent was gone (expired while it could
   * not renew it, or judged dead): it got back in line, at the back.
   */
  reason: 'acquired' | 'timeout' | 'aborted' | 'closed' | 'failed' | 'dropped';
  /** From getting in line to leaving it, local clock. */
  waitedMs: number;
}

/** The payload of each event kind. */
export interface LockEvents {
  acquired: AcquiredEvent;
  released: ReleasedEvent;
  contended: ContendedEvent;
  retried: RetriedEvent;
  reaped: ReapedEvent;
  lost: LostEvent;
  queued: QueuedEvent;
  dequeued: DequeuedEvent;
}

const channels = {
  acquired: diagnostics.channel(LockChannels.acquired),
  released: diagnostics.channel(LockChannels.released),
  contended: diagnostics.channel(LockChannels.contended),
  retried: diagnostics.channel(LockChannels.retried),
  reaped: diagnostics.channel(LockChannels.reaped),
  lost: diagnostics.channel(LockChannels.lost),
  queued: diagnostics.channel(LockChannels.queued),
  dequeued: diagnostics.channel(LockChannels.dequeued),
};

// The other kinds are already logged where they happen (locktable:acquire, …).
const log = {
  contended: createDebug('locktable:contended'),
  lost: createDebug('locktable:lost'),
};

/**
 * One per lock table: counts every event, keeps the wait and hold summaries,
 * and publishes the event on its channel. A subscriber that throws does not
 * break the operation: Node rethrows its error on the next tick.
 */
export class EventSink {
  readonly #space: string;
  readonly #counters = emptyCounters();
  readonly #wait = new Reservoir();
  readonly #hold = new Reservoir();

  constructor(space: string) {
    this.#space = space;
  }

  emit<K extends LockEventKind>(kind: K, event: LockEvents[K]): void {
    const e = event as LockEvents[LockEventKind];
    switch (kind) {
      case 'acquired':
        this.#wait.observe((e as AcquiredEvent).waitedMs);
        break;
      case 'released':
        this.#hold.observe((e as ReleasedEvent).heldMs);
        break;
      case 'contended':
        log.contended('%s: %s', (e as ContendedEvent).op, (e as ContendedEvent).holders.map(describeHolder).join('; '));
        break;
      case 'lost':
        log.lost('%s of %s (token %d): %s', (e as LostEvent).op, (e as LostEvent).names.join(','), (e as LostEvent).token, (e as LostEvent).reason);
        break;
    }
    this.#counters[kind] += kind === 'reaped' ? (e as ReapedEvent).locks.length : 1;
    channels[kind].publish(event);
  }

  snapshot(): LockMetrics {
    return { space: this.#space, counters: { ...this.#counters }, waitMs: this.#wait.summary(), holdMs: this.#hold.summary() };
  }
}
