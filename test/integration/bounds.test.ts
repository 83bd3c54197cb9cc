// Every bound the API promises holds whatever the database does: timeoutMs
// and signal of wait(), and retry.deadlineMs of every call, while the server
// refuses connections, hangs (SIGSTOP), while the host's own pool is exhausted
// by its long queries, and for calls queued behind each other. A private
// server: it is stopped and frozen here.
//
// LOCKTABLE_PRINT_BOUNDS=1 prints the measured worst cases at the end.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { createLockTable, migrate, type Lease, type LockError, type LockTable } from '../../lib/index.js';
import { until } from '../helpers/db.js';
import { startPrivateServer, type PrivateServer } from '../helpers/private-server.js';

const DB = 'lt_bounds';
/** What a call may take past its bound: timers firing late on a loaded machine, one event-loop turn. Documented: docs/time-and-bounds.md. */
const MARGIN_MS = 250;
/** An abort takes effect within this (documented: ~50 ms; the test allows for a loaded machine). */
const ABORT_MARGIN_MS = 150;

const measured: Array<{ bound: string; fault: string; promised: string; worst: number; over: number }> = [];
/** Records the calls' times against their bounds (one bound for all, or one each). */
function record(bound: string, fault: string, promised: number | number[], took: number[]): void {
  const each = (i: number) => (Array.isArray(promised) ? promised[i]! : promised);
  const over = Math.max(...took.map((ms, i) => ms - each(i)));
  const label = Array.isArray(promised) ? `${Math.min(...promised)}..${Math.max(...promised)}` : String(promised);
  measured.push({ bound, fault, promised: label, worst: Math.round(Math.max(...took)), over: Math.round(over) });
}

/** How long `p` takes to settle, and how it settled. */
async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: LockError }> {
  const started = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error: error as LockError };
  }
}

function assertWithin(r: { ms: number; error?: LockError }, code: string, bound: number, margin: number, what: string): void {
  assert.equal(r.error?.code, code, `${what}: ${r.error ? `${r.error.code} ${r.error.message}` : 'resolved'}`);
  assert.ok(r.ms <= bound + margin, `${what}: settled after ${Math.round(r.ms)} ms, bound ${bound} ms + ${margin} ms`);
}

/** acquire, release (of `lease`) and list on `t`, whose retry.deadlineMs is 1,000: each gives up within it with EDATABASE. Resolves with how long each took. */
async function eachGivesUp(t: LockTable, lease: Lease): Promise<number[]> {
  const took: number[] = [];
  for (const [what, call] of [
    ['acquire', () => t.acquire('box_update')],
    ['release', () => t.release(lease)],
    ['list', () => t.list()],
  ] as const) {
    const r = await timed((call as () => Promise<unknown>)());
    assertWithin(r, 'EDATABASE', 1_000, MARGIN_MS, what);
    took.push(r.ms);
  }
  return took;
}

/**
 * wait() on `t` under `fault`: with timeoutMs it fails ETIMEDOUT within it, and
 * with a signal fired at abortAtMs it fails EABORTED at once; both recorded.
 */
async function waitGivesUp(t: LockTable, fault: string, names: [string, string], timeoutMs: number, abortAtMs: number): Promise<void> {
  const w = await timed(t.wait(names[0] as never, { timeoutMs }));
  assertWithin(w, 'ETIMEDOUT', timeoutMs, MARGIN_MS, 'wait');
  record(`timeoutMs ${timeoutMs}`, fault, timeoutMs, [w.ms]);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), abortAtMs);
  const a = await timed(t.wait(names[1] as never, { signal: abort.signal }));
  assertWithin(a, 'EABORTED', abortAtMs, ABORT_MARGIN_MS, 'aborted wait');
  record(`signal at ${abortAtMs}`, fault, abortAtMs, [a.ms]);
}

/**
 * SIGSTOP, and wait until every thread of the server is stopped: the signal
 * stops a multi-threaded server thread by thread, and a statement answered in
 * between would make a "hung" server answer (seen on MySQL 9.7).
 */
async function hang(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const state = (tid: string) => {
    try {
      return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'))?.[1];
    } catch {
      return 'T'; // a thread that is gone answers nothing
    }
  };
  await until('every thread of the server to be stopped', () => readdirSync(`/proc/${pid}/task`).every((tid) => state(tid) === 'T'), 5_000);
}

