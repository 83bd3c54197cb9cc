// The meaning of every operation, as pure functions over the parsed document.
// No I/O, no clock: `now` (database time, ms) and the fencing token are given.
// Every write path (the compare-and-swap loop, and any faster statement) is
// held to these functions by tests.
import type { NotHeldReason } from './errors.js';
import { MAX_TOMBSTONES, entryOf, type Entry, type LockDocument, type RemovalReason, type StoredOwner } from './document.js';

export interface AcquireInput {
  names: readonly string[];
  typeOf(name: string): string;
  owner: StoredOwner;
  nonce: string;
  /** The version this write will produce: the fencing token. */
  token: number;
  now: number;
  ttlMs?: number | undefined;
  /** Names whose current holder was judged dead by the caller: they count as free. */
  dead?: ReadonlySet<string>;
}

export type Removed = { name: string; entry: Entry; why: RemovalReason };

export type AcquireOutcome =
  | { ok: true; doc: LockDocument; entries: Record<string, Entry>; removed: Removed[] }
  | { ok: false; blockers: Array<{ name: string; entry: Entry }> };

/** Whether an entry's lease has run out at `now`. */
export function isExpired(entry: Entry, now: number): boolean {
  return entry.e !== undefined && entry.e <= now;
}

/** Takes every name or none. Expired entries, and entries of owners judged dead, are free. */
export function acquire(doc: LockDocument, input: AcquireInput): AcquireOutcome {
  const blockers: Array<{ name: string; entry: Entry }> = [];
  const removed: Removed[] = [];
  for (const name of input.names) {
    const held = entryOf(doc, name);
    if (held === undefined) continue;
    if (isExpired(held, input.now)) removed.push({ name, entry: held, why: 'expired' });
    else if (input.dead?.has(name)) removed.push({ name, entry: held, why: 'reaped' });
    else blockers.push({ name, entry: held });
  }
  if (blockers.length) return { ok: false, blockers };
  const l = { ...doc.l };
  const entries: Record<string, Entry> = {};
  for (const name of input.names) {
    const entry: Entry = { t: input.typeOf(name), o: input.owner, f: input.token, n: input.nonce, a: input.now };
    if (input.ttlMs !== undefined) entry.e = input.now + input.ttlMs;
    l[name] = entries[name] = entry;
  }
  return { ok: true, doc: withTombstones({ ...doc, l }, removed, input.now), entries, removed };
}

export interface ReleaseOutcome {
  doc: LockDocument;
  released: string[];
  /** Names the lease no longer held, and why. */
  missing: Array<{ name: string; reason: NotHeldReason; heldBy?: Entry }>;
}

/** Removes the names still held under `nonce`; reports the others with the reason they are gone. */
export function release(doc: LockDocument, names: readonly string[], nonce: string): ReleaseOutcome {
  const l = { ...doc.l };
  const released: string[] = [];
  const missing: ReleaseOutcome['missing'] = [];
  for (const name of names) {
    const held = entryOf(doc, name);
    if (held?.n === nonce) {
      delete l[name];
      released.push(name);
      continue;
    }
    const record = doc.r?.findLast((t) => t.k === name && t.n === nonce);
    const reason: NotHeldReason = record ? record.w : held ? 'taken' : 'released';
    missing.push(held ? { name, reason, heldBy: held } : { name, reason });
  }
  return { doc: released.length ? { ...doc, l } : doc, released, missing };
}

/** Removes every entry for which `match` is true, recording why. */
export function removeWhere(
  doc: LockDocument,
  match: (name: string, entry: Entry) => boolean,
  why: RemovalReason,
  now: number,
): { doc: LockDocument; removed: Removed[] } {
  const l: Record<string, Entry> = {};
  const removed: Removed[] = [];
  // In name order, not stored order: how keys happen to be ordered in the
  // stored text (a JSON_SET appends, JavaScript puts integer-like keys first)
  // must not decide which tombstones a full list keeps.
  for (const [name, entry] of Object.entries(doc.l).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (match(name, entry)) removed.push({ name, entry, why });
    else l[name] = entry;
  }
  if (!removed.length) return { doc, removed };
  return { doc: withTombstones({ ...doc, l }, removed, now), removed };
}

/** Sets or clears the expiry of entries held under `nonce`; the names not held are returned as in release(). */
export function extend(
  doc: LockDocument,
  names: readonly string[],
  nonce: string,
  expiresAt: number | undefined,
  now: number,
): { doc: LockDocument; missing: ReleaseOutcome['missing'] } {
  const probe = release(doc, names, nonce);
  const l = { ...doc.l };
  for (const name of probe.released) {
    const entry = { ...l[name]! };
    if (isExpired(entry, now)) {
      // An expired lease is not revived: it may already look free to others.
      probe.missing.push({ name, reason: 'expired' });
      continue;
    }
    if (expiresAt === undefined) delete entry.e;
    else entry.e = expiresAt;
    l[name] = entry;
  }
  return { doc: { ...doc, l }, missing: probe.missing };
}

// Forced removals leave a short record so that the holder's later release can
// say why its lease is gone (reaped, wiped, …) instead of a bare "not held".
function withTombstones(doc: LockDocument, removed: Removed[], now: number): LockDocument {
  if (!removed.length) return doc;
  const r = [...(doc.r ?? []), ...removed.map((x) => ({ k: x.name, n: x.entry.n, w: x.why, at: now }))];
  return { ...doc, r: r.slice(-MAX_TOMBSTONES) };
}
