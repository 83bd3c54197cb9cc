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

  it('a lost acquire or release on a writer that stays in the cluster: the caller is answered from the next node, without waiting for the old one to leave, and nothing stays held', async () => {
    const names = [name(), name()];
    for (const [k, op] of (['acquire', 'release'] as const).entries()) {
      const n = names[k]!;
      const proxy: Proxy = await startProxy({ port: cluster.ports(1).port });
      try {
        // A long bound: an operation that waited for node 1 to leave the
        // cluster (it never does) would end with EDATABASE outcomeUnknown after it.
        const t = open([proxy.url(database), cluster.url(3, database), cluster.url(2, database)], { retry: { deadlineMs: 40_000 } });
        await t.release(await t.acquire(name())); // warm: connections open
        const lease = op === 'release' ? await t.acquire(n) : undefined;
        // The statement never reaches node 1, and no connection through the proxy works after it:
        // for the client, a write sent to node 1 whose outcome it cannot learn there.
        const cut = proxy.cutAt((sql) => sql.includes('UPDATE') && sql.includes(n), 'drop-statement', { thenDown: true });
        let mine;
        if (op === 'acquire') mine = await t.acquire(n);
        else await t.release(lease!);
        await cut;
        const one = (await cluster.status())[0]!;
        assert.deepEqual([one.state, one.component, one.clusterSize], ['Synced', 'Primary', 3], 'node 1 stayed in the primary component throughout');
        const held = (await t.list()).filter((l) => l.name === n);
        if (op === 'acquire') {
          assert.deepEqual(held.map((l) => l.token), [mine!.token]);
          await t.release(mine!);
        } else assert.deepEqual(held, []);
        assert.deepEqual((await open(cluster.url(1, database)).list()).filter((l) => l.name === n), [], `${op}: nothing left held, as node 1 sees it`);
      } finally {
        await proxy.close();
      }
    }
  });

  it('a lost acquire that reaches the old writer late, after its caller got a lease from the next node: one holder, and nothing left held', async () => {
    const proxy: Proxy = await startProxy({ port: cluster.ports(1).port });
    try {
      const t = open([proxy.url(database), cluster.url(3, database), cluster.url(2, database)], { retry: { deadlineMs: 40_000 } });
      const n = name();
      await t.release(await t.acquire(name()));
      const cut = proxy.cutAt((sql) => sql.includes('UPDATE') && sql.includes(n), 'hold', { thenDown: true });
      const lease = await t.acquire(n);
      await cut;
      // The held statement now runs on node 1, its own connection still open:
      // refused by its time guard, by the state it finds, or at certification — never applied.
      const late = await proxy.runHeld();
      assert.ok(!late.ok || late.affectedRows === 0, `the late write applied: ${JSON.stringify(late)}`);
      const watcher = open(cluster.url(1, database));
      assert.deepEqual((await watcher.list()).filter((l) => l.name === n).map((l) => l.token), [lease.token]);
      await t.release(lease);
      assert.deepEqual((await watcher.list()).filter((l) => l.name === n), []);
    } finally {
      await proxy.close();
    }
  });

  it('leases are judged by the writer node\'s clock alone: with the next node\'s clock 5 s ahead, no process takes a lease over before it expires', async () => {
    await cluster.stop(2);
    await cluster.start(2, { FAKETIME: '+5' });
    try {
      const [rows] = await pool(2).query('SELECT UNIX_TIMESTAMP(NOW(3)) * 1000 - ? AS ahead', [Date.now()]);
      assert.ok(Number((rows as Array<{ ahead: unknown }>)[0]!.ahead) > 4_000, 'node 2 runs 5 s ahead');
      // Both processes list the nodes in the same order: both write through node 1, whose clock is this host's.
      const first = open(urls());
      const second = open(urls());
      const n = name();
      const lease = await first.acquire(n, { ttlMs: 6_000 });
      const expiresAt = lease.expiresAt!.getTime();
      // Judged by node 2's clock, the lease would be taken over 5 s early: an
      // attempt sent 2.5 s before its expiry must still find it held.
      let refusedLate = false;
      const taken = await until(
        'the lease to run out',
        async () => {
          const sentAt = Date.now();
          const got = await second.tryAcquire(n);
          if (!got && sentAt > expiresAt - 2_500) refusedLate = true;
          return got;
        },
        30_000,
      );
      assert.ok(refusedLate, 'the lease was taken over more than 2.5 s before it expired');
      await second.release(taken!);
    } finally {
      await cluster.stop(2);
      await cluster.start(2);
    }
  });
});
