import assert from 'node:assert/strict';
import { applied, canJoin, CLOCK_TOLERANCE_MS, MAX_BATCH_NAMES, planFast, settleFast, type BatchContext, type Member } from '../../lib/batch.js';
import { emptyDocument, impliedType, ownerKey, ownerText, type Entry, type LockDocument, type StoredOwner } from '../../lib/document.js';
import { fastStatement, PREPARED_MAX_ENTRIES, type FastPlan } from '../../lib/store.js';
import * as T from '../../lib/transitions.js';

const me: StoredOwner = { h: 'box', b: 'boot', ns: 'pid:[1]', p: 100, s: 5, u: 'root', t: 'me' };
const other: StoredOwner = { ...me, p: 200, s: 6, t: 'other' };
const ctx: BatchContext = { owner: me };
const typeOf = (n: string) => n.replace(/_[^_]*$/, '');
const acquire = (names: string[], nonce: string, ttlMs?: number): Member => ({ kind: 'acquire', names, nonce, ttlMs, types: new Map(names.map((n) => [n, typeOf(n)])) });
const release = (names: string[], nonce: string): Member => ({ kind: 'release', names, nonce });

function holding(doc: LockDocument, names: string[], owner: StoredOwner, nonce: string, token: number, ttlMs?: number): LockDocument {
  const r = T.acquire(doc, { names, typeOf, owner, nonce, token, now: 500, ttlMs });
  assert.ok(r.ok);
  return r.doc;
}

/**
 * What fastWrite's statement does to the document, in JavaScript: check the
 * guards, remove, then set with `f` from the new version. Lets the plan be held
 * to the transitions without a server (the differential integration test holds
 * the real statement to them).
 */
function simulate(doc: LockDocument, plan: FastPlan, version: number): LockDocument | undefined {
  const name = (path: string) => JSON.parse(path.slice('$.l.'.length)) as string;
  if (plan.sets.some((s) => Object.hasOwn(doc.l, name(s.path)))) return undefined;
  const holds = plan.holds ? (JSON.parse(plan.holds) as { l: Record<string, { n: string }> }).l : {};
  if (Object.entries(holds).some(([n, { n: nonce }]) => doc.l[n]?.n !== nonce)) return undefined;
  const l = { ...doc.l };
  for (const p of plan.removes) delete l[name(p)];
  for (const s of plan.sets) {
    // Format 4's short entry: `t` only where the name does not imply it.
    const { o: key, t, ...rest } = JSON.parse(s.json) as Omit<Entry, 'o' | 't'> & { o: string; t?: string };
    assert.equal(key, ownerKey(me));
    assert.equal(s.name, name(s.path));
    l[s.name] = { ...rest, t: t ?? impliedType(s.name), o: me, f: version + plan.bump - s.back };
  }
  return { ...doc, l };
}

