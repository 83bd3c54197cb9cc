import assert from 'node:assert/strict';
import mysql from 'mysql2';
import { createLockTable, LockTypes, LockError, type LockTable } from '../../lib/index.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';

describe('acquire and release on a real server', () => {
  let db: TestDb;
  let locks: LockTable;

  before(async () => {
    db = await createTestDb('acquire');
    locks = createLockTable({ db: db.pool, owner: { taskId: 't1' } });
  });
  after(async () => {
    await locks.close();
    await db.drop();
  });
  beforeEach(async () => {
    await locks.releaseAll();
  });

  it('gives a lease with names, token, nonce, owner and acquiredAt, and release frees it', async () => {
    const lease = await locks.acquire('box_update');
    assert.deepEqual(lease.names, ['box_update']);
    assert.ok(Number.isInteger(lease.token) && lease.token > 0);
    assert.match(lease.nonce, /^[\w-]{16}$/);
    assert.equal(lease.owner.pid, process.pid);
    assert.equal(lease.owner.taskId, 't1');
    assert.ok(lease.acquiredAt instanceof Date);
    assert.ok(Object.isFrozen(lease));
    assert.equal(await locks.tryAcquire('box_update'), null);
    await locks.release(lease);
    const again = await locks.tryAcquire('box_update');
    assert.ok(again);
    await locks.release(again);
  });

  it('lets exactly one of 20 concurrent acquirers in one process win', async () => {
    const name = LockTypes.appTask('race20');
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => locks.acquire(name)));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 19);
    for (const l of lost) assert.equal((l.reason as LockError).code, 'ELOCKED');
  });

  it('takes all names or none when one is held, and names the holder', async () => {
    const held = await locks.acquire(LockTypes.appBackup('a1'));
    const before = await rawRow(db.pool);
    await assert.rejects(locks.acquire([LockTypes.appTask('a1'), LockTypes.appBackup('a1'), 'mail_restart']), (err: unknown) => {
      const e = err as LockError & { holders: Array<{ name: string; token: number }> };
      assert.equal(e.code, 'ELOCKED');
      assert.deepEqual(e.holders.map((h) => [h.name, h.token]), [['app_backup_a1', held.token]]);
      return true;
    });
    assert.deepEqual(await rawRow(db.pool), before, 'a failed acquire writes nothing');
    const list = await locks.list();
    assert.deepEqual(list.map((l) => l.name), ['app_backup_a1']);
  });

  it('refuses a release by a non-owner and keeps the lock', async () => {
    const lease = await locks.acquire(LockTypes.MAIL_RESTART);
    const forged = { ...lease, nonce: 'not-the-owners-nonce' };
    await assert.rejects(locks.release(forged), (err: unknown) => {
      const e = err as LockError & { reason: string; heldBy: Array<{ token: number }> };
      assert.equal(e.code, 'ENOTHELD');
      assert.equal(e.reason, 'taken');
      assert.equal(e.heldBy[0]?.token, lease.token);
      return true;
    });
    assert.deepEqual((await locks.list()).map((l) => [l.name, l.token]), [['mail_restart', lease.token]]);
    await locks.release(lease);
  });

  it('says why a lease is gone: wiped, reaped by owner cleanup, or taken', async () => {
    const wiped = await locks.acquire('box_update');
    await locks.releaseAll();
    await assert.rejects(locks.release(wiped), { code: 'ENOTHELD', reason: 'wiped' });

    const byOwner = await locks.acquire('box_update');
    assert.deepEqual((await locks.releaseByOwner({ taskId: 't1' })).map((h) => h.name), ['box_update']);
    await assert.rejects(locks.release(byOwner), { code: 'ENOTHELD', reason: 'owner' });

    const first = await locks.acquire('box_update_task', { ttlMs: 60_000 });
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.box_update_task.e', 1) WHERE id = 'platform'`);
    const second = await locks.acquire('box_update_task');
    assert.ok(second.token > first.token);
    await assert.rejects(locks.release(first), { code: 'ENOTHELD', reason: 'expired' });
    await locks.release(second);
  });

  it('treats a second release of the same lease as a no-op', async () => {
    const lease = await locks.acquire('box_update');
    await locks.release(lease);
    const version = (await rawRow(db.pool))!.version;
    await locks.release(lease);
    assert.equal((await rawRow(db.pool))!.version, version, 'no write for a lease already released here');
  });

  it('hands out strictly increasing fencing tokens', async () => {
    const tokens: number[] = [];
    for (let i = 0; i < 10; i++) {
      const lease = await locks.acquire(LockTypes.taskType('t'));
      tokens.push(lease.token);
      await locks.release(lease);
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `${tokens}`);
  });

  it('using() releases when the callback throws, and passes its value through', async () => {
    await assert.rejects(
      locks.using([LockTypes.fullBackupTask('s1')], async () => {
        throw new Error('backup failed');
      }),
      /backup failed/,
    );
    assert.deepEqual(await locks.list(), []);
    const value = await locks.using([LockTypes.fullBackupTask('s1')], async (lease) => lease.token);
    assert.ok(value > 0);
    assert.deepEqual(await locks.list(), []);
  });

  it('expires a lease by database time, and extend() pushes or clears the expiry', async () => {
    const lease = await locks.acquire('box_update', { ttlMs: 60_000 });
    assert.ok(lease.expiresAt && lease.expiresAt.getTime() - lease.acquiredAt.getTime() === 60_000);
    const forever = await locks.extend(lease, null);
    assert.equal(forever.expiresAt, undefined);
    assert.equal((await locks.list())[0]?.expiresAt, undefined);
    const renewed = await locks.extend(forever, 5_000);
    assert.ok(renewed.expiresAt);
    // Backdate the expiry in SQL rather than sleeping.
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.box_update.e', 1) WHERE id = 'platform'`);
    assert.equal((await locks.list())[0]?.liveness, 'dead');
    await assert.rejects(locks.extend(renewed, 5_000), { code: 'ENOTHELD', reason: 'expired' });
    const next = await locks.acquire('box_update');
    await locks.release(next);
  });

  it('lists locks with type, owner, token, age and liveness', async () => {
    const lease = await locks.acquire([LockTypes.appTask('x'), LockTypes.BOX_UPDATE]);
    const list = await locks.list();
    assert.deepEqual(
      list.map((l) => [l.name, l.type, l.owner.taskId, l.owner.pid, l.token, l.liveness]),
      [
        ['app_task_x', 'app_task', 't1', process.pid, lease.token, 'alive'],
        ['box_update', 'box_update', 't1', process.pid, lease.token, 'alive'],
      ],
    );
    assert.ok(list.every((l) => l.ageMs >= 0 && l.acquiredAt.getTime() === lease.acquiredAt.getTime()));
    await locks.release(lease);
  });

  it('handles names that are Object.prototype members like any other', async () => {
    const lease = await locks.acquire(['constructor', 'toString'] as never);
    assert.equal(await locks.tryAcquire('toString' as never), null);
    assert.deepEqual((await locks.list()).map((l) => l.name), ['constructor', 'toString']);
    await locks.release(lease);
    assert.deepEqual(await locks.list(), []);
  });

  it('rejects bad names before any SQL runs', async () => {
    const before = await rawRow(db.pool);
    for (const bad of ['', 'a"b', 'a b', '$.x', 'x'.repeat(129), 'é', "x' OR 1=1 --", '__proto__', 42, null]) {
      await assert.rejects(locks.acquire(bad as never), { code: 'EINVALIDNAME' }, String(bad));
    }
    await assert.rejects(locks.acquire(['box_update', 'box_update'] as never), { code: 'EINVALIDNAME' });
    assert.deepEqual(await rawRow(db.pool), before);
  });

  it('accepts a mysql2 callback pool and leaves a passed pool open on close()', async () => {
    const callbackPool = mysql.createPool({ uri: db.url, connectionLimit: 2 });
    const other = createLockTable({ db: callbackPool });
    const lease = await other.acquire('mail_restart');
    await other.release(lease);
    await other.close();
    await assert.rejects(other.acquire('mail_restart'), { code: 'ECLOSED' });
    const [rows] = await callbackPool.promise().query('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
    await callbackPool.promise().end();
  });

  it('opens and closes its own pool from a URI, and creates a new space on first use', async () => {
    const own = createLockTable({ db: db.url, space: 'second-space' });
    const lease = await own.acquire('box_update');
    assert.equal(lease.space, 'second-space');
    assert.deepEqual((await locks.list()).map((l) => l.name), [], 'spaces are independent');
    await own.release(lease);
    await own.close();
    await assert.rejects(own.list(), { code: 'ECLOSED' });
  });
});
