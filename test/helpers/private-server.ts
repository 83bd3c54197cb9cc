// A server of the test's own, for tests that stop, crash or restart the
// server: the shared one is never touched. It is the same kind as the server
// under test (LOCKTABLE_SERVER: mariadb-10.11, the machine's own MariaDB;
// mysql-9.7 or mariadb-11.8, fetched by scripts/servers.sh into a private root
// and run through that root's loader). Bootstrapping copies a pristine data
// directory the script made once (~0.1 s); starting takes 0.2-1 s. The data
// directory lives in a temp dir removed by remove() or, failing that, when the
// test process exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { sparePort } from '../../lib/demo/private-mariadb.js';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';

/** Chooses the kind of server private servers are (and says which server the suite runs against). */
export const SERVER_KIND_ENV = 'LOCKTABLE_SERVER';
export const SERVER_KINDS = ['mariadb-10.11', 'mysql-9.7', 'mariadb-11.8'] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];
/** The script that fetches, bootstraps and runs every kind. */
export const SERVERS_SCRIPT = path.resolve(__dirname, '../../../scripts/servers.sh');

/** The kind the private servers are: LOCKTABLE_SERVER, else MariaDB 10.11 (the machine's own). */
export function serverKind(): ServerKind {
  const given = process.env[SERVER_KIND_ENV] ?? 'mariadb-10.11';
  if (!(SERVER_KINDS as readonly string[]).includes(given)) {
    throw new Error(`${SERVER_KIND_ENV}=${given} is not a server the tests know: use one of ${SERVER_KINDS.join(', ')}`);
  }
  return given as ServerKind;
}

/** The kind whose behaviour a VERSION() string shows: MySQL, MariaDB 11+, or MariaDB 10. */
export function kindOfVersion(version: string): ServerKind {
  if (!/mariadb/i.test(version)) return 'mysql-9.7';
  return Number(version.split('.')[0]) >= 11 ? 'mariadb-11.8' : 'mariadb-10.11';
}

export interface PrivateServer {
  readonly port: number;
  readonly dir: string;
  /** mysql://root@127.0.0.1:<port>/<database>. */
  url(database?: string): string;
  /** The server's pid while it runs. */
  readonly pid: number | undefined;
  readonly running: boolean;
  start(): Promise<void>;
  /** `graceful`: SIGTERM, a clean shutdown. `crash`: SIGKILL, InnoDB recovers on the next start. */
  stop(how?: 'graceful' | 'crash'): Promise<void>;
  restart(how?: 'graceful' | 'crash'): Promise<void>;
  /** Stops it (crash) and deletes its data. */
  remove(): Promise<void>;
}

const live = new Set<{ child?: ChildProcess; dir: string }>();
process.once('exit', () => {
  for (const s of live) {
    s.child?.kill('SIGKILL');
    rmSync(s.dir, { recursive: true, force: true });
  }
});

/** A port nobody listens on right now: the demo's own (one implementation for both). */
export { sparePort };

