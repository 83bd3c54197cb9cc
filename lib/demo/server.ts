// `npm run demo` / `locktable demo`: a small platform server doing what a box
// server does with locktable. It migrates a database of its own, spawns task
// workers (as another user where it can, the way a box spawns its tasks
// through sudo), lets them take app, backup and update locks and contend,
// SIGKILLs one mid-task, and runs its start-up cleanup, reapDead(), which must
// release exactly the dead task's locks. The lock table is printed as it changes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mysql from 'mysql2/promise';
import { redact } from '../db.js';
import { LockChannels, type ReapedEvent } from '../events.js';
import { createLockTable, type LockTable } from '../locktable.js';
import { migrate } from '../migrate.js';
import { describeError, formatLockList, formatOwner } from '../cli/format.js';
import { findServerBinaries, startPrivateMariaDb, type PrivateMariaDb, type ServerBinaries } from './private-mariadb.js';
import type { WorkerMessage, WorkerTask } from './worker.js';

export interface DemoOptions {
  /**
   * Server to use; a database of its own is created there. Default: the local
   * server as root (`defaultUrl`), and when nothing answers there, a private
   * MariaDB started from the installed server binaries and removed at the end.
   */
  url?: string | undefined;
  /** The server tried when `url` is not given. Default mysql://root@127.0.0.1:3306/. */
  defaultUrl?: string | undefined;
  /** Where the private server's binaries are; null: none installed. Default: searched in PATH and the usual dirs. */
  serverBinaries?: ServerBinaries | null;
  out: { write(s: string): unknown };
  err: { write(s: string): unknown };
  /** Resolves on Ctrl-C: the demo stops, and cleans up. */
  interrupted?: Promise<void>;
}

export const DEFAULT_DEMO_URL = 'mysql://root@127.0.0.1:3306/';
const NOBODY = 65534;
const WORKER = path.join(__dirname, 'worker.js');
const STEP_TIMEOUT_MS = 30_000;

/** How workers are started: through setpriv as nobody when root and it works, else as this user. */
interface Launcher {
  argv(args: string[]): [string, string[]];
  says: string;
}

function chooseLauncher(): Launcher {
  const same: Launcher = { argv: (args) => [process.execPath, args], says: '' };
  if (process.getuid?.() !== 0) {
    return { ...same, says: `workers run as this user: not root, so there is no other user to switch to (a box server uses sudo)` };
  }
  // The worker must be able to read this package as nobody: try before relying on it.
  const setpriv = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath];
  const probe = spawnSync('setpriv', [...setpriv, '-e', `require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})`], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status === 0) {
    return { argv: (args) => ['setpriv', [...setpriv, ...args]], says: `workers run as user nobody (uid ${NOBODY}) through setpriv, as a box server spawns its tasks through sudo` };
  }
  const why = probe.error ? probe.error.message : (probe.stderr || `exit ${probe.status}`).trim().split('\n')[0];
  return { ...same, says: `workers run as root, like this server: setpriv to nobody did not work here (${why})` };
}

class Task {
  readonly child: ChildProcess;
  pid = 0;
  user = '';
  readonly exited: Promise<number | null>;
  #states: WorkerMessage[] = [];
  #waiters: Array<() => void> = [];
  #stderr = '';

