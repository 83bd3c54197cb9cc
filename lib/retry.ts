import { AbortError } from './errors.js';

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base·2^attempt)]. */
export function backoff(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

/**
 * Sleeps `ms`; rejects with EABORTED when `signal` fires. The timer is not
 * unref'd: a caller awaits it, and an unref'd timer would let the process exit
 * in the middle of a wait once the pool's idle connections are closed.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError(signal!.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
