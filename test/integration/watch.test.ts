// wait() wakes for its own blockers, not for every write to the space.
import assert from 'node:assert/strict';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { Tap } from '../helpers/tap.js';

describe('wait() watching its blockers', () => {
  let db: TestDb;
  let holder: LockTable;
  let busy: LockTable;

  before(async () => {
    db = await createTestDb('watch');
    holder = createLockTable({ db: db.pool, owner: { taskId: 'holder' } });
    busy = createLockTable({ db: db.pool, owner: { taskId: 'busy' } });
  });
  after(async () => {
    await holder.close();
    await busy.close();
    await db.drop();
  });

  it('sleeps through writes about other names, and wakes when its blocker is released', async () => {
    const tap = new Tap(db.pool);
    const waiter = createLockTable({ db: tap.db, owner: { taskId: 'waiter' } });
    try {
      const held = await holder.acquire('box_update_task');
      const waiting = waiter.wait(['box_update_task'], { timeoutMs: 20_000 });
      await until('the waiter to poll', () => tap.statements.some((s) => s.startsWith('SELECT version, CAST(TIMESTAMPDIFF')));
      tap.reset();
      // Forty writes about other names: the version moves forty times.
      for (let i = 0; i < 20; i++) await busy.release(await busy.acquire(`app_task_churn${i}`));
      await until('the waiter to poll after the churn', () => tap.statements.filter((s) => s.startsWith('SELECT version, CAST(TIMESTAMPDIFF')).length >= 3);
      const attempts = tap.statements.filter((s) => !s.startsWith('SELECT version, CAST(TIMESTAMPDIFF'));
      assert.deepEqual(attempts, [], 'no attempt to acquire while its blocker stood');
      await holder.release(held);
      const lease = await waiting;
      assert.ok(lease.token > held.token);
      await waiter.release(lease);
    } finally {
      await waiter.close();
    }
  });
});
