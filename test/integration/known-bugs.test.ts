// KNOWN BUGS: tests that fail on the library as it is, each saying what is
// wrong. They are pending in `npm test` (the suite stays green while the fix
// is pending) and run with LOCKTABLE_KNOWN_BUGS=1:
//
//   npm run build && npm run build:test && LOCKTABLE_KNOWN_BUGS=1 npx mocha --no-config \
//     --require build/test/helpers/root-hooks.js --exit build/test/integration/known-bugs.test.js
//
// When a fix lands, move its test to the suite it belongs to, ungated.
//
// A write cut off by its caller's bound lands after the clean-up that was meant
// to undo it (found by the chaos run's kinds variant: a lock of a stopped
// worker left held at the end, "leaked: 1", seed 706250306, 180 s).
//
// A read-decide-write (shared and semaphore acquisitions, an exclusive one
// after a wake-up, getting in line) runs its statements under the caller's
// bound, signal included. When the bound fires while the compare-and-swap
// UPDATE is in flight, lib/db.ts closes the connection (ELOCKTABLE_CUT) and
// the write's outcome is unknown: an acquisition puts its nonce in the
// background release (lib/leftovers.ts), a wait() drops its intent
// (lib/waiting.ts #leaveLine). Both read the row and find nothing to undo,
// because the server has not run the UPDATE yet: closing the client's socket
// does not stop a statement the server is executing or that waits for the
// row lock behind other writers. Then it runs, and `WHERE version = ?` still
// matches, because the clean-up wrote nothing. The result: a lock (or a place
// in line) held by this live process under a nonce no one knows, which no one
// reaps (its owner is alive) until the process exits (a lock) or the intent
// lapses (wait.intentTtlMs).
//
// The one-statement fast path does not have it: its statement runs under the
// writer's own bound, and a result that comes after the caller gave up is
// released then (lib/acquiring.ts `late`). A fix in that spirit: let a
// compare-and-swap write that was sent finish under the operation's deadline
// and settle its outcome then; or fence it: the clean-up of a cut write that
// expected version V, finding the row still at V, writes (bumping the version)
// so that the late UPDATE matches nothing; a row already past V cannot take it
// any more.
import assert from 'node:assert/strict';
import { createLockTable, type LockTable, type WaitOptions } from '../../lib/index.js';
import { createTestDb, until, type TestDb } from '../helpers/db.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const knownBug = process.env.LOCKTABLE_KNOWN_BUGS ? it : it.skip;

/** The compare-and-swap write (lib/store.ts writeIfVersion) of a document that mentions `name`. */
const casOf = (name: string) => (sql: string) => /^UPDATE `locks` SET version = \d+, dataJson = /.test(sql) && sql.includes(name);

describe('known bugs (pending unless LOCKTABLE_KNOWN_BUGS=1)', () => {
  let db: TestDb;
  let proxy: Proxy;
  let other: LockTable; // straight to the server
  let locks: LockTable; // through the proxy

  before(async () => {
    db = await createTestDb('knownbugs');
    proxy = await startProxy({ port: Number(new URL(db.url).port || 3306) });
    other = createLockTable({ db: db.pool, owner: { taskId: 'other' } });
  });
  beforeEach(async () => {
    locks = createLockTable({ db: proxy.url(db.name), owner: { taskId: 'proxied' }, wait: { intentTtlMs: 60_000 } });
    await other.releaseAll();
  });
  afterEach(async () => {
    await locks.close();
  });
  after(async () => {
    await other.close();
    await proxy.close();
    await db.drop();
  });

  /**
   * Arms a 'late' cut at the compare-and-swap write of `name` that aborts
   * `abort` the moment the proxy sees it (the caller's bound fires with the
   * write in flight): the client loses the connection, and the server runs
   * the write only after the client's next statement (the clean-up's read)
   * has been answered. Resolves once it has run.
   */
  const abortInFlight = (name: string, abort: AbortController) => {
    const cas = casOf(name);
    return proxy.cutAt((sql) => {
      if (!cas(sql)) return false;
      abort.abort();
      return true;
    }, 'late');
  };

  knownBug('KNOWN BUG: a shared acquire aborted with its write in flight leaves the name held by this live process once the write lands', async () => {
    const abort = new AbortController();
    const landed = abortInFlight('app_task_inflight', abort);
    // acquire() honours signal (README), though its AcquireOptions type does not declare it.
    const options: WaitOptions = { mode: 'shared', signal: abort.signal };
    await assert.rejects(locks.acquire('app_task_inflight', options), { code: 'EABORTED' });
    await landed; // the server ran the write after the background release had read the row
    await until(
      'the lost acquisition to be released (its owner, this process, is alive: no one else will)',
      async () => (await other.list()).every((h) => h.name !== 'app_task_inflight'),
      10_000,
    );
  });

  knownBug('KNOWN BUG: a wait() aborted with its get-in-line write in flight leaves its intent in line, its owner alive, once the write lands', async () => {
    const held = await other.acquire('app_task_inline');
    const abort = new AbortController();
    const landed = abortInFlight('app_task_inline', abort);
    await assert.rejects(locks.wait('app_task_inline', { mode: 'shared', signal: abort.signal }), { code: 'EABORTED' });
    await landed;
    await other.release(held);
    await until('the aborted waiter to be out of line (well before its intent lapses, 60 s)', async () => (await other.listWaiters()).length === 0, 10_000);
  });
});
