// The built package works from require() and import, as one copy of the library.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const root = path.join(__dirname, '..', '..', '..');

describe('the built package', () => {
  it('loads with require() and import, sharing one LockError class, with type declarations', () => {
    const script = `
      const cjs = require('locktable');
      import('locktable').then((esm) => {
        const names = ['createLockTable', 'migrate', 'LockTypes', 'LockError', 'defineLockTypes'];
        for (const n of names) if (typeof esm[n] === 'undefined' || typeof cjs[n] === 'undefined') throw new Error('missing ' + n);
        if (esm.LockError !== cjs.LockError) throw new Error('two copies of LockError');
        console.log(esm.LockTypes.appTask('x'));
      });`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
    assert.equal(out.trim(), 'app_task_x');
    const pkg = require(path.join(root, 'package.json'));
    assert.equal(pkg.exports['.'].types, './dist/index.d.ts');
    assert.ok(require('node:fs').existsSync(path.join(root, 'dist', 'index.d.ts')));
  });
});
