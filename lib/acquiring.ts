// One attempt at an acquisition: the one statement first (batched by the
// gate with whatever else is queued), then read-decide-write when it is
// refused, with the writes whose reply was lost settled from what the next
// read shows (lib/settle.ts), and what may hold names for no one handed to
// the background release (lib/leftovers.ts).
import createDebug from 'debug';
import { CLOCK_TOLERANCE_MS, type BatchContext, type Outcome } from './batch.js';
import type { Bound } from './bound.js';
import { entryOf, groupOf, lineOf, type Entry } from './document.js';
import { DatabaseError, InvalidOptionError } from './errors.js';
import { toUnresolvedError } from './faults.js';
import type { HeldLeases } from './held.js';
import type { Lease } from './lease.js';
import type { Leftovers } from './leftovers.js';
import { judgeEntry } from './liveness.js';
import { MAX_NAME_LENGTH, notInCatalogue } from './names.js';
import { nonce as newNonce } from './nonce.js';
import type { AcquireOptions, ResolvedOptions } from './options.js';
import { localView, type Owner } from './owner.js';
import type { ConflictRules } from './rules.js';
import { heldUnder, settleLost } from './settle.js';
import * as T from './transitions.js';
import type { Blocked } from './waiting.js';
import type { Writer } from './writer.js';

const log = {
  acquire: createDebug('locktable:acquire'),
  reap: createDebug('locktable:reap'),
};

/** What an acquisition needs of its table. */
export interface AcquirerConfig {
  options: ResolvedOptions;
  space: string;
  owner: Owner;
  /** The owner as the document stores it. */
  batch: BatchContext;
  /** The catalogue's typeOf, as the host gave it (its results are checked here). */
  typeOf: (name: string) => string | undefined;
  /** The catalogue, when strictNames refuses names outside it. */
  strictCatalogue: object | undefined;
  /** The catalogue's conflict rules (lib/rules.ts): every acquisition is checked against them, in its write. */
  rules: ConflictRules;
  writer: Writer;
  /** Where an acquisition won makes its first lease. */
  leases: HeldLeases;
  /** The background release of what may hold names for no one. */
  leftovers: Leftovers;
  /** Publishes the locks an acquisition took over (their owners dead, or their leases expired). */
  reaped(removed: T.Removed[]): void;
}

/** The acquisitions of one table: acquire(), tryAcquire(), and each attempt of wait(). */
export class Acquirer {
  readonly #config: AcquirerConfig;
  readonly #writer: Writer;

  constructor(config: AcquirerConfig) {
    this.#config = config;
    this.#writer = config.writer;
  }