  constructor(
    readonly spec: WorkerTask & { title: string },
    launcher: Launcher,
    env: NodeJS.ProcessEnv,
    print: (s: string) => void,
  ) {
    const [cmd, args] = launcher.argv([WORKER, JSON.stringify({ taskId: spec.taskId, space: spec.space, names: spec.names, wait: spec.wait })]);
    this.child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    void this.exited.then(() => this.#notify());
    this.child.stderr!.on('data', (d) => (this.#stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let msg: WorkerMessage;
      try {
        msg = JSON.parse(line) as WorkerMessage;
      } catch {
        return;
      }
      if ('event' in msg) print(`  [task ${spec.taskId}] ${msg.text}`);
      this.#states.push(msg);
      this.#notify();
    });
  }

  /** Resolves with the first message in `state` (or of event kind `state`); rejects when the worker fails or exits first. */
  async reach<S extends 'ready' | 'working' | 'done' | 'contended'>(state: S): Promise<Extract<WorkerMessage, { state: S }>> {
    const started = Date.now();
    for (;;) {
      const found = this.#states.find((m) => ('state' in m && m.state === state) || ('event' in m && m.event === state));
      if (found) return found as Extract<WorkerMessage, { state: S }>;
      const failed = this.#states.find((m) => 'state' in m && m.state === 'failed') as { error: string } | undefined;
      if (failed) throw new Error(`task ${this.spec.taskId} failed: ${failed.error}`);
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`task ${this.spec.taskId} exited (${this.child.exitCode ?? this.child.signalCode}) before '${state}'${this.#stderr ? `: ${this.#stderr.trim().split('\n').pop()}` : ''}`);
      }
      if (Date.now() - started > STEP_TIMEOUT_MS) throw new Error(`task ${this.spec.taskId} did not reach '${state}' within ${STEP_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  finish(): void {
    this.child.stdin!.write('finish\n');
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** Runs the demo; resolves with the exit code (0 when the cleanup released exactly the dead task's locks). */
export async function runDemo(options: DemoOptions): Promise<number> {
  const print = (s = '') => options.out.write(`${s}\n`);
  let base = new URL(options.url ?? options.defaultUrl ?? DEFAULT_DEMO_URL);
  let privateServer: PrivateMariaDb | undefined;
  const suffix = randomBytes(3).toString('hex');
  let admin: mysql.Connection | undefined;
  let dropDatabase: string | undefined;
  let dropSpace: string | undefined;
  let server: LockTable | undefined;
  const tasks: Task[] = [];
  let interrupted = false;
  let done = false;
  void options.interrupted?.then(() => {
    interrupted = true;
    for (const t of tasks) t.kill();
  });
  const onReaped = (e: unknown) => {
    const r = e as ReapedEvent;
    if (r.space === space) print(`  [server] reaped event: ${r.locks.map((l) => `${l.name} of task ${l.owner.taskId ?? '?'} (${l.reason})`).join(', ')}`);
  };
  let space = 'platform';
  let url = '';

  try {
    print('locktable demo: a platform server, its task workers, a crash, and the start-up cleanup');
    if (options.url === undefined && !(await answers(base.toString()))) {
      const bin = options.serverBinaries === undefined ? findServerBinaries() : (options.serverBinaries ?? undefined);
      if (!bin) {
        options.err.write(
          `locktable demo: nothing answers at ${redact(base.toString())} and no MariaDB server is installed here to start a private one: ` +
            `install mariadb-server (mariadbd, mariadb-install-db), or set MYSQL_URL=mysql://user:password@host:port/ to a server you can use\n`,
        );
        return 1;
      }
      print(`nothing answers at ${redact(base.toString())}: starting a private MariaDB (${bin.server}) on a spare port, removed at the end`);
      privateServer = await startPrivateMariaDb(bin);
      base = new URL(privateServer.url);
      print(`private MariaDB in ${privateServer.dir}`);
    }
    print(`server at ${redact(base.toString())}`);
    admin = await mysql.createConnection({ uri: base.toString(), connectTimeout: 5_000 });
    const database = `locktable_demo_${suffix}`;
    try {
      await admin.query(`CREATE DATABASE \`${database}\``);
      dropDatabase = database;
      const u = new URL(base.toString());
      u.pathname = `/${database}`;
      url = u.toString();
      print(`database ${database} created for the demo (dropped at the end)`);
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if ((errno !== 1044 && errno !== 1227) || base.pathname.length <= 1) throw err;
      space = `demo_${suffix}`;
      dropSpace = space;
      url = base.toString();
      print(`no CREATE DATABASE privilege: using ${base.pathname.slice(1)} with a space of its own, '${space}' (deleted at the end)`);
    }

    const migrated = await migrate(url);
    print(`server: migrate() ${migrated.applied.length ? `applied ${migrated.applied.join(', ')}` : 'had nothing to apply'}`);
    server = createLockTable({ db: url, space, owner: { taskId: 'server' } });
    diagnostics.subscribe(LockChannels.reaped, onReaped);
    const initial = await server.reapDead();
    print(`server: start-up cleanup, reapDead(): ${initial.length ? `released ${initial.length}` : 'nothing to release'}`);

    const launcher = chooseLauncher();
    print(`server: ${launcher.says}`);
    const env = { ...process.env, LOCKTABLE_DEMO_URL: url };
    const table = async (title: string) => {
      print();
      print(`--- ${title} ---`);
      print(formatLockList(space, await server!.list()));
      print();
    };
    const start = async (taskId: string, title: string, names: string[], wait = false) => {
      const t = new Task({ taskId, space, names, wait, title }, launcher, env, print);
      tasks.push(t);
      const ready = await t.reach('ready');
      t.pid = ready.pid;
      t.user = ready.user;
      print(`server: spawned task ${taskId} "${title}" (pid ${t.pid}, user ${t.user}) for ${names.join(' + ')}`);
      return t;
    };

    print();
    const update = await start('101', 'update app blog', ['app_task_blog']);
    await update.reach('working');
    const backupWiki = await start('102', 'back up app wiki', ['app_task_wiki', 'app_backup_wiki']);
    await backupWiki.reach('working');
    // Not a box update: LockTypes' conflict rule makes that wait for every running app task (docs/lock-kinds.md).
    const mailRestart = await start('103', 'restart the mail server', ['mail_restart']);
    await mailRestart.reach('working');
    // A backup of blog needs app_task_blog, which the update holds: it waits.
    const backupBlog = await start('104', 'back up app blog', ['app_task_blog', 'app_backup_blog'], true);
    await backupBlog.reach('contended');
    await table('four tasks: 101, 102 and 103 work, 104 waits for app_task_blog');

    print(`server: SIGKILL task 102 "${backupWiki.spec.title}" (pid ${backupWiki.pid}) mid-task`);
    backupWiki.kill();
    await backupWiki.exited;
    await table('task 102 is dead; its locks stay, owned by a process that no longer exists');

    print("server: start-up cleanup after a restart, reapDead(): releases only locks whose owner is provably dead");
    const reaped = await server.reapDead();
    for (const h of reaped) print(`  released ${h.name}, held by ${formatOwner(h)}, token ${h.token}`);
    const expected = [...backupWiki.spec.names].sort();
    const got = reaped.map((h) => h.name).sort();
    const exact = JSON.stringify(got) === JSON.stringify(expected) && reaped.every((h) => h.owner.pid === backupWiki.pid);
    print(exact ? `server: the cleanup released exactly task 102's locks (${got.join(', ')}), and no live task's` : `server: UNEXPECTED: released ${got.join(', ') || 'nothing'}, expected ${expected.join(', ')}`);
    await table('after the cleanup');
    if (!exact) return 1;

    print('server: task 101 finishes; it releases its lock, and task 104 gets it');
    update.finish();
    await update.reach('done');
    print(`server: task 101 exited (code ${await update.exited}); releaseByOwner({ taskId: '101' }) released ${(await server.releaseByOwner({ taskId: '101' })).length} (it had released its own)`);
    await backupBlog.reach('working');
    await table('task 104 works; task 103 still restarts the mail server');

    for (const t of [backupBlog, mailRestart]) {
      t.finish();
      await t.reach('done');
      await t.exited;
      print(`server: task ${t.spec.taskId} exited; releaseByOwner({ taskId: '${t.spec.taskId}' }) released ${(await server.releaseByOwner({ taskId: t.spec.taskId })).length}`);
    }
    await table('every task is done');
    const m = server.metrics();
    print(`server metrics(): ${JSON.stringify(m.counters)}`);
    done = true;
    return 0;
  } catch (err) {
    options.err.write(`locktable demo: ${interrupted ? 'interrupted' : describeError(err, base.toString())}\n`);
    return interrupted ? 130 : 1;
  } finally {
    diagnostics.unsubscribe(LockChannels.reaped, onReaped);
    for (const t of tasks) t.kill();
    await Promise.all(tasks.map((t) => t.exited));
    await server?.close().catch(() => {});
    if (admin) {
      if (dropDatabase) await admin.query(`DROP DATABASE IF EXISTS \`${dropDatabase}\``).catch(() => {});
      if (dropSpace) await admin.query('DELETE FROM locks WHERE id = ?', [dropSpace]).catch(() => {});
      await admin.end().catch(() => {});
      if (dropDatabase || dropSpace) print(dropDatabase ? `cleaned up: dropped ${dropDatabase}` : `cleaned up: deleted space ${dropSpace}`);
    }
    if (privateServer) {
      await privateServer.remove();
      print(`cleaned up: stopped the private MariaDB and removed ${privateServer.dir}`);
    }
    if (done) print('demo done');
  }
}

/** Whether a server answers at `url`: true unless connecting fails for want of a listener or a route (a refusal of the user still means it answers). */
async function answers(url: string): Promise<boolean> {
  try {
    const conn = await mysql.createConnection({ uri: url, connectTimeout: 3_000 });
    await conn.end().catch(() => {});
    return true;
  } catch (err) {
    const e = err as { code?: string; errors?: Array<{ code?: string }> };
    const code = e.code ?? e.errors?.[0]?.code;
    return !(code && ['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET'].includes(code));
  }
}
