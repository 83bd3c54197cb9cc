// Long work under a lock: leases that renew themselves, tell the work when
// they are lost, and never leak.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mysql from 'mysql2/promise';
import { createLockTable, NotHeldError, type Lease, type LockError, type LockTable } from '../../lib/index.js';
import { createTestDb, rawRow, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

const LONG_WORKER = path.join(__dirname, '..', 'fixtures', 'long-worker.js');

describe('long tasks', () => {
  let db: TestDb;
  let locks: LockTable;
  let other: LockTable;
  const tables: LockTable[] = [];
  const workers: Worker[] = [];

  /** The stored entry of a name: its nonce and expiry (database ms). */
  const entry = async (name: string) => {
    const row = await rawRow(db.pool);
    const doc = JSON.parse(row!.raw) as { l: Record<string, { n: string; e?: number }> };
    return doc.l[name];
  };
  /** Statements of this suite's database waiting for a row lock. */
  const lockWaits = async () => {
    const [rows] = await db.pool.query(
      "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = ?",
      [db.name],
    );
    return Number((rows as Array<{ n: number }>)[0]!.n);
  };
  const dbNow = async () => Number(((await db.pool.query('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS now'))[0] as Array<{ now: number }>)[0]!.now);

  before(async () => {
    db = await createTestDb('long_tasks');
    locks = createLockTable({ db: db.pool, owner: { taskId: 'worker' } });
    other = createLockTable({ db: db.pool, owner: { taskId: 'other' } });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await Promise.all(tables.splice(0).map((t) => t.close()));
    await other.releaseAll();
  });
  after(async () => {
    await locks.close();
    await other.close();
    await db.drop();
  });

  describe('every lease object of one acquisition is the same lease', () => {
    it('releasing the lease acquire() returned, after extend(), frees the lock', async () => {
      const lease = await locks.acquire('app_task_blog', { ttlMs: 30_000 });
      await locks.extend(lease, 60_000);
      await locks.release(lease);
      const taken = await other.tryAcquire('app_task_blog');
      assert.ok(taken, 'another table can take it: it was released');
      await other.release(taken);
    });

    it('the lease extend() returned and the original are released once between them', async () => {
      const lease = await locks.acquire('app_task_twice', { ttlMs: 30_000 });
      const renewed = await locks.extend(lease, 60_000);
      await locks.release(renewed);
      await locks.release(lease); // the same lease: a no-op, not ENOTHELD
      assert.equal(await entry('app_task_twice'), undefined);
    });

    it('using() whose work clears the expiry through extend(lease, null) still releases', async () => {
      await locks.using(['app_task_wiki'], async (l) => {
        await locks.extend(l, null);
      }, { ttlMs: 30_000 });
      assert.equal(await entry('app_task_wiki'), undefined, 'not held once using() returned');
    });

    it('a lease rebuilt from JSON in another table releases the lock, and says nothing false', async () => {
      const lease = await locks.acquire('app_task_json', { ttlMs: 30_000 });
      const copy = JSON.parse(JSON.stringify(lease)) as Lease;
      const elsewhere = createLockTable({ db: db.pool, owner: { taskId: 'task' } });
      tables.push(elsewhere);
      await elsewhere.release(copy); // the plain object
      assert.equal(await entry('app_task_json'), undefined);
      // The original, in the table that acquired it: gone, and it says so.
      await assert.rejects(locks.release(lease), { code: 'ENOTHELD', reason: 'released' });
    });

    it('a lease carried as JSON to another process is released there', async () => {
      const lease = await locks.acquire('app_task_proc');
      const w = await Worker.start({ url: db.url, taskId: 'json-task' });
      workers.push(w);
      const reply = await w.send({ op: 'release-json', lease: JSON.stringify(lease) });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.equal(await entry('app_task_proc'), undefined);
    });

    it('lease() validates: anything but a lease of this space is EINVALIDOPTION', async () => {
      const lease = await locks.acquire('app_task_valid');
      const json = JSON.stringify(lease);
      assert.equal(locks.lease(json).nonce, lease.nonce);
      const bad: unknown[] = [
        '{',
        { ...JSON.parse(json), token: 'x' },
        { ...JSON.parse(json), acquiredAt: 'yesterday' },
        { ...JSON.parse(json), extra: 1 },
        { ...JSON.parse(json), space: 'elsewhere' },
        null,
        42,
      ];
      for (const value of bad) {
        assert.throws(() => locks.lease(value), { code: 'EINVALIDOPTION' }, JSON.stringify(value));
        await assert.rejects(locks.release(value as Lease), { code: 'EINVALIDOPTION' }, JSON.stringify(value));
      }
      assert.ok(await entry('app_task_valid'), 'nothing was released by a bad lease');
      await locks.release(locks.lease(json));
      assert.equal(await entry('app_task_valid'), undefined);
    });
  });

  describe('a lease narrowed to some of its names', () => {
    it('released on its own, leaves the rest of its acquisition this table\'s: renewed, found by its JSON, released once', async () => {
      const lease = await locks.acquire(['app_task_n1', 'app_task_n2'], { ttlMs: 30_000 });
      const kept = locks.keepAlive(lease, { periodMs: 20 });
      const narrowed = { ...lease, names: ['app_task_n1'] };
      await locks.release(narrowed);
      assert.equal(await entry('app_task_n1'), undefined);
      const e = (await entry('app_task_n2'))!.e!;
      await until('a renewal of the rest (or the lease lost)', async () => kept.signal.aborted || (await entry('app_task_n2'))!.e! > e);
      assert.equal(kept.signal.aborted, false, String(kept.signal.reason));
      await locks.release(narrowed); // released: a no-op, not ENOTHELD
      assert.throws(() => locks.keepAlive({ ...lease, names: ['app_task_n2', 'app_task_n3'] }), { code: 'EINVALIDOPTION', message: /acquisition's own lease/ });
      // Still this table's acquisition: its JSON finds it (a stranger's lease would have to say its ttlMs), and the same renewal.
      assert.equal(locks.keepAlive(locks.lease(JSON.stringify(lease))).signal, kept.signal);
      await locks.release(lease);
      assert.equal(await entry('app_task_n2'), undefined);
      assert.equal(kept.signal.aborted, false, 'a release is not a loss');
    });
  });

  describe('keepAlive() of a lease from elsewhere', () => {
    it('needs its ttlMs, then renews it; close() stops the renewal, leaves the lock held, and the signal aborts when it runs out', async () => {
      const lease = await locks.acquire('app_task_foreign', { ttlMs: 900 });
      const elsewhere = createLockTable({ db: db.pool, owner: { taskId: 'task' } });
      tables.push(elsewhere);
      const copy = elsewhere.lease(JSON.stringify(lease));
      assert.throws(() => elsewhere.keepAlive(copy), { code: 'EINVALIDOPTION', message: /pass \{ ttlMs \}/ });
      const kept = elsewhere.keepAlive(copy, { ttlMs: 900 });
      const first = lease.expiresAt!.getTime();
      await until('the lease to outlive its first expiry', async () => (await dbNow()) > first + 300 && (await entry('app_task_foreign'))?.n === lease.nonce);
      assert.equal(kept.signal.aborted, false);
      await elsewhere.close();
      const last = (await entry('app_task_foreign'))!.e!;
      await until('its last expiry to pass', async () => (await dbNow()) > last + 400);
      assert.equal((await entry('app_task_foreign'))?.e, last, 'no renewal after close()');
      assert.equal(kept.signal.aborted, true, 'the lease ran out: the work is told');
      assert.equal((kept.signal.reason as NotHeldError).reason, 'expired');
      await locks.release(lease);
      assert.equal(await entry('app_task_foreign'), undefined);
    });
  });

  describe('using()', () => {
    it('keeps the work\'s error primary when an operator force-released the lock meanwhile', async () => {
      const work = new Error('backup failed: disk full');
      await assert.rejects(
        locks.using(['app_task_disk'], async () => {
          await other.releaseName('app_task_disk', { force: true });
          throw work;
        }),
        (err: unknown) => {
          assert.equal(err, work, 'the work\'s own error');
          const releaseError = (err as { releaseError?: unknown }).releaseError;
          assert.ok(releaseError instanceof NotHeldError, 'the release failure is attached');
          assert.equal(releaseError.reason, 'forced');
          return true;
        },
      );
    });

    it('a work that throws a primitive, and a failed release: both come as an AggregateError', async () => {
      await assert.rejects(
        locks.using(['app_task_prim'], async () => {
          await other.releaseName('app_task_prim', { force: true });
          throw 'plain string'; // eslint-disable-line no-throw-literal
        }),
        (err: unknown) => {
          assert.ok(err instanceof AggregateError);
          assert.equal(err.errors[0], 'plain string');
          assert.equal((err.errors[1] as LockError).code, 'ENOTHELD');
          return true;
        },
      );
    });

    it('without a function is refused before anything is acquired', async () => {
      const before = await rawRow(db.pool);
      await assert.rejects((locks.using as (n: string) => Promise<unknown>)('app_task_nofn'), { code: 'EINVALIDOPTION', message: /the work is a function/ });
      await assert.rejects(locks.using('app_task_nofn', 'run' as never), { code: 'EINVALIDOPTION' });
      assert.deepEqual(await rawRow(db.pool), before, 'nothing written');
    });

    it('renews a lease of the table\'s default ttlMs while the work runs, then releases', async () => {
      const t = createLockTable({ db: db.pool, ttlMs: 600 });
      tables.push(t);
      let seen: number[] = [];
      await t.using('app_task_default', async (lease, signal) => {
        assert.ok(lease.expiresAt, 'the table\'s ttlMs applies');
        const first = (await entry('app_task_default'))!.e!;
        seen = [first];
        // Past two lease lengths: only renewals keep it.
        await until('two renewals', async () => {
          const e = (await entry('app_task_default'))?.e;
          if (e !== undefined && e !== seen[seen.length - 1]) seen.push(e);
          return seen.length >= 3 && (await dbNow()) > first + 600;
        });
        assert.equal(signal.aborted, false);
        assert.equal((await entry('app_task_default'))!.n, lease.nonce, 'still ours');
      });
      assert.ok(seen.every((e, i) => i === 0 || e > seen[i - 1]!), `expiry moved forward: ${seen}`);
      assert.equal(await entry('app_task_default'), undefined);
    });

    it('leases support await using where the runtime has Symbol.asyncDispose', async function () {
      const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose;
      const lease = await locks.acquire('app_task_dispose');
      if (!dispose) {
        // Node 20 has no Symbol.asyncDispose: nothing to attach it to; the lease is as before.
        assert.deepEqual(Object.getOwnPropertySymbols(lease), []);
        await locks.release(lease);
        this.skip();
      }
      await (lease as unknown as Record<symbol, () => Promise<void>>)[dispose]!();
      assert.equal(await entry('app_task_dispose'), undefined);
    });
  });

  describe('the signal', () => {
    it('aborts within one renewal period of a forced release, with a NotHeldError, and a lost event', async () => {
      const ttlMs = 3_000;
      const periodMs = ttlMs / 3;
      const lost: unknown[] = [];
      const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
      const onLost = (m: unknown) => lost.push(m);
      subscribe('locktable:lost', onLost);
      try {
        let forcedAt = 0;
        let abortedAt = 0;
        let reason: unknown;
        await assert.rejects(
          locks.using('app_task_forced', async (lease, signal) => {
            signal.addEventListener('abort', () => {
              abortedAt = performance.now();
              reason = signal.reason;
            });
            await other.releaseName('app_task_forced', { force: true });
            forcedAt = performance.now();
            await until('the signal to abort', () => signal.aborted, 10_000);
          }, { ttlMs }),
          { code: 'ENOTHELD', reason: 'forced' },
          'the release after it says why too',
        );
        assert.ok(reason instanceof NotHeldError && reason.reason === 'forced', String(reason));
        assert.ok(abortedAt - forcedAt <= periodMs + 300, `aborted ${Math.round(abortedAt - forcedAt)} ms after the forced release (period ${periodMs} ms)`);
        assert.deepEqual(lost.map((e) => [(e as { op: string }).op, (e as { reason: string }).reason]), [['keepAlive', 'forced']], 'one lost event, at the renewal');
      } finally {
        unsubscribe('locktable:lost', onLost);
      }
    });

    it('keepAlive() renews a lease for code that does not use using(), and stops at release', async () => {
      const lease = await locks.acquire('app_task_kept', { ttlMs: 500 });
      const kept = locks.keepAlive(lease);
      assert.equal(locks.keepAlive(lease).signal, kept.signal, 'one renewal per acquisition');
      const first = lease.expiresAt!.getTime();
      await until('the lease to outlive its first expiry', async () => (await dbNow()) > first + 200 && (await entry('app_task_kept'))?.n === lease.nonce);
      assert.equal(kept.signal.aborted, false);
      await locks.release(lease);
      assert.equal(await entry('app_task_kept'), undefined);
      assert.equal(kept.signal.aborted, false, 'a release is not a loss');
      assert.throws(() => locks.keepAlive(lease), { code: 'ENOTHELD' });
      assert.throws(() => locks.keepAlive(lease, { ttlMs: 0 }), { code: 'EINVALIDOPTION' });
    });

    it('keepAlive() after stop() starts renewing again', async () => {
      const lease = await locks.acquire('app_task_restart', { ttlMs: 600 });
      await locks.keepAlive(lease).stop();
      const kept = locks.keepAlive(lease);
      const first = lease.expiresAt!.getTime();
      await until('a renewal past the first expiry', async () => (await dbNow()) > first + 300 && (await entry('app_task_restart'))!.e! > first);
      assert.equal(kept.signal.aborted, false);
      await locks.release(lease);
      assert.equal(await entry('app_task_restart'), undefined);
    });

    it('using() work still running when close() is called: its signal aborts with ECLOSED, and close() waits for it to return and release', async () => {
      const t = createLockTable({ db: db.pool, owner: { taskId: 'closing' } });
      tables.push(t);
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      let closeReturned!: () => void;
      const returned = new Promise<void>((resolve) => (closeReturned = resolve));
      const order: string[] = [];
      let reason: unknown;
      // No ttlMs: nothing would ever free this lock but a release.
      const work = t.using('app_task_closing', async (_lease, signal) => {
        started();
        // Until told to stop; or, were it never told, until close() has returned.
        await Promise.race([new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })), returned]);
        reason = signal.reason;
        order.push('work returned');
        return 'done';
      });
      await running;
      await t.close().then(() => order.push('close() returned'));
      closeReturned();
      assert.equal(await work, 'done', 'using() released: it did not fail with ECLOSED');
      assert.deepEqual(order, ['work returned', 'close() returned']);
      assert.equal((reason as LockError).code, 'ECLOSED');
      assert.equal(await entry('app_task_closing'), undefined, 'released');
      await assert.rejects(t.using('app_task_closing', () => 1), { code: 'ECLOSED' });
    });

    it('using() work that does not stop within close()\'s timeoutMs: close() returns, and the unrenewed lease runs out', async () => {
      const t = createLockTable({ db: db.pool, owner: { taskId: 'closing' } });
      let finish!: () => void;
      let signal!: AbortSignal;
      let outcome: unknown;
      const started = new Promise<void>((resolve) => {
        t.using('app_task_closing_late', async (_lease, s) => {
          signal = s;
          resolve();
          await new Promise<void>((r) => (finish = r));
        }, { ttlMs: 600 }).then(
          () => (outcome = 'released'),
          (err: LockError) => (outcome = err.code),
        );
      });
      await started;
      await assert.rejects(t.close({ timeoutMs: -1 }), { code: 'EINVALIDOPTION' });
      await t.close({ timeoutMs: 0 });
      assert.equal(signal.aborted, true, 'told to stop');
      assert.equal((signal.reason as LockError).code, 'ECLOSED');
      let taken: Lease | null = null;
      await until('another table to take the lock over', async () => (taken = await other.tryAcquire('app_task_closing_late')) !== null);
      finish();
      await until('using() to end', () => outcome !== undefined);
      assert.equal(outcome, 'ECLOSED', 'it could not release: the table was closed');
      await other.release(taken!);
    });

    it('extend() called while a renewal is due: the last called is the last written, and later renewals keep its length', async () => {
      const lease = await locks.acquire('app_task_extend_race', { ttlMs: 30_000 });
      const blocker = await db.pool.getConnection();
      let kept: { stop(): Promise<void> } | undefined;
      try {
        // Holds the row: extend()'s write waits for it.
        await blocker.query('START TRANSACTION');
        await blocker.query("SELECT version FROM locks WHERE id = 'platform' FOR UPDATE");
        const extended = locks.extend(lease, 600_000);
        await until('extend() to wait for the row', async () => (await lockWaits()) >= 1);
        // Renewals every millisecond; the first is due before the timer below (Node runs timers in the order they are due).
        kept = locks.keepAlive(lease, { periodMs: 1 });
        await new Promise((resolve) => setTimeout(resolve, 20));
        await blocker.query('COMMIT');
        await extended;
        const after = (await rawRow(db.pool))!.version;
        await until('a renewal after extend()', async () => (await rawRow(db.pool))!.version > after);
        await kept.stop();
        const left = (await entry('app_task_extend_race'))!.e! - (await dbNow());
        assert.ok(left > 300_000, `the lease runs for the length extend() set, not the older one a renewal had started with (${left} ms left)`);
      } finally {
        await blocker.query('ROLLBACK').catch(() => {});
        blocker.release();
        await kept?.stop();
        await locks.release(lease);
      }
    });

    it('extend() to a shorter ttlMs while kept alive renews at a third of the new length', async () => {
      const lease = await locks.acquire('app_task_shorter', { ttlMs: 60_000 });
      const kept = locks.keepAlive(lease);
      const short = (await locks.extend(lease, 900)).expiresAt!.getTime();
      await until('a renewal past the shorter expiry', async () => (await dbNow()) > short + 600 && (await entry('app_task_shorter'))!.e! > short);
      assert.equal(kept.signal.aborted, false, String(kept.signal.reason));
      const e = (await entry('app_task_shorter'))!.e!;
      assert.ok(e - (await dbNow()) <= 900, 'renewals set the new length');
      await locks.release(lease);
    });

    it('renewals and extend() never resurrect a lease another owner has taken', async () => {
      const lease = await locks.acquire('app_task_resurrect', { ttlMs: 10_000 });
      const kept = locks.keepAlive(lease, { ttlMs: 10_000, periodMs: 200 });
      // Backdate its expiry in SQL, so that another acquirer takes it over before the next renewal.
      const stored = (await entry('app_task_resurrect'))!;
      assert.equal(stored.n, lease.nonce);
      const past = (await dbNow()) - 1_000;
      await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.app_task_resurrect.e', ?), version = version + 1 WHERE id = 'platform'`, [past]);
      const theirs = await other.acquire('app_task_resurrect');
      await until('the renewal to find it lost', () => kept.signal.aborted);
      assert.equal((kept.signal.reason as NotHeldError).reason, 'expired');
      await assert.rejects(locks.extend(lease, 60_000), { code: 'ENOTHELD' });
      assert.equal((await entry('app_task_resurrect'))!.n, theirs.nonce, 'still theirs');
      await assert.rejects(locks.release(lease), { code: 'ENOTHELD', reason: 'expired' });
      assert.equal((await entry('app_task_resurrect'))!.n, theirs.nonce, 'still theirs after our release');
      // extend() alone, without a renewal running, refuses the same way.
      const mine = await locks.acquire('app_task_resurrect2', { ttlMs: 10_000 });
      await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.l.app_task_resurrect2.e', ?), version = version + 1 WHERE id = 'platform'`, [past]);
      const theirs2 = await other.acquire('app_task_resurrect2');
      await assert.rejects(locks.extend(mine, 60_000), { code: 'ENOTHELD', reason: 'expired' });
      assert.equal((await entry('app_task_resurrect2'))!.n, theirs2.nonce);
    });

    it('a worker SIGSTOPped past its ttlMs finds its signal aborted when it resumes, and its release says why', async function () {
      this.timeout(30_000);
      const ttlMs = 2_000;
      const child = spawn(process.execPath, [LONG_WORKER, JSON.stringify({ url: db.url, name: 'app_task_stopped', ttlMs, workMs: 20_000 })], { stdio: ['ignore', 'pipe', 'inherit'] });
      const said: Array<Record<string, unknown>> = [];
      createInterface({ input: child.stdout! }).on('line', (l) => said.push(JSON.parse(l)));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await until('the worker to hold the lock', () => said.some((m) => m.k === 'working'));
        child.kill('SIGSTOP');
        // Stopped past its lease: someone else takes the name over meanwhile.
        const theirs = await until('the lease to expire and be taken over', () => other.tryAcquire('app_task_stopped'), 10_000);
        child.kill('SIGCONT');
        await until('the worker to report', () => said.some((m) => m.k === 'using-error' || m.k === 'released'), 10_000);
        const stopped = said.find((m) => m.k === 'stopped');
        assert.ok(stopped, JSON.stringify(said));
        assert.equal(stopped.code, 'ENOTHELD');
        assert.equal(stopped.reason, 'expired');
        assert.ok((stopped.gap as number) > ttlMs / 2, `it was stopped until its lease ran out: ${JSON.stringify(stopped)}`);
        assert.equal(stopped.stepsAfterGap, 0, 'no step of work after it resumed ran without the signal aborted');
        const outcome = said.find((m) => m.k === 'using-error');
        assert.deepEqual([outcome?.code, outcome?.reason], ['ENOTHELD', 'expired'], JSON.stringify(said));
        assert.equal((await entry('app_task_stopped'))!.n, theirs!.nonce, 'the new holder keeps it');
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
    });
  });

  describe('wait() on a name its own using() work holds', () => {
    it('fails at once with EDEADLK naming the lease, instead of waiting for itself until its timeout', async () => {
      let token = 0;
      const started = performance.now();
      await assert.rejects(
        locks.using('app_task_self', async (lease) => {
          token = lease.token;
          await locks.wait('app_task_self', { timeoutMs: 30_000 });
        }),
        (err: unknown) => {
          assert.equal((err as LockError).code, 'EDEADLK');
          assert.equal((err as { holders: Array<{ token: number }> }).holders[0]!.token, token);
          assert.match((err as Error).message, /app_task_self .*token/);
          return true;
        },
      );
      assert.ok(performance.now() - started < 10_000);
      assert.equal(await entry('app_task_self'), undefined, 'released all the same');
      // Nested, and with several names: the outer work's lease is in the way.
      await assert.rejects(
        locks.using(['app_task_outer'], () => locks.using(['app_task_inner', 'app_task_outer'], () => 1, { wait: true, timeoutMs: 30_000 })),
        { code: 'EDEADLK' },
      );
      assert.equal(await entry('app_task_outer'), undefined);
    });

    it('another task of the same process holding the name is waited for, as before', async () => {
      const lease = await locks.acquire('app_task_queue');
      const waiting = locks.wait('app_task_queue', { timeoutMs: 10_000 });
      await until('the waiter to be blocked', () => locks.metrics().counters.contended > 0);
      await locks.release(lease);
      const next = await waiting;
      assert.notEqual(next.nonce, lease.nonce);
      await locks.release(next);
    });
  });

  describe('renewal through killed connections', () => {
    it('renews on a new connection when the server closed the idle ones (wait_timeout shorter than the renewal period)', async function () {
      this.timeout(60_000);
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 2 });
      let opened = 0;
      pool.pool.on('connection', (c: { query(sql: string): void }) => {
        opened++;
        c.query('SET SESSION wait_timeout = 1'); // this session only: the server closes it after 1 s idle
      });
      const t = createLockTable({ db: pool, owner: { taskId: 'idle' } });
      try {
        const ttlMs = 4_500; // renewals every 1.5 s: each finds its connection closed by the server
        await t.using('app_task_idle', async (lease, signal) => {
          const end = performance.now() + 7_000;
          while (performance.now() < end) {
            assert.equal((await entry('app_task_idle'))?.n, lease.nonce, 'held by this lease throughout');
            assert.equal(signal.aborted, false, `no abort: ${String(signal.reason)}`);
            await new Promise((r) => setTimeout(r, 250));
          }
        }, { ttlMs });
        assert.equal(await entry('app_task_idle'), undefined, 'released at the end');
        assert.ok(opened >= 4, `the server closed idle connections and renewals opened new ones (${opened} opened)`);
      } finally {
        await t.close();
        await pool.end();
      }
    });


    it('keeps a 2 s lease alive through 20 s of work while every connection of its pool is killed every second', async function () {
      this.timeout(60_000);
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 4 });
      const threads = new Set<number>();
      pool.pool.on('connection', (c: { threadId: number }) => threads.add(c.threadId));
      const t = createLockTable({ db: pool, owner: { taskId: 'survivor' } });
      const killer = await mysql.createConnection({ uri: db.url });
      let kills = 0;
      let checks = 0;
      try {
        await t.using('app_task_survive', async (lease, signal) => {
          const end = performance.now() + 20_000;
          let nextKill = performance.now();
          while (performance.now() < end) {
            if (performance.now() >= nextKill) {
              for (const id of threads) {
                await killer.query(`KILL CONNECTION ${Number(id)}`).then(() => kills++, () => {});
              }
              threads.clear();
              nextKill += 1_000;
            }
            const e = await entry('app_task_survive');
            assert.equal(e?.n, lease.nonce, 'held by this lease throughout');
            assert.ok(e!.e! > (await dbNow()), 'not expired');
            assert.equal(signal.aborted, false, `no abort: ${String(signal.reason)}`);
            checks++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }, { ttlMs: 2_000 });
        assert.equal(await entry('app_task_survive'), undefined, 'released at the end');
        assert.ok(kills >= 15, `${kills} connections killed`);
        assert.ok(checks >= 50, `${checks} checks`);
      } finally {
        await t.close();
        await killer.end();
        await pool.end();
      }
    });
  });
});
