// npm run bench [-- --quick | --soak | --only=a,b]
//
// In one run against one server: locktable and the three baselines of
// bench/contenders.ts, over the scenarios below, each in a database of its own
// (created, migrated, dropped). Prints a table, checks the targets of the
// performance issue, writes bench/results/<date>-<mode>.json and a chart: docs/bench.svg
// for a full run (the README shows it), next to the results for --quick.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mysql from 'mysql2/promise';
import { CONTENDERS, createDatabase, SERVER, type Contender, type ContenderName, type Place } from './contenders.js';
import type { ChildConfig } from './child.js';
import { drive, merge, percentile, summarise, type Sample, type Summary } from './measure.js';
import { renderChart } from './chart.js';

const ROOT = path.join(__dirname, '..', '..');
const CHILD = path.join(__dirname, 'child.js');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const SOAK_ONLY = args.includes('--soak');
const ONLY = args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');

// runMs is each contender's measured time in a scenario, cut into `rounds` slices (in-process) or `processRounds` runs.
const T = QUICK
  ? { warmMs: 150, runMs: 500, rounds: 2, processRounds: 1, handoffMs: 1_000, soakMs: 0 }
  : { warmMs: 500, runMs: 5_000, rounds: 5, processRounds: 2, handoffMs: 8_000, soakMs: 60_000 };

type Scenario =
  | { id: string; kind: 'callers'; callers: number; held: number; note: string }
  | { id: string; kind: 'processes'; processes: number; held: number; note: string }
  | { id: string; kind: 'handoff'; processes: number; note: string }
  | { id: string; kind: 'soak'; callers: number; note: string }
  | { id: string; kind: 'fairness'; streamers: number; holdMs: number; note: string };

const SCENARIOS: Scenario[] = [
  { id: 'callers-1', kind: 'callers', callers: 1, held: 0, note: '1 caller, distinct names' },
  { id: 'callers-4', kind: 'callers', callers: 4, held: 0, note: '4 callers in one process' },
  { id: 'callers-16', kind: 'callers', callers: 16, held: 0, note: '16 callers in one process' },
  { id: 'callers-64', kind: 'callers', callers: 64, held: 0, note: '64 callers in one process' },
  { id: 'processes-16', kind: 'processes', processes: 16, held: 0, note: '16 processes, 1 caller each' },
  { id: 'held-100', kind: 'callers', callers: 1, held: 100, note: '1 caller, 100 other locks held' },
  { id: 'held-1000', kind: 'callers', callers: 1, held: 1000, note: '1 caller, 1,000 other locks held' },
  { id: 'handoff-16', kind: 'handoff', processes: 16, note: 'one name, 16 waiting processes: release -> next acquire elsewhere' },
  { id: 'soak-64', kind: 'soak', callers: 64, note: 'RSS of a process with 64 callers over 60 s' },
  {
    id: 'fairness',
    kind: 'fairness',
    streamers: 3,
    holdMs: 50,
    note: 'a box update waits for box_update + app_task_a + app_task_b while 3 tasks per name keep taking them (50 ms each): its wait, fair and barging',
  },
];

interface Result {
  scenario: string;
  contender: ContenderName;
  summary: Summary;
  /** Document size at the end (locktable and original), bytes. */
  docBytes?: number;
  handoffs?: number;
  rss?: { samples: Array<[number, number]>; firstMB: number; lastMB: number; maxMB: number; flat: boolean };
  /** fairness: the waits of the first-in-line waiter (ms), how many timed out, and the app tasks completed per second meanwhile. */
  fairness?: { mode: 'fair' | 'barging'; trials: number; timeouts: number; maxMs: number; p50Ms: number; tasksPerSec: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function docBytes(place: Place): Promise<number | undefined> {
  const conn = await mysql.createConnection({ uri: place.url });
  try {
    const [rows] = await conn.query("SELECT MAX(LENGTH(dataJson)) AS n FROM locks WHERE id IN ('platform', 'original')");
    const n = (rows as Array<{ n: number | null }>)[0]?.n;
    return n === null || n === undefined ? undefined : Number(n);
  } finally {
    await conn.end();
  }
}

interface Child {
  pid: number;
  result: Promise<unknown>;
  go(startAt: number): void;
}

async function startChild(config: ChildConfig): Promise<Child> {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout! });
  // 'close', not 'exit': it comes after the child's output has all been read, so
  // a child that printed its result and exited is never taken for one that died.
  const exited = new Promise<never>((_, reject) => child.once('close', (code) => reject(new Error(`bench child exited with ${code} before its result: ${stderr}`))));
  const ready = new Promise<{ pid: number }>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l))));
  const { pid } = await Promise.race([ready, exited]);
  const result = Promise.race([
    new Promise((resolve) => lines.on('line', (l) => {
      const msg = JSON.parse(l);
      if (msg.result) resolve(msg.result);
    })),
    exited,
  ]);
  result.catch(() => {});
  return { pid, result, go: (startAt) => child.stdin!.write(`${JSON.stringify({ startAt })}\n`) };
}

