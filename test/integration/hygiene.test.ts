// The document of a space does not grow with the processes that used it: the
// owner records the one-statement release leaves behind (a process that exits
// without close() never drops its own) go with the next full write and with
// reapDead(), and an idle space's document returns to a small size.
import assert from 'node:assert/strict';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';

describe('document hygiene', () => {
  let db: TestDb;
  let janitor: LockTable;
  const abandoned: LockTable[] = [];

  before(async () => {
    db = await createTestDb('hygiene');
    janitor = createLockTable({ db: db.pool, owner: { taskId: 'janitor' } });
  });
  after(async () => {
    await Promise.all(abandoned.splice(0).map((t) => t.close()));
    await janitor.close();
    await db.drop();
  });

  const ownerRecords = async () => Object.keys((JSON.parse((await rawRow(db.pool))!.raw) as { o: object }).o).length;

  /** `n` tasks that each acquire and release through one-statement writes, and exit without close(). */
  async function tasksThatNeverClose(n: number, from: number): Promise<void> {
    for (let i = from; i < from + n; i++) {
      const task = createLockTable({ db: db.pool, owner: { taskId: `task-${i}` } });
      abandoned.push(task); // closed only after the test: each leaves its record as a killed process would
      await task.list(); // the database time is known: what follows is one statement each
      await task.release(await task.acquire(`app_task_${i}`));
    }
  }

  it('80 tasks that acquire, release and exit without close(): reapDead() drops their 80 owner records', async () => {
    const empty = (await rawRow(db.pool))!.raw.length;
    await tasksThatNeverClose(80, 0);
    assert.ok((await ownerRecords()) >= 74, 'the one-statement release leaves each owner record behind');
    const grown = (await rawRow(db.pool))!.raw.length;
    assert.deepEqual(await janitor.reapDead(), [], 'no lock to reap');
    assert.equal(await ownerRecords(), 0);
    const after = (await rawRow(db.pool))!.raw.length;
    assert.ok(after <= empty + 16, `idle again: ${after} characters (empty: ${empty}, before the reap: ${grown})`);
    assert.deepEqual(await janitor.reapDead(), []);
  });

  it('the next full write keeps only the records of owners that still hold a lock', async () => {
    await tasksThatNeverClose(20, 100);
    const keeper = createLockTable({ db: db.pool, owner: { taskId: 'keeper' }, fastPath: false });
    try {
      const lease = await keeper.acquire('box_update');
      assert.equal(await ownerRecords(), 1);
      await keeper.release(lease);
      assert.equal(await ownerRecords(), 0);
    } finally {
      await keeper.close();
    }
  });
});