/** Bootstraps a data directory and starts a server (of serverKind()) on a spare loopback port; root has an empty password. */
export async function startPrivateServer(
  options: {
    databases?: string[];
    extraArgs?: string[];
    /** Environment of the server on top of this process's (e.g. TZ, or LD_PRELOAD of libfaketime); a function is called at each start. */
    env?: Record<string, string> | (() => Record<string, string>);
    /** Named time zones (e.g. 'Europe/Berlin') to load from /usr/share/zoneinfo into this server's mysql schema (mariadb-tzinfo-to-sql). */
    timeZones?: string[];
  } = {},
): Promise<PrivateServer> {
  const kind = serverKind();
  const dir = mkdtempSync(path.join(os.tmpdir(), `locktable-${kind}-`));
  const state: { child?: ChildProcess; dir: string } = { dir };
  live.add(state);
  const installed = spawnSync('bash', [SERVERS_SCRIPT, 'init', kind, path.join(dir, 'data')], { encoding: 'utf8', timeout: 600_000 });
  if (installed.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    live.delete(state);
    throw new Error(`private ${kind} server: ${(installed.stderr || installed.error?.message || `exit ${installed.status}`).trim()}`);
  }
  const port = await sparePort();
  // The script execs the server: the child's pid is the server's.
  const args = [SERVERS_SCRIPT, 'serve', kind, dir, String(port), ...(options.extraArgs ?? [])];
  const url = (database = 'mysql') => `mysql://root@127.0.0.1:${port}/${database}`;

  const server: PrivateServer = {
    port,
    dir,
    url,
    get pid() {
      return state.child?.pid;
    },
    get running() {
      return state.child !== undefined;
    },
    async start() {
      if (state.child) return;
      const child = spawn('bash', args, { stdio: 'ignore', env: { ...process.env, ...(typeof options.env === 'function' ? options.env() : options.env) } });
      state.child = child;
      let exited: string | undefined;
      child.once('exit', (code, signal) => {
        exited = `${code ?? signal}`;
        if (state.child === child) state.child = undefined;
      });
      const started = Date.now();
      for (;;) {
        if (exited !== undefined) throw new Error(`${kind} exited (${exited}) while starting: ${tail(path.join(dir, 'error.log'))}`);
        const conn = await mysql.createConnection({ uri: url(), connectTimeout: 1000 }).catch(() => undefined);
        if (conn) {
          await conn.end().catch(() => {});
          return;
        }
        if (Date.now() - started > 60_000) throw new Error(`${kind} did not answer within 60 s: ${tail(path.join(dir, 'error.log'))}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(how = 'graceful') {
      const child = state.child;
      if (!child) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill(how === 'crash' ? 'SIGKILL' : 'SIGTERM');
      await gone;
      state.child = undefined;
    },
    async restart(how = 'graceful') {
      await server.stop(how);
      await server.start();
    },
    async remove() {
      await server.stop('crash');
      rmSync(dir, { recursive: true, force: true });
      live.delete(state);
    },
  };
  try {
    await server.start();
    const admin = await mysql.createConnection({ uri: url() });
    for (const db of options.databases ?? []) await admin.query(`CREATE DATABASE \`${db}\``);
    await admin.end();
    if (options.timeZones?.length) loadTimeZones(server, options.timeZones, kind);
  } catch (err) {
    await server.remove();
    throw err;
  }
  return server;
}

const TZINFO_TO_SQL = ['/usr/bin/mariadb-tzinfo-to-sql', '/usr/bin/mysql_tzinfo_to_sql'].find((p) => existsSync(p));
const CLIENT = ['/usr/bin/mariadb', '/usr/bin/mysql'].find((p) => existsSync(p));

/** Named time zones (with their daylight-saving rules) for this server only: never for the shared one. */
function loadTimeZones(server: PrivateServer, zones: string[], kind: string): void {
  if (!TZINFO_TO_SQL || !CLIENT) throw new Error('time zone tables need mariadb-tzinfo-to-sql and the mariadb client');
  let text = '';
  for (const zone of zones) {
    const sql = spawnSync(TZINFO_TO_SQL, [path.join('/usr/share/zoneinfo', zone), zone], { encoding: 'utf8', timeout: 60_000 });
    if (sql.status !== 0) throw new Error(`mariadb-tzinfo-to-sql ${zone} failed (${sql.status}): ${sql.stderr}`);
    text += sql.stdout;
  }
  // MariaDB's tool wraps the INSERTs in statements only MariaDB knows (Galera
  // checks through information_schema.SYSTEM_VARIABLES, EXECUTE IMMEDIATE,
  // SET STATEMENT); the INSERTs fit MySQL's time zone tables as they are.
  if (kind.startsWith('mysql')) {
    text = text
      .replace(/\/\*M!.*?\*\//gs, '') // MariaDB-only blocks, some of them several lines long
      .split('\n')
      .filter((line) => !/wsrep|^execute immediate|^SET STATEMENT/i.test(line))
      .join('\n');
  }
  const load = spawnSync(CLIENT, ['--protocol=TCP', '-h127.0.0.1', `-P${server.port}`, '-uroot', 'mysql'], { input: text, encoding: 'utf8', timeout: 60_000 });
  if (load.status !== 0) throw new Error(`loading the time zone tables failed (${load.status}): ${load.stderr}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '(no error log)';
  }
}
