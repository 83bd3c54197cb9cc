// The fault proxy (test/helpers/proxy.ts) sees prepared statements as well as
// queries: the tests that cut the one-statement write rely on it.
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

describe('fault proxy and prepared statements', () => {
  let db: TestDb;
  let proxy: Proxy;
  let pool: mysql.Pool;

  before(async () => {
    db = await createTestDb('proxyprep', { migrate: false });
    await db.pool.query('CREATE TABLE t (id INT PRIMARY KEY, v BIGINT, s TEXT) ENGINE=InnoDB');
    await db.pool.query("INSERT INTO t VALUES (1, 0, '')");
    proxy = await startProxy({ port: Number(new URL(db.url).port || 3306) });
    pool = mysql.createPool({ uri: proxy.url(db.name), connectionLimit: 1 });
  });
  after(async () => {
    await pool.end();
    await proxy.close();
    await db.drop();
  });

  it('records an execute as the text a query with the same values would send', async () => {
    const sql = 'UPDATE t SET v = v + ?, s = ? WHERE id = ? AND (? IS NULL OR ? < 1)';
    const values = [2, `it's "quoted" \\ ünïcode ${'x'.repeat(300)}`, 1, null, 0.25];
    proxy.statements.length = 0;
    await pool.execute(sql, values);
    await pool.execute(sql, values); // the second time, mysql2 executes the statement it prepared before
    assert.deepEqual(proxy.statements, [mysql.format(sql, values), mysql.format(sql, values)]);
    const [rows] = await db.pool.query('SELECT v, s FROM t WHERE id = 1');
    assert.deepEqual((rows as Array<{ v: number; s: string }>)[0], { v: 4, s: values[1] });
  });

  it('cuts an execute as it cuts a query: drop-reply applies it and the client sees the connection lost', async () => {
    const cut = proxy.cutAt(/^UPDATE t SET v = v \+ 5 /, 'drop-reply');
    const failed = await pool.execute('UPDATE t SET v = v + ? WHERE id = ?', [5, 1]).then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );
    assert.equal(await cut, 'UPDATE t SET v = v + 5 WHERE id = 1');
    assert.ok(failed, 'the client got no reply');
    const [rows] = await db.pool.query('SELECT v FROM t WHERE id = 1');
    assert.equal(Number((rows as Array<{ v: number }>)[0]!.v), 9, 'and the server applied it');
  });
});
