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
    // A timer may fire a little before performance.now() reaches `until` (the event loop keeps whole ms): then wait out the rest.
    const tick = () => {
      const left = this.until - performance.now();
      if (left > 0) timer = setTimeout(tick, Math.ceil(left));
      else fire('deadline');
    };
    let timer = setTimeout(tick, Math.ceil(this.left()));
    if (this.signal?.aborted) queueMicrotask(onAbort);
    const cancel = () => {
      over = true;
      clearTimeout(timer);
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
