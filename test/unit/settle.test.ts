import assert from 'node:assert/strict';
import type { Entry, LockDocument } from '../../lib/document.js';
import { confirmRelease, settleLost } from '../../lib/settle.js';

const owner = { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'root' };
const entry = (n: string, extra: Partial<Entry> = {}): Entry => ({ t: 'x', o: owner, f: 7, n, a: 100, ...extra });

describe('settling a lost write (pure)', () => {
  it('recognises a lost acquire by its nonce on every name', () => {
    const doc: LockDocument = { v: 1, l: { a: entry('N1'), b: entry('N1') } };
    assert.equal(settleLost(doc, { version: 7, now: 200 }, ['a', 'b'], new Map([['N1', 6]])), 'N1');
    assert.equal(settleLost(doc, { version: 7, now: 200 }, ['a', 'b'], new Map([['N2', 6]])), undefined, 'another nonce is not ours');
  });

  it('does not take a lost acquire whose lease has already run out', () => {
    const doc: LockDocument = { v: 1, l: { a: entry('N1', { e: 150 }) } };
    assert.equal(settleLost(doc, { version: 7, now: 200 }, ['a'], new Map([['N1', 6]])), undefined);
    assert.equal(settleLost(doc, { version: 7, now: 149 }, ['a'], new Map([['N1', 6]])), 'N1');
  });

  it('does not take part of a lost acquire (the rest removed since)', () => {
    const doc: LockDocument = { v: 1, l: { a: entry('N1') } };
    const lost = new Map([['N1', 6]]);
    assert.equal(settleLost(doc, { version: 9, now: 200 }, ['a', 'b'], lost), undefined);
    assert.ok(lost.has('N1'), 'its remnant is still in the document: kept, so it is replaced and cleaned up');
  });

  it('forgets a lost write only once it can no longer apply', () => {
    const empty: LockDocument = { v: 1, l: {} };
    const lost = new Map([['N1', 6]]);
    settleLost(empty, { version: 6, now: 0 }, ['a'], lost);
    assert.ok(lost.has('N1'), 'the version it compares against is still current: it may yet land');
    settleLost(empty, { version: 7, now: 0 }, ['a'], lost);
    assert.equal(lost.size, 0, 'the version moved on without it: it never will');
  });

  it('confirms a lost release only when nothing of the lease is left and nobody else removed it', () => {
    const names = ['a', 'b'];
    assert.deepEqual(confirmRelease({ v: 1, l: {} }, names, 'N1')?.released, names);
    assert.equal(confirmRelease({ v: 1, l: { b: entry('N1') } }, names, 'N1'), undefined, 'still held: not applied');
    assert.deepEqual(confirmRelease({ v: 1, l: { a: entry('OTHER') } }, names, 'N1')?.released, names, 'taken by another after our release');
    const wiped: LockDocument = { v: 1, l: {}, r: [{ k: 'a', n: 'N1', w: 'wiped', at: 5 }] };
    assert.equal(confirmRelease(wiped, names, 'N1'), undefined, 'someone else removed it: release() must report why');
  });
});
