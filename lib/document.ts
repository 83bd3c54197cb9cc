import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CorruptDocumentError, FormatError, type Holder, type NotHeldReason, type Waiting } from './errors.js';
import { MAX_NAME_LENGTH } from './names.js';
import type { Owner } from './owner.js';

/**
 * The document format this version writes. It still reads formats 1 to 3
 * (and rewrites them as 4 on the next full write). Format 3 is format 2 plus
 * two optional maps, both absent when empty, so a space that uses neither
 * stores exactly what format 2 stored: `s` (names held by several holders at
 * once: shared locks and semaphores) and `q` (the line of waiters of each
 * name). Format 4 is format 3 with shorter entries (see `compactEntry`): the
 * type left out where the name implies it, owner keys of 11 characters. A format-4 reader also takes entries
 * and owner keys written the format-3 way (an older locktable's one-statement
 * acquire writes them so). docs/lock-kinds.md describes it.
 */
export const FORMAT = 4;
/** How many records of forced removals the document keeps, newest last. */
export const MAX_TOMBSTONES = 32;

// Keys are short on purpose: every write rewrites the whole document, and its
// size is what a write costs (a 1,000-lock document made writes ~6x slower).
// For the same reason format 2 stores each owner once, in `o`, keyed by
// ownerKey(), and entries refer to it: an owner is ~130 bytes, an entry
// without it ~90. In memory every entry carries its owner object, as in
// format 1, so the transitions never see the difference.
const storedOwner = z
  .object({
    h: z.string().max(255), // host
    b: z.string().max(64), // boot id
    ns: z.string().max(64), // pid namespace
    p: z.number().int().positive(), // pid
    s: z.number().int().nonnegative(), // start time, clock ticks since boot
    u: z.string().max(255), // user
    t: z.string().max(255).optional(), // task id
    // ancestors, nearest first: [pid, start time] (absent before it was recorded)
    a: z.array(z.tuple([z.number().int().positive(), z.number().int().nonnegative()])).max(8).optional(),
  })
  .strict();

const entryFields = {
  t: z.string().max(MAX_NAME_LENGTH), // type
  f: z.number().int().positive(), // fencing token
  n: z.string().min(1).max(64), // nonce
  a: z.number().int().nonnegative(), // acquired at, ms of database time
  e: z.number().int().nonnegative().optional(), // expires at, ms of database time
};

/** An entry in memory (and in format 1): the owner inline. */
const storedEntry = z.object({ ...entryFields, o: storedOwner }).strict();

/** The most holders one shared name or semaphore has at once, and the largest semaphore limit. */
export const MAX_HOLDERS = 1_000;
export const MAX_LIMIT = MAX_HOLDERS;
/** The most waiters in line for one name. */
export const MAX_QUEUE = 1_000;

const OWNER_KEY_RE = /^[0-9a-f]{16}$/;
const ownerKeySchema = z.string().regex(OWNER_KEY_RE);
/** Format 4's owner keys: 11 base-62 characters, or 16 hex as formats 2 and 3 (and an older locktable's one-statement acquire) wrote them. */
const ownerKey4Schema = z.string().regex(/^(?:[0-9A-Za-z]{11}|[0-9a-f]{16})$/);
/** An entry in format 2: the owner by key into the document's `o`. */
const linkedEntry = z.object({ ...entryFields, o: ownerKeySchema }).strict();

/** A holder of a shared lock or semaphore in format 3: an entry without its type (the group has it). */
const linkedShare = linkedEntry.omit({ t: true });
const share = storedEntry.omit({ t: true });

/** An entry in format 4: `t` absent when impliedType(name) gives it. */
const compactFields = { ...entryFields, t: entryFields.t.optional(), o: ownerKey4Schema };
const shortEntry = z.object(compactFields).strict();
const shortShare = z.object(compactFields).omit({ t: true }).strict();

/**
 * A name held by several holders at once: `c` is the semaphore's limit (the
 * most holders at once), absent for a shared lock (no limit). `h` is never
 * empty: a group without holders is removed, and its limit with it.
 */
