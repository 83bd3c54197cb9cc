import assert from 'node:assert/strict';
import { emptyDocument, MAX_TOMBSTONES, type Entry, type LockDocument, type StoredOwner } from '../../lib/document.js';
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
});
