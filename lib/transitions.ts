// The meaning of every operation, as pure functions over the parsed document.
// No I/O, no clock: `now` (database time, ms) and the fencing token are given.
// Every write path (the compare-and-swap loop, and any faster statement) is
// held to these functions by tests.
import type { NotHeldReason } from './errors.js';
import {
  MAX_QUEUE,
  MAX_TOMBSTONES,
  entryOf,
  groupOf,
  lineOf,
  type Entry,
  type Intent,
  type LockDocument,
  type RemovalReason,
  type StoredOwner,
} from './document.js';

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
  /** Nonces of shared holders the caller judged dead. */
  deadShares?: ReadonlySet<string>;
  /** This acquisition's waiter id when it is in line (wait()): waiters behind it do not block it. */
  waiter?: string | undefined;
  /** Ignore the line: take names no one holds even when waiters are in front. */
  barge?: boolean | undefined;
  /** Waiter ids whose owner the caller judged dead: their intents count as gone (expired ones do too). */
  deadWaiters?: ReadonlySet<string>;
}

/** A waiter in front of an acquisition, on one of its names. */
export type Ahead = { name: string; intent: Intent; position: number };

export type Removed = { name: string; entry: Entry; why: RemovalReason };

export type AcquireOutcome =
  | { ok: true; doc: LockDocument; entries: Record<string, Entry>; removed: Removed[] }
  | { ok: false; blockers: Array<{ name: string; entry: Entry }>; ahead: Ahead[] };

/** Whether an entry's lease has run out at `now`. */
export function isExpired(entry: { e?: number | undefined }, now: number): boolean {
  return entry.e !== undefined && entry.e <= now;
}

/** Whether an intent still counts: not expired at `now`, its owner not judged dead. */
export function isLiveIntent(intent: Intent, now: number, deadWaiters?: ReadonlySet<string>): boolean {
  return intent.e > now && !deadWaiters?.has(intent.n);
}

/**
 * The live waiters in front of `waiter` in the line of `name` (all of them
 * when `waiter` is not in it), with their place in line (1 = first).
 */
export function waitersAhead(doc: LockDocument, name: string, waiter: string | undefined, now: number, deadWaiters?: ReadonlySet<string>): Ahead[] {
  const ahead: Ahead[] = [];
  let position = 0;
  for (const intent of lineOf(doc, name)) {
    if (!isLiveIntent(intent, now, deadWaiters)) continue;
    position++;
    if (intent.n === waiter) break;
    ahead.push({ name, intent, position });
  }
  return ahead;
}

/**
 * Takes every name or none. Expired entries, and entries of owners judged
 * dead, are free. A name with live waiters in line in front of this
 * acquisition (every waiter, unless it is itself in line) is not free either,
 * unless `barge`. On success the acquisition's own intents leave every line,
 * and so do the waiters found expired or dead in the lines of its names.
 */
export function acquire(doc: LockDocument, input: AcquireInput): AcquireOutcome {
  const blockers: Array<{ name: string; entry: Entry }> = [];
  const ahead: Ahead[] = [];
  const removed: Removed[] = [];
  for (const name of input.names) {
    const held = entryOf(doc, name);
    if (held !== undefined) {
      if (isExpired(held, input.now)) removed.push({ name, entry: held, why: 'expired' });
      else if (input.dead?.has(name)) removed.push({ name, entry: held, why: 'reaped' });
      else blockers.push({ name, entry: held });
    }
    const group = groupOf(doc, name);
    if (group) {
      for (const share of group.h) {
        const entry: Entry = { ...share, t: group.t };
        if (isExpired(share, input.now)) removed.push({ name, entry, why: 'expired' });
        else if (input.deadShares?.has(share.n)) removed.push({ name, entry, why: 'reaped' });
        else blockers.push({ name, entry });
      }
    }
    if (!input.barge) ahead.push(...waitersAhead(doc, name, input.waiter, input.now, input.deadWaiters));
  }
  if (blockers.length || ahead.length) return { ok: false, blockers, ahead };
  const l = { ...doc.l };
  const s = removeShares(doc, removed);
  const entries: Record<string, Entry> = {};
  for (const name of input.names) {
    const entry: Entry = { t: input.typeOf(name), o: input.owner, f: input.token, n: input.nonce, a: input.now };
    if (input.ttlMs !== undefined) entry.e = input.now + input.ttlMs;
    l[name] = entries[name] = entry;
  }
  let next: LockDocument = { ...doc, l };
  if (s) next.s = s;
  else delete next.s;
  // Its own intents leave every line, and so do waiters found dead or expired
  // in the lines of its names (only there: a write that meets no line, like
  // the one-statement acquire, changes no line).
  const gone = new Set<string>();
  if (input.waiter !== undefined) gone.add(input.waiter);
  for (const name of input.names) for (const i of lineOf(doc, name)) if (!isLiveIntent(i, input.now, input.deadWaiters)) gone.add(i.n);
  next = dropWaiters(next, (intent) => gone.has(intent.n));
  return { ok: true, doc: withTombstones(next, removed, input.now), entries, removed };
}

