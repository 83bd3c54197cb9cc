// The library's connections KILLed from another session in the middle of its
// operations: each operation is retried on a new pooled connection, and the
// outcome is as if nothing had happened.
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, serverUrl, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

describe('connections KILLed mid-operation', () => {
  let db: TestDb;
  // The killer and the observer: not connected to the suite's database, so never in the processlist it kills from.
  let admin: mysql.Connection;
  const tables: LockTable[] = [];
  const table = (taskId: string) => {
    const t = createLockTable({ db: db.url, owner: { taskId }, poolSize: 2 });
    tables.push(t);
    return t;
  };
  const entries = async () => {
    const [rows] = await admin.query(`SELECT CAST(dataJson AS CHAR) AS raw FROM \`${db.name}\`.locks WHERE id = 'platform'`);
    return JSON.parse((rows as Array<{ raw: string }>)[0]!.raw).l as Record<string, { n: string; f: number; o: { t?: string } }>;
  };
  /** KILLs every connection to the suite's database; returns the ids and what each was running. */
  const killAll = async (filter = '') => {
    const [rows] = await admin.query(`SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE DB = ? ${filter}`, [db.name]);
    const killed: Array<{ id: number; info: string | null }> = [];
    for (const r of rows as Array<{ ID: number; INFO: string | null }>) {
      try {
        await admin.query(`KILL ${Number(r.ID)}`);
        killed.push({ id: r.ID, info: r.INFO });
      } catch (err) {
        if ((err as { errno?: number }).errno !== 1094) throw err; // gone already (unknown thread id)
      }
    }
    return killed;
  };

  before(async () => {
    db = await createTestDb('kill');
    await db.pool.end(); // not used: its connections would be killed too
    admin = await mysql.createConnection({ uri: serverUrl() });
  });
  afterEach(async () => {
    await Promise.all(tables.splice(0).map((t) => t.close()));
    await admin.query(`UPDATE \`${db.name}\`.locks SET dataJson = '{"v":1,"l":{}}' WHERE id = 'platform'`);
  });
  after(async () => {
    await admin.query(`DROP DATABASE \`${db.name}\``);
    await admin.end();
  });

  it('an UPDATE KILLed while it runs is retried, and the acquisition happens once', async () => {
    const locks = table('victim');
    await locks.list(); // the pool has a connection
    // Hold the row so that the library's UPDATE has to wait for it, and is
    // certainly running when it is KILLed.
    const blocker = await mysql.createConnection({ uri: serverUrl() });
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT version FROM \`${db.name}\`.locks WHERE id = 'platform' FOR UPDATE`);
      const acquiring = locks.acquire('box_update');
      const killed = (await until("the UPDATE to wait on the row, then KILL it", async () => {
        const k = await killAll("AND INFO LIKE 'UPDATE `locks` %'");
        return k.length ? k : undefined;
      }))!;
      assert.equal(killed.length, 1);
      await blocker.query('ROLLBACK');
      const lease = await acquiring;
      const l = await entries();
      assert.deepEqual(Object.keys(l), ['box_update']);
      assert.equal(l.box_update!.n, lease.nonce);
      assert.equal(l.box_update!.f, lease.token);
      await locks.release(lease);
      assert.deepEqual(await entries(), {});
    } finally {
      await blocker.end();
    }
  });

  it('KILLs at random while 4 tables loop acquire → section → release: every operation completes, one holder at a time', async function () {
    this.timeout(120_000);
    const names = ['app_task_k1', 'app_task_k2'];
    const inside = new Map<string, number>();
    const tokens = new Map<string, number[]>();
    let stop = false;
    let kills = 0;
    let midStatement = 0;
    const killer = (async () => {
      while (!stop) {
        const k = await killAll();
        kills += k.length;
        midStatement += k.filter((x) => x.info !== null).length;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const cycles = 25;
    const loop = async (t: LockTable) => {
      for (let i = 0; i < cycles; i++) {
        const name = names[i % names.length]!;
        await t.using(
          [name as 'app_task_k1'],
          async (lease) => {
            inside.set(name, (inside.get(name) ?? 0) + 1);
            assert.equal(inside.get(name), 1, `two holders of ${name}`);
            tokens.set(name, [...(tokens.get(name) ?? []), lease.token]);
            await new Promise((r) => setTimeout(r, 1));
            inside.set(name, inside.get(name)! - 1);
          },
          { wait: true, timeoutMs: 60_000 },
        );
      }
    };
    try {
      await Promise.all(['a', 'b', 'c', 'd'].map((id) => loop(table(id))));
    } finally {
      stop = true;
      await killer;
    }
    for (const [name, list] of tokens) {
      for (let i = 1; i < list.length; i++) assert.ok(list[i]! > list[i - 1]!, `${name}: ${list}`);
    }
    assert.equal([...tokens.values()].flat().length, 4 * cycles);
    assert.deepEqual(await entries(), {}, 'nothing left held');
    assert.ok(kills > 0 && midStatement > 0, `the killer hit connections (${kills}), some in the middle of a statement (${midStatement})`);
  });

  it('a worker process whose connections are all KILLed does not crash, keeps its lock, and releases it', async () => {
    const worker = await Worker.start({ url: db.url, taskId: 'w' });
    try {
      const got = await worker.send({ op: 'acquire', names: ['mail_restart'] });
      assert.ok(got.ok, JSON.stringify(got));
      const killed = await killAll();
      assert.ok(killed.length > 0, 'its idle pooled connection was killed');
      await until('the killed connection to be gone', async () => {
        const [rows] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [db.name]);
        return (rows as Array<{ n: number }>)[0]!.n === 0;
      });
      assert.equal((await entries()).mail_restart?.f, got.token, 'the lock outlives its connection');
      const released = await worker.send({ op: 'release' });
      assert.ok(released.ok, JSON.stringify(released));
      assert.equal(worker.child.exitCode, null, 'still running');
      assert.deepEqual(await entries(), {});
    } finally {
      await worker.stop();
    }
  });
});
