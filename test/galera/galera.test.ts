// Locks on a real 3-node Galera cluster (test/helpers/galera.ts): causal
// decisions on a lagging node, Galera's errors, one writer with failover,
// clocks, and the one-statement write under certification conflicts.
// Run with `npm run test:galera` (root, mariadb-server, galera-4, rsync).
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createLockTable, DatabaseError, LockChannels, migrate, type LockTable, type RetriedEvent } from '../../lib/index.js';
import { GaleraCluster } from '../helpers/galera.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { until } from '../helpers/db.js';

const FILLER_ROWS = 150_000;

describe('a 3-node Galera cluster', function () {
  this.timeout(120_000);
  let cluster: GaleraCluster;
  let database: string;
  const tables: LockTable<string>[] = [];
  const pools: mysql.Pool[] = [];
  const open = (db: unknown, extra: Record<string, unknown> = {}) => {
    const t = createLockTable({ db, owner: { taskId: `t${tables.length}` }, ...extra }) as unknown as LockTable<string>;
    tables.push(t);
    return t;
  };
  const pool = (node: number) => {
    const p = mysql.createPool({ uri: cluster.url(node, database), connectionLimit: 2 });
    pools.push(p);
    return p;
  };
  const urls = () => cluster.urls(database);
  const name = () => `app_task_${randomBytes(4).toString('hex')}`;

  /**
   * Makes node `node` lag: one large UPDATE through node 1 that the other
   * nodes' appliers take a while to apply. Resolves when node 1 has committed it.
   */
  async function lag(): Promise<void> {
    await pool(1).query('UPDATE filler SET v = v + 1');
  }

  before(async function () {
    cluster = await GaleraCluster.create();
    database = `lt_galera_${randomBytes(4).toString('hex')}`;
    const admin = await mysql.createConnection({ uri: cluster.url(1) });
    await admin.query(`CREATE DATABASE \`${database}\``);
    await admin.end();
    const p = pool(1);
    await migrate(p);
    await p.query('CREATE TABLE filler (id INT PRIMARY KEY AUTO_INCREMENT, v INT NOT NULL)');
    await p.query(`INSERT INTO filler (v) SELECT 0 FROM seq_1_to_${FILLER_ROWS}`);
    await cluster.waitSynced();
  });

  after(async () => {
    for (const t of tables) await t.close().catch(() => {});
    for (const p of pools) await p.end().catch(() => {});
    await cluster?.remove();
  });

  it('release and extend through a lagging node see the acquisition made through another (causal reads)', async () => {
    const one = open(cluster.url(1, database));
    const three = open(cluster.url(3, database));
    for (const op of ['release', 'extend'] as const) {
      await lag();
      const lease = await one.acquire(name());
      // Node 3 has not applied the acquisition yet: without a causal read it would find nothing to release.
      if (op === 'release') await three.release(lease);
      else await three.extend(lease, 60_000);
      const left = (await one.list()).filter((l) => l.name === lease.names[0]);
      if (op === 'release') assert.deepEqual(left, []);
      else assert.equal(left.length, 1);
    }
  });

  it('1047 from a node outside the primary component is not applied: the table moves to the next node, and alone fails without outcomeUnknown', async () => {
    const isolate = await mysql.createConnection({ uri: cluster.url(3) });
    await isolate.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
    try {
      await until('node 3 to leave the primary component', async () => (await cluster.status())[2]!.component === 'non-Primary');
      const alone = open(cluster.url(3, database), { retry: { deadlineMs: 1_500 } });
      const started = performance.now();
      const err = await alone.acquire(name()).catch((e: unknown) => e);
      assert.ok(err instanceof DatabaseError, `expected EDATABASE, got ${String(err)}`);
      assert.equal(err.outcomeUnknown, false, 'nothing is applied on a non-primary node');
      assert.ok(performance.now() - started < 5_000);
      const failover = open([cluster.url(3, database), cluster.url(1, database), cluster.url(2, database)]);
      const lease = await failover.acquire(name());
      await failover.release(lease);
    } finally {
      await isolate.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'").catch(() => {});
      await isolate.end();
      await cluster.waitSynced();
    }
  });

  it('a lost reply, then failover to a lagging node: acquire() recognises its own write (no ELOCKED naming itself)', async () => {
    const proxy: Proxy = await startProxy({ port: cluster.ports(1).port });
    try {
      const t = open([proxy.url(database), cluster.url(3, database), cluster.url(2, database)]);
      const n = name();
      await t.release(await t.acquire(name())); // warm: connections open, the node's address learned
      await lag();
      void proxy.cutAt((sql) => sql.includes('UPDATE locks') && sql.includes(n), 'drop-reply', { thenDown: true });
      const lease = await t.acquire(n);
      const held = (await t.list()).find((l) => l.name === n);
      assert.equal(held?.token, lease.token);
      await t.release(lease);
      assert.equal((await t.list()).some((l) => l.name === n), false);
    } finally {
      await proxy.close();
    }
  });

  it('a mysql2 PoolCluster: its nodes in the order added, moving on from one that drops connections; it stays the host\'s', async () => {
    const proxy: Proxy = await startProxy({ port: cluster.ports(1).port });
    const pc = mysql.createPoolCluster({ defaultSelector: 'ORDER' });
    try {
      proxy.setDown(true); // accepts, then closes at once: the first node is gone
      pc.add('a', { uri: proxy.url(database), connectionLimit: 2 });
      pc.add('b', { uri: cluster.url(2, database), connectionLimit: 2 });
      pc.add('c', { uri: cluster.url(3, database), connectionLimit: 2 });
      const t = open(pc);
      const lease = await t.acquire(name());
      await t.release(lease);
      assert.deepEqual(proxy.statements, []);
      await t.close();
      // close() left the host's cluster open.
      const [rows] = await pc.of('b').query('SELECT 1 AS one');
      assert.equal((rows as Array<{ one: number }>)[0]!.one, 1);
    } finally {
      await pc.end();
      await proxy.close();
    }
  });

  it('writes through two nodes at once: certification conflicts (1213) retry the one-statement write, none fails', async () => {
    const a = open(cluster.url(1, database));
    const b = open(cluster.url(2, database));
    const retried: RetriedEvent[] = [];
    const listen = (e: unknown) => retried.push(e as RetriedEvent);
    diagnostics.subscribe(LockChannels.retried, listen);
    try {
      const until = Date.now() + 3_000;
      const worker = async (t: LockTable<string>) => {
        const n = name();
        let cycles = 0;
        while (Date.now() < until) {
          await t.release(await t.acquire(n));
          cycles++;
        }
        return cycles;
      };
      const cycles = await Promise.all([worker(a), worker(a), worker(b), worker(b)]);
      assert.ok(cycles.every((c) => c > 0));
      const conflicts = retried.filter((e) => /1213|DEADLOCK/i.test(e.reason)).length;
      const races = retried.filter((e) => e.reason === 'lost the race').length;
      assert.ok(conflicts > 0, 'two writer nodes on one row conflict at certification');
      assert.ok(races <= conflicts, `compare-and-swap races (${races}) outnumber the conflicts retried in one statement (${conflicts})`);
    } finally {
      diagnostics.unsubscribe(LockChannels.retried, listen);
    }
  });

  it('fails over when the writer node is killed or hangs, and comes back to it when it is synced again', async () => {
    const t = open(urls());
    const watcher = open(cluster.url(2, database));
    const n = name();
    for (const how of ['kill', 'hang'] as const) {
      const lease = await t.acquire(n);
      if (how === 'kill') await cluster.kill(1);
      else process.kill(cluster.pid(1)!, 'SIGSTOP');
      try {
        const started = performance.now();
        await t.release(lease);
        const again = await t.acquire(n);
        await t.release(again);
        const took = performance.now() - started;
        assert.ok(took < 15_000, `${how}: failover took ${Math.round(took)} ms`);
        assert.equal((await watcher.list()).some((l) => l.name === n), false);
      } finally {
        if (how === 'hang') {
          process.kill(cluster.pid(1)!, 'SIGCONT');
          await cluster.kill(1);
        }
        await cluster.start(1);
      }
      // Back on node 1 once it is synced: its update counter moves with our writes.
      const updates = async () => {
        const [rows] = await pool(1).query("SHOW GLOBAL STATUS LIKE 'Com_update'");
        return Number((rows as Array<{ Value: string }>)[0]!.Value);
      };
      await until('the table to write through node 1 again', async () => {
        const before = await updates();
        await t.release(await t.acquire(n));
        return (await updates()) > before + 0;
      });
    }
  });

  it('leases are judged by the writer node\'s clock: a node whose clock is 2 s behind takes no part', async () => {
    await cluster.stop(3);
    await cluster.start(3, { FAKETIME: '-2' });
    try {
      const [rows] = await pool(3).query('SELECT UNIX_TIMESTAMP(NOW(3)) * 1000 - ? AS behind', [Date.now()]);
      assert.ok(Number((rows as Array<{ behind: unknown }>)[0]!.behind) < -1_500, 'node 3 runs 2 s behind');
      // Both processes list the nodes in the same order: both write through node 1.
      const first = open([cluster.url(1, database), cluster.url(2, database), cluster.url(3, database)]);
      const second = open([cluster.url(1, database), cluster.url(2, database), cluster.url(3, database)]);
      const n = name();
      const lease = await first.acquire(n, { ttlMs: 3_000 });
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(await second.tryAcquire(n), null, 'the lease still runs 2 s');
      await first.release(lease);
    } finally {
      await cluster.stop(3);
      await cluster.start(3);
    }
  });
});