describe('batch (pure)', () => {
  describe('planFast', () => {
    it('builds one statement: quoted paths, the owner record, nonce guards, the time, tokens counted back from the new version', () => {
      const fast = planFast([acquire(['app.task-1', '9lives'], 'n1', 30), release(['r_1'], 'nr'), acquire(['c_1'], 'n2')], ctx, 5000)!;
      const key = ownerKey(me);
      assert.deepEqual(fast.plan.sets.map((s) => s.path), ['$.l."app.task-1"', '$.l."9lives"', '$.l."c_1"']);
      assert.deepEqual(fast.plan.removes, ['$.l."r_1"']);
      assert.equal(fast.plan.holds, '{"l":{"r_1":{"n":"nr"}}}');
      assert.deepEqual(fast.plan.owner, { path: `$.o."${key}"`, json: ownerText(me) });
      assert.equal(fast.plan.bump, 2, 'two acquisitions: two tokens');
      assert.deepEqual(fast.plan.sets.map((s) => s.back), [1, 1, 0]);
      // Format 4's short form: no `t` (the name implies it).
      assert.deepEqual(JSON.parse(fast.plan.sets[0]!.json), { o: key, f: 0, n: 'n1', a: 5000, e: 5030 });
      assert.deepEqual(JSON.parse(planFast([{ kind: 'acquire', names: ['box_update'], nonce: 'n3', types: new Map([['box_update', 'box_update']]) }], ctx, 5000)!.plan.sets[0]!.json), { o: key, f: 0, n: 'n3', a: 5000, t: 'box_update' }, 'a type the name does not imply is written');
      assert.deepEqual(fast.plan.at, { ms: 5000, toleranceMs: CLOCK_TOLERANCE_MS });
      const out = applied([acquire(['app.task-1', '9lives'], 'n1', 30), release(['r_1'], 'nr'), acquire(['c_1'], 'n2')], fast, 42);
      assert.ok(out[0]?.kind === 'acquired' && out[2]?.kind === 'acquired');
      assert.deepEqual([out[0].entries['9lives']!.f, out[0].entries['app.task-1']!.f, out[2].entries.c_1!.f], [41, 41, 42]);
      assert.deepEqual(out[1], { kind: 'released', names: ['r_1'] });
    });

    it('has no owner record and bumps the version by one when it only releases', () => {
      const fast = planFast([release(['a', 'b'], 'x'), release(['c'], 'y')], ctx, 1)!;
      assert.equal(fast.plan.owner, undefined);
      assert.equal(fast.plan.bump, 1);
      assert.deepEqual(JSON.parse(fast.plan.holds!), { l: { a: { n: 'x' }, b: { n: 'x' }, c: { n: 'y' } } });
    });

    it('leaves out a member that names a lock an earlier member names: it is refused at once', () => {
      const members = [release(['a'], 'x'), acquire(['a', 'b'], 'y'), acquire(['c'], 'z')];
      const fast = planFast(members, ctx, 1)!;
      assert.deepEqual(fast.included, [true, false, true]);
      assert.deepEqual(fast.plan.sets.map((s) => s.path), ['$.l."c"']);
      assert.deepEqual(applied(members, fast, 9).map((o) => o.kind), ['released', 'refused', 'acquired']);
      assert.equal(planFast([], ctx, 1), undefined);
    });

    it('leads to the same document and outcomes as the transitions whenever its guards pass', () => {
      // Random batches on random documents: where the statement would apply, it must agree with
      // the transitions applied one member after another.
      let seed = 7;
      const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      let agreed = 0;
      for (let round = 0; round < 500; round++) {
        let doc = emptyDocument();
        const mine: Array<{ name: string; nonce: string }> = [];
        for (let i = 0; i < 6; i++) {
          const name = `l_${rand(10)}`;
          if (Object.hasOwn(doc.l, name)) continue;
          const ours = rand(2) === 0;
          doc = holding(doc, [name], ours ? me : other, `h${i}`, 1 + i);
          if (ours) mine.push({ name, nonce: `h${i}` });
        }
        const members: Member[] = [];
        for (let i = 0; i < 1 + rand(4); i++) {
          if (rand(2) === 0 && mine.length) {
            const m = mine.splice(rand(mine.length), 1)[0]!;
            members.push(release([m.name], rand(5) === 0 ? 'stale' : m.nonce));
          } else members.push(acquire([...new Set([`l_${rand(10)}`, `m_${rand(3)}`])], `new${i}`, rand(2) ? 100 : undefined));
        }
        const fast = planFast(members, ctx, 1000);
        if (!fast) continue;
        const written = simulate(doc, fast.plan, 50);
        if (!written) continue;
        let model = doc;
        let token = 51;
        members.forEach((m, i) => {
          if (!fast.included[i]) return;
          if (m.kind === 'release') {
            const r = T.release(model, m.names, m.nonce);
            assert.deepEqual(r.missing, []);
            model = r.doc;
          } else {
            const r = T.acquire(model, { names: m.names, typeOf, owner: me, nonce: m.nonce, token: token++, now: 1000, ttlMs: m.ttlMs });
            assert.ok(r.ok);
            model = r.doc;
          }
        });
        assert.deepEqual(written, model, JSON.stringify(members));
        const out = applied(members, fast, 50 + fast.plan.bump);
        members.forEach((m, i) => {
          const o = out[i]!;
          if (o.kind === 'acquired') for (const [n, e] of Object.entries(o.entries)) assert.deepEqual(e, model.l[n]);
        });
        agreed++;
      }
      assert.ok(agreed > 50, `only ${agreed} batches passed the guards: the test would prove little`);
    });
  });

  describe('settleFast', () => {
    const members = [acquire(['a', 'b'], 'n1'), release(['r'], 'nr'), acquire(['c'], 'n2', 100)];
    const fast = planFast(members, ctx, 1000)!;
    const before = holding(emptyDocument(), ['r'], me, 'nr', 1);
    const after = simulate(before, fast.plan, 9)!;
    const snap = { version: 11, now: 1050 };

    it('knows an applied statement by its nonces, and gives each acquisition its token', () => {
      const out = settleFast(after, snap, members, fast);
      assert.ok(out[0]?.kind === 'acquired' && out[2]?.kind === 'acquired');
      assert.deepEqual([out[0].entries.a!.f, out[0].entries.b!.f, out[2].entries.c!.f], [10, 10, 11]);
      assert.deepEqual(out[1], { kind: 'released', names: ['r'] });
    });

    it('says not applied when none of its nonces is there', () => {
      assert.deepEqual(settleFast(before, snap, members, fast), members.map(() => ({ kind: 'refused' })));
    });

    it('an applied acquisition that ran out or lost a name since is acquired anew, its remnant taken over', () => {
      const { a: _gone, ...rest } = after.l;
      const out = settleFast({ ...after, l: rest, r: [{ k: 'a', n: 'n1', w: 'wiped', at: 1 }] }, snap, members, fast);
      assert.deepEqual(out[0], { kind: 'refused', remnantAt: 11 });
      assert.equal(out[2]?.kind, 'acquired');
      const expired = settleFast(after, { version: 11, now: 5000 }, members, fast);
      assert.deepEqual(expired[2], { kind: 'refused', remnantAt: 11 }, 'c had a 100 ms lease');
      assert.equal(expired[0]?.kind, 'acquired');
    });

    it('for releases only: applied when none of the entries is left and no tombstone says another removed one', () => {
      const releases = [release(['r', 's'], 'nr')];
      const f = planFast(releases, ctx, 1)!;
      assert.deepEqual(settleFast(emptyDocument(), snap, releases, f), [{ kind: 'released', names: ['r', 's'] }]);
      assert.deepEqual(settleFast(holding(emptyDocument(), ['s'], me, 'nr', 1), snap, releases, f), [{ kind: 'refused' }]);
      const wiped = { ...emptyDocument(), r: [{ k: 's', n: 'nr', w: 'wiped' as const, at: 1 }] };
      assert.deepEqual(settleFast(wiped, snap, releases, f), [{ kind: 'refused' }], 'wiped first: the read-decide-write path reports it');
    });
  });

  it('combines up to MAX_BATCH_NAMES names', () => {
    const of = (n: number): Member => release(Array.from({ length: n }, (_, i) => `x${i}`), 'n');
    assert.equal(canJoin([of(MAX_BATCH_NAMES - 1)], of(1)), true);
    assert.equal(canJoin([of(MAX_BATCH_NAMES - 1)], of(2)), false);
  });
});

