// The one-statement acquire and release, the gate and combining, on a real
// server: what each costs in statements, what they refuse to touch, and how
// a lost reply is resolved.
import assert from 'node:assert/strict';
import { createLockTable, type Lease, type LockError, type LockTable } from '../../lib/index.js';
import { createSpace, DB_NOW_MS, fastWrite, PREPARED_MAX_ENTRIES, readNow } from '../../lib/store.js';
import { planFast } from '../../lib/batch.js';
import { emptyDocument, parseDocument, serializeDocument, toStoredOwner, type LockDocument } from '../../lib/document.js';
import { currentOwner } from '../../lib/owner.js';
import * as T from '../../lib/transitions.js';
import { createTestDb, rawRow, storedText, until, type TestDb } from '../helpers/db.js';
import { Tap } from '../helpers/tap.js';

const FAST = /^UPDATE `locks` SET version = LAST_INSERT_ID/;
const READ = /^SELECT version, CAST\(dataJson/;
const CAS = /^UPDATE `locks` SET version = \?, dataJson = \?/;

describe('one-statement paths and combining', () => {
  let db: TestDb;
  let tap: Tap;
  let locks: LockTable;
  let other: LockTable;

  before(async () => {
    db = await createTestDb('fastpath');
    tap = new Tap(db.pool);
    other = createLockTable({ db: db.pool, owner: { taskId: 'other' } });
  });
  beforeEach(async () => {
    locks = createLockTable({ db: tap.db, owner: { taskId: 'me' } });
    await other.releaseAll();
    // Whatever state the last test left, one acquire through the fallback makes the document locktable's own again.
    await locks.release(await locks.acquire('app_task_warm'));
    tap.reset();
  });
  afterEach(async () => {
    await locks.close();
  });
  after(async () => {
    await other.close();
    await db.drop();
  });

  const stored = async () => JSON.parse((await rawRow(db.pool))!.raw) as { v: number; o: Record<string, unknown>; l: Record<string, { f: number; n: string; o: string }> };

  it('a plain acquire and release are prepared statements; one with more entries goes as text', async () => {
    const small = Array.from({ length: PREPARED_MAX_ENTRIES }, (_, i) => `app_task_p${i}` as const);
    await locks.release(await locks.acquire(small));
    assert.equal(tap.statements.length, 2);
    assert.deepEqual(tap.prepared, tap.statements, 'both went as execute');
    tap.reset();
    await locks.release(await locks.acquire([...small, 'app_task_more']));
    assert.equal(tap.statements.length, 2);
    assert.deepEqual(tap.prepared, [], 'a bounded number of statement shapes is prepared, the rest is text');
  });

  it('acquires and releases with one statement each; the token is the version that statement produced', async () => {
    const lease = await locks.acquire(['app_task_1', 'app_backup_1'], { ttlMs: 60_000 });
    assert.equal(tap.statements.length, 1);
    assert.match(tap.statements[0]!, FAST);
    const row = await rawRow(db.pool);
    const doc = JSON.parse(row!.raw);
    assert.equal(lease.token, row!.version);
    assert.deepEqual([doc.l.app_task_1.f, doc.l.app_backup_1.f, doc.l.app_task_1.n], [lease.token, lease.token, lease.nonce]);
    assert.equal(doc.l.app_task_1.a, lease.acquiredAt.getTime());
    assert.equal(doc.l.app_task_1.e, lease.expiresAt!.getTime());
    assert.ok(Math.abs(lease.acquiredAt.getTime() - Date.now()) < 60_000);
    const listed = await locks.list();
    assert.deepEqual(listed.map((l) => [l.name, l.token, l.owner.taskId, l.liveness]), [
      ['app_backup_1', lease.token, 'me', 'alive'],
      ['app_task_1', lease.token, 'me', 'alive'],
    ]);
    tap.reset();
    await locks.release(lease);
    assert.equal(tap.statements.length, 1);
    assert.match(tap.statements[0]!, FAST);
    assert.deepEqual((await stored()).l, {});
  });

  it('falls back to read-decide-write when a name is held, and says who holds it', async () => {
    const theirs = await other.acquire('box_update_task');
    tap.reset();
    await assert.rejects(locks.acquire(['mail_restart', 'box_update_task']), (err: LockError & { holders: Array<{ name: string; token: number }> }) => {
      assert.equal(err.code, 'ELOCKED');
      assert.deepEqual(err.holders.map((h) => [h.name, h.token]), [['box_update_task', theirs.token]]);
      return true;
    });
    assert.equal(tap.statements.length, 2, 'the refused statement, then the read that decides');
    assert.match(tap.statements[0]!, FAST);
    assert.match(tap.statements[1]!, READ);
    await other.release(theirs);
  });

  it('releases by nonce only, leaving every other entry exactly as it was', async () => {
    const theirs = await other.acquire(['app_task_x', 'app_task_y']);
    const mine = await locks.acquire('app_task_z');
    const before = await stored();
    tap.reset();
    await locks.release(mine);
    assert.equal(tap.statements.length, 1);
    const after = await stored();
    assert.deepEqual(after.l, { app_task_x: before.l.app_task_x, app_task_y: before.l.app_task_y });
    // A forged lease (another nonce) does not release theirs: the statement refuses, the fallback says taken.
    await assert.rejects(locks.release({ ...mine, names: ['app_task_x'] }), { code: 'ENOTHELD', reason: 'taken' });
    assert.deepEqual((await stored()).l, after.l);
    await other.release(theirs);
  });

  it('never writes into a document changed outside locktable: the fallback validates it first', async () => {
    const lease = await locks.acquire('box_update');
    // Damage one entry as a broken tool might, without touching the checksum.
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.box_update.f', 'oops') WHERE id = 'platform'`);
    const damaged = await rawRow(db.pool);
    tap.reset();
    await assert.rejects(locks.acquire('mail_restart'), { code: 'ECORRUPT' });
    await assert.rejects(locks.release(lease), { code: 'ECORRUPT' });
    assert.deepEqual(await rawRow(db.pool), damaged, 'not one byte changed');
    assert.ok(tap.statements.some((s) => FAST.test(s)), 'the one-statement path was tried, and refused');
    // A valid change made outside (the token put back, and an expiry added) is read, validated and written by the fallback once.
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.box_update.f', ?, '$.l.box_update.e', ?) WHERE id = 'platform'`, [
      lease.token,
      Date.now() + 3_600_000,
    ]);
    tap.reset();
    const next = await locks.acquire('mail_restart');
    assert.deepEqual(tap.statements.map((s) => (FAST.test(s) ? 'fast' : READ.test(s) ? 'read' : CAS.test(s) ? 'cas' : s)), ['fast', 'read', 'cas']);
    tap.reset();
    await locks.release(next);
    await locks.release(lease);
    assert.deepEqual(tap.statements.map((s) => (FAST.test(s) ? 'fast' : s)), ['fast', 'fast'], 'and the document is ours again');
  });

  it('without dataCrcNow (migration 003 pending) every operation still works, through the read', async () => {
    const old = await createTestDb('no003');
    await old.pool.query('ALTER TABLE locks DROP COLUMN dataCrcNow');
    const t = createLockTable({ db: old.pool });
    try {
      const lease = await t.acquire('box_update');
      assert.deepEqual((await t.list()).map((l) => [l.name, l.token]), [['box_update', lease.token]]);
      await t.release(lease);
      assert.deepEqual(await t.list(), []);
    } finally {
      await t.close();
      await old.drop();
    }
  });

  it('a freshly migrated space is already in format 2 with its checksum: once the database time is known, an acquire is one statement', async () => {
    const fresh = await createTestDb('fresh');
    const ftap = new Tap(fresh.pool);
    const t = createLockTable({ db: ftap.db });
    try {
      assert.equal((await rawRow(fresh.pool))!.raw, await storedText(fresh.pool, '{"v":2,"o":{},"l":{}}'));
      const [rows] = await fresh.pool.query(`SELECT dataCrc = CRC32(dataJson) AS ok FROM locks WHERE id = 'platform'`);
      assert.equal((rows as Array<{ ok: number }>)[0]!.ok, 1);
      // Before its first statement a table asks once whether the server runs Galera (lib/cluster.ts Causal);
      // the first acquire reads the database's time (the host's clock is never a guess), then writes in one statement.
      await t.release(await t.acquire('box_update_task'));
      assert.deepEqual(ftap.statements.map((s) => (/@@wsrep_on/.test(s) ? 'probe' : FAST.test(s) ? 'fast' : s)), ['probe', `SELECT ${DB_NOW_MS} AS now`, 'fast', 'fast']);
      ftap.reset();
      await t.release(await t.acquire('box_update_task'));
      assert.deepEqual(ftap.statements.map((s) => FAST.test(s)), [true, true]);
    } finally {
      await t.close();
      await fresh.drop();
    }
  });

  it('upgrades a format-1 document on the first write, through the fallback', async () => {
    const raw = '{"v":1,"l":{}}';
    await db.pool.query(`UPDATE locks SET dataJson = ?, dataCrc = NULL WHERE id = 'platform'`, [raw]);
    const lease = await locks.acquire('box_update');
    assert.equal((await stored()).v, 4);
    tap.reset();
    await locks.release(lease);
    assert.equal(tap.statements.length, 1);
  });

  it('format 4: a one-statement acquire on a format-3 document (as an older locktable left it) makes it format 4 and writes its entry short; the format-3 entries are read as they are', async () => {
    const hex = '0123456789abcdef';
    const old = { h: 'elsewhere', b: 'boot', ns: 'pid:[1]', p: 77, s: 1, u: 'root', t: 'old' };
    const e = 9_999_999_999_999;
    const raw = JSON.stringify({ v: 3, o: { [hex]: old }, l: { box_update_task: { t: 'box_update_task', o: hex, f: 1, n: 'oldnonce', a: 1, e } } });
    await db.pool.query(`UPDATE locks SET dataJson = ?, dataCrc = CRC32(dataJson) WHERE id = 'platform'`, [raw]);
    const lease = await locks.acquire('app_task_short', { ttlMs: 60_000 });
    assert.deepEqual(tap.statements.map((s) => FAST.test(s)), [true], 'one statement, no read');
    const doc = (await stored()) as unknown as { v: number; l: Record<string, Record<string, unknown>> };
    assert.equal(doc.v, 4);
    assert.deepEqual(Object.keys(doc.l.app_task_short!).sort(), ['a', 'e', 'f', 'n', 'o'], 'no type: the name implies it');
    assert.match(String(doc.l.app_task_short!.o), /^[0-9A-Za-z]{11}$/);
    assert.deepEqual(doc.l.box_update_task, { t: 'box_update_task', o: hex, f: 1, n: 'oldnonce', a: 1, e }, 'the other entries are left as they were');
    const held = await locks.list();
    assert.deepEqual(held.map((h) => [h.name, h.type, h.owner.taskId, h.token]), [['app_task_short', 'app_task', 'me', lease.token], ['box_update_task', 'box_update_task', 'old', 1]]);
    await locks.release(lease);
    await other.releaseAll();
    assert.deepEqual(await locks.list(), []);
  });

  describe('conflict rules (LockTypes: box_update <-> app_task_*, app_backup_*, full_backup_task_*)', () => {
    type Blocked = LockError & { holders: Array<{ name: string; token: number; rule?: string }>; waiters: Array<{ name: string; rule?: string }> };

    it('a conflict rule refuses the one-statement acquire: an app task while box_update is held', async () => {
      // Without box_update held, this acquire is one statement: the one-statement path is what the rule must stop.
      await locks.release(await locks.acquire('app_task_r'));
      assert.deepEqual(tap.updates.map((u) => [FAST.test(u.sql), u.affectedRows]), [[true, 1], [true, 1]]);
      const box = await other.acquire('box_update');
      tap.reset();
      await assert.rejects(locks.acquire('app_task_r'), (err: Blocked) => {
        assert.equal(err.code, 'ELOCKED');
        assert.deepEqual(err.holders.map((h) => [h.name, h.token, h.rule]), [['box_update', box.token, 'box_update <-> app_task_*']]);
        assert.match(err.message, /box_update by task other, .*conflict rule box_update <-> app_task_\*/);
        return true;
      });
      assert.deepEqual(tap.updates.map((u) => [FAST.test(u.sql), u.affectedRows]), [[true, 0]], 'the one statement ran and was refused by its guard');
      assert.match(tap.statements[1]!, READ, 'then the read decided');
      assert.deepEqual((await stored()).l.app_task_r, undefined);
      assert.equal(await locks.tryAcquire(['app_backup_r', 'mail_restart']), null, 'a backup too');
      await other.release(box);
      tap.reset();
      const lease = await locks.acquire('app_task_r');
      assert.deepEqual(tap.updates.map((u) => [FAST.test(u.sql), u.affectedRows]), [[true, 1]], 'one statement again once box_update is gone');
      await locks.release(lease);
    });

    it('a box update waiting in line refuses later app tasks, on the one-statement path too', async () => {
      const task = await other.acquire('app_task_running');
      const waiting = locks.wait('box_update');
      await until('the box update to get in line', async () => (await other.listWaiters()).length === 1);
      tap.reset();
      const rival = createLockTable({ db: tap.db, owner: { taskId: 'rival' } });
      try {
        await assert.rejects(rival.acquire('app_task_late'), (err: Blocked) => {
          assert.deepEqual([err.holders, err.waiters.map((w) => [w.name, w.rule])], [[], [['box_update', 'box_update <-> app_task_*']]]);
          return true;
        });
        assert.deepEqual(tap.updates.filter((u) => FAST.test(u.sql)).map((u) => u.affectedRows), [0]);
        await other.release(task);
        const box = await waiting;
        await assert.rejects(rival.acquire('app_task_late'), { code: 'ELOCKED' });
        await locks.release(box);
        await rival.release(await rival.acquire('app_task_late'));
      } finally {
        await rival.close();
      }
    });

    it('box_update itself reads and decides: its rule names a pattern no statement can check', async () => {
      const lease = await locks.acquire('box_update');
      assert.equal(tap.statements.filter((q) => FAST.test(q)).length, 0);
      assert.ok(tap.statements.some((q) => READ.test(q)) && tap.statements.some((q) => CAS.test(q)));
      await locks.release(lease);
    });
  });

  describe('a lost reply', () => {
    for (const path of ['one-statement', 'compare-and-swap'] as const) {
      it(`acquire (${path}): the statement ran, the reply was lost: recognised by its nonce, one lease, no second entry`, async () => {
        if (path === 'compare-and-swap') await db.pool.query(`UPDATE locks SET dataCrc = NULL WHERE id = 'platform'`);
        tap.fail({ match: path === 'one-statement' ? FAST : CAS, kind: 'lost-reply' });
        const lease = await locks.acquire('app_task_lost');
        const doc = await stored();
        assert.equal(doc.l.app_task_lost?.n, lease.nonce);
        assert.equal(doc.l.app_task_lost?.f, lease.token);
        assert.deepEqual(Object.keys(doc.l), ['app_task_lost']);
        const kinds = tap.statements.map((s) => (FAST.test(s) ? 'fast' : READ.test(s) ? 'read' : CAS.test(s) ? 'cas' : s));
        if (path === 'one-statement') {
          // Locking reads until the statement could no longer apply (its clock tolerance), then recognised.
          assert.equal(kinds[0], 'fast');
          assert.ok(kinds.length >= 2 && kinds.slice(1).every((k) => k === 'read'), `no second write: ${kinds}`);
          assert.ok(tap.statements.slice(1).every((s) => s.endsWith(' FOR UPDATE')));
        } else assert.deepEqual(kinds, ['fast', 'read', 'cas', 'read'], 'the re-read recognised it: no second write');
        await locks.release(lease);
      });
    }

    it('release: recognised as done, no ENOTHELD', async () => {
      const lease = await locks.acquire('app_task_lost');
      tap.fail({ match: FAST, kind: 'lost-reply' });
      await locks.release(lease);
      assert.deepEqual((await stored()).l, {});
    });

    it('a combined write: every member gets its own token from the re-read', async () => {
      const one = createLockTable({ db: tap.db, owner: { taskId: 'me' }, maxInFlight: 1 });
      try {
        await one.release(await one.acquire('app_task_warm'));
        const blocker = one.acquire('app_task_b0'); // occupies the one slot, so the next three queue and combine
        tap.fail({ match: FAST, kind: 'lost-reply' });
        const leases = await Promise.all([blocker, ...[1, 2, 3].map((i) => one.acquire(`app_task_b${i}`))]);
        const doc = await stored();
        for (const l of leases) assert.equal(doc.l[l.names[0]!]?.f, l.token, l.names[0]);
        assert.equal(new Set(leases.map((l) => l.token)).size, 4, 'tokens are distinct');
        for (const l of leases) await one.release(l);
      } finally {
        await one.close();
      }
    });

    it('a failure before the statement was sent is not taken for success', async () => {
      tap.fail({ match: FAST, kind: 'before-send' });
      const lease = await locks.acquire('app_task_lost');
      assert.equal((await stored()).l.app_task_lost?.n, lease.nonce);
      await locks.release(lease);
    });
  });

  describe('bounded and combined', () => {
    it('keeps at most maxInFlight statements in flight, and combines what queues into fewer writes', async () => {
      const k = createLockTable({ db: tap.db, owner: { taskId: 'me' }, maxInFlight: 2 });
      try {
        await k.release(await k.acquire('app_task_warm'));
        tap.reset();
        const n = 64;
        const leases = await Promise.all(Array.from({ length: n }, (_, i) => k.acquire(`app_task_c${i}`)));
        assert.ok(tap.maxInFlight <= 2, `max in flight ${tap.maxInFlight}`);
        assert.ok(tap.statements.length < n / 4, `${tap.statements.length} statements for ${n} acquires`);
        const doc = await stored();
        for (const l of leases) assert.equal(doc.l[l.names[0]!]?.f, l.token);
        const tokens = leases.map((l) => l.token).sort((a, b) => a - b);
        assert.equal(new Set(tokens).size, n, 'each acquisition its own token');
        assert.equal(tokens[n - 1], (await rawRow(db.pool))!.version, 'the last token is the version');
        tap.reset();
        await Promise.all(leases.map((l) => k.release(l)));
        assert.ok(tap.maxInFlight <= 2);
        assert.ok(tap.statements.length < n / 4, `${tap.statements.length} statements for ${n} releases`);
        assert.deepEqual((await stored()).l, {});
      } finally {
        await k.close();
      }
    });

    it('decides each member of a combined batch on its own when one of them conflicts', async () => {
      const one = createLockTable({ db: tap.db, owner: { taskId: 'me' }, maxInFlight: 1 });
      try {
        const theirs = await other.acquire('app_task_held');
        const mine = await one.acquire('app_task_mine');
        const first = one.acquire('app_task_first'); // takes the slot; the rest queue behind it
        const results = await Promise.allSettled([
          one.acquire('app_task_a'),
          one.acquire(['app_task_b', 'app_task_held']),
          one.release(mine),
          one.acquire('app_task_mine'), // the name released just before it, in the same batch
          one.release({ ...mine, names: ['app_task_held'] }),
        ]);
        const view = results.map((r) => (r.status === 'fulfilled' ? (r.value ? 'ok' : 'void') : (r.reason as LockError).code));
        assert.deepEqual(view, ['ok', 'ELOCKED', 'void', 'ok', 'ENOTHELD']);
        const names = Object.keys((await stored()).l).sort();
        assert.deepEqual(names, ['app_task_a', 'app_task_first', 'app_task_held', 'app_task_mine']);
        const leases = [await first, ...results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value as Lease] : []))];
        for (const l of leases) await one.release(l);
        await other.release(theirs);
      } finally {
        await one.close();
      }
    });

    it('serves 20 acquirers of one name in one process with exactly one winner', async () => {
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => locks.acquire('app_task_hot')));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as LockError).code, 'ELOCKED');
    });
  });

  it('drops its owner record on close() once no lock refers to it', async () => {
    const t = createLockTable({ db: db.pool, owner: { taskId: 'short-lived' } });
    await t.release(await t.acquire('app_task_warm'));
    const lease = await t.acquire('app_task_keep');
    const key = (await stored()).l.app_task_keep!.o;
    await t.close(); // still holds app_task_keep: the record stays
    assert.ok((await stored()).o[key]);
    await other.releaseAll();
    const t2 = createLockTable({ db: db.pool, owner: { taskId: 'short-lived' } });
    await t2.list(); // the database time is known: the acquire below is one statement
    await t2.release(await t2.acquire('app_task_again'));
    assert.ok((await stored()).o[key], 'the one-statement release leaves it');
    await t2.close();
    assert.equal((await stored()).o[key], undefined, 'close() dropped it');
    assert.ok(lease);
  });

  describe("fair waiting: the first in line takes the name in one statement", () => {
    it('once the name is released, the waiter first in line takes it with one statement that also removes its intent (and the emptied line)', async () => {
      const held = await other.acquire('app_task_line');
      const waiting = locks.wait('app_task_line');
      await until('the waiter to get in line', async () => (await other.listWaiters()).length === 1);
      tap.reset();
      await other.release(held);
      const lease = await waiting;
      const takes = tap.updates.filter((u) => FAST.test(u.sql) && u.sql.includes('CASE WHEN JSON_LENGTH'));
      assert.deepEqual(takes.map((u) => u.affectedRows), [1], 'one take, applied');
      assert.equal(tap.updates.filter((u) => CAS.test(u.sql)).length, 0, 'no read-decide-write');
      const doc = await stored();
      assert.equal(doc.l.app_task_line!.n, lease.nonce);
      assert.equal(doc.l.app_task_line!.f, lease.token);
      assert.equal((doc as { q?: unknown }).q, undefined, 'its line was the only one: `q` is gone');
      await locks.release(lease);
    });

    it('with others behind it, takes the name and leaves the line to them, in order', async () => {
      const rival = createLockTable({ db: db.pool, owner: { taskId: 'rival' } });
      try {
        const held = await other.acquire('app_task_line');
        const first = locks.wait('app_task_line');
        await until('the first waiter in line', async () => (await other.listWaiters()).length === 1);
        const second = rival.wait('app_task_line');
        await until('the second waiter in line', async () => (await other.listWaiters()).length === 2);
        await other.release(held);
        const lease = await first;
        const line = (await stored() as unknown as { q: Record<string, Array<{ n: string }>> }).q.app_task_line!;
        assert.equal(line.length, 1, 'the second stays in line');
        await locks.release(lease);
        await rival.release(await second);
      } finally {
        await rival.close();
      }
    });

    it('the statement applies only while its intent is first in line and no one holds the name; applied, it writes what the transitions write', async () => {
      const pool = db.pool;
      const owner = toStoredOwner(currentOwner({ taskId: 'taker' }));
      const stranger = toStoredOwner(currentOwner({ taskId: 'stranger' }));
      const typeOf = () => 'app_task';
      // Each case: a document, and whether the take of app_task_t by waiter `me` must apply to it.
      const line = (doc: LockDocument, waiter: string, who: typeof owner, now: number, names = ['app_task_t']) => T.enqueue(doc, { names, waiter, owner: who, now, ttlMs: 60_000 }).doc;
      const cases: Array<[string, (now: number) => LockDocument, boolean]> = [
        ['first and only in line, the name free', (now) => line(emptyDocument(), 'me', owner, now), true],
        ['first, another waiter behind it and another line', (now) => line(line(line(emptyDocument(), 'me', owner, now), 'w2', stranger, now), 'w3', stranger, now, ['app_task_u']), true],
        ['second in line', (now) => line(line(emptyDocument(), 'w0', stranger, now), 'me', owner, now), false],
        ['the name held', (now) => { const d = line(emptyDocument(), 'me', owner, now); const r = T.acquire(d, { names: ['app_task_t'], typeOf, owner: stranger, nonce: 'h1', token: 1, now, barge: true }); assert.ok(r.ok); return r.doc; }, false],
        ['the name held shared', (now) => { const d = line(emptyDocument(), 'me', owner, now); const r = T.acquire(d, { names: ['app_task_t'], typeOf, owner: stranger, nonce: 'h1', token: 1, now, barge: true, mode: 'shared' }); assert.ok(r.ok); return r.doc; }, false],
        ['not in line at all', (now) => line(emptyDocument(), 'w0', stranger, now, ['app_task_u']), false],
      ];
      for (const [what, make, applies] of cases) {
        const space = `take_${cases.findIndex((c) => c[0] === what)}`;
        const now = (await readNow(pool)).now;
        const before = make(now);
        await createSpace(pool, '`locks`', space, serializeDocument(before));
        const v0 = (await rawRow(pool, space))!.version;
        const fast = planFast([{ kind: 'acquire', names: ['app_task_t'], nonce: 'taken', types: new Map([['app_task_t', 'app_task']]), waiter: 'me' }], { owner }, now)!;
        const version = await fastWrite(pool, '`locks`', space, fast.plan);
        const after = (await rawRow(pool, space))!;
        if (!applies) {
          assert.equal(version, undefined, what);
          assert.equal(after.version, v0, `${what}: nothing written`);
          assert.deepEqual(parseDocument(space, after.raw), parseDocument(space, serializeDocument(before)), `${what}: nothing written`);
          continue;
        }
        assert.equal(version, v0 + 1, what);
        const model = T.acquire(before, { names: ['app_task_t'], typeOf, owner, nonce: 'taken', token: v0 + 1, now, waiter: 'me' });
        assert.ok(model.ok, what);
        assert.deepEqual(parseDocument(space, after.raw), parseDocument(space, serializeDocument(model.doc)), `${what}: the transitions' document`);
      }
    });
  });
});
