// The chaos controller: a private server (of the kind under test), N worker processes looping over a
// few names, and for a bounded time random faults — a worker SIGKILLed (and a
// new one started), the workers' connections KILLed, the server restarted
// (cleanly or by SIGKILL). Then every worker is asked to stop, the lock row is
// read with plain SQL, and the checker judges the evidence.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { parseDocument } from '../../lib/document.js';
import { waiters } from '../../lib/transitions.js';
import { migrate } from '../../lib/index.js';
import { GaleraCluster } from '../helpers/galera.js';
import { startPrivateServer, type PrivateServer } from '../helpers/private-server.js';
import { prng } from '../helpers/prng.js';
import { check, type LogRecord, type Verdict } from './checker.js';

const WORKER = path.join(__dirname, 'worker.js');
const DB = 'chaos';

export interface ChaosOptions {
  durationMs: number;
  workers?: number;
  names?: number;
  seed?: number;
  /** Longest critical section, ms. */
  holdMaxMs?: number;
  /** Pause between two faults: [min, max] ms. */
  faultEveryMs?: [number, number];
  /**
   * Every third worker (the 3rd, 6th, …) works under using() with this lease
   * length, holding up to holdMaxMs (longer than a renewal period): only its
   * renewals keep its lease. Default { ttlMs: 12000, holdMaxMs: 6000 } (a lease that outlives a server restart, MySQL's crash recovery included: the chaos run tests renewal, not outages longer than a lease); ttlMs 0: none.
   */
  renewing?: { ttlMs: number; holdMaxMs: number };
  log?: (line: string) => void;
  /**
   * Over a 3-node Galera cluster instead of one server: every worker lists
   * the nodes in the same order (one writer node), and the server faults are
   * node kills (kill -9, then a restart that rejoins by IST), mostly of the
   * writer node, so that the workers fail over and back.
   */
  galera?: boolean;
}

export interface ChaosSummary extends Verdict {
  seed: number;
  durationMs: number;
  workersStarted: number;
  /** Sections of the using() workers held past a renewal period (only a renewal kept them), and how many of those ended by a lost lease. */
  renewed: { sections: number; lost: number };
  faults: { sigkill: number; connectionKills: number; connectionKillRounds: number; restartGraceful: number; restartCrash: number; nodeKills: number; nodeRestarts: number };
  /** On a cluster: how often a worker's table moved to another node, and back to an earlier one (from the workers' logs). */
  failovers: { away: number; back: number; why: Record<string, number> };
  /** The longest time, ms, in which no worker entered a critical section (all names together). */
  maxStallMs: number;
  /**
   * What went wrong in the harness itself (a node that would not restart, a
   * fault that could not be injected): the run then fails, saying so, and the
   * checker still judges what the workers did.
   */
  harnessErrors: string[];
  /** Workers that did not stop within a minute of being asked (then SIGKILLed). */
  hung: number;
  /** Workers that exited by themselves with an error. */
  crashed: number;
}

interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const random = prng(seed);
  const say = options.log ?? (() => {});
  const nWorkers = options.workers ?? 6;
  const names = Array.from({ length: options.names ?? 3 }, (_, i) => `app_task_chaos${i}`);
  const [faultMin, faultMax] = options.faultEveryMs ?? [150, 900];
  const logs = mkdtempSync(path.join(os.tmpdir(), 'locktable-chaos-'));
  let server: PrivateServer | undefined;
  let cluster: GaleraCluster | undefined;
  let url: string | string[];
  if (options.galera) {
    cluster = await GaleraCluster.create();
    const c = await mysql.createConnection({ uri: cluster.url(1) });
    await c.query(`CREATE DATABASE ${DB}`);
    await c.end();
    url = cluster.urls(DB);
  } else {
    server = await startPrivateServer({ databases: [DB] });
    url = server.url(DB);
  }
  // The node admin statements go to: one that is Synced (the server when
  // there is no cluster), the next one after a failure. A node that runs but
  // is still joining refuses connections until its state transfer is done.
  let adminAt = 0;
  const adminUrl = () => {
    if (!cluster) return server!.url('mysql');
    for (let k = 0; k < cluster.size; k++) {
      const n = ((adminAt + k) % cluster.size) + 1;
      if (cluster.ready(n)) return cluster.url(n);
    }
    throw new Error('no node is ready');
  };
  const harnessErrors: string[] = [];
  let nodeRestart: Promise<void> | undefined;
  const faults = { sigkill: 0, connectionKills: 0, connectionKillRounds: 0, restartGraceful: 0, restartCrash: 0, nodeKills: 0, nodeRestarts: 0 };
  const killedAt = new Map<number, bigint>();
  const stoppedCleanly = new Set<number>();
  const workers = new Set<Running>();
  let started = 0;
  let crashed = 0;
  let hung = 0;
  // Not connected to the chaos database: never in the processlist it KILLs from.
  let admin: mysql.Connection | undefined;
  const adminQuery = async (sql: string, values?: unknown[]) => {
    for (let i = 0; ; i++) {
      try {
        admin ??= await mysql.createConnection({ uri: adminUrl() });
        return (await admin.query(sql, values))[0];
      } catch (err) {
        admin?.destroy();
        admin = undefined;
        adminAt++;
        if (i >= 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  // Every third worker works under using() with a short lease that only its renewals keep alive.
  const renewing = options.renewing ?? { ttlMs: 12_000, holdMaxMs: 6_000 };
  const workerMode = (index: number) => (index % 3 === 2 && renewing.ttlMs > 0 ? { ...renewing } : { holdMaxMs: options.holdMaxMs ?? 15 });

  const spawnWorker = () => {
    const index = started++;
    const child = spawn(
      process.execPath,
      [WORKER, JSON.stringify({ url, names, log: path.join(logs, `worker-${index}.log`), seed: seed + index, ...workerMode(index) })],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const w: Running = {
      child,
      pid: child.pid!,
      stderr: '',
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    };
    child.stderr!.on('data', (d) => (w.stderr += d));
    workers.add(w);
    void w.exited.then(({ code, signal }) => {
      workers.delete(w);
      if (killedAt.has(w.pid)) return;
      // SIGTERM before its handler was installed (a worker started just before the end) ends it before it did anything.
      if (code === 0 || signal === 'SIGTERM') stoppedCleanly.add(w.pid);
      else {
        crashed++;
        say(`worker ${w.pid} exited by itself (${code ?? signal}): ${w.stderr.trim().slice(-500)}`);
      }
    });
    return w;
  };

  try {
    await migrate(cluster ? cluster.url(1, DB) : (url as string));
    for (let i = 0; i < nWorkers; i++) spawnWorker();
    const where = cluster ? `Galera nodes on ports ${[1, 2, 3].map((n) => cluster!.ports(n).port).join(', ')}` : `server on port ${server!.port}`;
    say(`chaos: seed ${seed}, ${nWorkers} workers on ${names.length} names, ${Math.round(options.durationMs / 1000)} s, ${where}, logs in ${logs}`);
    const end = Date.now() + options.durationMs;
    try {
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, random.int(faultMin, faultMax)));
        const roll = random.next();
        if (roll < 0.4) {
          const victims = [...workers].filter((w) => w.child.exitCode === null && w.child.signalCode === null);
          if (!victims.length) continue;
          const w = random.pick(victims);
          // Read BEFORE kill(): the victim certainly ran until this moment, and
          // may have died at any moment after it. A time read after kill() returned
          // can come late (the controller descheduled in between) while a waiter
          // has already seen the victim dead and entered — a false overlap, seen
          // once in CI. The earlier bound can only miss an overlap inside the
          // few microseconds of the kill() call, never report one that did not happen.
          killedAt.set(w.pid, process.hrtime.bigint());
          w.child.kill('SIGKILL');
          faults.sigkill++;
          await w.exited;
          spawnWorker();
        } else if (roll < 0.85) {
          const rows = (await adminQuery('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?', [DB])) as Array<{ ID: number }>;
          faults.connectionKillRounds++;
          for (const r of rows) {
            try {
              await adminQuery(`KILL ${Number(r.ID)}`);
              faults.connectionKills++;
            } catch {
              // already gone
            }
          }
        } else if (cluster) {
          // One node down at a time, and only with every node Synced: two of
          // three keep the primary component. After a node that would not
          // restart, no more node kills (the run has failed, and says why).
          if (nodeRestart || harnessErrors.length || ![1, 2, 3].every((n) => cluster!.ready(n))) continue;
          const node = random.chance(0.6) ? 1 : random.int(2, 3);
          admin?.destroy();
          admin = undefined;
          await cluster.kill(node);
          faults.nodeKills++;
          say(`chaos: node ${node} killed`);
          const downFor = random.int(500, 5_000);
          nodeRestart = (async () => {
            await new Promise((r) => setTimeout(r, downFor));
            const startedAt = Date.now();
            try {
              await cluster!.start(node);
              // The donor too: the next node kill waits for a cluster that is whole again.
              await cluster!.waitSynced(120_000);
            } catch (err) {
              harnessErrors.push(`node ${node} did not come back after a kill -9 (${Math.round((Date.now() - startedAt) / 1000)} s): ${(err as Error).message}`);
              say(`chaos: HARNESS ERROR: ${harnessErrors.at(-1)}`);
              return;
            }
            faults.nodeRestarts++;
            say(`chaos: node ${node} back after ${downFor + Date.now() - startedAt} ms (Synced)`);
          })().finally(() => (nodeRestart = undefined));
        } else {
          const how = random.chance(0.5) ? 'graceful' : 'crash';
          admin?.destroy();
          admin = undefined;
          await server!.restart(how);
          if (how === 'graceful') faults.restartGraceful++;
          else faults.restartCrash++;
        }
      }
    } catch (err) {
      // A fault the harness could not inject or undo: the run fails saying so,
      // but the workers still stop cleanly and the checker still judges them.
      harnessErrors.push(`the fault loop failed: ${(err as Error).stack ?? String(err)}`);
      say(`chaos: HARNESS ERROR: ${harnessErrors.at(-1)}`);
    }
    say('chaos: faults stopped; asking every worker to stop');
    if (server && !server.running) await server.start();
    await nodeRestart;
    await Promise.all(
      [...workers].map(async (w) => {
        w.child.kill('SIGTERM');
        const timer = setTimeout(() => {
          hung++;
          say(`worker ${w.pid} did not stop within 60 s: SIGKILL`);
          killedAt.set(w.pid, process.hrtime.bigint());
          w.child.kill('SIGKILL');
        }, 60_000);
        await w.exited;
        clearTimeout(timer);
      }),
    );
    // Causal on a cluster: whatever node answers has applied every commit.
    const causal = cluster ? 'SET STATEMENT wsrep_sync_wait=1 FOR ' : '';
    const rows = (await adminQuery(`${causal}SELECT CAST(dataJson AS CHAR) AS raw FROM \`${DB}\`.locks WHERE id = 'platform'`)) as Array<{ raw: string }>;
    const doc = parseDocument('platform', rows[0]!.raw); // owners resolved, whatever the stored format
    const finalHeld = new Map(Object.entries(doc.l).map(([name, e]) => [name, { pid: e.o.p, token: e.f }]));
    const finalWaiting = waiters(doc).map((w) => ({ pid: w.intent.o.p, names: w.names }));
    const records: LogRecord[] = [];
    for (const file of readdirSync(logs)) {
      for (const line of readFileSync(path.join(logs, file), 'utf8').split('\n')) {
        // A SIGKILL can cut the last line short: it is simply not a record.
        if (line) records.push(...parseLine(line));
      }
    }
    const verdict = check({ records, killedAt, stoppedCleanly, finalHeld, finalWaiting });
    const kinds = (k: string) => records.filter((r) => (r as { k: string }).k === k).length;
    const why: Record<string, number> = {};
    for (const r of records as Array<{ k: string; why?: string }>) if (r.k === 'failover') why[r.why ?? '?'] = (why[r.why ?? '?'] ?? 0) + 1;
    const failovers = { away: kinds('failover'), back: kinds('back'), why };
    const enters = records.filter((r) => r.k === 'enter').map((r) => BigInt(r.t)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let maxStall = 0n;
    for (let i = 1; i < enters.length; i++) if (enters[i]! - enters[i - 1]! > maxStall) maxStall = enters[i]! - enters[i - 1]!;
    const maxStallMs = Number(maxStall / 1_000_000n);
    const longExits = records.filter((r) => r.k === 'exit' && ((r as { heldMs?: number }).heldMs ?? 0) > renewing.ttlMs / 3) as Array<{ lost?: boolean }>;
    const renewed = { sections: longExits.length, lost: longExits.filter((r) => r.lost).length };
    return { seed, durationMs: options.durationMs, workersStarted: started, renewed, faults, failovers, maxStallMs, harnessErrors, hung, crashed, ...verdict };
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all([...workers].map((w) => w.exited));
    admin?.destroy();
    await nodeRestart?.catch(() => {});
    await server?.remove();
    await cluster?.remove();
    rmSync(logs, { recursive: true, force: true });
  }
}

function parseLine(line: string): LogRecord[] {
  try {
    return [JSON.parse(line) as LogRecord];
  } catch {
    return [];
  }
}

/** One screenful: what ran, what was injected, what the checker found. */
export function describe(s: ChaosSummary): string {
  const count = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    `seed ${s.seed}, ${Math.round(s.durationMs / 1000)} s, ${s.workersStarted} workers started`,
    `cycles completed: ${s.cycles} (critical sections: ${s.sections}; under using() held past a renewal: ${s.renewed.sections}, of which lost: ${s.renewed.lost})`,
    `faults: worker SIGKILL ${s.faults.sigkill}; connections KILLed ${s.faults.connectionKills} (in ${s.faults.connectionKillRounds} rounds); ` +
      `server restarts ${s.faults.restartGraceful + s.faults.restartCrash} (graceful ${s.faults.restartGraceful}, crash ${s.faults.restartCrash}); ` +
      `Galera node kills ${s.faults.nodeKills}, restarts ${s.faults.nodeRestarts}; workers' tables failed over ${s.failovers.away} times (${count(s.failovers.why)}; back to an earlier node ${s.failovers.back})`,
    `longest time with no critical section entered: ${s.maxStallMs} ms`,
    `overlaps: ${s.overlaps.length}; token regressions: ${s.tokenRegressions.length}; leaked: ${s.leaked.length}; lost: ${s.lost.length}; unclosed sections: ${s.unclosed.length}`,
    `left held by SIGKILLed workers at the end (expected, dead owners): ${s.leftByKilled}; waiters left in line by live workers: ${s.leakedWaiters.length}`,
    `acquire errors: ${count(s.acquireErrors)}; release errors: ${count(s.releaseErrors)}; workers crashed: ${s.crashed}; hung: ${s.hung}`,
    ...s.harnessErrors.map((e) => `HARNESS ERROR: ${e}`),
  ].join('\n');
}

/** Whether the run proves what it must: exclusion held, nothing leaked or lost. */
export function passed(s: ChaosSummary): boolean {
  return (
    !s.overlaps.length && !s.tokenRegressions.length && !s.leaked.length && !s.leakedWaiters.length && !s.lost.length && !s.unclosed.length && !s.crashed && !s.hung && !s.harnessErrors.length
  );
}
