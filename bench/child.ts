// One benchmark process of several: opens a session of a contender, says it is
// ready, starts when told (all processes at the same moment), and prints what
// it measured as one JSON line.
import { createInterface } from 'node:readline';
import { contender, type Place } from './contenders.js';
import { drive } from './measure.js';

export type ChildConfig =
  | { mode: 'cycles'; contender: string; place: Place; names: string[]; warmMs: number; runMs: number }
  | { mode: 'handoff'; contender: string; place: Place; name: string; warmMs: number; runMs: number; holdMs: number; pauseMs: [number, number] }
  | { mode: 'soak'; contender: string; place: Place; names: string[]; warmMs: number; runMs: number };

/** Monotonic ms, comparable between processes of one host (CLOCK_MONOTONIC). */
export const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]!) as ChildConfig;
  const session = await contender(config.contender).open(config.place, config.mode === 'handoff' ? 1 : config.names.length);
  say({ ready: true, pid: process.pid });
  const go = await new Promise<{ startAt: number }>((resolve) => createInterface({ input: process.stdin }).once('line', (l) => resolve(JSON.parse(l))));
  try {
    await run(config, session, go.startAt);
  } finally {
    await session.close();
  }
}

async function run(config: ChildConfig, session: Awaited<ReturnType<ReturnType<typeof contender>['open']>>, startAt: number): Promise<void> {
  const go = { startAt };
  // startAt is wall-clock ms (the parent's Date.now()); turned into this process's performance.now() time.
  const start = performance.now() + (go.startAt - Date.now());
  const measureFrom = start + config.warmMs;
  const endAt = measureFrom + config.runMs;
  await sleep(Math.max(0, start - performance.now()));
  {
    if (config.mode === 'cycles') {
      say({ result: await drive(session, config.names, measureFrom, endAt) });
    } else if (config.mode === 'handoff') {
      const events: Array<[kind: 'a' | 'r', atMs: number]> = [];
      let windowFrom = 0;
      let windowTo = 0;
      const from = monoMs() + (measureFrom - performance.now());
      while (performance.now() < endAt) {
        const release = await session.hold(config.name);
        events.push(['a', monoMs()]);
        await sleep(config.holdMs);
        events.push(['r', monoMs()]); // from the moment the release is sent: its own latency counts
        await release();
        const [lo, hi] = config.pauseMs;
        await sleep(lo + Math.random() * (hi - lo));
      }
      windowFrom = from;
      windowTo = from + config.runMs;
      say({ result: { pid: process.pid, events, windowFrom, windowTo, statements: session.statements } });
    } else {
      const samples: Array<[tSec: number, rssMB: number]> = [];
      const t0 = performance.now();
      const timer = setInterval(() => samples.push([(performance.now() - t0) / 1000, process.memoryUsage().rss / 2 ** 20]), 1000);
      const sample = await drive(session, config.names, measureFrom, endAt, { latencies: false });
      clearInterval(timer);
      say({ result: { ...sample, latencies: [], samples } });
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
