// Several plain acquires and releases of one lock table, as one statement.
//
// The gate (lib/gate.ts) hands over what queued while the table's statements
// were in flight. planFast turns it into one conditional UPDATE (lib/store.ts
// fastWrite) that applies only if every member succeeds without anyone being
// judged: the acquired names are absent, the released entries still carry
// their nonce. Otherwise nothing is written, and each member goes on alone
// through the compare-and-swap path of LockTable, where the pure transitions
// (lib/transitions.ts) decide every case — ELOCKED, take-over, ENOTHELD and
// its reason. A differential test holds the two paths to the same outcomes.
//
// Tokens: a statement that grants n acquisitions moves the version by n, and
// each gets its own token in that range, in queue order. So tokens stay unique
// and strictly increasing across every acquisition of the space, exactly as
// with one write per acquisition.
import { compactEntry, entryOf, nonceCandidate, ownerKey, ownerText, type Entry, type LockDocument, type StoredOwner } from './document.js';
import type { FastPlan } from './store.js';
import { isExpired } from './transitions.js';

export interface AcquireMember {
  kind: 'acquire';
  names: readonly string[];
  nonce: string;
  ttlMs?: number | undefined;
  /** The type of each name, checked by the caller. */
  types: ReadonlyMap<string, string>;
  /**
   * Names a conflict rule sets against these (lib/rules.ts guards()): the
   * statement applies only if none of them is held, held shared, or waited
   * for. An acquisition whose rules name a pattern never comes here.
   */
  guards?: readonly string[] | undefined;
  /**
   * Fair waiting's take from the front of the line: the id of this
   * acquisition's intent, first in the line of its one name when its waiter
   * last looked. The statement then applies only if that intent is still
   * first in line and no one holds the name (exclusive or shared), and
   * removes the intent in the same write, as the pure transition does for a
   * waiter at the front. At most one per statement.
   */
  waiter?: string | undefined;
}

export interface ReleaseMember {
  kind: 'release';
  names: readonly string[];
  nonce: string;
}

export type Member = AcquireMember | ReleaseMember;

/**
 * What the statement did for one member. `refused`: nothing for it, decide from
 * a read — with `remnantAt` when it did apply but the acquisition ran out or
 * lost a name since: the version the statement can no longer apply after, so
 * what is left of it can be taken over as one's own (lib/settle.ts). Also when
 * it may still apply (sent to a Galera node that statements no longer go to,
 * and not visible on the current one): once a later write of the row commits,
 * it no longer can; until then an acquisition keeps that nonce as its own, and
 * a release counts entries gone without a tombstone as released.
 */
export type Outcome =
  | { kind: 'acquired'; entries: Record<string, Entry> }
  | { kind: 'released'; names: string[] }
  | { kind: 'refused'; remnantAt?: number };

export interface BatchContext {
  owner: StoredOwner;
}

/** At most this many names in one statement. */
export const MAX_BATCH_NAMES = 128;
/**
 * How far the time written into an entry (estimated here, lib/clock.ts) may be
 * from the server's clock when the statement's row is evaluated. It also
 * bounds how late a statement whose reply was lost can still apply.
 */
export const CLOCK_TOLERANCE_MS = 250;

/** The gate's rule for combining: bounded by the number of names. */
export function canJoin(batch: readonly Member[], next: Member): boolean {
  let names = next.names.length;
  for (const m of batch) names += m.names.length;
  return names <= MAX_BATCH_NAMES;
}

export interface FastBatch {
  plan: FastPlan;
  /** Which members the statement carries; the others are refused at once (a name an earlier member has). */
  included: boolean[];
  /** Each member's entries as the statement writes them, `f` still 0, and how far below the new version its token is. */
  intents: Array<{ entries?: Record<string, Entry>; back?: number }>;
}

/**
 * The batch as one statement. A member naming a lock an earlier member names
 * is left out (refused): within one statement the order would matter. So is
 * one whose guards (conflict rules) an earlier member names, or that names an
 * earlier member's guard: the statement checks every guard against the
 * document before it, so two sides of a rule could otherwise both be taken.
 * Returns undefined when no member is left. `at` is the database time estimated here.
 */