/** The `s` map without the shares in `removed` (groups left empty go); undefined when none is left. */
function removeShares(doc: LockDocument, removed: readonly Removed[]): LockDocument['s'] {
  if (!doc.s) return undefined;
  const s = { ...doc.s };
  for (const { name, entry } of removed) {
    const group = groupOf(doc, name);
    if (!group) continue;
    const h = (s[name] ?? group).h.filter((x) => x.n !== entry.n);
    if (h.length) s[name] = { ...group, h };
    else delete s[name];
  }
  return Object.keys(s).length ? s : undefined;
}

export interface EnqueueInput {
  names: readonly string[];
  /** The waiter's id: the same for every attempt of one wait(). */
  waiter: string;
  owner: StoredOwner;
  now: number;
  /** How long the intent lasts unless renewed, ms. */
  ttlMs: number;
  /** Intents judged dead by the caller: dropped in the same write. */
  deadWaiters?: ReadonlySet<string>;
}

/**
 * Puts a waiter in line for every name at once: at the back of each line
 * where it is not yet, and renews its expiry where it is. Drops intents that
 * expired or were judged dead, on the way. `changed` is false (and `doc` the
 * same) when the waiter is in every line with at least half its time left:
 * nothing to write. Fails (`full`) when a line is at MAX_QUEUE.
 */
export function enqueue(doc: LockDocument, input: EnqueueInput): { doc: LockDocument; changed: boolean; added: boolean; full?: string } {
  const dead = (i: Intent) => !isLiveIntent(i, input.now, input.deadWaiters) && i.n !== input.waiter;
  const fresh = input.names.every((name) => lineOf(doc, name).some((i) => i.n === input.waiter && i.e - input.now >= input.ttlMs / 2));
  const anyDead = input.names.some((name) => lineOf(doc, name).some(dead));
  if (fresh && !anyDead) return { doc, changed: false, added: false };
  const base = dropWaiters(doc, dead);
  const q = { ...base.q };
  const e = input.now + input.ttlMs;
  let added = false;
  for (const name of input.names) {
    const line = [...lineOf(base, name)];
    const at = line.findIndex((i) => i.n === input.waiter);
    if (at >= 0) line[at] = { ...line[at]!, e };
    else {
      if (line.length >= MAX_QUEUE) return { doc, changed: false, added: false, full: name };
      line.push({ n: input.waiter, o: input.owner, a: input.now, e });
      added = true;
    }
    q[name] = line;
  }
  return { doc: { ...base, q }, changed: true, added };
}

/**
 * Renews the expiry of the intents of `waiters` (ids) to `expiresAt`.
 * Returns the ids not found in any line (dropped meanwhile: they must
 * queue again, at the back).
 */
export function renewWaiters(doc: LockDocument, waiters: ReadonlySet<string>, expiresAt: number): { doc: LockDocument; missing: string[] } {
  const found = new Set<string>();
  if (!doc.q) return { doc, missing: [...waiters] };
  const q: NonNullable<LockDocument['q']> = {};
  for (const [name, line] of Object.entries(doc.q)) {
    q[name] = line.map((i) => {
      if (!waiters.has(i.n)) return i;
      found.add(i.n);
      return { ...i, e: Math.max(i.e, expiresAt) };
    });
  }
  return { doc: found.size ? { ...doc, q } : doc, missing: [...waiters].filter((w) => !found.has(w)) };
}

/** Removes every intent for which `match` is true, from every line; lines left empty go. Returns the same document when none matches. */
export function dropWaiters(doc: LockDocument, match: (intent: Intent, name: string) => boolean): LockDocument {
  if (!doc.q) return doc;
  let changed = false;
  const q: NonNullable<LockDocument['q']> = {};
  for (const [name, line] of Object.entries(doc.q)) {
    const kept = line.filter((i) => !match(i, name));
    if (kept.length !== line.length) changed = true;
    if (kept.length) q[name] = kept;
  }
  if (!changed) return doc;
  const next: LockDocument = { ...doc, q };
  if (!Object.keys(q).length) delete next.q;
  return next;
}

/** Every waiter in the document: its id, names (in line order of first appearance) and one intent (they share owner, since and expiry). */
export function waiters(doc: LockDocument): Array<{ id: string; names: string[]; intent: Intent }> {
  const byId = new Map<string, { id: string; names: string[]; intent: Intent }>();
  for (const [name, line] of Object.entries(doc.q ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const intent of line) {
      const w = byId.get(intent.n);
      if (w) w.names.push(name);
      else byId.set(intent.n, { id: intent.n, names: [name], intent });
    }
  }
  return [...byId.values()];
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
