// Writes whose reply is lost, through a proxy that cuts the connection at the
// UPDATE: the library must settle each one by re-reading and recognising its
// own nonce. Never an acquisition twice, never another holder's lock removed,
// never a lease reported held when it is not.
import assert from 'node:assert/strict';
import { createLockTable, type LockError, type LockTable, type WaitOptions } from '../../lib/index.js';
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

  it('a wait() that gives up after the write that put it in line applied unseen leaves the line all the same', async () => {
    // Found by the chaos run's kinds variant: a worker stopped while its
    // wait() was getting in line left its intent there, its owner alive, for
    // wait.intentTtlMs (nothing renews it). The wait learns it is in line only
    // from that write's reply; here the reply is lost and the retry finds the
    // intent already there.
    const waiter = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'proxied-waiter' }, wait: { intentTtlMs: 60_000 } });
    try {
      const held = await other.acquire('app_task_unseen');
      const inLine = (sql: string) => CAS.test(sql) && (sql.includes('\\"q\\":{') || sql.includes('"q":{'));
      const cut = proxy.cutAt(inLine, 'drop-reply');
      const abort = new AbortController();
      const waiting = waiter.wait('app_task_unseen', { signal: abort.signal });
      await cut;
      assert.equal((await other.listWaiters()).length, 1, 'the write applied: it is in line');
      abort.abort();
      await assert.rejects(waiting, { code: 'EABORTED' });
      await other.release(held);
      // Well before the intent would lapse (60 s).
      await until('the aborted waiter to leave the line', async () => (await other.listWaiters()).length === 0, 15_000);
      const lease = await other.tryAcquire('app_task_unseen');
      assert.ok(lease, 'the name is free: its holder released and its only waiter gave up');
      await other.release(lease);
    } finally {
      await waiter.close();
    }
  });

  it('a wait() whose get-in-line write lost its reply knows it is in line all the same: it keeps its intent renewed', async () => {
    // Found in review: the retry finds the intent already there (nothing to
    // write), so the wait never learned it was in line, and nothing renewed
    // its intent: it lapsed after wait.intentTtlMs and the waiter lost its place.
    const waiter = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'proxied-renewer' }, wait: { intentTtlMs: 600 } });
    try {
      const held = await other.acquire('app_task_renewed');
      const inLine = (sql: string) => CAS.test(sql) && (sql.includes('\\"q\\":{') || sql.includes('"q":{'));
      const cut = proxy.cutAt(inLine, 'drop-reply');
      const waiting = waiter.wait('app_task_renewed', { timeoutMs: 15_000 });
      await cut;
      const expiry = async () => (JSON.parse((await rawRow(db.pool))!.raw) as { q?: Record<string, Array<{ e: number }>> }).q?.app_task_renewed?.[0]?.e;
      const first = await expiry();
      assert.ok(first, 'the write applied: it is in line');
      await until('its intent to be renewed', async () => ((await expiry()) ?? 0) > first, 5_000);
      assert.equal((await other.listWaiters()).length, 1, 'still in line');
      await other.release(held);
      await waiter.release(await waiting);
    } finally {
      await waiter.close();
    }
  });

  /**
   * Arms a 'late' cut at the compare-and-swap write of a document mentioning
   * `name` that aborts `abort` the moment the proxy sees it (the caller's
   * signal fires with the write in flight: its connection is destroyed): the
   * server runs the write only after the client's next statement (the
   * clean-up's read) has been answered. Resolves once it has run.
   */
  const abortInFlight = (name: string, abort: AbortController) =>
    proxy.cutAt((sql) => {
      if (!CAS.test(sql) || !sql.includes(name)) return false;
      abort.abort();
      return true;
    }, 'late');

  // Found by the chaos run's kinds variant (a stopped worker's lock, then a
  // waiter's place in line, left behind): closing the client's connection does
  // not stop a statement the server has yet to run, so a clean-up that reads
  // before it lands must make the late compare-and-swap fail.
  it('a shared acquire aborted with its write in flight, the write landing after the background release read the row: nothing stays held', async () => {
    const abort = new AbortController();
    const landed = abortInFlight('app_task_inflight', abort);
    // acquire() honours signal (README), though its AcquireOptions type does not declare it.
    const options: WaitOptions = { mode: 'shared', signal: abort.signal };
    await assert.rejects(locks.acquire('app_task_inflight', options), { code: 'EABORTED' });
    await landed;
    await until('the lost acquisition to be released (its owner, this process, is alive: no one else would)', async () => (await other.list()).every((h) => h.name !== 'app_task_inflight'), 10_000);
  });

  it('a wait() aborted with its get-in-line write in flight, the write landing after it left the line: no place in line stays', async () => {
    const waiter = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'proxied-waiter' }, wait: { intentTtlMs: 60_000 } });
    try {
      const held = await other.acquire('app_task_inline');
      const abort = new AbortController();
      const landed = abortInFlight('app_task_inline', abort);
      await assert.rejects(waiter.wait('app_task_inline', { mode: 'shared', signal: abort.signal }), { code: 'EABORTED' });
      await landed;
      await other.release(held);
      await until('the aborted waiter to be out of line (well before its intent lapses, 60 s)', async () => (await other.listWaiters()).length === 0, 10_000);
    } finally {
      await waiter.close();
    }
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
