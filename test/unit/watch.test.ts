import assert from 'node:assert/strict';
import { dueIn, inFront, movedUp, NEAR_FRONT, paced, seesFree, shouldWake, viewOf, watchPaths, type Watched } from '../../lib/watch.js';
import type { Entry, Intent } from '../../lib/document.js';

const owner = { h: 'h', b: 'b', ns: 'n', p: 1, s: 1, u: 'u' };
const entry = (n: string): Entry => ({ t: 'x', o: owner, f: 1, n, a: 1 });
const intent = (n: string): Intent => ({ n, o: owner, a: 1, e: 2 });
/** What the poll would read for `w`, the document holding `at` (path → what is there). */
const seenAt = (w: Watched, version: number, at: Record<string, unknown>) => {
  const paths = watchPaths([w]);
  return { version, view: viewOf(paths, paths.map((p) => at[p] ?? null)) };
};

describe('watch (pure)', () => {
  it('reads, for each name, only what some waiter watches there', () => {
    const waiters: Watched[] = [
      { version: 3, blockers: [{ name: 'a', entry: entry('n1') }, { name: 'b', entry: entry('n2') }], ahead: [{ name: 'a', intent: intent('w1') }] },
      { version: 4, blockers: [{ name: 'c', entry: entry('n3'), shared: true }, { name: 'a', entry: entry('n1') }], ahead: [{ name: 'a', intent: intent('w2') }] },
    ];
    assert.deepEqual(watchPaths(waiters), ['$.l."a".n', '$.l."b".n', '$.q."a"[*].n', '$.s."c".h[*].n']);
    assert.deepEqual(watchPaths([]), []);
  });

  it('takes what each path gave: nothing, one value, or a list (servers differ on a wildcard matching once)', () => {
    const view = viewOf(['p', 'q', 'r'], [null, 'x', ['y', 'z']]);
    assert.deepEqual([...view], [['p', []], ['q', ['x']], ['r', ['y', 'z']]]);
  });

  it('wakes an exclusive waiter only when every holder and every waiter in front it saw is gone', () => {
    const w: Watched = { version: 10, waiter: 'me', blockers: [{ name: 'a', entry: entry('h1') }], ahead: [{ name: 'a', intent: intent('w1') }, { name: 'a', intent: intent('w2') }] };
    const line = '$.q."a"[*].n';
    const holder = '$.l."a".n';
    assert.equal(shouldWake(w, { version: 10, view: null }, false), false, 'nothing moved');
    assert.equal(shouldWake(w, seenAt(w, 12, { [holder]: 'h1', [line]: ['w1', 'w2', 'me'] }), false), false, 'other names or waiters behind it moved');
    assert.equal(shouldWake(w, seenAt(w, 13, { [holder]: 'w1lease', [line]: ['w2', 'me'] }), false), false, 'the first in line took it: the second still stands in front');
    assert.equal(shouldWake(w, seenAt(w, 14, { [line]: ['w2', 'me'] }), false), false, 'released: the second in front takes it next');
    assert.equal(shouldWake(w, seenAt(w, 15, { [holder]: 'w2lease', [line]: ['me'] }), false), true, 'everyone it saw in its way is gone: now it is first');
    assert.equal(shouldWake(w, seenAt(w, 16, { [line]: ['me'] }), false), true, 'and the name is free');
    assert.equal(shouldWake(w, { version: 12, view: null }, false), false, 'unchecked at this version: the previous poll judged it');
    assert.equal(shouldWake(w, { version: 10, view: null }, true), true, 'a holder or a waiter in front died, or its lease or intent ran out');
  });

  it('a waiter seen in front that is now behind it (dropped, back in line) no longer counts', () => {
    const w: Watched = { version: 10, waiter: 'me', blockers: [], ahead: [{ name: 'a', intent: intent('w1') }] };
    assert.equal(shouldWake(w, seenAt(w, 11, { '$.q."a"[*].n': ['w1', 'me'] }), false), false);
    assert.equal(shouldWake(w, seenAt(w, 12, { '$.q."a"[*].n': ['me', 'w1'] }), false), true);
  });

  it('a shared or semaphore waiter wakes when any holder or waiter it saw is gone (one leaving can free its place)', () => {
    const w: Watched = {
      version: 10,
      anyGone: true,
      blockers: [{ name: 's', entry: entry('h1'), shared: true }, { name: 's', entry: entry('h2'), shared: true }],
    };
    assert.equal(shouldWake(w, seenAt(w, 11, { '$.s."s".h[*].n': ['h1', 'h2'] }), false), false, 'both still hold');
    assert.equal(shouldWake(w, seenAt(w, 12, { '$.s."s".h[*].n': ['h2', 'h3'] }), false), true, 'one left');
  });

  it('a waiter for several names wakes when every holder it saw, on every name, is gone', () => {
    const w: Watched = { version: 1, blockers: [{ name: 'a', entry: entry('x') }, { name: 'b', entry: entry('y') }] };
    assert.equal(shouldWake(w, seenAt(w, 2, { '$.l."b".n': 'y' }), false), false, 'b still held: it could not take both');
    assert.equal(shouldWake(w, seenAt(w, 3, {}), false), true);
  });

  it('counts the waiters still in front, and hurries the poll when the line moved up near the front', () => {
    assert.equal(NEAR_FRONT, 3);
    const ids = ['w1', 'w2', 'w3', 'w4'];
    const w: Watched = { version: 1, waiter: 'me', blockers: [{ name: 'a', entry: entry('h') }], ahead: ids.map((n) => ({ name: 'a', intent: intent(n) })) };
    const line = (...xs: string[]) => viewOf(['$.q."a"[*].n'], [xs]);
    assert.equal(inFront(w), 4, 'as it saw them');
    assert.equal(inFront(w, line('w1', 'w2', 'w3', 'w4', 'me')), 4);
    assert.equal(movedUp(w, line('w2', 'w3', 'w4', 'me')), false, 'three still in front: not near the front yet');
    w.front = 3;
    assert.equal(movedUp(w, line('w3', 'w4', 'me')), true, 'two in front now');
    w.front = 2;
    assert.equal(movedUp(w, line('w3', 'w4', 'me', 'x')), false, 'the line did not move up in front of it');
    assert.equal(movedUp(w, line('w4', 'me')), true);
    w.front = 1;
    assert.equal(movedUp(w, line('me')), true, 'first in line, the holder still there');
    const twoNames: Watched = { version: 1, blockers: [], ahead: [{ name: 'a', intent: intent('x') }, { name: 'b', intent: intent('y') }, { name: 'b', intent: intent('z') }] };
    assert.equal(inFront(twoNames), 2, 'on the name where most stand');
  });

  it('paces the poll by the line: a waiter closes in on its turn, and the back-off decides when none is known or it is overdue', () => {
    const got = paced({ movedAt: 1_000 }, 4, 1_040);
    assert.deepEqual(got, { movedAt: 1_040, msPerPlace: 10 }, '4 places in 40 ms');
    assert.deepEqual(paced(got, 1, 1_060), { movedAt: 1_060, msPerPlace: 15 }, 'averaged with the last estimate (20 ms for this place)');
    assert.equal(dueIn(3, { movedAt: 0 }, 5), undefined, 'no pace known yet');
    assert.equal(dueIn(3, { movedAt: 1_040, msPerPlace: 10 }, 1_040), 20, 'half of the 40 ms until its turn: 3 places, then the holder');
    assert.equal(dueIn(0, { movedAt: 1_040, msPerPlace: 10 }, 1_046), 2, 'first in line: the holder is due in 4 ms');
    assert.equal(dueIn(0, { movedAt: 1_040, msPerPlace: 10 }, 1_050), undefined, 'overdue (a long hold): the back-off decides, no fast polls');
  });

  it('sees the way clear when no one holds what blocked it (then its attempt takes from the front of the line)', () => {
    const w: Watched = { version: 1, waiter: 'me', blockers: [{ name: 'a', entry: entry('h1') }] };
    assert.equal(seesFree(w, seenAt(w, 2, {}).view), true);
    assert.equal(seesFree(w, seenAt(w, 2, { '$.l."a".n': 'h2' }).view), false, 'someone else took it');
    const s: Watched = { version: 1, blockers: [{ name: 's', entry: entry('h1'), shared: true }] };
    assert.equal(seesFree(s, seenAt(s, 2, { '$.s."s".h[*].n': ['h2'] }).view), false);
    assert.equal(seesFree({ version: 1, blockers: [] }, new Map()), false, 'nothing to judge by: decide from a read');
    const behind: Watched = { version: 1, waiter: 'me', blockers: [], ahead: [{ name: 'a', intent: intent('w1') }] };
    assert.ok(watchPaths([behind]).includes('$.l."a".n'), 'a waiter blocked only by the line watches the holder too');
    assert.equal(seesFree(behind, seenAt(behind, 2, { '$.q."a"[*].n': ['me'] }).view), true);
    assert.equal(seesFree(behind, seenAt(behind, 2, { '$.l."a".n': 'w1lease', '$.q."a"[*].n': ['me'] }).view), false, 'the one in front took it');
  });
});
