import assert from 'node:assert/strict';
import { judge } from '../../lib/liveness.js';
import { parseStat, type LocalView, type Owner, type ProcInfo } from '../../lib/owner.js';

const here = (procs: Record<number, ProcInfo>): LocalView => ({
  host: 'box1',
  bootId: 'boot-a',
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

  it('another boot of the same host is dead, even if the pid exists now', () => {
    assert.equal(judge({ ...owner, bootId: 'boot-old' }, undefined, 0, here({ 42: { startTime: 1000, zombie: false } })), 'dead');
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

  describe('parseStat', () => {
    it('reads state and start time after the last ")" even when comm has spaces and parens', () => {
      const rest = ['S', ...Array.from({ length: 18 }, (_, i) => String(i)), '123456', '99'].join(' ');
      // Field 4 (the parent's pid) is the second after the state: '0' here.
      assert.deepEqual(parseStat(`77 (my (odd) name) ${rest}`), { startTime: 123456, zombie: false, ppid: 0 });
      assert.deepEqual(parseStat(`77 (z) Z ${rest.slice(2)}`), { startTime: 123456, zombie: true, ppid: 0 });
      assert.equal(parseStat('garbage'), undefined);
    });
  });
});
