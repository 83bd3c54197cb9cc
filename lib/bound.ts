// How long one call may take: until an instant of the monotonic clock
// (performance.now(), which a step of the wall clock does not move), and until
// its AbortSignal fires. Every wait inside the call — a slot of the table's
// gate, a connection from the pool, a statement, a backoff — ends when its
// bound fires, so a call gives up after its own bound, whatever is queued
// ahead of it or however the database misbehaves.
import { AbortError } from './errors.js';

export type Fired = 'aborted' | 'deadline';

// One listener per signal, however many calls (and waits within them) share
// it: a signal shared by more than 10 concurrent calls would otherwise draw
// Node's MaxListenersExceededWarning.
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `fn` when `signal` aborts (not if it already has); returns what stops watching. */
export function watchAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = watchers.get(signal);
  if (!set) {
    const fns = new Set<() => void>();
    set = fns;
    watchers.set(signal, fns);
    signal.addEventListener('abort', () => {
      watchers.delete(signal);
      for (const f of [...fns]) f();
    }, { once: true });
  }
  set.add(fn);
  const mine = set;
  return () => void mine.delete(fn);
}

// One timer for the deadlines of every bound. A timer per wait (two or three
// per statement: the call's own wait, the connection's, the statement's) cost
// ~0.4 µs of CPU each to set and clear, and almost none of them ever fires: a
// statement answers long before its bound. Here a wait is an entry in a list;
// the one timer is armed for the earliest deadline and, when it fires, fires
// what is due and re-arms for the next. While nothing waits it is unref'd, so
// that it keeps no process alive; it never fires later than a wait's own
// timer would have.
//
// The list is an array whose entries know their slot (removed by moving the
// last entry into it), not a Set: with a Set, the entries of waits already
// over (and through `fire`, the call each belonged to) survived the young
// generation's collections and were promoted, ~11 KB per acquire + release at
// 4 callers, freed only by full collections: 4-5 times the garbage
// collector's time per cycle (docs/performance.md).
interface Deadline {
  until: number;
  /** Undefined once over: a cancelled wait keeps nothing reachable. */
  fire: (() => void) | undefined;
  /** Its index in `deadlines`, -1 once removed. */
  slot: number;
}
const deadlines: Deadline[] = [];
let timer: NodeJS.Timeout | undefined;
let timerAt = Infinity;

/** Takes `d` out of `deadlines` (if still there) and drops what it would fire; whether it was there. */
function remove(d: Deadline): boolean {
  d.fire = undefined;
  const slot = d.slot;
  if (slot < 0) return false;
  d.slot = -1;
  const last = deadlines.pop()!;
  if (last !== d) {
    deadlines[slot] = last;
    last.slot = slot;
  }
  return true;
}

function arm(at: number): void {
  if (timer) clearTimeout(timer);
  timerAt = at;
  // Cut to 2^31-1 ms, as Node's timers are (a longer delay would fire at once, with a warning).
  timer = setTimeout(sweep, Math.min(2 ** 31 - 1, Math.max(0, Math.ceil(at - performance.now()))));
}

function sweep(): void {
  timer = undefined;
  timerAt = Infinity;
  // A timer may fire a little before performance.now() reaches a deadline (the event loop keeps whole ms): those wait for the next sweep.
  const now = performance.now();
  let failure: { error: unknown } | undefined;
  const due = deadlines.filter((d) => d.until <= now);
  for (const d of due) {
    // Cancelled by an earlier one's fire: skipped.
    const fire = d.fire;
    if (!remove(d) || !fire) continue;
    try {
      fire();
    } catch (error) {
      failure ??= { error };
    }
  }
  let next = Infinity;
  for (const d of deadlines) if (d.until < next) next = d.until;
  if (next < Infinity && next < timerAt) arm(next);
  // As a timer callback's own exception would have been.
  if (failure) throw failure.error;
}

/** Calls `fire` once `until` (performance.now() ms) has passed; returns what cancels it. */
function watchDeadline(until: number, fire: () => void): () => void {
  const d: Deadline = { until, fire, slot: deadlines.length };
  deadlines.push(d);
  if (until < timerAt) arm(until);
  else if (deadlines.length === 1) timer?.ref();
  return () => {
    if (remove(d) && deadlines.length === 0) timer?.unref();
  };
}

export class Bound {
  /** The bound's length, ms. */
  readonly ms: number;
  /** Monotonic ms at which it fires. */
  readonly until: number;
  readonly signal: AbortSignal | undefined;

  constructor(ms: number, signal?: AbortSignal, now: number = performance.now()) {
    this.ms = ms;
    this.until = now + ms;
    this.signal = signal;
  }

  /** Ms left, 0 once passed. */
  left(): number {
    return Math.max(0, this.until - performance.now());
  }

  /** Whether it has fired, and how. */
  fired(): Fired | undefined {
    if (this.signal?.aborted) return 'aborted';
    return performance.now() >= this.until ? 'deadline' : undefined;
  }

  /** EABORTED with the signal's reason. */
  abortError(): AbortError {
    return new AbortError(this.signal?.reason);
  }

  /**
   * Calls `fn` once when the bound fires (on the next tick if it already has).
   * Returns what cancels it: call that once the wait it guards is over.
   */
  onFire(fn: (how: Fired) => void): () => void {
    let over = false;
    const fire = (how: Fired) => {
      if (over) return;
      cancel();
      fn(how);
    };
    const onAbort = () => fire('aborted');
    const unwatch = this.signal && !this.signal.aborted ? watchAbort(this.signal, onAbort) : undefined;
    const unwatchDeadline = watchDeadline(this.until, () => fire('deadline'));
    if (this.signal?.aborted) queueMicrotask(onAbort);
    const cancel = () => {
      over = true;
      unwatchDeadline();
      unwatch?.();
    };
    return cancel;
  }

  /** Sleeps `ms`, but not past the bound; rejects with EABORTED when the signal fires. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.signal?.aborted) return reject(this.abortError());
      const unwatch = this.signal
        ? watchAbort(this.signal, () => {
            clearTimeout(timer);
            reject(this.abortError());
          })
        : undefined;
      const timer = setTimeout(() => {
        unwatch?.();
        resolve();
      }, Math.min(ms, this.left()));
    });
  }
}
