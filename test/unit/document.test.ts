import assert from 'node:assert/strict';
import { CorruptDocumentError, FormatError } from '../../lib/errors.js';
import { emptyDocument, strayOwnerRecords, ownerKey, ownerText, parseDocument, serializeDocument, toHolder, toStoredOwner, fromStoredOwner } from '../../lib/document.js';

const entry = { t: 'box_update', o: { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'root' }, f: 3, n: 'nonce', a: 4 };

describe('document (pure)', () => {
  it('round-trips an empty and a full document', () => {
    assert.deepEqual(parseDocument('s', serializeDocument(emptyDocument())), { v: 3, l: {} });
    const doc = { v: 3, l: { box_update: { ...entry, e: 9 } }, r: [{ k: 'x', n: 'm', w: 'reaped', at: 1 }] };
    assert.deepEqual(parseDocument('s', serializeDocument(doc as never)), doc);
  });

  it('parses the spaced form MySQL writes back', () => {
    assert.deepEqual(parseDocument('s', '{"v": 2, "o": {}, "l": {}}'), { v: 3, l: {} });
  });

  it('stores each owner once (format 2), entries referring to it by key', () => {
    const other = { ...entry.o, p: 2 };
    const doc = { v: 3 as const, l: { a: { ...entry }, b: { ...entry, f: 4 }, c: { ...entry, o: other, f: 5 } } };
    const stored = JSON.parse(serializeDocument(doc));
    assert.deepEqual(Object.keys(stored.o).sort(), [ownerKey(entry.o), ownerKey(other)].sort());
    assert.deepEqual(stored.o[ownerKey(entry.o)], entry.o);
    assert.equal(stored.l.a.o, ownerKey(entry.o));
    assert.equal(stored.l.c.o, ownerKey(other));
    assert.match(ownerKey(entry.o), /^[0-9a-f]{16}$/);
    assert.equal(ownerKey({ ...entry.o }), ownerKey(entry.o), 'the key depends on the owner, not the object');
    assert.notEqual(ownerKey({ ...entry.o, t: '1' }), ownerKey(entry.o));
    assert.equal(ownerText(entry.o), JSON.stringify(entry.o));
    assert.deepEqual(parseDocument('s', serializeDocument(doc)), doc);
  });

  it('reads format 1 (owner inline) and rewrites it as format 3', () => {
    const one = { v: 1, l: { box_update: entry }, r: [{ k: 'x', n: 'm', w: 'reaped', at: 1 }] };
    const doc = parseDocument('s', JSON.stringify(one));
    assert.deepEqual(doc, { ...one, v: 3 });
    assert.equal(JSON.parse(serializeDocument(doc)).v, 3);
  });

  it('ignores owner records no entry refers to, and drops them on the next write', () => {
    const key = ownerKey(entry.o);
    const raw = JSON.stringify({ v: 2, o: { [key]: entry.o, '0123456789abcdef': { ...entry.o, p: 9 } }, l: { a: { ...entry, o: key } } });
    const doc = parseDocument('s', raw);
    assert.deepEqual(doc, { v: 3, l: { a: entry } });
    assert.deepEqual(Object.keys(JSON.parse(serializeDocument(doc)).o), [key]);
  });

  it('format 3: shared holders and lines of waiters, owners by key, empty maps not written', () => {
    const other = { ...entry.o, p: 2 };
    const { t: _t, ...share } = entry;
    const doc = {
      v: 3,
      l: { a: { ...entry } },
      s: { b: { t: 'b', c: 2, h: [{ ...share, n: 'x1' }, { ...share, o: other, n: 'x2', e: 50 }] } },
      q: { a: [{ n: 'w1', o: other, a: 10, e: 20 }, { n: 'w2', o: entry.o, a: 11, e: 21, m: 's' as const }], c: [{ n: 'w1', o: other, a: 10, e: 20 }] },
    };
    const raw = serializeDocument(doc);
    const stored = JSON.parse(raw);
    assert.equal(stored.v, 3);
    assert.deepEqual(Object.keys(stored.o).sort(), [ownerKey(entry.o), ownerKey(other)].sort());
    assert.equal(stored.s.b.h[1].o, ownerKey(other));
    assert.equal(stored.q.a[0].o, ownerKey(other));
    assert.deepEqual(parseDocument('s', raw), doc);
    // Nothing shared and no one waiting: the text is format 2's plus the number.
    const plain = JSON.parse(serializeDocument({ v: 3, l: { a: entry }, s: {}, q: {} }));
    assert.deepEqual(Object.keys(plain), ['v', 'o', 'l']);
  });

  it('reads format 2 as it is (and writes it back as format 3)', () => {
    const key = ownerKey(entry.o);
    const doc = parseDocument('s', JSON.stringify({ v: 2, o: { [key]: entry.o }, l: { a: { ...entry, o: key } } }));
    assert.deepEqual(doc, { v: 3, l: { a: entry } });
    assert.equal(JSON.parse(serializeDocument(doc)).v, 3);
  });

  it('refuses format 3 damage: unknown owner keys, empty or over-full groups, duplicate waiters, a name both exclusive and shared', () => {
    const key = ownerKey(entry.o);
    const o = { [key]: entry.o };
    const { t: _t, ...share } = entry;
    const linked = { ...share, o: key };
    const intent = { n: 'w', o: key, a: 1, e: 2 };
    const cases = [
      { v: 3, o, l: {}, s: { b: { t: 'b', h: [] } } },
      { v: 3, o, l: {}, s: { b: { t: 'b', c: 1, h: [linked, { ...linked, n: 'z' }] } } },
      { v: 3, o, l: {}, s: { b: { t: 'b', h: [linked, linked] } } },
      { v: 3, o, l: {}, s: { b: { t: 'b', h: [{ ...linked, o: '0123456789abcdef' }] } } },
      { v: 3, o, l: { b: { ...entry, o: key } }, s: { b: { t: 'b', h: [linked] } } },
      { v: 3, o, l: {}, q: { a: [] } },
      { v: 3, o, l: {}, q: { a: [intent, intent] } },
      { v: 3, o, l: {}, q: { a: [{ ...intent, o: '0123456789abcdef' }] } },
      { v: 3, o, l: {}, q: { a: [{ ...intent, m: 'x' }] } },
      { v: 3, o, l: {}, q: { 'bad name': [intent] } },
    ];
    for (const c of cases) {
      const raw = JSON.stringify(c);
      assert.throws(() => parseDocument('s', raw), (err: unknown) => err instanceof CorruptDocumentError && err.raw === raw, raw);
    }
    const proto = `{"v":3,"o":{},"l":{},"q":{"__proto__":[]}}`;
    assert.throws(() => parseDocument('s', proto), (err: unknown) => err instanceof CorruptDocumentError);
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
      '{"v":2,"l":{}}',
      '{"v":2,"o":[],"l":{}}',
      `{"v":2,"o":{},"l":{"a":${JSON.stringify({ ...entry, o: '0123456789abcdef' })}}}`,
      `{"v":2,"o":{"0123456789abcdef":${JSON.stringify(entry.o)}},"l":{"a":${JSON.stringify(entry)}}}`,
      `{"v":2,"o":{"BAD":${JSON.stringify(entry.o)}},"l":{}}`,
      `{"v":2,"o":{"__proto__":${JSON.stringify(entry.o)}},"l":{}}`,
      `{"v":2,"o":{"0123456789abcdef":${JSON.stringify({ ...entry.o, p: 0 })}},"l":{}}`,
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
    assert.throws(() => parseDocument('s', '{"v":4,"l":{},"whatever":1}'), (err: unknown) => err instanceof FormatError && err.code === 'EFORMAT');
  });

  it('fails with EFORMAT, naming them, for fields this version does not know in a document of its own format; ECORRUPT where they cannot be a newer version\'s', () => {
    const stored = JSON.parse(serializeDocument({ v: 3, l: { box_update: { ...entry } } })) as { o: Record<string, Record<string, unknown>>; l: Record<string, Record<string, unknown>> };
    const key = Object.keys(stored.o)[0]!;
    const newer = [
      [{ ...stored, o: { [key]: { ...stored.o[key], z: [1] } } }, [`o.${key}.z`]],
      [{ ...stored, l: { box_update: { ...stored.l.box_update, m: 'x', k: 1 } } }, ['l.box_update.m', 'l.box_update.k']],
      [{ ...stored, x: {} }, ['x']],
    ] as const;
    for (const [doc, fields] of newer) {
      const raw = JSON.stringify(doc);
      let caught: unknown;
      try {
        parseDocument('s', raw);
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof FormatError, `${raw}: ${String(caught)}`);
      assert.equal(caught.code, 'EFORMAT');
      assert.deepEqual(caught.fields, fields);
      assert.equal(caught.raw, raw);
      assert.match(caught.message, /does not know .* upgrade locktable/);
    }
    const damaged = [
      // An unknown field and a wrong value: damage.
      { ...stored, l: { box_update: { ...stored.l.box_update, z: 1, f: -1 } } },
      // Format 1 (no newer version writes it) with an unknown field.
      { v: 1, l: { box_update: { ...entry, o: { ...entry.o, z: 1 } } } },
    ];
    for (const doc of damaged) {
      assert.throws(() => parseDocument('s', JSON.stringify(doc)), (err: unknown) => err instanceof CorruptDocumentError && err.code === 'ECORRUPT');
    }
  });

  it('converts owners and entries to their public form and back', () => {
    const owner = { host: 'h', bootId: 'b', pidNs: 'pid:[1]', pid: 1, startTime: 2, user: 'root', taskId: '42' };
    assert.deepEqual(fromStoredOwner(toStoredOwner(owner)), owner);
    const h = toHolder('box_update', { ...entry, e: 10 });
    assert.deepEqual(h, { name: 'box_update', type: 'box_update', owner: fromStoredOwner(entry.o), token: 3, acquiredAt: new Date(4), expiresAt: new Date(10) });
  });

  it('strayOwnerRecords counts the owner records no entry refers to', () => {
    assert.equal(strayOwnerRecords('{"v":2,"o":{},"l":{}}'), 0);
    assert.equal(strayOwnerRecords('{"v":2,"o":{"aaaaaaaaaaaaaaaa":{},"bbbbbbbbbbbbbbbb":{}},"l":{"x":{"o":"aaaaaaaaaaaaaaaa"}}}'), 1);
    assert.equal(strayOwnerRecords('{"v":1,"l":{}}'), 0);
    assert.equal(strayOwnerRecords('not json'), 0);
  });
});
