import assert from 'node:assert/strict';
import { LockError } from '../../lib/errors.js';
import { defineLockTypes, LockTypes } from '../../lib/names.js';
import { compileConflicts, ConflictRules, MAX_RULES } from '../../lib/rules.js';

const failure = (fn: () => unknown): { code: string; message: string } => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LockError, String(err));
    return { code: err.code, message: err.message };
  }
  return { code: 'no error', message: '' };
};

const spec = { singletons: ['box_update', 'reindex'], prefixes: { appTask: 'app_task_', appBackup: 'app_backup_', user: 'user_', userMail: 'user_mail_' } } as const;

describe('conflict rules (pure)', () => {
  it('are symmetric: each side excludes the other, different names only', () => {
    const c = defineLockTypes({ ...spec, conflicts: { box_update: ['app_task_*'] } });
    assert.equal(c.conflicts.between('box_update', 'app_task_a'), 'box_update <-> app_task_*');
    assert.equal(c.conflicts.between('app_task_a', 'box_update'), 'box_update <-> app_task_*');
    assert.equal(c.conflicts.between('app_task_a', 'app_task_b'), undefined, 'the rule relates the two sides, not a side with itself');
    assert.equal(c.conflicts.between('box_update', 'app_backup_a'), undefined);
    assert.equal(c.conflicts.between('box_update', 'box_update'), undefined, 'a name and itself: its mode decides');
    assert.deepEqual(c.conflicts.pairs, [['box_update', 'app_task_*']]);
  });

  it('matches an exact name, a type (the names of that type) or a prefix with a trailing *', () => {
    const c = defineLockTypes({ ...spec, conflicts: { reindex: ['user', 'app_*'] } });
    assert.ok(c.conflicts.between('reindex', 'user_7'), 'type user');
    assert.equal(c.conflicts.between('reindex', 'user_mail_7'), undefined, 'user_mail_7 is of type user_mail, not user');
    assert.ok(c.conflicts.between('reindex', 'app_task_1'));
    assert.ok(c.conflicts.between('reindex', 'app_backup_1'));
    assert.equal(c.conflicts.between('box_update', 'app_task_1'), undefined);
  });

  it('guards: the exact names the one-statement path must find absent; undefined when a side is a pattern', () => {
    const c = defineLockTypes({ ...spec, conflicts: { box_update: ['app_task_*'], reindex: ['user_mail_1'] } });
    assert.deepEqual(c.conflicts.guards(['app_task_a']), ['box_update']);
    assert.deepEqual(c.conflicts.guards(['app_task_a', 'app_task_b']), ['box_update'], 'once');
    assert.deepEqual(c.conflicts.guards(['app_task_a', 'box_update']), undefined, 'box_update\'s other side is a pattern');
    assert.deepEqual(c.conflicts.guards(['user_mail_1']), ['reindex']);
    assert.deepEqual(c.conflicts.guards(['reindex']), ['user_mail_1']);
    assert.deepEqual(c.conflicts.guards(['reindex', 'user_mail_1']), [], 'one acquisition never excludes itself');
    assert.deepEqual(c.conflicts.guards(['user_7']), [], 'no rule names it');
    const typed = defineLockTypes({ ...spec, conflicts: { reindex: ['user'] } });
    assert.equal(typed.conflicts.guards(['reindex']), undefined, 'a type is a pattern');
  });

  it('the platform catalogue: box_update against app tasks, app backups and full backups, nothing else', () => {
    const r = LockTypes.conflicts;
    assert.ok(r instanceof ConflictRules);
    for (const n of [LockTypes.appTask('a'), LockTypes.appBackup('a'), LockTypes.fullBackupTask('s')]) {
      assert.ok(r.between(LockTypes.BOX_UPDATE, n), n);
      assert.deepEqual(r.guards([n]), ['box_update'], `${n}: the one-statement path checks box_update`);
    }
    for (const n of [LockTypes.BOX_UPDATE_TASK, LockTypes.MAIL_RESTART, LockTypes.taskType('x')]) {
      assert.equal(r.between(LockTypes.BOX_UPDATE, n), undefined, n);
      assert.deepEqual(r.guards([n]), [], n);
    }
    assert.equal(r.guards([LockTypes.BOX_UPDATE]), undefined, 'box_update reads and decides');
    assert.equal(r.between(LockTypes.appTask('a'), LockTypes.appBackup('a')), undefined);
  });

  it('refuses bad rules at definition time with typed errors', () => {
    const bad = (conflicts: unknown) => failure(() => defineLockTypes({ ...spec, conflicts } as never));
    assert.equal(bad(['box_update']).code, 'EINVALIDOPTION');
    assert.equal(bad('box_update').code, 'EINVALIDOPTION');
    assert.equal(bad({ box_update: 'app_task_*' }).code, 'EINVALIDOPTION');
    assert.equal(bad({ box_update: [] }).code, 'EINVALIDOPTION');
    assert.equal(bad({ box_update: ['*'] }).code, 'EINVALIDNAME');
    assert.equal(bad({ box_update: ['app_*_x'] }).code, 'EINVALIDNAME');
    assert.equal(bad({ box_update: ['app task'] }).code, 'EINVALIDNAME');
    assert.equal(bad({ box_update: [7] }).code, 'EINVALIDNAME');
    assert.equal(bad({ 'box"': ['app_task_*'] }).code, 'EINVALIDNAME');
    const typo = bad({ box_update: ['app_tsk_*'] });
    assert.equal(typo.code, 'EINVALIDOPTION');
    assert.match(typo.message, /'app_tsk_\*' matches no name of the catalogue: did you mean 'app_task_\*'\?/);
    assert.equal(bad({ box_updat: ['app_task_*'] }).code, 'EINVALIDOPTION');
    const many = Object.fromEntries(Array.from({ length: MAX_RULES + 1 }, (_, i) => [`app_task_${i}`, ['box_update']]));
    assert.equal(bad(many).code, 'EINVALIDOPTION');
  });

  it('compiles a plain record for a host catalogue that was not made by defineLockTypes', () => {
    const r = compileConflicts({ lock_a: ['lock_b'] }, { typeOf: (n) => (n.startsWith('lock_') ? n : undefined) });
    assert.equal(r.between('lock_b', 'lock_a'), 'lock_a <-> lock_b');
    assert.equal(compileConflicts(undefined, { typeOf: () => undefined }).size, 0);
    assert.equal(compileConflicts({ a_1: ['b_*'] }, { typeOf: () => undefined }).between('a_1', 'b_7'), 'a_1 <-> b_*', 'a catalogue that cannot list its names: syntax only');
    assert.throws(() => compileConflicts({ a_1: ['b*c'] }, { typeOf: () => undefined }), { code: 'EINVALIDNAME' });
    assert.equal(compileConflicts(r, { typeOf: () => undefined }), r, 'compiled rules pass through');
  });
});
