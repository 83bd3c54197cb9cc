import assert from 'node:assert/strict';
import { Leftovers, type Leftover } from '../../lib/leftovers.js';
import { until } from '../helpers/db.js';

describe('background release of leftovers (pure, with a stand-in release)', () => {
  it('keeps trying until the release succeeds, then calls done once', async () => {
    let calls = 0;
    let done = 0;
    const left = new Leftovers({
      release: async () => {
        if (++calls < 4) throw new Error('server down');
      },
      log: () => {},
      baseMs: 1,
      capMs: 5,
    });
    left.add({ names: ['a'], nonce: 'n', done: () => done++ });
    await until('the fourth attempt', () => done === 1, 5_000);
    assert.equal(calls, 4);
    assert.equal(left.size, 0);
    await left.flush();
    assert.equal(done, 1);
  });

  it('flush() makes one last, short attempt for what is left, then stops taking more', async () => {
    const attempts: Array<[string, boolean]> = [];
    const left = new Leftovers({
      release: async (item: Leftover, last: boolean) => {
        attempts.push([item.nonce, last]);
        throw new Error('still down');
      },
      log: () => {},
      baseMs: 10_000, // the background retry would not come round again during the test
    });
    left.add({ names: ['a'], nonce: 'n1' });
    await until('the first attempt', () => attempts.length === 1, 5_000);
    await left.flush();
    assert.deepEqual(attempts, [['n1', false], ['n1', true]]);
    assert.equal(left.size, 0, 'given up');
    left.add({ names: ['b'], nonce: 'n2' });
    assert.equal(left.size, 0, 'a closed table takes no more');
  });

  it('the same nonce given up on twice is one leftover, `maybe` if either said so', async () => {
    const seen: Array<[string, boolean | undefined]> = [];
    const left = new Leftovers({
      release: async (item: Leftover) => {
        seen.push([item.nonce, item.maybe]);
        throw new Error('down');
      },
      log: () => {},
      baseMs: 10_000,
    });
    left.add({ names: ['a'], nonce: 'n' });
    left.add({ names: ['a'], nonce: 'n', maybe: true });
    left.add({ names: ['a'], nonce: 'n' });
    assert.equal(left.size, 1);
    await until('the first attempt', () => seen.length === 1, 5_000);
    assert.deepEqual(seen, [['n', true]]);
    await left.flush();
  });
});
