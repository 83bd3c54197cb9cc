// The pure parts of long work under a lock: owners' ancestors, matching a
// process tree, leases rebuilt from JSON, and the keeper's timing.
import assert from 'node:assert/strict';
import { parseDocument, serializeDocument, toStoredOwner, fromStoredOwner, ownerText } from '../../lib/document.js';
import { Keeper } from '../../lib/keepalive.js';
import { parseLease } from '../../lib/lease.js';
import { ownedByTree } from '../../lib/locktable.js';
import { ancestorsOf, type ProcInfo } from '../../lib/owner.js';
import { NotHeldError } from '../../lib/errors.js';

const procs = (table: Record<number, { ppid: number; startTime: number }>) => (pid: number): ProcInfo | undefined =>
  table[pid] && { ...table[pid]!, zombie: false };

describe('long tasks (pure)', () => {
  describe('ancestorsOf', () => {
    it('walks up to 4 parents, nearest first, and stops before pid 1', () => {
      const probe = procs({ 50: { ppid: 40, startTime: 5 }, 40: { ppid: 30, startTime: 4 }, 30: { ppid: 1, startTime: 3 } });
      assert.deepEqual(ancestorsOf(50, probe), [{ pid: 40, startTime: 4 }, { pid: 30, startTime: 3 }]);
      const deep = procs(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [100 + i, { ppid: 101 + i, startTime: i }])));
      assert.deepEqual(ancestorsOf(100, deep).map((a) => a.pid), [101, 102, 103, 104]);
    });

    it('stops where a process cannot be read', () => {
      assert.deepEqual(ancestorsOf(50, procs({ 50: { ppid: 40, startTime: 5 } })), []);
    });
  });

  describe('stored owners', () => {
    const owner = { host: 'h', bootId: 'b', pidNs: 'pid:[1]', pid: 50, startTime: 5, user: 'u', ancestors: [{ pid: 40, startTime: 4 }] };

    it('keep their ancestors through the document, in a fixed key order', () => {
      const stored = toStoredOwner(owner);
      assert.deepEqual(stored.a, [[40, 4]]);
      assert.deepEqual(fromStoredOwner(stored), owner);
      assert.equal(ownerText(stored), '{"h":"h","b":"b","ns":"pid:[1]","p":50,"s":5,"u":"u","a":[[40,4]]}');
      const doc = { v: 4, l: { x: { t: 'x', o: stored, f: 1, n: 'n', a: 1 } } };
      assert.deepEqual(parseDocument('s', serializeDocument(doc)), doc);
    });

    it('documents written before ancestors were recorded still parse', () => {
      const raw = '{"v":2,"o":{"0123456789abcdef":{"h":"h","b":"b","ns":"n","p":7,"s":1,"u":"u"}},"l":{"x":{"t":"x","o":"0123456789abcdef","f":1,"n":"n","a":1}}}';
      assert.equal(parseDocument('s', raw).l.x!.o.a, undefined);
    });
  });

  describe('ownedByTree', () => {
    const o = { h: 'h', b: 'b', ns: 'n', p: 50, s: 5, u: 'u', a: [[40, 4], [30, 3]] as Array<[number, number]> };
    it('matches the process itself and its recorded ancestors', () => {
      assert.equal(ownedByTree(o, 50, undefined), true);
      assert.equal(ownedByTree(o, 40, undefined), true);
      assert.equal(ownedByTree(o, 30, 3), true);
      assert.equal(ownedByTree(o, 20, undefined), false);
    });
    it('never matches a pid of another start time (reused)', () => {
      assert.equal(ownedByTree(o, 50, 6), false);
      assert.equal(ownedByTree(o, 40, 9), false);
      assert.equal(ownedByTree({ ...o, a: undefined }, 40, undefined), false, 'an old record without ancestors: only its own pid');
    });
  });

  describe('parseLease', () => {
    const lease = { space: 'platform', names: ['box_update'], token: 3, nonce: 'abc', owner: { host: 'h', bootId: 'b', pidNs: 'n', pid: 7, startTime: 1, user: 'u' }, acquiredAt: new Date(1000), expiresAt: new Date(4000) };
    it('rebuilds a lease from its JSON, dates as dates', () => {
      const back = parseLease(JSON.stringify(lease));
      assert.deepEqual(back, lease);
      assert.ok(back.acquiredAt instanceof Date);
      assert.deepEqual(parseLease(JSON.parse(JSON.stringify(lease))), lease);
    });
    it('keeps a shared lease\'s mode and limit, so its release goes straight to the right write', () => {
      const shared = { ...lease, mode: 'shared' as const, limit: 3 };
      assert.deepEqual(parseLease(JSON.stringify(shared)), shared);
      assert.throws(() => parseLease({ ...lease, mode: 'exclusive' }), { code: 'EINVALIDOPTION' }, 'an exclusive lease has no mode');
      assert.throws(() => parseLease({ ...shared, limit: 0 }), { code: 'EINVALIDOPTION' });
    });
    it('refuses what is not a lease with EINVALIDOPTION (EINVALIDNAME for a bad name)', () => {
      for (const bad of [undefined, 'nope', {}, { ...lease, token: 0 }, { ...lease, acquiredAt: 5 }, { ...lease, owner: { ...lease.owner, pid: -1 } }]) {
        assert.throws(() => parseLease(bad), { code: 'EINVALIDOPTION' }, JSON.stringify(bad));
      }
      assert.throws(() => parseLease({ ...lease, names: ['bad name'] }), { code: 'EINVALIDNAME' });
    });
  });

  describe('Keeper', () => {
    it('renews every period and, when renewal keeps failing, aborts at the expiry with reason expired', async () => {
      const calls: number[] = [];
      const lost: NotHeldError[] = [];
      const start = performance.now();
      const keeper = new Keeper(
        { names: ['x'], periodMs: 20, renew: async () => { calls.push(performance.now() - start); throw new Error('connection lost'); }, onLost: (e) => lost.push(e) },
        start + 150,
      );
      await new Promise<void>((resolve) => keeper.signal.addEventListener('abort', () => resolve()));
      assert.ok(performance.now() - start >= 149, 'not before the expiry');
      assert.ok(calls.length >= 3, `retried: ${calls.length}`);
      assert.equal((keeper.signal.reason as NotHeldError).reason, 'expired');
      assert.equal(lost.length, 1);
    });

    it('a renewal that finds the lease gone aborts with its NotHeldError; stop() waits for a renewal in flight', async () => {
      const gone = new NotHeldError(['x'], 'forced');
      const keeper = new Keeper({ names: ['x'], periodMs: 5, renew: async () => { throw gone; }, onLost: () => {} }, undefined);
      await new Promise<void>((resolve) => keeper.signal.addEventListener('abort', () => resolve()));
      assert.equal(keeper.signal.reason, gone);

      let finish!: () => void;
      let renewing = false;
      const slow = new Keeper({ names: ['x'], periodMs: 5, renew: () => { renewing = true; return new Promise((r) => (finish = () => r(undefined))); }, onLost: () => {} }, undefined);
      while (!renewing) await new Promise((r) => setTimeout(r, 2));
      let stopped = false;
      const stopping = slow.stop().then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(stopped, false, 'stop() waits for the renewal in flight');
      finish();
      await stopping;
      assert.equal(slow.signal.aborted, false);
    });

    it('a lease longer than a timer can wait (2^31 - 1 ms, ~24.8 days) neither spins nor warns', async () => {
      const overflows: Error[] = [];
      const onWarning = (w: Error) => w.name === 'TimeoutOverflowWarning' && overflows.push(w);
      process.on('warning', onWarning);
      let renewals = 0;
      const day = 24 * 3_600_000;
      const keeper = new Keeper({ names: ['x'], periodMs: 100 * day, renew: async () => (renewals++, performance.now() + 300 * day), onLost: () => {} }, performance.now() + 300 * day);
      try {
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(renewals, 0, 'no renewal before its period');
        assert.equal(overflows.length, 0, `timers overflowed: ${overflows[0]?.message}`);
        assert.equal(keeper.signal.aborted, false);
      } finally {
        await keeper.stop();
        process.off('warning', onWarning);
      }
    });

    it('reading the signal past the expiry aborts it at once, before any timer runs', () => {
      let now = 0;
      const keeper = new Keeper({ names: ['x'], periodMs: 1_000_000, renew: async () => 0, onLost: () => {}, now: () => now }, 100);
      assert.equal(keeper.signal.aborted, false);
      now = 100;
      assert.equal(keeper.signal.aborted, true);
      assert.equal((keeper.signal.reason as NotHeldError).reason, 'expired');
      void keeper.stop();
    });
  });
});
