import assert from 'node:assert/strict';
import { CorruptDocumentError, FormatError } from '../../lib/errors.js';
import { emptyDocument, FORMAT, impliedType, strayOwnerRecords, ownerKey, ownerText, parseDocument, serializeDocument, toHolder, toStoredOwner, fromStoredOwner } from '../../lib/document.js';

const entry = { t: 'box_update', o: { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'root' }, f: 3, n: 'nonce', a: 4 };

describe('document (pure)', () => {
  it('round-trips an empty and a full document', () => {
    assert.deepEqual(parseDocument('s', serializeDocument(emptyDocument())), { v: 4, l: {} });
    const doc = { v: 4, l: { box_update: { ...entry, e: 9 } }, r: [{ k: 'x', n: 'm', w: 'reaped', at: 1 }] };
    assert.deepEqual(parseDocument('s', serializeDocument(doc as never)), doc);
  });

  it('parses the spaced form MySQL writes back', () => {
    assert.deepEqual(parseDocument('s', '{"v": 2, "o": {}, "l": {}}'), { v: 4, l: {} });
    assert.deepEqual(parseDocument('s', '{"v": 4, "o": {}, "l": {}}'), { v: 4, l: {} });
  });

  it('stores each owner once (format 2), entries referring to it by key', () => {
    const other = { ...entry.o, p: 2 };
    const doc = { v: 4 as const, l: { a: { ...entry }, b: { ...entry, f: 4 }, c: { ...entry, o: other, f: 5 } } };
    const stored = JSON.parse(serializeDocument(doc));
    assert.deepEqual(Object.keys(stored.o).sort(), [ownerKey(entry.o), ownerKey(other)].sort());
    assert.deepEqual(stored.o[ownerKey(entry.o)], entry.o);
    assert.equal(stored.l.a.o, ownerKey(entry.o));
    assert.equal(stored.l.c.o, ownerKey(other));
    assert.match(ownerKey(entry.o), /^[0-9A-Za-z]{11}$/, 'format 4: 64 bits in 11 base-62 characters');
    assert.equal(ownerKey({ ...entry.o }), ownerKey(entry.o), 'the key depends on the owner, not the object');
    assert.notEqual(ownerKey({ ...entry.o, t: '1' }), ownerKey(entry.o));
    assert.equal(ownerText(entry.o), JSON.stringify(entry.o));
    assert.deepEqual(parseDocument('s', serializeDocument(doc)), doc);
  });

  it('reads format 1 (owner inline) and rewrites it as format 4', () => {
    const one = { v: 1, l: { box_update: entry }, r: [{ k: 'x', n: 'm', w: 'reaped', at: 1 }] };
    const doc = parseDocument('s', JSON.stringify(one));
    assert.deepEqual(doc, { ...one, v: 4 });
    assert.equal(JSON.parse(serializeDocument(doc)).v, 4);
  });

  it('ignores owner records no entry refers to, and drops them on the next write', () => {
    const key = 'aaaaaaaaaaaaaaaa'; // format 2's keys: 16 hex
    const raw = JSON.stringify({ v: 2, o: { [key]: entry.o, '0123456789abcdef': { ...entry.o, p: 9 } }, l: { a: { ...entry, o: key } } });
    const doc = parseDocument('s', raw);
    assert.deepEqual(doc, { v: 4, l: { a: entry } });
    assert.deepEqual(Object.keys(JSON.parse(serializeDocument(doc)).o), [ownerKey(entry.o)]);
    const four = JSON.stringify({ v: 4, o: { [ownerKey(entry.o)]: entry.o, [key]: { ...entry.o, p: 9 } }, l: { a: { o: ownerKey(entry.o), f: 3, n: 'nonce', a: 4, t: 'box_update' } } });
    assert.deepEqual(parseDocument('s', four), { v: 4, l: { a: entry } });
  });

  it('format 4: entries leave out the type the name implies', () => {
    assert.equal(FORMAT, 4);
    assert.deepEqual(['app_task_42', 'full_backup_task_x', 'app_task_my_app', 'box_update', 'reindex', '_x'].map(impliedType), ['app_task', 'full_backup_task', 'app_task_my', 'box', 'reindex', '_x']);
    const key = ownerKey(entry.o);
    const doc = {
      v: 4,
      l: {
        app_task_42: { ...entry, t: 'app_task', e: 34 },
        reindex: { ...entry, t: 'reindex' },
        box_update: { ...entry },
        app_task_my_app: { ...entry, t: 'app_task', e: 2 },
      },
      s: { app_backup_1: { t: 'app_backup', c: 2, h: [{ o: entry.o, f: 5, n: 'x', a: 10, e: 70 }] } },
    };
    const raw = serializeDocument(doc);
    const stored = JSON.parse(raw);
    assert.deepEqual(stored.l, {
      app_task_42: { o: key, f: 3, n: 'nonce', a: 4, e: 34 },
      reindex: { o: key, f: 3, n: 'nonce', a: 4 },
      box_update: { o: key, f: 3, n: 'nonce', a: 4, t: 'box_update' },
      app_task_my_app: { o: key, f: 3, n: 'nonce', a: 4, e: 2, t: 'app_task' },
    });
    assert.deepEqual(stored.s.app_backup_1.h, [{ o: key, f: 5, n: 'x', a: 10, e: 70 }]);
    assert.deepEqual(parseDocument('s', raw), doc);
  });

  it('format 4 also reads entries written the format-3 way (an older one-statement acquire writes them so)', () => {
    const key = ownerKey(entry.o);
    const hex = '0123456789abcdef';
    const raw = JSON.stringify({
      v: 4,
      o: { [key]: entry.o, [hex]: { ...entry.o, p: 2 } },
      l: { a_1: { t: 'a', o: hex, f: 1, n: 'm', a: 4, e: 9 }, b_1: { o: key, f: 2, n: 'k', a: 4, e: 9 } },
    });
    assert.deepEqual(parseDocument('s', raw), { v: 4, l: { a_1: { t: 'a', o: { ...entry.o, p: 2 }, f: 1, n: 'm', a: 4, e: 9 }, b_1: { t: 'b', o: entry.o, f: 2, n: 'k', a: 4, e: 9 } } });
    for (const bad of [
      { v: 4, o: { [key]: entry.o }, l: { a: { o: key, f: 1, n: 'm', a: 4, d: 5, e: -1 } } },
      { v: 4, o: { [key]: entry.o }, l: { a: { o: key, f: 1, n: 'm', a: 4, e: 1.5 } } },
      { v: 4, o: { [`${key}x`]: entry.o }, l: {} },
      { v: 3, o: { [key]: entry.o }, l: {} },
      { v: 3, o: { [hex]: entry.o }, l: { a: { o: hex, f: 1, n: 'm', a: 4 } } },
    ]) {
      const text = JSON.stringify(bad);
      assert.throws(() => parseDocument('s', text), (err: unknown) => err instanceof CorruptDocumentError && err.raw === text, text);
    }
  });

  it('format 3: shared holders and lines of waiters, owners by key, empty maps not written', () => {
    const other = { ...entry.o, p: 2 };
    const { t: _t, ...share } = entry;
    const doc = {
      v: 4,
      l: { a: { ...entry } },
      s: { b: { t: 'b', c: 2, h: [{ ...share, n: 'x1' }, { ...share, o: other, n: 'x2', e: 50 }] } },
      q: { a: [{ n: 'w1', o: other, a: 10, e: 20 }, { n: 'w2', o: entry.o, a: 11, e: 21, m: 's' as const }], c: [{ n: 'w1', o: other, a: 10, e: 20 }] },
    };
    const raw = serializeDocument(doc);
    const stored = JSON.parse(raw);
    assert.equal(stored.v, 4);
    assert.deepEqual(Object.keys(stored.o).sort(), [ownerKey(entry.o), ownerKey(other)].sort());
    assert.equal(stored.s.b.h[1].o, ownerKey(other));
    assert.equal(stored.q.a[0].o, ownerKey(other));
    assert.deepEqual(parseDocument('s', raw), doc);
    // Nothing shared and no one waiting: the text is format 2's plus the number.
    const plain = JSON.parse(serializeDocument({ v: 4, l: { a: entry }, s: {}, q: {} }));
    assert.deepEqual(Object.keys(plain), ['v', 'o', 'l']);
  });

  it('reads format 2 as it is (and writes it back as format 4)', () => {
    const key = 'fedcba9876543210';
    const doc = parseDocument('s', JSON.stringify({ v: 2, o: { [key]: entry.o }, l: { a: { ...entry, o: key } } }));
    assert.deepEqual(doc, { v: 4, l: { a: entry } });
    assert.equal(JSON.parse(serializeDocument(doc)).v, 4);
  });

  it('refuses format 4 damage: unknown owner keys, empty or over-full groups, duplicate waiters, a name both exclusive and shared', () => {
    const key = ownerKey(entry.o);
    const o = { [key]: entry.o };
    const { t: _t, ...share } = entry;
    const linked = { ...share, o: key };
    const intent = { n: 'w', o: key, a: 1, e: 2 };
    const cases = [
      { v: 4, o, l: {}, s: { b: { t: 'b', h: [] } } },
      { v: 4, o, l: {}, s: { b: { t: 'b', c: 1, h: [linked, { ...linked, n: 'z' }] } } },
      { v: 4, o, l: {}, s: { b: { t: 'b', h: [linked, linked] } } },
      { v: 4, o, l: {}, s: { b: { t: 'b', h: [{ ...linked, o: '0123456789abcdef' }] } } },
      { v: 4, o, l: { b: { ...entry, o: key } }, s: { b: { t: 'b', h: [linked] } } },
      { v: 4, o, l: {}, q: { a: [] } },
      { v: 4, o, l: {}, q: { a: [intent, intent] } },
      { v: 4, o, l: {}, q: { a: [{ ...intent, o: '0123456789abcdef' }] } },
      { v: 4, o, l: {}, q: { a: [{ ...intent, m: 'x' }] } },
      { v: 4, o, l: {}, q: { 'bad name': [intent] } },
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
    assert.throws(() => parseDocument('s', '{"v":5,"l":{},"whatever":1}'), (err: unknown) => err instanceof FormatError && err.code === 'EFORMAT');
  });

  it('fails with EFORMAT, naming them, for fields this version does not know in a document of its own format; ECORRUPT where they cannot be a newer version\'s', () => {
    const stored = JSON.parse(serializeDocument({ v: 4, l: { box_update: { ...entry } } })) as { o: Record<string, Record<string, unknown>>; l: Record<string, Record<string, unknown>> };
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
      // Nor format 3, now that this version writes format 4.
      { v: 3, o: { '0123456789abcdef': entry.o }, l: { box_update: { ...entry, o: '0123456789abcdef', z: 1 } } },
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
