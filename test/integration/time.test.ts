// Database time is exact whatever the time zone of the session or the server,
// across daylight-saving changes. On private servers: the zone tables are
// loaded into their own mysql schema (never into the shared server's), and
// one runs under libfaketime to cross the October change of Europe/Berlin.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { createLockTable, migrate, type LockTable } from '../../lib/index.js';
import { DB_NOW_MS } from '../../lib/store.js';
import { until } from '../helpers/db.js';
import { serverKind, startPrivateServer, type PrivateServer } from '../helpers/private-server.js';

const DB = 'lt_time';
/** 2026-10-25 01:30 UTC: 02:30 CET, the second time Berlin's clocks show 02:30 that night. */
const REPEATED_HOUR = 1_792_891_800;
/** 2026-10-25 01:00 UTC: Berlin's clocks go back from 03:00 CEST to 02:00 CET. */
const CLOCKS_GO_BACK = 1_792_890_000;
const FAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/faketime/libfaketimeMT.so.1'].find((p) => existsSync(p));

/** A pool whose every connection first runs `init` (as a host's pool may). */
function sessionPool(url: string, init: string): mysql.Pool {
  const pool = mysql.createPool({ uri: url, connectionLimit: 2 });
  (pool as unknown as { pool: NodeJS.EventEmitter }).pool.on('connection', (conn: { query(sql: string): void }) => conn.query(init));
  return pool;
}

async function dbNowMs(pool: mysql.Pool): Promise<number> {
  const [rows] = await pool.query(`SELECT ${DB_NOW_MS} AS now`);
  return Number((rows as Array<{ now: unknown }>)[0]!.now);
}

async function storedEntry(pool: mysql.Pool, name: string): Promise<{ a: number; e?: number }> {
  const [rows] = await pool.query(`SELECT CAST(JSON_EXTRACT(dataJson, ?) AS CHAR) AS e FROM locks WHERE id = 'platform'`, [`$.l."${name}"`]);
  return JSON.parse(String((rows as Array<{ e: unknown }>)[0]!.e)) as { a: number; e?: number };
}

