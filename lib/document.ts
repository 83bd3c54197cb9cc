import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CorruptDocumentError, FormatError, type Holder, type NotHeldReason } from './errors.js';
import { MAX_NAME_LENGTH } from './names.js';
import type { Owner } from './owner.js';

/** The document format this version writes. It still reads format 1 (and rewrites it as 2 on the next write). */
export const FORMAT = 2;
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

const OWNER_KEY_RE = /^[0-9a-f]{16}$/;
const ownerKeySchema = z.string().regex(OWNER_KEY_RE);
/** An entry in format 2: the owner by key into the document's `o`. */
const linkedEntry = z.object({ ...entryFields, o: ownerKeySchema }).strict();

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

/**
 * The document in memory: every entry with its owner. Its `v` says nothing
 * about storage (serializeDocument always writes FORMAT); any format number
 * is accepted so that documents built by hand, in tests, need not track it.
 */
const documentSchema = z
  .object({
    v: z.number().int(),
    l: z.record(nameKey, storedEntry),
    r: tombstones,
  })
  .strict();

export type StoredOwner = z.infer<typeof storedOwner>;
export type Entry = z.infer<typeof storedEntry>;
export type Tombstone = z.infer<typeof tombstone>;
export type RemovalReason = z.infer<typeof removalReason> & NotHeldReason;
export type LockDocument = z.infer<typeof documentSchema>;

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
  for (const key of ['l', 'o'] as const) {
    const map = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
    if (map && typeof map === 'object' && Object.hasOwn(map, '__proto__')) {
      throw new CorruptDocumentError(space, raw, [`${key}.__proto__: not a valid key`]);
    }
  }
  const isOne = !!value && typeof value === 'object' && (value as { v?: unknown }).v === 1;
  const parsed = (isOne ? formatOne : formatTwo).safeParse(value);
  if (!parsed.success) {
    throw new CorruptDocumentError(
      space,
      raw,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  if (parsed.data.v === 1) return { ...parsed.data, v: FORMAT };
  const { o: owners, l: linked, ...rest } = parsed.data;
  const l: Record<string, Entry> = {};
  for (const [name, { o: key, ...entry }] of Object.entries(linked)) {
    const owner = Object.hasOwn(owners, key) ? owners[key] : undefined;
    if (!owner) throw new CorruptDocumentError(space, raw, [`l.${name}.o: no owner '${key}' in o`]);
    l[name] = { ...entry, o: owner };
  }
  return { ...rest, l };
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
 * The stored text, format 2: each owner once in `o`, entries refer to it by
 * key. Owners no entry refers to are not written.
 */
export function serializeDocument(doc: LockDocument): string {
  const o: Record<string, StoredOwner> = {};
  const l: Record<string, Omit<Entry, 'o'> & { o: string }> = {};
  for (const [name, entry] of Object.entries(doc.l)) {
    const key = ownerKey(entry.o);
    o[key] ??= entry.o;
    l[name] = { ...entry, o: key };
  }
  const stored: Record<string, unknown> = { v: FORMAT, o, l };
  if (doc.r !== undefined) stored.r = doc.r;
  return JSON.stringify(stored);
}

/**
 * `{"l":{name:{"n":nonce}},…}`: `JSON_CONTAINS(dataJson, it)` holds while every
 * name still carries its nonce. The one-statement release guards with it, and
 * wait()'s poll asks it of the waiters' blockers.
 */
export function nonceCandidate(pairs: Iterable<readonly [name: string, nonce: string]>): string {
  const l: Record<string, { n: string }> = {};
  for (const [name, n] of pairs) l[name] = { n };
  return JSON.stringify({ l });
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

/**
 * The key an owner is stored under in format 2: a hash of its stored form, so
 * every writer (a full write here, or the one-statement acquire in SQL) files
 * the same owner under the same key without coordinating. 64 bits: owners are
 * few (one per process), so a collision is not a practical concern. Hex only,
 * so it is never a LIKE pattern nor a path that needs quoting.
 */
export function ownerKey(owner: StoredOwner): string {
  let key = keys.get(owner);
  if (key === undefined) {
    key = createHash('sha256').update(ownerText(owner)).digest('hex').slice(0, 16);
    keys.set(owner, key);
  }
  return key;
}

/** The owner's stored text, with its keys in a fixed order. */
export function ownerText(owner: StoredOwner): string {
  const { h, b, ns, p, s, u, t } = owner;
  return JSON.stringify(t === undefined ? { h, b, ns, p, s, u } : { h, b, ns, p, s, u, t });
}

export function toStoredOwner(o: Owner): StoredOwner {
  const s: StoredOwner = { h: o.host, b: o.bootId, ns: o.pidNs, p: o.pid, s: o.startTime, u: o.user };
  if (o.taskId !== undefined) s.t = o.taskId;
  return s;
}

export function fromStoredOwner(s: StoredOwner): Owner {
  const o: Owner = { host: s.h, bootId: s.b, pidNs: s.ns, pid: s.p, startTime: s.s, user: s.u };
  if (s.t !== undefined) o.taskId = s.t;
  return o;
}

export function toHolder(name: string, e: Entry): Holder {
  const h: Holder = { name, type: e.t, owner: fromStoredOwner(e.o), token: e.f, acquiredAt: new Date(e.a) };
  if (e.e !== undefined) h.expiresAt = new Date(e.e);
  return h;
}
