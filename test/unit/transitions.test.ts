import assert from 'node:assert/strict';
import { emptyDocument, MAX_QUEUE, MAX_TOMBSTONES, type Entry, type LockDocument, type StoredOwner } from '../../lib/document.js';
import * as T from '../../lib/transitions.js';

const alice: StoredOwner = { h: 'box', b: 'boot', ns: 'pid:[1]', p: 100, s: 5, u: 'root', t: 'a' };
const bob: StoredOwner = { ...alice, p: 200, s: 6, t: 'b' };
const typeOf = (n: string) => n.replace(/_[^_]*$/, '');

function take(doc: LockDocument, names: string[], owner: StoredOwner, nonce: string, token: number, extra: Partial<T.AcquireInput> = {}) {
  return T.acquire(doc, { names, typeOf, owner, nonce, token, now: 1000, ...extra });
}
function held(doc: LockDocument, names: string[], owner: StoredOwner, nonce: string, token: number): LockDocument {
  const r = take(doc, names, owner, nonce, token);
  assert.ok(r.ok);
  return r.doc;
}

describe('transitions (pure)', () => {
  describe('acquire', () => {
    it('writes one compact entry per name with the token, nonce, owner and time', () => {
      const r = take(emptyDocument(), ['app_task_1', 'box_update'], alice, 'n1', 7, { ttlMs: 50 });
      assert.ok(r.ok);
      const entry: Entry = { t: 'app_task', o: alice, f: 7, n: 'n1', a: 1000, e: 1050 };
      assert.deepEqual(r.doc.l.app_task_1, entry);
      assert.deepEqual(r.doc.l.box_update, { ...entry, t: 'box' });
      assert.deepEqual(r.removed, []);
      assert.equal(r.doc.r, undefined, 'no tombstones when nothing was taken over');
    });

    it('takes none when any name is held, and reports exactly the blockers', () => {
      const doc = held(emptyDocument(), ['b'], bob, 'nb', 3);
      const r = take(doc, ['a', 'b', 'c'], alice, 'na', 4);
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.blockers.map((x) => [x.name, x.entry.n]), [['b', 'nb']]);
    });

    it('does not mutate its input', () => {
      const doc = held(emptyDocument(), ['a'], bob, 'nb', 3);
      const copy = structuredClone(doc);
      take(doc, ['c'], alice, 'na', 4);
      T.release(doc, ['a'], 'nb');
      T.removeWhere(doc, () => true, 'wiped', 5);
      assert.deepEqual(doc, copy);
    });

    it('treats names that are Object.prototype members as ordinary names', () => {
      const r = take(emptyDocument(), ['constructor', 'toString', 'hasOwnProperty'], alice, 'na', 3);
      assert.ok(r.ok, 'free, not held by Object.prototype');
      assert.equal(take(r.doc, ['toString'], bob, 'nb', 4).ok, false);
      assert.deepEqual(T.release(r.doc, ['constructor', 'toString', 'hasOwnProperty'], 'na').released, ['constructor', 'toString', 'hasOwnProperty']);
      assert.deepEqual(T.release(emptyDocument(), ['valueOf'], 'na').missing, [{ name: 'valueOf', reason: 'released' }]);
    });

    it('is not re-entrant: the same owner with a new nonce is blocked', () => {
      const doc = held(emptyDocument(), ['a'], alice, 'n1', 3);
      assert.equal(take(doc, ['a'], alice, 'n2', 4).ok, false);
    });

    it('treats an expired entry as free and records it as expired', () => {
      const doc = T.acquire(emptyDocument(), { names: ['a'], typeOf, owner: bob, nonce: 'nb', token: 3, now: 0, ttlMs: 500 });
      assert.ok(doc.ok);
      const r = take(doc.doc, ['a'], alice, 'na', 4, { now: 500 });
      assert.ok(r.ok);
      assert.equal(r.doc.l.a?.n, 'na');
      assert.deepEqual(r.removed.map((x) => [x.name, x.why]), [['a', 'expired']]);
      assert.deepEqual(r.doc.r, [{ k: 'a', n: 'nb', w: 'expired', at: 500 }]);
      assert.equal(take(doc.doc, ['a'], alice, 'na', 4, { now: 499 }).ok, false, 'one ms before expiry it is still held');
    });

    it('takes over names whose holder the caller judged dead, and only those', () => {
      const doc = held(held(emptyDocument(), ['a'], bob, 'nb', 3), ['b'], bob, 'nb2', 4);
      const r = take(doc, ['a', 'b'], alice, 'na', 5, { dead: new Set(['a']) });
      assert.equal(r.ok, false);
      const ok = take(doc, ['a'], alice, 'na', 5, { dead: new Set(['a']) });
      assert.ok(ok.ok);
      assert.deepEqual(ok.doc.r, [{ k: 'a', n: 'nb', w: 'reaped', at: 1000 }]);
      assert.equal(ok.doc.l.b?.n, 'nb2');
    });
  });

  describe('release', () => {
    it('removes only the entries held under the nonce', () => {
      const doc = held(held(emptyDocument(), ['a', 'b'], alice, 'na', 3), ['c'], bob, 'nb', 4);
      const r = T.release(doc, ['a', 'b'], 'na');
      assert.deepEqual(r.released, ['a', 'b']);
      assert.deepEqual(r.missing, []);
      assert.deepEqual(Object.keys(r.doc.l), ['c']);
    });

    it('reports a name held by another nonce as taken, and leaves it', () => {
      const doc = held(emptyDocument(), ['a'], bob, 'nb', 3);
      const r = T.release(doc, ['a'], 'forged');
      assert.deepEqual(r.released, []);
      assert.deepEqual(r.missing, [{ name: 'a', reason: 'taken', heldBy: doc.l.a }]);
      assert.equal(r.doc, doc, 'nothing to write');
    });

    it('reports a free name as released, or with the reason a tombstone records', () => {
      const doc = held(emptyDocument(), ['a', 'b'], alice, 'na', 3);
      const wiped = T.removeWhere(doc, (n) => n === 'a', 'wiped', 9).doc;
      const r = T.release(wiped, ['a', 'b'], 'na');
      assert.deepEqual(r.released, ['b']);
      assert.deepEqual(r.missing, [{ name: 'a', reason: 'wiped' }]);
      assert.deepEqual(T.release(emptyDocument(), ['z'], 'na').missing, [{ name: 'z', reason: 'released' }]);
    });

    it('after release and re-acquire by another, says taken, not released', () => {
      let doc = held(emptyDocument(), ['a'], alice, 'na', 3);
      doc = T.release(doc, ['a'], 'na').doc;
      doc = held(doc, ['a'], bob, 'nb', 5);
      assert.equal(T.release(doc, ['a'], 'na').missing[0]?.reason, 'taken');
    });
  });

  describe('removeWhere (releaseAll, releaseByOwner, reapDead)', () => {
    it('removes matching entries, keeps the rest, and records why', () => {
      const doc = held(held(emptyDocument(), ['a', 'b'], alice, 'na', 3), ['c'], bob, 'nb', 4);
      const r = T.removeWhere(doc, (_, e) => e.o.t === 'a', 'owner', 10);
      assert.deepEqual(r.removed.map((x) => x.name), ['a', 'b']);
      assert.deepEqual(Object.keys(r.doc.l), ['c']);
      assert.deepEqual(r.doc.r?.map((t) => [t.k, t.n, t.w]), [['a', 'na', 'owner'], ['b', 'na', 'owner']]);
    });

    it('removes in name order, whatever order the keys are stored in', () => {
      const doc = held(held(held(emptyDocument(), ['b'], alice, 'n1', 3), ['10'], alice, 'n2', 4), ['a'], alice, 'n3', 5);
      assert.deepEqual(Object.keys(doc.l), ['10', 'b', 'a'], 'JavaScript puts an integer-like key first');
      assert.deepEqual(T.removeWhere(doc, () => true, 'wiped', 10).removed.map((x) => x.name), ['10', 'a', 'b']);
    });

    it('returns the same document when nothing matches (no write needed)', () => {
      const doc = held(emptyDocument(), ['a'], alice, 'na', 3);
      const r = T.removeWhere(doc, () => false, 'reaped', 10);
      assert.equal(r.doc, doc);
      assert.deepEqual(r.removed, []);
    });

    it('keeps at most MAX_TOMBSTONES records, newest last', () => {
      let doc = emptyDocument();
      for (let i = 0; i < MAX_TOMBSTONES + 5; i++) {
        doc = held(doc, [`n${i}`], alice, `x${i}`, i + 1);
        doc = T.removeWhere(doc, () => true, 'wiped', i).doc;
      }
      assert.equal(doc.r?.length, MAX_TOMBSTONES);
      assert.equal(doc.r?.at(-1)?.k, `n${MAX_TOMBSTONES + 4}`);
      assert.equal(doc.r?.[0]?.k, 'n5');
    });
  });

  describe('extend', () => {
    it('sets or clears the expiry of the names held under the nonce', () => {
      const doc = held(emptyDocument(), ['a'], alice, 'na', 3);
      const later = T.extend(doc, ['a'], 'na', 5000, 1000);
      assert.deepEqual(later.missing, []);
      assert.equal(later.doc.l.a?.e, 5000);
      assert.equal(T.extend(later.doc, ['a'], 'na', undefined, 1000).doc.l.a?.e, undefined);
    });

    it('does not revive an expired lease, and reports names held by others', () => {
      const doc = T.acquire(emptyDocument(), { names: ['a'], typeOf, owner: alice, nonce: 'na', token: 1, now: 0, ttlMs: 10 });
      assert.ok(doc.ok);
      assert.deepEqual(T.extend(doc.doc, ['a'], 'na', 9999, 10).missing, [{ name: 'a', reason: 'expired' }]);
      assert.equal(T.extend(doc.doc, ['a'], 'other', 9999, 5).missing[0]?.reason, 'taken');
    });
  });

  it('isExpired uses the given time only', () => {
    const e: Entry = { t: 'a', o: alice, f: 1, n: 'n', a: 0, e: 100 };
    assert.equal(T.isExpired(e, 99), false);
    assert.equal(T.isExpired(e, 100), true);
    assert.equal(T.isExpired({ ...e, e: undefined }, 1e15), false);
  });

  describe('fair waiting (lines of waiters)', () => {
    const carol: StoredOwner = { ...alice, p: 300, s: 7, t: 'c' };
    const line = (doc: LockDocument, name: string) => (doc.q?.[name] ?? []).map((i) => i.n);
    function queue(doc: LockDocument, names: string[], owner: StoredOwner, waiter: string, now = 1000, extra: Partial<T.EnqueueInput> = {}) {
      const r = T.enqueue(doc, { names, waiter, owner, now, ttlMs: 100, ...extra });
      assert.ok(r.changed);
      return r.doc;
    }

    it('puts a waiter at the back of every line at once, with its expiry', () => {
      let doc = held(emptyDocument(), ['x'], alice, 'h', 1);
      doc = queue(doc, ['x'], bob, 'w1');
      doc = queue(doc, ['x', 'y'], carol, 'w2', 1001);
      assert.deepEqual(line(doc, 'x'), ['w1', 'w2']);
      assert.deepEqual(line(doc, 'y'), ['w2']);
      assert.deepEqual(doc.q!.y![0], { n: 'w2', o: carol, a: 1001, e: 1101 });
      assert.deepEqual(T.waiters(doc).map((w) => [w.id, w.names]), [['w1', ['x']], ['w2', ['x', 'y']]]);
    });

    it('does not write again while the intent has half its time left; renews it past half', () => {
      const doc = queue(emptyDocument(), ['x'], bob, 'w1');
      assert.equal(T.enqueue(doc, { names: ['x'], waiter: 'w1', owner: bob, now: 1040, ttlMs: 100 }).changed, false);
      const r = T.enqueue(doc, { names: ['x'], waiter: 'w1', owner: bob, now: 1060, ttlMs: 100 });
      assert.ok(r.changed && !r.added);
      assert.equal(r.doc.q!.x![0]!.e, 1160);
      assert.equal(r.doc.q!.x![0]!.a, 1000, 'keeps its place and its time in line');
    });

    it('a later acquisition cannot take a free name a waiter is in line for; the waiter can; barge can', () => {
      const doc = queue(emptyDocument(), ['x'], bob, 'w1');
      const later = take(doc, ['x'], carol, 'n2', 2);
      assert.ok(!later.ok);
      assert.deepEqual(later.blockers, []);
      assert.deepEqual(later.ahead.map((a) => [a.name, a.intent.n, a.position]), [['x', 'w1', 1]]);
      const first = take(doc, ['x'], bob, 'n1', 2, { waiter: 'w1' });
      assert.ok(first.ok);
      assert.equal(first.doc.q, undefined, 'its intent left the line in the same write');
      assert.ok(take(doc, ['x'], carol, 'n3', 2, { barge: true }).ok);
    });

    it('serves in line order: the second waiter is blocked by the first, not by those behind it', () => {
      let doc = queue(emptyDocument(), ['x'], alice, 'w1');
      doc = queue(doc, ['x'], bob, 'w2');
      doc = queue(doc, ['x'], carol, 'w3');
      const second = take(doc, ['x'], bob, 'n', 2, { waiter: 'w2' });
      assert.ok(!second.ok);
      assert.deepEqual(second.ahead.map((a) => a.intent.n), ['w1']);
      assert.ok(!take(doc, ['x'], alice, 'n', 2).ok, 'the first waiter\'s owner without its waiter id is a later acquisition');
      const first = take(doc, ['x'], alice, 'n1', 2, { waiter: 'w1' });
      assert.ok(first.ok);
      const next = take(first.doc, ['x'], bob, 'n', 3, { waiter: 'w2' });
      assert.ok(!next.ok);
      assert.deepEqual([next.blockers.map((b) => b.entry.n), next.ahead], [['n1'], []], 'now only the holder is in its way');
    });

    it('a multi-name waiter reserves all its names: single-name traffic on any of them waits behind it', () => {
      let doc = held(emptyDocument(), ['app_task_a'], alice, 'h', 1);
      doc = queue(doc, ['box_update', 'app_task_a', 'app_task_b'], bob, 'box');
      for (const n of ['box_update', 'app_task_a', 'app_task_b']) assert.ok(!take(doc, [n], carol, 'c', 2).ok, n);
      // The holder releases: the box update takes all three.
      doc = T.release(doc, ['app_task_a'], 'h').doc;
      const r = take(doc, ['box_update', 'app_task_a', 'app_task_b'], bob, 'b', 3, { waiter: 'box' });
      assert.ok(r.ok);
      assert.equal(r.doc.q, undefined);
    });

    it('expired intents and intents of waiters judged dead do not block, and leave with the next acquisition', () => {
      let doc = queue(emptyDocument(), ['x'], alice, 'dead', 1000);
      doc = queue(doc, ['x', 'y'], bob, 'old', 800); // expires at 900
      assert.ok(!take(doc, ['x'], carol, 'c', 2).ok);
      const r = take(doc, ['x'], carol, 'c', 2, { deadWaiters: new Set(['dead']) });
      assert.ok(r.ok);
      assert.equal(r.doc.q, undefined, 'both gone, from every line');
      // enqueue drops them too
      const q = T.enqueue(doc, { names: ['x'], waiter: 'new', owner: carol, now: 1000, ttlMs: 100, deadWaiters: new Set(['dead']) });
      assert.deepEqual(line(q.doc, 'x'), ['new']);
      assert.equal(q.doc.q!.y, undefined);
    });

    it('positions count live waiters only', () => {
      let doc = queue(emptyDocument(), ['x'], alice, 'gone', 800);
      doc = queue(doc, ['x'], bob, 'w1');
      doc = queue(doc, ['x'], carol, 'w2');
      assert.deepEqual(T.waitersAhead(doc, 'x', 'w2', 1000).map((a) => [a.intent.n, a.position]), [['w1', 1]]);
      assert.deepEqual(T.waitersAhead(doc, 'x', undefined, 1000).map((a) => a.position), [1, 2]);
    });

    it('renewWaiters extends the given waiters everywhere and reports those gone', () => {
      const doc = queue(emptyDocument(), ['x', 'y'], bob, 'w1');
      const r = T.renewWaiters(doc, new Set(['w1', 'gone']), 5000);
      assert.deepEqual([r.doc.q!.x![0]!.e, r.doc.q!.y![0]!.e], [5000, 5000]);
      assert.deepEqual(r.missing, ['gone']);
    });

    it('dropWaiters removes intents by match and lines left empty; the same document when none matches', () => {
      let doc = queue(emptyDocument(), ['x', 'y'], bob, 'w1');
      doc = queue(doc, ['x'], carol, 'w2');
      assert.equal(T.dropWaiters(doc, () => false), doc);
      const r = T.dropWaiters(doc, (i) => i.o.p === bob.p);
      assert.deepEqual(r.q, { x: [doc.q!.x![1]] });
      assert.equal(T.dropWaiters(r, () => true).q, undefined);
    });

    it('refuses to grow a line past MAX_QUEUE', () => {
      const doc: LockDocument = { v: 3, l: {}, q: { x: Array.from({ length: MAX_QUEUE }, (_, i) => ({ n: `w${i}`, o: bob, a: 1, e: 5000 })) } };
      const r = T.enqueue(doc, { names: ['x'], waiter: 'late', owner: carol, now: 1000, ttlMs: 100 });
      assert.equal(r.full, 'x');
      assert.equal(r.changed, false);
    });
  });
});
