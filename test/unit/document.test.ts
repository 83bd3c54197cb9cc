import assert from 'node:assert/strict';
import { CorruptDocumentError, FormatError } from '../../lib/errors.js';
import { emptyDocument, parseDocument, serializeDocument, toHolder, toStoredOwner, fromStoredOwner } from '../../lib/document.js';

const entry = { t: 'box_update', o: { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'root' }, f: 3, n: 'nonce', a: 4 };

describe('document (pure)', () => {
  it('round-trips an empty and a full document', () => {
    assert.deepEqual(parseDocument('s', serializeDocument(emptyDocument())), { v: 1, l: {} });
    const doc = { v: 1, l: { box_update: { ...entry, e: 9 } }, r: [{ k: 'x', n: 'm', w: 'reaped', at: 1 }] };
    assert.deepEqual(parseDocument('s', JSON.stringify(doc)), doc);
  });

  it('parses the spaced form MySQL writes back', () => {
    assert.deepEqual(parseDocument('s', '{"v": 1, "l": {}}'), { v: 1, l: {} });
  });

  it('fails with ECORRUPT carrying the exact raw text, for every kind of damage', () => {
    const cases = [
      'not json',
      '',
      'null',
      '[]',
      '{"v":1}',
      '{"v":"1","l":{}}',
      '{"v":0,"l":{}}',
      '{"v":1,"l":[]}',
      `{"v":1,"l":{"box_update":${JSON.stringify({ ...entry, f: -1 })}}}`,
      `{"v":1,"l":{"box_update":${JSON.stringify({ ...entry, extra: 1 })}}}`,
      `{"v":1,"l":{"bad name":${JSON.stringify(entry)}}}`,
      `{"v":1,"l":{"__proto__":${JSON.stringify(entry)}}}`,
      '{"v":1,"l":{},"r":[{"k":"a","n":"b","w":"nope","at":1}]}',
      '{"v":1,"l":{},"junk":true}',
    ];
    for (const raw of cases) {
      assert.throws(
        () => parseDocument('platform', raw),
        (err: unknown) => err instanceof CorruptDocumentError && err.code === 'ECORRUPT' && err.raw === raw && err.issues.length > 0,
        raw,
      );
    }
  });

  it('fails with EFORMAT for a document of a newer format', () => {
    assert.throws(() => parseDocument('s', '{"v":2,"l":{},"whatever":1}'), (err: unknown) => err instanceof FormatError && err.code === 'EFORMAT');
  });

  it('converts owners and entries to their public form and back', () => {
    const owner = { host: 'h', bootId: 'b', pidNs: 'pid:[1]', pid: 1, startTime: 2, user: 'root', taskId: '42' };
    assert.deepEqual(fromStoredOwner(toStoredOwner(owner)), owner);
    const h = toHolder('box_update', { ...entry, e: 10 });
    assert.deepEqual(h, { name: 'box_update', type: 'box_update', owner: fromStoredOwner(entry.o), token: 3, acquiredAt: new Date(4), expiresAt: new Date(10) });
  });
});
