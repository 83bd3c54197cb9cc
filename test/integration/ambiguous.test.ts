// Writes whose reply is lost, through a proxy that cuts the connection at the
// UPDATE: the library must settle each one by re-reading and recognising its
// own nonce. Never an acquisition twice, never another holder's lock removed,
// never a lease reported held when it is not.
import assert from 'node:assert/strict';
import { createLockTable, type LockError, type LockTable } from '../../lib/index.js';
import { DB_NOW_MS } from '../../lib/store.js';
import { createTestDb, rawRow, until, type TestDb } from '../helpers/db.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const CAS = /^UPDATE `locks` /;

describe('ambiguous writes (a proxy loses the reply)', () => {
  let db: TestDb;
  let proxy: Proxy;
  let locks: LockTable; // through the proxy
  let other: LockTable; // straight to the server

  const stored = async () => {
    const row = (await rawRow(db.pool))!;
    return { version: row.version, l: JSON.parse(row.raw).l as Record<string, { n: string; f: number; e?: number }>, r: JSON.parse(row.raw).r };
  };
  const casCount = () => proxy.statements.filter((s) => CAS.test(s)).length;

  before(async () => {
    db = await createTestDb('ambiguous');
    proxy = await startProxy({ port: Number(new URL(db.url).port || 3306) });
    other = createLockTable({ db: db.pool, owner: { taskId: 'other' } });
  });
  beforeEach(async () => {
    proxy.setDown(false);
    locks = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'proxied' }, retry: { deadlineMs: 10_000 } });
    await other.releaseAll();
    proxy.statements.length = 0;
  });
  afterEach(async () => {
    proxy.setDown(false);
    await locks.close();
  });
  after(async () => {
    await other.close();
    await proxy.close();
    await db.drop();
  });

  it('an acquire applied by the server but whose reply was lost returns that acquisition, once', async () => {
    const before = await stored();
    const cut = proxy.cutAt(CAS, 'drop-reply');
    const lease = await locks.acquire('box_update');
    await cut;
    const after = await stored();
    assert.equal(casCount(), 1, 'the one UPDATE that was cut applied; no second write was needed');
    assert.equal(after.version, before.version + 1);
    assert.deepEqual(Object.keys(after.l), ['box_update']);
    assert.equal(after.l.box_update!.n, lease.nonce, 'the lease is the acquisition the server applied');
    assert.equal(after.l.box_update!.f, lease.token);
    assert.equal(await other.tryAcquire('box_update'), null);
    await locks.release(lease);
    assert.deepEqual((await stored()).l, {});
  });

  it('an acquire cut before it reached the server is retried and applied once', async () => {
    const before = await stored();
    const cut = proxy.cutAt(CAS, 'drop-statement');
    const lease = await locks.acquire('mail_restart');
    await cut;
    const after = await stored();
    assert.equal(after.version, before.version + 1, 'exactly one write reached the server');
    assert.equal(after.l.mail_restart!.n, lease.nonce);
    assert.equal(after.l.mail_restart!.f, lease.token);
    await locks.release(lease);
  });

  it('an acquire whose lost write lands only after the client re-read is recognised, not blocked by itself', async () => {
    const cut = proxy.cutAt(CAS, 'late');
    const lease = await locks.acquire(['app_task_late', 'app_backup_late']);
    await cut;
    const after = await stored();
    assert.deepEqual(Object.keys(after.l).sort(), ['app_backup_late', 'app_task_late']);
    assert.ok(Object.values(after.l).every((e) => e.n === lease.nonce && e.f === lease.token), JSON.stringify({ after, lease }));
    await locks.release(lease);
    assert.deepEqual((await stored()).l, {});
  });

  it('a release whose lost compare-and-swap lands only after the client re-read (and wrote again) is done, not reported lost', async () => {
    const cas = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'cas' }, fastPath: false, retry: { deadlineMs: 10_000 } });
    try {
      const lease = await cas.acquire('app_task_relate');
      // The re-read still finds the entry; the lost write lands just before the client's second one, which then loses the race.
      const cut = proxy.cutAt(CAS, 'late');
      await cas.release(lease);
      await cut;
      assert.deepEqual((await stored()).l, {});
    } finally {
      await cas.close();
    }
  });

  it('a wait() whose winning write lost its reply acquires once, and does not wait on itself', async () => {
    const held = await other.acquire('box_update_task');
    const waiting = locks.wait(['box_update_task'], { timeoutMs: 8_000 });
    // Its poll (the version, and whether its blockers still stand): it read the held lock and sleeps.
    await until('the waiter to have read the held lock', () => proxy.statements.some((s) => s.startsWith('SELECT version, CAST(TIMESTAMPDIFF(')));
    const cut = proxy.cutAt(CAS, 'drop-reply');
    await other.release(held);
    const lease = await waiting;
    await cut;
    const after = await stored();
    assert.equal(after.l.box_update_task!.n, lease.nonce);
    assert.ok(lease.token > held.token);
    await locks.release(lease);
  });

  it('a release applied by the server but whose reply was lost reports success, and the name is free', async () => {
    const lease = await locks.acquire('box_update');
    const cut = proxy.cutAt(CAS, 'drop-reply');
    await locks.release(lease);
    await cut;
    assert.deepEqual((await stored()).l, {});
    const next = await other.acquire('box_update');
    await other.release(next);
  });

  it('a release cut off while its lease is wiped and the name taken by another reports ENOTHELD and leaves the other lock', async () => {
    const lease = await locks.acquire('box_update');
    const cut = proxy.cutAt(CAS, 'drop-statement', { thenDown: true });
    const releasing = locks.release(lease).then(
      () => 'resolved',
      (err: LockError & { reason?: string }) => `${err.code} ${err.reason}`,
    );
    await cut;
    // While the releaser cannot reach the server: a wipe, and another holder.
    await other.releaseAll();
    const theirs = await other.acquire('box_update');
    proxy.setDown(false);
    assert.equal(await releasing, 'ENOTHELD wiped', 'the release did not happen: it must not be reported as done');
    const after = await stored();
    assert.equal(after.l.box_update!.n, theirs.nonce, "the other holder's lock is untouched");
    await other.release(theirs);
  });

  it('an acquire settled after its lease ran out is not reported held: it acquires anew', async () => {
    const cut = proxy.cutAt(CAS, 'drop-reply', { thenDown: true });
    const acquiring = locks.acquire('app_task_ttl', { ttlMs: 300 });
    await cut;
    const lost = (await stored()).l.app_task_ttl!;
    assert.ok(lost.e, 'the lost write was applied with its expiry');
    await until('the lost lease to expire by database time', async () => {
      const [rows] = await db.pool.query(`SELECT ${DB_NOW_MS} AS now`);
      return (rows as Array<{ now: number }>)[0]!.now > lost.e!;
    });
    proxy.setDown(false);
    const lease = await acquiring;
    const after = (await stored()).l.app_task_ttl!;
    assert.ok(lease.token > lost.f, `a new acquisition (token ${lease.token}), not the expired one (${lost.f})`);
    assert.equal(after.n, lease.nonce);
    assert.ok(lease.expiresAt!.getTime() > lost.e!, 'the lease returned has not run out');
    await locks.release(lease);
  });

  it('an acquire that cannot be settled before its deadline fails with outcomeUnknown, and what it took is released in the background', async () => {
    const hasty = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'hasty' }, retry: { deadlineMs: 300 } });
    try {
      const cut = proxy.cutAt(CAS, 'drop-reply', { thenDown: true });
      await assert.rejects(hasty.acquire('full_backup_task_x'), (err: LockError & { outcomeUnknown?: boolean }) => {
        assert.equal(err.code, 'EDATABASE');
        assert.equal(err.outcomeUnknown, true, err.message);
        return true;
      });
      await cut;
      assert.equal((await stored()).l.full_backup_task_x?.n !== undefined, true, 'the lost write did take the lock');
      proxy.setDown(false);
      await until('the background release of the lock nobody has a lease for', async () => (await stored()).l.full_backup_task_x === undefined);
    } finally {
      await hasty.close();
    }
  });

  it('an acquire of unknown outcome that took nothing is settled in the background by one write of the row, after which the lost write can no longer land', async () => {
    const hasty = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'hasty' }, retry: { deadlineMs: 300 } });
    try {
      const before = await stored();
      // Cut before it reaches the server: nothing is applied, but the client cannot know.
      const cut = proxy.cutAt(CAS, 'drop-statement', { thenDown: true });
      await assert.rejects(hasty.acquire('full_backup_task_y'), (err: LockError & { outcomeUnknown?: boolean }) => err.outcomeUnknown === true);
      await cut;
      proxy.setDown(false);
      // Nothing held under its nonce is not enough while the lost write could still come: the row is written once, unchanged.
      await until('the background release to write the row', async () => (await stored()).version > before.version);
      assert.deepEqual((await stored()).l, before.l, 'a write of the document unchanged');
    } finally {
      await hasty.close();
    }
  });
});
