// A short chaos run as part of npm test (npm run chaos runs it for minutes):
// workers SIGKILLed, connections KILLed, the (private) server restarted, and
// an independent checker over the workers' own logs.
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
});
