// The database handles a host already has: mysql2 pools whatever their
// options, the `mysql` package's pools and connections, a single mysql2
// connection, a PoolCluster, and Knex and Kysely through the Queryable
// recipes of docs/shared-database.md. Each is driven through migrate(), the
// lock operations (the one-statement path, the read-decide-write path and
// wait()'s poll) and doctor, against the real server and the real libraries.
import assert from 'node:assert/strict';
import knexFactory from 'knex';
import { CompiledQuery, Kysely, MysqlDialect } from 'kysely';
import mysqljs from 'mysql';
import mysql2 from 'mysql2';
import mysql2p from 'mysql2/promise';
import { openDb, type Queryable } from '../../lib/db.js';
import { diagnose } from '../../lib/doctor.js';
import { createLockTable, migrate, type LockError } from '../../lib/index.js';
import { createTestDb, isMariaDb, type TestDb } from '../helpers/db.js';

function codeOf(err: unknown): string {
  return (err as LockError).code;
}

/** migrate(), every kind of lock statement, and doctor, through `handle`. */
async function exercise(handle: unknown, table: string): Promise<void> {
  const first = await migrate(handle, { table });
  assert.deepEqual(first.applied, ['001-create-locks.sql', '002-data-checksum.sql', '003-checksum-now.sql']);
  assert.deepEqual((await migrate(handle, { table })).applied, []);
  const a = createLockTable({ db: handle, table, owner: { taskId: 'a' }, retry: { deadlineMs: 2_000 } });
  const b = createLockTable({ db: handle, table, owner: { taskId: 'b' }, retry: { deadlineMs: 2_000 } });
  try {
    const lease = await a.acquire(['box_update', 'mail_restart'], { ttlMs: 60_000 }); // one statement
    assert.ok(lease.token >= 1);
    assert.equal(await b.tryAcquire('box_update'), null); // refused, then read and decided
    await assert.rejects(b.wait(['box_update'], { timeoutMs: 150 }), (e: unknown) => codeOf(e) === 'ETIMEDOUT'); // the version poll
    const listed = await b.list();
    assert.deepEqual(listed.map((l) => [l.name, l.owner.taskId, l.token]), [
      ['box_update', 'a', lease.token],
      ['mail_restart', 'a', lease.token],
    ]);
    assert.ok(listed[0]!.expiresAt instanceof Date && listed[0]!.ageMs >= 0);
    await a.release(await a.extend(lease, 120_000));
    const next = await b.acquire('box_update');
    assert.ok(next.token > lease.token, 'tokens increase');
    assert.deepEqual((await a.releaseByOwner({ taskId: 'b' })).map((h) => h.name), ['box_update']);
  } finally {
    await a.close();
    await b.close();
  }
  const { pool } = openDb(handle);
  const checks = await diagnose(pool, { space: 'platform', table });
  const failed = checks.filter((c) => c.status === 'fail');
  assert.deepEqual(failed, [], JSON.stringify(failed));
  assert.match(checks.find((c) => c.name === 'document')!.detail, /is valid/);
}