describe('fastStatement: which one-statement writes are prepared', () => {
  // Every batch of up to PREPARED_MAX_ENTRIES entries: acquires and releases of one or two names, alone or combined.
  const batches: Member[][] = [
    [acquire(['app_task_a'], 'n1')],
    [acquire(['app_task_a', 'app_backup_a'], 'n1')],
    [acquire(['app_task_a'], 'n1'), acquire(['app_task_b'], 'n2')],
    [release(['app_task_a'], 'n1')],
    [release(['app_task_a', 'app_backup_a'], 'n1')],
    [release(['app_task_a'], 'n1'), release(['app_task_b'], 'n2')],
    [acquire(['app_task_a'], 'n1'), release(['app_task_b'], 'n2')],
    [release(['app_task_b'], 'n2'), acquire(['app_task_a'], 'n1', 60_000)],
  ];

  it(`prepares at most 5 distinct statements, whatever the names, nonces and order (PREPARED_MAX_ENTRIES = ${PREPARED_MAX_ENTRIES})`, () => {
    const prepared = new Set<string>();
    for (const members of batches) {
      const { sql, prepared: isPrepared, values } = fastStatement('`locks`', 'platform', planFast(members, ctx, 1_000)!.plan);
      assert.ok(isPrepared, sql);
      assert.equal(sql.split('?').length - 1, values.length, 'one value per placeholder');
      prepared.add(sql);
    }
    assert.equal(prepared.size, 5);
  });

  it('sends a larger batch as text, and never puts a name or a nonce in the statement text', () => {
    const members = [acquire(['app_task_a', 'app_backup_a'], 'nonce1'), release(['app_task_b'], 'nonce2')];
    const { sql, prepared, values } = fastStatement('`locks`', 'platform', planFast(members, ctx, 1_000)!.plan);
    assert.equal(prepared, false);
    for (const secret of ['app_task_a', 'app_task_b', 'nonce1', 'nonce2', 'platform']) assert.ok(!sql.includes(secret), secret);
    assert.ok(values.some((v) => String(v).includes('nonce1')));
  });
});

