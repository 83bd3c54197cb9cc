import assert from 'node:assert/strict';
import { EXIT, parseCommandLine, UsageError } from '../../lib/cli/args.js';
import { columns, describeError, formatChecks, formatDuration, formatLockList, formatLocks, formatOwner, type Row } from '../../lib/cli/format.js';
import { helpText } from '../../lib/cli/help.js';
import { DatabaseError, NotMigratedError } from '../../lib/errors.js';

const env = { MYSQL_URL: 'mysql://u:secret@db:3306/box' };
const conn = { url: env.MYSQL_URL, space: 'platform', table: 'locks' };
const usage = (argv: string[], e: Record<string, string | undefined> = env) => {
  try {
    parseCommandLine(argv, e);
  } catch (err) {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.code, 'EINVALIDOPTION');
    assert.ok(!err.message.includes('\n'), 'one line');
    return err.message;
  }
  assert.fail(`accepted ${argv.join(' ')}`);
};

describe('CLI arguments (pure)', () => {
  it('parses every command with its options', () => {
    assert.deepEqual(parseCommandLine(['list'], env), { name: 'list', conn, json: false });
    assert.deepEqual(parseCommandLine(['list', '--json', '--space', 'other'], env), { name: 'list', conn: { ...conn, space: 'other' }, json: true });
    assert.deepEqual(parseCommandLine(['--url', 'mysql://x@h/db', 'list'], {}), { name: 'list', conn: { url: 'mysql://x@h/db', space: 'platform', table: 'locks' }, json: false });
    assert.deepEqual(parseCommandLine(['watch'], env), { name: 'watch', conn, intervalMs: 1000 });
    assert.deepEqual(parseCommandLine(['watch', '--interval', '250'], env), { name: 'watch', conn, intervalMs: 250 });
    assert.deepEqual(parseCommandLine(['release', 'box_update'], env), { name: 'release', conn, lock: 'box_update', force: false });
    assert.deepEqual(parseCommandLine(['release', '--force', 'app_task_1'], env), { name: 'release', conn, lock: 'app_task_1', force: true });
    assert.deepEqual(parseCommandLine(['release-owner', '--task', '42'], env), { name: 'release-owner', conn, match: { taskId: '42' }, json: false });
    assert.deepEqual(parseCommandLine(['release-owner', '--pid', '123', '--host', 'box2'], env), {
      name: 'release-owner',
      conn,
      match: { pid: 123, host: 'box2' },
      json: false,
    });
    assert.deepEqual(parseCommandLine(['reap', '--dry-run'], env), { name: 'reap', conn, dryRun: true, json: false });
    assert.deepEqual(parseCommandLine(['migrate'], env), { name: 'migrate', conn });
    assert.deepEqual(parseCommandLine(['doctor', '--json'], env), { name: 'doctor', conn, json: true });
    assert.deepEqual(parseCommandLine(['demo'], {}), { name: 'demo', url: undefined });
    assert.deepEqual(parseCommandLine(['demo'], env), { name: 'demo', url: env.MYSQL_URL });
  });

  it('--url wins over MYSQL_URL', () => {
    assert.deepEqual(parseCommandLine(['list', '--url', 'mysql://other@h/x'], env), { name: 'list', conn: { url: 'mysql://other@h/x', space: 'platform', table: 'locks' }, json: false });
  });

  it('answers help and version', () => {
    assert.deepEqual(parseCommandLine(['--help'], {}), { name: 'help' });
    assert.deepEqual(parseCommandLine(['-h'], {}), { name: 'help' });
    assert.deepEqual(parseCommandLine(['help', 'reap'], {}), { name: 'help', topic: 'reap' });
    assert.deepEqual(parseCommandLine(['reap', '--help'], {}), { name: 'help', topic: 'reap' }, 'help needs no database');
    assert.deepEqual(parseCommandLine(['--version'], {}), { name: 'version' });
  });

  it('rejects bad command lines with one line that says what is wrong', () => {
    assert.match(usage([]), /no command given/);
    assert.match(usage(['frob']), /unknown command 'frob'/);
    assert.match(usage(['help', 'frob']), /unknown command 'frob'/);
    assert.match(usage(['list', '--bogus']), /Unknown option '--bogus'/);
    assert.match(usage(['reap', '--force']), /reap takes no option --force/);
    assert.match(usage(['list', 'extra']), /unexpected argument 'extra'/);
    assert.match(usage(['release']), /give the <name>/);
    assert.match(usage(['release', 'a"b']), /invalid lock name/);
    assert.match(usage(['release', 'a', 'b']), /unexpected argument 'b'/);
    assert.match(usage(['release-owner'], env), /exactly one of --task <id> or --pid <pid>/);
    assert.match(usage(['release-owner', '--task', '1', '--pid', '2']), /exactly one/);
    assert.match(usage(['release-owner', '--task', '1', '--host', 'h']), /--host goes with --pid/);
    assert.match(usage(['release-owner', '--pid', '0']), /--pid '0': give a whole number from 1/);
    assert.match(usage(['release-owner', '--pid', '12abc']), /--pid '12abc'/);
    // The API's bounds: Linux's largest pid is 4194304.
    assert.match(usage(['release-owner', '--pid', '4194305']), /--pid '4194305': give a whole number from 1 to 4194304/);
    assert.deepEqual((parseCommandLine(['release-owner', '--pid', '4194304'], env) as { match?: unknown }).match, { pid: 4194304 });
    assert.match(usage(['watch', '--interval', '10']), /--interval '10': give a whole number from 100/);
    assert.match(usage(['list'], {}), /no database: set MYSQL_URL or pass --url/);
    assert.match(usage(['list', '--url', 'postgres://x@h/db']), /scheme 'postgres:'/);
    assert.match(usage(['list', '--url', 'not a url']), /not a URI/);
    assert.match(usage(['list', '--url', 'mysql://x@h']), /names no database/);
    assert.match(usage(['list', '--space', 'a b']), /--space 'a b'/);
    assert.match(usage(['list', '--url']), /argument missing/);
  });

  it('documents every exit code and command in --help', () => {
    const text = helpText();
    for (const code of Object.values(EXIT)) assert.match(text, new RegExp(`^  ${code}  `, 'm'));
    for (const cmd of ['list', 'watch', 'release', 'release-owner', 'reap', 'migrate', 'doctor', 'demo']) {
      assert.match(text, new RegExp(`^  ${cmd} `, 'm'));
      assert.match(helpText(cmd as 'list'), new RegExp(`^Usage: locktable ${cmd}`));
    }
  });
});

