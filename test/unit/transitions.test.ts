import assert from 'node:assert/strict';
import { emptyDocument, MAX_QUEUE, MAX_TOMBSTONES, type Entry, type LockDocument, type StoredOwner } from '../../lib/document.js';
import { defineLockTypes } from '../../lib/names.js';
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

  describe('conflict rules', () => {
    const carol: StoredOwner = { ...alice, p: 300, s: 7, t: 'c' };
    const { conflicts: rules } = defineLockTypes({
      singletons: ['box_update', 'mail_restart'],
      prefixes: { appTask: 'app_task_', appBackup: 'app_backup_' },
      conflicts: { box_update: ['app_task_*'] },
    });
    const R = { rules };
    const queue = (doc: LockDocument, names: string[], owner: StoredOwner, waiter: string, extra: Partial<T.EnqueueInput> = {}) =>
      T.enqueue(doc, { names, waiter, owner, now: 1000, ttlMs: 100, ...extra }).doc;
    const rulesHeld = (doc: LockDocument, names: string[]) => T.conflicting(doc, names, rules).held.map((b) => [b.name, b.entry.n, b.rule]);

    it('a holder of one side blocks the other side, both ways, naming the holder and the rule', () => {
      const tasks = held(emptyDocument(), ['app_task_a'], alice, 'na', 3);
      const r = take(tasks, ['box_update'], bob, 'nb', 4, R);
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.blockers.map((b) => [b.name, b.entry.n, b.rule]), [['app_task_a', 'na', 'box_update <-> app_task_*']]);
      const box = held(emptyDocument(), ['box_update'], bob, 'nb', 3);
      const back = take(box, ['app_task_z'], alice, 'na', 4, R);
      assert.deepEqual(!back.ok && back.blockers.map((b) => [b.name, b.rule]), [['box_update', 'box_update <-> app_task_*']]);
      assert.ok(take(box, ['app_backup_z', 'mail_restart'], alice, 'na', 4, R).ok, 'names no rule sets against box_update');
      assert.ok(take(tasks, ['box_update'], bob, 'nb', 4).ok, 'without rules, no conflict');
    });

    it('the names of one acquisition never exclude each other; a name\'s own holders block by name only', () => {
      const r = take(emptyDocument(), ['box_update', 'app_task_a', 'app_task_b'], bob, 'nb', 3, R);
      assert.ok(r.ok);
      const again = take(r.doc, ['box_update'], carol, 'nc', 4, R);
      assert.deepEqual(!again.ok && again.blockers.map((b) => [b.name, b.rule ?? 'by name']).sort(), [
        ['app_task_a', 'box_update <-> app_task_*'],
        ['app_task_b', 'box_update <-> app_task_*'],
        ['box_update', 'by name'],
      ]);
    });

    it('an expired holder or one judged dead does not block: it is taken over (removed and recorded) in the same write', () => {
      const expiring = T.acquire(emptyDocument(), { names: ['app_task_a'], typeOf, owner: alice, nonce: 'na', token: 3, now: 0, ttlMs: 500 });
      assert.ok(expiring.ok);
      let doc = held(expiring.doc, ['app_task_b'], alice, 'nb', 4);
      assert.deepEqual(rulesHeld(doc, ['box_update']).map(([n]) => n), ['app_task_a', 'app_task_b'], 'conflicting() lists them for the caller to judge');
      assert.equal(take(doc, ['box_update'], bob, 'nx', 5, { ...R, now: 500 }).ok, false, 'app_task_b is live');
      const r = take(doc, ['box_update'], bob, 'nx', 5, { ...R, now: 500, dead: new Set(['app_task_b']) });
      assert.ok(r.ok);
      assert.deepEqual(r.removed.map((x) => [x.name, x.why]), [['app_task_a', 'expired'], ['app_task_b', 'reaped']]);
      assert.deepEqual(Object.keys(r.doc.l), ['box_update']);
      assert.deepEqual(r.doc.r?.map((t) => [t.k, t.n, t.w]), [['app_task_a', 'na', 'expired'], ['app_task_b', 'nb', 'reaped']]);
      doc = r.doc;
      // The dead holder's late release says why its lease is gone.
      assert.deepEqual(T.release(doc, ['app_task_b'], 'nb').missing, [{ name: 'app_task_b', reason: 'reaped' }]);
    });

    it('rules hold whatever the modes: shared holders of one side block the other side, shared or not', () => {
      let doc = take(emptyDocument(), ['app_task_a'], alice, 'na', 3, { mode: 'shared' });
      assert.ok(doc.ok);
      doc = take(doc.doc, ['app_task_a'], carol, 'nc', 4, { mode: 'shared', ...R });
      assert.ok(doc.ok, 'holders of one name share it: a rule relates different names');
      for (const mode of ['exclusive', 'shared'] as const) {
        const r = take(doc.doc, ['box_update'], bob, 'nb', 5, { mode, ...R });
        assert.deepEqual(!r.ok && r.blockers.map((b) => [b.name, b.entry.n, b.shared, b.rule]), [
          ['app_task_a', 'na', true, 'box_update <-> app_task_*'],
          ['app_task_a', 'nc', true, 'box_update <-> app_task_*'],
        ], mode);
      }
      const r = take(doc.doc, ['box_update'], bob, 'nb', 5, { ...R, deadShares: new Set(['na', 'nc']) });
      assert.ok(r.ok, 'dead shared holders are taken over');
      assert.equal(r.doc.s, undefined);
      const box = take(emptyDocument(), ['box_update'], bob, 'nb', 3, { mode: 'shared', limit: 2 });
      assert.ok(box.ok);
      assert.equal(take(box.doc, ['app_task_a'], alice, 'na', 4, { mode: 'shared', ...R }).ok, false, 'a semaphore holder of box_update excludes app tasks too');
    });

    it('a shared acquisition of a name held shared by others is blocked by those holders when another of its names conflicts with it', () => {
      const doc = take(emptyDocument(), ['app_task_a'], alice, 'na', 3, { mode: 'shared' });
      assert.ok(doc.ok);
      const r = take(doc.doc, ['app_task_a', 'box_update'], bob, 'nb', 4, { mode: 'shared', ...R });
      assert.deepEqual(!r.ok && r.blockers.map((b) => [b.name, b.entry.n, b.rule]), [['app_task_a', 'na', 'box_update <-> app_task_*']]);
    });

    it('a waiter in line for one side stops later acquisitions of the other side (unless barge); the waiter itself is not stopped by later ones', () => {
      let doc = held(emptyDocument(), ['app_task_a'], alice, 'na', 3);
      doc = queue(doc, ['box_update'], bob, 'box');
      const later = take(doc, ['app_task_b'], carol, 'nc', 4, R);
      assert.equal(later.ok, false);
      assert.deepEqual(!later.ok && [later.blockers, later.ahead.map((a) => [a.name, a.intent.n, a.position, a.rule])], [[], [['box_update', 'box', 1, 'box_update <-> app_task_*']]]);
      assert.ok(take(doc, ['app_task_b'], carol, 'nc', 4, { ...R, barge: true }).ok);
      // An app task that waits gets in line after the box update: it waits for it too.
      doc = queue(doc, ['app_task_b'], carol, 'task');
      const task = take(doc, ['app_task_b'], carol, 'nc', 4, { ...R, waiter: 'task' });
      assert.deepEqual(!task.ok && task.ahead.map((a) => a.intent.n), ['box']);
      // The box update waits only for the running task, not for the task waiting behind it.
      const box = take(doc, ['box_update'], bob, 'nb', 4, { ...R, waiter: 'box' });
      assert.deepEqual(!box.ok && [box.blockers.map((b) => b.name), box.ahead], [['app_task_a'], []]);
      doc = T.release(doc, ['app_task_a'], 'na').doc;
      const won = take(doc, ['box_update'], bob, 'nb', 5, { ...R, waiter: 'box' });
      assert.ok(won.ok, 'once the running task is gone, the box update goes first');
      assert.deepEqual(won.doc.q && Object.keys(won.doc.q), ['app_task_b'], 'the task still waits, now for the holder');
      const after = take(won.doc, ['app_task_b'], carol, 'nc', 6, { ...R, waiter: 'task' });
      assert.deepEqual(!after.ok && [after.blockers.map((b) => [b.name, b.rule]), after.ahead], [[['box_update', 'box_update <-> app_task_*']], []]);
    });

    it('a waiter of the other side that got in line first goes first', () => {
      let doc = queue(emptyDocument(), ['app_task_a'], alice, 'task');
      doc = queue(doc, ['box_update'], bob, 'box');
      const box = take(doc, ['box_update'], bob, 'nb', 3, { ...R, waiter: 'box' });
      assert.deepEqual(!box.ok && box.ahead.map((a) => [a.name, a.intent.n, a.rule]), [['app_task_a', 'task', 'box_update <-> app_task_*']]);
      assert.ok(take(doc, ['app_task_a'], alice, 'na', 3, { ...R, waiter: 'task' }).ok);
    });

    it('expired waiters and waiters judged dead on the other side do not block, and leave with the acquisition', () => {
      let doc = queue(emptyDocument(), ['box_update'], carol, 'dead');
      doc = queue(doc, ['box_update'], bob, 'gone', { now: 800 }); // expires at 900
      assert.deepEqual(doc.q!.box_update!.map((i) => i.n), ['dead', 'gone']);
      const r = take(doc, ['app_task_a'], alice, 'na', 3, { ...R, deadWaiters: new Set(['dead']) });
      assert.ok(r.ok);
      assert.equal(r.doc.q, undefined, 'both dropped');
      assert.equal(take(doc, ['app_task_a'], alice, 'na', 3, R).ok, false, 'the live one blocks');
    });

    it('enqueue orders waiters of different names by the write that put them in line, even within one ms or after a clock step back', () => {
      let doc = queue(emptyDocument(), ['app_task_a'], alice, 'w1', { now: 1000 });
      doc = queue(doc, ['box_update'], bob, 'w2', { now: 1000 });
      doc = queue(doc, ['mail_restart'], carol, 'w3', { now: 900 });
      assert.deepEqual([doc.q!.app_task_a![0]!.a, doc.q!.box_update![0]!.a, doc.q!.mail_restart![0]!.a], [1000, 1001, 1002]);
      // w2 is behind w1: it waits for it; w1 does not wait for w2.
      assert.equal(take(doc, ['box_update'], bob, 'n', 3, { ...R, waiter: 'w2', now: 950 }).ok, false);
      assert.ok(take(doc, ['app_task_a'], alice, 'n', 3, { ...R, waiter: 'w1', now: 950 }).ok);
    });
  });

  describe('shared locks and semaphores (groups of holders)', () => {
    const carol: StoredOwner = { ...alice, p: 300, s: 7, t: 'c' };
    const sh = { mode: 'shared' as const };
    const sem = (limit: number) => ({ mode: 'shared' as const, limit });
    function join(doc: LockDocument, names: string[], owner: StoredOwner, nonce: string, token: number, extra: Partial<T.AcquireInput> = sh) {
      const r = take(doc, names, owner, nonce, token, extra);
      assert.ok(r.ok, `${nonce} should join`);
      return r.doc;
    }
    const holders = (doc: LockDocument, name: string) => (doc.s?.[name]?.h ?? []).map((h) => h.n);

    it('many shared holders at once, each with its own nonce, token and owner; none in l', () => {
      let doc = join(emptyDocument(), ['db_1'], alice, 'na', 3, { ...sh, ttlMs: 50 });
      doc = join(doc, ['db_1'], bob, 'nb', 4);
      assert.deepEqual(doc.s?.db_1, { t: 'db', h: [{ o: alice, f: 3, n: 'na', a: 1000, e: 1050 }, { o: bob, f: 4, n: 'nb', a: 1000 }] });
      assert.equal(doc.l.db_1, undefined);
      assert.equal(doc.s?.db_1?.c, undefined, 'a shared lock is a group without a limit');
    });

    it('exclusive excludes shared and shared excludes exclusive', () => {
      const shared = join(emptyDocument(), ['db_1'], alice, 'na', 3);
      const r = take(shared, ['db_1'], bob, 'nb', 4);
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.blockers.map((b) => b.entry.n), ['na']);
      const exclusive = held(emptyDocument(), ['db_1'], bob, 'nb', 3);
      const s = take(exclusive, ['db_1'], alice, 'na', 4, sh);
      assert.equal(s.ok, false);
      assert.deepEqual(!s.ok && s.blockers.map((b) => b.entry.n), ['nb']);
    });

    it('a semaphore admits up to its limit, stores the limit, and reports the holders when full', () => {
      let doc = join(emptyDocument(), ['backup'], alice, 'n1', 3, sem(2));
      doc = join(doc, ['backup'], bob, 'n2', 4, sem(2));
      assert.equal(doc.s?.backup?.c, 2);
      const r = take(doc, ['backup'], carol, 'n3', 5, sem(2));
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.blockers.map((b) => b.entry.n), ['n1', 'n2']);
      assert.equal(!r.ok && r.conflicts, undefined);
    });

    it('a different limit (or shared vs semaphore) while the group has live holders is a conflict; none once it is empty', () => {
      const doc = join(emptyDocument(), ['backup'], alice, 'n1', 3, sem(2));
      for (const extra of [sem(3), sh]) {
        const r = take(doc, ['backup'], bob, 'n2', 4, extra);
        assert.equal(r.ok, false);
        assert.deepEqual(!r.ok && r.conflicts, [{ name: 'backup', stored: 2, asked: (extra as { limit?: number }).limit }]);
      }
      const empty = T.release(doc, ['backup'], 'n1').doc;
      assert.equal(empty.s, undefined, 'the group goes with its last holder, and its limit with it');
      assert.equal(join(empty, ['backup'], bob, 'n2', 4, sem(3)).s?.backup?.c, 3);
      // A group whose only holder expired has no live holder: no conflict, the new limit applies.
      const expiring = join(emptyDocument(), ['backup'], alice, 'n1', 3, { ...sem(2), ttlMs: 10 });
      const r = T.acquire(expiring, { names: ['backup'], typeOf, owner: bob, nonce: 'n2', token: 4, now: 2000, ...sem(5) });
      assert.ok(r.ok);
      assert.deepEqual(r.doc.s?.backup?.h.map((h) => h.n), ['n2']);
      assert.equal(r.doc.s?.backup?.c, 5);
      assert.deepEqual(r.removed.map((x) => [x.name, x.entry.n, x.why]), [['backup', 'n1', 'expired']]);
    });

    it('dead and expired shared holders free their place, with a tombstone each', () => {
      let doc = join(emptyDocument(), ['backup'], alice, 'n1', 3, sem(2));
      doc = join(doc, ['backup'], bob, 'n2', 4, { ...sem(2), ttlMs: 10 });
      const r = T.acquire(doc, { names: ['backup'], typeOf, owner: carol, nonce: 'n3', token: 5, now: 1500, deadShares: new Set(['n1']), ...sem(2) });
      assert.ok(r.ok);
      assert.deepEqual(holders(r.doc, 'backup'), ['n3']);
      assert.deepEqual(r.doc.r?.map((t) => [t.n, t.w]), [['n1', 'reaped'], ['n2', 'expired']]);
      assert.equal(T.release(r.doc, ['backup'], 'n1').missing[0]?.reason, 'reaped');
    });

    it('an exclusive acquisition takes over a group whose holders are all dead or expired', () => {
      const doc = join(join(emptyDocument(), ['db_1'], alice, 'na', 3), ['db_1'], bob, 'nb', 4, { ...sh, ttlMs: 10 });
      const r = T.acquire(doc, { names: ['db_1'], typeOf, owner: carol, nonce: 'nc', token: 5, now: 2000, deadShares: new Set(['na']) });
      assert.ok(r.ok);
      assert.equal(r.doc.s, undefined);
      assert.equal(r.doc.l.db_1?.n, 'nc');
    });

    it('release removes only its own holder entry by nonce; others report taken', () => {
      const doc = join(join(emptyDocument(), ['db_1', 'db_2'], alice, 'na', 3), ['db_1'], bob, 'nb', 4);
      const r = T.release(doc, ['db_1', 'db_2'], 'na');
      assert.deepEqual(r.released, ['db_1', 'db_2']);
      assert.deepEqual(holders(r.doc, 'db_1'), ['nb']);
      assert.equal(r.doc.s?.db_2, undefined);
      const again = T.release(r.doc, ['db_1'], 'na');
      assert.deepEqual(again.missing.map((m) => [m.name, m.reason, m.heldBy?.n]), [['db_1', 'taken', 'nb']]);
      assert.equal(again.doc, r.doc, 'nothing to write');
    });

    it('extend renews only its own holder entry and does not revive an expired one', () => {
      const doc = join(join(emptyDocument(), ['db_1'], alice, 'na', 3, { ...sh, ttlMs: 100 }), ['db_1'], bob, 'nb', 4, { ...sh, ttlMs: 100 });
      const r = T.extend(doc, ['db_1'], 'na', 5000, 1050);
      assert.deepEqual(r.doc.s?.db_1?.h.map((h) => [h.n, h.e]), [['na', 5000], ['nb', 1100]]);
      assert.deepEqual(T.extend(doc, ['db_1'], 'na', undefined, 1050).doc.s?.db_1?.h[0]?.e, undefined);
      assert.deepEqual(T.extend(doc, ['db_1'], 'na', 5000, 1200).missing, [{ name: 'db_1', reason: 'expired' }]);
    });

    it('removeWhere (releaseByOwner, reapDead, releaseAll) removes matching shared holders and empties groups', () => {
      let doc = join(emptyDocument(), ['db_1'], alice, 'na', 3);
      doc = join(doc, ['db_1'], bob, 'nb', 4);
      doc = join(doc, ['db_2'], alice, 'na2', 5, sem(3));
      const r = T.removeWhere(doc, (_, e) => e.o.t === 'a', 'owner', 2000);
      assert.deepEqual(r.removed.map((x) => [x.name, x.entry.n]), [['db_1', 'na'], ['db_2', 'na2']]);
      assert.deepEqual(holders(r.doc, 'db_1'), ['nb']);
      assert.equal(r.doc.s?.db_2, undefined);
      assert.equal(T.removeWhere(r.doc, () => true, 'wiped', 2000).doc.s, undefined);
    });

    it('an exclusive waiter in front stops a stream of shared acquisitions; it gets the name once the holders leave', () => {
      let doc = join(emptyDocument(), ['db_1'], alice, 'na', 3);
      doc = T.enqueue(doc, { names: ['db_1'], waiter: 'wx', owner: bob, now: 1000, ttlMs: 100 }).doc;
      const r = take(doc, ['db_1'], carol, 'nc', 4, sh);
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.ahead.map((a) => a.intent.n), ['wx']);
      assert.ok(take(doc, ['db_1'], carol, 'nc', 4, { ...sh, barge: true }).ok, 'barge ignores the line');
      assert.equal(take(doc, ['db_1'], bob, 'nb', 4, { waiter: 'wx' }).ok, false, 'still blocked by the shared holder');
      const freed = T.release(doc, ['db_1'], 'na').doc;
      assert.ok(take(freed, ['db_1'], bob, 'nb', 5, { waiter: 'wx' }).ok);
    });

    it('shared intents record m and c; a shared waiter in front does not block another shared acquisition, a semaphore counts it', () => {
      const x = held(emptyDocument(), ['db_1'], alice, 'na', 3);
      let doc = T.enqueue(x, { names: ['db_1'], waiter: 'ws', owner: bob, now: 1000, ttlMs: 100, mode: 'shared' }).doc;
      assert.deepEqual(doc.q?.db_1?.map((i) => [i.m, i.c]), [['s', undefined]]);
      doc = T.release(doc, ['db_1'], 'na').doc;
      assert.ok(take(doc, ['db_1'], carol, 'nc', 4, sh).ok, 'unlimited shared: the shared waiter in front needs nothing it takes');
      const semQ = T.enqueue(T.release(held(emptyDocument(), ['bk'], alice, 'na', 3), ['bk'], 'na').doc, { names: ['bk'], waiter: 'ws', owner: bob, now: 1000, ttlMs: 100, mode: 'shared', limit: 1 }).doc;
      assert.deepEqual(semQ.q?.bk?.map((i) => [i.m, i.c]), [['s', 1]]);
      const r = take(semQ, ['bk'], carol, 'nc', 4, sem(1));
      assert.equal(r.ok, false, 'the semaphore place is the waiter\'s');
      assert.deepEqual(!r.ok && r.ahead.map((a) => a.intent.n), ['ws']);
      assert.ok(take(semQ, ['bk'], bob, 'nb', 4, { ...sem(1), waiter: 'ws' }).ok);
      assert.ok(take(semQ, ['bk'], carol, 'nc', 4, sem(2)).ok, 'with two places, one for the waiter and one free');
    });

    it('a waiting shared request waits behind an exclusive waiter in front of it', () => {
      let doc = held(emptyDocument(), ['db_1'], alice, 'na', 3);
      doc = T.enqueue(doc, { names: ['db_1'], waiter: 'wx', owner: bob, now: 1000, ttlMs: 100 }).doc;
      doc = T.enqueue(doc, { names: ['db_1'], waiter: 'ws', owner: carol, now: 1000, ttlMs: 100, mode: 'shared' }).doc;
      doc = T.release(doc, ['db_1'], 'na').doc;
      const r = take(doc, ['db_1'], carol, 'nc', 4, { ...sh, waiter: 'ws' });
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && r.ahead.map((a) => a.intent.n), ['wx']);
    });
  });
});
