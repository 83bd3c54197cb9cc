import assert from 'node:assert/strict';
import { Bound, watchAbort } from '../../lib/bound.js';

describe('bound (monotonic deadline and signal)', () => {
  it('fires at its deadline by performance.now(), never before', async () => {
    const bound = new Bound(30);
    const fired = await new Promise<{ how: string; at: number }>((resolve) => bound.onFire((how) => resolve({ how, at: performance.now() })));
    assert.equal(fired.how, 'deadline');
    assert.ok(fired.at >= bound.until, `fired ${bound.until - fired.at} ms early`);
    assert.equal(bound.fired(), 'deadline');
    assert.equal(bound.left(), 0);
  });

  it('fires on abort at once, and a cancelled watch never fires', async () => {
    const abort = new AbortController();
    const bound = new Bound(60_000, abort.signal);
    const seen: string[] = [];
    const cancel = bound.onFire((how) => seen.push(`a:${how}`));
    bound.onFire((how) => seen.push(`b:${how}`))();
    abort.abort();
    cancel(); // after it fired: harmless
    assert.deepEqual(seen, ['a:aborted']);
    assert.equal(bound.fired(), 'aborted');
    assert.equal(bound.abortError().code, 'EABORTED');
  });

  it('an already aborted signal fires on the next microtask', async () => {
    const bound = new Bound(60_000, AbortSignal.abort());
    const how = await new Promise((resolve) => bound.onFire(resolve));
    assert.equal(how, 'aborted');
  });

  it('sleep() stops at the deadline, and rejects with EABORTED on abort', async () => {
    const started = performance.now();
    await new Bound(20).sleep(10_000);
    assert.ok(performance.now() - started < 1_000);
    const abort = new AbortController();
    const sleeping = new Bound(60_000, abort.signal).sleep(60_000);
    abort.abort();
    await assert.rejects(sleeping, { code: 'EABORTED' });
  });

  it('many watchers of one signal share one listener (no MaxListenersExceededWarning)', () => {
    const abort = new AbortController();
    let added = 0;
    const original = abort.signal.addEventListener.bind(abort.signal);
    abort.signal.addEventListener = ((...args: Parameters<typeof original>) => {
      added++;
      return original(...args);
    }) as typeof original;
    let calls = 0;
    const stops = Array.from({ length: 50 }, () => watchAbort(abort.signal, () => calls++));
    stops[0]!();
    abort.abort();
    assert.equal(added, 1);
    assert.equal(calls, 49);
  });

  it('many waits share one timer, and once every wait is over none keeps the process alive', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const cancels = Array.from({ length: 200 }, (_, i) => new Bound(60_000 + i).onFire(() => assert.fail('cancelled before its deadline')));
    assert.ok(timers() - before <= 1, `${timers() - before} timers for 200 waits`);
    for (const cancel of cancels) cancel();
    assert.ok(timers() <= before, 'a timer still keeps the process alive');
  });

  it('a shorter bound watched after a longer one still fires first, at its own deadline', async () => {
    const long = new Bound(60_000);
    const seen: string[] = [];
    const stopLong = long.onFire(() => seen.push('long'));
    const short = new Bound(20);
    const at = await new Promise<number>((resolve) => short.onFire(() => resolve(performance.now())));
    assert.ok(at >= short.until, `fired ${short.until - at} ms early`);
    assert.deepEqual(seen, []);
    stopLong();
  });

  it('waits cancelled in any order, some by the fire of another due at the same time, never fire; the others each fire once', async () => {
    const bounds = Array.from({ length: 40 }, () => new Bound(15));
    const fired: number[] = [];
    const cancels: Array<() => void> = [];
    const done = bounds.map((b, i) => new Promise<void>((resolve) => cancels.push(b.onFire(() => {
      fired.push(i);
      // The first to fire cancels every wait whose index is a multiple of 5, due in the same sweep.
      if (fired.length === 1) for (let k = 0; k < 40; k += 5) if (k !== i) cancels[k]!();
      resolve();
    }))));
    // Cancelled before the deadline, in an order that moves entries around: every third, from the end.
    for (let i = 39; i >= 0; i -= 3) cancels[i]!();
    await new Promise((r) => setTimeout(r, 60));
    const first = fired[0]!;
    const expected = bounds.map((_, i) => i).filter((i) => (39 - i) % 3 !== 0 && (i % 5 !== 0 || i === first));
    assert.deepEqual([...fired].sort((a, b) => a - b), expected);
    await Promise.all(expected.map((i) => done[i]));
  });

  it('bounds that end together all fire, each once, however many there are', async () => {
    const bounds = Array.from({ length: 50 }, () => new Bound(15));
    const fired = await Promise.all(bounds.map((b) => new Promise<string>((resolve) => b.onFire(resolve))));
    assert.deepEqual(new Set(fired), new Set(['deadline']));
  });
});

