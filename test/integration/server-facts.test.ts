// Pins the MySQL/MariaDB and mysql2 behaviour locktable relies on, so that a
// server or driver that behaves otherwise fails here first.
import assert from 'node:assert/strict';
import { createTestDb, type TestDb } from '../helpers/db.js';

describe('server and driver facts', () => {
  let db: TestDb;
  before(async () => {
    db = await createTestDb('facts');
  });
  after(async () => {
    await db.drop();
  });

  it('CAST(dataJson AS CHAR) gives the exact stored text as a string', async () => {
    await db.pool.query(`INSERT INTO locks (id, version, dataJson) VALUES ('facts', 0, '{"v":1,"l":{}}')`);
    const [rows] = await db.pool.query(`SELECT CAST(dataJson AS CHAR) AS raw FROM locks WHERE id = 'facts'`);
    assert.equal((rows as Array<{ raw: unknown }>)[0]?.raw, '{"v":1,"l":{}}');
  });

  it('the compare-and-swap UPDATE reports affectedRows 0 when the version moved', async () => {
    const [hit] = await db.pool.query(`UPDATE locks SET version = 1, dataJson = '{"v":1,"l":{}}' WHERE id = 'facts' AND version = 0`);
    const [miss] = await db.pool.query(`UPDATE locks SET version = 1, dataJson = '{"v":1,"l":{}}' WHERE id = 'facts' AND version = 0`);
    assert.equal((hit as { affectedRows: number }).affectedRows, 1);
    assert.equal((miss as { affectedRows: number }).affectedRows, 0);
  });

  it('database time in ms comes back as a JS number close to the local clock', async () => {
    const [rows] = await db.pool.query('SELECT CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS UNSIGNED) AS now');
    const now = (rows as Array<{ now: unknown }>)[0]?.now;
    assert.equal(typeof now, 'number');
    assert.ok(Math.abs((now as number) - Date.now()) < 60_000);
  });

  it('a name with a quote makes the JSON path invalid: NULL, not an error (so names are validated first)', async () => {
    const [rows] = await db.pool.query(`SELECT JSON_EXTRACT('{"a":1}', '$."a"b"') AS x`);
    assert.equal((rows as Array<{ x: unknown }>)[0]?.x, null);
  });

  it('storing text that is not JSON is refused by the column check', async () => {
    await assert.rejects(db.pool.query(`UPDATE locks SET dataJson = 'not json' WHERE id = 'facts'`), (err: { errno?: number; sqlState?: string }) => {
      // MariaDB: 4025 (CHECK constraint failed); MySQL: 3140 (invalid JSON text).
      assert.ok(err.errno === 4025 || err.errno === 3140, String(err.errno));
      return true;
    });
  });
});
