import assert from 'node:assert/strict';
import { createLockTable, LockError, type LockTable } from '../../lib/index.js';
import { createTestDb, isMariaDb, rawRow, storeRaw, storedText, type TestDb } from '../helpers/db.js';

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

  /** Stores `raw` as a broken tool might; returns the text the server keeps for it (MySQL: its canonical JSON text). */
  async function store(raw: string): Promise<string> {
    assert.equal(await storeRaw(db.pool, raw), true, 'stored');
    return storedText(db.pool, raw);
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
    it(`fails every operation with ECORRUPT and leaves ${kind} byte for byte`, async () => {
      if (kind === 'text that is not JSON' && !(await isMariaDb(db.pool))) {
        // Oracle MySQL: its native JSON type refuses text that is not JSON (3140), so no tool can
        // store it and there is nothing for locktable to meet; MariaDB's LONGTEXT can hold it.
        const before = await rawRow(db.pool);
        assert.equal(await storeRaw(db.pool, raw!), false, 'MySQL refuses text that is not JSON');
        assert.deepEqual(await rawRow(db.pool), before);
        return;
      }
      const kept = await store(raw!);
      const before = await rawRow(db.pool);
      assert.equal(before?.raw, kept);
      for (const [name, op] of operations) {
        await assert.rejects(op(), (err: unknown) => {
          assert.ok(err instanceof LockError, `${name}: ${String(err)}`);
          assert.equal(err.code, 'ECORRUPT', `${name}: ${err.message}`);
          assert.equal((err as LockError & { raw: string }).raw, kept);
          assert.match(err.message, /left untouched/);
          return true;
        });
      }
      assert.deepEqual(await rawRow(db.pool), before, 'not one byte changed, version unchanged');
    });
  }

  it('fails with EFORMAT on a document from a newer locktable, and leaves it', async () => {
    await store('{"v":5,"locks":[]}');
    const before = await rawRow(db.pool);
    await assert.rejects(locks.acquire('box_update'), { code: 'EFORMAT' });
    assert.deepEqual(await rawRow(db.pool), before);
  });

  it('fails every operation with EFORMAT, not ECORRUPT, on fields a newer locktable added (an unknown owner field), and leaves the document', async () => {
    const owner = { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'u', z: [1, 2] };
    const kept = await store(JSON.stringify({ v: 4, o: { '0123456789abcdef': owner }, l: { box_update: { t: 'box_update', f: 1, n: 'x', a: 1, o: '0123456789abcdef' } } }));
    const before = await rawRow(db.pool);
    for (const [name, op] of operations) {
      await assert.rejects(op(), (err: unknown) => {
        assert.ok(err instanceof LockError, `${name}: ${String(err)}`);
        assert.equal(err.code, 'EFORMAT', `${name}: ${err.message}`);
        assert.deepEqual((err as LockError & { fields: string[] }).fields, ['o.0123456789abcdef.z']);
        assert.equal((err as LockError & { raw: string }).raw, kept);
        assert.match(err.message, /upgrade locktable/);
        return true;
      });
    }
    assert.deepEqual(await rawRow(db.pool), before, 'not one byte changed, version unchanged');
  });

  it('is replaced only by an explicit repair() of the exact text inspected', async () => {
    const raw = await store('{"v":1,"l":{"box_update":{"garbage":true}}}');
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
