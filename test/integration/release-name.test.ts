// releaseName(): the operator's release of one lock, whoever holds it.
import assert from 'node:assert/strict';
import { createLockTable, LockedError, type LockTable } from '../../lib/index.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

describe('releaseName()', () => {
  let db: TestDb;
  let ops: LockTable;
  const workers: Worker[] = [];

  before(async () => {
    db = await createTestDb('release_name');
    ops = createLockTable({ db: db.pool, owner: { taskId: 'operator' } });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await ops.releaseAll();
  });
  after(async () => {
    await ops.close();
    await db.drop();
  });

  it('refuses a live owner\'s lock with ELOCKED naming the holder, and changes nothing', async () => {
    const w = await Worker.start({ url: db.url, taskId: 'task-7' });
    workers.push(w);
    assert.ok((await w.send({ op: 'acquire', names: ['box_update'] })).ok);
    const before = await rawRow(db.pool);
    await assert.rejects(ops.releaseName('box_update'), (err: unknown) => {
      assert.ok(err instanceof LockedError);
      assert.equal(err.code, 'ELOCKED');
      const holder = err.holders[0] as (typeof err.holders)[0] & { liveness?: string };
      assert.deepEqual([holder.name, holder.owner.taskId, holder.owner.pid, holder.liveness], ['box_update', 'task-7', w.pid, 'alive']);
      assert.match(err.message, /box_update is held by box_update by task task-7, pid \d+ .* whose owner is alive: pass \{ force: true \}/);
      return true;
    });
    assert.deepEqual(await rawRow(db.pool), before);
  });

  it('releases a live owner\'s lock with force, and the holder then learns it was forced', async () => {
    const w = await Worker.start({ url: db.url, taskId: 'task-8' });
    workers.push(w);
    assert.ok((await w.send({ op: 'acquire', names: ['app_task_a', 'app_backup_a'] })).ok);
    const removed = await ops.releaseName('app_task_a', { force: true });
    assert.deepEqual([removed?.name, removed?.owner.taskId, removed?.liveness], ['app_task_a', 'task-8', 'alive']);
    assert.deepEqual((await ops.list()).map((l) => l.name), ['app_backup_a'], 'only the one name');
    const reply = await w.send({ op: 'release' });
    assert.deepEqual([reply.ok, reply.code], [false, 'ENOTHELD']);
    assert.match(reply.error!, /app_task_a: forced/);
    assert.deepEqual(await ops.list(), [], 'the holder still released what it held');
  });

  it('releases a dead owner\'s lock without force', async () => {
    const w = await Worker.start({ url: db.url, taskId: 'task-9' });
    workers.push(w);
    assert.ok((await w.send({ op: 'acquire', names: ['mail_restart'] })).ok);
    await w.kill();
    const removed = await ops.releaseName('mail_restart');
    assert.deepEqual([removed?.name, removed?.owner.pid, removed?.liveness], ['mail_restart', w.pid, 'dead']);
    assert.deepEqual(await ops.list(), []);
  });

  it('refuses an owner it cannot judge (another machine: another boot id) without force', async () => {
    const lease = await ops.acquire('box_update_task');
    // The boot id of its owner record (format 2 stores each owner once, under the key the entry names).
    await db.pool.query(
      `UPDATE locks SET dataJson = JSON_SET(dataJson, CONCAT('$.o."', JSON_VALUE(dataJson, '$.l.box_update_task.o'), '".b'), 'another-machine') WHERE id = 'platform'`,
    );
    await assert.rejects(ops.releaseName('box_update_task'), (err: LockedError) => {
      assert.equal(err.code, 'ELOCKED');
      assert.match(err.message, /cannot be judged from here/);
      return true;
    });
    assert.equal((await ops.releaseName('box_update_task', { force: true }))?.liveness, 'unknown');
    await assert.rejects(ops.release(lease), { code: 'ENOTHELD', reason: 'forced' });
  });

  it('resolves null for a name nobody holds, and rejects bad input before any SQL', async () => {
    const before = await rawRow(db.pool);
    assert.equal(await ops.releaseName('box_update'), null);
    await assert.rejects(ops.releaseName('a"b'), { code: 'EINVALIDNAME' });
    await assert.rejects(ops.releaseName('box_update', { force: 'yes' } as never), { code: 'EINVALIDOPTION' });
    assert.deepEqual(await rawRow(db.pool), before);
  });
});
