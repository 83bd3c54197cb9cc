// A 3-node MariaDB Galera cluster of our own on loopback ports, built from the
// installed packages (mariadbd, galera-4's libgalera_smm.so, rsync): for the
// cluster tests, `npm run chaos -- --galera`, the cluster bench and by hand
// (`npm run galera -- start|status|kill 2|restart 2|stop|remove`). The shared
// server on 3306 is never touched.
//
// Each node has its own directory with a my.cnf (--defaults-file), a datadir,
// a socket and an error log. Node 1 bootstraps the cluster (--wsrep-new-cluster)
// from a fresh mariadb-install-db; the others join and receive its data by
// rsync state transfer (SST). mariadbd runs as the `mysql` user: the joiner's
// rsync daemon writes the datadir as that user. A node that was killed comes
// back with --wsrep-recover (which reads the last committed position from
// InnoDB) and then --wsrep_start_position, so it rejoins by incremental state
// transfer (IST) when the donor still has the writes. A joiner writes its pid
// file only after its state transfer: the pid we track is the spawned process's,
// and a node counts as started only once it says it is Synced.
//
// A node is killed with its whole process group (it leads one: spawned
// detached): a state transfer runs helper processes (wsrep_sst_rsync, an rsync
// daemon on the node's SST port) that a SIGKILL of mariadbd alone leaves
// behind, and the next state transfer of that node then waits 30 s for them
// and fails. Their pid files are removed before a restart.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { sparePort } from './private-server.js';

const MARIADBD = '/usr/sbin/mariadbd';
const INSTALL_DB = ['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db'].find((p) => existsSync(p));
const PROVIDER = '/usr/lib/galera/libgalera_smm.so';
const STATE_FILE = 'cluster.json';
const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

export interface NodePorts {
  /** SQL. */
  port: number;
  /** Group communication (Galera's 4567). */
  gcomm: number;
  /** Incremental state transfer (Galera's 4568). */
  ist: number;
  /** rsync state transfer (Galera's 4444). */
  sst: number;
}

interface State {
  name: string;
  nodes: NodePorts[];
  /** Spawned mariadbd pids, by node index (0-based); null when stopped. */
  pids: Array<number | null>;
}

/** A node that would not start (its error log's tail in the message). */
export class NodeStartError extends Error {
  readonly node: number;
  constructor(node: number, message: string) {
    super(message);
    this.name = 'NodeStartError';
    this.node = node;
  }
}

export interface NodeStatus {
  node: number;
  port: number;
  pid: number | null;
  /** wsrep_local_state_comment (Synced, Donor/Desynced, Joining…), or why it did not answer. */
  state: string;
  /** wsrep_cluster_status: Primary or non-Primary. */
  component?: string;
  clusterSize?: number;
  ready?: boolean;
}

/** Whether this machine can run the cluster (packages present, running as root to switch to `mysql`). */
export function galeraAvailable(): string | undefined {
  if (!existsSync(MARIADBD) || !INSTALL_DB) return 'mariadb-server is not installed';
  if (!existsSync(PROVIDER)) return `galera-4 is not installed (${PROVIDER})`;
  if (!existsSync('/usr/bin/rsync')) return 'rsync is not installed (apt-get install -y rsync)';
  if (!existsSync('/usr/bin/wsrep_sst_rsync')) return 'wsrep_sst_rsync is missing (mariadb-server)';
  if (process.getuid?.() !== 0) return 'the cluster harness runs mariadbd as the mysql user and so must run as root';
  return undefined;
}

/** Processes this process started, killed when it exits unless the cluster is kept (the CLI). */
const owned = new Set<GaleraCluster>();
process.once('exit', () => {
  for (const c of owned) c.killAllSync();
});

export class GaleraCluster {
  readonly dir: string;
  readonly #state: State;
  /** Nodes this process started and saw Synced, not stopped or killed since (0-based). */
  readonly #ready = new Set<number>();

  private constructor(dir: string, state: State) {
    this.dir = dir;
    this.#state = state;
  }

