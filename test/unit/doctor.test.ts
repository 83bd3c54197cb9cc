import assert from 'node:assert/strict';
import { grantsAllowCreate, judgeClock, judgeMigrations, judgeSchema, judgeServer, parseServerVersion } from '../../lib/doctor.js';

describe('doctor judgements (pure)', () => {
  it('parses MariaDB and MySQL versions', () => {
    assert.deepEqual(parseServerVersion('10.11.19-MariaDB-0+deb12u1'), { flavor: 'MariaDB', major: 10, minor: 11, patch: 19 });
    assert.deepEqual(parseServerVersion('8.0.36'), { flavor: 'MySQL', major: 8, minor: 0, patch: 36 });
    assert.equal(parseServerVersion('nonsense'), undefined);
  });

  it('requires JSON functions: MariaDB 10.2.7+, MySQL 5.7.8+', () => {
    assert.equal(judgeServer('10.11.19-MariaDB').status, 'ok');
    assert.equal(judgeServer('10.2.7-MariaDB').status, 'ok');
    assert.equal(judgeServer('10.2.6-MariaDB').status, 'fail');
    assert.match(judgeServer('10.1.48-MariaDB').fix!, /MariaDB 10\.2\.7/);
    assert.equal(judgeServer('5.7.8').status, 'ok');
    assert.equal(judgeServer('5.6.51').status, 'fail');
    assert.equal(judgeServer('8.0.36').status, 'ok');
    assert.equal(judgeServer('???').status, 'warn');
  });

  it('reads CREATE from grants on *.* or on the database', () => {
    assert.ok(grantsAllowCreate(['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION'], 'box'));
    assert.ok(grantsAllowCreate(['GRANT USAGE ON *.* TO `app`@`%`', 'GRANT SELECT, INSERT, UPDATE, CREATE ON `box`.* TO `app`@`%`'], 'box'));
    assert.ok(!grantsAllowCreate(['GRANT USAGE ON *.* TO `app`@`%`', 'GRANT SELECT, INSERT, UPDATE ON `box`.* TO `app`@`%`'], 'box'));
    assert.ok(!grantsAllowCreate(['GRANT ALL PRIVILEGES ON `other`.* TO `app`@`%`'], 'box'));
  });

  it('finds pending migrations and migrations of a newer locktable', () => {
    assert.equal(judgeMigrations(['001-a.sql'], ['001-a.sql']).status, 'ok');
    const pending = judgeMigrations(['001-a.sql'], ['001-a.sql', '002-b.sql']);
    assert.deepEqual([pending.status, pending.detail], ['fail', '1 pending: 002-b.sql']);
    assert.match(pending.fix!, /locktable migrate/);
    const newer = judgeMigrations(['001-a.sql', '003-c.sql'], ['001-a.sql']);
    assert.deepEqual([newer.status, newer.detail], ['warn', 'applied by a newer locktable: 003-c.sql']);
  });

  it('warns about a clock offset beyond a second, allowing for the round trip', () => {
    assert.equal(judgeClock(12, 2).status, 'ok');
    assert.equal(judgeClock(-900, 10).status, 'ok');
    assert.equal(judgeClock(1_100, 400).status, 'ok', 'within the measurement error');
    const off = judgeClock(-5_000, 2);
    assert.equal(off.status, 'warn');
    assert.match(off.detail, /-5000 ms \(±1 ms\)/);
    assert.match(off.fix!, /only the database clock/);
  });

  it('recognises locktable\'s table, a missing one, and someone else\'s', () => {
    assert.equal(judgeSchema([]).status, 'fail');
    assert.match(judgeSchema([]).detail, /missing/);
    const ours = [
      { name: 'id', type: 'varchar', key: 'PRI' },
      { name: 'version', type: 'bigint', key: '' },
      { name: 'dataJson', type: 'longtext', key: '' },
    ];
    assert.equal(judgeSchema(ours).status, 'ok');
    assert.equal(judgeSchema([...ours.slice(0, 2), { name: 'dataJson', type: 'json', key: '' }]).status, 'ok');
    const theirs = judgeSchema([{ name: 'id', type: 'int', key: 'PRI' }, { name: 'owner', type: 'varchar', key: '' }]);
    assert.equal(theirs.status, 'fail');
    assert.match(theirs.detail, /not locktable's: id is not a VARCHAR primary key; version is not an integer column; dataJson/);
  });
});
