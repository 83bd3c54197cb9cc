// npm run bench:statements [-- --quick]
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
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { createLockTable, type LockTable } from '../lib/index.js';
import { planFast, type Member } from '../lib/batch.js';
import { toStoredOwner } from '../lib/document.js';
import { currentOwner } from '../lib/owner.js';
import { fastWrite, SYSDATE_MS, SYSDATE_SAFE } from '../lib/store.js';
import { nonce as newNonce } from '../lib/nonce.js';
import { runBench } from './contenders.js';
import { percentile } from './measure.js';

const ROOT = path.join(__dirname, '..', '..');
const QUICK = process.argv.includes('--quick');
const T = QUICK ? { block: 20, blocks: 20, concurrentMs: 500, rounds: 1 } : { block: 50, blocks: 80, concurrentMs: 2_000, rounds: 3 };

type Pool = mysql.Pool;
/** One cycle of a step for caller `j` (its own name), on its own row `id` (the library's space of that name). */
type Cycle = (on: { pool: Pool; id: string; table: LockTable }, j: number) => Promise<void>;

const EMPTY = '{"v":2,"o":{},"l":{}}';
const OWNER = toStoredOwner(currentOwner({ taskId: 'statements' }));
const OWNER_PATH = '$.o."0123456789abcdef"';
const OWNER_JSON = JSON.stringify(OWNER);
const entryPath = (j: number) => `$.l."app_task_s${j}"`;
const entryJson = (nonce: string) => JSON.stringify({ t: 'app_task', o: '0123456789abcdef', f: 0, n: nonce, a: Date.now() });
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
      await must(pool, `UPDATE locks SET ${version}, dataJson = ? WHERE id = ?`, [`{"v":2,"o":{},"l":{"app_task_s${j}":${entryJson(nonce)}}}`, id]);
      await must(pool, `UPDATE locks SET ${version}, dataJson = ? WHERE id = ?`, [EMPTY, id]);
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
      [p, entryJson(nonce), id, ...(parts.guard ? [p] : []), ...(parts.clock ? clock() : [])],
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
  { id: 'guard', what: "+ names free / held: JSON_CONTAINS_PATH (the issue's prototype)", cycle: step({ lastInsertId: true, json: true, guard: true }) },
  { id: 'checksum', what: '+ checksum guard: dataCrc = CRC32(dataJson)', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true }) },
  { id: 'clock', what: '+ clock guard: SYSDATE within 250 ms', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true, clock: true }) },
  { id: 'nonce', what: '+ release checks the nonce: JSON_CONTAINS', cycle: step({ lastInsertId: true, json: true, guard: true, crc: true, clock: true, nonce: true }) },
  { id: 'fastWrite', what: "locktable's statements (+ owner record, token from version)", cycle: fastPath },
  { id: 'library', what: 'locktable: acquire() + release() (16 callers: combined by the gate)', cycle: library },
];

// Every step on the same kind of pool: prepared statements, no stack trace per statement (as locktable's own pools).
runBench('statements', { connectionLimit: 16, trace: false }, async ({ pool }) => {
  for (const s of STEPS) await pool.query('INSERT INTO locks (id, version, dataJson, dataCrc) VALUES (?, 0, ?, CRC32(dataJson))', [s.id, EMPTY]);
  const table = createLockTable({ db: pool, space: 'library', owner: { taskId: 'statements' } });
  const cycles = new Map(STEPS.map((s) => [s.id, (j: number) => s.cycle({ pool, id: s.id, table }, j)]));
  const version = ((await pool.query('SELECT VERSION() AS v'))[0] as Array<{ v: string }>)[0]!.v;
  console.log(`statement costs on ${os.cpus().length} x ${os.cpus()[0]?.model}, ${version}, node ${process.version}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

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
  const report = { date: new Date().toISOString(), mode: QUICK ? 'quick' : 'full', server: version, node: process.version, timing: T, single, concurrent };
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.date.slice(0, 19).replace(/[:T]/g, '-')}-statements${QUICK ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`\nresults: ${path.relative(ROOT, file)}`);
});
