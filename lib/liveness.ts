import { fromStoredOwner, type Entry } from './document.js';
import type { LocalView, Owner } from './owner.js';

/** `unknown` means nothing here can prove the owner dead: its lock stays. */
export type Liveness = 'alive' | 'dead' | 'unknown';

/**
 * Judges the owner of a lock. Pure apart from `here.probe`, which the caller
 * supplies (tests pass a fake). Only `dead` ever lets a lock be taken away.
 *
 * - an expired lease is dead, wherever its owner runs (database time);
 * - another host is unknown: only an expired lease proves it dead;
 * - the same host on another boot is dead (every process of that boot is gone);
 * - another pid namespace cannot be probed: unknown;
 * - a missing pid, a zombie, or a pid whose start time differs (reused) is dead;
 * - otherwise alive, including a live process of another user.
 */
export function judge(owner: Owner, expiresAt: number | undefined, now: number, here: LocalView): Liveness {
  if (expiresAt !== undefined && expiresAt <= now) return 'dead';
  if (owner.host !== here.host) return 'unknown';
  if (!owner.bootId || !here.bootId) return 'unknown';
  if (owner.bootId !== here.bootId) return 'dead';
  if (owner.pidNs !== here.pidNs) return 'unknown';
  const proc = here.probe(owner.pid);
  if (proc === undefined || proc.zombie) return 'dead';
  if (owner.startTime && proc.startTime !== undefined && proc.startTime !== owner.startTime) return 'dead';
  return 'alive';
}

/** judge() for a stored entry: its owner, and its expiry. */
export function judgeEntry(entry: Pick<Entry, 'o' | 'e'>, now: number, here: LocalView): Liveness {
  return judge(fromStoredOwner(entry.o), entry.e, now, here);
}
