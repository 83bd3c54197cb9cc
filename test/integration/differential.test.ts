// Holds the one-statement paths to the pure transitions: random sequences of
// operations (several owners, many names, conflicts — of names and of the
// catalogue's conflict rules: box_update against app tasks and backups —, releases, wipes, owner
// cleanup, expiries, reaps, and bursts that the gate combines) run through
// three engines — lock tables on the one-statement path, lock tables with it
// turned off (read, decide, compare-and-swap), and the pure model
// (lib/transitions.ts on an in-memory document) — and every outcome and the
// document after every step must be the same in all three.
import assert from 'node:assert/strict';
import { createLockTable, LockTypes, type Lease, type LockError, type LockTable } from '../../lib/index.js';
import { emptyDocument, entryOf, fromStoredOwner, parseDocument, serializeDocument, toHolder, toStoredOwner, type Entry, type LockDocument, type StoredOwner } from '../../lib/document.js';
import { judge } from '../../lib/liveness.js';
import { localView } from '../../lib/owner.js';
import * as T from '../../lib/transitions.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';
import { Tap } from '../helpers/tap.js';
import { prng } from '../helpers/prng.js';

const OWNERS = ['o0', 'o1', 'o2'];
const TASKS = Array.from({ length: 24 }, (_, i) => `app_task_${i}`);
// box_update is set against every app task and backup by LockTypes' rule (read and decide);
// an app task's or backup's one-statement acquire checks box_update itself (its guard).
const NAMES = [...TASKS, 'box_update', 'app_backup_0', 'app_backup_1'];
/** The names shared and semaphore acquisitions pick from: few, so that groups of either kind meet. */
const SHARED = [...TASKS.slice(0, 6), 'app_backup_0'];
const LONG_TTL = 3_600_000;

/** The owner of a waiter on another host: nothing here can judge it, only its expiry. */
function stranger(taskId: string): StoredOwner {
  return { h: 'elsewhere', b: 'boot', ns: 'pid:[1]', p: 77, s: 1, u: 'root', t: taskId };
}

/** The document with waiter `waiter` in line for `names` (line op), or with its intents lapsed (lapse op). */
function lineChange(doc: LockDocument, op: Extract<Op, { kind: 'line' | 'lapse' }>, now: number): LockDocument {
  if (op.kind === 'line') {
    return T.enqueue(doc, { names: op.names, waiter: `w${op.id}`, owner: stranger(OWNERS[op.owner]!), now, ttlMs: LONG_TTL }).doc;
  }
  const q: NonNullable<LockDocument['q']> = {};
  for (const [name, line] of Object.entries(doc.q ?? {})) q[name] = line.map((i) => (i.n === `w${op.of}` ? { ...i, e: 1 } : i));
  return doc.q ? { ...doc, q } : doc;
}

type Op =
  | { kind: 'acquire'; id: number; owner: number; names: string[]; ttl: boolean; mode?: 'shared'; limit?: number }
  | { kind: 'release'; id: number; owner: number; of: number; names?: string[] }
  | { kind: 'releaseAll'; id: number; owner: number }
  | { kind: 'releaseByOwner'; id: number; owner: number; taskId: string }
  | { kind: 'reapDead'; id: number; owner: number }
  | { kind: 'expire'; id: number; name: string }
  // A waiter of another host gets in line (written from outside, as its process would), or its intent lapses.
  | { kind: 'line'; id: number; owner: number; names: string[] }
  | { kind: 'lapse'; id: number; of: number };

/** The shared seeded generator (mulberry32), so a failing sequence can be replayed from its seed. */
function generator(seed: number) {
  const r = prng(seed);
  return { int: (n: number) => r.int(0, n - 1), chance: r.chance };
}

/** What each engine must agree on, with nonces and tokens replaced by the id of the op that acquired. */
interface Engine {
  name: string;
  run(op: Op): Promise<string>;
  document(): Promise<unknown>;
}

