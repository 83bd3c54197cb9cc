// Every error a user can cause, as the user meets it: the input, the stable
// code, and the whole message, which names the cause in the user's terms and
// the next step. Change a message here on purpose, never by accident.
import assert from 'node:assert/strict';
import { parseCommandLine } from '../../lib/cli/args.js';
import { ClosedError, LockedError, LockError, NotHeldError, TimeoutError, type Holder, type Waiting } from '../../lib/errors.js';
import { toLockError } from '../../lib/faults.js';
import { createLockTable } from '../../lib/locktable.js';
import { defineLockTypes } from '../../lib/names.js';
import { resolveCall, resolveOptions, splitUsingOptions } from '../../lib/options.js';
import { sparePort } from '../helpers/private-server.js';

type Row = [input: string, run: () => unknown, code: string, message: string | RegExp];

const A_YEAR = 365 * 24 * 3_600_000;
const LOCK_TYPES_WAYS =
  'LockTypes.appTask(id), LockTypes.appBackup(id), LockTypes.fullBackupTask(id), LockTypes.taskType(id), or use a singleton: box_update, box_update_task, mail_restart';

/** Runs `fn` on a table whose pool points at nothing (no statement is sent before the name check), then closes it. */
function onTable(options: Record<string, unknown>, fn: (t: ReturnType<typeof createLockTable>) => Promise<unknown>): () => Promise<unknown> {
  return async () => {
    const table = createLockTable({ db: 'mysql://root@127.0.0.1:9/none', ...options });
    try {
      return await fn(table);
    } finally {
      await table.close();
    }
  };
}

const HOLDER = {
  name: 'app_task_blog',
  type: 'app_task',
  owner: { host: 'box1', pid: 4242, taskId: '101' },
  token: 7,
  acquiredAt: new Date('2026-01-02T03:04:05.000Z'),
} as unknown as Holder;
const WAITING = {
  name: 'app_task_blog',
  position: 1,
  id: 'w',
  owner: { host: 'box1', pid: 4343, taskId: '102' },
  since: new Date('2026-01-02T03:04:05.000Z'),
  expiresAt: new Date('2026-01-02T03:04:15.000Z'),
} as unknown as Waiting;
const fail = (err: Error) => () => {
  throw err;
};

const MyLocks = defineLockTypes({ singletons: ['reindex'], prefixes: { user: 'user_' } } as const);

