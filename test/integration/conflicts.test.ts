// Conflict rules of the catalogue across processes: LockTypes' rule (box_update
// against app tasks, app backups and full backups) between worker processes
// and this one, fair waiting across the rule, dead holders on the other side,
// and a host catalogue's own rules.
import assert from 'node:assert/strict';
import { createLockTable, defineLockTypes, type LockError, type LockTable } from '../../lib/index.js';
import { parseDocument } from '../../lib/document.js';
import { rawRow, until, type TestDb } from '../helpers/db.js';
import { suiteWithWorkers } from '../helpers/workers.js';

type Blocked = LockError & { holders: Array<{ name: string; owner: { pid: number }; rule?: string }>; waiters: Array<{ name: string; rule?: string }> };
const RULE = 'box_update <-> app_task_*';

describe('conflict rules across processes', function () {
  this.timeout(120_000);
  const suite = suiteWithWorkers('conflicts');
  const start = suite.start;
  let db: TestDb;
  let locks: LockTable;
  before(() => ({ db, locks } = suite));

  const stored = async () => parseDocument('platform', (await rawRow(db.pool))!.raw);

  it("an app task in another process blocks box_update, naming that holder and the rule; a box update there blocks app tasks and backups here", async () => {
    const task = await start('task-1');
    assert.ok((await task.send({ op: 'acquire', names: ['app_task_blog'] })).ok);
    await assert.rejects(locks.acquire('box_update'), (err: Blocked) => {
      assert.equal(err.code, 'ELOCKED');
      assert.deepEqual(err.holders.map((h) => [h.name, h.owner.pid, h.rule]), [['app_task_blog', task.pid, RULE]]);
      assert.match(err.message, /app_task_blog by task task-1, pid \d+ .*conflict rule box_update <-> app_task_\*/);
      return true;
    });
    assert.equal(await locks.tryAcquire('box_update'), null);
    assert.ok((await task.send({ op: 'release' })).ok);

    const box = await start('box');
    assert.ok((await box.send({ op: 'acquire', names: ['box_update'] })).ok);
    for (const name of ['app_task_blog', 'app_backup_blog', 'full_backup_task_site'] as const) {
      assert.equal(await locks.tryAcquire(name), null, name);
    }
    const refused = await task.send({ op: 'acquire', names: ['app_task_wiki'] });
    assert.deepEqual([refused.ok, refused.code], [false, undefined], 'tryAcquire in the worker: null');
    // Names no rule sets against box_update, and box_update's own companion in one call, are free.
    await locks.release(await locks.acquire(['box_update_task', 'mail_restart', 'task_type_cleanup']));
    assert.ok((await box.send({ op: 'release' })).ok);
    await locks.release(await locks.acquire(['box_update', 'app_task_blog']));
  });

  it('a waiting box update lets running app tasks finish, then goes before app tasks that came after it', async () => {
    const running = await start('running');
    assert.ok((await running.send({ op: 'acquire', names: ['app_task_a'] })).ok);
    const update = locks.wait('box_update', { timeoutMs: 60_000 });
    await until('the box update to get in line', async () => (await locks.listWaiters()).length === 1);
    // A later app task, of another app, in another process: refused (tryAcquire) and, waiting, in line behind the box update.
    const later = await start('later');
    assert.deepEqual((await later.send({ op: 'acquire', names: ['app_task_b'] })).ok, false);
    await assert.rejects(locks.acquire('app_task_c'), (err: Blocked) => {
      assert.deepEqual([err.holders, err.waiters.map((w) => [w.name, w.rule])], [[], [['box_update', RULE]]]);
      return true;
    });
    let laterDone = false;
    const laterWait = later.send({ op: 'acquire', names: ['app_task_b'], wait: true, timeoutMs: 60_000 }).then((r) => {
      laterDone = true;
      return r;
    });
    await until('the later app task to get in line', async () => (await locks.listWaiters()).length === 2);
    assert.ok((await running.send({ op: 'release' })).ok);
    const box = await update;
    assert.equal(laterDone, false, 'the app task that came later still waits');
    assert.deepEqual((await locks.listWaiters()).map((w) => w.name), ['app_task_b']);
    await locks.release(box);
    const got = await laterWait;
    assert.ok(got.ok, got.error);
    assert.ok(got.token! > box.token);
  });

  it('a dead holder on the other side does not block: the acquisition takes it over, and records it reaped', async () => {
    const task = await start('doomed');
    const held = await task.send({ op: 'acquire', names: ['app_backup_blog'] });
    assert.ok(held.ok);
    await task.kill();
    const box = await locks.acquire('box_update');
    const doc = await stored();
    assert.deepEqual(Object.keys(doc.l), ['box_update']);
    assert.deepEqual(doc.r?.filter((t) => t.n === held.nonce).map((t) => [t.k, t.w]), [['app_backup_blog', 'reaped']]);
    await locks.release(box);
  });

  it('shared holders of one side block the other side, shared or not', async () => {
    const readers = await start('readers');
    assert.ok((await readers.send({ op: 'acquire', names: ['app_task_db'], mode: 'shared' })).ok);
    assert.equal(await locks.tryAcquire('box_update', { mode: 'shared' }), null);
    assert.equal(await locks.tryAcquire('box_update', { limit: 2 }), null);
    const also = await locks.acquire('app_task_db', { mode: 'shared' });
    assert.ok(also.token > 0, 'holders of the name itself still share it');
    await locks.release(also);
  });

  it("a host catalogue's rules, from defineLockTypes or a plain record, hold between two tables; a table without them does not see them", async () => {
    const spec = { singletons: ['reindex'], prefixes: { user: 'user_' }, conflicts: { reindex: ['user_*'] } } as const;
    const Mine = defineLockTypes(spec);
    const a = createLockTable({ db: db.pool, space: 'host', types: Mine });
    // A catalogue built by hand: the same rules as a plain record, compiled by createLockTable().
    const b = createLockTable({ db: db.pool, space: 'host', types: { typeOf: Mine.typeOf, singletons: spec.singletons, prefixes: spec.prefixes, conflicts: { reindex: ['user_*'] } } });
    const blind = createLockTable({ db: db.pool, space: 'host', types: defineLockTypes({ singletons: ['reindex'], prefixes: { user: 'user_' } }) });
    try {
      const user = await a.acquire(Mine.user('7'));
      await assert.rejects(b.acquire('reindex' as never), (err: Blocked) => err.holders[0]?.rule === 'reindex <-> user_*');
      const unseen = await blind.acquire('reindex');
      assert.ok(unseen, 'rules are not stored: every process of a space must pass the same catalogue');
      await blind.release(unseen);
      await a.release(user);
      const reindex = await b.acquire('reindex' as never);
      assert.equal(await a.tryAcquire(Mine.user('8')), null);
      await b.release(reindex);
    } finally {
      await Promise.all([a.close(), b.close(), blind.close()]);
    }
    assert.throws(() => createLockTable({ db: db.pool, types: { typeOf: Mine.typeOf, singletons: ['reindex'], conflicts: { reindex: ['usr_*'] } } }), { code: 'EINVALIDOPTION' });
  });
});
