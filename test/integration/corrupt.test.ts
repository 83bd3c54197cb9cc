import assert from 'node:assert/strict';
import { createLockTable, LockError, type LockTable } from '../../lib/index.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';

describe('a corrupt document', () => {
  let db: TestDb;
  let locks: LockTable;

  before(async () => {
    db = await createTestDb('corrupt');
    locks = createLockTable({ db: db.pool, retry: { deadlineMs: 500 } });
  });
  after(async () => {
    await locks.close();
    await db.drop();
  });

  async function store(raw: string): Promise<void> {
    // MariaDB's JSON column has a json_valid CHECK: switch it off for this one
    // statement to store text that is not JSON at all, as a broken tool might.
    const [[server]] = (await db.pool.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
    const sql = /mariadb/i.test(server.v)
      ? 'SET STATEMENT check_constraint_checks = 0 FOR UPDATE locks SET dataJson = ? WHERE id = ?'
      : 'UPDATE locks SET dataJson = ? WHERE id = ?';
    await db.pool.query(sql, [raw, 'platform']);
  }

  const fakeLease = (names: string[]) =>
    Object.freeze({ space: 'platform', names, token: 1, nonce: 'n', owner: locks.owner, acquiredAt: new Date() });

  const operations: Array<[string, () => Promise<unknown>]> = [
    ['acquire', () => locks.acquire('box_update')],
    ['acquire of a name not in the damaged entry', () => locks.acquire('mail_restart')],
    ['tryAcquire', () => locks.tryAcquire('box_update')],
    ['wait', () => locks.wait(['box_update'], { timeoutMs: 200 })],
    ['release', () => locks.release(fakeLease(['box_update']))],
    ['extend', () => locks.extend(fakeLease(['box_update']), 1000)],
    ['releaseAll', () => locks.releaseAll()],
    ['releaseByOwner', () => locks.releaseByOwner({ taskId: 'x' })],
    ['reapDead', () => locks.reapDead()],
    ['list', () => locks.list()],
  ];

  const damaged = [
    ['an entry of the wrong shape', '{"v":1,"l":{"box_update":{"garbage":true}}}'],
    ['a missing lock map', '{"v":1}'],
    ['a wrong type', '{"v":1,"l":{"box_update":{"t":"box_update","o":{"h":"h","b":"b","ns":"n","p":"1","s":0,"u":"u"},"f":1,"n":"x","a":1}}}'],
    ['text that is not JSON', '{"v":1,"l":{'],
  ];

  for (const [kind, raw] of damaged) {
    it(`fails every operation with ECORRUPT and leaves ${kind} byte for byte`, async function () {
      const [[server]] = (await db.pool.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
      // MySQL's native JSON type cannot hold text that is not JSON at all; MariaDB's LONGTEXT can.
      if (kind === 'text that is not JSON' && !/mariadb/i.test(server.v)) this.skip();
      await store(raw!);
      const before = await rawRow(db.pool);
      assert.equal(before?.raw, raw);
      for (const [name, op] of operations) {
        await assert.rejects(op(), (err: unknown) => {
          assert.ok(err instanceof LockError, `${name}: ${String(err)}`);
          assert.equal(err.code, 'ECORRUPT', `${name}: ${err.message}`);
          assert.equal((err as LockError & { raw: string }).raw, raw);
          assert.match(err.message, /left untouched/);
          return true;
        });
      }
      assert.deepEqual(await rawRow(db.pool), before, 'not one byte changed, version unchanged');
    });
  }

  it('fails with EFORMAT on a document from a newer locktable, and leaves it', async () => {
    await store('{"v":4,"locks":[]}');
    const before = await rawRow(db.pool);
    await assert.rejects(locks.acquire('box_update'), { code: 'EFORMAT' });
    assert.deepEqual(await rawRow(db.pool), before);
  });

  it('is replaced only by an explicit repair() of the exact text inspected', async () => {
    const raw = '{"v":1,"l":{"box_update":{"garbage":true}}}';
    await store(raw);
    const err = await locks.list().catch((e: unknown) => e as LockError & { raw: string });
    assert.equal((err as LockError).code, 'ECORRUPT');
    await assert.rejects(locks.repair('{"something":"else"}'), { code: 'EINVALIDOPTION' });
    assert.equal((await rawRow(db.pool))?.raw, raw);
    assert.deepEqual(await locks.repair((err as { raw: string }).raw), { replaced: raw });
    assert.deepEqual(await locks.list(), []);
    const lease = await locks.acquire('box_update');
    await locks.release(lease);
  });
});
