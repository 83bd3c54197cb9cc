// The package as users get it: the packed tarball, installed into consumer
// projects (TypeScript NodeNext, strict), one ES module and one CommonJS, that
// compile and run against a real server. Offline: the tarball's dependencies
// come from npm's cache (filled by `npm ci`), TypeScript from our node_modules.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDb, type TestDb } from '../helpers/db.js';

const root = path.join(__dirname, '..', '..', '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('the built package', () => {
  it('loads with require() and import, sharing one LockError class', () => {
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
  });

  describe('packed and installed into consumer projects', function () {
    this.timeout(240_000);
    let dir: string;
    let tarball: string;
    let files: string[];
    let db: TestDb;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'locktable-consumer-'));
      // `npm test` has just built dist/: pack it as is (prepack would build again).
      const packed = JSON.parse(
        execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }),
      ) as Array<{ filename: string; files: Array<{ path: string }> }>;
      tarball = path.join(dir, packed[0]!.filename);
      files = packed[0]!.files.map((f) => f.path);
      db = await createTestDb('package');
    });

    after(async () => {
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('ships the licence, both declaration files and no source map', () => {
      for (const f of ['LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/index.mjs', 'dist/index.d.mts', 'dist/cli.js', 'migrations/001-create-locks.sql']) {
        assert.ok(files.includes(f), `${f} is in the tarball: ${files.join(' ')}`);
      }
      assert.deepEqual(files.filter((f) => f.endsWith('.map') || f.startsWith('lib/') || f.startsWith('test/')), []);
    });

    for (const kind of ['module', 'commonjs'] as const) {
      it(`${kind === 'module' ? 'an ES module' : 'a CommonJS'} project installs it (from npm's cache where it can), compiles strict under NodeNext and runs`, () => {
        const project = path.join(dir, kind);
        mkdirSync(project);
        writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: `consumer-${kind}`, private: true, type: kind }));
        const compilerOptions = {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          // Our declarations (and mysql2's and zod's, which they import) checked once, in
          // the ES module project; skipping them in the other saves ~15 s of a loaded machine.
          skipLibCheck: kind === 'commonjs',
          outDir: 'out',
          typeRoots: [path.join(root, 'node_modules', '@types')],
          types: ['node'],
        };
        writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['main.ts'] }));
        writeFileSync(path.join(project, 'tsconfig.default.json'), JSON.stringify({ compilerOptions: { ...compilerOptions, noEmit: true }, files: ['default.ts'] }));
        writeFileSync(
          path.join(project, 'main.ts'),
          `import { createLockTable, LockTypes, LockError, type Lease } from 'locktable';
const table = createLockTable({ db: process.env.LOCKTABLE_URL!, owner: { taskId: '${kind}' } });
async function main(): Promise<void> {
  const lease: Lease = await table.acquire(LockTypes.appTask('blog'));
  const second = await table.tryAcquire(LockTypes.appTask('blog'));
  let refused = '';
  try {
    await table.acquire('app_task_blog', { ttlMs: 0.5 });
  } catch (err) {
    if (err instanceof LockError) refused = err.code;
  }
  await table.release(lease);
  console.log(JSON.stringify({ names: lease.names, token: lease.token > 0, second, refused }));
  await table.close();
}
main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
`,
        );
        writeFileSync(path.join(project, 'default.ts'), `import locktable from 'locktable';\nconsole.log(locktable);\n`);

        // --prefer-offline, not --offline: \`npm ci\` caches the dependencies' tarballs but not
        // their registry metadata, which installing a tarball needs to resolve its
        // dependencies; a cache without it (a fresh machine) would refuse offline.
        const install = spawnSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, encoding: 'utf8' });
        assert.equal(install.status, 0, install.stdout + install.stderr);
        assert.doesNotMatch(install.stderr, /install scripts|prepare/, 'installing the tarball runs and announces no install script');

        const built = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, encoding: 'utf8' });
        assert.equal(built.status, 0, built.stdout + built.stderr);
        const ran = spawnSync(process.execPath, ['out/main.js'], { cwd: project, encoding: 'utf8', env: { ...process.env, LOCKTABLE_URL: db.url } });
        assert.equal(ran.status, 0, ran.stdout + ran.stderr);
        assert.deepEqual(JSON.parse(ran.stdout), { names: ['app_task_blog'], token: true, second: null, refused: 'EINVALIDOPTION' });

        // There is no default export: the types say so, and so does Node at run time.
        const typed = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.default.json'], { cwd: project, encoding: 'utf8' });
        assert.notEqual(typed.status, 0, 'a default import does not compile');
        assert.match(typed.stdout, /default\.ts\(1,8\): error TS\d+: .*has no default export/);
      });
    }

    it('an ES module default import fails at run time too, as its types say', () => {
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', `import locktable from 'locktable';`], { cwd: path.join(dir, 'module'), encoding: 'utf8' });
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, /does not provide an export named 'default'/);
    });
  });
});
