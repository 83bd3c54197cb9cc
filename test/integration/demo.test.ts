// The demo, run as a user would (`locktable demo`), against the test server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { serverUrl } from '../helpers/db.js';

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
});
