// npm run bench:statements [-- --quick] [-- --held=1000]
//
// Where one caller's acquire+release cycle goes, statement part by statement
// part. The one-statement acquire and release are built up from a bare UPDATE
// one clause at a time, each step a cycle of two prepared statements on a row
// of its own, and the last steps are locktable's own statements (lib/store.ts
// fastWrite) and the library itself. Every step runs in short blocks, the
// steps taking turns, and each block is compared with the bare UPDATE's block
// next to it: the ratio is the median of those paired ratios, so load that
// drifts over the run falls on every step alike.
//
// Then the same steps with 16 connections of one process queued on the row:
// what each clause costs once writers wait for the row's lock.
//
// --held=N: every step's row (and the library's space) holds N other locks
// of another owner, so each statement works on a document of that size (1,000:
// the bench's held-1000 scenario). The steps then also include the library's
// statements on that document as format 3 stored it (type in every entry,
// 16-hex owner keys, the spacing MariaDB's JSON functions leave): what format
// 4's shorter entries save, same statements, same run.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { createLockTable, type LockTable } from '../lib/index.js';
import { planFast, type Member } from '../lib/batch.js';
import { ownerKey, serializeDocument, toStoredOwner, type Entry, type LockDocument } from '../lib/document.js';
import { currentOwner } from '../lib/owner.js';
import { anyMapPath, fastWrite, SYSDATE_MS, SYSDATE_SAFE } from '../lib/store.js';
import { nonce as newNonce } from '../lib/nonce.js';
import { heldName, runBench } from './contenders.js';
import { percentile } from './measure.js';

const ROOT = path.join(__dirname, '..', '..');
const QUICK = process.argv.includes('--quick');
const HELD = Number(process.argv.find((a) => a.startsWith('--held='))?.slice('--held='.length) ?? 0);
if (!Number.isSafeInteger(HELD) || HELD < 0) throw new Error('--held=N: N other locks held, an integer >= 0');
const T = QUICK ? { block: 20, blocks: 20, concurrentMs: 500, rounds: 1 } : { block: 50, blocks: 80, concurrentMs: 2_000, rounds: 3 };

type Pool = mysql.Pool;
/** One cycle of a step for caller `j` (its own name), on its own row `id` (the library's space of that name). */
type Cycle = (on: { pool: Pool; id: string; table: LockTable }, j: number) => Promise<void>;

const OWNER = toStoredOwner(currentOwner({ taskId: 'statements' }));
const FILLER = toStoredOwner(currentOwner({ taskId: 'filler' }));
/** The other locks every row holds (--held), as the library keeps them in memory. */
const HELD_DOC: LockDocument = { v: 4, l: {} };
for (let i = 0; i < HELD; i++) HELD_DOC.l[heldName(i)] = { t: 'app_task', o: FILLER, f: i + 1, n: newNonce(), a: Date.now() };
/** Each step's row at the start: the other locks, stored as locktable's full write stores them. */
const BASE = serializeDocument(HELD_DOC);
/** The same locks as format 3 stored them (before the server's JSON functions respace it: see below). */
const FORMAT_3 = (() => {
  const key = '0123456789abcdef';
  const l = Object.fromEntries(Object.entries(HELD_DOC.l).map(([name, e]) => [name, { t: e.t, o: key, f: e.f, n: e.n, a: e.a }]));
  return JSON.stringify({ v: 3, o: { [key]: FILLER }, l });
})();
const entryPath = (j: number) => `$.l."app_task_s${j}"`;
const entryJson = (nonce: string) => JSON.stringify({ o: ownerKey(OWNER), f: 0, n: nonce, a: Date.now() });
/** The 'text' step's document with caller j's entry in it (made once per caller: the step measures the server, not JSON.stringify). */
const withEntry = new Map<number, string>();
const textWith = (j: number) => {
  let text = withEntry.get(j);
  if (text === undefined) {
    text = serializeDocument({ ...HELD_DOC, l: { ...HELD_DOC.l, [`app_task_s${j}`]: { t: 'app_task', o: OWNER, f: 1, n: newNonce(), a: Date.now() } as Entry } });
    withEntry.set(j, text);
  }
  return text;
};
const clock = () => [Date.now(), 250];

async function must(pool: Pool, sql: string, values: Array<string | number>): Promise<void> {
  const [res] = await pool.execute(sql, values);
  if ((res as { affectedRows: number }).affectedRows !== 1) throw new Error(`refused: ${sql}`);
}