  /**
   * One attempt at taking every name: the lease, or what blocks it. `waiter`:
   * the id of the wait() this attempt belongs to, which gets (or stays) in
   * line when blocked. `bound`: when it gives up. `readFirst`: decide from a
   * read (a waiter woken by a change). `take`: the waiter's poll saw its one
   * name free with its intent first in line: one statement takes it from the
   * front of the line first (lib/batch.ts AcquireMember.waiter).
   */
  async attempt(names: string[], options: AcquireOptions, readFirst = false, waiter?: string, bound: Bound = this.#writer.bound(), take = false): Promise<{ lease: Lease } | Blocked> {
    let nonce = newNonce();
    // Writes of this acquisition whose reply was lost: nonce → the version each
    // was to replace. Any of them may have been applied, or may still be (a
    // statement cut off from its client can finish on the server after the
    // client has re-read), so every read looks for them, not just the next one.
    const lost = new Map<string, number>();
    const owner = this.#config.batch.owner;
    const here = localView();
    // The catalogue is the host's code: what it returns is checked here, before
    // any SQL, since a type the document schema refuses would make the row
    // unreadable (ECORRUPT) for every process once written.
    const types = new Map(names.map((n) => [n, checkedType(n, () => this.#config.typeOf(n), this.#config.strictCatalogue)]));
    const typeOf = (n: string) => types.get(n)!;
    // Before any statement of this attempt: the acquisition time the database records is later
    // (a one-statement write's estimate of it by at most CLOCK_TOLERANCE_MS earlier).
    const sent = performance.now();
    // Shared and semaphore acquisitions always read and decide: the one statement serves plain exclusive ones only.
    const shared = options.mode === 'shared' || options.limit !== undefined;
    const mode = shared ? ('shared' as const) : undefined;
    const leaseFrom = (held: string, entries: Record<string, Entry>, fast = false): Lease => {
      const e = entries[names[0]!]!;
      const lease: Lease = { space: this.#config.space, names: Object.freeze([...names]), token: e.f, nonce: held, owner: this.#config.owner, acquiredAt: new Date(e.a) };
      if (e.e !== undefined) (lease as { expiresAt?: Date }).expiresAt = new Date(e.e);
      // A shared lease says so (in its JSON too): its release then goes straight to the right write.
      if (shared) (lease as { mode?: 'shared' }).mode = 'shared';
      if (options.limit !== undefined) (lease as { limit?: number }).limit = options.limit;
      const h = this.#config.leases.newHeld(lease, options.ttlMs);
      if (options.ttlMs !== undefined) h.localExpiresAt = sent + options.ttlMs - (fast ? CLOCK_TOLERANCE_MS : 0);
      return lease;
    };
    // One statement first, with whatever else is queued (lib/batch.ts). If it
    // is refused — a name held, or anything else the read-decide-write path
    // must judge — nothing was written, and that path decides below.
    // Conflict rules: the one statement also checks the names a rule sets
    // against these, when each is an exact name (guards); a rule naming a
    // pattern on the other side (box_update against app_task_*) only the read can check.
    const rules = this.#config.rules;
    const guards = rules.guards(names);
    const fromLine = take && waiter !== undefined && !options.barge && names.length === 1;
    if (this.#config.options.fastPath && (!readFirst || fromLine) && !shared && guards !== undefined) {
      let fast: Outcome;
      try {
        // A statement that lands after the caller gave up at its bound holds the
        // names for no one: released in the background.
        const late = () => this.#config.leftovers.add({ names, nonce });
        fast = await this.#writer.withinBound(
          this.#writer.gate.submit({ kind: 'acquire', names, nonce, ttlMs: options.ttlMs, types, ...(guards.length ? { guards } : {}), ...(fromLine ? { waiter } : {}) }, this.#writer.expiry(bound, 'acquire')),
          bound,
          'acquire',
          (o) => o.kind === 'acquired' && late(),
          (err) => err instanceof DatabaseError && err.outcomeUnknown && this.#config.leftovers.add({ names, nonce, maybe: true }),
        );
      } catch (err) {
        // A statement that could not be settled may hold the names: released in the background.
        if (err instanceof DatabaseError && err.outcomeUnknown) this.#config.leftovers.add({ names, nonce, maybe: true });
        throw err;
      }
      if (fast.kind === 'acquired') {
        const lease = leaseFrom(nonce, fast.entries, true);
        if (log.acquire.enabled) log.acquire('%s token %d', names.join(','), lease.token);
        return { lease };
      }
      if (fast.kind === 'refused' && fast.remnantAt !== undefined) {
        // It did apply, but ran out or lost a name since: acquire anew, and what is left of it is ours to replace.
        lost.set(nonce, fast.remnantAt);
        nonce = newNonce();
      }
    }
    type Won = { nonce: string; entries: Record<string, Entry>; removed?: T.Removed[] };
    let outcome: Blocked | Won | { conflicts: T.Conflict[] };
    try {
      outcome = await this.#writer.gate.run(() => this.#writer.mutate<Blocked | Won | { conflicts: T.Conflict[] }>(
        'acquire',
        (doc, snap) => {
          const settled = settleLost(doc, snap, names, lost);
          if (settled) return { result: { nonce: settled, entries: Object.fromEntries(names.map((n) => [n, heldUnder(doc, n, settled)!])) } };
          const dead = new Set(
            names.filter((n) => {
              const held = entryOf(doc, n);
              if (held === undefined) return false;
              // A remnant of our own lost write (the rest of it removed since): ours to replace.
              if (lost.has(held.n)) return true;
              return judgeEntry(held, snap.now, here) === 'dead';
            }),
          );
          // Waiters in line whose owner is provably dead leave it in this write.
          const deadWaiters = new Set<string>();
          for (const n of names) {
            for (const i of lineOf(doc, n)) if (i.n !== waiter && judgeEntry(i, snap.now, here) === 'dead') deadWaiters.add(i.n);
          }
          // Shared holders judged dead (or remnants of our own lost writes) are taken over too.
          const deadShares = new Set<string>();
          for (const n of names) {
            const group = groupOf(doc, n);
            for (const h of group?.h ?? []) if (lost.has(h.n) || judgeEntry(h, snap.now, here) === 'dead') deadShares.add(h.n);
          }
          // Holders and waiters a conflict rule sets against these names: judged the same way.
          const ruled = T.conflicting(doc, names, rules);
          for (const b of ruled.held) {
            if (judgeEntry(b.entry, snap.now, here) !== 'dead') continue;
            if (b.shared) deadShares.add(b.entry.n);
            else dead.add(b.name);
          }
          for (const w of ruled.waiting) if (w.intent.n !== waiter && judgeEntry(w.intent, snap.now, here) === 'dead') deadWaiters.add(w.intent.n);
          const input = { names, typeOf, owner, nonce, token: snap.version + 1, now: snap.now, ttlMs: options.ttlMs, dead, deadShares, waiter, barge: options.barge, deadWaiters, mode, limit: options.limit, rules };
          const r = T.acquire(doc, input);
          if (!r.ok) {
            if (r.conflicts) return { result: { conflicts: r.conflicts } };
            const blocked = { blockers: r.blockers, ahead: r.ahead, version: snap.version };
            if (waiter === undefined || options.barge) return { result: blocked };
            const q = T.enqueue(doc, { names, waiter, owner, now: snap.now, ttlMs: this.#config.options.wait.intentTtlMs, deadWaiters, mode, limit: options.limit });
            // Its place in every line: also when nothing is written, as when an
            // earlier write of this wait put it there and its reply was lost.
            const positions = (d: typeof doc) => Object.fromEntries(names.map((n) => [n, T.waitersAhead(d, n, waiter, snap.now).length + 1]));
            if (!q.changed) return { result: q.full ? blocked : { ...blocked, positions: positions(doc) } };
            return { write: q.doc, result: { ...blocked, version: snap.version + 1, positions: positions(q.doc), ...(q.added ? { added: true } : {}) } };
          }
          if (r.removed.length) log.reap('acquire took over %s', r.removed.map((x) => `${x.name} (${x.why})`).join(','));
          return { write: r.doc, result: { nonce, entries: r.entries, removed: r.removed } };
        },
        {
          lost: (expected) => {
            lost.set(nonce, expected);
            nonce = newNonce(); // the next attempt must not be mistaken for this one
          },
        },
        bound,
      ), this.#writer.expiry(bound, 'acquire'));
    } catch (err) {
      if (!lost.size) throw err;
      // A lost write may hold the names, and no caller has a lease for it:
      // release it in the background, whatever the caller does next.
      for (const lostNonce of lost.keys()) this.#config.leftovers.add({ names, nonce: lostNonce, maybe: true });
      throw err instanceof DatabaseError && !err.outcomeUnknown ? toUnresolvedError(err.cause, 'acquire') : err;
    }
    if ('conflicts' in outcome) throw limitConflict(outcome.conflicts);
    if ('blockers' in outcome) return outcome;
    const lease = leaseFrom(outcome.nonce, outcome.entries);
    if (outcome.removed?.length) this.#config.reaped(outcome.removed);
    log.acquire('%s token %d', names.join(','), lease.token);
    return { lease };
  }
}

/** EINVALIDOPTION for a shared or semaphore call whose limit differs from the one its name's group stores. */
function limitConflict(conflicts: readonly T.Conflict[]): InvalidOptionError {
  const what = (c: number | undefined) => (c === undefined ? 'shared (no limit)' : `a semaphore of limit ${c}`);
  const parts = conflicts.map((c) => `'${c.name}' is held as ${what(c.stored)}, this call asks for ${what(c.asked)}`);
  return new InvalidOptionError(`option limit: ${parts.join('; ')}. Every holder of a name must ask for the same limit while it is held: use the stored one, or wait until its holders have released it`);
}

/** What the catalogue's typeOf says of `name`, checked: EINVALIDOPTION when it throws or returns what is not a type; EINVALIDNAME under strictNames for a name outside the catalogue. */
function checkedType(name: string, typeOf: () => unknown, strictCatalogue: object | undefined): string {
  let t: unknown;
  try {
    t = typeOf();
  } catch (err) {
    throw Object.assign(new InvalidOptionError(`types.typeOf('${name}') threw: ${(err as Error)?.message ?? String(err)}`), { cause: err });
  }
  if (t === undefined) {
    if (strictCatalogue) throw notInCatalogue(name, strictCatalogue);
    return name;
  }
  if (typeof t !== 'string' || t.length === 0 || t.length > MAX_NAME_LENGTH) {
    throw new InvalidOptionError(`types.typeOf('${name}') returned ${typeof t === 'string' ? `a string of ${t.length} characters` : typeof t}: a type is a string of 1-${MAX_NAME_LENGTH} characters`);
  }
  return t;
}
