// npm run bench:galera [-- --quick]
//
// Throughput of locktable over a 3-node Galera cluster against a standalone
// server, in one run on this machine: a private standalone MariaDB and a
// private cluster (test/helpers/galera.ts), both from the installed packages,
// both with durable commits. Each scenario runs 3 lock tables in one process
// (as 3 processes would, each with its own pool and statements in flight) and
// 6 callers over them, each looping acquire → release on a name of its own,
// for the same time:
//
//   standalone     the 3 tables on one server
//   one-writer     the 3 tables with the same node list (every statement on node 1)
//   node-failure   as one-writer, with node 1 killed a third of the way in and
//                  restarted (it rejoins by IST); the longest cycle is the outage
//   three-writers  each table's list starts at another node: writes through every
//                  node, all on one row — what one writer per space avoids
//
// Prints cycles/s, each scenario's ratio to standalone and the longest cycle,
// and writes bench/results/<date>-galera.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { createLockTable, migrate, type LockTable } from '../lib/index.js';
import { GaleraCluster } from '../test/helpers/galera.js';
import { startPrivateServer } from '../test/helpers/private-server.js';

const QUICK = process.argv.includes('--quick');
const RUN_MS = QUICK ? 4_000 : 12_000;
const CALLERS = 6;
const DB = 'bench';

interface Row {
  scenario: string;
  cycles: number;
  perSecond: number;
  maxCycleMs: number;
  errors: number;
}

async function drive(tables: LockTable<string>[], runMs: number, during?: (elapsed: () => number) => Promise<void>): Promise<Omit<Row, 'scenario'>> {
  const started = performance.now();
  const end = started + runMs;
  let cycles = 0;
  let errors = 0;
  let maxCycleMs = 0;
  const caller = async (t: LockTable<string>, i: number) => {
    const name = `app_task_bench${i}`;
    while (performance.now() < end) {
      const at = performance.now();
      try {
        await t.release(await t.acquire(name));
        cycles++;
      } catch {
        errors++;
      }
      maxCycleMs = Math.max(maxCycleMs, performance.now() - at);
    }
  };
  // Warm-up: connections open, statements prepared.
  for (const [i, t] of tables.entries()) await t.release(await t.acquire(`app_task_warm${i}`));
  await Promise.all([
    ...Array.from({ length: CALLERS }, (_, i) => caller(tables[i % tables.length]!, i)),
    during?.(() => performance.now() - started),
  ]);
  const seconds = (performance.now() - started) / 1000;
  return { cycles, perSecond: Math.round(cycles / seconds), maxCycleMs: Math.round(maxCycleMs), errors };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  // The machine's load (1, 5, 15 min) before and after: the figures mean little on a busy machine.
  const loadBefore = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const server = await startPrivateServer({ databases: [DB] });
  const cluster = await GaleraCluster.create();
  try {
    const admin = await mysql.createConnection({ uri: cluster.url(1) });
    await admin.query(`CREATE DATABASE ${DB}`);
    await admin.end();
    await migrate(server.url(DB));
    await migrate(cluster.url(1, DB));
    const open = (db: unknown) => createLockTable({ db, poolSize: 4 }) as unknown as LockTable<string>;
    const run = async (scenario: string, dbs: unknown[], during?: (elapsed: () => number) => Promise<void>) => {
      const tables = dbs.map(open);
      try {
        rows.push({ scenario, ...(await drive(tables, RUN_MS, during)) });
        console.log(JSON.stringify(rows.at(-1)));
      } finally {
        for (const t of tables) await t.close();
      }
    };
    const list = (first: number) => [0, 1, 2].map((k) => cluster.url(((first - 1 + k) % 3) + 1, DB));
    await run('standalone', [server.url(DB), server.url(DB), server.url(DB)]);
    await run('one-writer', [list(1), list(1), list(1)]);
    let restarted: Promise<void> | undefined;
    await run('node-failure', [list(1), list(1), list(1)], async (elapsed) => {
      while (elapsed() < RUN_MS / 3) await new Promise((r) => setTimeout(r, 20));
      await cluster.kill(1);
      // Back in the background: the run's window does not wait for it.
      restarted = new Promise((r) => setTimeout(r, 1_000)).then(() => cluster.start(1));
    });
    await restarted;
    await cluster.waitSynced();
    await run('three-writers', [list(1), list(2), list(3)]);
  } finally {
    await cluster.remove();
    await server.remove();
  }
  const base = rows.find((r) => r.scenario === 'standalone')!.perSecond;
  const loadAfter = os.loadavg().map((l) => Math.round(l * 100) / 100);
  console.log(`\n${CALLERS} callers, ${RUN_MS / 1000} s each, acquire+release cycles; load average ${loadBefore.join(' ')} before, ${loadAfter.join(' ')} after`);
  console.log('scenario        cycles/s  vs standalone  longest cycle ms  errors');
  for (const r of rows) {
    console.log(`${r.scenario.padEnd(15)} ${String(r.perSecond).padStart(8)}  ${(r.perSecond / base).toFixed(2).padStart(13)}  ${String(r.maxCycleMs).padStart(16)}  ${String(r.errors).padStart(6)}`);
  }
  const dir = path.join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().slice(0, 10)}-galera${QUICK ? '-quick' : ''}.json`);
  writeFileSync(file, JSON.stringify({ runMs: RUN_MS, callers: CALLERS, loadavg: { before: loadBefore, after: loadAfter }, rows }, null, 2));
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
