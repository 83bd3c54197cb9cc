// strictNames: names outside the catalogue refused at run time, for callers the
// compiler does not check, such as a CommonJS worker in plain JavaScript.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createLockTable } from '../../lib/locktable.js';
import { createTestDb, rawRow, type TestDb } from '../helpers/db.js';

const root = path.join(__dirname, '..', '..', '..');

/** A plain-JavaScript CommonJS worker that tries to take `name`; prints the outcome as JSON. */
function worker(url: string, name: string, strictNames: boolean): { ok: boolean; name?: string; code?: string; message?: string } {
  const script = `
    const { createLockTable } = require('locktable');
    const table = createLockTable({ db: ${JSON.stringify(url)}, strictNames: ${strictNames} });
    table.acquire(${JSON.stringify(name)}).then(
      (lease) => console.log(JSON.stringify({ ok: true, name: lease.names[0] })),
      (err) => console.log(JSON.stringify({ ok: false, code: err.code, message: err.message })),
    ).finally(() => table.close());`;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as ReturnType<typeof worker>;
}

describe('strictNames', () => {
  let db: TestDb;
  before(async () => (db = await createTestDb('strict_names')));
  after(async () => db?.drop());

  it("refuses a misspelt name from a CommonJS worker with EINVALIDNAME naming the builder, and writes nothing", async () => {
    const before = await rawRow(db.pool);
    const refused = worker(db.url, 'app_tsk_blog', true);
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 'EINVALIDNAME');
    assert.match(refused.message!, /^invalid lock name "app_tsk_blog": .*did you mean LockTypes\.appTask\('blog'\), which builds app_task_blog\?/);
    assert.deepEqual(await rawRow(db.pool), before, 'the row is as it was');
    // A name the catalogue builds goes through.
    assert.deepEqual(worker(db.url, 'app_task_blog', true), { ok: true, name: 'app_task_blog' });
  });

  it('is off by default: the same misspelt name is taken, as a name of its own type', async () => {
    assert.deepEqual(worker(db.url, 'app_tsk_wiki', false), { ok: true, name: 'app_tsk_wiki' });
    const table = createLockTable({ db: db.pool, strictNames: true });
    try {
      // A strict table still sees, and can clean up, what others took.
      const held = (await table.list()).find((l) => l.name === 'app_tsk_wiki');
      assert.equal(held?.type, 'app_tsk_wiki');
      assert.equal((await table.releaseName('app_tsk_wiki', { force: true }))?.name, 'app_tsk_wiki');
    } finally {
      await table.close();
    }
  });
});
