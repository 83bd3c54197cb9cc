// Bad input, fuzzed from a seed (LOCKTABLE_FUZZ_SEED reproduces a run): lock
// names, createLockTable options, per-call options, leases, releaseByOwner
// arguments and stored documents. Every one must be refused with a LockError
// of the expected code, the stored document must stay byte for byte what it
// was, and — seen on the wire, through a proxy — no statement may carry any of
// the input: only the library's fixed reads of the row reach the server.
import assert from 'node:assert/strict';
import { createLockTable, LockError, LockTypes, type Lease, type LockTable } from '../../lib/index.js';
import { FORMAT } from '../../lib/document.js';
import { createTestDb, isMariaDb, rawRow, storeRaw, type TestDb } from '../helpers/db.js';
import { prng, type Prng } from '../helpers/prng.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const SEED = Number(process.env.LOCKTABLE_FUZZ_SEED ?? 4_2026_1124);
const SPACE = 'fuzz';

// ---- generators -------------------------------------------------------------

const NASTY = ['"', "'", '\\', '\0', '$', '*', ' ', '\n', '\t', '`', ';', '%', '{', '}', '[', ']', '/', ':', '@', '#', 'é', 'ß', '\u200b', '\u202e', '😀', '\ud800', '€', '\u0085', '\uffff'];
// Each has a character no name may hold (so each is a bad name on its own).
/** The one-statement acquire or release (lib/store.ts fastWrite). */
const ONE_STATEMENT = /^UPDATE `locks` SET version = LAST_INSERT_ID\(version \+ \d+\), /;
const SQL = ["x' OR 1=1 --", 'x"; DROP TABLE locks; --', "'); DELETE FROM locks; --", '$.l.box_update', '$**', "\\' OR ''='", '/*!50000 UNION SELECT */', 'a` b', "0x27'", 'SLEEP(10)', '$."a"b"', '\\"'];
const SAFE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_';

function safeString(r: Prng, min: number, max: number): string {
  let s = '';
  const n = r.int(min, max);
  for (let i = 0; i < n; i++) s += SAFE[r.int(0, SAFE.length - 1)];
  return s;
}

/**
 * A string that no lock name may be: at least one character outside the name
 * charset, or a bad start, or too long. `strict`: only kinds that are bad
 * anywhere (also as a builder's id or a space), not just as a whole name.
 */
function badNameString(r: Prng, strict = false): [kind: string, value: string] {
  const choice = r.int(0, 8);
  if (strict && (choice === 4 || choice === 6)) return badNameString(r, strict);
  switch (choice) {
    case 0: {
      const base = safeString(r, 0, 20);
      const at = r.int(0, base.length);
      return ['forbidden character', base.slice(0, at) + r.pick(NASTY) + base.slice(at)];
    }
    case 1:
      return ['SQL or JSON-path fragment', r.pick(SQL) + (r.chance(0.5) ? safeString(r, 0, 5) : '')];
    case 2:
      return ['too long', safeString(r, 129, 5000)];
    case 3:
      return ['huge string', 'a'.repeat(r.int(100_000, 1_000_000))];
    case 4:
      return ['bad first character', r.pick(['.', '-']) + safeString(r, 0, 10)];
    case 5:
      return ['empty', ''];
    case 6:
      return ['__proto__', '__proto__'];
    case 7: {
      let s = '';
      for (let i = r.int(1, 30); i > 0; i--) s += String.fromCodePoint(r.int(0, 0x10ffff));
      return /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(s) ? ['random code points', `${s}"`] : ['random code points', s];
    }
    default:
      return ['NUL inside', `${safeString(r, 1, 5)}\0${safeString(r, 1, 5)}`];
  }
}

function wrongType(r: Prng): [kind: string, value: unknown] {
  const values: Array<[string, unknown]> = [
    ['number', r.int(-1e6, 1e6)],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['null', null],
    ['boolean', r.chance(0.5)],
    ['object', { name: 'box_update' }],
    ['nested array', [['box_update']]],
    ['symbol', Symbol('box_update')],
    ['bigint', 10n],
    ['function', () => 'box_update'],
    ['Date', new Date()],
    ['String object', new String('box_update')],
  ];
  return r.pick(values);
}

