// Spawns fixture workers (test/fixtures/worker.ts) and talks to them.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createLockTable, type LockTable } from '../../lib/index.js';
import { createTestDb, type TestDb } from './db.js';

export const WORKER = path.join(__dirname, '..', 'fixtures', 'worker.js');

export interface Reply {
  ok: boolean;
  code?: string;
  error?: string;
  token?: number;
  nonce?: string;
  removed?: string[];
  applied?: string[];
  lease?: string;
}

export class Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #next = 0;
  #pending = new Map<number, (r: Reply) => void>();
  #stderr = '';

  private constructor(child: ChildProcess, pid: number) {
    this.child = child;
    this.pid = pid;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /**
   * Starts a worker. `asUser` runs it as another uid (via setpriv), the way a
   * platform server spawns its tasks through sudo. `runuser` runs it as that
   * user (by name) through runuser, which forks twice: the worker is then a
   * grandchild of `child`, as with sudo. `hostname` runs it in a UTS namespace
   * of its own under that hostname (unshare --uts, root only): same machine,
   * boot and pids, another name.
   */
  static async start(config: { url: string; space?: string; taskId?: string }, options: { asUser?: number; runuser?: string; hostname?: string } = {}): Promise<Worker> {
    const args = [WORKER, JSON.stringify(config)];
    const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe'];
    const child = options.hostname !== undefined
      ? spawn('unshare', ['--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', options.hostname, process.execPath, ...args], { stdio })
      : options.runuser !== undefined
      ? spawn('runuser', ['-u', options.runuser, '--', process.execPath, ...args], { stdio })
      : options.asUser === undefined
        ? spawn(process.execPath, args, { stdio })
        : spawn('setpriv', [`--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', process.execPath, ...args], { stdio });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: child.stdout! });
    const ready = await new Promise<{ pid: number }>((resolve, reject) => {
      lines.once('line', (line) => resolve(JSON.parse(line)));
      child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready: ${stderr}`)));
    });
    const worker = new Worker(child, ready.pid);
    child.stderr!.on('data', (d) => (worker.#stderr += d));
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as Reply & { id: number };
      worker.#pending.get(msg.id)?.(msg);
      worker.#pending.delete(msg.id);
    });
    return worker;
  }

  /** Sends a command and resolves with its reply. */
  send(cmd: { op: string; names?: string[]; wait?: boolean; timeoutMs?: number; lease?: string; barge?: boolean; mode?: 'shared'; limit?: number; count?: number; holdMs?: number }): Promise<Reply> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, resolve);
      this.exited.then(({ code, signal }) => reject(new Error(`worker ${this.pid} exited (${code ?? signal}) before answering ${cmd.op}: ${this.#stderr}`)));
      this.child.stdin!.write(`${JSON.stringify({ id, ...cmd })}\n`);
    });
  }

  /** SIGKILLs the worker and waits until it is gone (reaped by Node, so its pid no longer exists). */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Asks the worker to close and exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end();
    await this.exited;
  }
}

/** What suiteWithWorkers() sets up, valid from the suite's first test on. */
export interface SuiteWithWorkers {
  readonly db: TestDb;
  /** A table with the default owner. */
  readonly locks: LockTable;
  /** A second table on the same database, task id 'other'. */
  readonly other: LockTable;
  /** Starts a worker process on the suite's database; it is killed after the test. */
  start(taskId: string): Promise<Worker>;
}

/**
 * The fixture of suites whose tests race worker processes against two tables
 * of their own: a database of the suite's own, `locks` and `other` on it,
 * workers killed and every lock released after each test, all removed after
 * the suite. Call it inside describe().
 */
export function suiteWithWorkers(suite: string): SuiteWithWorkers {
  const workers: Worker[] = [];
  const fixture = {} as { -readonly [K in keyof SuiteWithWorkers]: SuiteWithWorkers[K] };
  fixture.start = async (taskId: string) => {
    const w = await Worker.start({ url: fixture.db.url, taskId });
    workers.push(w);
    return w;
  };
  before(async () => {
    fixture.db = await createTestDb(suite);
    fixture.locks = createLockTable({ db: fixture.db.pool });
    fixture.other = createLockTable({ db: fixture.db.pool, owner: { taskId: 'other' } });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await fixture.locks.releaseAll();
  });
  after(async () => {
    await Promise.all([fixture.locks.close(), fixture.other.close()]);
    await fixture.db.drop();
  });
  return fixture;
}
