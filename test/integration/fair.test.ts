// Fair waiting: waiters get in line in the document, and are served in line
// order, across processes; a waiter for several names reserves them all.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { createLockTable, LockChannels, type Lease, type LockError, type LockTable, type QueuedEvent, type DequeuedEvent } from '../../lib/index.js';
import { ownerKey, parseDocument, serializeDocument, toStoredOwner } from '../../lib/document.js';
import { rawRow, until, type TestDb } from '../helpers/db.js';
import { suiteWithWorkers } from '../helpers/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fair waiting', function () {
  this.timeout(120_000);
  const suite = suiteWithWorkers('fair');
  const start = suite.start;
  let db: TestDb;
  let locks: LockTable;
  let other: LockTable;
  before(() => ({ db, locks, other } = suite));

  it('serves nine waiters in different processes in the order they got in line', async () => {
    const held = await locks.acquire('box_update');
    const ws = await Promise.all(Array.from({ length: 9 }, (_, i) => start(`fifo${i}`)));
    const replies: Array<Promise<{ token?: number; ok: boolean }>> = [];
    for (const [i, w] of ws.entries()) {
      replies.push(w.send({ op: 'acquire', names: ['box_update'], wait: true, timeoutMs: 60_000 }));
      await until(`waiter ${i} in line`, async () => (await locks.listWaiters()).length === i + 1);
    }
    const line = await locks.listWaiters();
    assert.deepEqual(line.map((w) => w.owner.taskId), ws.map((_, i) => `fifo${i}`));
    assert.deepEqual(line.map((w) => w.position), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(line.every((w) => w.liveness === 'alive' && w.names.length === 1 && w.since.getTime() <= w.expiresAt.getTime()));
    await locks.release(held);
    // Whoever gets it hands it on: the order they got it in.
    const order: number[] = [];
    const pending = new Map(replies.map((r, i) => [i, r.then((reply) => ({ i, reply }))]));
    while (pending.size) {
      const { i, reply } = await Promise.race(pending.values());
      pending.delete(i);
      assert.ok(reply.ok, JSON.stringify(reply));
      order.push(i);
      assert.ok((await ws[i]!.send({ op: 'release' })).ok);
    }
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8], 'served in the order they got in line');
    assert.deepEqual(await locks.listWaiters(), []);
  });

  it('a box update waiting for three names gets them within a bound while app-task streams go on', async () => {
    // One table per name, three tasks each: a release wakes the next task at once.
    const tables = Array.from({ length: 2 }, (_, i) => createLockTable({ db: db.url, owner: { taskId: `stream${i}` }, poolSize: 4 }));
    let stop = false;
    let tasks = 0;
    const stream = async (t: LockTable, name: 'app_task_a' | 'app_task_b') => {
      while (!stop) {
        const lease = await t.wait(name, { timeoutMs: 60_000 });
        await sleep(400);
        await t.release(lease);
        tasks++;
      }
    };
    const streams = [0, 1, 2, 3, 4, 5].map((i) => stream(tables[i % 2]!, i % 2 ? 'app_task_a' : 'app_task_b'));
    try {
      await until('the streams running', () => tasks >= 6);
      const started = Date.now();
      const lease = await locks.wait(['box_update', 'app_task_a', 'app_task_b'], { timeoutMs: 6_000 });
      const waited = Date.now() - started;
      const before = tasks;
      // While the box update holds them, no app task runs.
      await sleep(100);
      assert.equal(tasks, before, 'an app task ran while the box update held its names');
      await locks.release(lease);
      await until('the streams running again', () => tasks >= before + 4);
      assert.ok(waited < 6_000, `waited ${waited} ms`);
    } finally {
      stop = true;
      await Promise.allSettled(streams);
      await Promise.all(tables.map((t) => t.close()));
    }
  });

  it('a later acquire fails with ELOCKED naming the line; tryAcquire returns null; barge takes a free name anyway', async () => {
    const held = await locks.acquire('app_task_q');
    const waiting = other.wait('app_task_q', { timeoutMs: 30_000 });
    await until('the waiter in line', async () => (await locks.listWaiters()).length === 1);
    await locks.release(held);
    // Free, but the waiter is first: it gets it, not a later acquire.
    const lease = await waiting;
    await other.release(lease);
    const held2 = await locks.acquire('app_task_q');
    const waiting2 = other.wait('app_task_q', { timeoutMs: 30_000 });
    await until('the waiter in line', async () => (await locks.listWaiters()).length === 1);
    await locks.release(held2);
    // The name may already be the waiter's, or still free with the waiter first in line: either way it is not ours.
    const err = await locks.acquire('app_task_q').then(() => null, (e: LockError) => e);
    assert.equal(err?.code, 'ELOCKED');
    const lease2 = await waiting2;
    await other.release(lease2);

    const held3 = await locks.acquire('app_task_q');
    const waiting3 = other.wait(['app_task_q', 'app_task_r'], { timeoutMs: 30_000 });
    await until('the waiter in line', async () => (await locks.listWaiters()).length === 2);
    // app_task_r is free, but reserved by the waiter in line.
    const locked = (await locks.acquire('app_task_r').catch((e: unknown) => e)) as LockError & { waiters: Array<{ name: string; position: number; owner: { taskId?: string } }>; holders: unknown[] };
    assert.equal(locked.code, 'ELOCKED');
    assert.deepEqual(locked.holders, []);
    assert.deepEqual(locked.waiters.map((w) => [w.name, w.position, w.owner.taskId]), [['app_task_r', 1, 'other']]);
    assert.match(locked.message, /app_task_r #1 task other/);
    assert.match(locked.message, /barge/);
    assert.equal(await locks.tryAcquire('app_task_r'), null);
    const barged = await locks.acquire('app_task_r', { barge: true });
    await locks.release(barged);
    await locks.release(held3);
    await other.release(await waiting3);
  });

  it('a SIGKILLed waiter leaves the line at the next write that meets it', async () => {
    const held = await locks.acquire('app_task_k');
    const w = await start('doomed');
    void w.send({ op: 'acquire', names: ['app_task_k'], wait: true, timeoutMs: 60_000 }).catch(() => {});
    await until('the waiter in line', async () => (await locks.listWaiters()).length === 1);
    await w.kill();
    assert.equal((await locks.listWaiters())[0]?.liveness, 'dead');
    await locks.release(held);
    const lease = await locks.acquire('app_task_k');
    assert.deepEqual(await locks.listWaiters(), [], 'its intent was dropped by the acquiring write');
    await locks.release(lease);
  });

  it('an intent that expired (its waiter vanished without leaving) does not block; one still renewed does', async () => {
    const held = await locks.acquire('mail_restart');
    // An intent of a waiter on another host, as another process would have written it.
    const stranger = { ...toStoredOwner(locks.owner), h: 'elsewhere', b: 'another-machine', p: 4242 };
    const row = (await rawRow(db.pool))!;
    const doc = parseDocument('platform', row.raw);
    const now = Date.now();
    doc.q = { app_task_x: [{ n: 'ghost', o: stranger, a: now, e: now + 600_000 }] };
    await db.pool.query('UPDATE locks SET version = version + 1, dataJson = ?, dataCrc = CRC32(dataJson) WHERE id = ?', [serializeDocument(doc), 'platform']);
    assert.equal((await locks.listWaiters())[0]?.liveness, 'unknown');
    assert.equal(await locks.tryAcquire('app_task_x'), null, 'a live intent elsewhere blocks');
    // Backdate its expiry: it vanished.
    await db.pool.query(
      `UPDATE locks SET version = version + 1, dataJson = JSON_SET(dataJson, '$.q.app_task_x[0].e', 1), dataCrc = CRC32(dataJson) WHERE id = 'platform'`,
    );
    assert.deepEqual(await locks.listWaiters(), []);
    const lease = await locks.acquire('app_task_x');
    assert.equal(JSON.parse((await rawRow(db.pool))!.raw).q, undefined, 'dropped by the acquiring write');
    assert.ok(ownerKey(stranger));
    await locks.release(lease);
    await locks.release(held);
  });

  it('a waiter that times out or is aborted leaves the line; queued/dequeued events and metrics count it', async () => {
    const events: Array<['queued', QueuedEvent] | ['dequeued', DequeuedEvent]> = [];
    const onQueued = (e: unknown) => events.push(['queued', e as QueuedEvent]);
    const onDequeued = (e: unknown) => events.push(['dequeued', e as DequeuedEvent]);
    diagnostics.subscribe(LockChannels.queued, onQueued);
    diagnostics.subscribe(LockChannels.dequeued, onDequeued);
    const table = createLockTable({ db: db.pool, owner: { taskId: 'timer' } });
    try {
      const held = await locks.acquire('app_task_t');
      await assert.rejects(table.wait('app_task_t', { timeoutMs: 300 }), (e: LockError) => e.code === 'ETIMEDOUT' && /app_task_t/.test(e.message));
      // A timeout or an abort returns at once; leaving the line is a write that goes on in the background.
      await until('the timed-out waiter to leave the line', async () => (await locks.listWaiters()).length === 0);
      const ac = new AbortController();
      const aborted = table.wait(['app_task_t', 'app_task_u'], { signal: ac.signal });
      // In line as its table knows it (the queued event), not only in the document: an abort
      // while the reply of the write that put it there is on its way would cut the attempt off
      // before the table heard of it (no events, and the intent left to expire).
      await until('in line', () => events.some(([k, e]) => k === 'queued' && e.names.includes('app_task_u')));
      ac.abort();
      await assert.rejects(aborted, (e: LockError) => e.code === 'EABORTED');
      await until('the aborted waiter to leave the line', async () => (await locks.listWaiters()).length === 0);
      const got = table.wait('app_task_t', { timeoutMs: 30_000 });
      await until('in line', async () => (await locks.listWaiters()).length === 1);
      await locks.release(held);
      await table.release(await got);
      const mine = events.filter(([, e]) => e.space === 'platform' && 'waiter' in e);
      assert.deepEqual(
        mine.map(([k, e]) => (k === 'queued' ? ['queued', (e as QueuedEvent).positions] : ['dequeued', (e as DequeuedEvent).reason])),
        [
          ['queued', { app_task_t: 1 }],
          ['dequeued', 'timeout'],
          ['queued', { app_task_t: 1, app_task_u: 1 }],
          ['dequeued', 'aborted'],
          ['queued', { app_task_t: 1 }],
          ['dequeued', 'acquired'],
        ],
      );
      const counters = table.metrics().counters;
      assert.deepEqual([counters.queued, counters.dequeued], [3, 3]);
    } finally {
      diagnostics.unsubscribe(LockChannels.queued, onQueued);
      diagnostics.unsubscribe(LockChannels.dequeued, onDequeued);
      await table.close();
    }
  });

  it('keeps renewing its intent while it waits longer than the intent lasts', async () => {
    const table = createLockTable({ db: db.pool, owner: { taskId: 'patient' }, wait: { intentTtlMs: 300 } });
    try {
      const held = await locks.acquire('app_task_p');
      const waiting = table.wait('app_task_p', { timeoutMs: 30_000 });
      const first = (await until('in line', async () => (await locks.listWaiters())[0]))!;
      await until('renewed twice', async () => {
        const w = (await locks.listWaiters())[0];
        return w && w.expiresAt.getTime() >= first.expiresAt.getTime() + 200;
      });
      assert.equal(await other.tryAcquire('app_task_p'), null);
      await locks.release(held);
      await table.release(await waiting);
    } finally {
      await table.close();
    }
  });

  it('releaseByOwner drops that owner\'s waiters, close() takes its waiters out of line', async () => {
    const held = await locks.acquire('app_task_w');
    const table = createLockTable({ db: db.pool, owner: { taskId: 'closer' } });
    const w1 = other.wait('app_task_w', { timeoutMs: 30_000 }).catch((e: LockError) => e);
    const w2 = table.wait('app_task_w', { timeoutMs: 60_000 }).catch((e: LockError) => e);
    await until('two in line', async () => (await locks.listWaiters()).length === 2);
    await table.close();
    assert.equal(((await w2) as LockError).code, 'ECLOSED');
    assert.deepEqual((await locks.listWaiters()).map((w) => w.owner.taskId), ['other']);
    await locks.releaseByOwner({ taskId: 'other' });
    assert.deepEqual(await locks.listWaiters(), []);
    // The waiter notices it is out of line at its next renewal or attempt, and gets back in.
    await locks.release(held);
    const lease = (await w1) as Lease;
    assert.ok(lease.token > 0, String(lease));
    await other.release(lease);
  });
});
