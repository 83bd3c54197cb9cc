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
import type { ConflictRules } from './rules.js';

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
  /**
   * 'shared': join each name's group of holders (many at once) instead of
   * holding it alone. With `limit` (a semaphore), at most `limit` holders at
   * once; the group stores the limit, and a call with another limit while
   * the group has live holders is refused (`conflicts`).
   */
  mode?: 'exclusive' | 'shared' | undefined;
  limit?: number | undefined;
  /**
   * The catalogue's conflict rules. A holder of a name a rule sets against
   * one of `names` blocks as a holder of the name itself would, whatever the
   * modes (and is taken over the same way when it expired or its owner was
   * judged dead: pass those in `dead`/`deadShares`, see conflicting()); so
   * does a live waiter in line for such a name that got in line before this
   * acquisition (every one, when it is not in line itself), unless `barge`.
   */
  rules?: ConflictRules | undefined;
}

/** A waiter in front of an acquisition: in the line of one of its names, or (`rule`) of a name a conflict rule sets against one. */
export type Ahead = { name: string; intent: Intent; position: number; rule?: string };

export type Removed = { name: string; entry: Entry; why: RemovalReason };

export type AcquireOutcome =
  | { ok: true; doc: LockDocument; entries: Record<string, Entry>; removed: Removed[] }
  | { ok: false; blockers: Blocker[]; ahead: Ahead[]; conflicts?: Conflict[] };

/** A holder in the way; `shared` when it is one of a name's group (`s`); `rule` when it holds another name, which that conflict rule sets against one asked for. */
export type Blocker = { name: string; entry: Entry; shared?: boolean; rule?: string };

/** A shared or semaphore acquisition whose limit differs from the one the name's group stores. */
export type Conflict = { name: string; stored: number | undefined; asked: number | undefined };

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
 * Every holder, and every intent in line, on a name that a conflict rule sets
 * against one of `names` (live or not; holders in `l` of the names themselves
 * left out, they block by name), each with the rule. The caller judges their
 * owners (dead ones go into acquire()'s `dead`, `deadShares` and
 * `deadWaiters`); acquire() weighs them. Empty without rules naming `names`.
 */
export function conflicting(
  doc: LockDocument,
  names: readonly string[],
  rules: ConflictRules | undefined,
): { held: Array<Blocker & { rule: string }>; waiting: Array<{ name: string; intent: Intent; rule: string }> } {
  const held: Array<Blocker & { rule: string }> = [];
  const waiting: Array<{ name: string; intent: Intent; rule: string }> = [];
  if (!rules?.size) return { held, waiting };
  const against = names.map((n) => [n, rules.against(n)] as const).filter(([, list]) => list.length > 0);
  if (!against.length) return { held, waiting };
  const own = new Set(names);
  // Rules relate different names: a name's own holders are governed by its mode.
  const ruleFor = (other: string): string | undefined => {
    for (const [n, list] of against) {
      if (n === other) continue;
      for (const c of list) if (c.matches(other)) return c.rule;
    }
    return undefined;
  };
  for (const [name, entry] of Object.entries(doc.l)) {
    if (own.has(name)) continue;
    const rule = ruleFor(name);
    if (rule !== undefined) held.push({ name, entry, rule });
  }
  for (const [name, group] of Object.entries(doc.s ?? {})) {
    const rule = ruleFor(name);
    if (rule !== undefined) for (const h of group.h) held.push({ name, entry: { ...h, t: group.t }, shared: true, rule });
  }
  for (const [name, line] of Object.entries(doc.q ?? {})) {
    const rule = ruleFor(name);
    if (rule !== undefined) for (const intent of line) waiting.push({ name, intent, rule });
  }
  return { held, waiting };
}

/**
 * Takes every name or none. Expired entries, and entries of owners judged
 * dead, are free. A name with live waiters in line in front of this
 * acquisition (every waiter, unless it is itself in line) is not free either,
 * unless `barge`. On success the acquisition's own intents leave every line,
 * and so do the waiters found expired or dead in the lines of its names.
 */