describe('database time across time zones and daylight saving (private servers)', function () {
  this.timeout(120_000);
  const pools: mysql.Pool[] = [];
  const tables: LockTable[] = [];
  const pool = (url: string, init: string) => {
    const p = sessionPool(url, init);
    pools.push(p);
    return p;
  };
  const table = (db: mysql.Pool, extra: object = {}) => {
    const t = createLockTable({ db, ...extra });
    tables.push(t);
    return t;
  };
  afterEach(async () => {
    await Promise.all(tables.splice(0).map((t) => t.close()));
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });

  describe('with the zone tables of Europe/Berlin', () => {
    let server: PrivateServer;
    before(async () => {
      server = await startPrivateServer({ databases: [DB], timeZones: ['Europe/Berlin'] });
      await migrate(server.url(DB));
    });
    after(async () => server?.remove());

    it('server facts: in the repeated hour UNIX_TIMESTAMP(NOW(3)) is an hour early on MariaDB 10.11 and MySQL 9.7 (exact on MariaDB 11.8); DB_NOW_MS is exact in any session zone', async () => {
      const berlin = pool(server.url(DB), `SET time_zone = 'Europe/Berlin', timestamp = ${REPEATED_HOUR}`);
      const utc = pool(server.url(DB), `SET time_zone = '+00:00', timestamp = ${REPEATED_HOUR}`);
      const [rows] = await berlin.query('SELECT CAST(NOW(0) AS CHAR) AS local, UNIX_TIMESTAMP(NOW(3)) * 1000 AS unix');
      const r = (rows as Array<{ local: string; unix: unknown }>)[0]!;
      assert.equal(r.local, '2026-10-25 02:30:00');
      if (serverKind() === 'mariadb-11.8') {
        // MariaDB 11 keeps the session's own timestamp through NOW() and UNIX_TIMESTAMP() (pinned per server).
        assert.equal(Number(r.unix), REPEATED_HOUR * 1000, 'MariaDB 11.8 maps the second 02:30 exactly');
      } else {
        assert.equal(Number(r.unix), (REPEATED_HOUR - 3600) * 1000, 'the second 02:30 is mapped onto the first');
      }
      assert.equal(await dbNowMs(berlin), REPEATED_HOUR * 1000);
      assert.equal(await dbNowMs(utc), REPEATED_HOUR * 1000);
    });

    it('a 10-minute lease taken in the repeated hour is not taken over a minute later from a UTC session', async () => {
      // fastPath: false — SYSDATE ignores SET timestamp, so the one-statement guard would refuse every write here.
      const a = table(pool(server.url(DB), `SET time_zone = 'Europe/Berlin', timestamp = ${REPEATED_HOUR}`), { fastPath: false, owner: { taskId: 'a' } });
      const b = table(pool(server.url(DB), `SET time_zone = '+00:00', timestamp = ${REPEATED_HOUR + 60}`), { fastPath: false, owner: { taskId: 'b' } });
      const lease = await a.acquire('app_task_dst', { ttlMs: 600_000 });
      assert.equal(lease.acquiredAt.getTime(), REPEATED_HOUR * 1000);
      assert.equal(lease.expiresAt?.getTime(), REPEATED_HOUR * 1000 + 600_000);
      assert.equal(await b.tryAcquire('app_task_dst'), null, 'the lease has 9 minutes left');
      const [held] = await b.list();
      assert.equal(held?.owner.taskId, 'a');
      await a.release(lease);
    });
  });

  (FAKETIME ? describe : describe.skip)('a server whose clock crosses the change (libfaketime, TZ=Europe/Berlin)', () => {
    let server: PrivateServer;
    let dir: string;
    let offsetFile: string;
    before(async function () {
      // The server's clock is set through a file libfaketime reads again every second: it
      // starts (and is migrated) at the real time, then is moved to 15 s before the change
      // and runs at the real rate from there. Setting it at start-up instead left a slow
      // start on a loaded machine past the change before the test began.
      dir = mkdtempSync(path.join(os.tmpdir(), 'locktable-faketime-'));
      offsetFile = path.join(dir, 'offset');
      writeFileSync(offsetFile, '+0\n');
      server = await startPrivateServer({
        databases: [DB],
        timeZones: ['Europe/Berlin'],
        env: { TZ: 'Europe/Berlin', LD_PRELOAD: FAKETIME!, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
      });
      await migrate(server.url(DB));
      writeFileSync(offsetFile, `${CLOCKS_GO_BACK - 15 - Math.floor(Date.now() / 1000)}\n`);
      const truth = sessionPool(server.url(DB), "SET time_zone = '+00:00'");
      try {
        await until('the server clock to be moved to just before the change', async () => (await dbNowMs(truth)) < CLOCKS_GO_BACK * 1000, 20_000);
      } finally {
        await truth.end();
      }
    });
    after(async () => {
      await server?.remove();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('one-statement acquires before and after the change (system zone and a named-zone session) stamp exact UTC times', async () => {
      const truth = pool(server.url(DB), "SET time_zone = '+00:00'");
      const system = table(pool(server.url(DB), 'DO 0'), { owner: { taskId: 'system' } });
      const named = table(pool(server.url(DB), "SET time_zone = 'Europe/Berlin'"), { owner: { taskId: 'named' } });
      const other = table(truth, { owner: { taskId: 'other' } });
      const check = async (t: LockTable, name: `app_task_${string}`) => {
        await t.list(); // the clock estimate is anchored: the acquire below goes as one statement
        const before = await dbNowMs(truth);
        const lease = await t.acquire(name, { ttlMs: 600_000 });
        const after = await dbNowMs(truth);
        const stored = await storedEntry(truth, name);
        assert.ok(stored.a >= before - 300 && stored.a <= after + 300, `${name}: acquired at ${stored.a}, the server said ${before}..${after}`);
        assert.equal(stored.e, stored.a + 600_000);
        assert.equal(lease.acquiredAt.getTime(), stored.a);
        assert.equal(await other.tryAcquire(name), null, `${name}: its lease has 10 minutes left`);
      };
      assert.ok((await dbNowMs(truth)) < CLOCKS_GO_BACK * 1000, 'the server clock is still before the change');
      await check(system, 'app_task_before_system'); // 02:59:5x CEST
      await check(named, 'app_task_before_named');
      await until('the server clock to pass the change', async () => (await dbNowMs(truth)) > CLOCKS_GO_BACK * 1000 + 500, 30_000);
      await check(system, 'app_task_after_system'); // 02:00:0x CET, the second time
      await check(named, 'app_task_after_named');
    });
  });
});

describe('the first one-statement acquire of a table (a server whose clock is 200 ms ahead of this host)', function () {
  this.timeout(60_000);
  let server: PrivateServer;
  before(async function () {
    if (!FAKETIME) this.skip();
    server = await startPrivateServer({ databases: [DB], env: { LD_PRELOAD: FAKETIME!, FAKETIME: '+0.2', FAKETIME_DONT_FAKE_MONOTONIC: '1' } });
    await migrate(server.url(DB));
  });
  after(async () => server?.remove());

  it('takes its times from the database, not from the host clock: a 150 ms lease is not born expired', async () => {
    const root = mysql.createPool({ uri: server.url(DB), connectionLimit: 1 });
    const a = createLockTable({ db: server.url(DB), owner: { taskId: 'a' } });
    try {
      const skew = (await dbNowMs(root)) - Date.now();
      assert.ok(skew > 120 && skew < 250, `the server runs ${skew} ms ahead (libfaketime)`);
      const before = await dbNowMs(root);
      const lease = await a.acquire('app_task_short', { ttlMs: 150 });
      const stored = await storedEntry(root, 'app_task_short');
      // The estimate is anchored on a read of the database's time: off by at most half a round trip, not by the 200 ms skew.
      assert.ok(stored.a >= before - 50, `acquired at ${stored.a}, ${before - stored.a} ms before the server's ${before}`);
      assert.equal(lease.acquiredAt.getTime(), stored.a);
    } finally {
      await Promise.all([a.close(), root.end()]);
    }
  });
});
