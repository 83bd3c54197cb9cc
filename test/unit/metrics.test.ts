import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { EventSink, LockChannels } from '../../lib/events.js';
import { quantile, Reservoir } from '../../lib/metrics.js';

describe('metrics (pure)', () => {
  it('an empty summary has count 0 and null extremes and quantiles', () => {
    assert.deepEqual(new Reservoir().summary(), { count: 0, sum: 0, min: null, max: null, p50: null, p90: null, p99: null });
  });

  it('summarises exactly while the reservoir is not full', () => {
    const r = new Reservoir(1000);
    for (let v = 1; v <= 100; v++) r.observe(v);
    assert.deepEqual(r.summary(), { count: 100, sum: 5050, min: 1, max: 100, p50: 50, p90: 90, p99: 99 });
  });

  it('keeps count, sum, min and max exact and memory bounded once full', () => {
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646; // deterministic
    const r = new Reservoir(64, random);
    for (let v = 1; v <= 10_000; v++) r.observe(v);
    const s = r.summary();
    assert.equal(s.count, 10_000);
    assert.equal(s.sum, 50_005_000);
    assert.equal(s.min, 1);
    assert.equal(s.max, 10_000);
    // A uniform sample of 64 out of 1..10000: the median lands well inside the middle half.
    assert.ok(s.p50! > 2_500 && s.p50! < 7_500, String(s.p50));
    assert.ok(s.p50! <= s.p90! && s.p90! <= s.p99! && s.p99! <= 10_000);
  });

  it('ignores values that are not finite numbers', () => {
    const r = new Reservoir();
    r.observe(Number.NaN);
    r.observe(Infinity);
    r.observe(3);
    assert.equal(r.summary().count, 1);
  });

  it('nearest-rank quantiles', () => {
    assert.equal(quantile([5], 0.99), 5);
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
    assert.equal(quantile([1, 2, 3, 4], 0.75), 3);
    assert.equal(quantile([1, 2, 3, 4], 1), 4);
    assert.equal(quantile([1, 2, 3, 4], 0), 1);
  });

  it('publishes on the documented channel names (part of the API)', () => {
    assert.deepEqual(LockChannels, {
      acquired: 'locktable:acquired',
      released: 'locktable:released',
      contended: 'locktable:contended',
      retried: 'locktable:retried',
      reaped: 'locktable:reaped',
      lost: 'locktable:lost',
      queued: 'locktable:queued',
      dequeued: 'locktable:dequeued',
    });
    assert.ok(Object.isFrozen(LockChannels));
  });

  it('EventSink counts each kind, counts reaped per lock, summarises waits and holds, and publishes', () => {
    const sink = new EventSink('s1');
    const seen: Array<[string, unknown]> = [];
    const subs = Object.entries(LockChannels).map(([kind, channel]) => {
      const fn = (message: unknown) => seen.push([kind, message]);
      diagnostics.subscribe(channel, fn);
      return () => diagnostics.unsubscribe(channel, fn);
    });
    try {
      const owner = { host: 'h', bootId: 'b', pidNs: 'n', pid: 1, startTime: 1, user: 'u' };
      const holder = { name: 'x', type: 'x', owner, token: 1, acquiredAt: new Date(0) };
      sink.emit('acquired', { space: 's1', op: 'acquire', names: ['x'], token: 1, owner, waitedMs: 4, mode: 'exclusive' });
      sink.emit('acquired', { space: 's1', op: 'wait', names: ['y'], token: 2, owner, waitedMs: 10, mode: 'shared', limit: 3 });
      sink.emit('released', { space: 's1', names: ['x'], token: 1, owner, heldMs: 7, mode: 'exclusive' });
      sink.emit('contended', { space: 's1', op: 'tryAcquire', names: ['x'], holders: [holder], waiters: [] });
      sink.emit('retried', { space: 's1', op: 'acquire', attempt: 1, reason: 'lost the race' });
      sink.emit('reaped', { space: 's1', op: 'reapDead', locks: [{ ...holder, reason: 'reaped' }, { ...holder, name: 'z', reason: 'reaped' }], by: owner });
      sink.emit('lost', { space: 's1', op: 'release', names: ['y'], token: 2, reason: 'wiped', heldBy: [] });
      const m = sink.snapshot();
      assert.deepEqual(m.counters, { acquired: 2, released: 1, contended: 1, retried: 1, reaped: 2, lost: 1, queued: 0, dequeued: 0 });
      assert.equal(m.space, 's1');
      assert.deepEqual([m.waitMs.count, m.waitMs.sum, m.waitMs.min, m.waitMs.max], [2, 14, 4, 10]);
      assert.deepEqual([m.holdMs.count, m.holdMs.sum], [1, 7]);
      assert.deepEqual(seen.map(([k]) => k), ['acquired', 'acquired', 'released', 'contended', 'retried', 'reaped', 'lost']);
      m.counters.acquired = 99;
      assert.equal(sink.snapshot().counters.acquired, 2, 'a snapshot is a copy');
    } finally {
      for (const unsubscribe of subs) unsubscribe();
    }
  });
});
