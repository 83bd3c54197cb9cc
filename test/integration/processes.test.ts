import assert from 'node:assert/strict';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

describe('across processes', () => {
  let db: TestDb;
  let server: LockTable;
  const workers: Worker[] = [];
  const start = async (taskId: string, options: { asUser?: number; runuser?: string; hostname?: string } = {}) => {
    const w = await Worker.start({ url: db.url, taskId }, options);
    workers.push(w);
    return w;
  };

  before(async () => {
    db = await createTestDb('processes');
    server = createLockTable({ db: db.pool });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await server.releaseAll();
  });
  after(async () => {
    await server.close();
    await db.drop();
  });

  it('lets exactly one of 8 child processes win the same name', async () => {
    const ws = await Promise.all(Array.from({ length: 8 }, (_, i) => start(`race${i}`)));
    const replies = await Promise.all(ws.map((w) => w.send({ op: 'acquire', names: ['box_update'] })));
    assert.equal(replies.filter((r) => r.ok).length, 1, JSON.stringify(replies));
    assert.ok(replies.every((r) => r.ok || r.code === undefined), 'losers get null from tryAcquire, not an error');
    const winner = ws[replies.findIndex((r) => r.ok)]!;
    assert.deepEqual((await server.list()).map((l) => [l.name, l.owner.pid]), [['box_update', winner.pid]]);
  });

  it('hands out strictly increasing fencing tokens across processes', async () => {
    const ws = await Promise.all(Array.from({ length: 4 }, (_, i) => start(`tok${i}`)));
    const tokens: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (const w of ws) {
        const r = await w.send({ op: 'acquire', names: ['app_task_tok'], wait: true, timeoutMs: 10_000 });
        assert.ok(r.ok, JSON.stringify(r));
        tokens.push(r.token!);
        assert.ok((await w.send({ op: 'release' })).ok);
      }
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `${tokens}`);
  });

  it('reapDead() releases exactly the locks of a SIGKILLed child, and no other', async () => {
    const doomed = await start('doomed');
    const alive = await start('alive');
    assert.ok((await doomed.send({ op: 'acquire', names: ['app_task_1', 'app_backup_1'] })).ok);
    assert.ok((await alive.send({ op: 'acquire', names: ['app_task_2'] })).ok);
    const mine = await server.acquire('mail_restart');
    await doomed.kill();
    const listed = await server.list();
    assert.deepEqual(
      listed.map((l) => [l.name, l.liveness]),
      [['app_backup_1', 'dead'], ['app_task_1', 'dead'], ['app_task_2', 'alive'], ['mail_restart', 'alive']],
    );
    const released = await server.reapDead();
    assert.deepEqual(released.map((h) => [h.name, h.owner.pid]).sort(), [['app_backup_1', doomed.pid], ['app_task_1', doomed.pid]]);
    assert.deepEqual((await server.list()).map((l) => l.name), ['app_task_2', 'mail_restart']);
    assert.deepEqual(await server.reapDead(), [], 'a second reap finds nothing');
    await server.release(mine);
  });

  it('a SIGKILLed task that saw another hostname (its own UTS namespace, same boot) is dead: reapDead() and wait() recognise it', async function () {
    if (process.getuid?.() !== 0) this.skip(); // unshare --uts needs root
    const renamed = await start('renamed', { hostname: 'renamed-host' });
    const waiter = await start('waiter');
    assert.ok((await renamed.send({ op: 'acquire', names: ['app_task_r1'] })).ok);
    assert.ok((await renamed.send({ op: 'acquire', names: ['app_task_r2'] })).ok);
    const [alive] = await server.list();
    assert.deepEqual([alive?.owner.host, alive?.liveness], ['renamed-host', 'alive'], 'a live task under another hostname is alive, not unknown');
    const waiting = waiter.send({ op: 'acquire', names: ['app_task_r1'], wait: true, timeoutMs: 20_000 });
    await until('the waiter to be blocked', async () => (await server.list()).length === 2);
    await renamed.kill();
    const reply = await waiting;
    assert.ok(reply.ok, JSON.stringify(reply));
    const released = await server.reapDead();
    assert.deepEqual(released.map((h) => [h.name, h.owner.host]), [['app_task_r2', 'renamed-host']]);
    assert.deepEqual((await server.list()).map((l) => [l.name, l.owner.taskId]), [['app_task_r1', 'waiter']]);
  });

  it('never reaps a live holder, including one running as another user', async function () {
    if (process.getuid?.() !== 0) this.skip(); // needs root to start a process as another uid
    const other = await start('nobody-task', { asUser: 65534 });
    const reply = await other.send({ op: 'acquire', names: ['app_task_nobody'] });
    assert.ok(reply.ok, JSON.stringify(reply));
    const [entry] = await server.list();
    assert.equal(entry?.owner.user === 'nobody' || entry?.owner.user === '65534', true, JSON.stringify(entry?.owner));
    assert.equal(entry?.liveness, 'alive');
    assert.deepEqual(await server.reapDead(), []);
    // And the other way round: the unprivileged worker probes root's live process (EPERM) and keeps its lock too.
    await server.acquire('mail_restart');
    assert.deepEqual((await other.send({ op: 'reap' })).removed, []);
    assert.deepEqual((await server.list()).map((l) => l.name), ['app_task_nobody', 'mail_restart']);
  });

  it('a waiter blocked on a SIGKILLed holder acquires without anyone cleaning up', async () => {
    const holder = await start('holder');
    const waiter = await start('waiter');
    assert.ok((await holder.send({ op: 'acquire', names: ['full_backup_task_s1'] })).ok);
    const waiting = waiter.send({ op: 'acquire', names: ['full_backup_task_s1'], wait: true, timeoutMs: 20_000 });
    await until('the waiter to be blocked', async () => (await server.list()).some((l) => l.owner.pid === holder.pid));
    await holder.kill();
    const reply = await waiting;
    assert.ok(reply.ok, JSON.stringify(reply));
    const list = await server.list();
    assert.deepEqual(list.map((l) => [l.name, l.owner.pid, l.owner.taskId]), [['full_backup_task_s1', waiter.pid, 'waiter']]);
  });

  it('releaseByOwner({ pid }) releases one process\'s locks after it exits', async () => {
    const task = await start('task-9');
    const other = await start('task-10');
    assert.ok((await task.send({ op: 'acquire', names: ['app_task_9'] })).ok);
    assert.ok((await other.send({ op: 'acquire', names: ['app_task_10'] })).ok);
    await task.kill();
    assert.deepEqual((await server.releaseByOwner({ pid: task.pid })).map((h) => h.name), ['app_task_9']);
    assert.deepEqual((await server.list()).map((l) => l.name), ['app_task_10']);
  });

  it('releaseByOwner({ pid }) releases what a task spawned through runuser holds: the locks belong to its grandchild', async function () {
    if (process.getuid?.() !== 0) this.skip(); // runuser needs root
    const task = await start('', { runuser: 'nobody' });
    const bystander = await start('bystander');
    assert.notEqual(task.pid, task.child.pid, 'the locks are held below the spawned process');
    assert.ok((await task.send({ op: 'acquire', names: ['app_task_sudo', 'app_backup_sudo'] })).ok);
    assert.ok((await bystander.send({ op: 'acquire', names: ['app_task_by'] })).ok);
    const [held] = await server.list();
    assert.equal(held?.owner.pid, task.pid);
    assert.ok(held?.owner.ancestors?.some((a) => a.pid === task.child.pid), JSON.stringify(held?.owner));
    // The server knows only the pid it spawned, and calls this when the task exits.
    const spawned = task.child.pid!;
    await task.stop(); // the worker exits (leaving its locks), then runuser does
    assert.equal((await server.list()).find((l) => l.owner.pid === task.pid)?.liveness, 'dead');
    assert.deepEqual((await server.releaseByOwner({ pid: spawned })).map((h) => h.name).sort(), ['app_backup_sudo', 'app_task_sudo']);
    assert.deepEqual((await server.list()).map((l) => l.name), ['app_task_by']);
  });

  it('releaseByOwner({ pid }) does not match a process that had the pid before: start times differ', async () => {
    const task = await start('reused');
    assert.ok((await task.send({ op: 'acquire', names: ['app_task_reused'] })).ok);
    // Make the stored record that of an earlier process with the same pid (another start time).
    const [rows] = await db.pool.query('SELECT CAST(dataJson AS CHAR) AS raw FROM locks WHERE id = ?', ['platform']);
    const doc = JSON.parse((rows as Array<{ raw: string }>)[0]!.raw) as { o: Record<string, { p: number; s: number; a?: unknown }> };
    const key = Object.keys(doc.o).find((k) => doc.o[k]!.p === task.pid)!;
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.o."${key}".s', ?), version = version + 1 WHERE id = 'platform'`, [doc.o[key]!.s - 1]);
    assert.deepEqual(await server.releaseByOwner({ pid: task.pid }), [], 'the live process with that pid is not the one that acquired');
    assert.deepEqual(await server.releaseByOwner({ pid: task.pid, startTime: doc.o[key]!.s }), [], 'nor with its start time given');
    assert.deepEqual((await server.releaseByOwner({ pid: task.pid, startTime: doc.o[key]!.s - 1 })).map((h) => h.name), ['app_task_reused']);
  });

  it('runs migrate() from 3 processes at once', async () => {
    const fresh = await createTestDb('migrate3', { migrate: false });
    try {
      const ws = await Promise.all(Array.from({ length: 3 }, () => Worker.start({ url: fresh.url })));
      workers.push(...ws);
      const replies = await Promise.all(ws.map((w) => w.send({ op: 'migrate' })));
      assert.ok(replies.every((r) => r.ok), JSON.stringify(replies));
      const files = ['001-create-locks.sql', '002-data-checksum.sql', '003-checksum-now.sql'];
      assert.deepEqual(replies.flatMap((r) => r.applied!).sort(), files, 'each applied exactly once');
      const [rows] = await fresh.pool.query('SELECT name FROM locktable_migrations ORDER BY name');
      assert.deepEqual(rows, files.map((name) => ({ name })));
      const [spaces] = await fresh.pool.query('SELECT id, version FROM locks');
      assert.deepEqual(spaces, [{ id: 'platform', version: 0 }]);
    } finally {
      await fresh.drop();
    }
  });
});
