// The demo, run as a user would (`locktable demo`), against the test server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { runDemo } from '../../lib/demo/server.js';
import { serverUrl } from '../helpers/db.js';
import { sparePort } from '../helpers/private-server.js';

const CLI = path.join(__dirname, '..', '..', '..', 'dist', 'cli.js');

describe('the demo', () => {
  it('shows the start-up cleanup releasing exactly the dead task\'s locks, cleans up, and exits 0', async () => {
    const base = new URL(serverUrl());
    base.pathname = '/';
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'demo', '--url', base.toString()], { env: { ...process.env, MYSQL_URL: undefined } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
      );
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const out = run.stdout;
    assert.match(out, /\[task 104\] contended: app_task_blog held by task 101/);
    assert.match(out, /task 102 is dead[^\n]*\n(.*\n)*app_task_wiki .* dead\n/);
    const released = [...out.matchAll(/^ {2}released (\S+), held by task (\S+),/gm)].map((m) => [m[1], m[2]]);
    // removeWhere reports in name order (lib/transitions.ts).
    assert.deepEqual(released, [['app_backup_wiki', '102'], ['app_task_wiki', '102']]);
    assert.match(out, /the cleanup released exactly task 102's locks/);
    const database = /^cleaned up: dropped (locktable_demo_\w+)$/m.exec(out)?.[1];
    assert.ok(database, out);
    assert.match(out, /cleaned up: dropped \w+\ndemo done\n$/, 'the cleanup is printed last');
    const admin = await mysql.createConnection({ uri: serverUrl() });
    try {
      const [rows] = await admin.query('SHOW DATABASES LIKE ?', [database]);
      assert.deepEqual(rows, [], 'its database is gone');
    } finally {
      await admin.end();
    }
  });

  it('with no MYSQL_URL and nothing answering, starts a private MariaDB, runs on it, and removes it', async function () {
    this.timeout(180_000);
    // A spare port stands for a machine whose local server is stopped: the shared one is never touched.
    const port = await sparePort();
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [CLI, 'demo'],
        { env: { ...process.env, MYSQL_URL: undefined, LOCKTABLE_DEMO_DEFAULT_URL: `mysql://root@127.0.0.1:${port}/` } },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
      );
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`^nothing answers at mysql://root@127\\.0\\.0\\.1:${port}/: starting a private MariaDB`, 'm'));
    const dir = /^private MariaDB in (\S+)$/m.exec(run.stdout)?.[1];
    assert.ok(dir, run.stdout);
    const at = /^server at mysql:\/\/root@127\.0\.0\.1:(\d+)\/$/m.exec(run.stdout)?.[1];
    assert.ok(at && Number(at) !== port && Number(at) !== 3306, run.stdout);
    assert.match(run.stdout, /the cleanup released exactly task 102's locks/);
    assert.match(run.stdout, /cleaned up: stopped the private MariaDB and removed \S+\ndemo done\n$/);
    assert.equal(existsSync(dir), false, 'its directory is gone');
    const left = await mysql.createConnection({ uri: `mysql://root@127.0.0.1:${at}/`, connectTimeout: 1_000 }).then(
      async (c) => {
        await c.end();
        return 'still answers';
      },
      (err: { code?: string }) => err.code,
    );
    assert.equal(left, 'ECONNREFUSED', 'the private server is stopped');
  });

  it('with nothing answering and no server installed, says in one line what to install or set, and exits 1', async () => {
    const port = await sparePort();
    let out = '';
    let err = '';
    const code = await runDemo({
      defaultUrl: `mysql://root@127.0.0.1:${port}/`,
      serverBinaries: null,
      out: { write: (s: string) => (out += s) },
      err: { write: (s: string) => (err += s) },
    });
    assert.equal(code, 1);
    assert.equal(
      err,
      `locktable demo: nothing answers at mysql://root@127.0.0.1:${port}/ and no MariaDB server is installed here to start a private one: ` +
        'install mariadb-server (mariadbd, mariadb-install-db), or set MYSQL_URL=mysql://user:password@host:port/ to a server you can use\n',
    );
    assert.doesNotMatch(out, /demo done/);
  });
});