describe('every promised bound holds (a private server)', function () {
  this.timeout(120_000);
  let server: PrivateServer;
  let root: mysql.Pool;
  const tables: LockTable[] = [];
  const pools: mysql.Pool[] = [];
  const table = (db: unknown, extra: object = {}) => {
    const t = createLockTable({ db, ...extra });
    tables.push(t);
    return t;
  };

  before(async () => {
    server = await startPrivateServer({ databases: [DB] });
    await migrate(server.url(DB));
    root = mysql.createPool({ uri: server.url(DB), connectionLimit: 2 });
  });
  afterEach(async () => {
    if (server.pid && server.running) process.kill(server.pid, 'SIGCONT');
    if (!server.running) await server.start();
    await Promise.all(tables.splice(0).map((t) => t.close()));
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => {})));
    await root.query(`UPDATE locks SET dataJson = '{"v":2,"o":{},"l":{}}', dataCrc = CRC32(dataJson) WHERE id = 'platform'`);
  });
  after(async () => {
    if (process.env.LOCKTABLE_PRINT_BOUNDS) {
      console.log('\n| bound | fault | promised (ms) | measured worst (ms) | worst past its bound (ms) |\n|---|---|---|---|---|');
      for (const m of measured) console.log(`| ${m.bound} | ${m.fault} | ${m.promised} | ${m.worst} | ${m.over} |`);
    }
    await root?.end();
    await server?.remove();
  });

  describe('refused connections (the server is down)', () => {
    it('wait({ timeoutMs: 500 }) fails with ETIMEDOUT after ~500 ms, the fault as cause', async () => {
      const t = table(server.url(DB));
      await t.list();
      await server.stop('graceful');
      const r = await timed(t.wait('box_update', { timeoutMs: 500 }));
      assertWithin(r, 'ETIMEDOUT', 500, MARGIN_MS, 'wait');
      assert.ok((r.error as Error & { cause?: unknown }).cause, 'the database fault is the cause');
      record('timeoutMs 500', 'refused connections', 500, [r.ms]);
    });

    it('an AbortSignal fired at 500 ms settles wait() at once with EABORTED', async () => {
      const t = table(server.url(DB));
      await server.stop('graceful');
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('operator')), 500);
      const r = await timed(t.wait('box_update', { signal: abort.signal }));
      assertWithin(r, 'EABORTED', 500, ABORT_MARGIN_MS, 'aborted wait');
      record('signal at 500', 'refused connections', 500, [r.ms]);
    });

    it('acquire, release and list give up after retry.deadlineMs with EDATABASE', async () => {
      const t = table(server.url(DB), { retry: { deadlineMs: 1_000 } });
      const lease = await t.acquire('mail_restart');
      await server.stop('graceful');
      const took = await eachGivesUp(t, lease);
      record('retry.deadlineMs 1000', 'refused connections', 1_000, took);
    });
  });

  describe('a hung server (SIGSTOP)', () => {
    it('acquire, release, list and wait give up after their own bounds, and a cut write is settled later', async () => {
      const t = table(server.url(DB), { retry: { deadlineMs: 1_000 } });
      const lease = await t.acquire('mail_restart');
      await hang(server.pid!);
      const took = await eachGivesUp(t, lease);
      record('retry.deadlineMs 1000', 'hung server', 1_000, took);
      await waitGivesUp(t, 'hung server', ['app_task_hung', 'app_task_hung2'], 600, 300);
      process.kill(server.pid!, 'SIGCONT');
      // What was cut may have been applied: released in the background once the server answers.
      const other = table(server.url(DB), { owner: { taskId: 'other' } });
      await until('every lock to be released', async () => (await other.list()).length === 0, 30_000);
    });
  });

  describe("the host's own pool exhausted by its long queries", () => {
    it('wait() honours timeoutMs and its signal, acquire honours retry.deadlineMs, and nothing given up runs later', async () => {
      const pool = mysql.createPool({ uri: server.url(DB), connectionLimit: 2 });
      pools.push(pool);
      const t = table(pool);
      const short = table(pool, { retry: { deadlineMs: 1_000 } });
      await t.list();
      await short.list();
      const long = [pool.query('SELECT SLEEP(20)'), pool.query('SELECT SLEEP(20)')].map((q) => q.catch(() => undefined));
      await until('both long queries to run', async () => {
        const [rows] = await root.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(20)'");
        return Number((rows as Array<{ n: unknown }>)[0]!.n) === 2;
      });
      await waitGivesUp(t, 'exhausted pool', ['box_update', 'box_update'], 2_000, 500);
      const q = await timed(short.acquire('mail_restart'));
      assertWithin(q, 'EDATABASE', 1_000, MARGIN_MS, 'acquire');
      record('retry.deadlineMs 1000', 'exhausted pool', 1_000, [q.ms]);
      await root.query("KILL QUERY (SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(20)' LIMIT 1)").catch(() => undefined);
      const [rows] = await root.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(20)'");
      for (const { ID } of rows as Array<{ ID: number }>) await root.query(`KILL QUERY ${ID}`);
      await Promise.all(long);
      // The calls that gave up never ran once connections freed up: no lock is held.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await t.list(), []);
    });
  });

  describe('lost races (another writer moves the version all the time)', () => {
    it('an acquire racing six writers that move the version all the time settles (won, or ECONTENDED) within retry.deadlineMs', async () => {
      const t = table(server.url(DB), { fastPath: false, retry: { deadlineMs: 500 } });
      await t.list();
      let racing = true;
      const rivals = mysql.createPool({ uri: server.url(DB), connectionLimit: 6 });
      pools.push(rivals);
      const rival = Promise.all(
        Array.from({ length: 6 }, async () => {
          while (racing) await rivals.query("UPDATE locks SET version = version + 1 WHERE id = 'platform'");
        }),
      );
      try {
        const took: number[] = [];
        for (let i = 0; i < 3; i++) {
          const r = await timed(t.acquire(`app_task_race${i}`));
          // A compare-and-swap may win a gap between the rivals' updates; every loss must end by the bound:
          // ECONTENDED, or (a statement still queued on the row lock when the bound fired, under load)
          // EDATABASE with outcomeUnknown, whatever it may hold then released in the background.
          if (r.error) {
            const unknown = r.error.code === 'EDATABASE' && (r.error as LockError & { outcomeUnknown?: boolean }).outcomeUnknown === true;
            assertWithin(r, unknown ? 'EDATABASE' : 'ECONTENDED', 500, MARGIN_MS, 'acquire');
          }
          took.push(r.ms);
          assert.ok(r.ms <= 500 + MARGIN_MS, `acquire ${i}: ${Math.round(r.ms)} ms`);
        }
        record('retry.deadlineMs 500', 'lost races', 500, took);
      } finally {
        racing = false;
        await rival;
      }
    });
  });

  describe('20 calls queued behind each other (a hung server, 2 statements in flight)', () => {
    it('each gives up after its own bound, not after the sum of those ahead of it', async () => {
      const t = table(server.url(DB), { retry: { deadlineMs: 800 } });
      await t.list();
      await hang(server.pid!);
      const lists = await Promise.all(Array.from({ length: 20 }, () => timed(t.list())));
      for (const r of lists) assertWithin(r, 'EDATABASE', 800, MARGIN_MS, 'queued list');
      record('retry.deadlineMs 800', '20 queued calls', 800, lists.map((r) => r.ms));
      const acquires = await Promise.all(Array.from({ length: 20 }, (_, i) => timed(t.acquire(`app_task_q${i}`))));
      for (const r of acquires) assertWithin(r, 'EDATABASE', 800, MARGIN_MS, 'queued acquire');
      record('retry.deadlineMs 800 (acquire)', '20 queued calls', 800, acquires.map((r) => r.ms));
      const waits = await Promise.all(Array.from({ length: 20 }, (_, i) => timed(t.wait(`app_task_w${i}`, { timeoutMs: 300 + 20 * i }))));
      waits.forEach((r, i) => assertWithin(r, 'ETIMEDOUT', 300 + 20 * i, MARGIN_MS, `queued wait ${i}`));
      record('timeoutMs', '20 queued calls', waits.map((_, i) => 300 + 20 * i), waits.map((r) => r.ms));
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 200);
      const aborted = await Promise.all(Array.from({ length: 20 }, (_, i) => timed(t.wait(`app_task_a${i}`, { signal: abort.signal }))));
      for (const r of aborted) assertWithin(r, 'EABORTED', 200, ABORT_MARGIN_MS, 'queued aborted wait');
      record('signal at 200', '20 queued calls', 200, aborted.map((r) => r.ms));
      process.kill(server.pid!, 'SIGCONT');
      const other = table(server.url(DB), { owner: { taskId: 'other' } });
      await until('every lock to be released', async () => (await other.list()).length === 0, 30_000);
    });
  });
});