async function runChildren(configs: ChildConfig[]): Promise<unknown[]> {
  const children = await Promise.all(configs.map(startChild));
  const startAt = Date.now() + 200;
  for (const c of children) c.go(startAt);
  return Promise.all(children.map((c) => c.result));
}

/** The contenders in a different order each round, so that none always runs first (or right after another). */
function rotated<T>(xs: T[], round: number): T[] {
  const k = round % xs.length;
  const r = [...xs.slice(k), ...xs.slice(0, k)];
  return round % 2 ? r.reverse() : r;
}

/**
 * Runs one scenario for every contender that applies, each in a database of
 * its own. The measured time is cut into rounds, and each round runs the
 * contenders in another order: on a shared machine the load drifts, and this
 * spreads it over all of them instead of over whoever ran at a bad moment.
 */
async function runScenario(s: Scenario): Promise<Result[]> {
  if (s.kind === 'fairness') return runFairness(s);
  const contenders = CONTENDERS.filter((c) => (s.kind === 'handoff' ? c.locks : s.kind === 'soak' ? c.name === 'locktable' : true));
  const dbs = new Map<ContenderName, { place: Place; drop(): Promise<void>; undo(): Promise<void> }>();
  try {
    await Promise.all(
      contenders.map(async (c) => {
        const db = await createDatabase(`${s.id}_${c.name}`);
        dbs.set(c.name, { ...db, undo: async () => {} });
        dbs.get(c.name)!.undo = await c.prepare(db.place, 'held' in s ? s.held : 0);
      }),
    );
    const samples = new Map<ContenderName, Sample[]>(contenders.map((c) => [c.name, []]));
    const results: Result[] = [];
    if (s.kind === 'callers') {
      const names = Array.from({ length: s.callers }, (_, i) => `app_task_c${i}`);
      for (let round = 0; round < T.rounds; round++) {
        for (const c of rotated(contenders, round)) {
          // A session per slice: four contenders' connections open at once would exceed a default max_connections.
          const session = await c.open(dbs.get(c.name)!.place, s.callers);
          try {
            const warm = round === 0 ? T.warmMs : 100;
            const now = performance.now();
            samples.get(c.name)!.push(await drive(session, names, now + warm, now + warm + T.runMs / T.rounds));
          } finally {
            await session.close();
          }
          await sleep(50);
        }
      }
      for (const c of contenders) {
        const r: Result = { scenario: s.id, contender: c.name, summary: summarise(merge(samples.get(c.name)!, 'sequential')) };
        const bytes = await docBytes(dbs.get(c.name)!.place);
        if (bytes !== undefined && (c.name === 'locktable' || c.name === 'original')) r.docBytes = bytes;
        results.push(r);
      }
      return results;
    }
    if (s.kind === 'processes') {
      for (let round = 0; round < T.processRounds; round++) {
        for (const c of rotated(contenders, round)) {
          const place = dbs.get(c.name)!.place;
          const got = (await runChildren(
            Array.from({ length: s.processes }, (_, j) => ({ mode: 'cycles' as const, contender: c.name, place, names: [`app_task_p${j}`], warmMs: T.warmMs, runMs: T.runMs / T.processRounds })),
          )) as Sample[];
          samples.get(c.name)!.push(merge(got, 'parallel'));
        }
      }
      return contenders.map((c) => ({ scenario: s.id, contender: c.name, summary: summarise(merge(samples.get(c.name)!, 'sequential')) }));
    }
    if (s.kind === 'handoff') {
      const runs = new Map<ContenderName, HandoffRun[]>(contenders.map((c) => [c.name, []]));
      for (let round = 0; round < T.processRounds; round++) {
        for (const c of rotated(contenders, round)) {
          const place = dbs.get(c.name)!.place;
          runs.get(c.name)!.push(
            (await runChildren(
              Array.from({ length: s.processes }, () => ({ mode: 'handoff' as const, contender: c.name, place, name: 'app_task_hot', warmMs: T.warmMs, runMs: T.handoffMs / T.processRounds, holdMs: 2, pauseMs: [5, 25] as [number, number] })),
            )) as HandoffProcess[],
          );
        }
      }
      return contenders.map((c) => ({ scenario: s.id, contender: c.name, ...handoffSummary(runs.get(c.name)!) }));
    }
    const c = contenders[0]!;
    const [soak] = (await runChildren([
      { mode: 'soak', contender: c.name, place: dbs.get(c.name)!.place, names: Array.from({ length: s.callers }, (_, i) => `app_task_s${i}`), warmMs: 2_000, runMs: T.soakMs },
    ])) as Array<Sample & { samples: Array<[number, number]> }>;
    return [{ scenario: s.id, contender: c.name, summary: summarise(soak!), rss: rssSummary(soak!.samples) }];
  } finally {
    for (const db of dbs.values()) {
      await db.undo().catch(() => {});
      await db.drop();
    }
  }
}

