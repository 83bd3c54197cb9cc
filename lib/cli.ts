#!/usr/bin/env node
// The `locktable` command: see who holds what, release a stuck lock, clean up
// after crashed tasks, check a deployment, run the demo. Errors are one line
// on stderr; exit codes are in EXIT (cli/args.ts) and the README.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openDb, redact } from './db.js';
import { diagnose } from './doctor.js';
import { LockError } from './errors.js';
import { createLockTable, type LockTable } from './locktable.js';
import { migrate } from './migrate.js';
import { EXIT, parseCommandLine, UsageError, type Command, type Connection } from './cli/args.js';
import { describeError, formatChecks, formatDuration, formatLockList, formatLocks, formatOwner } from './cli/format.js';
import { helpText } from './cli/help.js';

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  /** Starts listening for an interrupt (Ctrl-C); resolves when it comes. Only `watch` and `demo` ask, so that Ctrl-C stops the other commands at once. */
  interrupted(): Promise<void>;
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function main(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: Io): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(argv, env);
  } catch (err) {
    io.stderr.write(`locktable: ${err instanceof UsageError ? err.message : describeError(err)}\n`);
    return EXIT.USAGE;
  }
  const url = 'conn' in command ? command.conn.url : undefined;
  try {
    return await run(command, env, io);
  } catch (err) {
    io.stderr.write(`locktable: ${describeError(err, url)}\n`);
    return err instanceof UsageError || (err instanceof LockError && (err.code === 'EINVALIDNAME' || err.code === 'EINVALIDOPTION')) ? EXIT.USAGE : EXIT.FAILED;
  }
}

async function run(command: Command, env: Readonly<Record<string, string | undefined>>, io: Io): Promise<number> {
  const out = (s: string) => io.stdout.write(`${s}\n`);
  switch (command.name) {
    case 'help':
      io.stdout.write(helpText(command.topic));
      return EXIT.OK;
    case 'version':
      out(packageVersion());
      return EXIT.OK;
    case 'migrate': {
      const result = await migrate(command.conn.url, { table: command.conn.table });
      out(result.applied.length ? `applied ${result.applied.join(', ')}` : `nothing to apply; ${result.all.length} recorded (${result.all.join(', ')})`);
      return EXIT.OK;
    }
    case 'doctor': {
      const db = openDb(command.conn.url, 1);
      try {
        const checks = await diagnose(db.pool, { space: command.conn.space, table: command.conn.table });
        const where = `${redact(command.conn.url)}, ${command.conn.table === 'locks' ? '' : `table ${command.conn.table}, `}space '${command.conn.space}'`;
        out(command.json ? JSON.stringify(checks, null, 2) : formatChecks(where, checks));
        return checks.some((c) => c.status === 'fail') ? EXIT.PROBLEMS : EXIT.OK;
      } finally {
        await db.end?.().catch(() => {});
      }
    }
    case 'demo': {
      const { runDemo } = await import('./demo/server.js');
      return runDemo({ url: command.url, defaultUrl: env.LOCKTABLE_DEMO_DEFAULT_URL, out: io.stdout, err: io.stderr, interrupted: io.interrupted() });
    }
    default:
      return withTable(command.conn, (table) => runOnTable(command, table, io, out));
  }
}