const TABLE: Row[] = [
  // Per-call options.
  ['acquire(n, { ttlMs: 0.5 })', () => resolveCall('a', { ttlMs: 0.5 }), 'EINVALIDOPTION', 'ttlMs must be a whole number of milliseconds ≥ 1, got 0.5'],
  ['acquire(n, { ttlMs: 0 })', () => resolveCall('a', { ttlMs: 0 }), 'EINVALIDOPTION', 'ttlMs must be ≥ 1 ms, got 0'],
  ['acquire(n, { ttlMs: 1e12 })', () => resolveCall('a', { ttlMs: 1e12 }), 'EINVALIDOPTION', `ttlMs must be ≤ ${A_YEAR} ms (a year), got 1000000000000`],
  ['acquire(n, { ttlMs: "5" })', () => resolveCall('a', { ttlMs: '5' }), 'EINVALIDOPTION', 'ttlMs must be a whole number of milliseconds ≥ 1, got "5"'],
  ['acquire(n, { ttl: 5 })', () => resolveCall('a', { ttl: 5 }), 'EINVALIDOPTION', 'unknown option ttl: did you mean ttlMs? (the options are ttlMs, barge, mode, limit, signal, timeoutMs)'],
  ['wait(n, { timeoutMs: -1 })', () => resolveCall('a', { timeoutMs: -1 }), 'EINVALIDOPTION', 'timeoutMs must be ≥ 0 ms, got -1'],
  ['wait(n, { signal: "x" })', () => resolveCall('a', { signal: 'x' }), 'EINVALIDOPTION', 'signal must be an AbortSignal, got "x"'],
  ['acquire(n, 5000)', () => resolveCall('a', 5000), 'EINVALIDOPTION', 'the options of acquire, tryAcquire and wait are an object { ttlMs?, barge?, mode?, limit?, signal?, timeoutMs? }, got 5000'],
  ['acquire(n, { mode: "read" })', () => resolveCall('a', { mode: 'read' }), 'EINVALIDOPTION', `mode must be 'exclusive' or 'shared', got "read"`],
  ['acquire(n, { limit: 0 })', () => resolveCall('a', { limit: 0 }), 'EINVALIDOPTION', 'limit must be ≥ 1 holders, got 0'],
  ['acquire(n, { mode: "exclusive", limit: 2 })', () => resolveCall('a', { mode: 'exclusive', limit: 2 }), 'EINVALIDOPTION', "option limit: a semaphore (limit 2) is shared by definition; leave out mode: 'exclusive', or the limit for an exclusive lock"],
  ['using(n, fn, { wait: "yes" })', () => splitUsingOptions({ wait: 'yes' }), 'EINVALIDOPTION', 'wait must be true or false, got "yes"'],
  ['using(n, fn, { wiat: true })', () => splitUsingOptions({ wiat: true }), 'EINVALIDOPTION', 'unknown option wiat: did you mean wait? (the options are wait, ttlMs, barge, mode, limit, signal, timeoutMs)'],
  // createLockTable options.
  ['createLockTable()', () => resolveOptions(undefined), 'EINVALIDOPTION', "createLockTable takes an options object such as { db: 'mysql://user:password@host:port/database' }, got nothing"],
  ['createLockTable({})', () => resolveOptions({}), 'EINVALIDOPTION', 'db must be a mysql2 pool or a mysql://user:password@host:port/database URI, got nothing'],
  ['{ poolsize: 5 }', () => resolveOptions({ db: 'x', poolsize: 5 }), 'EINVALIDOPTION', 'unknown option poolsize: did you mean poolSize? (the options are db, space, owner, types, strictNames, poolSize, maxInFlight, fastPath, ttlMs, retry, wait)'],
  ['{ poolSize: 65 }', () => resolveOptions({ db: 'x', poolSize: 65 }), 'EINVALIDOPTION', 'poolSize must be ≤ 64 connections, got 65'],
  ['{ retry: { deadlineMS } }', () => resolveOptions({ db: 'x', retry: { deadlineMS: 5 } }), 'EINVALIDOPTION', 'unknown option retry.deadlineMS: did you mean retry.deadlineMs? (the options of retry are baseMs, capMs, deadlineMs)'],
  ['{ retry: { deadlineMs: 1.5 } }', () => resolveOptions({ db: 'x', retry: { deadlineMs: 1.5 } }), 'EINVALIDOPTION', 'retry.deadlineMs must be a whole number of milliseconds ≥ 0, got 1.5'],
  ['{ space: "a b" }', () => resolveOptions({ db: 'x', space: 'a b' }), 'EINVALIDOPTION', 'space must be a space name: 1-128 characters of A-Z a-z 0-9 _ . -, got "a b"'],
  ['{ owner: { taskId: 7 } }', () => resolveOptions({ db: 'x', owner: { taskId: 7 } }), 'EINVALIDOPTION', 'owner.taskId must be a string of 1-255 characters, got 7'],
  ['{ strictNames: "yes" }', () => resolveOptions({ db: 'x', strictNames: 'yes' }), 'EINVALIDOPTION', 'strictNames must be true or false, got "yes"'],
  // Names outside the catalogue, when strictNames is on.
  [
    "acquire('app_tsk_blog'), strictNames",
    onTable({ strictNames: true }, (t) => t.acquire('app_tsk_blog' as never)),
    'EINVALIDNAME',
    `invalid lock name "app_tsk_blog": not in the lock catalogue (LockTypes), and strictNames refuses names outside it: did you mean LockTypes.appTask('blog'), which builds app_task_blog? Otherwise build names with ${LOCK_TYPES_WAYS}`,
  ],
  [
    "tryAcquire('box_updat'), strictNames",
    onTable({ strictNames: true }, (t) => t.tryAcquire('box_updat' as never)),
    'EINVALIDNAME',
    `invalid lock name "box_updat": not in the lock catalogue (LockTypes), and strictNames refuses names outside it: did you mean box_update? Otherwise build names with ${LOCK_TYPES_WAYS}`,
  ],
  [
    "wait('app_task_'), strictNames",
    onTable({ strictNames: true }, (t) => t.wait('app_task_' as never)),
    'EINVALIDNAME',
    `invalid lock name "app_task_": not in the lock catalogue (LockTypes), and strictNames refuses names outside it: a name of this kind needs an id: LockTypes.appTask(id). Otherwise build names with ${LOCK_TYPES_WAYS}`,
  ],
  [
    "using('zzz'), strictNames, own catalogue",
    onTable({ strictNames: true, types: MyLocks }, (t) => t.using('zzz' as never, async () => {})),
    'EINVALIDNAME',
    'invalid lock name "zzz": not in the lock catalogue given as types, and strictNames refuses names outside it; build names with user(id), or use a singleton: reindex',
  ],
  ["acquire('a b')", onTable({}, (t) => t.acquire('a b' as never)), 'EINVALIDNAME', 'invalid lock name "a b": use only A-Z a-z 0-9 _ . - and do not start with . or -'],
  // Driver errors, as the operation the user called.
  [
    'acquire on a server that refuses the user',
    () => { throw toLockError({ errno: 1045, code: 'ER_ACCESS_DENIED_ERROR', message: "Access denied for user 'app'@'localhost' (using password: YES)" }, 'acquire'); },
    'EDATABASE',
    "acquire: the server refused the user or password: check them in the URI (or pool) (Access denied for user 'app'@'localhost' (using password: YES)) [ER_ACCESS_DENIED_ERROR]",
  ],
  [
    'releaseByOwner on an unmigrated database',
    () => { throw toLockError({ errno: 1146, code: 'ER_NO_SUCH_TABLE', message: "Table 'x.locks' doesn't exist" }, 'owner'); },
    'ENOTMIGRATED',
    'releaseByOwner: the locks table does not exist: run migrate(db) (or `locktable migrate`) first',
  ],
  [
    'releaseAll without UPDATE privilege',
    () => { throw toLockError({ errno: 1142, code: 'ER_TABLEACCESS_DENIED_ERROR', message: "UPDATE command denied to user 'app'@'localhost' for table `x`.`locks`" }, 'wiped'); },
    'EDATABASE',
    "releaseAll: the user lacks a privilege: grant SELECT, INSERT, UPDATE on the lock table (docs/shared-database.md lists what migrate() needs), or use another user; `locktable doctor` lists what is missing (UPDATE command denied to user 'app'@'localhost' for table `x`.`locks`) [ER_TABLEACCESS_DENIED_ERROR]",
  ],
  // What a user meets while using locks.
  [
    'acquire of a held name',
    fail(new LockedError([HOLDER])),
    'ELOCKED',
    'locked: app_task_blog by task 101, pid 4242 on box1 since 2026-01-02T03:04:05.000Z (token 7); wait for it with wait() or using(names, fn, { wait: true }), or see who holds what with `locktable list`',
  ],
  [
    'acquire of a free name a waiter is in line for',
    fail(new LockedError([], undefined, [WAITING])),
    'ELOCKED',
    'locked: waiters in line first (pass { barge: true } to ignore the line): app_task_blog #1 task 102, pid 4343 on box1 since 2026-01-02T03:04:05.000Z; wait for it with wait() or using(names, fn, { wait: true }), or see who holds what with `locktable list`',
  ],
  [
    'acquire of box_update while an app task runs (a conflict rule)',
    fail(new LockedError([{ ...HOLDER, rule: 'box_update <-> app_task_*' }])),
    'ELOCKED',
    'locked: app_task_blog by task 101, pid 4242 on box1 since 2026-01-02T03:04:05.000Z (token 7; conflict rule box_update <-> app_task_*); wait for it with wait() or using(names, fn, { wait: true }), or see who holds what with `locktable list`',
  ],
  [
    'acquire of an app task while a box update waits (a conflict rule)',
    fail(new LockedError([], undefined, [{ ...WAITING, name: 'box_update', rule: 'box_update <-> app_task_*' }])),
    'ELOCKED',
    'locked: waiters in line first (pass { barge: true } to ignore the line): box_update #1 task 102, pid 4343 on box1 since 2026-01-02T03:04:05.000Z (conflict rule box_update <-> app_task_*); wait for it with wait() or using(names, fn, { wait: true }), or see who holds what with `locktable list`',
  ],
  [
    'a conflict rule with a misspelt pattern',
    () => defineLockTypes({ singletons: ['box_update'], prefixes: { appTask: 'app_task_' }, conflicts: { box_update: ['app_tsk_*'] } }),
    'EINVALIDOPTION',
    "conflicts: 'app_tsk_*' matches no name of the catalogue: did you mean 'app_task_*'? (patterns: a singleton, a type, or a prefix followed by *: box_update, app_task_*, app_task)",
  ],
  [
    'release of an expired, retaken lease',
    fail(new NotHeldError(['app_task_blog'], 'expired', [HOLDER])),
    'ENOTHELD',
    'lease no longer held on app_task_blog: expired (its ttlMs ran out and another acquirer took it: extend() the lease before it ends, or give a longer ttlMs); now held by app_task_blog by task 101, pid 4242 on box1 since 2026-01-02T03:04:05.000Z (token 7)',
  ],
  ['a second release', fail(new NotHeldError(['a'], 'released')), 'ENOTHELD', 'lease no longer held on a: released (it was released already: a lease is released once)'],
  [
    'wait() past timeoutMs',
    fail(new TimeoutError(5000, [HOLDER])),
    'ETIMEDOUT',
    'gave up after 5000 ms; held by app_task_blog by task 101, pid 4242 on box1 since 2026-01-02T03:04:05.000Z (token 7): wait longer (timeoutMs), or see who holds what with `locktable list`',
  ],
  [
    'wait() past timeoutMs, behind a waiter in line',
    fail(new TimeoutError(5000, [HOLDER], [WAITING])),
    'ETIMEDOUT',
    'gave up after 5000 ms; held by app_task_blog by task 101, pid 4242 on box1 since 2026-01-02T03:04:05.000Z (token 7); waiters in line first (pass { barge: true } to ignore the line): app_task_blog #1 task 102, pid 4343 on box1 since 2026-01-02T03:04:05.000Z: wait longer (timeoutMs), or see who holds what with `locktable list`',
  ],
  ['acquire after close()', fail(new ClosedError()), 'ECLOSED', 'the lock table was closed: create another with createLockTable() to go on'],
  // The command line.
  ['locktable lst', () => parseCommandLine(['lst'], {}), 'EINVALIDOPTION', "unknown command 'lst': did you mean list? (see locktable --help)"],
  ['locktable help relase', () => parseCommandLine(['help', 'relase'], {}), 'EINVALIDOPTION', "unknown command 'relase': did you mean release? (see locktable --help)"],
  ['locktable frobnicate', () => parseCommandLine(['frobnicate'], {}), 'EINVALIDOPTION', "unknown command 'frobnicate' (see locktable --help)"],
  ['locktable list --josn', () => parseCommandLine(['list', '--josn'], {}), 'EINVALIDOPTION', "Unknown option '--josn': did you mean --json? (see locktable --help)"],
  ['locktable reap --task 1', () => parseCommandLine(['reap', '--task', '1'], { MYSQL_URL: 'mysql://r@h/d' }), 'EINVALIDOPTION', 'reap takes no option --task (see locktable reap --help)'],
  ['locktable release-owner --pid 4194305', () => parseCommandLine(['release-owner', '--pid', '4194305'], { MYSQL_URL: 'mysql://r@h/d' }), 'EINVALIDOPTION', "--pid '4194305': give a whole number from 1 to 4194304"],
  ['locktable release-owner --pid 0', () => parseCommandLine(['release-owner', '--pid', '0'], { MYSQL_URL: 'mysql://r@h/d' }), 'EINVALIDOPTION', "--pid '0': give a whole number from 1 to 4194304"],
  ['locktable list (no URL)', () => parseCommandLine(['list'], {}), 'EINVALIDOPTION', 'no database: set MYSQL_URL or pass --url mysql://user:password@host:port/database'],
];