export function planFast(members: readonly Member[], ctx: BatchContext, at: number): FastBatch | undefined {
  const seen = new Set<string>();
  const guarded = new Set<string>();
  let takes = 0;
  const included = members.map((m) => {
    const guards = m.kind === 'acquire' ? (m.guards ?? []) : [];
    if (m.names.some((n) => seen.has(n) || guarded.has(n)) || guards.some((g) => seen.has(g))) return false;
    // A take removes from a line in SQL that looks at the document before the statement: one per statement, of one name.
    if (m.kind === 'acquire' && m.waiter !== undefined && (takes++ > 0 || m.names.length !== 1)) return false;
    for (const n of m.names) seen.add(n);
    for (const g of guards) guarded.add(g);
    return true;
  });
  if (!included.some(Boolean)) return undefined;
  const acquiring = members.filter((m, i) => included[i] && m.kind === 'acquire').length;
  const key = ownerKey(ctx.owner);
  const plan: FastPlan = { bump: Math.max(1, acquiring), removes: [], sets: [], guards: [], at: { ms: at, toleranceMs: CLOCK_TOLERANCE_MS } };
  const holds: Array<[string, string]> = [];
  const intents: FastBatch['intents'] = [];
  let index = 0;
  members.forEach((m, i) => {
    if (!included[i]) return intents.push({});
    if (m.kind === 'release') {
      for (const n of m.names) {
        plan.removes.push(entryPath(n));
        holds.push([n, m.nonce]);
      }
      return intents.push({});
    }
    const back = acquiring - 1 - index++;
    const entries: Record<string, Entry> = {};
    for (const n of m.names) {
      const entry: Entry = { t: m.types.get(n) ?? n, o: ctx.owner, f: 0, n: m.nonce, a: at };
      if (m.ttlMs !== undefined) entry.e = at + m.ttlMs;
      entries[n] = entry;
      // Stored as a full write stores it (format 4): f is set in SQL.
      plan.sets.push({ path: entryPath(n), name: n, json: JSON.stringify(compactEntry(n, entry, key)), back, ...(m.waiter === undefined ? {} : { waiter: m.waiter }) });
    }
    for (const g of m.guards ?? []) if (!plan.guards.includes(g)) plan.guards.push(g);
    return intents.push({ entries, back });
  });
  if (holds.length) plan.holds = nonceCandidate(holds);
  if (acquiring) plan.owner = ownerRecord(ctx.owner);
  return { plan, included, intents };
}

const ownerRecords = new WeakMap<StoredOwner, Readonly<{ path: string; json: string }>>();

/** Where an owner's record goes and its text: the same for every statement of a table, so made once. */
function ownerRecord(owner: StoredOwner): Readonly<{ path: string; json: string }> {
  let record = ownerRecords.get(owner);
  if (record === undefined) {
    record = Object.freeze({ path: ownerPath(ownerKey(owner)), json: ownerText(owner) });
    ownerRecords.set(owner, record);
  }
  return record;
}

/** The members' outcomes once the statement applied and reported the new version. */
export function applied(members: readonly Member[], fast: FastBatch, version: number): Outcome[] {
  return members.map((m, i) => {
    if (!fast.included[i]) return { kind: 'refused' };
    if (m.kind === 'release') return { kind: 'released', names: [...m.names] };
    const { entries, back } = fast.intents[i]!;
    return { kind: 'acquired', entries: withToken(entries!, version - back!) };
  });
}

/**
 * After a statement whose reply was lost, on a locking read taken once the
 * statement can no longer apply (see LockTable): whether it applied, and what
 * each member gets. The statement is all or nothing and our nonces are
 * unique, so any acquired entry of ours — or a tombstone recording one removed
 * since — proves it applied. A statement that only released applied when none
 * of its entries is left and no tombstone says another removed one (then it
 * was wiped first, and the release must say so: the member is refused and the
 * read-decide-write path reports it). An acquisition found applied but expired
 * since, or partly removed, is refused too: it is acquired anew, as a lost
 * compare-and-swap write would be (lib/settle.ts).
 */
export function settleFast(doc: LockDocument, snap: { version: number; now: number }, members: readonly Member[], fast: FastBatch): Outcome[] {
  const tombstoned = (n: string, nonce: string) => doc.r?.some((t) => t.k === n && t.n === nonce) ?? false;
  const ours = members.filter((_, i) => fast.included[i]);
  const acquires = ours.filter((m): m is AcquireMember => m.kind === 'acquire');
  const didApply = acquires.length
    ? acquires.some((m) => m.names.some((n) => entryOf(doc, n)?.n === m.nonce || tombstoned(n, m.nonce)))
    : ours.every((m) => m.names.every((n) => entryOf(doc, n)?.n !== m.nonce && !tombstoned(n, m.nonce)));
  if (!didApply) return members.map(() => ({ kind: 'refused' }));
  return members.map((m, i) => {
    if (!fast.included[i]) return { kind: 'refused' };
    if (m.kind === 'release') return { kind: 'released', names: [...m.names] };
    const found = m.names.map((n) => entryOf(doc, n));
    if (!found.every((e) => e?.n === m.nonce && !isExpired(e, snap.now))) return { kind: 'refused', remnantAt: snap.version };
    return { kind: 'acquired', entries: Object.fromEntries(m.names.map((n, j) => [n, found[j]!])) };
  });
}

function withToken(entries: Record<string, Entry>, f: number): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  for (const [n, e] of Object.entries(entries)) out[n] = { ...e, f };
  return out;
}

/** The JSON path of an owner's record (format 2 on). Keys are letters and digits (document.ts ownerKey). */
export function ownerPath(key: string): string {
  return `$.o."${key}"`;
}

/** The JSON path of a lock's entry. Names are validated (no quote, no backslash), so quoting is enough. */
export function entryPath(name: string): string {
  return `$.l."${name}"`;
}