describe('differential: one-statement path, compare-and-swap path and the pure model agree', function () {
  this.timeout(120_000);
  let fastDb: TestDb;
  let casDb: TestDb;

  before(async () => {
    [fastDb, casDb] = await Promise.all([createTestDb('diff_fast'), createTestDb('diff_cas')]);
  });
  after(async () => {
    await Promise.all([fastDb.drop(), casDb.drop()]);
  });

  /** Lock tables on one database, one per owner. Leases are kept by the id of the op that took them. */
  function tableEngine(name: string, db: TestDb, space: string, tables: LockTable[]): Engine & { tokens: Map<number, number> } {
    const leases = new Map<number, Lease>();
    const opOfNonce = new Map<string, number>();
    const tokens = new Map<number, number>(); // op id -> token
    const lastToken = new Map<string, number>(); // name -> last token
    const allTokens = new Set<number>();
    const label = (nonce: string) => `#${opOfNonce.get(nonce) ?? '?'}`;
    return {
      name,
      tokens,
      async run(op) {
        const t = tables['owner' in op ? op.owner : 0]!;
        try {
          switch (op.kind) {
            case 'acquire': {
              const kind = { ...(op.mode ? { mode: op.mode } : {}), ...(op.limit ? { limit: op.limit } : {}) };
              const lease = await t.acquire(op.names as never, op.ttl ? { ttlMs: LONG_TTL, ...kind } : kind);
              leases.set(op.id, lease);
              opOfNonce.set(lease.nonce, op.id);
              tokens.set(op.id, lease.token);
              assert.ok(!allTokens.has(lease.token), `${name}: token ${lease.token} given twice`);
              allTokens.add(lease.token);
              for (const n of op.names) {
                assert.ok(lease.token > (lastToken.get(n) ?? 0), `${name}: token of ${n} did not increase`);
                lastToken.set(n, lease.token);
              }
              return 'ok';
            }
            case 'release': {
              const lease = leases.get(op.of);
              if (!lease) return 'never acquired';
              await t.release(op.names ? { ...lease, names: op.names } : lease);
              return 'ok';
            }
            case 'releaseAll':
              return `removed ${(await t.releaseAll()).map((h) => h.name).sort()}`;
            case 'releaseByOwner':
              return `removed ${(await t.releaseByOwner({ taskId: op.taskId })).map((h) => h.name).sort()}`;
            case 'reapDead':
              return `removed ${(await t.reapDead()).map((h) => h.name).sort()}`;
            case 'expire':
              // Backdate the expiry in SQL, as an operator's clock would see it pass: a change from outside.
              await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, ?, 1) WHERE id = ?`, [`$.l."${op.name}".e`, space]);
              return 'ok';
            case 'line':
            case 'lapse': {
              // Written from outside, as a waiter's process (or its lapse) would: a full write of the changed document.
              const row = (await rawRow(db.pool, space))!;
              const [now] = (await db.pool.query('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS now')) as unknown as [[{ now: string }]];
              const next = serializeDocument(lineChange(parseDocument(space, row.raw), op, Number(now[0].now)));
              await db.pool.query('UPDATE locks SET version = version + 1, dataJson = ?, dataCrc = CRC32(dataJson) WHERE id = ?', [next, space]);
              return 'ok';
            }
          }
        } catch (err) {
          const e = err as LockError & { holders?: Array<{ name: string; token: number }>; waiters?: Array<{ name: string; id: string }>; reason?: string; names?: string[] };
          if (e.code === 'ELOCKED') {
            const byToken = new Map([...tokens].map(([id, tok]) => [tok, id]));
            const holders = e.holders as Array<{ name: string; token: number; rule?: string }>;
            const waiters = e.waiters as Array<{ name: string; id: string; rule?: string }>;
            return `ELOCKED ${holders.map((h) => `${h.name}@#${byToken.get(h.token)}${h.rule ? '!' : ''}`).sort()} ahead ${waiters.map((w) => `${w.name}~${w.id}${w.rule ? '!' : ''}`).sort()}`;
          }
          if (e.code === 'ENOTHELD') return `ENOTHELD ${e.reason} ${[...e.names!].sort()}`;
          if (e.code === 'EINVALIDOPTION') return 'EINVALIDOPTION';
          throw err;
        }
      },
      async document() {
        const raw = (await rawRow(db.pool, space))!.raw;
        const doc = parseDocument(space, raw); // valid, every owner reference resolved
        for (const [n, e] of Object.entries(doc.l)) {
          const id = opOfNonce.get(e.n);
          assert.equal(e.f, tokens.get(id!), `${name}: the stored token of ${n} is the lease's`);
        }
        for (const [n, g] of Object.entries(doc.s ?? {})) {
          for (const h of g.h) assert.equal(h.f, tokens.get(opOfNonce.get(h.n)!), `${name}: the stored token of a holder of ${n} is its lease's`);
        }
        return normalise(doc, label);
      },
    };
  }

  function modelEngine(owners: ReturnType<typeof toStoredOwner>[]): Engine {
    let doc: LockDocument = emptyDocument();
    let version = 0;
    const nonces = new Map<number, { nonce: string; names: string[] }>();
    const opOfNonce = new Map<string, number>();
    const here = localView();
    const now = () => Date.now();
    const removeWhere = (match: (n: string, e: Pick<Entry, 'o' | 'e'>) => boolean, why: 'wiped' | 'owner' | 'reaped') => {
      const r = T.removeWhere(doc, match, why, now());
      const next = T.dropWaiters(r.doc, (i, n) => match(n, i));
      if (r.removed.length || next !== r.doc) {
        doc = next;
        version++;
      }
      return `removed ${r.removed.map((x) => x.name).sort()}`;
    };
    return {
      name: 'model',
      async run(op) {
        switch (op.kind) {
          case 'acquire': {
            const nonce = `model-${op.id}`;
            const t = now();
            const dead = new Set(op.names.filter((n) => {
              const held = entryOf(doc, n);
              return held !== undefined && judge(toHolder(n, held).owner, held.e, t, here) === 'dead';
            }));
            const deadShares = new Set<string>();
            for (const n of op.names) for (const h of doc.s?.[n]?.h ?? []) if (judge(fromStoredOwner(h.o), h.e, t, here) === 'dead') deadShares.add(h.n);
            // Holders a conflict rule sets against the names: judged as the table judges them.
            for (const b of T.conflicting(doc, op.names, LockTypes.conflicts).held) {
              if (judge(fromStoredOwner(b.entry.o), b.entry.e, t, here) !== 'dead') continue;
              if (b.shared) deadShares.add(b.entry.n);
              else dead.add(b.name);
            }
            const kind = { mode: op.mode, limit: op.limit };
            const r = T.acquire(doc, { names: op.names, typeOf: (n) => n.replace(/_\d+$/, ''), owner: owners[op.owner]!, nonce, token: version + 1, now: t, ttlMs: op.ttl ? LONG_TTL : undefined, dead, deadShares, rules: LockTypes.conflicts, ...kind });
            if (!r.ok && r.conflicts) return 'EINVALIDOPTION';
            if (!r.ok) return `ELOCKED ${r.blockers.map((b) => `${b.name}@#${opOfNonce.get(b.entry.n)}${b.rule ? '!' : ''}`).sort()} ahead ${r.ahead.map((a) => `${a.name}~${a.intent.n}${a.rule ? '!' : ''}`).sort()}`;
            doc = r.doc;
            version++;
            nonces.set(op.id, { nonce, names: op.names });
            opOfNonce.set(nonce, op.id);
            return 'ok';
          }
          case 'release': {
            const held = nonces.get(op.of);
            if (!held) return 'never acquired';
            const r = T.release(doc, op.names ?? held.names, held.nonce);
            if (r.released.length) {
              doc = r.doc;
              version++;
            }
            return r.missing.length ? `ENOTHELD ${r.missing[0]!.reason} ${r.missing.map((m) => m.name).sort()}` : 'ok';
          }
          case 'releaseAll':
            return removeWhere(() => true, 'wiped');
          case 'releaseByOwner':
            return removeWhere((_, e) => e.o.t === op.taskId, 'owner');
          case 'reapDead': {
            const t = now();
            return removeWhere((n, e) => judge(fromStoredOwner(e.o), e.e, t, here) === 'dead', 'reaped');
          }
          case 'expire': {
            const e = entryOf(doc, op.name);
            if (e) doc = { ...doc, l: { ...doc.l, [op.name]: { ...e, e: 1 } } };
            return 'ok';
          }
          case 'line':
          case 'lapse':
            doc = lineChange(doc, op, now());
            version++;
            return 'ok';
        }
      },
      async document() {
        return normalise(doc, (n) => `#${opOfNonce.get(n) ?? '?'}`);
      },
    };
  }

  /** The document with what differs by nature between engines (nonces, tokens, times) replaced by the acquiring op. */
  function normalise(doc: LockDocument, label: (nonce: string) => string) {
    const l: Record<string, unknown> = {};
    for (const name of Object.keys(doc.l).sort()) {
      const e = doc.l[name]!;
      l[name] = { t: e.t, owner: e.o.t, by: label(e.n), expiry: e.e === undefined ? 'none' : e.e === 1 ? 'passed' : 'set' };
    }
    const q: Record<string, unknown> = {};
    for (const name of Object.keys(doc.q ?? {}).sort()) q[name] = doc.q![name]!.map((i) => `${i.n}/${i.o.t}/${i.e === 1 ? 'lapsed' : 'live'}`);
    const s: Record<string, unknown> = {};
    for (const name of Object.keys(doc.s ?? {}).sort()) {
      const g = doc.s![name]!;
      s[name] = { t: g.t, c: g.c ?? 'none', h: g.h.map((h) => `${label(h.n)}/${h.o.t}/${h.e === undefined ? 'none' : 'set'}`) };
    }
    return { l, s, q, r: (doc.r ?? []).map((t) => ({ k: t.k, by: label(t.n), w: t.w })) };
  }

  /** A random sequence: single operations, and bursts of operations of one owner that do not touch each other's names. */
  function* sequence(seed: number, steps: number): Generator<Op[]> {
    const rnd = generator(seed);
    let id = 0;
    const live: Array<{ id: number; owner: number; names: string[] }> = [];
    const lines: number[] = [];
    const pick = <X>(xs: X[]) => xs[rnd.int(xs.length)]!;
    const someNames = (max: number, from = NAMES) => {
      const out = new Set<string>();
      const n = 1 + rnd.int(max);
      while (out.size < n) out.add(pick(from));
      return [...out];
    };
    for (let s = 0; s < steps; s++) {
      const roll = rnd.int(100);
      if (roll < 20) {
        // A burst: one owner's acquires and releases at once, on disjoint names, so that their order does not matter
        // (app tasks only: box_update in a burst would make the order matter through the rule).
        const owner = rnd.int(OWNERS.length);
        const used = new Set<string>();
        const burst: Op[] = [];
        for (let i = 0; i < 2 + rnd.int(6); i++) {
          const mine = live.filter((x) => x.owner === owner && x.names.every((n) => !used.has(n) && TASKS.includes(n)));
          if (mine.length && rnd.chance(0.4)) {
            const lease = live.splice(live.indexOf(pick(mine)), 1)[0]!;
            lease.names.forEach((n) => used.add(n));
            burst.push({ kind: 'release', id: ++id, owner, of: lease.id });
          } else {
            const names = someNames(2, TASKS).filter((n) => !used.has(n));
            if (!names.length) continue;
            names.forEach((n) => used.add(n));
            burst.push({ kind: 'acquire', id: ++id, owner, names, ttl: rnd.chance(0.3) });
            live.push({ id, owner, names });
          }
        }
        yield burst;
      } else if (roll < 50) {
        const owner = rnd.int(OWNERS.length);
        // Now and then the box update, alone: it gets through only when no app task or backup is held.
        // A third of them shared: half plain, half a semaphore of limit 2, on a few names (so some meet a group of the other kind).
        const kind = rnd.chance(0.33) ? (rnd.chance(0.5) ? { mode: 'shared' as const } : { mode: 'shared' as const, limit: 2 }) : {};
        const names = rnd.chance(0.05) ? ['box_update'] : 'mode' in kind ? someNames(3, SHARED) : someNames(3);
        live.push({ id: ++id, owner, names });
        yield [{ kind: 'acquire', id, owner, names, ttl: rnd.chance(0.3), ...kind }];
      } else if (roll < 78 && live.length) {
        // A box update does not last long: while it is held, every app task and backup is refused.
        const box = live.findIndex((x) => x.names.includes('box_update'));
        const lease = live.splice(box >= 0 && rnd.chance(0.5) ? box : rnd.int(live.length), 1)[0]!;
        // Sometimes a release of only part of the lease, or of a name it never had.
        const names = rnd.chance(0.15) ? [pick(lease.names), ...(rnd.chance(0.5) ? [pick(NAMES)] : [])].filter((n, i, a) => a.indexOf(n) === i) : undefined;
        yield [{ kind: 'release', id: ++id, owner: lease.owner, of: lease.id, ...(names ? { names } : {}) }];
      } else if (roll < 83) {
        yield [{ kind: 'expire', id: ++id, name: pick(NAMES) }];
      } else if (roll < 89) {
        if (lines.length && rnd.chance(0.3)) yield [{ kind: 'lapse', id: ++id, of: lines.splice(rnd.int(lines.length), 1)[0]! }];
        else {
          yield [{ kind: 'line', id: ++id, owner: rnd.int(OWNERS.length), names: someNames(2) }];
          lines.push(id);
        }
      } else if (roll < 94) {
        yield [{ kind: 'reapDead', id: ++id, owner: rnd.int(OWNERS.length) }];
      } else if (roll < 97) {
        yield [{ kind: 'releaseByOwner', id: ++id, owner: rnd.int(OWNERS.length), taskId: pick(OWNERS) }];
      } else {
        yield [{ kind: 'releaseAll', id: ++id, owner: rnd.int(OWNERS.length) }];
        lines.length = 0;
        if (rnd.chance(0.4)) {
          // Nothing is held now: the box update gets through, and app tasks then meet it.
          const owner = rnd.int(OWNERS.length);
          live.push({ id: ++id, owner, names: ['box_update'] });
          yield [{ kind: 'acquire', id, owner, names: ['box_update'], ttl: false }];
        }
      }
    }
  }

  for (const seed of [1, 2, 3]) {
    it(`agrees on every outcome and document, seed ${seed}`, async () => {
      const fastTap = new Tap(fastDb.pool);
      // maxInFlight 2 on the one-statement side and 1 on the other: bursts queue and are combined on both.
      const space = `seed-${seed}`; // a fresh row for each sequence
      const fastTables = OWNERS.map((taskId) => createLockTable({ db: fastTap.db, space, owner: { taskId }, maxInFlight: 2 }));
      const casTables = OWNERS.map((taskId) => createLockTable({ db: casDb.pool, space, owner: { taskId }, maxInFlight: 1, fastPath: false }));
      try {
        const engines = [
          tableEngine('one-statement', fastDb, space, fastTables),
          tableEngine('compare-and-swap', casDb, space, casTables),
          modelEngine(fastTables.map((t) => toStoredOwner(t.owner))),
        ];
        await Promise.all([fastTables[0]!.list(), casTables[0]!.list()]); // creates the rows
        fastTap.reset();
        let steps = 0;
        let blockedByLine = 0;
        let sharedTaken = 0;
        let conflicts = 0;
        let ruleBlocked = 0;
        let boxTaken = 0;
        for (const burst of sequence(seed, 360)) {
          steps++;
          const results = await Promise.all(engines.map(async (e) => (await Promise.all(burst.map((op) => e.run(op)))).join(' | ')));
          if (/ahead \S/.test(results[2]!)) blockedByLine++;
          if (burst.some((op) => op.kind === 'acquire' && op.mode) && results[2] === 'ok') sharedTaken++;
          if (results[2] === 'EINVALIDOPTION') conflicts++;
          if (/ELOCKED \S*!|ahead \S*!/.test(results[2]!)) ruleBlocked++;
          if (burst.some((op) => op.kind === 'acquire' && op.names.includes('box_update')) && results[2] === 'ok') boxTaken++;
          const where = `seed ${seed} step ${steps}: ${JSON.stringify(burst)}`;
          assert.equal(results[0], results[2], `one-statement vs model at ${where}`);
          assert.equal(results[1], results[2], `compare-and-swap vs model at ${where}`);
          const docs = await Promise.all(engines.map((e) => e.document()));
          assert.deepEqual(docs[0], docs[2], `document, one-statement vs model at ${where}`);
          assert.deepEqual(docs[1], docs[2], `document, compare-and-swap vs model at ${where}`);
        }
        // The comparison is only worth something if the one-statement path did most of the work.
        const fastWrites = fastTap.updates.filter((u) => u.sql.includes('LAST_INSERT_ID'));
        const applied = fastWrites.filter((u) => u.affectedRows === 1).length;
        assert.ok(applied > 80, `only ${applied} one-statement writes applied`);
        assert.ok(fastWrites.length - applied > 10, 'and some were refused, falling back');
        assert.ok(blockedByLine >= 3, `only ${blockedByLine} acquisitions met a waiter in line`);
        assert.ok(sharedTaken >= 5, `only ${sharedTaken} shared or semaphore acquisitions succeeded`);
        assert.ok(conflicts >= 1, 'no acquisition met a group of another limit');
        assert.ok(ruleBlocked >= 3, `only ${ruleBlocked} acquisitions were blocked by a conflict rule`);
        assert.ok(boxTaken >= 1, 'box_update was never taken: the rule was only ever seen from one side');
      } finally {
        await Promise.all([...fastTables, ...casTables].map((t) => t.close()));
      }
    });
  }
});
