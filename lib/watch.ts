// What wait() watches between attempts, as pure functions.
//
// One poller per table reads the row's version every few ms. A waiter must
// wake when one of its blockers is gone: released, taken over, expired or its
// owner dead. A new version alone does not say that: in a busy space most
// writes are about other names, and waking every waiter on each of them sends
// a herd of attempts that all fail. So when the version moved, the same poll
// asks the server whether every blocker still carries the nonce the waiter saw
// (JSON_CONTAINS, one parse of the document; none while the version stands).
import { nonceCandidate, type Entry, type Intent } from './document.js';

export interface Watched {
  /** The version the waiter saw its blockers at. */
  version: number;
  /** Holders in the way; `shared` when the holder is one of several of its name (format 3 `s`). */
  blockers: Array<{ name: string; entry: Entry; shared?: boolean }>;
  /** Waiters in line in front of it. */
  ahead?: Array<{ name: string; intent: Intent }>;
}

/**
 * `{"l":{name:{"n":nonce}},"q":…,"s":…}` for every blocker and every waiter in
 * front of every waiter: JSON_CONTAINS of it holds while none of them changed.
 */
export function watchCandidate(waiters: Iterable<Watched>): string {
  const pairs: Array<[string, string]> = [];
  const shares: Array<[string, string]> = [];
  const intents: Array<[string, string]> = [];
  for (const w of waiters) {
    for (const b of w.blockers) (b.shared ? shares : pairs).push([b.name, b.entry.n]);
    for (const a of w.ahead ?? []) intents.push([a.name, a.intent.n]);
  }
  return nonceCandidate(pairs, intents, shares);
}

/**
 * Whether a waiter should try again, given what the poll saw: `same` is
 * whether every watched blocker is unchanged (null: not checked, because the
 * version did not move since the previous poll).
 */
export function shouldWake(w: Watched, seen: { version: number; same: boolean | null }, blockerDead: boolean): boolean {
  if (blockerDead) return true;
  if (seen.version === w.version) return false;
  return seen.same === false;
}
