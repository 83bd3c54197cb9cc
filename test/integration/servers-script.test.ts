// scripts/servers.sh, where it cannot have a server: one line on stderr that
// names the server and says why, and a non-zero exit; never a silent success.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SERVERS_SCRIPT } from '../helpers/private-server.js';

describe('scripts/servers.sh when a server cannot be had', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'locktable-servers-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync('bash', [SERVERS_SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, LOCKTABLE_SERVERS_DIR: path.join(dir, 'cache'), ...env } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('an unknown server: one line naming it and the known ones', () => {
    const r = run(['prepare', 'mysql-5.7']);
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'servers.sh: mysql-5.7: unknown server (known: mariadb-10.11 mysql-9.7 mariadb-11.8)\n');
  });

  it('a package folder without packages: one line, nothing fetched', () => {
    const empty = path.join(dir, 'empty');
    rmSync(empty, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', empty]);
    const r = run(['prepare', 'mysql-9.7'], { LOCKTABLE_SERVER_DEBS: empty });
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr, `servers.sh: mysql-9.7: LOCKTABLE_SERVER_DEBS=${empty} holds no .deb files\n`);
  });

  it('a package folder whose packages hold no server: one line saying what is missing', () => {
    const broken = path.join(dir, 'broken');
    spawnSync('mkdir', ['-p', broken]);
    writeFileSync(path.join(broken, 'mariadb-server-core.deb'), 'not a package');
    const r = run(['prepare', 'mariadb-11.8'], { LOCKTABLE_SERVER_DEBS: broken });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /^servers\.sh: mariadb-11\.8: could not unpack mariadb-server-core\.deb: error: .+\n$/);
  });

  it('a server not prepared cannot be run: one line saying what to run', () => {
    const r = run(['exec', 'mariadb-11.8', '--version']);
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr, 'servers.sh: mariadb-11.8: not prepared: run scripts/servers.sh prepare mariadb-11.8\n');
  });
});
