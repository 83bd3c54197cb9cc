// locktable in a database it shares: a host's own `locks` table is never
// altered or adopted, the advice never points at repair() for a row that is
// not locktable's, a table of its own works beside the host's, and migrate()
// converges after a crash at any statement.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { openDb } from '../../lib/db.js';
import { diagnose, type Check } from '../../lib/doctor.js';
import { createLockTable, ForeignTableError, migrate, type LockError } from '../../lib/index.js';
import { defaultMigrationsDir, listMigrations, MIGRATION_LOCK_LEASE_SEC, recordPrefix, splitStatements } from '../../lib/migrate.js';
import { createTestDb, serverUrl, type TestDb } from '../helpers/db.js';

async function columnsOf(pool: mysql.Pool, table: string): Promise<string[]> {
  const [rows] = await pool.query('SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION', [table]);
  return (rows as Array<{ c: string }>).map((r) => r.c);
}

async function tables(pool: mysql.Pool): Promise<string[]> {
  const [rows] = await pool.query('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME');
  return (rows as Array<{ t: string }>).map((r) => r.t);
}

async function doctor(db: TestDb | undefined, table?: string): Promise<Map<string, Check>> {
  const { pool, end } = openDb(db!.url, 1);
  try {
    return new Map((await diagnose(pool, { space: 'platform', table })).map((c) => [c.name, c]));
  } finally {
    await end?.();
  }
}

function codeOf(err: unknown): string {
  return (err as LockError).code;
}

