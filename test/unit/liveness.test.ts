import assert from 'node:assert/strict';
import { judge } from '../../lib/liveness.js';
import { cachedProbe, parseStat, probePid, PROBE_TTL_MS, type LocalView, type Owner, type ProbeSys, type ProcInfo } from '../../lib/owner.js';

const here = (procs: Record<number, ProcInfo>): LocalView => ({
  host: 'box1',
  bootId: 'boot-a',
  machineId: 'machine-1',
  pidNs: 'pid:[4026531836]',
  probe: (pid) => procs[pid],
});
const owner: Owner = { host: 'box1', bootId: 'boot-a', pidNs: 'pid:[4026531836]', pid: 42, startTime: 1000, user: 'yellowtent' };

describe('liveness (pure)', () => {
  it('a live process with the same start time is alive', () => {
    assert.equal(judge(owner, undefined, 0, here({ 42: { startTime: 1000, zombie: false } })), 'alive');
  });

  it('a live process of another user (probe says it exists, start time readable) is alive', () => {
    assert.equal(judge({ ...owner, user: 'nobody' }, undefined, 0, here({ 42: { startTime: 1000, zombie: false } })), 'alive');
  });

  it('a process whose start time cannot be read (EPERM, no /proc) but exists is alive', () => {
    assert.equal(judge(owner, undefined, 0, here({ 42: { startTime: undefined, zombie: false } })), 'alive');
  });

  it('a gone pid is dead', () => {
    assert.equal(judge(owner, undefined, 0, here({})), 'dead');
  });

  it('a reused pid (another start time) is dead', () => {
    assert.equal(judge(owner, undefined, 0, here({ 42: { startTime: 2000, zombie: false } })), 'dead');
  });

  it('a zombie is dead', () => {
    assert.equal(judge(owner, undefined, 0, here({ 42: { startTime: 1000, zombie: true } })), 'dead');
  });

  it('another boot of the same machine (same machine id) is dead, even if the pid exists now', () => {
    assert.equal(judge({ ...owner, bootId: 'boot-old', machineId: 'machine-1' }, undefined, 0, here({ 42: { startTime: 1000, zombie: false } })), 'dead');
  });

  it('another boot id under the same hostname, without a machine id to prove it is this machine, is unknown', () => {
    // Two machines may share a hostname (clones, containers): a hostname proves nothing.
    assert.equal(judge({ ...owner, bootId: 'boot-old' }, undefined, 0, here({})), 'unknown');
    assert.equal(judge({ ...owner, bootId: 'boot-old', machineId: 'machine-2' }, undefined, 0, here({})), 'unknown');
  });

  it('the same boot under another hostname (a rename, a UTS namespace) is judged by its pid: dead when gone, alive when running', () => {
    const renamed = { ...owner, host: 'renamed' };
    assert.equal(judge(renamed, undefined, 0, here({})), 'dead');
    assert.equal(judge(renamed, undefined, 0, here({ 42: { startTime: 1000, zombie: false } })), 'alive');
  });

  it('another host is unknown, whatever the local pid table says', () => {
    assert.equal(judge({ ...owner, host: 'box2', bootId: 'boot-z' }, undefined, 0, here({})), 'unknown');
  });

  it('another host with an expired lease is dead; before expiry it is unknown', () => {
    const remote = { ...owner, host: 'box2', bootId: 'boot-z' };
    assert.equal(judge(remote, 500, 500, here({})), 'dead');
    assert.equal(judge(remote, 500, 499, here({})), 'unknown');
  });

  it('an expired lease is dead even when its process lives', () => {
    assert.equal(judge(owner, 10, 11, here({ 42: { startTime: 1000, zombie: false } })), 'dead');
  });

  it('another pid namespace on the same boot is unknown (its pids mean nothing here)', () => {
    assert.equal(judge({ ...owner, pidNs: 'pid:[999]' }, undefined, 0, here({})), 'unknown');
  });

  it('an owner recorded without a boot id (no /proc) is unknown', () => {
    assert.equal(judge({ ...owner, bootId: '' }, undefined, 0, here({})), 'unknown');
  });

  describe('probePid under hidepid /proc (the kernel decides existence, /proc only adds the start time)', () => {
    const fail = (code: string) => () => {
      throw Object.assign(new Error(code), { code });
    };
    const stat = (start: number) => `42 (node) S ${Array.from({ length: 18 }, () => '0').join(' ')} ${start} 0`;
    const sys = (kill: ProbeSys['kill'], readStat: ProbeSys['readStat']): ProbeSys => ({ kill, readStat });

    it('kill ESRCH: no process, whatever /proc says', () => {
      assert.equal(probePid(42, sys(fail('ESRCH'), () => stat(1000))), undefined);
    });
    it('kill EPERM (another user) and /proc/<pid> absent (hidepid=2: ENOENT): alive, start time unknown', () => {
      const info = probePid(42, sys(fail('EPERM'), fail('ENOENT')));
      assert.deepEqual(info, { startTime: undefined, zombie: false });
      assert.equal(judge(owner, undefined, 0, { ...here({}), probe: () => info }), 'alive', 'a reused pid cannot be told apart: kept, never reaped wrongly');
    });
    it('kill EPERM and /proc/<pid>/stat unreadable (hidepid=1: EACCES): alive, start time unknown', () => {
      assert.deepEqual(probePid(42, sys(fail('EPERM'), fail('EACCES'))), { startTime: undefined, zombie: false });
    });
    it('kill EPERM and /proc readable: the start time still proves a reused pid', () => {
      const info = probePid(42, sys(fail('EPERM'), () => stat(2000)));
      assert.equal(info?.startTime, 2000);
      assert.equal(info?.zombie, false);
      assert.equal(judge(owner, undefined, 0, { ...here({}), probe: () => info }), 'dead');
    });
  });

  describe('parseStat', () => {
    it('reads state and start time after the last ")" even when comm has spaces and parens', () => {
      const rest = ['S', ...Array.from({ length: 18 }, (_, i) => String(i)), '123456', '99'].join(' ');
      // Field 4 (the parent's pid) is the second after the state: '0' here.
      assert.deepEqual(parseStat(`77 (my (odd) name) ${rest}`), { startTime: 123456, zombie: false, ppid: 0 });
      assert.deepEqual(parseStat(`77 (z) Z ${rest.slice(2)}`), { startTime: 123456, zombie: true, ppid: 0 });
      assert.equal(parseStat('garbage'), undefined);
    });
  });

  it('a cached probe answers "alive" from memory for PROBE_TTL_MS, never "dead": judge() asks the kernel again before it says dead', () => {
    let clock = 0;
    const procs: Record<number, ProcInfo> = { 42: { startTime: 1000, zombie: false } };
    let asked = 0;
    const probe = cachedProbe((pid) => (asked++, procs[pid]), PROBE_TTL_MS, () => clock);
    const view: LocalView = { ...here({}), probe };
    assert.equal(judge(owner, undefined, 0, view), 'alive');
    assert.equal(judge(owner, undefined, 0, view), 'alive');
    assert.equal(asked, 1, 'the second judgement answered from memory');
    // The process exits and its pid is reused at once: memory still says the old one lives.
    procs[42] = { startTime: 2000, zombie: false };
    assert.equal(judge({ ...owner, startTime: 2000 }, undefined, 0, view), 'alive', 'the new process: memory disagrees, the kernel is asked');
    assert.equal(asked, 2);
    delete procs[42];
    clock += PROBE_TTL_MS - 1;
    assert.equal(judge({ ...owner, startTime: 2000 }, undefined, 0, view), 'alive', 'dead within the TTL: judged alive a little longer (the safe side)');
    clock += 1;
    assert.equal(judge({ ...owner, startTime: 2000 }, undefined, 0, view), 'dead', 'past the TTL the kernel is asked');
    assert.equal(probe(42), undefined);
    const before = asked;
    probe(42);
    assert.equal(asked, before + 1, 'a process found gone is not remembered');
  });
});