const groupFields = { t: z.string().max(MAX_NAME_LENGTH), c: z.number().int().min(1).max(MAX_LIMIT).optional() };
const linkedGroup = z.object({ ...groupFields, h: z.array(linkedShare).min(1).max(MAX_HOLDERS) }).strict();
const storedGroup = z.object({ ...groupFields, h: z.array(share).min(1).max(MAX_HOLDERS) }).strict();

/**
 * One waiter's intent on one name, in line order. A waiter of several names
 * has one intent per name, all with its id `n`, appended in one write: every
 * line is in the same (write) order, so the first of any set of waiters is
 * first in each of its lines. `e`: expiry (database ms), renewed while the
 * waiter waits. `m`: 's' for a shared or semaphore waiter, absent for
 * exclusive. `c`: the limit a semaphore waiter asks for.
 */
const intentFields = {
  n: z.string().min(1).max(64), // the waiter's id
  a: z.number().int().nonnegative(), // in line since, ms of database time
  e: z.number().int().nonnegative(), // expires at, ms of database time
  m: z.literal('s').optional(),
  c: z.number().int().min(1).max(MAX_LIMIT).optional(),
};
const linkedIntent = z.object({ ...intentFields, o: ownerKeySchema }).strict();
const storedIntent = z.object({ ...intentFields, o: storedOwner }).strict();

const removalReason = z.enum(['reaped', 'wiped', 'owner', 'forced', 'expired']);

const tombstone = z
  .object({
    k: z.string().max(MAX_NAME_LENGTH), // the name
    n: z.string().min(1).max(64), // the nonce that was removed
    w: removalReason, // why
    at: z.number().int().nonnegative(),
  })
  .strict();

const nameKey = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/).max(MAX_NAME_LENGTH);

const tombstones = z.array(tombstone).max(MAX_TOMBSTONES).optional();

const formatOne = z
  .object({
    v: z.literal(1),
    l: z.record(nameKey, storedEntry),
    r: tombstones,
  })
  .strict();

// An owner record no entry refers to is allowed: the one-statement release
// leaves its owner's record behind (see store.ts), the next full write drops it.
const formatTwo = z
  .object({
    v: z.literal(2),
    o: z.record(ownerKeySchema, storedOwner),
    l: z.record(nameKey, linkedEntry),
    r: tombstones,
  })
  .strict();

const formatThree = z
  .object({
    v: z.literal(3),
    o: z.record(ownerKeySchema, storedOwner),
    l: z.record(nameKey, linkedEntry),
    s: z.record(nameKey, linkedGroup).optional(),
    q: z.record(nameKey, z.array(linkedIntent).min(1).max(MAX_QUEUE)).optional(),
    r: tombstones,
  })
  .strict();

const formatFour = z
  .object({
    v: z.literal(4),
    o: z.record(ownerKey4Schema, storedOwner),
    l: z.record(nameKey, shortEntry),
    s: z.record(nameKey, z.object({ ...groupFields, h: z.array(shortShare).min(1).max(MAX_HOLDERS) }).strict()).optional(),
    q: z.record(nameKey, z.array(z.object({ ...intentFields, o: ownerKey4Schema }).strict()).min(1).max(MAX_QUEUE)).optional(),
    r: tombstones,
  })
  .strict();

/**
 * The document in memory: every entry with its owner. Its `v` says nothing
 * about storage (serializeDocument always writes FORMAT); any format number
 * is accepted so that documents built by hand, in tests, need not track it.
 */
const documentSchema = z
  .object({
    v: z.number().int(),
    l: z.record(nameKey, storedEntry),
    s: z.record(nameKey, storedGroup).optional(),
    q: z.record(nameKey, z.array(storedIntent)).optional(),
    r: tombstones,
  })
  .strict();