/** A step: its acquire and its release statement, from the parts that make them up. */
function step(parts: { lastInsertId?: boolean; text?: boolean; json?: boolean; guard?: boolean; crc?: boolean; clock?: boolean; nonce?: boolean }): Cycle {
  const version = parts.lastInsertId ? 'version = LAST_INSERT_ID(version + 1)' : 'version = version + 1';
  const crcSet = parts.crc ? ', dataCrc = CRC32(dataJson)' : '';
  const crcWhere = parts.crc ? ' AND dataCrc = CRC32(dataJson)' : '';
  const clockWhere = parts.clock ? ` AND ${SYSDATE_SAFE} AND ABS(? - ${SYSDATE_MS}) <= ?` : '';
  return async ({ pool, id }, j) => {
    const nonce = newNonce();
    if (parts.text) {
      // The document written whole, as text of another length each time: what a row of changing length costs.
      await must(pool, `UPDATE locks SET ${version}, dataJson = ? WHERE id = ?`, [textWith(j), id]);
      await must(pool, `UPDATE locks SET ${version}, dataJson = ? WHERE id = ?`, [BASE, id]);
      return;
    }
    if (!parts.json) {
      await must(pool, `UPDATE locks SET ${version} WHERE id = ?`, [id]);
      await must(pool, `UPDATE locks SET ${version} WHERE id = ?`, [id]);
      return;
    }
    const p = entryPath(j);
    await must(
      pool,
      `UPDATE locks SET ${version}, dataJson = JSON_SET(dataJson, ?, JSON_EXTRACT(?, '$'))${crcSet} WHERE id = ?${crcWhere}${parts.guard ? " AND NOT JSON_CONTAINS_PATH(dataJson, 'one', ?)" : ''}${clockWhere}`,
      [p, entryJson(nonce), id, ...(parts.guard ? [anyMapPath(`app_task_s${j}`)] : []), ...(parts.clock ? clock() : [])],
    );
    const held = parts.nonce ? ' AND JSON_CONTAINS(dataJson, ?)' : parts.guard ? " AND JSON_CONTAINS_PATH(dataJson, 'one', ?)" : '';
    const heldValue = parts.nonce ? [JSON.stringify({ l: { [`app_task_s${j}`]: { n: nonce } } })] : parts.guard ? [p] : [];
    await must(pool, `UPDATE locks SET ${version}, dataJson = JSON_REMOVE(dataJson, ?)${crcSet} WHERE id = ?${crcWhere}${held}${clockWhere}`, [p, id, ...heldValue, ...(parts.clock ? clock() : [])]);
  };
}

/** locktable's own two statements, as lib/batch.ts plans them and lib/store.ts sends them. */
const fastPath: Cycle = async ({ pool, id }, j) => {
  const names = [`app_task_s${j}`];
  const nonce = newNonce();
  const ctx = { owner: OWNER };
  for (const member of [{ kind: 'acquire', names, nonce, types: new Map([[names[0]!, 'app_task']]) }, { kind: 'release', names, nonce }] as Member[]) {
    const fast = planFast([member], ctx, Date.now())!;
    if ((await fastWrite(pool, "`locks`", id, fast.plan)) === undefined) throw new Error(`refused: ${member.kind}`);
  }
};

const library: Cycle = async ({ table }, j) => {
  await table.release(await table.acquire(`app_task_s${j}`));
};

const STEPS: Array<{ id: string; what: string; cycle: Cycle }> = [
  { id: 'bare', what: 'bare UPDATE x2 (the limit)', cycle: step({}) },
  { id: 'last-insert-id', what: '+ version = LAST_INSERT_ID(version + 1)', cycle: step({ lastInsertId: true }) },
  { id: 'text', what: '(aside) + the document written as text whose length changes, no JSON functions', cycle: step({ lastInsertId: true, text: true }) },
  { id: 'json', what: '+ JSON_SET / JSON_REMOVE of the entry', cycle: step({ lastInsertId: true, json: true }) },
  { id: 'guard', what: "+ names free / held: JSON_CONTAINS_PATH (the issue's prototype; the name in any map, `$.*.\"name\"`)", cycle: step({ lastInsertId: true, json: true, guard: true }) },
  { id: 'checksum', what: '+ checksum guard: dataCrc = CRC32(dataJson)', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true }) },
  { id: 'clock', what: '+ clock guard: SYSDATE within 250 ms', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true, clock: true }) },
  { id: 'nonce', what: '+ release checks the nonce: JSON_CONTAINS', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true, clock: true, nonce: true }) },
  { id: 'fastWrite', what: "locktable's statements (+ owner record, token from version)", cycle: fastPath },
  ...(HELD ? [{ id: 'fastWrite-f3', what: "(aside) locktable's statements on the document as format 3 stored it", cycle: fastPath }] : []),
  { id: 'library', what: 'locktable: acquire() + release() (16 callers: combined by the gate)', cycle: library },
];