export function acquire(doc: LockDocument, input: AcquireInput): AcquireOutcome {
  const shared = input.mode === 'shared';
  const blockers: Blocker[] = [];
  const ahead: Ahead[] = [];
  const removed: Removed[] = [];
  const conflicts: Conflict[] = [];
  for (const name of input.names) {
    const held = entryOf(doc, name);
    if (held !== undefined) {
      if (isExpired(held, input.now)) removed.push({ name, entry: held, why: 'expired' });
      else if (input.dead?.has(name)) removed.push({ name, entry: held, why: 'reaped' });
      else blockers.push({ name, entry: held });
    }
    const group = groupOf(doc, name);
    const live: Blocker[] = [];
    if (group) {
      for (const share of group.h) {
        const entry: Entry = { ...share, t: group.t };
        if (isExpired(share, input.now)) removed.push({ name, entry, why: 'expired' });
        else if (input.deadShares?.has(share.n)) removed.push({ name, entry, why: 'reaped' });
        else live.push({ name, entry, shared: true });
      }
    }
    if (!shared) blockers.push(...live);
    else if (live.length && group!.c !== input.limit) conflicts.push({ name, stored: group!.c, asked: input.limit });
    else if (input.limit !== undefined && live.length >= input.limit) blockers.push(...live);
    if (input.barge) continue;
    const front = waitersAhead(doc, name, input.waiter, input.now, input.deadWaiters);
    if (!shared) ahead.push(...front);
    else {
      // A shared acquisition waits behind every exclusive waiter in front of
      // it (so a stream of shared holders cannot starve one), and a semaphore
      // behind the shared waiters in front that would fill its free places.
      // Shared waiters in front do not hinder an unlimited shared one: it
      // takes nothing they need.
      const exclusive = front.filter((a) => a.intent.m !== 's');
      const sharers = front.filter((a) => a.intent.m === 's');
      if (exclusive.length) ahead.push(...front);
      else if (input.limit !== undefined && live.length + sharers.length >= input.limit) ahead.push(...sharers);
    }
  }
  // Conflict rules: holders of the names set against these block (or, dead
  // or expired, are taken over) whatever the modes; so do live waiters for
  // them that got in line first. The order of waiters of different names is
  // the order they got in line in (`a`, strictly increasing: see enqueue()),
  // the same order as every line's, so waiters never wait for each other in a circle.
  const ruled = conflicting(doc, input.names, input.rules);
  const stale: string[] = [];
  if (ruled.held.length || ruled.waiting.length) {
    const own = new Set(input.names);
    const blocking = new Set(blockers.map((b) => `${b.name}\n${b.entry.n}`));
    for (const b of ruled.held) {
      const onOwn = own.has(b.name); // a group of one of its names: its expired and dead holders are already counted
      if (isExpired(b.entry, input.now)) {
        if (!onOwn) removed.push({ name: b.name, entry: b.entry, why: 'expired' });
      } else if (b.shared ? input.deadShares?.has(b.entry.n) : input.dead?.has(b.name)) {
        if (!onOwn) removed.push({ name: b.name, entry: b.entry, why: 'reaped' });
      } else if (!blocking.has(`${b.name}\n${b.entry.n}`)) blockers.push(b);
    }
    const place = input.waiter === undefined ? undefined : placeOf(doc, input.names, input.waiter);
    const seen = new Set(ahead.map((a) => `${a.name}\n${a.intent.n}`));
    for (const w of ruled.waiting) {
      if (w.intent.n === input.waiter) continue;
      if (!isLiveIntent(w.intent, input.now, input.deadWaiters)) {
        stale.push(w.intent.n);
        continue;
      }
      if (input.barge || seen.has(`${w.name}\n${w.intent.n}`)) continue;
      if (place !== undefined && (w.intent.a > place.a || (w.intent.a === place.a && w.intent.n > place.n))) continue;
      const position = lineOf(doc, w.name).filter((i) => isLiveIntent(i, input.now, input.deadWaiters)).findIndex((i) => i.n === w.intent.n) + 1;
      ahead.push({ name: w.name, intent: w.intent, position, rule: w.rule });
    }
  }
  if (conflicts.length) return { ok: false, blockers, ahead, conflicts };
  if (blockers.length || ahead.length) return { ok: false, blockers, ahead };
  const l = { ...doc.l };
  for (const r of removed) if (entryOf(doc, r.name)?.n === r.entry.n) delete l[r.name];
  let s = removeShares(doc, removed);
  const entries: Record<string, Entry> = {};
  for (const name of input.names) {
    const entry: Entry = { t: input.typeOf(name), o: input.owner, f: input.token, n: input.nonce, a: input.now };
    if (input.ttlMs !== undefined) entry.e = input.now + input.ttlMs;
    entries[name] = entry;
    if (!shared) {
      l[name] = entry;
      continue;
    }
    const { t, ...holder } = entry;
    s = { ...s };
    const group = s[name];
    const next: NonNullable<LockDocument['s']>[string] = { t, h: [...(group?.h ?? []), holder] };
    if (input.limit !== undefined) next.c = input.limit;
    s[name] = next;
  }
  let next: LockDocument = { ...doc, l };
  if (s) next.s = s;
  else delete next.s;
  // Its own intents leave every line, and so do waiters found dead or expired
  // in the lines of its names (only there: a write that meets no line, like
  // the one-statement acquire, changes no line).
  const gone = new Set<string>(stale);
  if (input.waiter !== undefined) gone.add(input.waiter);
  for (const name of input.names) for (const i of lineOf(doc, name)) if (!isLiveIntent(i, input.now, input.deadWaiters)) gone.add(i.n);
  next = dropWaiters(next, (intent) => gone.has(intent.n));
  return { ok: true, doc: withTombstones(next, removed, input.now), entries, removed };
}

