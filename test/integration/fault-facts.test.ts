// Pins what the server (MariaDB or Oracle MySQL) and mysql2 report for the faults locktable classifies
// (lib/faults.ts), on real errors rather than hand-made ones: if a server or
// driver version reports them otherwise, this fails first.
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { isAmbiguous, isTransient } from '../../lib/faults.js';
import { createTestDb, isMariaDb, until, type TestDb } from '../helpers/db.js';

describe('fault facts (MariaDB or MySQL + mysql2)', () => {
  let db: TestDb;
  let admin: mysql.Connection;
  const connect = () => mysql.createConnection({ uri: db.url });

  before(async () => {
    db = await createTestDb('faultfacts', { migrate: false });
    await db.pool.query('CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await db.pool.query('INSERT INTO t VALUES (1, 0), (2, 0)');
    admin = await connect();
  });
  after(async () => {
    await admin.end();
    await db.drop();
  });

  const failure = (p: Promise<unknown>) => p.then(() => assert.fail('expected an error'), (err: unknown) => err as Error & { code?: string; errno?: number; fatal?: boolean });
  const idOf = async (c: mysql.Connection | mysql.PoolConnection) => ((await c.query('SELECT CONNECTION_ID() AS id'))[0] as Array<{ id: number }>)[0]!.id;

  it('KILL of a connection running a statement: PROTOCOL_CONNECTION_LOST, fatal, transient and ambiguous', async () => {
    const victim = await connect();
    const id = await idOf(victim);
    const running = failure(victim.query('SELECT SLEEP(10)'));
    await until('the statement to run', async () => ((await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO IS NOT NULL', [id]))[0] as Array<{ n: number }>)[0]!.n === 1);
    await admin.query(`KILL ${id}`);
    const err = await running;
    assert.equal(err.code, 'PROTOCOL_CONNECTION_LOST');
    assert.equal(err.fatal, true);
    assert.equal(isTransient(err) && isAmbiguous(err), true);
    victim.destroy();
  });

  it('KILL QUERY: ER_QUERY_INTERRUPTED 1317, transient and ambiguous; the connection lives on', async () => {
    const victim = await connect();
    const id = await idOf(victim);
    // A statement that reads a table while it sleeps, as locktable's statements do (see the next test for SLEEP alone).
    const running = victim.query('SELECT id FROM t WHERE SLEEP(10)').then(
      ([rows]) => ({ rows }),
      (err: Error & { errno?: number }) => ({ err }),
    );
    await until('the statement to sleep', async () => ((await admin.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User sleep'", [id]))[0] as Array<{ n: number }>)[0]!.n === 1);
    await admin.query(`KILL QUERY ${id}`);
    const outcome = await running;
    assert.ok('err' in outcome, JSON.stringify(outcome));
    assert.equal(outcome.err.errno, 1317);
    assert.equal(isTransient(outcome.err) && isAmbiguous(outcome.err), true);
    assert.equal(await idOf(victim), id, 'same connection, still usable');
    await victim.end();
  });

  it('SELECT SLEEP() alone, KILL QUERY: MariaDB fails it with 1317; Oracle MySQL answers 1, no error', async () => {
    const victim = await connect();
    const id = await idOf(victim);
    const running = victim.query('SELECT SLEEP(10) AS s').then(
      ([rows]) => ({ rows: rows as Array<{ s: number }> }),
      (err: Error & { errno?: number }) => ({ err }),
    );
    await until('the statement to sleep', async () => ((await admin.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User sleep'", [id]))[0] as Array<{ n: number }>)[0]!.n === 1);
    await admin.query(`KILL QUERY ${id}`);
    const outcome = await running;
    if (await isMariaDb(admin)) assert.equal('err' in outcome && outcome.err.errno, 1317, JSON.stringify(outcome));
    else assert.deepEqual('rows' in outcome && outcome.rows, [{ s: 1 }], JSON.stringify(outcome)); // MySQL: "interrupted" is SLEEP's value
    await victim.end();
  });

  it('an idle pooled connection KILLed leaves the pool quietly: no error escapes, the next query gets a new connection', async () => {
    const pool = mysql.createPool({ uri: db.url, connectionLimit: 1 });
    try {
      const first = await idOf(pool as unknown as mysql.Connection);
      await admin.query(`KILL ${first}`);
      await until('the pool to notice', async () => {
        const n = ((await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [first]))[0] as Array<{ n: number }>)[0]!.n;
        return n === 0;
      });
      const second = await idOf(pool as unknown as mysql.Connection);
      assert.notEqual(second, first);
    } finally {
      await pool.end();
    }
  });

  it('lock wait timeout: 1205, transient, and the statement was rolled back (not ambiguous)', async () => {
    const holder = await connect();
    const waiter = await connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT * FROM t WHERE id = 1 FOR UPDATE');
      await waiter.query('SET SESSION innodb_lock_wait_timeout = 1');
      const err = await failure(waiter.query('UPDATE t SET v = 99 WHERE id = 1'));
      assert.equal(err.errno, 1205);
      assert.equal(isTransient(err), true);
      assert.equal(isAmbiguous(err), false);
      await holder.query('COMMIT');
      assert.deepEqual((await waiter.query('SELECT v FROM t WHERE id = 1'))[0], [{ v: 0 }], 'not applied');
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  it('deadlock: 1213, transient, and the victim transaction was rolled back (not ambiguous)', async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      await a.query('UPDATE t SET v = 1 WHERE id = 1');
      await b.query('UPDATE t SET v = 2 WHERE id = 2');
      const aWaits = a.query('UPDATE t SET v = 1 WHERE id = 2').then(() => undefined, (err: Error) => err);
      const [bErr, aErr] = await Promise.all([b.query('UPDATE t SET v = 2 WHERE id = 1').then(() => undefined, (err: Error) => err), aWaits]);
      const victim = (bErr ?? aErr) as Error & { errno?: number };
      assert.ok(victim && !(bErr && aErr), 'exactly one is chosen');
      assert.equal(victim.errno, 1213);
      assert.equal(isTransient(victim), true);
      assert.equal(isAmbiguous(victim), false);
      await a.query(bErr ? 'COMMIT' : 'ROLLBACK');
      await b.query(bErr ? 'ROLLBACK' : 'COMMIT');
      const [rows] = await a.query('SELECT id, v FROM t ORDER BY id');
      assert.deepEqual(rows, bErr ? [{ id: 1, v: 1 }, { id: 2, v: 1 }] : [{ id: 1, v: 2 }, { id: 2, v: 2 }], "only the survivor's writes remain");
      await a.query('UPDATE t SET v = 0');
    } finally {
      await a.end();
      await b.end();
    }
  });
});
