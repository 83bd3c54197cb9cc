// A chaos worker: loops wait → critical section → release over a few names,
// and writes what it did to its own append-only log, one JSON object a line.
// The enter record is written after the lock is granted and before the
// section; the exit record before release is called. SIGTERM asks it to finish
// its cycle, close and exit 0. It may be SIGKILLed at any moment.
//
// A worker with `ttlMs` does its sections under using() with that lease
// length, holding longer than a renewal period, so that only renewals keep
// its lease; when the signal aborts (the lease lost) it ends its section at
// once, as a task should.
//
// A worker with `kinds` (the kinds variant) takes each of its names in one of
// three modes, chosen per call: exclusive (any name), shared (`mode:
// 'shared'`, the `shared` names) or as a semaphore (`limit`, the `semaphore`
// names: every user of a name must agree on its limit), one or two names at
// once, waiting in line (fair waiting, no barging). Its records also say what
// each call asked for (`want`), when it got in line (`queued`, from the
// locktable:queued channel) and the mode of each section.
import diagnostics from 'node:diagnostics_channel';
import { openSync, writeSync } from 'node:fs';
import { format } from 'node:util';
import createDebug from 'debug';
import { createLockTable, LockChannels, type DequeuedEvent, type Lease, type LockError } from '../../lib/index.js';
import { prng } from '../helpers/prng.js';

export interface KindsConfig {
  /** Names taken exclusive or shared (no limit). */
  shared: string[];
  /** Names taken exclusive or as a semaphore of `limit`. */
  semaphore: string[];
  limit: number;
}

const config = JSON.parse(process.argv[2]!) as { url: string | string[]; names: string[]; log: string; seed: number; holdMaxMs: number; ttlMs?: number; kinds?: KindsConfig };
const fd = openSync(config.log, 'a'); // O_APPEND: each record lands whole at the end, and survives a SIGKILL once written
const random = prng(config.seed);
const now = () => process.hrtime.bigint().toString();
const record = (r: object) => writeSync(fd, `${JSON.stringify({ ...r, pid: process.pid, t: now() })}\n`);
// On a cluster: every time the table moves to another node, a record (the
// library logs it on its debug channel locktable:cluster; the records count
// the failovers, nothing judges them).
if (Array.isArray(config.url)) {
  createDebug.enable([process.env.DEBUG, 'locktable:cluster'].filter(Boolean).join(','));
  const write = createDebug.log;
  createDebug.log = (...args: unknown[]) => {
    const line = format(...args);
    if (line.includes('locktable:cluster')) {
      const away = /node (\S+) failed \((.*)\): statements go to (\S+)/.exec(line);
      const back = /node (\S+) is back/.exec(line);
      if (away) record({ k: 'failover', from: away[1], why: away[2], to: away[3] });
      else if (back) record({ k: 'back', to: back[1] });
    }
    if (process.env.DEBUG) write(...args);
  };
}
const locks = createLockTable({ db: config.url, owner: { taskId: `chaos-${process.pid}` }, poolSize: 2 });
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());