describe('planFast and conflict rules (guards)', () => {
  const guarded = (names: string[], nonce: string, guards: string[]): Member => ({ ...acquire(names, nonce), guards } as Member);

  it('refuses the statement while a guard is held, held shared or waited for: its path (any map: l, s, q) is in the NOT JSON_CONTAINS_PATH', () => {
    const fast = planFast([guarded(['app_task_a'], 'n1', ['box_update'])], ctx, 1_000)!;
    assert.deepEqual(fast.plan.guards, ['box_update']);
    const { sql, values } = fastStatement('`locks`', 'platform', fast.plan);
    assert.match(sql, /NOT JSON_CONTAINS_PATH\(dataJson, 'one', \?, \?\)/);
    for (const p of ['$.*."app_task_a"', '$.*."box_update"']) assert.ok(values.includes(p), p);
  });

  it('leaves out a member whose guard an earlier member takes or releases, and one that takes an earlier member\'s guard', () => {
    const a = guarded(['app_task_a'], 'n1', ['box_update']);
    const box = acquire(['box_update'], 'n2');
    assert.deepEqual(planFast([box, a], ctx, 1_000)!.included, [true, false]);
    assert.deepEqual(planFast([a, box], ctx, 1_000)!.included, [true, false], 'both sides of a rule in one statement could both apply');
    assert.deepEqual(planFast([release(['box_update'], 'n0'), a], ctx, 1_000)!.included, [true, false]);
    assert.deepEqual(planFast([a, guarded(['app_task_b'], 'n3', ['box_update'])], ctx, 1_000)!.included, [true, true], 'two members of one side go together');
    assert.deepEqual(planFast([a, guarded(['app_task_b'], 'n3', ['box_update'])], ctx, 1_000)!.plan.guards, ['box_update'], 'once');
  });

  it('prepares a statement with one guard (3 more shapes at most), and sends two as text', () => {
    const shapes = new Set<string>();
    for (const members of [
      [guarded(['app_task_a'], 'n1', ['box_update'])],
      [guarded(['app_task_a', 'app_backup_a'], 'n1', ['box_update'])],
      [guarded(['app_task_a'], 'n1', ['box_update']), guarded(['app_task_b'], 'n2', ['box_update'])],
      [guarded(['app_task_a'], 'n1', ['box_update']), release(['app_task_b'], 'n2')],
    ]) {
      const st = fastStatement('`locks`', 'platform', planFast(members, ctx, 1_000)!.plan);
      assert.ok(st.prepared, st.sql);
      shapes.add(st.sql);
    }
    assert.equal(shapes.size, 3);
    assert.equal(fastStatement('`locks`', 'platform', planFast([guarded(['x_1'], 'n1', ['g_1', 'g_2'])], ctx, 1_000)!.plan).prepared, false);
  });
});

