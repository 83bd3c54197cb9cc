import assert from 'node:assert/strict';
import { resolveCall, resolveOptions } from '../../lib/options.js';
import { backoff } from '../../lib/retry.js';
import { splitStatements } from '../../lib/migrate.js';
import { isAmbiguous, isTransient, toLockError } from '../../lib/faults.js';
import { openDb } from '../../lib/db.js';
import { LockError } from '../../lib/errors.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'no error';
  } catch (err) {
    assert.ok(err instanceof LockError, String(err));
    return err.code;
  }
};

describe('options, retry, faults, migrations (pure)', () => {
  it('fills defaults and freezes', () => {
    const o = resolveOptions({ db: 'mysql://x@h/db' });
    assert.equal(o.space, 'platform');
    assert.deepEqual(o.retry, { baseMs: 2, capMs: 50, deadlineMs: 15_000 });
    assert.deepEqual(o.wait, { pollMinMs: 5, pollMaxMs: 50, intentTtlMs: 10_000 });
    assert.ok(Object.isFrozen(o) && Object.isFrozen(o.retry));
  });

  it('rejects bad and contradictory options with EINVALIDOPTION and a precise message', () => {
    const bad: unknown[] = [
      {},
      { db: 'x', space: '' },
      { db: 'x', space: 'a b' },
      { db: 'x', owner: { taskId: 7 } },
      { db: 'x', owner: { pid: 1 } },
      { db: 'x', retry: { baseMs: -1 } },
      { db: 'x', retry: { baseMs: 100, capMs: 10 } },
      { db: 'x', wait: { pollMinMs: 100, pollMaxMs: 10 } },
      { db: 'x', unknownOption: true },
      { db: 'x', poolSize: 0 },
    ];
    for (const b of bad) assert.equal(codeOf(() => resolveOptions(b)), 'EINVALIDOPTION', JSON.stringify(b));
    assert.throws(() => resolveOptions({ db: 'x', retry: { baseMs: 100, capMs: 10 } }), /baseMs \(100\) is larger than capMs \(10\)/);
  });

  it('bounds the statements in flight, by the pool when locktable opens it', () => {
    assert.equal(resolveOptions({ db: {} }).maxInFlight, 2);
    assert.equal(resolveOptions({ db: {} }).fastPath, true);
    assert.equal(resolveOptions({ db: 'mysql://x@h/db', poolSize: 1 }).maxInFlight, 1, 'the default follows a smaller pool');
    assert.equal(resolveOptions({ db: 'mysql://x@h/db', poolSize: 8, maxInFlight: 8 }).maxInFlight, 8);
    assert.throws(() => resolveOptions({ db: 'mysql://x@h/db', poolSize: 2, maxInFlight: 3 }), /maxInFlight: 3 statements in flight need at least as many connections, but poolSize is 2/);
    for (const b of [{ maxInFlight: 0 }, { maxInFlight: 1.5 }, { maxInFlight: 65 }, { fastPath: 'yes' }]) {
      assert.equal(codeOf(() => resolveOptions({ db: {}, ...b })), 'EINVALIDOPTION', JSON.stringify(b));
    }
  });

  it('validates per-call options', () => {
    assert.deepEqual(resolveCall('a', { ttlMs: 5 }), { names: ['a'], options: { ttlMs: 5 } });
    for (const o of [{ ttlMs: 0 }, { ttlMs: 1.5 }, { timeoutMs: -1 }, { signal: 'x' }, { nope: 1 }]) {
      assert.equal(codeOf(() => resolveCall('a', o)), 'EINVALIDOPTION', JSON.stringify(o));
    }
  });

  it('rejects a db that is neither a pool nor a mysql URI', () => {
    for (const db of ['not a uri', 'postgres://x@h/db', 'mysql://x@h', 42, {}, null]) {
      assert.equal(codeOf(() => openDb(db)), 'EINVALIDOPTION', String(db));
    }
  });

  it('backs off with full jitter under a cap', () => {
    assert.equal(backoff(0, 2, 50, () => 1), 2);
    assert.equal(backoff(3, 2, 50, () => 1), 16);
    assert.equal(backoff(10, 2, 50, () => 1), 50);
    assert.equal(backoff(100, 2, 50, () => 0), 0);
  });

  it('classifies driver errors', () => {
    for (const e of [{ code: 'PROTOCOL_CONNECTION_LOST' }, { code: 'ECONNRESET' }, { errno: 1213 }, { errno: 1205 }, { errno: 1040 }, { errno: 1290 }, { errno: 2013 }]) {
      assert.equal(isTransient(e), true, JSON.stringify(e));
    }
    for (const e of [{ errno: 1064 }, { errno: 1146 }, { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 }, new Error('x'), null]) {
      assert.equal(isTransient(e), false, JSON.stringify(e));
    }
    assert.equal(isAmbiguous({ code: 'PROTOCOL_CONNECTION_LOST' }), true, 'the statement may have run');
    assert.equal(isAmbiguous({ errno: 1213 }), false, 'a deadlock rolled the statement back');
    assert.equal(toLockError({ errno: 1146, message: 'no table' }, 'read').code, 'ENOTMIGRATED');
    const wrapped = toLockError({ errno: 1064, code: 'ER_PARSE_ERROR', message: 'bad' }, 'read');
    assert.equal(wrapped.code, 'EDATABASE');
    assert.deepEqual((wrapped.cause as { errno: number }).errno, 1064);
  });

  it('splits a migration into statements and drops comment lines', () => {
    assert.deepEqual(splitStatements('-- c\nCREATE TABLE a (x INT);\n\nINSERT INTO a VALUES (1);\n'), ['CREATE TABLE a (x INT)', 'INSERT INTO a VALUES (1)']);
  });
});