function badNames(r: Prng): [kind: string, value: unknown] {
  switch (r.int(0, 5)) {
    case 0:
    case 1:
      return badNameString(r);
    case 2: {
      const [k, v] = wrongType(r);
      return [`wrong type: ${k}`, v];
    }
    case 3:
      return ['empty list', []];
    case 4:
      return ['more than 64 names', Array.from({ length: r.int(65, 500) }, (_, i) => `n${i}`)];
    default: {
      const [k, bad] = r.chance(0.5) ? badNameString(r) : (['duplicate', 'box_update'] as [string, unknown]);
      return [`list with one bad name (${k})`, ['box_update', 'mail_restart', bad]];
    }
  }
}

function badBuilderId(r: Prng): [kind: string, value: unknown] {
  if (r.chance(0.2)) {
    const [k, v] = wrongType(r);
    return [`builder id, wrong type: ${k}`, v];
  }
  const [k, v] = badNameString(r, true);
  return [`builder id: ${k}`, v];
}

function badNumber(r: Prng, max: number): unknown {
  return r.pick([-1, -0.5, 1.5, NaN, Infinity, -Infinity, max + 1, 2 ** 53, Number.MAX_VALUE, '5', null, true, {}, [], 10n]);
}

/** A createLockTable options object that must be refused, built from a valid one. */
function badTableOptions(r: Prng, db: unknown): [kind: string, value: unknown] {
  const base = (): Record<string, unknown> => ({ db });
  switch (r.int(0, 11)) {
    case 0:
      return ['space', { ...base(), space: r.chance(0.5) ? badNameString(r, true)[1] : wrongType(r)[1] }];
    case 1:
      return ['owner', { ...base(), owner: r.pick<unknown>([{ taskId: wrongType(r)[1] }, { taskId: '' }, { taskId: 'x'.repeat(256) }, { pid: 1 }, 'task', [], 42]) }];
    case 2:
      return ['poolSize', { ...base(), poolSize: badNumber(r, 64) }];
    case 3:
      return ['retry', { ...base(), retry: r.pick<unknown>([{ baseMs: badNumber(r, 10_000) }, { capMs: badNumber(r, 60_000) }, { deadlineMs: badNumber(r, 3_600_000) }, { baseMs: 100, capMs: 10 }, { jitter: true }, 'fast', 5]) }];
    case 4:
      return ['wait', { ...base(), wait: r.pick<unknown>([{ pollMinMs: badNumber(r, 10_000) }, { pollMaxMs: badNumber(r, 60_000) }, { pollMinMs: 100, pollMaxMs: 10 }, { every: 1 }, []]) }];
    case 5:
      return ['unknown key', { ...base(), [r.pick(['spaces', 'timeout', 'host', 'constructor', 'toString', safeString(r, 1, 12)])]: 1 }];
    case 6:
      return ['__proto__ key', { ...JSON.parse(r.pick(['{"__proto__":{"space":"evil"}}', '{"__proto__":{}}', '{"constructor":{"prototype":{"x":1}}}'])), db }];
    case 7:
      return ['nested __proto__', { ...base(), retry: JSON.parse('{"__proto__":{"deadlineMs":1}}') }];
    case 8:
      return ['db', { db: r.pick<unknown>(['', 'not a uri', 'postgres://u@h/db', 'mysql://u@h', 'mysql://u@h/', 'file:///etc/passwd', 'mysql:/no-host', 42, null, {}, { query: 'SELECT 1' }, { getConnection() {} }, [], true]) }];
    case 9:
      return ['not an object', r.pick<unknown>(['mysql://root@127.0.0.1/x', 42, [], true, () => ({})])];
    case 10:
      return ['types', { ...base(), types: r.pick<unknown>([{}, { typeOf: 'app' }, 42, 'LockTypes', []]) }];
    default:
      return ['wrong type for space', { ...base(), space: wrongType(r)[1] }];
  }
}

function badCallOptions(r: Prng): [kind: string, value: unknown] {
  switch (r.int(0, 5)) {
    case 0:
      return ['ttlMs', { ttlMs: badNumber(r, 365 * 24 * 3_600_000) }];
    case 1:
      return ['timeoutMs', { timeoutMs: badNumber(r, 2_147_483_647) }];
    case 2:
      return ['signal', { signal: r.pick<unknown>(['abort', {}, { aborted: true, addEventListener() {} }, 1, new AbortController()]) }];
    case 3:
      return ['unknown key', { [r.pick(['ttl', 'wait', 'timeout', 'names', 'nonce', safeString(r, 1, 10)])]: 1 }];
    case 4:
      return ['__proto__ key', JSON.parse(r.pick(['{"__proto__":{"ttlMs":5}}', '{"ttlMs":5,"__proto__":{}}']))];
    default:
      return ['not an object', r.pick<unknown>(['fast', 42, [], true, Symbol('x')])];
  }
}