async function runOnTable(command: Command, table: LockTable, io: Io, out: (s: string) => void): Promise<number> {
  switch (command.name) {
    case 'list': {
      const locks = await table.list();
      out(command.json ? JSON.stringify(locks, null, 2) : formatLockList(table.space, locks, await table.listWaiters()));
      return EXIT.OK;
    }
    case 'watch':
      return watch(table, command.conn, command.intervalMs, io);
    case 'release': {
      try {
        const removed = await table.releaseName(command.lock, { force: command.force });
        if (!removed) {
          out(`${command.lock} is not held in space '${table.space}'; nothing to release`);
          return EXIT.OK;
        }
        // A name held shared: every holder it removed, one line each.
        for (const h of removed.holders ?? [removed]) {
          const forced = h.liveness === 'dead' ? 'its owner was dead' : `forced: its owner was ${h.liveness}`;
          out(`released ${h.name}, held${h.mode ? ' shared' : ''} by ${formatOwner(h)} for ${formatDuration(h.ageMs)}, token ${h.token} (${forced})`);
        }
        return EXIT.OK;
      } catch (err) {
        if (!(err instanceof LockError) || err.code !== 'ELOCKED') throw err;
        const h = (err as LockError & { holders: Array<Parameters<typeof formatOwner>[0] & { liveness?: string; ageMs?: number }> }).holders[0]!;
        const why = h.liveness === 'alive' ? 'which is alive' : 'which cannot be judged from here (another machine or pid namespace)';
        io.stderr.write(
          `locktable: refusing to release ${h.name}: held by ${formatOwner(h)} for ${formatDuration(h.ageMs ?? 0)}, token ${h.token}, ${why}; ` +
            `--force releases it anyway, and its owner's release will then fail with ENOTHELD 'forced' [ELOCKED]\n`,
        );
        return EXIT.REFUSED;
      }
    }
    case 'release-owner': {
      const removed = await table.releaseByOwner(command.match);
      const who = 'taskId' in command.match ? `task ${command.match.taskId}` : `pid ${command.match.pid}${command.match.host ? ` on ${command.match.host}` : ''}`;
      if (command.json) out(JSON.stringify(removed, null, 2));
      else out(removed.length ? `released ${removed.length} lock${removed.length === 1 ? '' : 's'} of ${who}:\n${formatLocks(removed)}` : `${who} holds no lock in space '${table.space}'`);
      return EXIT.OK;
    }
    case 'reap': {
      if (command.dryRun) {
        const locks = await table.list();
        const dead = locks.filter((l) => l.liveness === 'dead');
        if (command.json) out(JSON.stringify(dead, null, 2));
        else out(dead.length ? `would release ${dead.length} lock${dead.length === 1 ? '' : 's'} of dead owners:\n${formatLocks(dead)}` : 'no lock has a dead owner; nothing would be released');
        note(locks.filter((l) => l.liveness === 'unknown').length, command.json, out);
        return EXIT.OK;
      }
      const removed = await table.reapDead();
      if (command.json) out(JSON.stringify(removed, null, 2));
      else out(removed.length ? `released ${removed.length} lock${removed.length === 1 ? '' : 's'} of dead owners:\n${formatLocks(removed.map((h) => ({ ...h, liveness: 'dead' as const })))}` : 'no lock has a dead owner; nothing released');
      if (!command.json) note((await table.list()).filter((l) => l.liveness === 'unknown').length, false, out);
      return EXIT.OK;
    }
    default:
      throw new UsageError(`${command.name}: not a lock table command`);
  }
}

function note(unknown: number, json: boolean, out: (s: string) => void): void {
  if (unknown && !json) out(`${unknown} lock${unknown === 1 ? ' has an owner' : 's have owners'} that cannot be judged from here (another machine or pid namespace): run reap on its host, or wait for the lease to expire`);
}

async function withTable<T>(conn: Connection, fn: (table: LockTable) => Promise<T>): Promise<T> {
  // A short retry deadline: an operator at a terminal wants an answer, not 15 s of retries.
  const table = createLockTable({ db: conn.url, table: conn.table, space: conn.space, poolSize: 1, retry: { deadlineMs: 5_000 } });
  try {
    return await fn(table);
  } finally {
    await table.close();
  }
}

async function watch(table: LockTable, conn: Connection, intervalMs: number, io: Io): Promise<number> {
  let stop = false;
  const interrupted = io.interrupted();
  void interrupted.then(() => (stop = true));
  while (!stop) {
    let body: string;
    let count = '';
    try {
      const locks = await table.list();
      count = ` · ${locks.length} lock${locks.length === 1 ? '' : 's'}`;
      body = formatLockList(table.space, locks);
    } catch (err) {
      body = `locktable: ${describeError(err, conn.url)}`; // keep watching: the server may come back
    }
    const header = `space '${table.space}' at ${redact(conn.url)}${count} · ${new Date().toLocaleTimeString()} · every ${formatDuration(intervalMs)}, Ctrl-C to stop`;
    io.stdout.write(`${io.stdout.isTTY ? '\x1b[H\x1b[2J' : ''}${header}\n\n${body}\n\n`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, intervalMs))), interrupted]);
    clearTimeout(timer);
  }
  return EXIT.OK;
}

function packageVersion(): string {
  // dist/cli.js in the package, build/lib/cli.js in the tests: walk up to our package.json.
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'locktable') return String(pkg.version);
    } catch {
      // not here: go up
    }
  }
  return 'unknown';
}

if (require.main === module) {
  let interrupted: Promise<void> | undefined;
  const onInterrupt = () =>
    (interrupted ??= new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }));
  void main(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr, interrupted: onInterrupt }).then((code) => {
    process.exitCode = code;
    // Should a handle stay open by mistake, leave anyway once the output is written.
    setTimeout(() => process.exit(code), 2_000).unref();
  });
}