export type StoredOwner = z.infer<typeof storedOwner>;
export type Entry = z.infer<typeof storedEntry>;
export type Tombstone = z.infer<typeof tombstone>;
export type RemovalReason = z.infer<typeof removalReason> & NotHeldReason;
export type LockDocument = z.infer<typeof documentSchema>;
/** A holder of a shared lock or semaphore, in memory. */
export type Share = z.infer<typeof share>;
/** A name held by several holders at once, in memory. */
export type Group = z.infer<typeof storedGroup>;
/** One waiter's intent on one name, in memory. */
export type Intent = z.infer<typeof storedIntent>;

/** The document of a space nobody has written yet. */
export function emptyDocument(): LockDocument {
  return { v: FORMAT, l: {} };
}

/**
 * Parses and validates the stored text. Throws ECORRUPT (with the raw text)
 * when it is not a valid document, EFORMAT when it is from a newer version.
 */
export function parseDocument(space: string, raw: string): LockDocument {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new CorruptDocumentError(space, raw, [`not JSON: ${(err as Error).message}`]);
  }
  // Only a well-formed format number can be "newer": 1.5, 1e400 or -1 are damage, not a version.
  if (value && typeof value === 'object' && 'v' in value && Number.isSafeInteger(value.v) && (value.v as number) > FORMAT) {
    throw new FormatError(space, value.v);
  }
  // A `__proto__` key would be dropped (or turned into a prototype) on the way
  // through zod and object spreads, making a held lock look free.
  for (const key of ['l', 'o', 's', 'q'] as const) {
    const map = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
    if (map && typeof map === 'object' && Object.hasOwn(map, '__proto__')) {
      throw new CorruptDocumentError(space, raw, [`${key}.__proto__: not a valid key`]);
    }
  }
  const v = !!value && typeof value === 'object' ? (value as { v?: unknown }).v : undefined;
  const parsed = (v === 1 ? formatOne : v === 2 ? formatTwo : v === 3 ? formatThree : formatFour).safeParse(value);
  if (!parsed.success) {
    // Fields this version does not know, in a document of its own format and
    // otherwise valid: written by a newer locktable that added them (see
    // docs/lock-kinds.md, "Reading a newer document"). Refused all the same —
    // a field may change what a lock means — but as EFORMAT, not as damage.
    const issues = parsed.error.issues;
    if (v === FORMAT && issues.every((i) => i.code === 'unrecognized_keys')) {
      throw new FormatError(space, v, issues.flatMap((i) => i.keys.map((k) => [...i.path, k].join('.'))), raw);
    }
    throw new CorruptDocumentError(
      space,
      raw,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  if (parsed.data.v === 1) return { ...parsed.data, v: FORMAT };
  // Formats 2 and 3 are format 4 with every entry written out in full.
  const data = parsed.data as z.infer<typeof formatFour>;
  const owners = data.o;
  const ownerAt = (where: string, key: string): StoredOwner => {
    const owner = Object.hasOwn(owners, key) ? owners[key] : undefined;
    if (!owner) throw new CorruptDocumentError(space, raw, [`${where}.o: no owner '${key}' in o`]);
    return owner;
  };
  // Back to the entry in memory: the owner itself (and, below, the type in full).
  const expand = <X extends { o: string }>(where: string, { o, ...x }: X) => ({ ...x, o: ownerAt(where, o) });
  const doc: LockDocument = { v: FORMAT, l: {} };
  for (const [name, entry] of Object.entries(data.l)) {
    const { t, ...rest } = expand(`l.${name}`, entry);
    doc.l[name] = { t: t ?? impliedType(name), ...rest };
  }
  if (data.s) {
    doc.s = {};
    for (const [name, group] of Object.entries(data.s)) {
      if (Object.hasOwn(data.l, name)) throw new CorruptDocumentError(space, raw, [`s.${name}: also held in l`]);
      const nonces = new Set(group.h.map((h) => h.n));
      if (nonces.size !== group.h.length) throw new CorruptDocumentError(space, raw, [`s.${name}.h: a nonce appears twice`]);
      if (group.c !== undefined && group.h.length > group.c) throw new CorruptDocumentError(space, raw, [`s.${name}.h: more holders than its limit ${group.c}`]);
      doc.s[name] = { ...group, h: group.h.map((h, i) => expand(`s.${name}.h.${i}`, h)) };
    }
  }
  if (data.q) {
    doc.q = {};
    for (const [name, line] of Object.entries(data.q)) {
      if (new Set(line.map((w) => w.n)).size !== line.length) throw new CorruptDocumentError(space, raw, [`q.${name}: a waiter appears twice`]);
      doc.q[name] = line.map(({ o, ...w }, i) => ({ ...w, o: ownerAt(`q.${name}.${i}`, o) }));
    }
  }
  if (data.r !== undefined) doc.r = data.r;
  return doc;
}

/** The group of holders of a shared name or semaphore, if any (see entryOf for why not `doc.s[name]`). */
export function groupOf(doc: LockDocument, name: string): Group | undefined {
  return doc.s && Object.hasOwn(doc.s, name) ? doc.s[name] : undefined;
}

/** The waiters in line for `name`, first first; empty when none. */
export function lineOf(doc: LockDocument, name: string): readonly Intent[] {
  return doc.q && Object.hasOwn(doc.q, name) ? doc.q[name]! : [];
}

/**
 * The entry held under `name`, if any. Always use this rather than `doc.l[name]`:
 * `l` is a plain object, and names such as `constructor` or `toString` would
 * otherwise find Object.prototype's members and look held.
 */
export function entryOf(doc: LockDocument, name: string): Entry | undefined {
  return Object.hasOwn(doc.l, name) ? doc.l[name] : undefined;
}

/**
 * The type a name implies in format 4: the name up to its last `_` (`app_task`
 * for `app_task_42`, as the platform's catalogue types its prefixed names), or
 * the name itself when it has no `_` after its first character. An entry whose
 * type is this leaves `t` out.
 */
export function impliedType(name: string): string {
  const i = name.lastIndexOf('_');
  return i > 0 ? name.slice(0, i) : name;
}

/**
 * An entry (or shared holder, `name` undefined) as format 4 stores it: owner
 * by key, `t` only where the name does not imply it. The one-statement
 * acquire writes the same shape (lib/batch.ts).
 */
export function compactEntry(name: string | undefined, x: Omit<Entry, 't'> & { t?: string }, key: string): Record<string, unknown> {
  const out: Record<string, unknown> = { o: key, f: x.f, n: x.n, a: x.a };
  if (x.e !== undefined) out.e = x.e;
  if (name !== undefined && x.t !== undefined && x.t !== impliedType(name)) out.t = x.t;
  return out;
}

/**
 * The stored text, format 4: each owner once in `o`, entries, shared holders
 * and waiters refer to it by key; entries in their short form (compactEntry).
 * Owners nothing refers to are not written, nor are an empty `s` or `q`.
 */
export function serializeDocument(doc: LockDocument): string {
  const o: Record<string, StoredOwner> = {};
  const keyOf = (owner: StoredOwner): string => {
    const key = ownerKey(owner);
    o[key] ??= owner;
    return key;
  };
  const link = <X extends { o: StoredOwner }>(x: X): Omit<X, 'o'> & { o: string } => ({ ...x, o: keyOf(x.o) });
  const l: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(doc.l)) l[name] = compactEntry(name, entry, keyOf(entry.o));
  const stored: Record<string, unknown> = { v: FORMAT, o, l };
  const groups = Object.entries(doc.s ?? {}).filter(([, g]) => g.h.length > 0);
  if (groups.length) stored.s = Object.fromEntries(groups.map(([name, g]) => [name, { ...g, h: g.h.map((h) => compactEntry(undefined, h, keyOf(h.o))) }]));
  const lines = Object.entries(doc.q ?? {}).filter(([, line]) => line.length > 0);
  if (lines.length) stored.q = Object.fromEntries(lines.map(([name, line]) => [name, line.map(link)]));
  if (doc.r !== undefined) stored.r = doc.r;
  return JSON.stringify(stored);
}