/** A lease that must be refused before any write: [kind, value, expected code]. */
function badLease(r: Prng, real: Lease): [kind: string, value: unknown, code: string] {
  switch (r.int(0, 6)) {
    case 0:
      return ['not an object', r.pick<unknown>([null, undefined, 'lease', 42, [], true]), 'EINVALIDOPTION'];
    case 1:
      return ['nonce of a wrong type', { ...real, nonce: wrongType(r)[1] }, 'EINVALIDOPTION'];
    case 2:
      return ['names not a list', { ...real, names: r.pick<unknown>(['box_update', undefined, null, { 0: 'box_update', length: 1 }, 5]) }, 'EINVALIDOPTION'];
    case 3:
      return ['a bad name in names', { ...real, names: [badNameString(r)[1]] }, 'EINVALIDNAME'];
    case 4:
      return ['another space', { ...real, space: r.pick<unknown>(['platform', badNameString(r)[1], undefined, 7]) }, 'EINVALIDOPTION'];
    case 5:
      return ['forged nonce (well-formed lease)', { ...real, nonce: r.pick([r.pick(SQL), safeString(r, 1, 64), '', 'x'.repeat(100_000), badNameString(r)[1]]) }, 'ENOTHELD'];
    default:
      return ['__proto__ lease', JSON.parse(`{"__proto__":${JSON.stringify(real)}}`), 'EINVALIDOPTION'];
  }
}

function badOwnerMatch(r: Prng): [kind: string, value: unknown] {
  return r.pick<[string, unknown]>([
    ['neither', {}],
    ['both', { taskId: 't', pid: 1 }],
    ['taskId of a wrong type', { taskId: wrongType(r)[1] }],
    ['empty taskId', { taskId: '' }],
    ['pid not a positive integer', { pid: badNumber(r, 2 ** 22) }],
    ['pid zero', { pid: 0 }],
    ['host of a wrong type', { pid: r.int(1, 1e6), host: wrongType(r)[1] }],
    ['not an object', r.pick<unknown>([null, undefined, 'task', 42, []])],
    ['__proto__ key', JSON.parse('{"__proto__":{"taskId":"t"}}')],
  ]);
}

const ENTRY = { t: 'box_update', o: { h: 'h', b: 'b', ns: 'pid:[1]', p: 1, s: 2, u: 'root' }, f: 3, n: 'nonce', a: 4 };

