// Faults of the server itself, on a private server of the kind under test
// started for this suite
// (the shared server is never stopped): a restart and a crash while holders
// and waiters are active, too many connections, read-only, lock wait timeout.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { isAmbiguous, isTransient } from '../../lib/faults.js';
import { createLockTable, migrate, type Lease, type LockTable } from '../../lib/index.js';
import { isMariaDb, until } from '../helpers/db.js';
import { startPrivateServer, type PrivateServer } from '../helpers/private-server.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { Worker } from '../helpers/workers.js';

const DB = 'lt_server_faults';

describe('server faults (a private server)', function () {
  this.timeout(120_000);
  let server: PrivateServer;
  let root: mysql.Pool;
  const tables: LockTable[] = [];
  const table = (url: string, taskId: string, extra: object = {}) => {
    const t = createLockTable({ db: url, owner: { taskId }, ...extra });
    tables.push(t);
    return t;
  };
  const status = async (sql: string): Promise<number> => {
    const [rows] = await root.query(sql);
    return Number(Object.values((rows as Array<Record<string, unknown>>)[0]!).pop());
  };

  before(async () => {
    server = await startPrivateServer({ databases: [DB] });
    root = mysql.createPool({ uri: server.url(DB), connectionLimit: 2 });
    await migrate(server.url(DB));
    // An ordinary user: read_only and max_connections do not apply to root.
    await root.query("CREATE USER lt@'%'");
    await root.query(`GRANT ALL ON \`${DB}\`.* TO lt@'%'`);
  });
  afterEach(async () => {
    await Promise.all(tables.splice(0).map((t) => t.close()));
    if (!server.running) await server.start();
    await root.query('SET GLOBAL read_only = 0, GLOBAL max_connections = 151');
    await root.query(`UPDATE locks SET dataJson = '{"v":1,"l":{}}' WHERE id = 'platform'`);
  });
  after(async () => {
    await root?.end();
    await server?.remove();
  });

  it("a starting server deletes every '#sql*' file in its tmpdir, so a private server has a tmpdir of its own (pinned)", async () => {
    const [rows] = await root.query('SELECT @@tmpdir AS tmpdir');
    const tmpdir = String((rows as Array<{ tmpdir: string }>)[0]!.tmpdir);
    assert.equal(path.resolve(tmpdir), path.resolve(server.dir), 'the private server must not share /tmp with the servers already running there');
    // What a shared tmpdir would cost: another server's temporary table, gone at our start.
    const stranger = path.join(tmpdir, '#sql-temptable-0-0-0.MAD');
    writeFileSync(stranger, '');
    await server.restart('graceful');
    assert.equal(existsSync(stranger), false, 'the server removed the #sql file at start-up');
  });

  it('what a shutdown and a restart look like to mysql2 (pinned: lib/faults.ts classifies these)', async () => {
    const victim = await mysql.createConnection({ uri: server.url(DB) });
    const mariadb = await isMariaDb(root);
    // A statement that reads a table while it runs, as locktable's statements do.
    const running = victim.query('SELECT id FROM locks WHERE SLEEP(10)').then(() => assert.fail('expected an error'), (err: Error & { code?: string; errno?: number }) => err);
    await until('the statement to run', async () => (await status("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT id FROM locks WHERE SLEEP%'")) === 1);
    await server.stop('graceful');
    const inFlight = await running;
    // MariaDB closes the connection under the statement; Oracle MySQL first
    // answers it with ER_SERVER_SHUTDOWN (1053), then closes.
    if (mariadb) assert.equal(inFlight.code, 'PROTOCOL_CONNECTION_LOST');
    else assert.equal(inFlight.errno, 1053);
    assert.equal(isTransient(inFlight) && isAmbiguous(inFlight), true, 'a statement in flight may have been applied');
    const refused = await mysql.createConnection({ uri: server.url(DB) }).then(() => assert.fail('connected to a stopped server'), (err: Error & { code?: string; syscall?: string }) => err);
    assert.deepEqual([refused.code, refused.syscall], ['ECONNREFUSED', 'connect']);
    assert.equal(isTransient(refused), true);
    assert.equal(isAmbiguous(refused), false, 'nothing was sent');
    victim.destroy();
    await server.start();
    await root.query('SET GLOBAL read_only = 1');
    const lt = await mysql.createConnection({ uri: server.url(DB).replace('root@', 'lt@') });
    const readOnly = await lt.query("UPDATE locks SET version = version WHERE id = 'platform'").then(() => assert.fail('wrote on a read-only server'), (err: Error & { errno?: number }) => err);
    assert.equal(readOnly.errno, 1290);
    assert.equal(isTransient(readOnly) && !isAmbiguous(readOnly), true);
    await lt.end();
  });

  for (const how of ['graceful', 'crash'] as const) {
    it(`a ${how} restart while holders and waiters are active: locks are still held, waiters carry on, work queued meanwhile completes`, async () => {
      const url = server.url(DB);
      const worker = await Worker.start({ url, taskId: 'holder' });
      try {
        const held = await worker.send({ op: 'acquire', names: ['box_update_task'] });
        assert.ok(held.ok, JSON.stringify(held));
        const b = table(url, 'b');
        const mine = await b.acquire('mail_restart');
        const a = table(url, 'a');
        const selects = await status("SHOW GLOBAL STATUS LIKE 'Com_select'");
        let settled = false;
        const waiting = a.wait(['box_update_task'], { timeoutMs: 20_000 }).finally(() => (settled = true));
        await until('the waiter to be polling', async () => (await status("SHOW GLOBAL STATUS LIKE 'Com_select'")) > selects + 4);

        await server.stop(how);
        const during = b.acquire('app_task_during'); // issued while the server is down
        await server.start();

        const queued = await during;
        const list = await b.list();
        assert.deepEqual(
          list.map((l) => [l.name, l.token, l.owner.pid]),
          [
            ['app_task_during', queued.token, process.pid],
            ['box_update_task', held.token, worker.pid],
            ['mail_restart', mine.token, process.pid],
          ],
          'every lock held before the restart is still there',
        );
        assert.equal(settled, false, 'the waiter is still waiting: the holder is alive');
        const released = await worker.send({ op: 'release' });
        assert.ok(released.ok, JSON.stringify(released));
        const lease: Lease = await waiting;
        assert.ok(lease.token > held.token!);
        await a.release(lease);
        await b.release(mine);
        await b.release(queued);
        assert.deepEqual(await b.list(), []);
      } finally {
        await worker.stop();
      }
    });
  }

  it('too many connections (1040): retried until a connection frees up', async () => {
    const proxy = await startProxy({ port: server.port });
    const hogs: mysql.Connection[] = [];
    try {
      await root.query('SET GLOBAL max_connections = 10'); // MariaDB's minimum
      for (;;) {
        const c = await mysql.createConnection({ uri: server.url(DB).replace('root@', 'lt@') }).catch((err: { errno?: number }) => {
          assert.equal(err.errno, 1040, String(err));
          return undefined;
        });
        if (!c) break;
        hogs.push(c);
      }
      const t = table(proxy.url(DB, 'lt'), 'crowded');
      const before = proxy.connections;
      const acquiring = t.acquire('box_update');
      await until('the library to have been refused twice', () => proxy.connections >= before + 2);
      await hogs.pop()!.end();
      const lease = await acquiring;
      await t.release(lease);
    } finally {
      await Promise.all(hogs.map((c) => c.end()));
      await proxy.close();
    }
  });

  it('read-only (1290), as during a failover: retried until the server is writable again', async () => {
    const proxy = await startProxy({ port: server.port });
    try {
      const t = table(proxy.url(DB, 'lt'), 'failover');
      await t.list();
      await root.query('SET GLOBAL read_only = 1');
      const acquiring = t.acquire('box_update');
      await until('two refused writes', () => proxy.statements.filter((s) => s.startsWith('UPDATE `locks`')).length >= 2);
      await root.query('SET GLOBAL read_only = 0');
      const lease = await acquiring;
      assert.deepEqual((await t.list()).map((l) => [l.name, l.token]), [['box_update', lease.token]]);
      await t.release(lease);
    } finally {
      await proxy.close();
    }
  });

  it('lock wait timeout (1205): the rolled-back write is retried and applied once', async () => {
    const pool = mysql.createPool({ uri: server.url(DB).replace('root@', 'lt@'), connectionLimit: 2 });
    pool.on('connection', (c) => void c.query('SET SESSION innodb_lock_wait_timeout = 1'));
    const blocker = await mysql.createConnection({ uri: server.url(DB) });
    try {
      const t = createLockTable({ db: pool, owner: { taskId: 'patient' } });
      tables.push(t);
      const timeouts = () => status("SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_timeouts'");
      const before = await timeouts();
      await blocker.query('BEGIN');
      await blocker.query("SELECT version FROM locks WHERE id = 'platform' FOR UPDATE");
      const acquiring = t.acquire('box_update');
      await until('the write to time out on the row lock', async () => (await timeouts()) > before, 30_000);
      await blocker.query('COMMIT');
      const lease = await acquiring;
      assert.deepEqual((await t.list()).map((l) => [l.name, l.token, l.owner.taskId]), [['box_update', lease.token, 'patient']]);
      await t.release(lease);
    } finally {
      await blocker.end();
      await pool.end();
    }
  });
});