/** One section under using(): renewed while it runs, ended at once when the lease is lost. */
async function usingCycle(names: string[], ttlMs: number): Promise<void> {
  let token = 0;
  try {
    await locks.using(
      names as never,
      async (lease, signal) => {
        token = lease.token;
        const entered = performance.now();
        for (const name of names) record({ k: 'enter', name, token });
        let exited = false;
        const exit = () => {
          if (exited) return;
          exited = true;
          const heldMs = Math.round(performance.now() - entered);
          for (const name of names) record({ k: 'exit', name, token, heldMs, lost: signal.aborted });
        };
        // The exit record is written in the abort listener itself: the moment the work learns of the loss.
        signal.addEventListener('abort', exit, { once: true });
        await new Promise<void>((resolve) => {
          // Past one renewal period (a third of the lease), so that only renewals keep it.
          const timer = setTimeout(resolve, random.int(Math.min(config.holdMaxMs, Math.ceil(ttlMs / 3) + 500), config.holdMaxMs));
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        exit();
      },
      { wait: true, timeoutMs: 30_000, signal: stop.signal, ttlMs },
    );
    record({ k: 'released', token });
  } catch (err) {
    const e = err as LockError & { reason?: string };
    const code = e.code ?? 'UNKNOWN';
    if (!token) {
      if (code !== 'EABORTED') record({ k: 'acquire-error', code, message: e.message });
    } else record({ k: 'release-error', token, code, reason: e.reason, message: e.message });
  }
}

/** One call of the kinds variant: wait in some mode → section → release. */
async function kindsCycle(kinds: KindsConfig): Promise<void> {
  const roll = random.next();
  const kind = roll < 0.4 ? ({ mode: 'exclusive' } as const) : roll < 0.7 ? ({ mode: 'shared' } as const) : ({ mode: 'shared', limit: kinds.limit } as const);
  const pool = kind.mode === 'exclusive' ? config.names : 'limit' in kind ? kinds.semaphore : kinds.shared;
  const first = random.pick(pool);
  const names = random.chance(0.25) ? [...new Set([first, random.pick(pool)])] : [first];
  const options = kind.mode === 'exclusive' ? {} : 'limit' in kind ? { limit: kind.limit } : { mode: 'shared' as const };
  record({ k: 'want', names, ...kind });
  let lease;
  try {
    lease = await locks.wait(names as never, { timeoutMs: 30_000, signal: stop.signal, ...options });
  } catch (err) {
    // EABORTED too: it ends the wait (the checker does not count it as an error).
    record({ k: 'acquire-error', code: (err as LockError).code ?? 'UNKNOWN', message: (err as Error).message });
    return;
  }
  for (const name of names) record({ k: 'enter', name, token: lease.token, ...kind });
  await holdAndRelease(names, lease);
}

/** The section of a wait()ed lease: hold it up to holdMaxMs, record the exit, release. */
async function holdAndRelease(names: string[], lease: Lease): Promise<void> {
  await new Promise((r) => setTimeout(r, random.int(0, config.holdMaxMs)));
  for (const name of names) record({ k: 'exit', name, token: lease.token });
  try {
    await locks.release(lease);
    record({ k: 'released', token: lease.token });
  } catch (err) {
    const e = err as LockError & { reason?: string };
    record({ k: 'release-error', token: lease.token, code: e.code ?? 'UNKNOWN', reason: e.reason, message: e.message });
  }
}

async function main(): Promise<void> {
  if (config.kinds) {
    diagnostics.subscribe(LockChannels.queued, () => record({ k: 'queued' }));
    diagnostics.subscribe(LockChannels.dequeued, (e) => record({ k: 'dequeued', reason: (e as DequeuedEvent).reason }));
    // Connected before its first call: a wait does not include opening the pool.
    await locks.list();
  }
  while (!stop.signal.aborted) {
    if (config.kinds) {
      await kindsCycle(config.kinds);
      continue;
    }
    const first = random.pick(config.names);
    const names = random.chance(0.2) ? [...new Set([first, random.pick(config.names)])] : [first];
    if (config.ttlMs !== undefined) {
      await usingCycle(names, config.ttlMs);
      continue;
    }
    let lease;
    try {
      lease = await locks.wait(names as never, { timeoutMs: 30_000, signal: stop.signal });
    } catch (err) {
      const code = (err as LockError).code ?? 'UNKNOWN';
      if (code !== 'EABORTED') record({ k: 'acquire-error', code, message: (err as Error).message });
      continue;
    }
    for (const name of names) record({ k: 'enter', name, token: lease.token });
    await holdAndRelease(names, lease);
  }
  await locks.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`chaos worker ${process.pid}: ${(err as Error).stack}\n`);
    process.exit(2);
  },
);