describe('CLI formatting (pure)', () => {
  const owner = { host: 'box1', bootId: 'b', pidNs: 'n', pid: 4242, startTime: 1, user: 'yellowtent' };
  const row = (over: Partial<Row>): Row => ({
    name: 'app_task_blog',
    type: 'app_task',
    owner: { ...owner, taskId: '17' },
    token: 9,
    acquiredAt: new Date(1_000_000),
    ageMs: 65_000,
    liveness: 'alive',
    ...over,
  });

  it('formats durations for humans', () => {
    assert.deepEqual([0, 999, 1000, 59_999, 60_000, 245_000, 3_600_000, 11_220_000, 86_400_000, 183_600_000, -5].map(formatDuration), [
      '0ms',
      '999ms',
      '1s',
      '59s',
      '1m00s',
      '4m05s',
      '1h00m',
      '3h07m',
      '1d00h',
      '2d03h',
      '0ms',
    ]);
  });

  it('lays out the lock table sorted by name, with owner, age, expiry (database time) and liveness', () => {
    const text = formatLocks([
      row({ name: 'box_update', type: 'box_update', owner: owner, token: 3, liveness: 'dead', ageMs: 2_000 }),
      row({ expiresAt: new Date(1_000_000 + 65_000 + 30_000) }),
    ]);
    assert.equal(
      text,
      [
        'NAME           TYPE        TASK  PID   HOST  USER        AGE    EXPIRES  TOKEN  LIVENESS',
        'app_task_blog  app_task    17    4242  box1  yellowtent  1m05s  in 30s   9      alive',
        'box_update     box_update  -     4242  box1  yellowtent  2s     -        3      dead',
      ].join('\n'),
    );
  });

  it('shows an expired lease as how long ago it expired', () => {
    assert.match(formatLocks([row({ expiresAt: new Date(1_000_000 + 5_000) })]), /1m00s ago/);
  });

  it('leaves out age and liveness for removed locks, and says when nothing is held', () => {
    const { liveness: _l, ageMs: _a, ...holder } = row({});
    assert.equal(formatLocks([holder]).split('\n')[0], 'NAME           TYPE      TASK  PID   HOST  USER        EXPIRES  TOKEN');
    assert.equal(formatLockList('platform', []), "no locks held in space 'platform'");
    const waiter = {
      name: 'box_update', position: 1, id: 'w', owner: { host: 'box1', bootId: 'b', pidNs: 'n', pid: 42, startTime: 1, user: 'root', taskId: '9' },
      since: new Date(0), expiresAt: new Date(10_000), names: ['box_update', 'app_task_a'], liveness: 'alive' as const, ageMs: 65_000,
    };
    const text = formatLockList('platform', [], [waiter, { ...waiter, name: 'app_task_a', position: 2 }]);
    assert.equal(
      text,
      [
        "no locks held in space 'platform'",
        '',
        'waiting, in line order:',
        'NAME        LINE  TASK  PID  HOST  WAITING  ALSO        LIVENESS',
        'box_update  1     9     42   box1  1m05s    app_task_a  alive',
        'app_task_a  2     9     42   box1  1m05s    box_update  alive',
      ].join('\n'),
    );
  });

  it('aligns columns without trailing spaces', () => {
    assert.equal(columns(['A', 'BB'], [['xxx', ''], ['y', 'z']]), 'A    BB\nxxx\ny    z');
  });

  it('describes an owner', () => {
    assert.equal(formatOwner(row({})), 'task 17, pid 4242 on box1 (user yellowtent)');
    assert.equal(formatOwner(row({ owner })), 'pid 4242 on box1 (user yellowtent)');
  });

  it('turns errors into one line with advice and a code, hiding the password', () => {
    const url = 'mysql://u:secret@db:3306/box';
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:3306'), { code: 'ECONNREFUSED', errno: -111 });
    assert.equal(
      describeError(refused, url),
      'cannot reach the database at mysql://u:***@db:3306/box (connect ECONNREFUSED 10.0.0.1:3306): is the server running, and is --url or MYSQL_URL right? [ECONNREFUSED]',
    );
    // Node's happy-eyeballs connect error has an empty message of its own.
    const aggregate = Object.assign(new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:3306'), { code: 'ECONNREFUSED' })], ''), {
      code: 'ECONNREFUSED',
    });
    assert.match(describeError(aggregate, url), /\(connect ECONNREFUSED ::1:3306\)/);
    const denied = Object.assign(new Error("Access denied for user 'u'@'h' (using password: YES)"), { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 });
    assert.match(describeError(new DatabaseError('list failed', denied), url), /^access denied at mysql:\/\/u:\*\*\*@db:3306\/box .*check the user and password .*\[ER_ACCESS_DENIED_ERROR\]$/);
    assert.equal(describeError(new NotMigratedError('read: the locks table does not exist')), 'read: the locks table does not exist: run migrate(db) (or `locktable migrate`) first [ENOTMIGRATED]');
    assert.equal(describeError(new Error('two\n  lines')), 'two lines');
    assert.ok(!describeError(refused, url).includes('secret'));
  });

  it('reports the doctor\'s checks with what to do under each problem', () => {
    const text = formatChecks('mysql://u:***@db/box', [
      { name: 'server', status: 'ok', detail: 'MariaDB 10.11.19' },
      { name: 'schema', status: 'fail', detail: 'the locks table is missing', fix: 'run `locktable migrate`' },
      { name: 'clock', status: 'warn', detail: '+3000 ms', fix: 'sync clocks' },
    ]);
    assert.equal(
      text,
      [
        'locktable doctor: mysql://u:***@db/box',
        '  ok    server  MariaDB 10.11.19',
        '  FAIL  schema  the locks table is missing',
        '                → run `locktable migrate`',
        '  warn  clock   +3000 ms',
        '                → sync clocks',
        '1 problem found, 1 warning.',
      ].join('\n'),
    );
    assert.match(formatChecks('x', [{ name: 'a', status: 'ok', detail: 'd' }]), /no problem found\.$/);
  });
});
