import assert from 'node:assert/strict';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';

describe('wait()', () => {
  let db: TestDb;
  let a: LockTable;
  let b: LockTable;

  before(async () => {
    db = await createTestDb('wait');
    a = createLockTable({ db: db.pool, owner: { taskId: 'a' } });
    b = createLockTable({ db: db.url, owner: { taskId: 'b' } }); // its own pool, as another process would have
  });
  after(async () => {
    await a.close();
    await b.close();
    await db.drop();
  });

  it('acquires at once when the names are free', async () => {
    const lease = await b.wait(['box_update'], { timeoutMs: 1000 });
    await b.release(lease);
  });

  it('wakes when the holder releases, through the row (another pool)', async () => {
    const held = await a.acquire('box_update');
    const waiting = b.wait(['box_update'], { timeoutMs: 10_000 });
    let settled = false;
    void waiting.finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50)); // let it block: it must not acquire while held
    assert.equal(settled, false);
    await a.release(held);
    const lease = await waiting;
    assert.ok(lease.token > held.token);
    await b.release(lease);
  });

  it('fails with ETIMEDOUT naming the holder', async () => {
    const held = await a.acquire('mail_restart');
    await assert.rejects(b.wait(['mail_restart'], { timeoutMs: 100 }), (err: unknown) => {
      const e = err as { code: string; holders: Array<{ name: string; token: number }> };
      assert.equal(e.code, 'ETIMEDOUT');
      assert.deepEqual(e.holders.map((h) => [h.name, h.token]), [['mail_restart', held.token]]);
      return true;
    });
    await a.release(held);
  });

  it('fails with EABORTED when the signal fires, and leaves nothing behind', async () => {
    const held = await a.acquire('box_update_task');
    const controller = new AbortController();
    const waiting = b.wait(['box_update_task'], { signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(waiting, { code: 'EABORTED' });
    await a.release(held);
    assert.deepEqual(await a.list(), []);
    // Leaving the line is a write that may still be going on (on a loaded machine) after the abort returned.
    await until('the aborted waiter to leave the line', async () => (await a.listWaiters()).length === 0);
  });

  it('fails with EABORTED when the signal fires while an attempt is in flight (the abort event is then already past)', async () => {
    const held = await a.acquire('box_update_task');
    const controller = new AbortController();
    const waiting = b.wait(['box_update_task'], { signal: controller.signal });
    controller.abort(); // the first attempt is on its way to the server
    const outcome = await Promise.race([waiting.then(() => 'acquired', (e: { code?: string }) => e.code), new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5_000))]);
    assert.equal(outcome, 'EABORTED');
    await a.release(held);
    // The abort returns at once; leaving the line is a write that goes on in the background.
    await until('the aborted waiter to leave the line', async () => (await a.listWaiters()).length === 0);
  });

  it('wakes when a lease expires (database time), without anyone releasing', async () => {
    const held = await a.acquire('app_task_exp', { ttlMs: 300 });
    const lease = await b.wait(['app_task_exp'], { timeoutMs: 10_000 });
    assert.equal(lease.owner.taskId, 'b');
    assert.ok(lease.acquiredAt.getTime() >= held.expiresAt!.getTime(), 'not before the lease ran out');
    await b.release(lease);
    await assert.rejects(a.release(held), { code: 'ENOTHELD', reason: 'expired' });
  });

  it('serves 30 waiters of one name in one process, one at a time', async () => {
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 30 }, () =>
        a.using(
          ['app_task_hot'],
          async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            await new Promise((r) => setImmediate(r));
            inside--;
          },
          { wait: true, timeoutMs: 30_000 },
        ),
      ),
    );
    assert.equal(maxInside, 1);
  });
});
