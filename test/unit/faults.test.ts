import assert from 'node:assert/strict';
import { isAmbiguous, isFailover, isTransient, toLockError, toUnresolvedError } from '../../lib/faults.js';
import { causalSql, nodeTimeout } from '../../lib/cluster.js';
import { LockError } from '../../lib/errors.js';

// Shapes as mysql2 3.x produces them (see test/integration/faults-facts.test.ts for the ones pinned on a server).
const driver = (props: Record<string, unknown>) => Object.assign(new Error(String(props.code ?? props.errno)), props);

describe('faults (pure)', () => {
  const transient: Array<[string, Record<string, unknown>, boolean]> = [
    // [what, error, ambiguous: may the write have been applied?]
    ['connection lost (KILL, shutdown, proxy)', { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }, true],
    ['connection reset', { code: 'ECONNRESET', errno: -104, fatal: true }, true],
    ['broken pipe', { code: 'EPIPE', fatal: true }, true],
    ['socket timed out', { code: 'ETIMEDOUT', fatal: true }, true],
    ['query timeout', { code: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true }, true],
    ['server gone away', { errno: 2006 }, true],
    ['lost during query', { errno: 2013 }, true],
    ['shutdown in progress', { code: 'ER_SERVER_SHUTDOWN', errno: 1053 }, true],
    ['connection killed (MariaDB)', { code: 'ER_CONNECTION_KILLED', errno: 1927 }, true],
    ['KILL QUERY', { code: 'ER_QUERY_INTERRUPTED', errno: 1317, sqlState: '70100' }, true],
    ['idle timeout (MySQL 8)', { code: 'ER_CLIENT_INTERACTION_TIMEOUT', errno: 4031 }, true],
    ['a connection exception by SQLSTATE', { errno: 9999, sqlState: '08S01' }, true],
    ['closed-state connection', { message: "Can't add new command when connection is in closed state", fatal: true }, true],
    ['connection refused (restarting)', { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', fatal: true }, false],
    ['connect timeout', { code: 'ETIMEDOUT', syscall: 'connect', fatal: true }, false],
    ['too many connections', { code: 'ER_CON_COUNT_ERROR', errno: 1040 }, false],
    ['deadlock (the statement was rolled back)', { code: 'ER_LOCK_DEADLOCK', errno: 1213 }, false],
    ['lock wait timeout (the statement was rolled back)', { code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 }, false],
    ['read-only during failover', { code: 'ER_OPTION_PREVENTS_STATEMENT', errno: 1290 }, false],
    ['read-only mode', { code: 'ER_READ_ONLY_MODE', errno: 1836 }, false],
    // Galera: refused on a node that is joining or outside the primary component, before it runs.
    ['WSREP not ready (Galera 1047)', { code: 'ER_UNKNOWN_COM_ERROR', errno: 1047, sqlState: '08S01' }, false],
    // Galera: the commit failed as the node left the primary component; it may have been certified elsewhere.
    ['commit failed (Galera 1180)', { code: 'ER_ERROR_DURING_COMMIT', errno: 1180, sqlState: 'HY000' }, true],
  ];
  for (const [what, props, ambiguous] of transient) {
    it(`retries ${what}; ${ambiguous ? 'a write may have been applied' : 'a write was not applied'}`, () => {
      assert.equal(isTransient(driver(props)), true);
      assert.equal(isAmbiguous(driver(props)), ambiguous);
    });
  }

  it('surfaces everything else at once: not transient, not ambiguous', () => {
    const permanent = [
      { code: 'ER_PARSE_ERROR', errno: 1064 },
      { code: 'ER_NO_SUCH_TABLE', errno: 1146 },
      { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045, fatal: true }, // fatal at connect, but the server said no
      { code: 'ER_BAD_DB_ERROR', errno: 1049, fatal: true },
      { code: 'ER_DATA_TOO_LONG', errno: 1406 },
      { code: 'ER_NET_PACKET_TOO_LARGE', errno: 1153 },
      { errno: 4025 }, // CHECK constraint
    ];
    for (const p of permanent) {
      assert.equal(isTransient(driver(p)), false, JSON.stringify(p));
      assert.equal(isAmbiguous(driver(p)), false, JSON.stringify(p));
    }
    for (const v of [null, undefined, 'PROTOCOL_CONNECTION_LOST', 42, new Error('plain')]) assert.equal(isTransient(v), false, String(v));
    assert.equal(isTransient(new LockError('ELOCKED', 'x')), false, 'our own errors are never retried as faults');
  });

  it('wraps a driver error with its code and keeps it as cause', () => {
    const cause = driver({ code: 'ER_PARSE_ERROR', errno: 1064 });
    const e = toLockError(cause, 'acquire');
    assert.equal(e.code, 'EDATABASE');
    assert.equal(e.cause, cause);
    assert.match(e.message, /^acquire failed: .*ER_PARSE_ERROR/);
    assert.equal((e as LockError & { outcomeUnknown: boolean }).outcomeUnknown, false);
    const u = toUnresolvedError(driver({ code: 'PROTOCOL_CONNECTION_LOST' }), 'acquire');
    assert.equal(u.code, 'EDATABASE');
    assert.equal(u.outcomeUnknown, true);
    assert.match(u.message, /unknown/);
  });

  it('moves to another node on connection faults, hung statements and Galera membership errors; not on conflicts', () => {
    const failover = [
      { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', fatal: true },
      { code: 'ECONNRESET', errno: -104, fatal: true },
      { code: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true },
      { code: 'PROTOCOL_CONNECTION_LOST', fatal: true },
      { errno: 1047, sqlState: '08S01' },
      { errno: 1180, sqlState: 'HY000' },
      { errno: 2013 },
    ];
    const stay = [{ errno: 1213 }, { errno: 1205 }, { errno: 1062 }, { errno: 1146 }, new LockError('ELOCKED', 'held')];
    for (const e of failover) assert.equal(isFailover(e instanceof Error ? e : driver(e)), true, JSON.stringify(e));
    for (const e of stay) assert.equal(isFailover(e instanceof Error ? e : driver(e)), false, JSON.stringify(e));
  });

  it('makes reads (and, when asked, conditional writes and inserts) causal on Galera, by statement', () => {
    assert.equal(causalSql('SELECT 1'), 'SET STATEMENT wsrep_sync_wait=1 FOR SELECT 1');
    assert.equal(causalSql('UPDATE locks SET v = 1'), 'SET STATEMENT wsrep_sync_wait=2 FOR UPDATE locks SET v = 1');
    assert.equal(causalSql('INSERT IGNORE INTO locks VALUES (1)'), 'SET STATEMENT wsrep_sync_wait=4 FOR INSERT IGNORE INTO locks VALUES (1)');
    assert.equal(causalSql('CREATE TABLE t (a INT)'), 'CREATE TABLE t (a INT)');
    // Reads only: writes are certified, and a refused one is sent again causally.
    assert.equal(causalSql('UPDATE locks SET v = 1', false), 'UPDATE locks SET v = 1');
    assert.equal(causalSql('SELECT 1', false), 'SET STATEMENT wsrep_sync_wait=1 FOR SELECT 1');
  });

  it('gives each node of a list an equal share of the operation\'s bound (retry.deadlineMs), so that one operation can try every node', () => {
    assert.equal(nodeTimeout(15_000, 3), 5_000);
    assert.equal(nodeTimeout(1_500, 1), 1_500);
    assert.equal(nodeTimeout(1_000, 3), 333);
    assert.equal(nodeTimeout(0, 3), 1, 'never zero: a statement is always sent');
  });
});