  /** Creates a cluster of `size` nodes in a new directory and starts it. `keep`: leave it running when this process exits. */
  static async create(options: { size?: number; dir?: string; keep?: boolean } = {}): Promise<GaleraCluster> {
    const why = galeraAvailable();
    if (why) throw new Error(`cannot start a Galera cluster: ${why}`);
    const size = options.size ?? 3;
    const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'galera-cluster-'));
    mkdirSync(dir, { recursive: true });
    const nodes: NodePorts[] = [];
    const taken = new Set<number>();
    const port = async () => {
      for (;;) {
        const p = await sparePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < size; i++) nodes.push({ port: await port(), gcomm: await port(), ist: await port(), sst: await port() });
    const cluster = new GaleraCluster(dir, { name: `locktable_${path.basename(dir).replace(/\W/g, '_')}`, nodes, pids: nodes.map(() => null) });
    if (!options.keep) owned.add(cluster);
    for (let i = 0; i < size; i++) cluster.#writeConfig(i);
    cluster.#save();
    chownR(dir);
    const datadir = cluster.#datadir(0);
    const installed = spawnSync(
      INSTALL_DB!,
      [`--defaults-file=${cluster.#cnf(0)}`, '--user=mysql', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (installed.status !== 0) throw new Error(`mariadb-install-db failed (${installed.status}): ${installed.stderr}`);
    try {
      await cluster.#spawn(0, ['--wsrep-new-cluster']);
      // Over TCP from 127.0.0.1 with skip-name-resolve: root@localhost does not match, so give root@127.0.0.1.
      const admin = await mysql.createConnection({ socketPath: path.join(dir, 'node1', 'sock'), user: 'root' });
      await admin.query("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''");
      await admin.query("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION");
      await admin.end();
      for (let i = 1; i < size; i++) await cluster.#spawn(i, []);
    } catch (err) {
      cluster.killAllSync();
      throw err;
    }
    return cluster;
  }

  /** The cluster whose state lives in `dir` (made by create()). */
  static open(dir: string): GaleraCluster {
    const state = JSON.parse(readFileSync(path.join(dir, STATE_FILE), 'utf8')) as State;
    return new GaleraCluster(dir, state);
  }

  get size(): number {
    return this.#state.nodes.length;
  }

  ports(node: number): NodePorts {
    return this.#state.nodes[this.#index(node)]!;
  }

  /** mysql://root@127.0.0.1:<port>/<database> of node `node` (1-based). */
  url(node: number, database = 'mysql'): string {
    return `mysql://root@127.0.0.1:${this.ports(node).port}/${database}`;
  }

  /** Every node's URI, node 1 first. */
  urls(database = 'mysql'): string[] {
    return this.#state.nodes.map((_, i) => this.url(i + 1, database));
  }

  pid(node: number): number | null {
    const pid = this.#state.pids[this.#index(node)] ?? null;
    return pid !== null && alive(pid) ? pid : null;
  }

  running(node: number): boolean {
    return this.pid(node) !== null;
  }

  /**
   * Whether this process started node `node` and saw it Synced, and has not
   * stopped or killed it since: a node that runs but is still joining (its
   * state transfer) refuses connections or answers 1047, so the harness's own
   * statements go to ready nodes only.
   */
  ready(node: number): boolean {
    return this.#ready.has(this.#index(node)) && this.running(node);
  }

  /** kill -9 of one node's mariadbd and of its state-transfer helpers; resolves when they are gone. */
  async kill(node: number): Promise<void> {
    await this.#signal(node, 'SIGKILL');
  }

  /** A clean shutdown of one node (it leaves the cluster gracefully). */
  async stop(node: number): Promise<void> {
    await this.#signal(node, 'SIGTERM');
  }

  /**
   * Starts a stopped or killed node: recovers its position from InnoDB, then
   * rejoins with it (IST where possible). Resolves when it is Synced. When no
   * node is running, the most advanced one bootstraps the cluster again.
   * `env.FAKETIME` (e.g. '-2'): the node's clock runs that many seconds off,
   * through libfaketime (the libfaketime package).
   */
  async start(node: number, env?: Record<string, string>): Promise<void> {
    const i = this.#index(node);
    if (this.running(node)) {
      if (!this.#ready.has(i)) await this.#untilSynced(i);
      return;
    }
    let first: unknown;
    // A second attempt, after a failed one, rejoins by a full state transfer
    // (no grastate.dat: the donor sends everything), the usual cure for a
    // joiner whose incremental transfer failed.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        this.#clearStale(i);
        if (attempt > 0) rmSync(path.join(this.#datadir(i), 'grastate.dat'), { force: true });
        const position = attempt === 0 ? await this.#recover(i) : undefined;
        const others = this.#state.nodes.some((_, j) => j !== i && this.running(j + 1));
        const extra = position ? [`--wsrep_start_position=${position}`] : [];
        if (!others) {
          // Bootstrapping: no donor to send a full state transfer; the first failure stands.
          if (attempt > 0) break;
          this.#markSafeToBootstrap(i);
          extra.push('--wsrep-new-cluster');
        }
        await this.#spawn(i, extra, env);
        return;
      } catch (err) {
        // Whatever is left of the failed attempt goes, helpers included.
        await this.kill(node).catch(() => {});
        if (attempt > 0) throw new NodeStartError(node, `node ${node} did not start, twice:\n1) ${(first as Error).message}\n2) ${(err as Error).message}`);
        first = err;
      }
    }
    throw first;
  }

  async restart(node: number, how: 'kill' | 'stop' = 'kill'): Promise<void> {
    await (how === 'kill' ? this.kill(node) : this.stop(node));
    await this.start(node);
  }

  /** Starts every stopped node: the most advanced one first when none runs. */
  async startAll(): Promise<void> {
    if (!this.#state.nodes.some((_, j) => this.running(j + 1))) {
      const positions: number[] = [];
      for (let j = 0; j < this.size; j++) positions.push(seqnoOf(await this.#recover(j)));
      const first = positions.indexOf(Math.max(...positions));
      await this.start(first + 1);
    }
    for (let j = 0; j < this.size; j++) await this.start(j + 1);
  }

  /** Stops every node cleanly, the last one last (it is then the one to bootstrap from). */
  async stopAll(): Promise<void> {
    for (let j = this.size; j >= 1; j--) await this.stop(j);
  }

  /** What each node says of itself. */
  async status(): Promise<NodeStatus[]> {
    return Promise.all(
      this.#state.nodes.map(async (ports, i): Promise<NodeStatus> => {
        const pid = this.pid(i + 1);
        const base = { node: i + 1, port: ports.port, pid };
        if (pid === null) return { ...base, state: 'down' };
        let conn: mysql.Connection | undefined;
        try {
          conn = await mysql.createConnection({ uri: this.url(i + 1), connectTimeout: 1000 });
          const [rows] = await conn.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_ready')");
          const v = Object.fromEntries((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]));
          return { ...base, state: v.wsrep_local_state_comment ?? '?', component: v.wsrep_cluster_status, clusterSize: Number(v.wsrep_cluster_size), ready: v.wsrep_ready === 'ON' };
        } catch (err) {
          return { ...base, state: `not answering (${(err as { code?: string }).code ?? (err as Error).message})` };
        } finally {
          await conn?.end().catch(() => {});
        }
      }),
    );
  }

  /** Resolves when every running node is Synced in a primary component of `size` nodes (all running ones). */
  async waitSynced(timeoutMs = 60_000): Promise<void> {
    const started = Date.now();
    for (;;) {
      const s = await this.status();
      const up = s.filter((n) => n.pid !== null);
      if (up.length && up.every((n) => n.state === 'Synced' && n.component === 'Primary' && n.clusterSize === up.length)) return;
      if (Date.now() - started > timeoutMs) throw new Error(`cluster not synced after ${timeoutMs} ms: ${JSON.stringify(s)}`);
      await delay(100);
    }
  }

  /** Kills every node and deletes the directory. */
  async remove(): Promise<void> {
    this.killAllSync();
    for (let j = 1; j <= this.size; j++) await until(() => !this.running(j), 10_000, `node ${j} to exit`);
    rmSync(this.dir, { recursive: true, force: true });
    owned.delete(this);
  }

  /** SIGKILL to every node, without waiting (process exit). */
  killAllSync(): void {
    for (let j = 1; j <= this.size; j++) {
      const pid = this.pid(j);
      if (pid !== null) {
        try {
          process.kill(-pid, 'SIGKILL'); // the group: state-transfer helpers too
        } catch {
          /* gone */
        }
      }
    }
  }

  /** The last lines of a node's error log. */
  log(node: number, lines = 20): string {
    try {
      return readFileSync(path.join(this.#nodeDir(this.#index(node)), 'error.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no error log)';
    }
  }

  #index(node: number): number {
    if (!Number.isInteger(node) || node < 1 || node > this.#state.nodes.length) throw new Error(`no node ${node}: nodes are 1-${this.#state.nodes.length}`);
    return node - 1;
  }

  #nodeDir(i: number): string {
    return path.join(this.dir, `node${i + 1}`);
  }

  #datadir(i: number): string {
    return path.join(this.#nodeDir(i), 'data');
  }

  #cnf(i: number): string {
    return path.join(this.#nodeDir(i), 'my.cnf');
  }

  #save(): void {
    writeFileSync(path.join(this.dir, STATE_FILE), JSON.stringify(this.#state, null, 2));
  }

  #writeConfig(i: number): void {
    const dir = this.#nodeDir(i);
    mkdirSync(path.join(dir, 'data'), { recursive: true });
    // Its own temporary directory: the machine's /tmp is shared, and may be swept.
    mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    const me = this.#state.nodes[i]!;
    const members = this.#state.nodes.map((n) => `127.0.0.1:${n.gcomm}`).join(',');
    // Failure detection a little faster than the defaults (suspect after 5 s),
    // so that tests and the chaos run spend less time with a dead member; the
    // cost of a node failure measured in docs/galera.md is with these values.
    const provider = [
      `gmcast.listen_addr=tcp://127.0.0.1:${me.gcomm}`,
      `base_port=${me.gcomm}`,
      `ist.recv_addr=127.0.0.1:${me.ist}`,
      'gcache.size=64M',
      'evs.keepalive_period=PT0.5S',
      'evs.inactive_check_period=PT0.5S',
      'evs.suspect_timeout=PT2S',
      'evs.inactive_timeout=PT4S',
      'evs.install_timeout=PT4S',
    ].join(';');
    const cnf = `[mysqld]
user=mysql
datadir=${path.join(dir, 'data')}
socket=${path.join(dir, 'sock')}
tmpdir=${path.join(dir, 'tmp')}
pid-file=${path.join(dir, 'mariadbd.pid')}
log-error=${path.join(dir, 'error.log')}
port=${me.port}
bind-address=127.0.0.1
skip-name-resolve
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=1
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
max_connections=300
wsrep_on=ON
wsrep_provider=${PROVIDER}
wsrep_cluster_name=${this.#state.name}
wsrep_cluster_address=gcomm://${members}
wsrep_node_name=node${i + 1}
wsrep_node_address=127.0.0.1:${me.gcomm}
wsrep_node_incoming_address=127.0.0.1:${me.port}
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:${me.sst}
wsrep_provider_options="${provider}"
`;
    writeFileSync(this.#cnf(i), cnf);
  }

  async #spawn(i: number, extra: string[], env?: Record<string, string>): Promise<void> {
    const dir = this.#nodeDir(i);
    chownR(dir);
    let childEnv = process.env;
    if (env?.FAKETIME !== undefined) {
      if (!existsSync(FAKETIME)) throw new Error(`FAKETIME needs libfaketime (${FAKETIME}): apt-get install -y libfaketime`);
      childEnv = { ...process.env, ...env, LD_PRELOAD: FAKETIME, FAKETIME_DONT_RESET: '1' };
    }
    const child = spawn(MARIADBD, [`--defaults-file=${this.#cnf(i)}`, ...extra], { stdio: 'ignore', detached: true, env: childEnv });
    child.unref();
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = `${code ?? signal}`));
    this.#state.pids[i] = child.pid ?? null;
    this.#save();
    await this.#untilSynced(i, () => exited);
  }

  /** Resolves once node `i` (0-based) says it is Synced; fails when its process exits first, or after 120 s. */
  async #untilSynced(i: number, exited: () => string | undefined = () => (this.running(i + 1) ? undefined : 'gone')): Promise<void> {
    const started = Date.now();
    for (;;) {
      const gone = exited();
      if (gone !== undefined) throw new NodeStartError(i + 1, `node ${i + 1}: mariadbd exited (${gone}) while starting:\n${this.log(i + 1)}`);
      if (await this.#synced(i)) {
        this.#ready.add(i);
        return;
      }
      if (Date.now() - started > 120_000) throw new NodeStartError(i + 1, `node ${i + 1} not Synced within 120 s:\n${this.log(i + 1)}`);
      await delay(100);
    }
  }

  async #synced(i: number): Promise<boolean> {
    let conn: mysql.Connection | undefined;
    try {
      conn = await mysql.createConnection({ socketPath: path.join(this.#nodeDir(i), 'sock'), user: 'root', connectTimeout: 1000 });
      const [rows] = await conn.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', 'wsrep_ready')");
      const v = Object.fromEntries((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]));
      return v.wsrep_local_state_comment === 'Synced' && v.wsrep_ready === 'ON';
    } catch {
      return false;
    } finally {
      await conn?.end().catch(() => {});
    }
  }

  async #signal(node: number, signal: NodeJS.Signals): Promise<void> {
    const i = this.#index(node);
    this.#ready.delete(i);
    const pid = this.#state.pids[i] ?? null;
    if (pid === null) return;
    if (alive(pid)) {
      // SIGKILL: the whole group at once. SIGTERM: mariadbd alone, which ends its helpers itself.
      try {
        process.kill(signal === 'SIGKILL' ? -pid : pid, signal);
      } catch {
        /* gone meanwhile */
      }
      await until(() => !alive(pid), 60_000, `node ${node} (pid ${pid}) to exit`);
    }
    // Helpers that outlived it (a state transfer under way) go too.
    if (groupAlive(pid)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      await until(() => !groupAlive(pid), 10_000, `the processes of node ${node} (group ${pid}) to exit`);
    }
    this.#state.pids[i] = null;
    this.#save();
  }

  /** Pid files a killed node's state transfer leaves in its datadir: the next one would wait for those pids. */
  #clearStale(i: number): void {
    for (const f of ['wsrep_sst.pid', 'rsync_sst.pid', 'rsync_sst.conf', 'stunnel.pid', 'stunnel.conf', 'sst_in_progress']) rmSync(path.join(this.#datadir(i), f), { force: true });
    rmSync(path.join(this.#nodeDir(i), 'mariadbd.pid'), { force: true });
  }

  /** `uuid:seqno` of the last transaction the node committed, from --wsrep-recover; undefined for a never-started datadir. */
  async #recover(i: number): Promise<string | undefined> {
    const logFile = path.join(this.#nodeDir(i), 'recover.log');
    rmSync(logFile, { force: true });
    chownR(this.#nodeDir(i));
    // Not spawnSync: a caller's event loop (the chaos controller's) keeps running meanwhile.
    const child = spawn(MARIADBD, [`--defaults-file=${this.#cnf(i)}`, '--wsrep-recover', `--log-error=${logFile}`], { stdio: 'ignore' });
    const status = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        resolve(code ?? String(sig));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve(err.message);
      });
    });
    const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    const m = /WSREP: Recovered position:\s*(\S+:-?\d+)/.exec(text);
    if (status !== 0 && !m) throw new NodeStartError(i + 1, `node ${i + 1}: --wsrep-recover failed (${status}):\n${text.split('\n').slice(-10).join('\n')}`);
    return m?.[1];
  }

  #markSafeToBootstrap(i: number): void {
    const file = path.join(this.#datadir(i), 'grastate.dat');
    if (!existsSync(file)) return;
    writeFileSync(file, readFileSync(file, 'utf8').replace(/safe_to_bootstrap:\s*0/, 'safe_to_bootstrap: 1'));
  }
}

/** Whether any process of the group `pgid` is left (a zombie of ours aside, which kill() still finds: checked by alive()). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  // Only zombies left (the leader, not yet reaped) count as gone.
  try {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      } catch {
        continue;
      }
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
    }
    return false;
  } catch {
    return true;
  }
}

function seqnoOf(position: string | undefined): number {
  const m = position && /:(-?\d+)$/.exec(position);
  return m ? Number(m[1]) : -1;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (our own exited child not yet reaped) is gone for us.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** chown -R mysql:mysql: the server and its rsync daemon write as `mysql`. */
function chownR(target: string): void {
  const ids = mysqlIds();
  const walk = (p: string) => {
    chownSync(p, ids.uid, ids.gid);
    if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(path.join(p, e));
  };
  walk(target);
}

let cachedIds: { uid: number; gid: number } | undefined;
function mysqlIds(): { uid: number; gid: number } {
  if (cachedIds) return cachedIds;
  const r = spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'mysql'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('no `mysql` user on this machine (the mariadb-server package creates it)');
  cachedIds = { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
  return cachedIds;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(20);
  }
}