/**
 * `{"l":{name:{"n":nonce}},…}`: `JSON_CONTAINS(dataJson, it)` holds while every
 * name still carries its nonce. The one-statement release guards with it.
 */
export function nonceCandidate(pairs: Iterable<readonly [name: string, nonce: string]>): string {
  // Built from strings (each name once: a statement never names a lock twice,
  // lib/batch.ts planFast): an object keyed by names is a dictionary-mode
  // object per statement, on the path every release takes.
  let text = '';
  for (const [name, n] of pairs) text += `${text ? ',' : ''}${JSON.stringify(name)}:{"n":${JSON.stringify(n)}}`;
  return `{"l":{${text}}}`;
}

/**
 * How many owner records of the stored text (format 2's `o`) no entry refers
 * to: what the one-statement release leaves behind, and a full write drops.
 * 0 for text that is not a format-2 document.
 */
export function strayOwnerRecords(raw: string): number {
  let stored: unknown;
  try {
    stored = JSON.parse(raw);
  } catch {
    return 0;
  }
  const { o, l } = (stored ?? {}) as { o?: unknown; l?: unknown };
  if (!o || typeof o !== 'object' || !l || typeof l !== 'object') return 0;
  const used = new Set(Object.values(l as Record<string, { o?: unknown }>).map((e) => e?.o));
  return Object.keys(o).filter((k) => !used.has(k)).length;
}

