// The README compares locktable with GET_LOCK, PostgreSQL advisory locks,
// Redis locks and file locks. Each point it makes is pinned here, on real
// servers: the other mechanism's behaviour, then locktable's.
// PostgreSQL, Redis and flock(1) are on the machines this project runs on;
// where one is missing, its tests are skipped, saying why.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mysql from 'mysql2/promise';
import { createLockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

const settledWithin = async (p: Promise<unknown>, ms: number) => {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, ms)); // proving that something does NOT happen needs a bounded wait
  return settled;
};

describe('baselines: what session locks, Redis and file locks do, and what locktable does instead', () => {
  let db: TestDb;
  before(async () => {
    db = await createTestDb('baselines');
  });
  after(async () => {
    await db.drop();
  });

  describe('MySQL GET_LOCK', () => {
    it('a RELEASE_LOCK on another pooled connection does nothing: the lock stays held', async () => {
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 2 });
      const name = `bl_${randomBytes(4).toString('hex')}`;
      try {
        const a = await pool.getConnection();
        const b = await pool.getConnection();
        const [[got]] = (await a.query('SELECT GET_LOCK(?, 0) AS r', [name])) as [Array<{ r: number }>, unknown];
        assert.equal(got!.r, 1);
        const [[released]] = (await b.query('SELECT RELEASE_LOCK(?) AS r', [name])) as [Array<{ r: number }>, unknown];
        assert.equal(released!.r, 0, 'RELEASE_LOCK from another session: 0, not released');
        const [[used]] = (await b.query('SELECT IS_USED_LOCK(?) AS holder', [name])) as [Array<{ holder: number }>, unknown];
        assert.equal(used!.holder, a.threadId, 'still held by the first connection');
        a.release();
        b.release();
      } finally {
        await pool.end();
      }
    });

    it('locktable: a lease taken through one pool is released through another', async () => {
      const one = createLockTable({ db: db.url, space: 'bl-pools' });
      const other = createLockTable({ db: db.url, space: 'bl-pools' });
      try {
        const lease = await one.acquire('box_update');
        await other.release(lease);
        assert.deepEqual(await one.list(), []);
      } finally {
        await one.close();
        await other.close();
      }
    });

    it('a killed connection drops its GET_LOCK, and the holder is not told until its next query fails', async () => {
      const holder = await mysql.createConnection({ uri: db.url });
      const admin = await mysql.createConnection({ uri: db.url });
      const name = `bl_${randomBytes(4).toString('hex')}`;
      try {
        await holder.query('SELECT GET_LOCK(?, 0)', [name]);
        await admin.query(`KILL CONNECTION ${holder.threadId}`);
        await until('the lock to be free', async () => {
          const [[row]] = (await admin.query('SELECT IS_FREE_LOCK(?) AS free', [name])) as [Array<{ free: number }>, unknown];
          return row!.free === 1;
        });
        const [[other]] = (await admin.query('SELECT GET_LOCK(?, 0) AS r', [name])) as [Array<{ r: number }>, unknown];
        assert.equal(other!.r, 1, 'someone else takes it while the first holder believes it holds it');
        await assert.rejects(holder.query('SELECT 1'));
      } finally {
        holder.destroy();
        await admin.end();
      }
    });

    it('locktable: a lock outlives the connections that took it; its holder still releases it', async () => {
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 1 });
      const table = createLockTable({ db: pool, space: 'bl-kill' });
      const observer = createLockTable({ db: db.pool, space: 'bl-kill' });
      try {
        const lease = await table.acquire('box_update');
        const [[conn]] = (await pool.query('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>, unknown];
        await db.pool.query(`KILL CONNECTION ${conn!.id}`);
        assert.deepEqual((await observer.list()).map((l) => [l.name, l.token]), [['box_update', lease.token]]);
        assert.equal(await observer.tryAcquire('box_update'), null, 'nobody else can take it');
        await table.release(lease); // the pool replaces the killed connection
        assert.deepEqual(await observer.list(), []);
      } finally {
        await table.close();
        await observer.close();
        await pool.end();
      }
    });

    it('each GET_LOCK holder keeps a pooled connection: N holders starve a pool of N', async () => {
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 2 });
      try {
        const holders = await Promise.all([pool.getConnection(), pool.getConnection()]);
        await Promise.all(holders.map((c, i) => c.query('SELECT GET_LOCK(?, 0)', [`bl_starve_${i}_${randomBytes(3).toString('hex')}`])));
        const query = pool.query('SELECT 1');
        assert.equal(await settledWithin(query, 300), false, 'the next query waits for a connection');
        holders[0]!.release(); // only a holder giving its lock's connection back unblocks it
        await query;
        holders[1]!.release();
      } finally {
        await pool.end();
      }
    });

    it('locktable: one pooled connection serves any number of held locks', async () => {
      const pool = mysql.createPool({ uri: db.url, connectionLimit: 1 });
      const table = createLockTable({ db: pool, space: 'bl-starve' });
      try {
        const leases = [];
        for (let i = 0; i < 10; i++) leases.push(await table.acquire(`app_task_${i}`));
        await pool.query('SELECT 1');
        assert.equal((await table.list()).length, 10);
        for (const l of leases) await table.release(l);
      } finally {
        await table.close();
        await pool.end();
      }
    });
  });

  describe('PostgreSQL advisory locks (psql)', () => {
    const psqlArgs = ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'];
    const psql = (sql: string) => execFileSync('psql', [...psqlArgs, '-c', sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    let session: ChildProcess | undefined;

    before(function () {
      const probe = spawnSync('psql', [...psqlArgs, '-c', 'SELECT 1'], { encoding: 'utf8' });
      if (probe.status !== 0) {
        console.log(`      (skipped: no PostgreSQL at 127.0.0.1:5432 as postgres: ${(probe.error?.message ?? probe.stderr).trim()})`);
        this.skip();
      }
    });
    afterEach(() => {
      session?.kill('SIGKILL');
    });

    /** An interactive psql: one session holding its connection, as a lock holder would. */
    async function openSession(): Promise<{ send(sql: string): Promise<string> }> {
      session = spawn('psql', psqlArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
      const lines = createInterface({ input: session.stdout! });
      const pending: Array<(line: string) => void> = [];
      lines.on('line', (line) => pending.shift()?.(line));
      return {
        send: (sql) =>
          new Promise((resolve) => {
            pending.push(resolve);
            session!.stdin!.write(`${sql}\n`);
          }),
      };
    }

    it('pg_advisory_unlock from another session does nothing; terminating the holder\'s backend drops the lock', async () => {
      const key = randomInt(1, 2 ** 31 - 1);
      const holder = await openSession();
      const pid = Number(await holder.send(`SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock(${key})) AS l;`));
      assert.ok(pid > 0);
      const count = () => Number(psql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${key}`));
      assert.equal(count(), 1);
      assert.equal(psql(`SELECT pg_advisory_unlock(${key})`), 'f', 'another session cannot unlock it');
      assert.equal(count(), 1, 'still held');
      psql(`SELECT pg_terminate_backend(${pid})`);
      await until('the advisory lock to go with its session', () => count() === 0);
    });
  });

  describe('a Redis lock (SET NX PX)', () => {
    const redis = (...args: string[]) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', '6379', ...args], { encoding: 'utf8' }).trim();
    before(function () {
      const probe = spawnSync('redis-cli', ['-h', '127.0.0.1', 'PING'], { encoding: 'utf8' });
      if (probe.stdout?.trim() !== 'PONG') {
        console.log(`      (skipped: no Redis at 127.0.0.1:6379: ${(probe.error?.message ?? probe.stderr ?? '').trim()})`);
        this.skip();
      }
    });

    it('outlives a SIGKILLed holder until its TTL runs out: nobody can tell the holder is dead', async () => {
      const key = `locktable-baseline-${randomBytes(4).toString('hex')}`;
      // The holder: a process that takes the lock over RESP and keeps working.
      const script = `
        const s = require('node:net').connect(6379, '127.0.0.1', () => s.write('*6\\r\\n$3\\r\\nSET\\r\\n$${key.length}\\r\\n${key}\\r\\n$5\\r\\nmine1\\r\\n$2\\r\\nNX\\r\\n$2\\r\\nPX\\r\\n$5\\r\\n60000\\r\\n'));
        s.on('data', (d) => process.stdout.write(String(d)));`;
      const holder = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      holder.stdout.on('data', (d) => (out += d));
      try {
        await until('the holder to take the Redis lock', () => out.includes('+OK'));
        holder.kill('SIGKILL');
        await new Promise((r) => holder.once('exit', r));
        assert.equal(redis('SET', key, 'other', 'NX', 'PX', '60000'), '', 'another acquirer is refused (nil)');
        assert.ok(Number(redis('PTTL', key)) > 50_000, 'and will be until the TTL runs out');
      } finally {
        holder.kill('SIGKILL');
        redis('DEL', key);
      }
    });

    it('locktable: a waiter gets the lock of a SIGKILLed holder at once, no TTL involved', async () => {
      const table = createLockTable({ db: db.pool, space: 'bl-redis' });
      const w = await Worker.start({ url: db.url, space: 'bl-redis', taskId: 'doomed' });
      try {
        assert.ok((await w.send({ op: 'acquire', names: ['box_update'] })).ok);
        await w.kill();
        const lease = await table.acquire('box_update'); // no ttlMs anywhere
        assert.ok(lease.token > 0);
        await table.release(lease);
      } finally {
        await w.kill();
        await table.close();
      }
    });
  });

  describe('a file lock (flock)', () => {
    let dir: string;
    before(function () {
      if (spawnSync('flock', ['--version']).status !== 0) {
        console.log('      (skipped: no flock(1))');
        this.skip();
      }
      dir = mkdtempSync(path.join(tmpdir(), 'locktable-flock-'));
    });
    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const held = (file: string) => spawnSync('flock', ['-n', file, 'true']).status !== 0;

    it('is released by the kernel only when every process holding the descriptor is gone, children included', async () => {
      const file = path.join(dir, 'lock');
      // flock(1) takes the lock and runs sleep, which inherits the descriptor.
      // Blocking, not -n: the probe below holds the lock for an instant, and a
      // holder started under load at that instant would give up for good.
      const holder = spawn('flock', [file, 'sleep', '60'], { stdio: 'ignore', detached: true });
      try {
        await until('the file lock to be taken', () => held(file));
        holder.kill('SIGKILL'); // the process that took it dies…
        await new Promise((r) => holder.once('exit', r));
        assert.equal(held(file), true, '…but its child still holds the lock');
        process.kill(-holder.pid!, 'SIGKILL'); // the whole process group
        await until('the file lock to be free', () => !held(file));
      } finally {
        try {
          process.kill(-holder.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  });
});