describe('a database with its own locks table', () => {
  let db: TestDb | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it("refuses to migrate a host's locks(id, dataJson TEXT, version INT): nothing altered, nothing recorded", async () => {
    db = await createTestDb('host_locks', { migrate: false });
    await db.pool.query('CREATE TABLE locks (id VARCHAR(64) NOT NULL PRIMARY KEY, dataJson TEXT, version INT) ENGINE=InnoDB');
    await db.pool.query("INSERT INTO locks VALUES ('platform', '{\"owner\":\"billing\",\"leases\":[1,2]}', 7)");
    const err = await migrate(db.pool).then(
      () => assert.fail('migrate() adopted the host table'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ForeignTableError, String(err));
    assert.equal(codeOf(err), 'EFOREIGN');
    assert.match((err as Error).message, /table locks of database lt_host_locks_\w+ was not created by locktable: it has columns id varchar, dataJson text, version int/);
    assert.match((err as Error).message, /\{ table: 'locktable_locks' \}/);
    assert.deepEqual(await columnsOf(db.pool, 'locks'), ['id', 'dataJson', 'version'], 'no dataCrc added');
    assert.deepEqual(await tables(db.pool), ['locks'], 'no record created');
    const [rows] = await db.pool.query('SELECT * FROM locks');
    assert.deepEqual(rows, [{ id: 'platform', dataJson: '{"owner":"billing","leases":[1,2]}', version: 7 }]);
  });

  it('refuses an unrelated locks table with EFOREIGN, not "Unknown column"', async () => {
    db = await createTestDb('other_locks', { migrate: false });
    await db.pool.query('CREATE TABLE locks (name VARCHAR(64) NOT NULL PRIMARY KEY, holder INT) ENGINE=InnoDB');
    await assert.rejects(migrate(db.pool), (e: unknown) => codeOf(e) === 'EFOREIGN' && /columns name varchar, holder int/.test((e as Error).message));
    assert.deepEqual(await columnsOf(db.pool, 'locks'), ['name', 'holder']);
    assert.deepEqual(await tables(db.pool), ['locks']);
    const locks = createLockTable({ db: db.pool, retry: { deadlineMs: 200 } });
    await assert.rejects(locks.list(), (e: unknown) => codeOf(e) === 'EDATABASE' && /lacks a column locktable uses: it belongs to another program, or migrations are pending/.test((e as Error).message));
    await locks.close();
  });

  it("doctor says whose table it is, suggests no GRANT and no repair(), for both kinds of host table", async () => {
    db = await createTestDb('doctor_host', { migrate: false });
    for (const ddl of [
      'CREATE TABLE locks (id VARCHAR(64) NOT NULL PRIMARY KEY, dataJson TEXT, version INT)',
      'CREATE TABLE locks (name VARCHAR(64) NOT NULL PRIMARY KEY, holder INT)',
    ]) {
      await db.pool.query('DROP TABLE IF EXISTS locks');
      await db.pool.query(ddl);
      if (ddl.includes('dataJson')) await db.pool.query("INSERT INTO locks VALUES ('platform', 'billing data', 7)");
      const checks = await doctor(db);
      const text = [...checks.values()].map((c) => `${c.name} ${c.status} ${c.detail} ${c.fix ?? ''}`).join('\n');
      assert.equal(checks.get('schema')?.status, 'fail', text);
      assert.match(checks.get('schema')!.detail, /was not created by locktable/);
      assert.match(checks.get('schema')!.fix!, /--table <name>/);
      assert.doesNotMatch(text, /GRANT/, 'no GRANT can help');
      assert.doesNotMatch(text, /repair/, 'repair() would destroy the host row');
      assert.doesNotMatch(text, /run `locktable migrate`/, 'migrate refuses this table');
      assert.equal(checks.get('privileges')?.status, 'ok');
    }
  });

  it("an operation on the host's table fails without pointing at repair(), and leaves its row", async () => {
    db = await createTestDb('host_ops', { migrate: false });
    await db.pool.query('CREATE TABLE locks (id VARCHAR(64) NOT NULL PRIMARY KEY, dataJson TEXT, version INT, dataCrc INT)');
    await db.pool.query("INSERT INTO locks VALUES ('platform', 'billing data', 7, NULL)");
    const locks = createLockTable({ db: db.pool, retry: { deadlineMs: 300 } });
    try {
      for (const op of [() => locks.list(), () => locks.acquire('box_update')]) {
        await assert.rejects(op(), (e: unknown) => {
          assert.equal(codeOf(e), 'ECORRUPT');
          assert.equal((e as { foreign?: boolean }).foreign, true);
          assert.match((e as Error).message, /does not hold a locktable document .* probably belongs to another program: give locktable a table of its own/);
          assert.doesNotMatch((e as Error).message, /repair/);
          return true;
        });
      }
    } finally {
      await locks.close();
    }
    const [rows] = await db.pool.query('SELECT dataJson, version FROM locks');
    assert.deepEqual(rows, [{ dataJson: 'billing data', version: 7 }]);
  });

  it('works beside the host table with a table of its own, which the CLI and doctor reach with --table', async () => {
    db = await createTestDb('own_table', { migrate: false });
    await db.pool.query('CREATE TABLE locks (id VARCHAR(64) NOT NULL PRIMARY KEY, dataJson TEXT, version INT)');
    const first = await migrate(db.pool, { table: 'locktable_locks' });
    assert.deepEqual(first.applied, listMigrations(defaultMigrationsDir()));
    assert.deepEqual((await migrate(db.pool, { table: 'locktable_locks' })).applied, []);
    assert.deepEqual(await columnsOf(db.pool, 'locks'), ['id', 'dataJson', 'version']);
    const [record] = await db.pool.query('SELECT name FROM locktable_migrations ORDER BY name');
    assert.deepEqual(
      (record as Array<{ name: string }>).map((r) => r.name),
      first.applied.map((f) => `locktable_locks/${f}`),
    );
    const locks = createLockTable({ db: db.pool, table: 'locktable_locks' });
    try {
      const lease = await locks.acquire('box_update');
      assert.deepEqual((await locks.list()).map((l) => l.name), ['box_update']);
      await locks.release(lease);
    } finally {
      await locks.close();
    }
    const checks = await doctor(db, 'locktable_locks');
    assert.deepEqual([...checks.values()].filter((c) => c.status === 'fail'), []);
    // The default table is still the host's, and still refused.
    await assert.rejects(migrate(db.pool), (e: unknown) => codeOf(e) === 'EFOREIGN');
  });

  it('refuses a table name that is not a plain identifier before touching the database', async () => {
    for (const table of ['locks; DROP TABLE x', 'a`b', '', '123', 'x'.repeat(65), 'locktable_migrations']) {
      assert.throws(() => createLockTable({ db: 'mysql://u@h/d', table }), (e: unknown) => codeOf(e) === 'EINVALIDOPTION', table);
      await assert.rejects(migrate('mysql://u@127.0.0.1:1/d', { table }), (e: unknown) => codeOf(e) === 'EINVALIDOPTION', table);
    }
  });

  it('says how to start over when its own table was dropped but is still recorded', async () => {
    db = await createTestDb('dropped');
    await db.pool.query('DROP TABLE locks');
    const err = await migrate(db.pool).then(() => assert.fail('migrated'), (e: unknown) => e as Error);
    assert.equal(codeOf(err), 'ENOTMIGRATED');
    const del = /\(DELETE FROM locktable_migrations WHERE (.*?)\), then migrate/.exec(err.message);
    assert.ok(del, err.message);
    await db.pool.query(`DELETE FROM locktable_migrations WHERE ${del[1]}`);
    assert.deepEqual((await migrate(db.pool)).applied, listMigrations(defaultMigrationsDir()));
  });

  it('refuses a locktable_migrations that is not its record', async () => {
    db = await createTestDb('foreign_record', { migrate: false });
    await db.pool.query('CREATE TABLE locktable_migrations (id INT PRIMARY KEY, version VARCHAR(20))');
    await assert.rejects(migrate(db.pool), (e: unknown) => codeOf(e) === 'EFOREIGN' && /is not locktable's migration record/.test((e as Error).message));
    assert.deepEqual(await tables(db.pool), ['locktable_migrations']);
  });
});

describe('migrate() after a crash at any point', () => {
  const dir = defaultMigrationsDir();
  const files = listMigrations(dir);
  let reference: { schema: string; rows: unknown; record: string[] };

  async function snapshot(pool: mysql.Pool, table: string): Promise<typeof reference> {
    const [[create]] = (await pool.query(`SHOW CREATE TABLE \`${table}\``)) as unknown as [[Record<string, string>]];
    const [rows] = await pool.query(`SELECT id, version, CAST(dataJson AS CHAR) AS raw, dataCrc FROM \`${table}\``);
    const [record] = await pool.query('SELECT name FROM locktable_migrations ORDER BY name');
    return { schema: create!['Create Table']!, rows, record: (record as Array<{ name: string }>).map((r) => r.name) };
  }

  before(async () => {
    const clean = await createTestDb('crash_ref', { migrate: false });
    await migrate(clean.pool, { table: 't' });
    reference = await snapshot(clean.pool, 't');
    await clean.drop();
  });

  // Every point a process can die at: after each statement of each migration,
  // and between a migration's last statement and its record.
  const points: Array<{ file: number; statements: number }> = [];
  files.forEach((file, i) => {
    const n = splitStatements(readFileSync(path.join(dir, file), 'utf8')).length;
    for (let k = 0; k <= n; k++) points.push({ file: i, statements: k });
  });

  for (const point of points) {
    it(`converges when killed after ${point.statements} statement(s) of ${files[point.file]}`, async () => {
      const db = await createTestDb('crash', { migrate: false });
      try {
        // What a process that died there left: the record table, earlier
        // migrations recorded, this one begun, the migration lock (taken long
        // enough ago to be stale), and the statements it ran.
        await migrate(db.pool, { table: 't', dir: await subset(files.slice(0, point.file)) });
        await db.pool.query(
          'CREATE TABLE IF NOT EXISTS locktable_migrations (name VARCHAR(255) NOT NULL PRIMARY KEY, appliedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB',
        );
        const prefix = recordPrefix('t');
        await db.pool.query('INSERT INTO locktable_migrations (name, appliedAt) VALUES (?, NOW(3) - INTERVAL ? SECOND)', [`${prefix}#lock`, MIGRATION_LOCK_LEASE_SEC + 5]);
        await db.pool.query('INSERT INTO locktable_migrations (name) VALUES (?)', [`${prefix}${files[point.file]}#started`]);
        const statements = splitStatements(readFileSync(path.join(dir, files[point.file]!), 'utf8'), '`t`');
        for (const s of statements.slice(0, point.statements)) await db.pool.query(s);

        const result = await migrate(db.pool, { table: 't' });
        assert.deepEqual(result.applied, files.slice(point.file));
        assert.deepEqual(await snapshot(db.pool, 't'), reference);
      } finally {
        await db.drop();
      }
    });
  }

  it("converges after a crash right after 002's ALTER TABLE with nothing recorded (no 'Duplicate column name')", async () => {
    const db = await createTestDb('crash_alter', { migrate: false });
    try {
      await migrate(db.pool, { dir: await subset(files.slice(0, 1)) });
      await db.pool.query('ALTER TABLE locks ADD COLUMN dataCrc INT UNSIGNED NULL');
      const result = await migrate(db.pool);
      assert.deepEqual(result.applied, files.slice(1));
      assert.deepEqual(result.all, files);
    } finally {
      await db.drop();
    }
  });

  const subsets: string[] = [];
  async function subset(only: string[]): Promise<string> {
    const { mkdtempSync, copyFileSync } = await import('node:fs');
    const os = await import('node:os');
    const to = mkdtempSync(path.join(os.tmpdir(), 'lt-migrations-'));
    for (const f of only) copyFileSync(path.join(dir, f), path.join(to, f));
    subsets.push(to);
    return to;
  }
  after(async () => {
    const { rmSync } = await import('node:fs');
    for (const d of subsets) rmSync(d, { recursive: true, force: true });
  });
});

describe('the migration lock', () => {
  it('is a row, not GET_LOCK, so a database name of 64 characters migrates (MySQL limits GET_LOCK names to 64)', async () => {
    const name = `lt_long_${'x'.repeat(64 - 'lt_long_'.length - 8)}${Math.random().toString(16).slice(2, 10)}`;
    assert.equal(name.length, 64);
    const admin = await mysql.createConnection({ uri: serverUrl() });
    await admin.query(`CREATE DATABASE \`${name}\``);
    try {
      const url = new URL(serverUrl());
      url.pathname = `/${name}`;
      const pool = mysql.createPool({ uri: url.toString(), connectionLimit: 2 });
      const sent: string[] = [];
      const tap = { query: (sql: string, values: Array<string | number>) => (sent.push(sql), pool.query(sql, values)) };
      try {
        const result = await migrate(tap);
        assert.deepEqual(result.all, listMigrations(defaultMigrationsDir()));
        assert.ok(!sent.some((s) => /GET_LOCK/i.test(s)), 'no GET_LOCK');
        assert.ok(sent.some((s) => /^INSERT INTO locktable_migrations \(name, appliedAt\)/.test(s)), 'the lock is an INSERT of a row');
      } finally {
        await pool.end();
      }
    } finally {
      await admin.query(`DROP DATABASE \`${name}\``);
      await admin.end();
    }
  });

  it('makes concurrent migrations queue: one applies, the others find nothing pending', async () => {
    const db = await createTestDb('lock_queue', { migrate: false });
    try {
      const results = await Promise.all([1, 2, 3, 4].map(() => migrate(db.url)));
      assert.equal(results.filter((r) => r.applied.length).length, 1);
      assert.deepEqual(results.find((r) => r.applied.length)!.applied, listMigrations(defaultMigrationsDir()));
      const [rows] = await db.pool.query("SELECT name FROM locktable_migrations WHERE name LIKE '%#%'");
      assert.deepEqual(rows, [], 'no lock or started row left behind');
    } finally {
      await db.drop();
    }
  });

  it('waits for a live lock and says whose row it is; takes over a stale one', async () => {
    const db = await createTestDb('lock_wait', { migrate: false });
    try {
      await db.pool.query('CREATE TABLE locktable_migrations (name VARCHAR(255) NOT NULL PRIMARY KEY, appliedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB');
      await db.pool.query("INSERT INTO locktable_migrations (name, appliedAt) VALUES ('#lock', NOW(3))");
      await assert.rejects(
        migrate(db.pool, { lockTimeoutSec: 0.3 }),
        (e: unknown) => codeOf(e) === 'EDATABASE' && /row '#lock' of locktable_migrations/.test((e as Error).message),
      );
      await db.pool.query('UPDATE locktable_migrations SET appliedAt = NOW(3) - INTERVAL ? SECOND', [MIGRATION_LOCK_LEASE_SEC + 1]);
      assert.deepEqual((await migrate(db.pool, { lockTimeoutSec: 5 })).applied, listMigrations(defaultMigrationsDir()));
    } finally {
      await db.drop();
    }
  });
});

// The privilege table of docs/shared-database.md, with users that have exactly
// what it lists. Users get random names and are dropped afterwards.
describe('least privilege (docs/shared-database.md)', () => {
  const RUNTIME = (db: string, t: string) => [`SELECT, INSERT, UPDATE ON \`${db}\`.\`${t}\``];
  const STARTUP = (db: string) => [`SELECT ON \`${db}\`.locktable_migrations`];
  const MIGRATOR_TABLE = ['CREATE', 'ALTER', 'SELECT', 'INSERT', 'UPDATE'];
  const MIGRATOR_RECORD = ['CREATE', 'SELECT', 'INSERT', 'UPDATE', 'DELETE'];
  const MIGRATOR = (db: string, t: string, drop?: string) => [
    `${MIGRATOR_TABLE.filter((p) => `${t}:${p}` !== drop).join(', ')} ON \`${db}\`.\`${t}\``,
    `${MIGRATOR_RECORD.filter((p) => `record:${p}` !== drop).join(', ')} ON \`${db}\`.locktable_migrations`,
  ];
  let admin: mysql.Connection;
  const users: string[] = [];
  before(async function () {
    admin = await mysql.createConnection({ uri: serverUrl() });
    try {
      await admin.query("CREATE USER 'lt_probe_x'@'%'");
      await admin.query("DROP USER 'lt_probe_x'@'%'");
    } catch {
      await admin.end();
      this.skip(); // the test server's user cannot create users
    }
  });
  after(async () => {
    for (const u of users) await admin.query(`DROP USER IF EXISTS '${u}'@'%'`);
    await admin.end();
  });

  /** A user with exactly `grants`; the URI to connect as it. */
  async function userWith(db: TestDb, grants: string[]): Promise<string> {
    const name = `lt_u_${Math.random().toString(16).slice(2, 10)}`;
    users.push(name);
    await admin.query(`CREATE USER '${name}'@'%' IDENTIFIED BY 'pw'`);
    for (const g of grants.filter((g) => !/^ ON/.test(g))) await admin.query(`GRANT ${g} TO '${name}'@'%'`);
    const url = new URL(db.url);
    url.username = name;
    url.password = 'pw';
    return url.toString();
  }

  it('migrate() with nothing pending needs only SELECT on locktable_migrations (the start-up call of a runtime user)', async () => {
    const db = await createTestDb('priv_startup');
    try {
      const onlyRecord = await userWith(db, STARTUP(db.name));
      assert.deepEqual((await migrate(onlyRecord)).applied, []);
      const runtime = await userWith(db, [...RUNTIME(db.name, 'locks'), ...STARTUP(db.name)]);
      assert.deepEqual((await migrate(runtime)).applied, []);
      const locks = createLockTable({ db: runtime, space: 'fresh_space' }); // INSERT: a space's row is created on first use
      try {
        const lease = await locks.acquire('box_update');
        await locks.release(lease);
        assert.deepEqual(await locks.list(), []);
      } finally {
        await locks.close();
      }
    } finally {
      await db.drop();
    }
  });

  it('the runtime needs SELECT, INSERT and UPDATE on its table, and each of them', async () => {
    const db = await createTestDb('priv_runtime');
    try {
      for (const missing of ['SELECT', 'INSERT', 'UPDATE']) {
        const url = await userWith(db, [`${['SELECT', 'INSERT', 'UPDATE'].filter((p) => p !== missing).join(', ')} ON \`${db.name}\`.\`locks\``]);
        const locks = createLockTable({ db: url, space: `s_${missing}`, retry: { deadlineMs: 200 } });
        try {
          await assert.rejects(
            (async () => {
              const lease = await locks.acquire('box_update');
              await locks.release(lease);
            })(),
            (e: unknown) => codeOf(e) === 'EDATABASE' && new RegExp(`${missing} command denied`).test((e as Error).message),
            missing,
          );
        } finally {
          await locks.close();
        }
      }
    } finally {
      await db.drop();
    }
  });

  it('applying the migrations needs exactly the privileges listed, on a table of any name', async () => {
    for (const t of ['locks', 'app_locks']) {
      const db = await createTestDb('priv_migrator', { migrate: false });
      try {
        const url = await userWith(db, MIGRATOR(db.name, t));
        assert.deepEqual((await migrate(url, { table: t })).all, listMigrations(defaultMigrationsDir()));
      } finally {
        await db.drop();
      }
    }
    const all = [...MIGRATOR_TABLE.map((p) => `t:${p}`), ...MIGRATOR_RECORD.map((p) => `record:${p}`)];
    for (const drop of all) {
      const db = await createTestDb('priv_less', { migrate: false });
      try {
        let url: string;
        try {
          url = await userWith(db, MIGRATOR(db.name, 't', drop));
        } catch (err) {
          // A table-level grant on a table that does not exist yet is refused unless it includes CREATE.
          assert.ok(drop.endsWith(':CREATE') && (err as { errno?: number }).errno === 1146, `${drop}: ${(err as Error).message}`);
          continue;
        }
        await assert.rejects(migrate(url, { table: 't' }), (e: unknown) => /denied/.test((e as Error).message), `without ${drop}`);
      } finally {
        await db.drop();
      }
    }
  });
});
