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

describe('chaos checker: exclusive, shared and semaphore sections (pure)', () => {
  type Kind = { mode?: 'exclusive' | 'shared'; limit?: number };
  const X: Kind = { mode: 'exclusive' };
  const S: Kind = { mode: 'shared' };
  const sem = (limit: number): Kind => ({ mode: 'shared', limit });
  /** A section of `pid` on `name` from `from` to `to`, with its release right after. */
  const section = (name: string, token: number, pid: number, from: number, to: number, kind: Kind = X): LogRecord[] => [
    { k: 'enter', name, token, pid, t: String(from), ...kind },
    { k: 'exit', name, token, pid, t: String(to) },
    { k: 'released', token, pid, t: String(to + 1) },
  ];
  const want = (pid: number, names: string[], t: number, kind: Kind = X): LogRecord => ({ k: 'want', names, pid, t: String(t), ...kind });
  const queued = (pid: number, t: number): LogRecord => ({ k: 'queued', pid, t: String(t) });
  const ms = 1_000_000; // records are in ns

  it('lets shared and semaphore sections overlap one another, and counts them by mode', () => {
    const v = check(evidence([...section('a', 1, 1, 10, 50, S), ...section('a', 2, 2, 20, 60, S), ...section('b', 3, 3, 10, 50, sem(2)), ...section('b', 4, 1, 55, 70, sem(2)), ...section('b', 5, 2, 65, 80, sem(2))]));
    assert.deepEqual([v.overlaps.length, v.overLimit.length, v.tokenRegressions.length], [0, 0, 0]);
    assert.deepEqual(v.byMode, { exclusive: 0, shared: 2, semaphore: 3 });
    assert.deepEqual(v.maxHolders, { shared: 2, semaphore: 2 });
  });

  it('finds a shared section that overlaps an exclusive one, whichever entered first', () => {
    const after = check(evidence([...section('a', 1, 1, 10, 50, X), ...section('a', 2, 2, 40, 60, S)]));
    assert.deepEqual(after.overlaps.map((o) => [o.a.token, o.b.token]), [[1, 2]]);
    const before = check(evidence([...section('a', 1, 1, 10, 50, S), ...section('a', 2, 2, 20, 30, S), ...section('a', 3, 3, 40, 60, X)]));
    assert.deepEqual(before.overlaps.map((o) => [o.a.token, o.b.token]), [[1, 3]]);
  });

  it('finds more semaphore holders at once than the limit, and not when one leaves as the next enters', () => {
    const over = check(evidence([...section('b', 1, 1, 10, 50, sem(2)), ...section('b', 2, 2, 20, 60, sem(2)), ...section('b', 3, 3, 30, 40, sem(2))]));
    assert.equal(over.overLimit.length, 1);
    assert.deepEqual([over.overLimit[0]!.limit, over.overLimit[0]!.holders.map((h) => h.token)], [2, [1, 2, 3]]);
    const handOver = check(evidence([...section('b', 1, 1, 10, 50, sem(2)), ...section('b', 2, 2, 20, 60, sem(2)), ...section('b', 3, 3, 50, 70, sem(2))]));
    assert.equal(handOver.overLimit.length, 0);
  });

  it('counts a plain shared holder against a semaphore limit it meets', () => {
    const v = check(evidence([...section('b', 1, 1, 10, 50, sem(1)), ...section('b', 2, 2, 20, 60, S)]));
    assert.equal(v.overLimit.length, 1);
  });

  it('holds tokens to increase only between sections that exclude each other', () => {
    // Shared holders may log their sections in any order of their tokens.
    const shared = check(evidence([...section('a', 5, 1, 10, 20, S), ...section('a', 4, 2, 30, 40, S)]));
    assert.equal(shared.tokenRegressions.length, 0);
    // An exclusive section after a shared one with a larger token, and a shared one after an exclusive one.
    const xAfterS = check(evidence([...section('a', 5, 1, 10, 20, S), ...section('a', 4, 2, 30, 40, X)]));
    assert.deepEqual(xAfterS.tokenRegressions.map((r) => [r.before.token, r.after.token]), [[5, 4]]);
    const sAfterX = check(evidence([...section('a', 5, 1, 10, 20, X), ...section('a', 4, 2, 30, 40, sem(2))]));
    assert.deepEqual(sAfterX.tokenRegressions.map((r) => [r.before.token, r.after.token]), [[5, 4]]);
  });

  it('counts every shared holder left at the end: leaked when its owner lives, left when it was killed', () => {
    const v = check(
      evidence([], {
        killedAt: new Map([[9, 1n]]),
        finalHeld: [
          ['a', { pid: 9, token: 1 }],
          ['a', { pid: 2, token: 2 }],
        ],
      }),
    );
    assert.deepEqual(v.leaked, [{ name: 'a', pid: 2, token: 2 }]);
    assert.equal(v.leftByKilled, 1);
  });

  it('measures each wait from its call to its section, or to the death of its worker', () => {
    const v = check(evidence([want(1, ['a'], 0), ...section('a', 1, 1, 30 * ms, 40 * ms), want(1, ['a'], 50 * ms), want(2, ['a'], 0)], { killedAt: new Map([[2, BigInt(500 * ms)]]) }));
    assert.deepEqual([v.waits.count, v.waits.p50Ms, v.waits.p99Ms], [2, 30, 500]);
    assert.deepEqual([v.waits.longest!.pid, v.waits.longest!.ended, v.waits.longest!.ms], [2, 'killed', 500]);
  });

  it('finds a wait longer than the bound, computed from the longest hold and release seen', () => {
    // Hold 10 ms, release 1 ns after the exit; 3 workers, poll 50 ms: bound (3 - 1) × (10 + 50 + 0.000002) + 0.000002.
    const records = [want(1, ['a'], 0), ...section('a', 1, 1, 1 * ms, 11 * ms), want(2, ['a'], 0), ...section('a', 2, 2, 119 * ms, 120 * ms), want(3, ['a'], 0), ...section('a', 3, 3, 121 * ms, 122 * ms)];
    const v = check(evidence(records, { waitBound: { workers: 3, pollMaxMs: 50 } }));
    assert.ok(Math.abs(v.waits.bound!.boundMs - 120) < 0.001, String(v.waits.bound!.boundMs));
    assert.deepEqual(v.waits.overBound.map((w) => w.pid), [3]);
    // Without a bound to judge by, no wait is over it.
    assert.deepEqual(check(evidence(records)).waits.overBound, []);
  });

  it('finds a worker that enters twice in the way of a waiter in line, but not twice beside a shared waiter', () => {
    const records = [
      want(1, ['a'], 0, X),
      queued(1, 5),
      ...section('a', 1, 2, 10, 20, S), // in the way (exclusive waiter): its first turn
      ...section('a', 2, 2, 30, 40, S), // its second: it overtook
      ...section('a', 3, 3, 30, 40, S), // another worker's one turn
      ...section('a', 4, 1, 50, 60, X),
    ];
    const v = check(evidence(records));
    assert.deepEqual(v.waits.overtakes.map((o) => [o.waiter.pid, o.by, o.tokens]), [[1, 2, [1, 2]]]);
    // A shared waiter is not in the way of shared holders: they may come and go.
    const shared = records.map((r) => (r.k === 'want' || (r.k === 'enter' && r.token === 4) ? { ...r, mode: 'shared' as const } : r));
    assert.deepEqual(check(evidence(shared)).waits.overtakes, []);
    // Sections entered before the waiter got in line do not count.
    const early = records.map((r) => (r.k === 'queued' ? { ...r, t: '25' } : r));
    assert.deepEqual(check(evidence(early)).waits.overtakes, []);
  });

  it('does not count the stop at the end (EABORTED) as an acquire error, but ends the wait with it', () => {
    const v = check(evidence([want(1, ['a'], 0), { k: 'acquire-error', pid: 1, code: 'EABORTED', t: String(7 * ms) }, want(2, ['a'], 0), { k: 'acquire-error', pid: 2, code: 'ETIMEDOUT', t: String(9 * ms) }]));
    assert.deepEqual(v.acquireErrors, { ETIMEDOUT: 1 });
    assert.deepEqual(v.waits.longest && [v.waits.longest.ended, v.waits.longest.ms], ['ETIMEDOUT', 9]);
  });
});
