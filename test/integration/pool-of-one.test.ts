// A host pool of ONE connection shared by a holder and 200 waiters: nothing in
// the library may keep that connection while it waits, or the holder's
// release, which needs it too, never runs and everyone waits forever.
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

describe('a pool of one connection', () => {
  let db: TestDb;
  let pool: mysql.Pool;
  let locks: LockTable;

  before(async () => {
    db = await createTestDb('pool1');
    pool = mysql.createPool({ uri: db.url, connectionLimit: 1 });
    locks = createLockTable({ db: pool, retry: { deadlineMs: 60_000 } });
  });
  after(async () => {
    await locks.close();
    await pool.end();
    await db.drop();
  });

  it('serves 200 concurrent waiters on 4 names while their holders release through the same connection', async function () {
    this.timeout(120_000);
    const names = ['app_task_p0', 'app_task_p1', 'app_task_p2', 'app_task_p3'] as const;
    const holders = await Promise.all(names.map((n) => locks.acquire(n)));
    const inside = new Map<string, number>();
    const tokens = new Map<string, number[]>();
    let done = 0;
    const waiters = Array.from({ length: 200 }, (_, i) => {
      const name = names[i % names.length]!;
      return locks.using(
        [name],
        async (lease) => {
          inside.set(name, (inside.get(name) ?? 0) + 1);
          assert.equal(inside.get(name), 1, `two holders of ${name}`);
          tokens.set(name, [...(tokens.get(name) ?? []), lease.token]);
          await new Promise((r) => setImmediate(r));
          inside.set(name, inside.get(name)! - 1);
          done++;
        },
        // A bound on liveness, not on speed: a deadlock never ends, progress does.
        { wait: true, timeoutMs: 90_000 },
      );
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, 0, 'no one got in while the holders held');
    // The holders release through the same one connection the waiters poll and acquire through.
    await Promise.all(holders.map((h) => locks.release(h)));
    await Promise.all(waiters);
    assert.equal(done, 200);
    for (const [name, list] of tokens) {
      assert.equal(list.length, 50, name);
      for (let i = 1; i < list.length; i++) assert.ok(list[i]! > list[i - 1]!, `${name}: ${list}`);
    }
    assert.deepEqual(await locks.list(), []);
  });
});