describe('any pool a host already has', () => {
  let db: TestDb;
  let n = 0;
  const table = () => `t${++n}`;
  before(async () => {
    db = await createTestDb('pools', { migrate: false });
  });
  after(async () => db.drop());

  const awkward: Array<[string, mysql2p.PoolOptions]> = [
    ['rowsAsArray', { rowsAsArray: true }],
    ['a typeCast function', { typeCast: (field, next) => (field.type === 'LONGLONG' ? `n${String(next())}` : field.type === 'VAR_STRING' ? 'cast!' : next()) }],
    ['typeCast: false', { typeCast: false }],
    ['dateStrings', { dateStrings: true }],
    ['namedPlaceholders', { namedPlaceholders: true }],
    ['supportBigNumbers and bigNumberStrings', { supportBigNumbers: true, bigNumberStrings: true }],
    ['decimalNumbers and jsonStrings', { decimalNumbers: true, jsonStrings: true }],
    ['nestTables', { nestTables: true }],
    ['multipleStatements and trace', { multipleStatements: true, trace: true }],
    [
      'all of them',
      { rowsAsArray: true, typeCast: (_f, next) => next(), dateStrings: true, namedPlaceholders: true, supportBigNumbers: true, bigNumberStrings: true, decimalNumbers: true, jsonStrings: true, nestTables: '_', multipleStatements: true, trace: true },
    ],
  ];
  for (const [what, options] of awkward) {
    it(`works with a mysql2 promise pool with ${what}`, async () => {
      const pool = mysql2p.createPool({ uri: db.url, connectionLimit: 3, ...options });
      try {
        await exercise(pool, table());
      } finally {
        await pool.end();
      }
    });
  }

  // What locktable hands mysql2, seen on the pool's own connections: each call's first argument, and each packet written (one per round trip once the statements are prepared).
  function watchDriver(pool: mysql2p.Pool): { calls: Array<{ sql: string; form: 'sql, values' | 'options' }>; packets: number } {
    const seen = { calls: [] as Array<{ sql: string; form: 'sql, values' | 'options' }>, packets: 0 };
    const core = (pool as unknown as { pool: NodeJS.EventEmitter }).pool;
    core.on('connection', (conn: Record<string, (...args: unknown[]) => unknown>) => {
      for (const kind of ['query', 'execute'] as const) {
        const original = conn[kind]!.bind(conn);
        conn[kind] = (first: unknown, ...rest: unknown[]) => {
          // mysql2's own pool.query hands its connection a prepared Query command: not locktable's call.
          if (typeof first === 'string') seen.calls.push({ sql: first, form: 'sql, values' });
          else if (first && typeof first === 'object' && !('onResult' in first)) seen.calls.push({ sql: String((first as { sql: unknown }).sql), form: 'options' });
          return original(first, ...rest);
        };
      }
      const write = conn.write!.bind(conn);
      conn.write = (buffer: unknown) => {
        seen.packets++;
        return write(buffer);
      };
    });
    return seen;
  }

  it('an uncontended acquire+release on a pool with mysql2 defaults: two round trips, both in the (sql, values) form', async () => {
    const pool = mysql2p.createPool({ uri: db.url, connectionLimit: 2 });
    const seen = watchDriver(pool);
    const t = table();
    const locks = createLockTable({ db: pool, table: t, owner: { taskId: 'a' } });
    try {
      await migrate(pool, { table: t });
      // Warm: the database clock read, the Galera probe, each statement prepared on both connections.
      await Promise.all([0, 1].map(async (i) => {
        for (let n = 0; n < 3; n++) await locks.release(await locks.acquire(`app_task_w${i}`));
      }));
      seen.calls.length = 0;
      seen.packets = 0;
      for (let n = 0; n < 10; n++) await locks.release(await locks.acquire('app_task_c0'));
      assert.equal(seen.calls.length, 20, 'one statement per acquire, one per release');
      assert.equal(seen.packets, 20, 'one round trip each: nothing else is sent (no ping, no reset, no SET, no prepare)');
      assert.ok(seen.calls.every((c) => c.form === 'sql, values' && /^UPDATE `\w+` SET version = LAST_INSERT_ID/.test(c.sql)), JSON.stringify(seen.calls.slice(0, 2)));
      // Reads too: the pins are not needed where the pool has mysql2's defaults.
      seen.calls.length = 0;
      await locks.list();
      assert.deepEqual(seen.calls.map((c) => c.form), ['sql, values']);
    } finally {
      await locks.close();
      await pool.end();
    }
  });

  it('on a pool with rowsAsArray, reads go with the pinned options and writes still in the (sql, values) form', async () => {
    const pool = mysql2p.createPool({ uri: db.url, connectionLimit: 2, rowsAsArray: true });
    const seen = watchDriver(pool);
    const t = table();
    const locks = createLockTable({ db: pool, table: t, owner: { taskId: 'a' } });
    try {
      await migrate(pool, { table: t });
      await locks.release(await locks.acquire('app_task_w'));
      seen.calls.length = 0;
      const lease = await locks.acquire('app_task_c0');
      assert.deepEqual((await locks.list()).map((l) => [l.name, l.token]), [['app_task_c0', lease.token]]);
      await locks.release(lease);
      const forms = seen.calls.map((c) => `${c.sql.split(' ')[0]} ${c.form}`);
      assert.deepEqual(forms, ['UPDATE sql, values', 'SELECT options', 'UPDATE sql, values']);
    } finally {
      await locks.close();
      await pool.end();
    }
  });

  it('works with a mysql2 callback pool with rowsAsArray, and doctor still tells a corrupt document from a valid one', async () => {
    const pool = mysql2.createPool({ uri: db.url, connectionLimit: 3, rowsAsArray: true });
    const t = table();
    try {
      await exercise(pool, t);
      await db.pool.query(`UPDATE \`${t}\` SET dataJson = '{"v":2,"o":{},"l":{"x":1}}' WHERE id = 'platform'`);
      const doc = (await diagnose(openDb(pool).pool, { space: 'platform', table: t })).find((c) => c.name === 'document')!;
      assert.equal(doc.status, 'fail');
      assert.match(doc.detail, /is corrupt/);
      const locks = createLockTable({ db: pool, table: t });
      await assert.rejects(locks.list(), (e: unknown) => codeOf(e) === 'ECORRUPT' && !(e as { foreign: boolean }).foreign && /l\.x/.test((e as Error).message));
      await locks.close();
    } finally {
      await new Promise((r) => pool.end(r));
    }
  });

  it('works with a pool of the mysql package (mysqljs), whatever its options', async () => {
    for (const options of [{}, { supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, typeCast: false, nestTables: true, multipleStatements: true }]) {
      const pool = mysqljs.createPool({ ...mysqljsConfig(db.url), connectionLimit: 3, ...options } as mysqljs.PoolConfig);
      try {
        if (!(await isMariaDb(db.pool))) {
          await assert.rejects(exercise(pool, table()), /ER_NOT_SUPPORTED_AUTH_MODE/, NO_NATIVE_PASSWORD);
          continue;
        }
        await exercise(pool, table());
      } finally {
        await new Promise((r) => pool.end(r));
      }
    }
  });

  it('works with one connection of the mysql package', async () => {
    const conn = mysqljs.createConnection(mysqljsConfig(db.url));
    try {
      if (!(await isMariaDb(db.pool))) return void (await assert.rejects(exercise(conn, table()), /ER_NOT_SUPPORTED_AUTH_MODE/, NO_NATIVE_PASSWORD));
      await exercise(conn, table());
    } finally {
      await new Promise((r) => conn.end(r));
    }
  });

  it('works with a single mysql2 connection, promise or callback API', async () => {
    const p = await mysql2p.createConnection({ uri: db.url, rowsAsArray: true });
    const c = mysql2.createConnection({ uri: db.url });
    try {
      await exercise(p, table());
      await exercise(c, table());
    } finally {
      await p.end();
      await new Promise((r) => c.end(r));
    }
  });

  it('works with a namespace of a mysql2 PoolCluster; migrate() refuses a cluster itself saying what to pass, a lock table takes its nodes in order (docs/galera.md)', async () => {
    const cluster = mysql2p.createPoolCluster();
    cluster.add('primary', { uri: db.url, connectionLimit: 3 } as mysql2p.PoolOptions);
    const callbackCluster = mysql2.createPoolCluster();
    callbackCluster.add('primary', { uri: db.url, connectionLimit: 3 } as mysql2.PoolOptions);
    try {
      const onNodes = table();
      await migrate(cluster.of('*'), { table: onNodes });
      for (const c of [cluster, callbackCluster]) {
        await assert.rejects(migrate(c), (e: unknown) => codeOf(e) === 'EINVALIDOPTION' && /PoolCluster; pass one of its namespaces/.test((e as Error).message));
        // A lock table routes to the cluster's nodes in the order added, failing over (docs/galera.md); the cluster stays the host's.
        const t = createLockTable({ db: c, table: onNodes });
        await t.release(await t.acquire('box_update'));
        await t.close();
      }
      await exercise(cluster.of('*'), table());
      // A callback cluster's namespace, through the Queryable recipe.
      const ns = callbackCluster.of('*');
      const queryable: Queryable = {
        query: (sql, values) => new Promise((resolve, reject) => ns.query(sql, values, (err, rows) => (err ? reject(err) : resolve(rows)))),
      };
      await exercise(queryable, table());
    } finally {
      await cluster.end();
      await new Promise((r) => callbackCluster.end(r));
    }
  });

  it('works with Knex through the Queryable recipe, and refuses Knex itself with the recipe', async () => {
    const knex = knexFactory({ client: 'mysql2', connection: db.url, pool: { min: 0, max: 3 } });
    try {
      assert.throws(() => createLockTable({ db: knex }), (e: unknown) => codeOf(e) === 'EINVALIDOPTION' && /Knex instance; pass \{ query: \(sql, values\) => knex\.raw/.test((e as Error).message));
      const queryable: Queryable = { query: (sql, values) => knex.raw(sql, values).then(([rows]: [unknown]) => rows) };
      await exercise(queryable, table());
    } finally {
      await knex.destroy();
    }
  });

  it('works with Kysely through the Queryable recipe, and refuses Kysely itself with the recipe', async () => {
    const kysely = new Kysely<unknown>({ dialect: new MysqlDialect({ pool: mysql2.createPool({ uri: db.url, connectionLimit: 3 }) }) });
    try {
      assert.throws(() => createLockTable({ db: kysely }), (e: unknown) => codeOf(e) === 'EINVALIDOPTION' && /Kysely instance/.test((e as Error).message));
      const queryable: Queryable = {
        async query(sql, values) {
          const r = await kysely.executeQuery(CompiledQuery.raw(sql, values));
          return r.numAffectedRows === undefined ? r.rows : { affectedRows: Number(r.numAffectedRows), insertId: Number(r.insertId ?? 0) };
        },
      };
      await exercise(queryable, table());
    } finally {
      await kysely.destroy();
    }
  });

  it('refuses what it cannot use at construction, saying what to pass', () => {
    for (const db of [{}, 42, null, { getConnection() {} }, () => {}]) {
      assert.throws(() => createLockTable({ db }), (e: unknown) => codeOf(e) === 'EINVALIDOPTION' && /pass a mysql2 pool .* a mysql package pool, a mysql:\/\/ URI, or an object with query\(sql, values\)/.test((e as Error).message), String(db));
    }
  });

  it('refuses a Queryable that answers rows as arrays with EDATABASE, not ECORRUPT', async () => {
    const t = table();
    await migrate(db.pool, { table: t });
    const pool = mysql2p.createPool({ uri: db.url, connectionLimit: 1 });
    const locks = createLockTable({ db: { query: (sql: string, values: unknown[]) => pool.query({ sql, values, rowsAsArray: true }).then(([rows]) => rows) }, table: t });
    try {
      await assert.rejects(locks.list(), (e: unknown) => codeOf(e) === 'EDATABASE' && /returned a row as an array \(rowsAsArray\?\)/.test((e as Error).message));
    } finally {
      await locks.close();
      await pool.end();
    }
  });
});

// Oracle MySQL 9 has no mysql_native_password, the one login the mysql package
// speaks: it cannot connect at all (caching_sha2_password), and says so.
const NO_NATIVE_PASSWORD = 'Oracle MySQL 9: the mysql package cannot log in (no mysql_native_password)';

function mysqljsConfig(url: string): mysqljs.ConnectionConfig {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) };
}
