// The real binary (node dist/cli.js) against the real server.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { createLockTable, type LockInfo, type LockTable } from '../../lib/index.js';
import { createTestDb, serverUrl, storeRaw, storedText, until, type TestDb } from '../helpers/db.js';
import { Worker } from '../helpers/workers.js';

const CLI = path.join(__dirname, '..', '..', '..', 'dist', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, MYSQL_URL: undefined, DEBUG: undefined, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** An error is one line on stderr, never a stack trace. */
function oneLine(run: Run): string {
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
  assert.match(run.stderr, /^locktable: /);
  return run.stderr.trim();
}

describe('the locktable CLI (real binary, real server)', () => {
  let db: TestDb;
  let locks: LockTable;
  let env: Record<string, string>;
  const workers: Worker[] = [];
  const start = async (taskId: string) => {
    const w = await Worker.start({ url: db.url, taskId });
    workers.push(w);
    return w;
  };

  before(async () => {
    db = await createTestDb('cli');
    locks = createLockTable({ db: db.pool, owner: { taskId: 'test-server' } });
    env = { MYSQL_URL: db.url };
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await locks.releaseAll();
  });
  after(async () => {
    await locks.close();
    await db.drop();
  });

  it('list --json parses and matches list()', async () => {
    const mine = await locks.acquire(['app_task_blog', 'app_backup_blog'], { ttlMs: 600_000 });
    const w = await start('task-5');
    assert.ok((await w.send({ op: 'acquire', names: ['box_update_task'] })).ok);
    const run = await cli(['list', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const listed = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    const expected = await locks.list();
    const comparable = (l: Record<string, unknown>) => {
      const { ageMs, ...rest } = l;
      return { ...rest, ageNonNegative: typeof ageMs === 'number' && ageMs >= 0 };
    };
    // Dates travel as ISO strings; ages moved on between the two reads.
    assert.deepEqual(listed.map(comparable), (JSON.parse(JSON.stringify(expected)) as Array<Record<string, unknown>>).map(comparable));
    assert.deepEqual(
      listed.map((l) => [l.name, (l.owner as { taskId: string }).taskId, l.token, l.liveness]),
      [
        ['app_backup_blog', 'test-server', mine.token, 'alive'],
        ['app_task_blog', 'test-server', mine.token, 'alive'],
        ['box_update_task', 'task-5', expected[2]!.token, 'alive'],
      ],
    );
    assert.equal(listed[0]!.expiresAt, mine.expiresAt!.toISOString());
  });

  it('list shows a table with owner, age, token and liveness', async () => {
    const w = await start('task-6');
    assert.ok((await w.send({ op: 'acquire', names: ['mail_restart'] })).ok);
    const run = await cli(['list'], env);
    assert.equal(run.code, 0, run.stderr);
    const [header, line, ...rest] = run.stdout.trimEnd().split('\n');
    assert.match(header!, /^NAME\s+TYPE\s+TASK\s+PID\s+HOST\s+USER\s+AGE\s+EXPIRES\s+TOKEN\s+LIVENESS$/);
    assert.match(line!, new RegExp(`^mail_restart\\s+mail_restart\\s+task-6\\s+${w.pid}\\s+\\S+\\s+\\S+\\s+\\d+(ms|s)\\s+-\\s+\\d+\\s+alive$`));
    assert.deepEqual(rest, []);
  });

  it("release refuses a live owner's lock without --force, says whose it is, and exits 3", async () => {
    const w = await start('task-7');
    assert.ok((await w.send({ op: 'acquire', names: ['box_update'] })).ok);
    const refused = await cli(['release', 'box_update'], env);
    assert.equal(refused.code, 3);
    assert.equal(refused.stdout, '');
    assert.match(oneLine(refused), new RegExp(`refusing to release box_update: held by task task-7, pid ${w.pid} on .*which is alive; --force releases it anyway.*\\[ELOCKED\\]$`));
    assert.deepEqual((await locks.list()).map((l) => [l.name, l.owner.pid]), [['box_update', w.pid]], 'still held');

    const forced = await cli(['release', 'box_update', '--force'], env);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, new RegExp(`^released box_update, held by task task-7, pid ${w.pid} on .* token \\d+ \\(forced: its owner was alive\\)\\n$`));
    assert.deepEqual(await locks.list(), []);
    const reply = await w.send({ op: 'release' });
    assert.equal(reply.code, 'ENOTHELD');
    assert.match(reply.error!, /forced/);
  });

  it("release frees a dead owner's lock without --force, and a name nobody holds is no error", async () => {
    const w = await start('task-8');
    assert.ok((await w.send({ op: 'acquire', names: ['app_task_x'] })).ok);
    await w.kill();
    const run = await cli(['release', 'app_task_x'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^released app_task_x, held by task task-8, .*\(its owner was dead\)$/m);
    const again = await cli(['release', 'app_task_x'], env);
    assert.deepEqual([again.code, again.stdout], [0, "app_task_x is not held in space 'platform'; nothing to release\n"]);
  });

  it('release-owner releases one task\'s or one pid\'s locks', async () => {
    const a = await start('task-a');
    const b = await start('task-b');
    assert.ok((await a.send({ op: 'acquire', names: ['app_task_a', 'app_backup_a'] })).ok);
    assert.ok((await b.send({ op: 'acquire', names: ['app_task_b'] })).ok);
    const byTask = await cli(['release-owner', '--task', 'task-a'], env);
    assert.equal(byTask.code, 0, byTask.stderr);
    assert.match(byTask.stdout, /^released 2 locks of task task-a:\n/);
    const byPid = await cli(['release-owner', '--pid', String(b.pid), '--json'], env);
    assert.equal(byPid.code, 0, byPid.stderr);
    assert.deepEqual((JSON.parse(byPid.stdout) as LockInfo[]).map((h) => [h.name, h.owner.taskId]), [['app_task_b', 'task-b']]);
    assert.deepEqual(await locks.list(), []);
  });

  it('reap --dry-run shows what would go and releases nothing; reap releases exactly the dead', async () => {
    const doomed = await start('doomed');
    const alive = await start('alive');
    assert.ok((await doomed.send({ op: 'acquire', names: ['app_task_d', 'app_backup_d'] })).ok);
    assert.ok((await alive.send({ op: 'acquire', names: ['app_task_l'] })).ok);
    await doomed.kill();
    const dry = await cli(['reap', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would release 2 locks of dead owners:\n/);
    assert.match(dry.stdout, /app_backup_d .* dead\n/);
    assert.equal((await locks.list()).length, 3, 'nothing released');
    const dryJson = await cli(['reap', '--dry-run', '--json'], env);
    assert.deepEqual((JSON.parse(dryJson.stdout) as LockInfo[]).map((l) => l.name), ['app_backup_d', 'app_task_d']);

    const run = await cli(['reap'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^released 2 locks of dead owners:\n/);
    assert.deepEqual((await locks.list()).map((l) => l.name), ['app_task_l']);
    const again = await cli(['reap'], env);
    assert.equal(again.stdout, 'no lock has a dead owner; nothing released\n');
  });

  it('watch prints the table until interrupted, then exits 0', async () => {
    await locks.acquire('box_update_task');
    const child = spawn(process.execPath, [CLI, 'watch', '--interval', '100'], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await until('two frames', () => out.split('Ctrl-C to stop').length > 2);
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(out, /space 'platform' at mysql:\/\/root@.* · 1 lock · /);
    assert.match(out, /box_update_task\s+box_update_task\s+test-server/);
  });

  it('migrate applies the migrations once', async () => {
    const fresh = await createTestDb('cli_migrate', { migrate: false });
    try {
      const first = await cli(['migrate', '--url', fresh.url]);
      assert.deepEqual([first.code, first.stdout], [0, 'applied 001-create-locks.sql, 002-data-checksum.sql, 003-checksum-now.sql\n'], first.stderr);
      const second = await cli(['migrate', '--url', fresh.url]);
      assert.deepEqual([second.code, second.stdout], [0, 'nothing to apply; 3 recorded (001-create-locks.sql, 002-data-checksum.sql, 003-checksum-now.sql)\n']);
    } finally {
      await fresh.drop();
    }
  });

  it('doctor passes a healthy deployment with exit 0', async () => {
    const run = await cli(['doctor'], env);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    for (const check of ['server', 'json', 'privileges', 'schema', 'migrations', 'document', 'locks', 'clock']) {
      assert.match(run.stdout, new RegExp(`^  ok    ${check} `, 'm'), check);
    }
    assert.match(run.stdout, /no problem found\.\n$/);
  });

  it('doctor reports a missing table, and what to do, with exit 4', async () => {
    const bare = await createTestDb('cli_bare', { migrate: false });
    try {
      const run = await cli(['doctor', '--url', bare.url]);
      assert.equal(run.code, 4, run.stdout);
      assert.match(run.stdout, /^  FAIL  schema +the locks table is missing\n +→ run `locktable migrate`/m);
      assert.match(run.stdout, /^  FAIL  migrations +no migration recorded/m);
      const json = await cli(['doctor', '--json', '--url', bare.url]);
      assert.equal(json.code, 4);
      assert.deepEqual((JSON.parse(json.stdout) as Array<{ name: string; status: string }>).filter((c) => c.status === 'fail').map((c) => c.name), ['schema', 'migrations']);
      const list = await cli(['list', '--url', bare.url]);
      assert.equal(list.code, 1);
      assert.match(oneLine(list), /the locks table does not exist: run migrate\(db\) \(or `locktable migrate`\) first \[ENOTMIGRATED\]$/);
    } finally {
      await bare.drop();
    }
  });

  it('doctor reports a corrupt document, and what to do, with exit 4; other commands fail with one line', async () => {
    const raw = '{"v":1,"l":{"box_update":{"garbage":true}}}';
    assert.equal(await storeRaw(db.pool, raw), true);
    const stored = await storedText(db.pool, raw); // Oracle MySQL: its canonical text
    const kept = stored.replace(/[{}[\]().*+?^$|\\]/g, '\\$&');
    try {
      const run = await cli(['doctor'], env);
      assert.equal(run.code, 4, run.stdout);
      assert.match(
        run.stdout,
        new RegExp(`^  FAIL  document +space 'platform' \\(version \\d+\\) is corrupt: l\\.box_update\\.t: .*stored text: ${kept}\\n +→ every operation on this space fails with ECORRUPT.*repair\\(raw\\)`, 'm'),
      );
      assert.match(run.stdout, /1 problem found\.\n$/);
      const list = await cli(['list'], env);
      assert.equal(list.code, 1);
      assert.match(oneLine(list), /lock document of space 'platform' is invalid .* \[ECORRUPT\]$/);
      const reap = await cli(['reap'], env);
      assert.equal(reap.code, 1);
      assert.match(oneLine(reap), /\[ECORRUPT\]$/);
    } finally {
      await locks.repair(stored);
    }
  });

  it('doctor names a missing privilege and the GRANT that fixes it', async function () {
    const user = `lt_ro_${randomBytes(3).toString('hex')}`;
    const admin = await mysql.createConnection({ uri: serverUrl() });
    try {
      await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
      await admin.query(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'%'`);
    } catch (err) {
      await admin.end();
      this.skip(); // the test server's user cannot create users
      throw err;
    }
    try {
      const url = new URL(db.url);
      url.username = user;
      url.password = 'pw';
      const run = await cli(['doctor', '--url', url.toString()]);
      assert.equal(run.code, 4, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`^  FAIL  privileges +${user}@% lacks INSERT, UPDATE on locks`, 'm'));
      assert.match(run.stdout, new RegExp(`→ GRANT SELECT, INSERT, UPDATE ON \`${db.name}\`\\.\`locks\` TO '${user}'@'%'`));
      assert.doesNotMatch(run.stdout, /pw@/, 'no password in the report');
    } finally {
      await admin.query(`DROP USER '${user}'@'%'`);
      await admin.end();
    }
  });

  it('fails with one line and exit 1 when the server does not answer, and exit 2 on a bad command line', async () => {
    const down = await cli(['list', '--url', 'mysql://root:secret@127.0.0.1:1/x']);
    assert.equal(down.code, 1);
    assert.match(oneLine(down), /^locktable: cannot reach the database at mysql:\/\/root:\*\*\*@127\.0\.0\.1:1\/x .*\[ECONNREFUSED\]$/);
    const doctor = await cli(['doctor', '--url', 'mysql://root@127.0.0.1:1/x']);
    assert.equal(doctor.code, 4);
    assert.match(doctor.stdout, /^  FAIL  connect +.*ECONNREFUSED/m);
    for (const argv of [[], ['frob'], ['list'], ['release'], ['reap', '--force', '--url', db.url]]) {
      const run = await cli(argv);
      assert.equal(run.code, 2, `${argv.join(' ')}: ${run.stderr}`);
      oneLine(run);
    }
  });

  it('prints help with the exit codes, and its version', async () => {
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: locktable <command> \[options\]/);
    assert.match(help.stdout, /Exit codes:\n  0  done\n  1  failed/);
    const version = await cli(['--version']);
    assert.equal(version.stdout.trim(), require('../../../package.json').version);
  });
});
