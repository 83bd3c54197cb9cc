// Shared locks and semaphores: many holders of one name at once (format 3's
// groups, `s`), each with its own lease, across processes; fair waiting keeps
// a waiting exclusive ahead of a stream of shared holders.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { createLockTable, LockChannels, type AcquiredEvent, type LockError, type LockTable, type ReleasedEvent } from '../../lib/index.js';
import { parseDocument } from '../../lib/document.js';
import { rawRow, until, type TestDb } from '../helpers/db.js';
import { Tap } from '../helpers/tap.js';
import { suiteWithWorkers } from '../helpers/workers.js';

describe('shared locks and semaphores', function () {
  this.timeout(120_000);
  const suite = suiteWithWorkers('shared');
  const start = suite.start;
  let db: TestDb;
  let locks: LockTable;
  let other: LockTable;
  before(() => ({ db, locks, other } = suite));
  const stored = async () => parseDocument('platform', (await rawRow(db.pool))!.raw);

  it('shared holders coexist, each with its own nonce and token; exclusive is refused until the last releases', async () => {
    const a = await locks.acquire('app_task_db', { mode: 'shared', ttlMs: 60_000 });
    const b = await other.acquire('app_task_db', { mode: 'shared' });
    assert.notEqual(a.nonce, b.nonce);
    assert.ok(b.token > a.token);
    const doc = await stored();
    assert.deepEqual(doc.s?.app_task_db?.h.map((h) => h.n), [a.nonce, b.nonce]);
    assert.equal(doc.l.app_task_db, undefined);
    assert.equal(await other.tryAcquire('app_task_db'), null);
    await assert.rejects(other.acquire('app_task_db'), (e: LockError & { holders?: unknown[] }) => e.code === 'ELOCKED' && e.holders!.length === 2);
    const listed = (await locks.list()).filter((l) => l.name === 'app_task_db');
    assert.deepEqual(listed.map((l) => [l.mode, l.token, l.owner.taskId]), [['shared', a.token, undefined], ['shared', b.token, 'other']]);
    // extend and JSON round-trip work on a group holder: the lease finds its own entry by nonce.
    const extended = await locks.extend(a, 120_000);
    assert.ok(extended.expiresAt!.getTime() > a.expiresAt!.getTime());
    await other.release(other.lease(JSON.stringify(b)));
    assert.deepEqual((await stored()).s?.app_task_db?.h.map((h) => h.n), [a.nonce]);
    assert.equal(await other.tryAcquire('app_task_db'), null);
    await locks.release(a);
    assert.equal((await stored()).s, undefined, 'the group goes with its last holder');
    await locks.release(await other.acquire('app_task_db'));
  });

  it('a semaphore admits its limit and no more; a different limit is EINVALIDOPTION', async () => {
    const leases = [await locks.acquire('app_backup_s', { limit: 2 }), await other.acquire('app_backup_s', { limit: 2 })];
    assert.equal(await locks.tryAcquire('app_backup_s', { limit: 2 }), null);
    await assert.rejects(locks.acquire('app_backup_s', { limit: 3 }), (e: LockError) => e.code === 'EINVALIDOPTION' && /limit 2/.test(e.message) && /limit 3/.test(e.message));
    await assert.rejects(locks.tryAcquire('app_backup_s', { mode: 'shared' }), (e: LockError) => e.code === 'EINVALIDOPTION');
    await assert.rejects(locks.acquire('app_backup_s', { mode: 'exclusive', limit: 2 }), (e: LockError) => e.code === 'EINVALIDOPTION');
    const listed = (await locks.list()).filter((l) => l.name === 'app_backup_s');
    assert.deepEqual(listed.map((l) => l.limit), [2, 2]);
    await locks.release(leases[0]!);
    const third = await locks.acquire('app_backup_s', { limit: 2 });
    await locks.release(third);
    await other.release(leases[1]!);
  });

  it('processes cycling through a semaphore of limit 3 never hold it more than 3 at once', async () => {
    const ws = await Promise.all(Array.from({ length: 6 }, (_, i) => start(`sem${i}`)));
    let max = 0;
    let seen = 0;
    let done = false;
    const runs = Promise.all(ws.map((w) => w.send({ op: 'cycle', names: ['app_backup_s'], limit: 3, count: 8, holdMs: 20 }))).finally(() => (done = true));
    while (!done) {
      const doc = await stored(); // parseDocument also refuses a group over its limit (ECORRUPT)
      const n = doc.s?.app_backup_s?.h.length ?? 0;
      max = Math.max(max, n);
      if (n) seen++;
      assert.ok(doc.l.app_backup_s === undefined);
    }
    for (const r of await runs) assert.ok(r.ok, JSON.stringify(r));
    assert.ok(max <= 3, `at most 3 holders at once, saw ${max}`);
    assert.ok(max >= 2 && seen > 0, `the semaphore was shared (max ${max})`);
    assert.equal((await stored()).s, undefined);
  });

  it('a stream of shared holders does not starve a waiting exclusive: it gets the name while the stream goes on', async () => {
    const first = await locks.acquire('app_task_db', { mode: 'shared' });
    const readers = await Promise.all(Array.from({ length: 3 }, (_, i) => start(`reader${i}`)));
    // Three processes keep the name shared without a gap (each takes a new lease before releasing
    // its old one): without fairness it is never free.
    const stream = Promise.all(readers.map((w) => w.send({ op: 'relay', names: ['app_task_db'], mode: 'shared', count: 300, holdMs: 50 })));
    await until('the stream holds the name', async () => ((await stored()).s?.app_task_db?.h.length ?? 0) >= 2);
    const writer = await start('writer');
    const w = writer.send({ op: 'acquire', names: ['app_task_db'], wait: true, timeoutMs: 8_000 });
    await until('the writer is in line', async () => (await locks.listWaiters()).some((x) => x.owner.taskId === 'writer'));
    const inLine = Date.now();
    await locks.release(first);
    const reply = await w;
    const waited = Date.now() - inLine;
    assert.ok(reply.ok, JSON.stringify(reply));
    // The readers' next shared leases were refused while the writer was in line, long before the stream's end.
    for (const r of await stream) assert.ok(r.ok && (r as { stoppedAt?: number }).stoppedAt! < 300, JSON.stringify(r));
    const doc = await stored();
    assert.equal(doc.l.app_task_db?.n, reply.nonce, 'the writer holds it alone');
    assert.equal(doc.s?.app_task_db, undefined);
    // The bound (docs/lock-kinds.md): the shared holders that got in before it release (each after one hold, 50 ms, when its next lease is refused),
    // plus polling; 5 s leaves room for a loaded machine, against a stream of 300 × 50 ms per reader.
    assert.ok(waited < 5_000, `waited ${waited} ms`);
    assert.ok((await writer.send({ op: 'release' })).ok);
  });

  it('a shared lease records its mode (also in its JSON): its release goes straight to the read and the write', async () => {
    const tap = new Tap(db.pool);
    const t = createLockTable({ db: tap.db, owner: { taskId: 'tapped' } });
    try {
      const lease = await t.acquire('app_backup_m', { limit: 3 });
      assert.deepEqual([lease.mode, lease.limit], ['shared', 3]);
      const json = JSON.parse(JSON.stringify(lease)) as { mode?: string; limit?: number };
      assert.deepEqual([json.mode, json.limit], ['shared', 3]);
      const exclusive = await t.acquire('app_task_m');
      assert.equal('mode' in exclusive, false, 'an exclusive lease and its JSON are as before');
      await t.release(exclusive);
      tap.reset();
      await t.release(lease);
      assert.deepEqual(tap.updates.filter((u) => /LAST_INSERT_ID/.test(u.sql)), [], 'no one-statement release to be refused');
      assert.equal(tap.updates.length, 1, 'one compare-and-swap write');
      // A lease rebuilt from JSON in another table (another process) knows it too.
      const again = await t.acquire('app_backup_m', { mode: 'shared' });
      tap.reset();
      await other.release(other.lease(JSON.stringify(again)));
      assert.equal((await stored()).s, undefined);
      assert.deepEqual(tap.updates, [], 'released by the other table, not this one');
    } finally {
      await t.close();
    }
  });

  it('acquired and released events carry the mode and a semaphore\'s limit', async () => {
    const acquired: AcquiredEvent[] = [];
    const released: ReleasedEvent[] = [];
    const onAcquired = (e: unknown) => acquired.push(e as AcquiredEvent);
    const onReleased = (e: unknown) => released.push(e as ReleasedEvent);
    diagnostics.subscribe(LockChannels.acquired, onAcquired);
    diagnostics.subscribe(LockChannels.released, onReleased);
    try {
      await locks.release(await locks.acquire('app_task_ev'));
      await locks.release(await locks.acquire('app_task_ev', { mode: 'shared' }));
      await locks.release(await locks.acquire('app_task_ev', { limit: 4 }));
    } finally {
      diagnostics.unsubscribe(LockChannels.acquired, onAcquired);
      diagnostics.unsubscribe(LockChannels.released, onReleased);
    }
    const kinds = (es: Array<{ names: readonly string[]; mode: string; limit?: number }>) => es.filter((e) => e.names.includes('app_task_ev')).map((e) => [e.mode, e.limit]);
    assert.deepEqual(kinds(acquired), [['exclusive', undefined], ['shared', undefined], ['shared', 4]]);
    assert.deepEqual(kinds(released), [['exclusive', undefined], ['shared', undefined], ['shared', 4]]);
  });

  it('releaseName() on a name held shared: every holder, only when all are dead unless forced', async () => {
    const dead = await start('gone');
    assert.ok((await dead.send({ op: 'acquire', names: ['app_backup_n'], limit: 3 })).ok);
    const live = await other.acquire('app_backup_n', { limit: 3 });
    await dead.kill();
    const before = (await rawRow(db.pool))!.raw;
    await assert.rejects(locks.releaseName('app_backup_n'), (err: LockError & { holders: Array<{ owner: { taskId?: string }; liveness?: string }> }) => {
      assert.equal(err.code, 'ELOCKED');
      assert.deepEqual(err.holders.map((h) => [h.owner.taskId, h.liveness]), [['other', 'alive']], 'names the holders that are not dead');
      assert.match(err.message, /app_backup_n is held shared; one holder is not provably dead: .*task other.*alive: pass \{ force: true \}/);
      return true;
    });
    assert.equal((await rawRow(db.pool))!.raw, before, 'nothing changed');
    const removed = await locks.releaseName('app_backup_n', { force: true });
    assert.deepEqual([removed?.name, removed?.mode, removed?.limit], ['app_backup_n', 'shared', 3]);
    assert.deepEqual(removed?.holders?.map((h) => [h.owner.taskId, h.liveness]), [['gone', 'dead'], ['other', 'alive']]);
    assert.equal((await stored()).s, undefined);
    await assert.rejects(other.release(live), { code: 'ENOTHELD', reason: 'forced' });
    // Every holder dead: no force needed.
    const d2 = await start('gone2');
    assert.ok((await d2.send({ op: 'acquire', names: ['app_backup_n'], mode: 'shared' })).ok);
    await d2.kill();
    const reaped = await locks.releaseName('app_backup_n');
    assert.deepEqual(reaped?.holders?.map((h) => [h.owner.taskId, h.liveness]), [['gone2', 'dead']]);
  });

  it('a SIGKILLed shared holder is cleaned up: reapDead removes only its entry; a full semaphore takes over its place', async () => {
    const mine = await locks.acquire('app_backup_s', { limit: 2 });
    const victim = await start('victim');
    const got = await victim.send({ op: 'acquire', names: ['app_backup_s'], limit: 2 });
    assert.ok(got.ok);
    await victim.kill();
    // Full, but one holder is dead: the next acquisition takes over its place.
    const next = await other.acquire('app_backup_s', { limit: 2 });
    const doc = await stored();
    assert.deepEqual(doc.s?.app_backup_s?.h.map((h) => h.n), [mine.nonce, next.nonce]);
    assert.equal(doc.r?.at(-1)?.n, got.nonce);
    assert.equal(doc.r?.at(-1)?.w, 'reaped');
    await other.release(next);
    // reapDead removes a dead shared holder and leaves the live one.
    const victim2 = await start('victim2');
    const got2 = await victim2.send({ op: 'acquire', names: ['app_backup_s'], limit: 2 });
    assert.ok(got2.ok);
    await victim2.kill();
    const reaped = await locks.reapDead();
    assert.deepEqual(reaped.map((h) => [h.name, h.owner.taskId]), [['app_backup_s', 'victim2']]);
    assert.deepEqual((await stored()).s?.app_backup_s?.h.map((h) => h.n), [mine.nonce]);
    // releaseByOwner takes a shared holder's entry too.
    await other.acquire('app_backup_s', { limit: 2 });
    assert.deepEqual((await locks.releaseByOwner({ taskId: 'other' })).map((h) => h.name), ['app_backup_s']);
    await locks.release(mine);
    assert.equal((await stored()).s, undefined);
  });
});
