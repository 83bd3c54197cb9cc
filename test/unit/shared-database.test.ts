import assert from 'node:assert/strict';
import { needsPins, normaliseResult, quoteTable, rowsWith } from '../../lib/db.js';
import { looksLikeLockDocument } from '../../lib/errors.js';
import { judgeOwnership, recordPrefix, splitStatements, type TableState } from '../../lib/migrate.js';

const RECORD = [
  { name: 'name', type: 'varchar', key: 'PRI' },
  { name: 'appliedAt', type: 'timestamp', key: '' },
];
const OURS = [
  { name: 'id', type: 'varchar', key: 'PRI' },
  { name: 'version', type: 'bigint', key: '' },
  { name: 'dataJson', type: 'longtext', key: '' },
];
const state = (s: Partial<TableState>): TableState => ({ table: 'locks', columns: [], recordColumns: [], applied: [], started: [], ...s });

describe('judgeOwnership (whose table it is, before any DDL)', () => {
  const first = '001-create-locks.sql';
  it('a missing table with no record is to be created', () => {
    assert.equal(judgeOwnership(state({}), first).kind, 'missing');
    assert.equal(judgeOwnership(state({ recordColumns: RECORD }), first).kind, 'missing');
  });
  it('a table the record says locktable created is ours', () => {
    assert.equal(judgeOwnership(state({ columns: OURS, recordColumns: RECORD, applied: [first] }), first).kind, 'ours');
  });
  it('a table begun by a migration that crashed is ours if it has locktable columns', () => {
    assert.equal(judgeOwnership(state({ columns: OURS, recordColumns: RECORD, started: [first] }), first).kind, 'ours');
    assert.equal(judgeOwnership(state({ columns: [{ name: 'x', type: 'int', key: '' }], recordColumns: RECORD, started: [first] }), first).kind, 'foreign');
  });
  it('any other existing table is foreign, even with the very same columns', () => {
    for (const s of [state({ columns: OURS }), state({ columns: OURS, recordColumns: RECORD }), state({ columns: OURS, recordColumns: RECORD, applied: ['002-x.sql'] })]) {
      const o = judgeOwnership(s, first, 'database box');
      assert.equal(o.kind, 'foreign');
      assert.equal(o.kind === 'foreign' && o.error.code, 'EFOREIGN');
      assert.match(o.kind === 'foreign' ? o.error.message : '', /table locks of database box was not created by locktable: it has columns id varchar, version bigint, dataJson longtext/);
    }
  });
  it('a record table of other columns is foreign', () => {
    const o = judgeOwnership(state({ recordColumns: [{ name: 'id', type: 'int', key: 'PRI' }] }), first);
    assert.equal(o.kind, 'foreign');
  });
  it('a recorded table that is gone was dropped, unless this user just cannot see it', () => {
    assert.equal(judgeOwnership(state({ recordColumns: RECORD, applied: [first] }), first).kind, 'dropped');
    assert.equal(judgeOwnership(state({ recordColumns: RECORD, applied: [first], hidden: true }), first).kind, 'ours');
  });
});

describe('table names and the record', () => {
  it('quotes plain identifiers and refuses anything else', () => {
    assert.equal(quoteTable('locks'), '`locks`');
    assert.equal(quoteTable('App_Locks2'), '`App_Locks2`');
    for (const bad of ['', 'a b', 'a`b', 'a;b', '1', 'x'.repeat(65), 'LOCKTABLE_MIGRATIONS', 7, undefined]) {
      assert.throws(() => quoteTable(bad), (e: unknown) => (e as { code?: string }).code === 'EINVALIDOPTION', String(bad));
    }
  });
  it('keys the record rows of the default table by file name, others by table/file', () => {
    assert.equal(recordPrefix('locks'), '');
    assert.equal(recordPrefix('app_locks'), 'app_locks/');
  });
  it('fills {{table}} into migration statements', () => {
    assert.deepEqual(splitStatements('-- c\nALTER TABLE {{table}} ADD x INT;\nUPDATE {{table}} SET x = 1;\n', '`t`'), ['ALTER TABLE `t` ADD x INT', 'UPDATE `t` SET x = 1']);
  });
});

