import assert from 'node:assert/strict';
import { DbClock } from '../../lib/clock.js';

describe('database clock estimate (pure)', () => {
  it("has no estimate before any observation: the host's wall clock is never a guess", () => {
    const clock = new DbClock(() => 0);
    assert.equal(clock.known, false);
    assert.equal(clock.now(), undefined);
    clock.observe(1_700_000_000_000, 0, 0);
    assert.equal(clock.known, true);
    assert.equal(clock.now(), 1_700_000_000_000);
  });

  it('anchors on the midpoint of the round trip and advances with the monotonic clock only', () => {
    let mono = 100;
    const clock = new DbClock(() => mono);
    clock.observe(2_000_000, 100, 110); // the server said 2,000,000 somewhere between 100 and 110
    mono = 1_105;
    assert.equal(clock.now(), 2_000_000 + 1_000);
  });

  it('takes the newest observation', () => {
    let mono = 0;
    const clock = new DbClock(() => mono);
    clock.observe(1_000, 0, 0);
    clock.observe(5_000, 10, 10);
    mono = 20;
    assert.equal(clock.now(), 5_010);
  });

  it('track() observes a read bracketed by its own round trip, and nothing when the read found no row', async () => {
    let mono = 100;
    const clock = new DbClock(() => mono);
    assert.equal(await clock.track(async () => undefined), undefined);
    assert.equal(clock.now(), undefined, 'no row, no observation');
    const row = await clock.track(async () => {
      mono = 120; // the read took 20 ms; the server's time was taken somewhere in it
      return { now: 50_000 };
    });
    assert.deepEqual(row, { now: 50_000 });
    mono = 130;
    assert.equal(clock.now(), 50_000 + 20);
  });
});
