// wait() wakes for its own blockers, not for every write to the space.
import assert from 'node:assert/strict';
import { createLockTable, type Lease, type LockTable } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { Tap } from '../helpers/tap.js';

describe('wait() watching its blockers', () => {
  let db: TestDb;
  let holder: LockTable;
  let busy: LockTable;

  before(async () => {
    db = await createTestDb('watch');
    holder = createLockTable({ db: db.pool, owner: { taskId: 'holder' } });
    busy = createLockTable({ db: db.pool, owner: { taskId: 'busy' } });
  });
  after(async () => {
    await holder.close();
    await busy.close();
    await db.drop();
  });

  it('sleeps through writes about other names, and wakes when its blocker is released', async () => {
    const tap = new Tap(db.pool);
    const waiter = createLockTable({ db: tap.db, owner: { taskId: 'waiter' } });
    try {
      const held = await holder.acquire('box_update_task');
      const waiting = waiter.wait(['box_update_task'], { timeoutMs: 20_000 });
      await until('the waiter to poll', () => tap.statements.some((s) => s.startsWith('SELECT version, CAST(TIMESTAMPDIFF')));
      tap.reset();
      // Forty writes about other names: the version moves forty times.
      for (let i = 0; i < 20; i++) await busy.release(await busy.acquire(`app_task_churn${i}`));
      await until('the waiter to poll after the churn', () => tap.statements.filter((s) => s.startsWith('SELECT version, CAST(TIMESTAMPDIFF')).length >= 3);
      const attempts = tap.statements.filter((s) => !s.startsWith('SELECT version, CAST(TIMESTAMPDIFF'));
      assert.deepEqual(attempts, [], 'no attempt to acquire while its blocker stood');
      await holder.release(held);
      const lease = await waiting;
      assert.ok(lease.token > held.token);
      await waiter.release(lease);
    } finally {
      await waiter.close();
    }
  });

  it('a line hands the name on without waking the waiters further back: each waiter reads at most three times, wherever it stands', async () => {
    const POLL = 'SELECT version, CAST(TIMESTAMPDIFF';
    // The read an attempt after a wake-up decides from (and a first attempt that met a line).
    const READ = 'SELECT version, CAST(dataJson AS CHAR) AS raw';
    const count = (tap: Tap, prefix: string) => tap.statements.filter((s) => s.startsWith(prefix)).length;
    const n = 5;
    const taps = Array.from({ length: n }, () => new Tap(db.pool));
    // Intents that outlast the test: no renewal writes or reads in the count.
    const tables = taps.map((tap, i) => createLockTable({ db: tap.db, owner: { taskId: `line${i}` }, wait: { intentTtlMs: 600_000 } }));
    const served = new Set<number>();
    // Every waiter still waiting polls twice more: it has seen the last write (and, had it to wake for it, has woken).
    const seenByAll = async () => {
      const marks = taps.map((t) => count(t, POLL));
      await until('every waiter to poll twice more', () => taps.every((t, i) => served.has(i) || count(t, POLL) >= marks[i]! + 2));
    };
    try {
      const held = await holder.acquire('app_task_line');
      const waits: Array<Promise<Lease>> = [];
      for (const [i, t] of tables.entries()) {
        waits.push(t.wait('app_task_line', { timeoutMs: 60_000 }));
        await until(`waiter ${i} in line`, async () => (await holder.listWaiters()).length === i + 1);
      }
      await seenByAll();
      let release = () => holder.release(held);
      for (let i = 0; i < n; i++) {
        await release();
        const lease = await waits[i]!;
        served.add(i);
        await seenByAll();
        release = () => tables[i]!.release(lease);
      }
      await release();
      // Its first attempt, the wake-up when the one in front took the name
      // (it is then first), the one when that one released it. Waking at
      // every handoff in front, the last of five read nine times.
      const reads = taps.map((t) => count(t, READ));
      assert.ok(reads.every((r) => r >= 1 && r <= 3), `reads per waiter, first in line first: ${reads.join(', ')}`);
    } finally {
      await Promise.all(tables.map((t) => t.close()));
    }
  });
});