describe('what a Queryable answers', () => {
  it('unwraps mysql2 [rows, fields] pairs and leaves rows and headers alone', () => {
    const rows = [{ a: 1 }, { a: 2 }];
    assert.equal(normaliseResult([rows, [{ name: 'a' }]]), rows);
    assert.deepEqual(normaliseResult([{ affectedRows: 1, insertId: 3 }, undefined]), { affectedRows: 1, insertId: 3 });
    assert.equal(normaliseResult(rows), rows);
    const two = [{ a: 1 }, { b: 2 }];
    assert.equal(normaliseResult(two), two);
  });
  it('refuses rows as arrays or without the columns asked for', () => {
    assert.deepEqual(rowsWith([{ v: 1 }], ['v']), [{ v: 1 }]);
    assert.throws(() => rowsWith([[1]], ['v']), /as an array \(rowsAsArray\?\)/);
    assert.throws(() => rowsWith([{ tbl: { v: 1 } }], ['v']), /without the columns v/);
    assert.throws(() => rowsWith({ affectedRows: 1 }, ['v']), /not an array of rows/);
  });
});

describe('ECORRUPT: damaged or foreign', () => {
  it('takes a JSON object with a format number first, or with v and l, for a damaged locktable document', () => {
    for (const raw of ['{"v":2,"o":{},"l":{"x":1}}', '{"v":1}', '{"v":1,"l":{', '{"l":{},"v":"1"}']) assert.ok(looksLikeLockDocument(raw), raw);
  });
  it('takes anything else for another program’s row', () => {
    for (const raw of ['billing', '', 'null', '[]', '{"owner":"billing"}', '{"l":{}}', '42']) assert.ok(!looksLikeLockDocument(raw), raw);
  });
});

describe('needsPins (which statements go to mysql2 with the pinned row options)', () => {
  const defaults = { rowsAsArray: false, nestTables: undefined, typeCast: true };
  const read = 'SELECT version, CAST(dataJson AS CHAR) AS raw FROM `locks` WHERE id = ?';
  const write = 'UPDATE `locks` SET version = LAST_INSERT_ID(version + ?) WHERE id = ?';
  it("none on a connection with mysql2's defaults, reads or writes", () => {
    assert.equal(needsPins(read, defaults), false);
    assert.equal(needsPins(write, defaults), false);
    assert.equal(needsPins(read, { ...defaults, nestTables: false }), false);
  });
  it('reads on a connection configured otherwise, or one whose configuration cannot be seen', () => {
    for (const config of [{ ...defaults, rowsAsArray: true }, { ...defaults, nestTables: '_' }, { ...defaults, typeCast: false }, { ...defaults, typeCast: () => 1 }, undefined]) {
      assert.equal(needsPins(read, config), true, JSON.stringify(config));
      assert.equal(needsPins(`SET STATEMENT wsrep_sync_wait=1 FOR ${read} FOR UPDATE`, config), true, 'a causal locking read is a read');
      assert.equal(needsPins("SHOW STATUS WHERE Variable_name IN ('wsrep_ready')", config), true);
    }
  });
  it('never for a write, whose reply the row options do not touch (causal ones included)', () => {
    const config = { rowsAsArray: true, nestTables: true, typeCast: false };
    for (const sql of [write, `SET STATEMENT wsrep_sync_wait=2 FOR ${write}`, 'INSERT IGNORE INTO `locks` (id) VALUES (?)', '  update `locks` SET x = 1', 'DELETE FROM `locks` WHERE id = ?']) {
      assert.equal(needsPins(sql, config), false, sql);
    }
  });
});