/** A stored text that is not a valid document: [kind, text, expected code]. */
function badDocument(r: Prng): [kind: string, raw: string, code: 'ECORRUPT' | 'EFORMAT'] {
  const valid = () => ({ v: 1, l: { box_update: { ...ENTRY, o: { ...ENTRY.o } } } as Record<string, unknown> });
  switch (r.int(0, 9)) {
    case 0: {
      let s = '';
      for (let i = r.int(1, 400); i > 0; i--) s += String.fromCharCode(r.int(0, 255));
      return ['random bytes', s.startsWith('{') ? `x${s}` : s, 'ECORRUPT'];
    }
    case 1:
      return ['huge string', JSON.stringify({ v: 1, l: {}, junk: 'x'.repeat(r.int(100_000, 2_000_000)) }), 'ECORRUPT'];
    case 2:
      return ['quotes, backslashes, NUL', r.pick(['"', "'", '\\', '\0', '{"v":1,"l":{"a\\u0000":1}}', '{"v":1,"l":"\\\\"}', `{"v":1,"l":{"x":"${'\\'.repeat(9)}"}}`]), 'ECORRUPT'];
    case 3: {
      const json = r.pick<unknown>([null, 1, 'x', [], [1, 2], true, {}, { v: 1 }, { l: {} }, { v: 1, l: [] }, { v: 1, l: null }, { v: '1', l: {} }, { v: 0, l: {} }, { v: -1, l: {} }, { v: 1.5, l: {} }, { v: 1, l: {}, r: {} }]);
      return ['valid JSON of the wrong shape', JSON.stringify(json), 'ECORRUPT'];
    }
    case 4: {
      const doc = valid();
      const entry = doc.l.box_update as Record<string, unknown>;
      const field = r.pick(['t', 'o', 'f', 'n', 'a', 'e']);
      entry[field] = r.pick<unknown>([-1, 1.5, 2 ** 53, 'x', null, {}, [], true, 'x'.repeat(300)]);
      if ((field === 't' || field === 'n') && typeof entry[field] === 'string' && (entry[field] as string).length <= 64) entry[field] = 7;
      return [`entry field ${field} wrong`, JSON.stringify(doc), 'ECORRUPT'];
    }
    case 5: {
      const doc = valid();
      const owner = (doc.l.box_update as { o: Record<string, unknown> }).o;
      owner[r.pick(['h', 'b', 'ns', 'p', 's', 'u', 't'])] = r.pick<unknown>([-5, 0.5, null, [], {}, 'x'.repeat(300), 1e400]);
      if (owner.p === 'x'.repeat(300)) owner.p = 'pid';
      return ['owner field wrong', JSON.stringify(doc).replace('null', r.pick(['null', '1e400'])), 'ECORRUPT'];
    }
    case 6: {
      const key = r.chance(0.3) ? r.pick(['__proto__', 'constructor"', '$.x', '']) : badNameString(r)[1].slice(0, 200);
      const raw = `{"v":1,"l":{${JSON.stringify(key)}:${JSON.stringify(ENTRY)}}}`;
      return ['bad lock name as a key', raw, 'ECORRUPT'];
    }
    case 7: {
      const doc = valid() as Record<string, unknown>;
      doc[r.pick(['x', 'locks', 'version', 'constructor'])] = 1;
      return ['unknown key', JSON.stringify(doc), 'ECORRUPT'];
    }
    case 8: {
      const where = r.pick(['root', 'entry', 'owner', 'tombstone']);
      const p = '"__proto__":{"e":1}';
      const raw =
        where === 'root'
          ? `{"v":1,"l":{},${p}}`
          : where === 'entry'
            ? `{"v":1,"l":{"box_update":${JSON.stringify(ENTRY).replace('{', `{${p},`)}}}`
            : where === 'owner'
              ? `{"v":1,"l":{"box_update":${JSON.stringify(ENTRY).replace('"o":{', `"o":{${p},`)}}}`
              : `{"v":1,"l":{},"r":[{"k":"a","n":"b","w":"reaped","at":1,${p}}]}`;
      return [`__proto__ key (${where})`, raw, 'ECORRUPT'];
    }
    default:
      return ['newer format', JSON.stringify({ v: r.int(FORMAT + 1, 1000), l: r.pick<unknown>([{}, [], 'anything']) }), 'EFORMAT'];
  }
}

// ---- the test ---------------------------------------------------------------

describe(`bad input, fuzzed (seed ${SEED})`, () => {
  let db: TestDb;
  let proxy: Proxy;
  let locks: LockTable;
  let held: Lease;
  const counts = new Map<string, number>();
  const tally = (group: string, kind: string) => counts.set(`${group}: ${kind}`, (counts.get(`${group}: ${kind}`) ?? 0) + 1);
  // As a broken tool might; false when Oracle MySQL's JSON type refuses text that is not JSON.
  const store = (raw: string) => storeRaw(db.pool, raw, SPACE);

  /** Runs `op`, which must fail with a LockError of `code` (sync or async). */
  async function refused(what: string, code: string | string[], op: () => unknown): Promise<void> {
    let err: unknown;
    try {
      await op();
    } catch (e) {
      err = e;
    }
    if (!(err instanceof LockError)) assert.fail(`${what}: expected a LockError, got ${err === undefined ? 'success' : String(err).slice(0, 300)}`);
    const codes = Array.isArray(code) ? code : [code];
    if (!codes.includes(err.code)) assert.fail(`${what}: expected ${codes.join('|')}, got ${err.code}: ${err.message.slice(0, 300)}`);
  }

  before(async () => {
    db = await createTestDb('fuzz');
    proxy = await startProxy({ port: Number(new URL(db.url).port || 3306) });
    locks = createLockTable({ db: proxy.url(db.name), space: SPACE, owner: { taskId: 'fuzz' }, retry: { deadlineMs: 2_000 } });
    held = await locks.acquire('box_update'); // so that "unchanged" covers a held lock too
  });
  after(async () => {
    const lines = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${String(n).padStart(6)}  ${k}`);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    console.log(`      fuzzed inputs by kind (seed ${SEED}), ${total} in all, every one refused with the expected LockError code:\n${lines.map((l) => `      ${l}`).join('\n')}`);
    await locks.close();
    await proxy.close();
    await db.drop();
  });

  async function unchanged<T>(what: string, body: () => Promise<T>): Promise<T> {
    const before = await rawRow(db.pool, SPACE);
    const result = await body();
    assert.deepEqual(await rawRow(db.pool, SPACE), before, `${what}: the stored document and its version are byte for byte unchanged`);
    return result;
  }

  it('refuses bad lock names before any SQL, with EINVALIDNAME', async () => {
    const r = prng(SEED);
    proxy.statements.length = 0;
    await unchanged('names', async () => {
      for (let i = 0; i < 600; i++) {
        const op = r.pick(['acquire', 'tryAcquire', 'wait', 'using', 'builder'] as const);
        const [kind, name] = op === 'builder' ? badBuilderId(r) : badNames(r);
        tally('lock name', kind);
        const call = () => {
          const n = name as never;
          switch (op) {
            case 'acquire':
              return locks.acquire(n);
            case 'tryAcquire':
              return locks.tryAcquire(n);
            case 'wait':
              return locks.wait(n, { timeoutMs: 10 });
            case 'using':
              return locks.using(n, () => assert.fail('ran under a bad name'));
            default:
              return LockTypes.appTask(name as string);
          }
        };
        await refused(`${op}(${kind})`, 'EINVALIDNAME', call);
      }
    });
    assert.deepEqual(proxy.statements, [], 'not one statement reached the server');
  });

  it('refuses bad createLockTable options with EINVALIDOPTION, opening nothing', async () => {
    const r = prng(SEED + 1);
    proxy.statements.length = 0;
    const connections = proxy.connections;
    for (let i = 0; i < 400; i++) {
      const [kind, options] = badTableOptions(r, proxy.url(db.name));
      tally('createLockTable options', kind);
      await refused(`createLockTable(${kind})`, 'EINVALIDOPTION', () => createLockTable(options as never));
    }
    assert.equal(proxy.connections, connections, 'no connection was opened');
  });

  it('refuses bad acquire/tryAcquire/wait/using options with EINVALIDOPTION before any SQL', async () => {
    const r = prng(SEED + 2);
    proxy.statements.length = 0;
    await unchanged('call options', async () => {
      for (let i = 0; i < 400; i++) {
        const op = r.pick(['acquire', 'tryAcquire', 'wait', 'using'] as const);
        let [kind, options] = badCallOptions(r);
        if (op === 'using' && r.chance(0.2)) [kind, options] = ['using: wait not a boolean', { wait: r.pick<unknown>(['yes', 1, {}, null]) }];
        tally('acquire/wait options', kind);
        const o = options as never;
        await refused(`${op}(${kind})`, 'EINVALIDOPTION', () =>
          op === 'acquire' ? locks.acquire('mail_restart', o) : op === 'tryAcquire' ? locks.tryAcquire('mail_restart', o) : op === 'wait' ? locks.wait('mail_restart', o) : locks.using('mail_restart', () => assert.fail('ran'), o),
        );
      }
    });
    assert.deepEqual(proxy.statements, []);
  });

  it('refuses bad leases and extend() arguments; a forged nonce gets ENOTHELD and writes nothing', async () => {
    const r = prng(SEED + 3);
    proxy.statements.length = 0;
    await unchanged('leases', async () => {
      for (let i = 0; i < 400; i++) {
        const useExtend = r.chance(0.4);
        if (useExtend && r.chance(0.3)) {
          let ttl = badNumber(r, 365 * 24 * 3_600_000);
          if (ttl === null) ttl = 0; // null is extend()'s "no expiry"
          tally('extend ttlMs', typeof ttl === 'number' ? 'bad number' : 'wrong type');
          await refused('extend(bad ttl)', 'EINVALIDOPTION', () => locks.extend(held, ttl as never));
          continue;
        }
        const [kind, lease, code] = badLease(r, held);
        tally(useExtend ? 'lease to extend()' : 'lease to release()', kind);
        await refused(`${useExtend ? 'extend' : 'release'}(${kind})`, code, () => (useExtend ? locks.extend(lease as never, 1000) : locks.release(lease as never)));
      }
    });
    // Reads, and one-statement releases that their nonce guard refused (unchanged() checked that nothing changed).
    assert.ok(proxy.statements.every((s) => s.startsWith('SELECT ') || ONE_STATEMENT.test(s)), 'reads only: no write reached the server');
  });

  it('refuses bad releaseByOwner arguments with EINVALIDOPTION before any SQL', async () => {
    const r = prng(SEED + 4);
    proxy.statements.length = 0;
    await unchanged('releaseByOwner', async () => {
      for (let i = 0; i < 300; i++) {
        const [kind, match] = badOwnerMatch(r);
        tally('releaseByOwner argument', kind);
        await refused(`releaseByOwner(${kind})`, 'EINVALIDOPTION', () => locks.releaseByOwner(match as never));
      }
    });
    assert.deepEqual(proxy.statements, []);
  });

  it('refuses a catalogue whose typeOf returns what the document cannot hold, before any SQL', async () => {
    const r = prng(SEED + 5);
    proxy.statements.length = 0;
    await unchanged('typeOf', async () => {
      for (let i = 0; i < 50; i++) {
        const bad = r.pick<unknown>([42, '', 'x'.repeat(129), null, {}, () => 'x']);
        const thrower = r.chance(0.2);
        const t = createLockTable({ db: proxy.url(db.name), space: SPACE, types: { typeOf: () => { if (thrower) throw new Error('catalogue bug'); return bad; } } });
        tally('catalogue typeOf result', thrower ? 'throws' : bad === null ? 'null' : typeof bad);
        await refused('acquire with a bad catalogue', 'EINVALIDOPTION', () => t.acquire('app_task_x' as never));
        await t.close();
      }
    });
    assert.deepEqual(proxy.statements, []);
  });

  it('refuses every operation on a damaged stored document with ECORRUPT or EFORMAT, and leaves it byte for byte', async function () {
    this.timeout(120_000);
    const r = prng(SEED + 6);
    const original = (await rawRow(db.pool, SPACE))!;
    proxy.statements.length = 0;
    const fake = Object.freeze({ ...held, nonce: 'not-ours' });
    const ops: Array<[string, () => Promise<unknown>]> = [
      ['acquire', () => locks.acquire('mail_restart')],
      ['tryAcquire', () => locks.tryAcquire('box_update')],
      // A timeout well past a read: the document refuses the wait, not its bound (ETIMEDOUT) under load.
      ['wait', () => locks.wait('box_update_task', { timeoutMs: 10_000 })],
      ['release', () => locks.release(fake)],
      ['extend', () => locks.extend(fake, 1000)],
      ['releaseAll', () => locks.releaseAll()],
      ['releaseByOwner', () => locks.releaseByOwner({ taskId: 'fuzz' })],
      ['reapDead', () => locks.reapDead()],
      ['list', () => locks.list()],
    ];
    try {
      for (let i = 0; i < 250; i++) {
        const [kind, raw, code] = badDocument(r);
        if (!(await store(raw))) {
          // Oracle MySQL: text that is not JSON cannot be stored at all (3140), so no tool can leave it.
          assert.equal(await isMariaDb(db.pool), false, `${kind}: MariaDB stores any text`);
          tally('stored document', `${kind} (refused by MySQL's JSON type)`);
          continue;
        }
        tally('stored document', kind);
        const before = (await rawRow(db.pool, SPACE))!;
        // Huge documents get two operations, the others all nine.
        const chosen = raw.length > 50_000 ? [r.pick(ops), r.pick(ops)] : ops;
        for (const [name, op] of chosen) await refused(`${name} on ${kind} ${JSON.stringify(raw.slice(0, 80))}`, code, op);
        assert.deepEqual(await rawRow(db.pool, SPACE), before, `${kind}: unchanged`);
      }
    } finally {
      await db.pool.query('UPDATE locks SET dataJson = ?, version = ? WHERE id = ?', [original.raw, original.version, SPACE]);
    }
    // The one fixed read, and one-statement acquires and releases, which the
    // checksum refuses: a damaged document is never the one locktable last wrote.
    const shapes = new Set(proxy.statements.filter((s) => !ONE_STATEMENT.test(s)).map((s) => s.replace(/'[^']*'/g, '?')));
    assert.deepEqual(
      [...shapes].sort(),
      ["SELECT version, CAST(dataJson AS CHAR) AS raw, CAST(TIMESTAMPDIFF(MICROSECOND, ?, UTC_TIMESTAMP(6)) DIV 1000 AS UNSIGNED) AS now FROM `locks` WHERE id = ?"],
      'the one fixed read, nothing else',
    );
    assert.ok(proxy.statements.every((s) => s.includes(`WHERE id = '${SPACE}'`)));
    assert.ok(proxy.statements.filter((s) => ONE_STATEMENT.test(s)).every((s) => s.includes(' AND dataCrc = dataCrcNow')), 'every write is guarded by the checksum');
  });
});