/**
 * Fair waiting: streams of app tasks keep app_task_a and app_task_b held (one
 * table per name, `streamers` tasks each, a release wakes the next task of the
 * table at once), while a box update waits for both names and box_update, over
 * and over: how long it waits, with the line (fair) and without it (barging,
 * as every waiter did before). A wait is given up after 10 s (a timeout).
 */
async function runFairness(s: Extract<Scenario, { kind: 'fairness' }>): Promise<Result[]> {
  const { createLockTable } = await import('../lib/index.js');
  const db = await createDatabase(`${s.id}_locktable`);
  const results: Result[] = [];
  try {
    for (const mode of ['fair', 'barging'] as const) {
      const barge = mode === 'barging';
      const streams = ['app_task_a', 'app_task_b'].map((name) => ({ name, table: createLockTable({ db: db.place.url, owner: { taskId: `stream_${name}` }, poolSize: 4 }) }));
      const box = createLockTable({ db: db.place.url, owner: { taskId: 'box' } });
      let stop = false;
      let tasks = 0;
      const loops = streams.flatMap(({ name, table }) =>
        Array.from({ length: s.streamers }, async () => {
          while (!stop) {
            const lease = await table.wait(name as never, { barge });
            await sleep(s.holdMs);
            await table.release(lease);
            tasks++;
          }
        }),
      );
      const waits: number[] = [];
      let timeouts = 0;
      await sleep(T.warmMs);
      const from = performance.now();
      const tasksFrom = tasks;
      while (performance.now() - from < T.handoffMs * 2) {
        const t0 = performance.now();
        try {
          const lease = await box.wait(['box_update', 'app_task_a', 'app_task_b'], { timeoutMs: 10_000, barge });
          waits.push(performance.now() - t0);
          await sleep(s.holdMs);
          await box.release(lease);
        } catch (err) {
          if ((err as { code?: string }).code !== 'ETIMEDOUT') throw err;
          timeouts++;
          waits.push(performance.now() - t0);
        }
        await sleep(100);
      }
      const tasksPerSec = ((tasks - tasksFrom) * 1000) / (performance.now() - from);
      stop = true;
      await Promise.allSettled(loops);
      await Promise.all([box.close(), ...streams.map((x) => x.table.close())]);
      const fairness = { mode, trials: waits.length, timeouts, maxMs: Math.max(...waits), p50Ms: percentile(waits, 50), tasksPerSec };
      results.push({
        scenario: `${s.id}-${mode}`,
        contender: 'locktable',
        summary: summarise({ cycles: waits.length, windowMs: performance.now() - from, latencies: waits, statements: 0, errors: timeouts }),
        fairness,
      });
      console.log(`  ${s.id}-${mode}: first-in-line waiter max ${fairness.maxMs.toFixed(0)} ms, p50 ${fairness.p50Ms.toFixed(0)} ms, ${timeouts}/${waits.length} timed out; ${tasksPerSec.toFixed(1)} app tasks/s`);
    }
  } finally {
    await db.drop();
  }
  return results;
}

type HandoffProcess = { pid: number; events: Array<['a' | 'r', number]>; windowFrom: number; windowTo: number; statements: number };
/** The processes of one handoff run. */
type HandoffRun = HandoffProcess[];

