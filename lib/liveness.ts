import { fromStoredOwner, type Entry } from './document.js';
import type { LocalView, Owner, ProcInfo } from './owner.js';

/** `unknown` means nothing here can prove the owner dead: its lock stays. */
export type Liveness = 'alive' | 'dead' | 'unknown';

/**
 * Judges the owner of a lock. Pure apart from `here.probe`, which the caller
 * supplies (tests pass a fake). Only `dead` ever lets a lock be taken away,
 * and only on a fresh probe (a probe may answer "alive" from memory).
 *
 * - an expired lease is dead, wherever its owner runs (database time);
 * - the same boot id is this boot of this machine (a boot id is 128 random
 *   bits drawn at boot), whatever hostname either side saw: the hostname is
 *   for display only, it changes with a rename or a UTS namespace;
 * - another boot id on the same machine (same machine id, where both are
 *   known) is dead: every process of that boot is gone;
 * - any other boot id is another machine, or one this cannot tell from
 *   another machine: unknown, only an expired lease proves it dead;
 * - another pid namespace cannot be probed: unknown;
 * - a missing pid, a zombie, or a pid whose start time differs (reused) is dead;
 * - otherwise alive, including a live process of another user.
 */
export function judge(owner: Owner, expiresAt: number | undefined, now: number, here: LocalView): Liveness {
  if (expiresAt !== undefined && expiresAt <= now) return 'dead';
  if (!owner.bootId || !here.bootId) return 'unknown';
  if (owner.bootId !== here.bootId) return owner.machineId && owner.machineId === here.machineId ? 'dead' : 'unknown';
  if (owner.pidNs !== here.pidNs) return 'unknown';
  const reused = (p: ProcInfo) => !!owner.startTime && p.startTime !== undefined && p.startTime !== owner.startTime;
  let proc = here.probe(owner.pid);
  // A probe may answer from memory (owner.ts cachedProbe), but only with a live
  // process: a start time that differs is asked of the kernel again before it
  // makes anyone dead. (Gone or a zombie is the kernel's answer already.)
  if (proc && !proc.zombie && reused(proc)) proc = here.probe(owner.pid, true);
  if (proc === undefined || proc.zombie || reused(proc)) return 'dead';
  return 'alive';
}

/** judge() for a stored entry or intent: its owner, and its expiry. */
export function judgeEntry(entry: Pick<Entry, 'o' | 'e'>, now: number, here: LocalView): Liveness {
  return judge(fromStoredOwner(entry.o), entry.e, now, here);
}