const keys = new WeakMap<StoredOwner, string>();

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * The key an owner is stored under (format 2 on): a hash of its stored form, so
 * every writer (a full write here, or the one-statement acquire in SQL) files
 * the same owner under the same key without coordinating. 64 bits: owners are
 * few (one per process), so a collision is not a practical concern. Format 4
 * writes them in base 62 (11 characters; formats 2 and 3 wrote 16 hex): letters
 * and digits only, so a key is never a LIKE pattern nor a path that needs quoting.
 */
export function ownerKey(owner: StoredOwner): string {
  let key = keys.get(owner);
  if (key === undefined) {
    let n = createHash('sha256').update(ownerText(owner)).digest().readBigUInt64BE(0);
    key = '';
    for (let i = 0; i < 11; i++) {
      key = BASE62[Number(n % 62n)]! + key;
      n /= 62n;
    }
    keys.set(owner, key);
  }
  return key;
}

/** The owner's stored text, with its keys in a fixed order. */
export function ownerText(owner: StoredOwner): string {
  const { h, b, ns, p, s, u, t, a } = owner;
  const ordered: StoredOwner = { h, b, ns, p, s, u };
  if (t !== undefined) ordered.t = t;
  if (a !== undefined) ordered.a = a;
  return JSON.stringify(ordered);
}

export function toStoredOwner(o: Owner): StoredOwner {
  const s: StoredOwner = { h: o.host, b: o.bootId, ns: o.pidNs, p: o.pid, s: o.startTime, u: o.user };
  if (o.taskId !== undefined) s.t = o.taskId;
  if (o.ancestors?.length) s.a = o.ancestors.map((x) => [x.pid, x.startTime]);
  return s;
}

export function fromStoredOwner(s: StoredOwner): Owner {
  const o: Owner = { host: s.h, bootId: s.b, pidNs: s.ns, pid: s.p, startTime: s.s, user: s.u };
  if (s.t !== undefined) o.taskId = s.t;
  if (s.a !== undefined) o.ancestors = s.a.map(([pid, startTime]) => ({ pid, startTime }));
  return o;
}

/** A holder as errors, events and list() show it; `rule` when a conflict rule puts it in the way (see Holder). */
export function toHolder(name: string, e: Entry, rule?: string): Holder {
  const h: Holder = { name, type: e.t, owner: fromStoredOwner(e.o), token: e.f, acquiredAt: new Date(e.a) };
  if (e.e !== undefined) h.expiresAt = new Date(e.e);
  if (rule !== undefined) h.rule = rule;
  return h;
}

export function toWaiting(name: string, intent: Intent, position: number, rule?: string): Waiting {
  const w: Waiting = { name, position, id: intent.n, owner: fromStoredOwner(intent.o), since: new Date(intent.a), expiresAt: new Date(intent.e) };
  if (rule !== undefined) w.rule = rule;
  return w;
}