describe('planFast: fair waiting\'s take from the front of the line', () => {
  const take = (name: string, nonce: string, waiter: string, guards?: string[]): Member => ({ ...acquire([name], nonce), waiter, ...(guards ? { guards } : {}) } as Member);

  it('checks that the name is held by no one and that its intent is first in line, and removes the intent: the line or `q` when left empty', () => {
    const fast = planFast([take('app_task_a', 'n1', 'w1')], ctx, 1_000)!;
    assert.deepEqual(fast.plan.sets.map((s) => [s.name, s.waiter]), [['app_task_a', 'w1']]);
    const { sql, values, prepared } = fastStatement('`locks`', 'platform', fast.plan);
    assert.ok(prepared, 'a take alone is prepared');
    assert.equal(sql.split('?').length - 1, values.length, 'one value per placeholder');
    assert.match(sql, /JSON_REMOVE\(dataJson, CASE WHEN JSON_LENGTH\(dataJson, \?\) > 1 THEN \? WHEN JSON_LENGTH\(dataJson, '\$\.q'\) > 1 THEN \? ELSE '\$\.q' END\)/);
    assert.match(sql, /AND JSON_UNQUOTE\(JSON_EXTRACT\(dataJson, \?\)\) = \?/);
    for (const v of ['$.q."app_task_a"', '$.q."app_task_a"[0]', '$.l."app_task_a"', '$.s."app_task_a"', '$.q."app_task_a"[0].n', 'w1']) assert.ok(values.includes(v), v);
    assert.ok(!values.includes('$.*."app_task_a"'), 'its own intent is in $.q: held by no one is the check');
  });

  it('takes one name per statement, one take per statement: the others are refused at once (decided from a read)', () => {
    assert.deepEqual(planFast([take('app_task_a', 'n1', 'w1'), take('app_task_b', 'n2', 'w2')], ctx, 1_000)!.included, [true, false]);
    assert.deepEqual(planFast([{ ...acquire(['app_task_a', 'app_task_b'], 'n1'), waiter: 'w1' } as Member], ctx, 1_000), undefined);
    assert.deepEqual(planFast([take('app_task_a', 'n1', 'w1'), acquire(['app_task_b'], 'n2'), release(['app_task_c'], 'n3')], ctx, 1_000)!.included, [true, true, true]);
  });

  it('is prepared alone (2 more shapes: with and without a guard); combined with others it goes as text', () => {
    const shapes = new Set<string>();
    for (const members of [[take('app_task_a', 'n1', 'w1')], [take('app_task_b', 'n2', 'w9')], [take('app_task_a', 'n1', 'w1', ['box_update'])]]) {
      const st = fastStatement('`locks`', 'platform', planFast(members, ctx, 1_000)!.plan);
      assert.ok(st.prepared);
      shapes.add(st.sql);
    }
    assert.equal(shapes.size, 2);
    assert.equal(fastStatement('`locks`', 'platform', planFast([take('app_task_a', 'n1', 'w1'), release(['app_task_b'], 'n2')], ctx, 1_000)!.plan).prepared, false);
  });
});