// Every step on the same kind of pool: prepared statements, no stack trace per statement (as locktable's own pools).
runBench('statements', { connectionLimit: 16, trace: false }, async ({ pool }) => {
  // Format 3 as it was stored: every one-statement write respaced it (JSON_SET and JSON_REMOVE
  // return MariaDB's spaced form), as the server itself does it.
  const [[{ f3 }]] = (await pool.query(`SELECT CAST(JSON_SET(?, '$.v', 3) AS CHAR) AS f3`, [FORMAT_3])) as unknown as [[{ f3: string }]];
  for (const s of STEPS) await pool.query('INSERT INTO locks (id, version, dataJson, dataCrc) VALUES (?, 0, ?, CRC32(dataJson))', [s.id, s.id === 'fastWrite-f3' ? f3 : BASE]);
  const table = createLockTable({ db: pool, space: 'library', owner: { taskId: 'statements' } });
  const cycles = new Map(STEPS.map((s) => [s.id, (j: number) => s.cycle({ pool, id: s.id, table }, j)]));
  const version = ((await pool.query('SELECT VERSION() AS v'))[0] as Array<{ v: string }>)[0]!.v;
  const [sizes] = await pool.query('SELECT id, LENGTH(dataJson) AS n FROM locks');
  const bytes = Object.fromEntries((sizes as Array<{ id: string; n: number }>).map((r) => [r.id, Number(r.n)]));
  console.log(`statement costs on ${os.cpus().length} x ${os.cpus()[0]?.model}, ${version}, node ${process.version}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (HELD) console.log(`${HELD} other locks held: documents of ${bytes.fastWrite} bytes (format 4), ${bytes['fastWrite-f3']} (format 3 as stored), library ${bytes.library}`);

  // One caller: paired blocks.
  for (const s of STEPS) for (let i = 0; i < 100; i++) await cycles.get(s.id)!(0);
  const blocks = new Map<string, number[]>(STEPS.map((s) => [s.id, []]));
  for (let b = 0; b < T.blocks; b++) {
    for (const s of b % 2 ? [...STEPS].reverse() : STEPS) {
      const run = cycles.get(s.id)!;
      const t0 = performance.now();
      for (let i = 0; i < T.block; i++) await run(0);
      blocks.get(s.id)!.push(((performance.now() - t0) / T.block) * 1000);
    }
  }
  const bare = blocks.get('bare')!;
  const single = STEPS.map((s) => {
    const us = blocks.get(s.id)!;
    return { step: s.id, what: s.what, usPerCycle: Math.round(percentile(us, 50)), ofBare: +percentile(us.map((u, i) => bare[i]! / u), 50).toFixed(3) };
  });

  // 16 connections of one process on the row, each on its own name.
  const concurrent: Array<{ step: string; cyclesPerSec: number }> = [];
  for (const s of STEPS) {
    const rates: number[] = [];
    for (let round = 0; round < T.rounds; round++) {
      const run = cycles.get(s.id)!;
      const end = performance.now() + T.concurrentMs;
      let n = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 16 }, async (_, j) => {
        while (performance.now() < end) {
          await run(j);
          n++;
        }
      }));
      rates.push((n * 1000) / (performance.now() - t0));
    }
    concurrent.push({ step: s.id, cyclesPerSec: Math.round(percentile(rates, 50)) });
  }
  await table.close();

  const bare16 = concurrent[0]!.cyclesPerSec;
  console.log('\n| step | 1 caller: µs/cycle | × bare (paired) | 16 connections: cycles/s | × bare |');
  console.log('|---|---:|---:|---:|---:|');
  single.forEach((r, i) => {
    const c = concurrent[i]!.cyclesPerSec;
    console.log(`| ${r.what} | ${r.usPerCycle} | ${r.ofBare.toFixed(2)} | ${c} | ${(c / bare16).toFixed(2)} |`);
  });
  const report = { date: new Date().toISOString(), mode: QUICK ? 'quick' : 'full', held: HELD, bytes, server: version, node: process.version, load: os.loadavg(), timing: T, single, concurrent };
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.date.slice(0, 19).replace(/[:T]/g, '-')}-statements${HELD ? `-held${HELD}` : ''}${QUICK ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`\nresults: ${path.relative(ROOT, file)}`);
});
