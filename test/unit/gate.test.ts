import assert from 'node:assert/strict';
import { Gate, type Settled } from '../../lib/gate.js';

/** A promise settled from outside: lets a test hold jobs in flight and release them one by one. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

/** A gate whose batches wait until the test releases them, recording what ran together. */
function harness(limit: number, canJoin?: (batch: readonly number[], next: number) => boolean) {
  const batches: number[][] = [];
  const pending: Array<ReturnType<typeof deferred<void>>> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const gate = new Gate<number, number>({
    limit,
    canJoin,
    closedError: () => new Error('closed'),
    async runBatch(items): Promise<Array<Settled<number>>> {
      batches.push([...items]);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const d = deferred();
      pending.push(d);
      try {
        await d.promise;
      } finally {
        inFlight--;
      }
      return items.map((i) => (i < 0 ? { ok: false, error: new Error(`bad ${i}`) } : { ok: true, value: i * 10 }));
    },
  });
  const releaseNext = async () => {
    pending.shift()!.resolve();
    await tick();
  };
  return { gate, batches, pending, releaseNext, stats: () => ({ inFlight, maxInFlight }) };
}

describe('gate (pure)', () => {
  it('runs an item at once when a slot is free, alone', async () => {
    const h = harness(2);
    const p = h.gate.submit(1);
    await tick();
    assert.deepEqual(h.batches, [[1]]);
    await h.releaseNext();
    assert.equal(await p, 10);
  });

  it('never has more than `limit` batches or jobs in flight', async () => {
    const h = harness(3);
    const jobs: Array<ReturnType<typeof deferred<void>>> = [];
    let jobsInFlight = 0;
    let most = 0;
    const all: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) {
      if (i % 4 === 0) {
        const d = deferred();
        jobs.push(d);
        all.push(
          h.gate.run(async () => {
            jobsInFlight++;
            most = Math.max(most, jobsInFlight + h.stats().inFlight);
            await d.promise;
            jobsInFlight--;
          }),
        );
      } else all.push(h.gate.submit(i));
      await tick();
    }
    // Settle whatever is in flight until everything is done, checking the bound at every step.
    while (h.gate.running) {
      assert.ok(h.gate.running <= 3, `running ${h.gate.running}`);
      assert.ok(h.stats().inFlight + jobsInFlight <= 3);
      if (h.pending.length) await h.releaseNext();
      else {
        jobs.shift()!.resolve();
        await tick();
      }
    }
    await Promise.all(all);
    assert.ok(h.stats().maxInFlight <= 3 && most <= 3, `${h.stats().maxInFlight} ${most}`);
    assert.equal(h.gate.queued, 0);
  });

  it('combines the items queued behind busy slots into one batch, each getting its own result', async () => {
    const h = harness(1);
    const first = h.gate.submit(1);
    await tick();
    const queued = [2, 3, 4, 5].map((i) => h.gate.submit(i));
    await tick();
    assert.equal(h.gate.queued, 4);
    await h.releaseNext();
    assert.deepEqual(h.batches, [[1], [2, 3, 4, 5]], 'all four waited behind the first and went together');
    await h.releaseNext();
    assert.equal(await first, 10);
    assert.deepEqual(await Promise.all(queued), [20, 30, 40, 50]);
  });

  it('respects canJoin, leaving the rest queued in order for the next slot', async () => {
    const h = harness(1, (batch, next) => batch.length < 2 && next !== 99);
    h.gate.submit(1);
    await tick();
    for (const i of [2, 99, 3, 4]) h.gate.submit(i);
    await tick();
    await h.releaseNext(); // 2 heads the next batch; 99 may not join it, 3 may, then it is full
    await h.releaseNext(); // 99 heads the next one (canJoin only judges joiners), 4 joins it
    await h.releaseNext();
    assert.deepEqual(h.batches, [[1], [2, 3], [99, 4]]);
  });

  it('runs jobs alone and in arrival order among themselves', async () => {
    const h = harness(1);
    const order: number[] = [];
    const a = h.gate.run(async () => order.push(1));
    const b = h.gate.run(async () => order.push(2));
    const c = h.gate.run(async () => {
      order.push(3);
      throw new Error('job failed');
    });
    await a;
    await b;
    await assert.rejects(c, /job failed/);
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(h.gate.running, 0, 'a failed job frees its slot');
  });

  it('settles each item with its own outcome, and a throwing batch rejects only its own items', async () => {
    let calls = 0;
    const gate = new Gate<number, number>({
      limit: 1,
      closedError: () => new Error('closed'),
      async runBatch(items) {
        calls++;
        await tick();
        if (items.includes(13)) throw new Error('unlucky batch');
        return items.map((i) => (i < 0 ? { ok: false as const, error: new Error(`bad ${i}`) } : { ok: true as const, value: i }));
      },
    });
    const first = gate.submit(13);
    const rest = [1, -2, 3].map((i) => gate.submit(i));
    await assert.rejects(first, /unlucky batch/);
    const settled = await Promise.allSettled(rest);
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message)),
      [1, 'bad -2', 3],
    );
    assert.equal(calls, 2);
  });

  it('rejects a runner that returns the wrong number of outcomes', async () => {
    const gate = new Gate<number, number>({ limit: 1, closedError: () => new Error('closed'), runBatch: async () => [] });
    await assert.rejects(gate.submit(1), /0 outcomes for 1 items/);
  });

  it('on close, fails what is queued and what comes later, and lets running work finish', async () => {
    const h = harness(1);
    const running = h.gate.submit(1);
    await tick();
    const queued = h.gate.submit(2);
    const job = h.gate.run(async () => 'never');
    h.gate.close();
    await assert.rejects(queued, /closed/);
    await assert.rejects(job, /closed/);
    await assert.rejects(h.gate.submit(3), /closed/);
    await h.releaseNext();
    assert.equal(await running, 10);
  });

  it('rejects a limit that is not a positive integer', () => {
    for (const limit of [0, -1, 1.5, NaN]) {
      assert.throws(() => new Gate({ limit, closedError: () => new Error(), runBatch: async () => [] }), RangeError);
    }
  });

  describe('expiry of queued calls', () => {
    /** An expiry the test fires by hand; counts arming and disarming. */
    function manual() {
      const state = { armed: 0, disarmed: 0, fire: undefined as undefined | ((e: Error) => void) };
      const expiry = (expire: (e: Error) => void) => {
        state.armed++;
        state.fire = expire;
        return () => void state.disarmed++;
      };
      return { state, expiry };
    }

    it('a queued item whose expiry fires leaves the queue with its error and never runs; the others are unaffected', async () => {
      const { gate, batches, pending } = harness(1);
      const first = gate.submit(1);
      await tick();
      const { state, expiry } = manual();
      const second = gate.submit(2, expiry);
      const third = gate.submit(3);
      assert.equal(state.armed, 1, 'armed while queued');
      state.fire!(new Error('bound'));
      await assert.rejects(second, /bound/);
      assert.equal(gate.queued, 1);
      pending[0]!.resolve();
      assert.equal(await first, 10);
      await tick();
      pending[1]!.resolve();
      assert.equal(await third, 30);
      assert.deepEqual(batches, [[1], [3]]);
    });

    it('is not armed for a call that runs at once, and is disarmed once a slot takes the call', async () => {
      const { gate, pending } = harness(1);
      const a = manual();
      const first = gate.submit(1, a.expiry);
      assert.equal(a.state.armed, 0);
      await tick();
      const b = manual();
      const second = gate.run(async () => 7, b.expiry);
      assert.equal(b.state.armed, 1);
      pending[0]!.resolve();
      await first;
      assert.equal(await second, 7);
      assert.equal(b.state.disarmed, 1);
      b.state.fire!(new Error('too late')); // a late fire finds nothing to remove
      assert.equal(gate.queued, 0);
    });

    it('whenIdle() resolves once nothing runs and nothing is queued', async () => {
      const { gate, pending } = harness(1);
      await gate.whenIdle();
      const one = gate.submit(1);
      await tick();
      const two = gate.submit(2);
      let idle = false;
      const waiting = gate.whenIdle().then(() => (idle = true));
      pending[0]!.resolve();
      await one;
      await tick();
      assert.equal(idle, false, 'the second is still to run');
      pending[1]!.resolve();
      await two;
      await waiting;
      assert.equal(idle, true);
    });
  });
});
