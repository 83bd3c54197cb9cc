import assert from 'node:assert/strict';
import { LockError } from '../../lib/errors.js';
import { assertName, defineLockTypes, LockTypes, normalizeNames, type LockNameOf } from '../../lib/names.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LockError, String(err));
    return err.code;
  }
  return 'no error';
};

describe('names (pure)', () => {
  it('accepts conservative names', () => {
    for (const n of ['box_update', 'app_task_3f2a-11', 'A.b-c_9', '_x', 'x'.repeat(128)]) assertName(n);
  });

  it('rejects anything that could break a JSON path or key, with EINVALIDNAME', () => {
    const bad: unknown[] = ['', ' ', 'a b', 'a"b', "a'b", 'a\\b', 'a$', '$.l', 'a*', 'é', 'a\u0000', '.a', '-a', 'x'.repeat(129), '__proto__', 1, null, undefined, {}, ['a']];
    for (const b of bad) assert.equal(code(() => assertName(b)), 'EINVALIDNAME', JSON.stringify(b));
  });

  it('normalizes one name or a list, rejecting empty lists, duplicates and more than 64', () => {
    assert.deepEqual(normalizeNames('a'), ['a']);
    assert.deepEqual(normalizeNames(['a', 'b']), ['a', 'b']);
    assert.equal(code(() => normalizeNames([])), 'EINVALIDNAME');
    assert.equal(code(() => normalizeNames(['a', 'a'])), 'EINVALIDNAME');
    assert.equal(code(() => normalizeNames(Array.from({ length: 65 }, (_, i) => `n${i}`))), 'EINVALIDNAME');
  });

  it('builds the platform names and types', () => {
    assert.equal(LockTypes.appTask('abc'), 'app_task_abc');
    assert.equal(LockTypes.appBackup('abc'), 'app_backup_abc');
    assert.equal(LockTypes.fullBackupTask('site1'), 'full_backup_task_site1');
    assert.equal(LockTypes.taskType('update'), 'task_type_update');
    assert.equal(LockTypes.BOX_UPDATE, 'box_update');
    assert.equal(LockTypes.typeOf('app_task_abc'), 'app_task');
    assert.equal(LockTypes.typeOf('full_backup_task_s'), 'full_backup_task');
    assert.equal(LockTypes.typeOf('box_update_task'), 'box_update_task');
    assert.equal(LockTypes.typeOf('mail_restart'), 'mail_restart');
    assert.equal(LockTypes.typeOf('unknown_thing'), undefined);
    assert.equal(LockTypes.typeOf('app_task_'), undefined, 'a prefix alone is not a name of the type');
  });

  it('rejects builder ids that are not safe name parts', () => {
    for (const id of ['', 'a b', 'a"', '../x', 'x'.repeat(200)]) assert.equal(code(() => LockTypes.appTask(id)), 'EINVALIDNAME', id);
  });

  it('lets a host define its own catalogue, longest prefix winning', () => {
    const mine = defineLockTypes({ singletons: ['reindex'], prefixes: { user: 'user_', userMail: 'user_mail_' } } as const);
    assert.equal(mine.userMail('7'), 'user_mail_7');
    assert.equal(mine.typeOf('user_mail_7'), 'user_mail');
    assert.equal(mine.typeOf('user_7'), 'user');
    assert.equal(mine.typeOf('reindex'), 'reindex');
    // Compile-time: the catalogue's names are a template-literal union.
    const ok: LockNameOf<typeof mine> = 'user_42';
    // @ts-expect-error a misspelt name does not compile
    const wrong: LockNameOf<typeof mine> = 'usr_42';
    assert.ok(ok && wrong);
  });

  it('rejects a catalogue with an invalid singleton or prefix', () => {
    assert.equal(code(() => defineLockTypes({ singletons: ['bad name'], prefixes: {} })), 'EINVALIDNAME');
    assert.equal(code(() => defineLockTypes({ singletons: [], prefixes: { x: 'x"' } })), 'EINVALIDNAME');
  });
});
