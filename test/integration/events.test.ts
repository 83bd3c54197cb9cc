// Observability on a real server: every event kind arrives on its
// diagnostics channel, and metrics() agrees with what was published.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { createLockTable, LockChannels, type LockEventKind, type LockEvents, type LockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

describe('diagnostics channels and metrics()', () => {
  let db: TestDb;
  let locks: LockTable;
  let other: LockTable;
  const seen: Array<{ kind: LockEventKind; event: LockEvents[LockEventKind] }> = [];
  const unsubscribe: Array<() => void> = [];
  const of = <K extends LockEventKind>(kind: K) => seen.filter((s) => s.kind === kind).map((s) => s.event as LockEvents[K]);

  before(async () => {
    db = await createTestDb('events');
    // The read-decide-write path, with 8 statements in flight: its compare-and-swap
    // races are what publish `retried` (the one-statement path does not race).
    locks = createLockTable({ db: db.pool, space: 'events', owner: { taskId: 'observer' }, fastPath: false, maxInFlight: 8 });
    other = createLockTable({ db: db.url, space: 'events', owner: { taskId: 'other' } });
    for (const kind of Object.keys(LockChannels) as LockEventKind[]) {
      const fn = (event: unknown) => {
        // Only this suite's space: other suites in this process publish on the same channels.
        if ((event as { space: string }).space === 'events') seen.push({ kind, event: event as LockEvents[LockEventKind] });
      };
      diagnostics.subscribe(LockChannels[kind], fn);
      unsubscribe.push(() => diagnostics.unsubscribe(LockChannels[kind], fn));
    }
  });
  after(async () => {
    for (const u of unsubscribe) u();
    await locks.close();
    await other.close();
    await db.drop();
  });

  it('publishes acquired, contended, released, lost, reaped and retried, and metrics() counts them', async () => {
    // acquired, then contended (once per call, even for a wait that polls many times)
    const lease = await locks.acquire(['app_task_1', 'app_backup_1'], { ttlMs: 60_000 });
    assert.equal(await other.tryAcquire('app_task_1'), null);
    const waiting = other.wait(['app_task_1'], { timeoutMs: 10_000 });
    await until('the waiter to report contention', () => of('contended').some((e) => e.op === 'wait'));

    // released (and the waiter acquires)
    await locks.release(lease);
    const waited = await waiting;

    const acquired = of('acquired');
    assert.deepEqual(acquired.map((e) => [e.op, e.names, e.owner.taskId]), [
      ['acquire', ['app_task_1', 'app_backup_1'], 'observer'],
      ['wait', ['app_task_1'], 'other'],
    ]);
    assert.equal(acquired[0]!.token, lease.token);
    assert.equal(acquired[0]!.expiresAt?.getTime(), lease.expiresAt?.getTime());
    assert.ok(acquired[1]!.waitedMs > 0);
    const contended = of('contended');
    assert.deepEqual(contended.map((e) => [e.op, e.holders.map((h) => [h.name, h.owner.taskId])]), [
      ['tryAcquire', [['app_task_1', 'observer']]],
      ['wait', [['app_task_1', 'observer']]],
    ]);
    const released = of('released');
    assert.deepEqual(released.map((e) => [e.names, e.token]), [[['app_task_1', 'app_backup_1'], lease.token]]);
    assert.ok(released[0]!.heldMs >= 0 && released[0]!.heldMs < 60_000);

    // lost: the lease was wiped before its holder released it
    await locks.releaseAll();
    await assert.rejects(other.release(waited), { code: 'ENOTHELD' });
    assert.deepEqual(of('lost').map((e) => [e.op, e.names, e.reason, e.token]), [['release', ['app_task_1'], 'wiped', waited.token]]);
    assert.deepEqual(of('reaped').map((e) => [e.op, e.locks.map((l) => [l.name, l.reason]), e.by.taskId]), [
      ['releaseAll', [['app_task_1', 'wiped']], 'observer'],
    ]);

    // reaped: a SIGKILLed worker's locks, released by the startup cleanup
    const worker = await Worker.start({ url: db.url, space: 'events', taskId: 'doomed' });
    try {
      assert.ok((await worker.send({ op: 'acquire', names: ['box_update', 'mail_restart'] })).ok);
      await worker.kill();
      assert.deepEqual((await locks.reapDead()).map((h) => h.name), ['box_update', 'mail_restart']);
    } finally {
      await worker.kill();
    }
    const reaped = of('reaped').at(-1)!;
    assert.deepEqual([reaped.op, reaped.locks.map((l) => [l.name, l.reason, l.owner.pid])], [
      'reapDead',
      [['box_update', 'reaped', worker.pid], ['mail_restart', 'reaped', worker.pid]],
    ]);

    // retried: concurrent writers of one row lose compare-and-swap races
    let rounds = 0;
    while (!of('retried').length) {
      assert.ok(rounds < 50, 'no retry after 50 rounds of 8 concurrent acquirers');
      const leases = await Promise.all(Array.from({ length: 8 }, (_, i) => locks.acquire(`task_type_r${rounds}_${i}` as 'task_type_x')));
      await Promise.all(leases.map((l) => locks.release(l)));
      rounds++;
    }
    const retried = of('retried')[0]!;
    assert.ok(retried.attempt >= 1);
    assert.match(retried.op, /^(acquire|release)$/);
    assert.equal(retried.reason, 'lost the race');

    // metrics() of each table agrees with what it did (only `locks` ever raced another writer)
    assert.deepEqual(locks.metrics().counters, {
      acquired: 1 + 8 * rounds,
      released: 1 + 8 * rounds,
      contended: 0,
      retried: of('retried').length,
      reaped: 3,
      lost: 0,
      queued: 0,
      dequeued: 0,
    });
    assert.deepEqual(other.metrics().counters, { acquired: 1, released: 0, contended: 2, retried: 0, reaped: 0, lost: 1, queued: 1, dequeued: 1 });
    const m = locks.metrics();
    assert.equal(m.waitMs.count, 1 + 8 * rounds);
    assert.equal(m.holdMs.count, 1 + 8 * rounds);
    assert.ok(m.waitMs.min! >= 0 && m.waitMs.min! <= m.waitMs.p50! && m.waitMs.p50! <= m.waitMs.max!);
    assert.equal(other.metrics().holdMs.count, 0);
    assert.equal(other.metrics().holdMs.p50, null);
  });

  it('logs contention and lost leases through debug (DEBUG=locktable:*)', async () => {
    const script = `
      const { createLockTable } = require(${JSON.stringify(require.resolve('../../lib/index.js'))});
      (async () => {
        const a = createLockTable({ db: process.argv[1], space: 'events-log', owner: { taskId: 'a' } });
        const lease = await a.acquire('box_update');
        await a.tryAcquire('box_update');
        await a.releaseAll();
        await a.release(lease).catch(() => {});
        await a.close();
      })();`;
    const run = spawnSync(process.execPath, ['-e', script, db.url], { env: { ...process.env, DEBUG: 'locktable:*', DEBUG_COLORS: '0' }, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /locktable:acquire box_update token \d+/);
    assert.match(run.stderr, /locktable:contended tryAcquire: box_update by task a, pid \d+ on /);
    assert.match(run.stderr, /locktable:lost release of box_update \(token \d+\): wiped/);
  });
});
