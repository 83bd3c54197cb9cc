// A throwaway MariaDB for `locktable demo` when no server answers: a data
// directory bootstrapped in a temp dir from the installed server binaries
// (the mariadb-server package), a server on a spare loopback port, and both
// removed afterwards. Root has an empty password; nothing else is configured.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';

export interface ServerBinaries {
  /** mariadbd (or MariaDB's mysqld). */
  server: string;
  /** mariadb-install-db (or mysql_install_db). */
  installDb: string;
}

export interface PrivateMariaDb {
  /** mysql://root@127.0.0.1:<port>/ */
  readonly url: string;
  /** The temp dir holding its data, socket and log. */
  readonly dir: string;
  /** Stops the server and deletes its directory. */
  remove(): Promise<void>;
}

const SERVER_NAMES = ['mariadbd', 'mysqld'];
const INSTALL_NAMES = ['mariadb-install-db', 'mysql_install_db'];
const SYSTEM_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/mysql/bin'];

/** The server and bootstrap binaries found in PATH or the usual system dirs, or undefined. */
export function findServerBinaries(dirs: readonly string[] = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SYSTEM_DIRS]): ServerBinaries | undefined {
  const find = (names: string[]) => {
    for (const name of names) for (const dir of dirs) if (existsSync(path.join(dir, name))) return path.join(dir, name);
    return undefined;
  };
  const server = find(SERVER_NAMES);
  const installDb = find(INSTALL_NAMES);
  return server && installDb ? { server, installDb } : undefined;
}

/** Bootstraps and starts a server; rejects with what went wrong (the tail of its error log). */
export async function startPrivateMariaDb(bin: ServerBinaries): Promise<PrivateMariaDb> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'locktable-demo-mariadb-'));
  const datadir = path.join(dir, 'data');
  // mariadbd refuses to run as root unless told to.
  // Its own tmpdir: a starting server deletes every '#sql*' file in its tmpdir,
// which in the shared /tmp are the temporary tables of other servers running
// there (test/integration/server-faults.test.ts pins it).
  const common = ['--no-defaults', ...(process.getuid?.() === 0 ? ['--user=root'] : []), `--tmpdir=${dir}`];
  let child: ChildProcess | undefined;
  const cleanUp = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanUp); // should the demo die before remove()
  const fail = (what: string): never => {
    const log = tail(path.join(dir, 'error.log'));
    cleanUp();
    process.removeListener('exit', cleanUp);
    throw new Error(`${what}${log ? `: ${log}` : ''}`);
  };

  const installed = spawnSync(bin.installDb, [...common, `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (installed.status !== 0) fail(`${bin.installDb} failed (${installed.error?.message ?? `exit ${installed.status}`}): ${oneLine(installed.stderr ?? '')}`);

  const port = await sparePort();
  const url = `mysql://root@127.0.0.1:${port}/`;
  child = spawn(
    bin.server,
    [
      ...common,
      `--datadir=${datadir}`,
      `--socket=${path.join(dir, 'sock')}`,
      `--pid-file=${path.join(dir, 'pid')}`,
      `--log-error=${path.join(dir, 'error.log')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=32M',
    ],
    { stdio: 'ignore' },
  );
  let exited: string | undefined;
  const gone = new Promise<void>((resolve) =>
    child!.once('exit', (code, signal) => {
      exited = String(code ?? signal);
      resolve();
    }),
  );
  const started = Date.now();
  for (;;) {
    if (exited !== undefined) fail(`${bin.server} exited (${exited}) while starting`);
    const conn = await mysql.createConnection({ uri: url, connectTimeout: 1_000 }).catch(() => undefined);
    if (conn) {
      await conn.end().catch(() => {});
      break;
    }
    if (Date.now() - started > 60_000) fail(`${bin.server} did not answer within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url,
    dir,
    async remove() {
      if (exited === undefined) {
        child!.kill('SIGTERM');
        const timer = setTimeout(() => child!.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
      process.removeListener('exit', cleanUp);
    },
  };
}

/** A loopback port nobody listens on right now (the kernel's pick). */
export function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string): string {
  try {
    return oneLine(readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' '));
  } catch {
    return '';
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
