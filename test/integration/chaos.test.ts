// Short chaos runs as part of npm test (npm run chaos runs them for minutes):
// workers SIGKILLed, connections KILLed, the (private) server restarted, and
// an independent checker over the workers' own logs; then the kinds variant:
// exclusive, shared and semaphore holders waiting in line while workers are
// SIGKILLed. On a private server of the kind under test (the matrix runs both
// on each).
import assert from 'node:assert/strict';
import { describe as summarize, runChaos } from '../chaos/controller.js';

describe('chaos (short run)', () => {
  it('keeps mutual exclusion through SIGKILLed workers, KILLed connections and server restarts; nothing leaked or lost', async function () {
    this.timeout(180_000);
    const seconds = Number(process.env.LOCKTABLE_CHAOS_TEST_SECONDS ?? 25);
    const s = await runChaos({ durationMs: seconds * 1000, workers: 5, names: 3, faultEveryMs: [150, 700] });
    const text = summarize(s);
    console.log(text.replace(/^/gm, '      '));
    assert.ok(s.cycles > 0, text);
    assert.ok(s.faults.sigkill > 0 && s.faults.connectionKills > 0 && s.faults.restartGraceful + s.faults.restartCrash > 0, `every kind of fault was injected:\n${text}`);
    assert.ok(s.renewed.sections > 0, `some sections under using() outlived a renewal period:\n${text}`);
    assert.deepEqual(s.overlaps, [], text);
    assert.deepEqual(s.tokenRegressions, [], text);
    assert.deepEqual(s.leaked, [], text);
    assert.deepEqual(s.leakedWaiters, [], text);
    assert.deepEqual(s.lost, [], text);
    assert.deepEqual(s.unclosed, [], text);
    assert.equal(s.crashed, 0, text);
    assert.equal(s.hung, 0, text);
  });

  it('kinds: exclusive, shared and semaphore holders waiting in line through SIGKILLed workers: no exclusive overlap, no semaphore over its limit, fair waits within their bound, nothing leaked or lost', async function () {
    this.timeout(120_000);
    const seconds = Number(process.env.LOCKTABLE_CHAOS_KINDS_TEST_SECONDS ?? 20);
    const s = await runChaos({ durationMs: seconds * 1000, workers: 6, kinds: { limit: 2 } });
    const text = summarize(s);
    console.log(text.replace(/^/gm, '      '));
    assert.ok(s.byMode.exclusive > 0 && s.byMode.shared > 0 && s.byMode.semaphore > 0 && s.multiName > 0, `sections of every kind, and on two names at once:\n${text}`);
    assert.ok(s.faults.sigkill > 0, text);
    assert.ok(s.waits.bound && s.waits.count > 0, text);
    assert.deepEqual(s.overlaps, [], text);
    assert.deepEqual(s.overLimit, [], text);
    assert.deepEqual(s.tokenRegressions, [], text);
    assert.deepEqual(s.waits.overtakes, [], text);
    assert.deepEqual(s.waits.overBound, [], text);
    assert.deepEqual(s.leaked, [], text);
    assert.deepEqual(s.leakedWaiters, [], text);
    assert.deepEqual(s.lost, [], text);
    assert.deepEqual(s.unclosed, [], text);
    assert.deepEqual(s.acquireErrors, {}, text);
    assert.deepEqual(s.releaseErrors, {}, text);
    assert.equal(s.crashed, 0, text);
    assert.equal(s.hung, 0, text);
  });
});