/** Where a waiter is in line: the time it got in line (its earliest intent on `names`) and its id; undefined when it is in none of their lines. */
function placeOf(doc: LockDocument, names: readonly string[], waiter: string): { a: number; n: string } | undefined {
  let a: number | undefined;
  for (const name of names) for (const i of lineOf(doc, name)) if (i.n === waiter && (a === undefined || i.a < a)) a = i.a;
  return a === undefined ? undefined : { a, n: waiter };
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
  /** What the waiter asks for: recorded in its intents (`m: 's'`, `c`), so later acquisitions know whether it excludes them. */
  mode?: 'exclusive' | 'shared' | undefined;
  limit?: number | undefined;
}

/**
 * Puts a waiter in line for every name at once: at the back of each line
 * where it is not yet, and renews its expiry where it is. Drops intents that
 * expired or were judged dead, on the way. A new intent's time in line `a` is
 * `now`, or 1 ms after the latest `a` in the document if that is not earlier:
 * so `a` orders every waiter of the space as the writes that put them in line
 * did (as each line does), even across a clock step back, and conflict rules
 * can compare waiters of different names by it. `changed` is false (and `doc` the
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
  let since = input.now;
  for (const line of Object.values(base.q ?? {})) for (const i of line) if (i.n !== input.waiter && i.a >= since) since = i.a + 1;
  let added = false;
  for (const name of input.names) {
    const line = [...lineOf(base, name)];
    const at = line.findIndex((i) => i.n === input.waiter);
    if (at >= 0) line[at] = { ...line[at]!, e };
    else {
      if (line.length >= MAX_QUEUE) return { doc, changed: false, added: false, full: name };
      const intent: Intent = { n: input.waiter, o: input.owner, a: since, e };
      if (input.mode === 'shared') intent.m = 's';
      if (input.mode === 'shared' && input.limit !== undefined) intent.c = input.limit;
      line.push(intent);
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

/**
 * Removes the names still held under `nonce`: an exclusive entry, or its own
 * holder entry in a name's group (a group left without holders goes, and its
 * limit with it). Reports the others with the reason they are gone.
 */
export function release(doc: LockDocument, names: readonly string[], nonce: string): ReleaseOutcome {
  const l = { ...doc.l };
  let s = doc.s;
  const released: string[] = [];
  const missing: ReleaseOutcome['missing'] = [];
  for (const name of names) {
    const held = entryOf(doc, name);
    if (held?.n === nonce) {
      delete l[name];
      released.push(name);
      continue;
    }
    const group = s && Object.hasOwn(s, name) ? s[name] : undefined;
    if (group?.h.some((h) => h.n === nonce)) {
      s = { ...s };
      const h = group.h.filter((x) => x.n !== nonce);
      if (h.length) s[name] = { ...group, h };
      else delete s[name];
      released.push(name);
      continue;
    }
    const record = doc.r?.findLast((t) => t.k === name && t.n === nonce);
    const other = held ?? (group?.h[0] ? { ...group.h[0], t: group.t } : undefined);
    const reason: NotHeldReason = record ? record.w : other ? 'taken' : 'released';
    missing.push(other ? { name, reason, heldBy: other } : { name, reason });
  }
  if (!released.length) return { doc, released, missing };
  const next: LockDocument = { ...doc, l };
  if (s && Object.keys(s).length) next.s = s;
  else delete next.s;
  return { doc: next, released, missing };
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
  const before = removed.length;
  for (const [name, group] of Object.entries(doc.s ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const share of group.h) {
      const entry: Entry = { ...share, t: group.t };
      if (match(name, entry)) removed.push({ name, entry, why });
    }
  }
  if (!removed.length) return { doc, removed };
  const next: LockDocument = { ...doc, l };
  if (removed.length > before) {
    const s = removeShares(doc, removed.slice(before));
    if (s) next.s = s;
    else delete next.s;
  }
  return { doc: withTombstones(next, removed, now), removed };
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
  let s = doc.s;
  const renew = <X extends { e?: number | undefined }>(x: X): X => {
    const y = { ...x };
    if (expiresAt === undefined) delete y.e;
    else y.e = expiresAt;
    return y;
  };
  for (const name of probe.released) {
    const held = entryOf(doc, name);
    const group = held?.n === nonce ? undefined : groupOf(doc, name);
    const mine = held?.n === nonce ? held : group?.h.find((h) => h.n === nonce);
    if (!mine || isExpired(mine, now)) {
      // An expired lease is not revived: it may already look free to others.
      probe.missing.push({ name, reason: 'expired' });
      continue;
    }
    if (!group) l[name] = renew(held!);
    else {
      s = { ...s, [name]: { ...group, h: group.h.map((h) => (h.n === nonce ? renew(h) : h)) } };
    }
  }
  const next: LockDocument = { ...doc, l };
  if (s) next.s = s;
  return { doc: next, missing: probe.missing };
}

// Forced removals leave a short record so that the holder's later release can
// say why its lease is gone (reaped, wiped, …) instead of a bare "not held".
function withTombstones(doc: LockDocument, removed: Removed[], now: number): LockDocument {
  if (!removed.length) return doc;
  const r = [...(doc.r ?? []), ...removed.map((x) => ({ k: x.name, n: x.entry.n, w: x.why, at: now }))];
  return { ...doc, r: r.slice(-MAX_TOMBSTONES) };
}