async function outcome(run: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof LockError, `a LockError, not ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  return { code: 'no error', message: '' };
}

describe('error messages: input → code and message', () => {
  for (const [input, run, code, message] of TABLE) {
    it(input, async () => {
      const got = await outcome(run);
      assert.equal(got.code, code, got.message);
      if (typeof message === 'string') assert.equal(got.message, message);
      else assert.match(got.message, message);
    });
  }

  it('a wrong port: the final error says which address was tried, that nothing answers there, and what to check', async () => {
    const port = await sparePort();
    const table = createLockTable({ db: `mysql://root@127.0.0.1:${port}/app`, retry: { deadlineMs: 200 } });
    try {
      for (const [op, run] of [
        ['acquire', () => table.acquire('app_task_blog')],
        ['list', () => table.list()],
        ['releaseByOwner', () => table.releaseByOwner({ taskId: '7' })],
        ['releaseName', () => table.releaseName('app_task_blog')],
      ] as const) {
        const got = await outcome(run);
        assert.equal(got.code, 'EDATABASE', got.message);
        assert.equal(
          got.message,
          `${op}: nothing answers at 127.0.0.1:${port}: check that the MySQL/MariaDB server is running there and that the host and port of the URI (or pool) are right (connect ECONNREFUSED 127.0.0.1:${port}) [ECONNREFUSED]`,
        );
      }
    } finally {
      await table.close();
    }
  });
});