/** Every release followed by an acquisition in another process: the time between them. Over several runs. */
function handoffSummary(runs: HandoffRun[]) {
  const gaps: number[] = [];
  let acquisitions = 0;
  let windowMs = 0;
  let statements = 0;
  let totalAcq = 0;
  for (const results of runs) {
    const events = results.flatMap((r) => r.events.map(([kind, at]) => ({ kind, at, pid: r.pid }))).sort((a, b) => a.at - b.at);
    const from = Math.max(...results.map((r) => r.windowFrom));
    const to = Math.min(...results.map((r) => r.windowTo));
    windowMs += to - from;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.at < from || e.at > to) continue;
      if (e.kind === 'a') acquisitions++;
      if (e.kind !== 'r') continue;
      let j = i + 1;
      while (j < events.length && events[j]!.kind !== 'a') j++;
      const next = events[j];
      if (next && next.pid !== e.pid) gaps.push(next.at - e.at);
    }
    statements += results.reduce((n, r) => n + r.statements, 0);
    totalAcq += results.reduce((n, r) => n + r.events.filter(([k]) => k === 'a').length, 0);
  }
  const summary: Summary = {
    cyclesPerSec: (acquisitions * 1000) / windowMs,
    p50: percentile(gaps, 50),
    p99: percentile(gaps, 99),
    statementsPerOp: totalAcq ? statements / (2 * totalAcq) : NaN,
    cycles: acquisitions,
    errors: 0,
  };
  return { summary, handoffs: gaps.length };
}

function rssSummary(samples: Array<[number, number]>): NonNullable<Result['rss']> {
  const mb = samples.map(([, m]) => m);
  const firstMB = mb[0] ?? NaN;
  const lastMB = mb[mb.length - 1] ?? NaN;
  // Flat: after the first 10 s (start-up, JIT, pools filling), the peak of the
  // last half is within 10% of the peak of the first half.
  const settled = samples.filter(([t]) => t >= 10).map(([, m]) => m);
  const half = Math.floor(settled.length / 2);
  const early = Math.max(...settled.slice(0, half));
  const late = Math.max(...settled.slice(half));
  return { samples, firstMB, lastMB, maxMB: Math.max(...mb), flat: settled.length >= 4 && late <= early * 1.1 };
}

// ---------------------------------------------------------------------------

interface Target {
  what: string;
  measured: string;
  met: boolean | undefined;
}

function targets(results: Result[]): Target[] {
  const get = (s: string, c: ContenderName) => results.find((r) => r.scenario === s && r.contender === c)?.summary;
  const ratio = (s: string, c: ContenderName) => {
    const ours = get(s, 'locktable');
    const base = get(s, c);
    return ours && base ? ours.cyclesPerSec / base.cyclesPerSec : undefined;
  };
  const out: Target[] = [];
  const add = (what: string, value: number | undefined, ok: (v: number) => boolean, fmt: (v: number) => string) =>
    out.push({ what, measured: value === undefined || Number.isNaN(value) ? 'not measured' : fmt(value), met: value === undefined || Number.isNaN(value) ? undefined : ok(value) });
  const x = (v: number) => `${v.toFixed(2)}x`;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const c1 = get('callers-1', 'locktable');
  add('statements per uncontended acquire+release cycle = 2', c1 && c1.statementsPerOp * 2, (v) => Math.abs(v - 2) < 0.02, (v) => v.toFixed(3));
  add('1 caller >= 0.9x bare UPDATE', ratio('callers-1', 'bare'), (v) => v >= 0.9, x);
  add('16 callers >= 0.8x bare UPDATE', ratio('callers-16', 'bare'), (v) => v >= 0.8, x);
  add('16 callers p99 <= 15 ms', get('callers-16', 'locktable')?.p99, (v) => v <= 15, ms);
  add('16 callers >= 2.5x original', ratio('callers-16', 'original'), (v) => v >= 2.5, x);
  const c4 = get('callers-4', 'locktable');
  const c64 = get('callers-64', 'locktable');
  add('64 callers >= 0.8x our 4-caller throughput', c4 && c64 && c64.cyclesPerSec / c4.cyclesPerSec, (v) => v >= 0.8, x);
  add('64 callers >= 3x original', ratio('callers-64', 'original'), (v) => v >= 3, x);
  add('16 processes >= 2x original', ratio('processes-16', 'original'), (v) => v >= 2, x);
  add('16 processes p99 <= 30 ms', get('processes-16', 'locktable')?.p99, (v) => v <= 30, ms);
  add('1,000 other locks held >= 3x original', ratio('held-1000', 'original'), (v) => v >= 3, x);
  add('handoff median <= 20 ms', get('handoff-16', 'locktable')?.p50, (v) => v <= 20, ms);
  add('handoff p99 <= 100 ms', get('handoff-16', 'locktable')?.p99, (v) => v <= 100, ms);
  const soak = results.find((r) => r.scenario === 'soak-64');
  out.push({
    what: 'flat RSS, 64 callers, 60 s',
    measured: soak?.rss ? `${soak.rss.firstMB.toFixed(0)} -> ${soak.rss.lastMB.toFixed(0)} MB (max ${soak.rss.maxMB.toFixed(0)})` : 'not measured',
    met: soak?.rss?.flat,
  });
  return out;
}

