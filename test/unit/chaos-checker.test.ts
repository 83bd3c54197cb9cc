import assert from 'node:assert/strict';
import { check, type Evidence, type LogRecord } from '../chaos/checker.js';

const rec = (k: 'enter' | 'exit', name: string, token: number, pid: number, t: number): LogRecord => ({ k, name, token, pid, t: String(t) });
const evidence = (records: LogRecord[], extra: Partial<Evidence> = {}): Evidence => ({
  records,
  killedAt: new Map(),
  stoppedCleanly: new Set([1, 2, 3]),
  finalHeld: new Map(),
  ...extra,
});

describe('chaos checker (pure)', () => {
  it('accepts sections that follow one another, with increasing tokens', () => {
    const v = check(evidence([rec('enter', 'a', 1, 1, 10), rec('exit', 'a', 1, 1, 20), { k: 'released', token: 1, pid: 1, t: '21' }, rec('enter', 'a', 2, 2, 20), rec('exit', 'a', 2, 2, 30), rec('enter', 'b', 3, 1, 15), rec('exit', 'b', 3, 1, 25)]));
    assert.deepEqual([v.sections, v.cycles, v.overlaps.length, v.tokenRegressions.length, v.lost.length, v.leaked.length], [3, 1, 0, 0, 0, 0]);
  });

  it('finds two sections on one name that overlap, even when a third lies in between', () => {
    const v = check(evidence([rec('enter', 'a', 1, 1, 10), rec('exit', 'a', 1, 1, 100), rec('enter', 'a', 2, 2, 40), rec('exit', 'a', 2, 2, 50), rec('enter', 'a', 3, 3, 60), rec('exit', 'a', 3, 3, 70)]));
    assert.equal(v.overlaps.length, 2);
    assert.deepEqual(v.overlaps.map((o) => [o.a.token, o.b.token]), [[1, 2], [1, 3]]);
  });

  it('ends a killed worker section at its death: a taker after it is fine, one before it overlaps', () => {
    const killedAt = new Map([[1, 50n]]);
    const ok = check(evidence([rec('enter', 'a', 1, 1, 10), rec('enter', 'a', 2, 2, 60), rec('exit', 'a', 2, 2, 70)], { killedAt }));
    assert.equal(ok.overlaps.length, 0);
    const bad = check(evidence([rec('enter', 'a', 1, 1, 10), rec('enter', 'a', 2, 2, 40), rec('exit', 'a', 2, 2, 70)], { killedAt }));
    assert.equal(bad.overlaps.length, 1);
  });

  it('finds a token that does not increase', () => {
    const v = check(evidence([rec('enter', 'a', 5, 1, 10), rec('exit', 'a', 5, 1, 20), rec('enter', 'a', 4, 2, 30), rec('exit', 'a', 4, 2, 40)]));
    assert.equal(v.tokenRegressions.length, 1);
  });

  it('counts ENOTHELD of a live worker as lost, locks of stopped workers as leaked, of killed ones as left', () => {
    const v = check(
      evidence([{ k: 'release-error', token: 3, pid: 2, code: 'ENOTHELD', reason: 'reaped', t: '5' }], {
        killedAt: new Map([[9, 1n]]),
        finalHeld: new Map([
          ['a', { pid: 9, token: 1 }],
          ['b', { pid: 1, token: 2 }],
        ]),
      }),
    );
    assert.deepEqual(v.lost, [{ pid: 2, token: 3, reason: 'reaped' }]);
    assert.deepEqual(v.leaked, [{ name: 'b', pid: 1, token: 2 }]);
    assert.equal(v.leftByKilled, 1);
    assert.deepEqual(v.leakedWaiters, []);
    assert.deepEqual(v.releaseErrors, { ENOTHELD: 1 });
  });

  it('counts waiters left in line by a live or stopped worker as leaked, not those of killed ones', () => {
    const v = check(
      evidence([], {
        killedAt: new Map([[9, 1n]]),
        finalWaiting: [
          { pid: 9, names: ['a'] },
          { pid: 1, names: ['a', 'b'] },
        ],
      }),
    );
    assert.deepEqual(v.leakedWaiters, [{ pid: 1, names: ['a', 'b'] }]);
  });

  it('reports a section that never closed, of a worker that was not killed', () => {
    assert.equal(check(evidence([rec('enter', 'a', 1, 1, 10)])).unclosed.length, 1);
  });
});
