// Pins the MySQL/MariaDB and mysql2 behaviour locktable relies on, so that a
// server or driver that behaves otherwise fails here first.
import assert from 'node:assert/strict';
import { DB_NOW_MS, SYSDATE_MS, SYSDATE_SAFE } from '../../lib/store.js';
import { createTestDb, isMariaDb, until, type TestDb } from '../helpers/db.js';

// mysql2 parses a JSON-typed result on its own (see DESIGN: do not JSON.parse blindly).
const asJson = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);

describe('server and driver facts', () => {
  let db: TestDb;
  before(async () => {
    db = await createTestDb('facts');
  });
  after(async () => {
    await db.drop();
  });

  it('CAST(dataJson AS CHAR) gives the stored text as a string: MariaDB the exact text written, Oracle MySQL its canonical text', async () => {
    await db.pool.query(`INSERT INTO locks (id, version, dataJson) VALUES ('facts', 0, '{"v":1,"l":{},"v":1}')`);
    const [rows] = await db.pool.query(`SELECT CAST(dataJson AS CHAR) AS raw FROM locks WHERE id = 'facts'`);
    const raw = (rows as Array<{ raw: unknown }>)[0]?.raw;
    if (await isMariaDb(db.pool)) assert.equal(raw, '{"v":1,"l":{},"v":1}', 'MariaDB: byte for byte, duplicate key and all');
    else assert.equal(raw, '{"l": {}, "v": 1}', 'Oracle MySQL: keys sorted, its own spacing, a duplicate key collapsed');
    await db.pool.query(`UPDATE locks SET dataJson = '{"v":1,"l":{}}' WHERE id = 'facts'`);
  });

  it('JSON_CONTAINS finds an object inside an array element (the poll of waiters in line), and JSON_SEARCH takes several wildcard paths', async () => {
    const doc = JSON.stringify({ l: { a: { n: 'h', o: 'k1' } }, q: { x: [{ n: 'w1', o: 'k2', e: 5 }, { n: 'w2', o: 'k3' }] }, s: { y: { h: [{ n: 's1', o: 'k4' }] } } });
    const [rows] = await db.pool.query(
      `SELECT JSON_CONTAINS(?, ?) AS inline, JSON_CONTAINS(?, ?) AS gone, JSON_CONTAINS(?, ?) AS share,
              JSON_SEARCH(?, 'one', 'k4', NULL, '$.l.*.o', '$.s.*.h[*].o', '$.q.*[*].o') AS found,
              JSON_SEARCH(?, 'one', 'k9', NULL, '$.l.*.o', '$.s.*.h[*].o', '$.q.*[*].o') AS missing`,
      [doc, '{"q":{"x":[{"n":"w2"},{"n":"w1"}]}}', doc, '{"q":{"x":[{"n":"w3"}]}}', doc, '{"s":{"y":{"h":[{"n":"s1"}]}}}', doc, doc],
    );
    const row = (rows as Array<Record<string, unknown>>)[0]!;
    assert.deepEqual([Number(row.inline), Number(row.gone), Number(row.share)], [1, 0, 1]);
    assert.equal(String(row.found).replace(/"/g, ''), '$.s.y.h[0].o');
    assert.equal(row.missing, null);
  });

  it('the compare-and-swap UPDATE reports affectedRows 0 when the version moved', async () => {
    const [hit] = await db.pool.query(`UPDATE locks SET version = 1, dataJson = '{"v":1,"l":{}}' WHERE id = 'facts' AND version = 0`);
    const [miss] = await db.pool.query(`UPDATE locks SET version = 1, dataJson = '{"v":1,"l":{}}' WHERE id = 'facts' AND version = 0`);
    assert.equal((hit as { affectedRows: number }).affectedRows, 1);
    assert.equal((miss as { affectedRows: number }).affectedRows, 0);
  });

  it('database time in ms comes back as a JS number close to the local clock', async () => {
    const [rows] = await db.pool.query(`SELECT ${DB_NOW_MS} AS now`);
    const now = (rows as Array<{ now: unknown }>)[0]?.now;
    assert.equal(typeof now, 'number');
    assert.ok(Math.abs((now as number) - Date.now()) < 60_000);
  });

  it('database time (statement start and row evaluation) does not depend on the session time zone', async () => {
    // Named zones with daylight saving need the zone tables: test/integration/time.test.ts, on a private server.
    const conn = await db.pool.getConnection();
    try {
      const read = async (zone: string) => {
        await conn.query('SET time_zone = ?', [zone]);
        const [rows] = await conn.query(`SELECT ${DB_NOW_MS} AS start, ${SYSDATE_MS} AS rowAt, ${SYSDATE_SAFE} AS safe, UNIX_TIMESTAMP() AS unix`);
        const r = (rows as Array<Record<string, unknown>>)[0]!;
        return { start: Number(r.start), row: Number(r.rowAt), safe: Number(r.safe), unix: Number(r.unix) };
      };
      for (const zone of ['+00:00', '+05:30', '-11:00']) {
        const r = await read(zone);
        assert.ok(Math.abs(r.start - r.unix * 1000) < 1000, `${zone}: ${r.start} is the epoch time ${r.unix} s`);
        assert.ok(r.row >= r.start && r.row - r.start < 1000, `${zone}: the row was read after the statement started`);
        assert.equal(r.safe, 1);
      }
    } finally {
      await conn.query("SET time_zone = DEFAULT");
      conn.release();
    }
  });

  it('a name with a quote makes the JSON path invalid: MariaDB NULL, Oracle MySQL error 3143 (so names are validated first)', async () => {
    const extract = db.pool.query(`SELECT JSON_EXTRACT('{"a":1}', '$."a"b"') AS x`);
    if (await isMariaDb(db.pool)) assert.equal(((await extract)[0] as Array<{ x: unknown }>)[0]?.x, null);
    else await assert.rejects(extract, { errno: 3143 }); // ER_INVALID_JSON_PATH
  });

  // The one-statement acquire and release (lib/store.ts fastWrite) rest on the facts below.

  it('UPDATE assignments run left to right: the JSON sees the new version, the checksum the new text; insertId is the new version', async () => {
    await db.pool.query(`INSERT INTO locks (id, version, dataJson, dataCrc) VALUES ('ltr', 10, '{"v":2,"o":{},"l":{}}', CRC32(dataJson))`);
    const [res] = await db.pool.query(
      `UPDATE locks SET version = LAST_INSERT_ID(version + ?), dataJson = JSON_SET(dataJson, ?, JSON_SET(?, '$.f', version - ?), ?, JSON_SET(?, '$.f', version - ?)), dataCrc = CRC32(dataJson)
       WHERE id = 'ltr' AND dataCrc = CRC32(dataJson)`,
      [2, '$.l."a"', '{"n":"x","f":0}', 1, '$.l."b"', '{"n":"y","f":0}', 0],
    );
    assert.equal((res as { insertId: number }).insertId, 12);
    const [rows] = await db.pool.query(`SELECT version, CAST(dataJson AS CHAR) AS raw, dataCrc = CRC32(dataJson) AS fresh FROM locks WHERE id = 'ltr'`);
    const row = (rows as Array<{ version: number; raw: string; fresh: number }>)[0]!;
    assert.equal(Number(row.version), 12);
    assert.deepEqual(JSON.parse(row.raw).l, { a: { n: 'x', f: 11 }, b: { n: 'y', f: 12 } });
    assert.equal(row.fresh, 1);
  });

  it('as a prepared statement (mysql2 execute), the same write keeps the token an integer', async () => {
    await db.pool.query(`INSERT INTO locks (id, version, dataJson, dataCrc) VALUES ('prep', 10, '{"v":2,"o":{},"l":{}}', CRC32(dataJson))`);
    const [res] = await db.pool.execute(
      `UPDATE locks SET version = LAST_INSERT_ID(version + ?), dataJson = JSON_SET(dataJson, ?, JSON_SET(?, '$.f', version - ?)), dataCrc = CRC32(dataJson)
       WHERE id = 'prep' AND dataCrc = CRC32(dataJson)`,
      [1, '$.l."a"', '{"n":"x","f":0}', 0],
    );
    assert.equal((res as { insertId: number }).insertId, 11);
    const [rows] = await db.pool.query(`SELECT CAST(dataJson AS CHAR) AS raw, JSON_TYPE(JSON_EXTRACT(dataJson, '$.l."a".f')) AS type FROM locks WHERE id = 'prep'`);
    const row = (rows as Array<{ raw: string; type: string }>)[0]!;
    // mysql2 sends a JS number as a DOUBLE; the server keeps an integral one an integer
    // (MariaDB calls it INTEGER, Oracle MySQL UNSIGNED INTEGER: both come back as JS integers).
    assert.equal(row.type, (await isMariaDb(db.pool)) ? 'INTEGER' : 'UNSIGNED INTEGER');
    assert.match(row.raw, /"f": ?11[,}]/);
    // What would break it: a fraction stays one.
    const [frac] = await db.pool.execute(`SELECT JSON_TYPE(JSON_EXTRACT(JSON_SET('{}', '$.f', 10 + ?), '$.f')) AS type`, [0.5]);
    assert.equal((frac as Array<{ type: string }>)[0]?.type, 'DOUBLE');
  });

  it('dataCrcNow (STORED generated, migration 003) is CRC32 of the text after every write, by anyone, and cannot be set by hand', async () => {
    const fresh = async () => {
      const [rows] = await db.pool.query(`SELECT dataCrcNow = CRC32(dataJson) AS now, dataCrc = dataCrcNow AS guard FROM locks WHERE id = 'gen'`);
      const row = (rows as Array<{ now: number; guard: number | null }>)[0]!;
      return [Number(row.now), row.guard === null ? null : Number(row.guard)];
    };
    await db.pool.query(`INSERT INTO locks (id, version, dataJson, dataCrc) VALUES ('gen', 0, '{"v":2,"o":{},"l":{}}', CRC32(dataJson))`);
    assert.deepEqual(await fresh(), [1, 1], 'locktable wrote last: the guard passes');
    await db.pool.query(`UPDATE locks SET dataJson = JSON_SET(dataJson, '$.x', 1) WHERE id = 'gen'`); // a tool
    assert.deepEqual(await fresh(), [1, 0], 'changed outside locktable: the guard fails');
    // Setting it by hand is refused (MySQL 3105; MariaDB 1906, an error in strict mode, else a warning and ignored).
    await db.pool.query(`UPDATE locks SET dataCrcNow = dataCrc WHERE id = 'gen'`).catch((err: { errno?: number }) => assert.ok([3105, 1906].includes(err.errno!), String(err)));
    assert.deepEqual(await fresh(), [1, 0], 'still the checksum of the text, still failing the guard');
    await db.pool.query(`UPDATE locks SET dataJson = JSON_REMOVE(dataJson, '$.x'), dataCrc = CRC32(dataJson) WHERE id = 'gen'`);
    assert.deepEqual(await fresh(), [1, 1], 'a write that stores its checksum passes again');
  });

  it('an INSERT value may refer to a column given earlier in the same row (the checksum of the stored text)', async () => {
    await db.pool.query(`INSERT INTO locks (id, version, dataJson, dataCrc) VALUES ('ins', 0, '{"v":2,"o":{},"l":{}}', CRC32(dataJson))`);
    const [rows] = await db.pool.query(`SELECT dataCrc = CRC32(dataJson) AS fresh FROM locks WHERE id = 'ins'`);
    assert.equal((rows as Array<{ fresh: number }>)[0]?.fresh, 1);
  });

  it('a quoted path key may hold . and - and start with a digit; unquoted, a . would nest and miss', async () => {
    const [rows] = await db.pool.query(
      `SELECT JSON_SET('{"l":{}}', '$.l."a.b-c"', 1, '$.l."9x"', 2) AS quoted, JSON_SET('{"l":{}}', '$.l.a.b', 1) AS nested,
              JSON_CONTAINS_PATH('{"l":{"a.b":1}}', 'one', '$.l."x"', '$.l."a.b"') AS anyOf`,
    );
    const r = (rows as Array<{ quoted: unknown; nested: unknown; anyOf: number }>)[0]!;
    assert.deepEqual(asJson(r.quoted), { l: { 'a.b-c': 1, '9x': 2 } });
    assert.deepEqual(asJson(r.nested), { l: {} }, 'silently nothing: why every path is quoted');
    assert.equal(r.anyOf, 1);
  });

  it('JSON_CONTAINS(doc, {"l":{name:{"n":nonce}}}) holds only when every named entry carries exactly its nonce', async () => {
    const doc = JSON.stringify({ l: { a: { n: 'N1', f: 3 }, b: { n: 'N2' } } });
    const check = async (candidate: object) => {
      const [rows] = await db.pool.query('SELECT JSON_CONTAINS(?, ?) AS c', [doc, JSON.stringify(candidate)]);
      return (rows as Array<{ c: number }>)[0]?.c;
    };
    assert.equal(await check({ l: { a: { n: 'N1' }, b: { n: 'N2' } } }), 1);
    assert.equal(await check({ l: { a: { n: 'N1' }, b: { n: 'N3' } } }), 0, 'another nonce');
    assert.equal(await check({ l: { a: { n: 'N1' }, c: { n: 'N2' } } }), 0, 'a missing entry');
    assert.equal(await check({ l: { a: { n: 'N' } } }), 0, 'no prefix match');
  });

  it('JSON_SET embeds JSON_EXTRACT(text, "$") as an object, and plain text as a string', async () => {
    const [rows] = await db.pool.query(`SELECT JSON_SET('{"o":{}}', '$.o."k"', JSON_EXTRACT(?, '$')) AS obj, JSON_SET('{"o":{}}', '$.o."k"', ?) AS str`, ['{"h":1}', '{"h":1}']);
    const r = (rows as Array<{ obj: unknown; str: unknown }>)[0]!;
    assert.deepEqual(asJson(r.obj), { o: { k: { h: 1 } } });
    assert.deepEqual(asJson(r.str), { o: { k: '{"h":1}' } });
  });

  it('in an UPDATE queued on the row lock, SYSDATE is read once the lock is granted; NOW is the time the statement started', async () => {
    // The one-statement writes guard their clock estimate with SYSDATE: a statement
    // whose reply was lost cannot apply long after it was sent, even stuck behind the lock.
    await db.pool.query(`INSERT INTO locks (id, version, dataJson) VALUES ('sysdate', 0, '{}')`);
    const dbNow = async () => Number(((await db.pool.query(`SELECT ${DB_NOW_MS} AS n`))[0] as Array<{ n: unknown }>)[0]!.n);
    const holder = await db.pool.getConnection();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT version FROM locks WHERE id = 'sysdate' FOR UPDATE`);
      const at = await dbNow();
      const guarded = (clock: string) =>
        db.pool.query(`UPDATE locks SET version = version + 1 WHERE id = 'sysdate' AND ${clock === 'SYSDATE' ? `${SYSDATE_SAFE} AND ABS(? - ${SYSDATE_MS})` : "ABS(? - TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000)"} <= 100`, [at]);
      const bySysdate = guarded('SYSDATE');
      const byNow = guarded('NOW');
      await until('both UPDATEs to wait on the row lock', async () => {
        const [rows] = await db.pool.query(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE locks SET version = version + 1 WHERE id = ''sysdate''%'`);
        return Number((rows as Array<{ n: unknown }>)[0]!.n) === 2;
      });
      await until('the tolerance to pass', async () => (await dbNow()) > at + 200);
      await holder.query('COMMIT');
      const [s] = await bySysdate;
      const [n] = await byNow;
      assert.equal((s as { affectedRows: number }).affectedRows, 0, 'SYSDATE: read after the wait, past the tolerance');
      assert.equal((n as { affectedRows: number }).affectedRows, 1, 'NOW: fixed before the wait, within the tolerance');
    } finally {
      holder.release();
    }
  });

  it('storing text that is not JSON is refused by the column check', async () => {
    await assert.rejects(db.pool.query(`UPDATE locks SET dataJson = 'not json' WHERE id = 'facts'`), (err: { errno?: number; sqlState?: string }) => {
      // MariaDB: 4025 (CHECK constraint failed); MySQL: 3140 (invalid JSON text).
      assert.ok(err.errno === 4025 || err.errno === 3140, String(err.errno));
      return true;
    });
  });
});