function table(results: Result[]): string {
  const head = ['scenario', 'contender', 'cycles/s', 'p50 ms', 'p99 ms', 'stmts/op', 'locktable / this'];
  const rows: string[][] = [];
  for (const r of results) {
    const ours = results.find((x) => x.scenario === r.scenario && x.contender === 'locktable');
    const isHandoff = r.scenario.startsWith('handoff');
    const ratio = ours && r.contender !== 'locktable' && !isHandoff ? `${(ours.summary.cyclesPerSec / r.summary.cyclesPerSec).toFixed(2)}x` : '';
    rows.push([
      r.scenario,
      r.contender,
      r.summary.cyclesPerSec.toFixed(0) + (isHandoff ? ' acq' : ''),
      r.summary.p50.toFixed(2),
      r.summary.p99.toFixed(2),
      r.summary.statementsPerOp.toFixed(2),
      ratio,
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const serverVersion = await (async () => {
    const conn = await mysql.createConnection({ uri: SERVER });
    const [rows] = await conn.query('SELECT VERSION() AS v');
    await conn.end();
    return (rows as Array<{ v: string }>)[0]!.v;
  })();
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    server: serverVersion,
    loadAtStart: os.loadavg().map((l) => +l.toFixed(2)),
  };
  const mode = SOAK_ONLY ? 'soak' : QUICK ? 'quick' : 'full';
  console.log(`locktable bench (${mode}) on ${machine.cores} x ${machine.cpu}, ${machine.server}, node ${machine.node}; load ${machine.loadAtStart.join(' ')}`);
  const scenarios = SCENARIOS.filter((s) => (SOAK_ONLY ? s.kind === 'soak' : s.kind !== 'soak' || !QUICK)).filter((s) => !ONLY || ONLY.includes(s.id));
  const results: Result[] = [];
  for (const s of scenarios) {
    const t0 = Date.now();
    const rs = await runScenario(s);
    for (const r of rs) {
      results.push(r);
      const extra = r.summary.errors ? ` ERRORS ${r.summary.errors}` : '';
      console.log(
        `  ${s.id.padEnd(13)} ${r.contender.padEnd(10)} ${r.summary.cyclesPerSec.toFixed(0).padStart(6)}/s  p50 ${r.summary.p50.toFixed(2).padStart(6)}  p99 ${r.summary.p99.toFixed(2).padStart(7)} ms  ${r.summary.statementsPerOp.toFixed(2)} stmts/op${extra}`,
      );
    }
    console.log(`  (${s.id}: ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const loadAtEnd = os.loadavg().map((l) => +l.toFixed(2));
  const checks = targets(results);
  console.log(`\n${table(results)}\n`);
  const curve = ['callers-1', 'held-100', 'held-1000'].map((s, i) => ({
    held: [0, 100, 1000][i],
    ...Object.fromEntries(results.filter((r) => r.scenario === s).map((r) => [r.contender, +r.summary.cyclesPerSec.toFixed(0)])),
    locktableDocBytes: results.find((r) => r.scenario === s && r.contender === 'locktable')?.docBytes,
    originalDocBytes: results.find((r) => r.scenario === s && r.contender === 'original')?.docBytes,
  }));
  if (curve.some((c) => Object.keys(c).length > 1)) {
    console.log('cost curve (cycles/s, 1 caller) against other locks held:');
    for (const c of curve) console.log(`  ${JSON.stringify(c)}`);
    console.log('');
  }
  console.log('targets:');
  for (const t of checks) console.log(`  [${t.met === undefined ? ' - ' : t.met ? 'met' : 'MISSED'}] ${t.what}: ${t.measured}`);
  const seconds = (Date.now() - started) / 1000;
  console.log(`\n${seconds.toFixed(0)} s in all; load at end ${loadAtEnd.join(' ')}`);
  const report = { date: new Date(started).toISOString(), mode, seconds, machine: { ...machine, loadAtEnd }, timing: T, scenarios, results: results.map((r) => ({ ...r })), costCurve: curve, targets: checks };
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.date.slice(0, 19).replace(/[:T]/g, '-')}-${mode}${ONLY ? '-only' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`results: ${path.relative(ROOT, file)}`);
  if (mode !== 'soak' && !ONLY) {
    // The README's chart is drawn by full runs; a quick run's goes next to its results.
    const svg = mode === 'full' ? path.join(ROOT, 'docs', 'bench.svg') : file.replace(/\.json$/, '.svg');
    mkdirSync(path.dirname(svg), { recursive: true });
    writeFileSync(svg, renderChart(report));
    console.log(`chart: ${path.relative(ROOT, svg)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
