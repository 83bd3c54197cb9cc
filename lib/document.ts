import { z } from 'zod';
import { CorruptDocumentError, FormatError, type Holder, type NotHeldReason } from './errors.js';
import { MAX_NAME_LENGTH } from './names.js';
import type { Owner } from './owner.js';

/** The document format this version reads and writes. */
export const FORMAT = 1;
/** How many records of forced removals the document keeps, newest last. */
export const MAX_TOMBSTONES = 32;

// Keys are short on purpose: every write rewrites the whole document, and its
// size is what a write costs (a 1,000-lock document made writes ~6x slower).
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

const storedEntry = z
  .object({
    t: z.string().max(MAX_NAME_LENGTH), // type
    o: storedOwner,
    f: z.number().int().positive(), // fencing token
    n: z.string().min(1).max(64), // nonce
    a: z.number().int().nonnegative(), // acquired at, ms of database time
    e: z.number().int().nonnegative().optional(), // expires at, ms of database time
  })
  .strict();

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

const documentSchema = z
  .object({
    v: z.literal(FORMAT),
    l: z.record(nameKey, storedEntry),
    r: z.array(tombstone).max(MAX_TOMBSTONES).optional(),
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
  const l = value && typeof value === 'object' ? (value as { l?: unknown }).l : undefined;
  if (l && typeof l === 'object' && Object.hasOwn(l, '__proto__')) {
    throw new CorruptDocumentError(space, raw, ['l.__proto__: not a valid lock name']);
  }
  const parsed = documentSchema.safeParse(value);
  if (!parsed.success) {
    throw new CorruptDocumentError(
      space,
      raw,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  return parsed.data;
}

/**
 * The entry held under `name`, if any. Always use this rather than `doc.l[name]`:
 * `l` is a plain object, and names such as `constructor` or `toString` would
 * otherwise find Object.prototype's members and look held.
 */
export function entryOf(doc: LockDocument, name: string): Entry | undefined {
  return Object.hasOwn(doc.l, name) ? doc.l[name] : undefined;
}

export function serializeDocument(doc: LockDocument): string {
  return JSON.stringify(doc);
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
