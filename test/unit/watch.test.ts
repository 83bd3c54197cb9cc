import assert from 'node:assert/strict';
import { shouldWake, watchCandidate, type Watched } from '../../lib/watch.js';
import type { Entry } from '../../lib/document.js';

const entry = (n: string): Entry => ({ t: 'x', o: { h: 'h', b: 'b', ns: 'n', p: 1, s: 1, u: 'u' }, f: 1, n, a: 1 });

describe('watch (pure)', () => {
  it('asks for every blocker of every waiter with the nonce it was seen with', () => {
    const waiters: Watched[] = [
      { version: 3, blockers: [{ name: 'a', entry: entry('n1') }, { name: 'b', entry: entry('n2') }] },
      { version: 4, blockers: [{ name: 'c', entry: entry('n3') }] },
    ];
    assert.deepEqual(JSON.parse(watchCandidate(waiters)), { l: { a: { n: 'n1' }, b: { n: 'n2' }, c: { n: 'n3' } } });
    assert.equal(watchCandidate([]), '{"l":{}}');
  });

  it('wakes a waiter when a blocker changed, or is judged dead; not for writes about other names', () => {
    const w: Watched = { version: 10, blockers: [{ name: 'a', entry: entry('n1') }] };
    assert.equal(shouldWake(w, { version: 10, same: null }, false), false, 'nothing moved');
    assert.equal(shouldWake(w, { version: 12, same: true }, false), false, 'other names moved');
    assert.equal(shouldWake(w, { version: 12, same: false }, false), true, 'a blocker changed');
    assert.equal(shouldWake(w, { version: 12, same: null }, false), false, 'unchecked: the next poll checks');
    assert.equal(shouldWake(w, { version: 10, same: null }, true), true, 'its holder died or its lease ran out');
  });
});
