// npm run chaos [-- --seconds 180 --workers 6 --names 3 --seed N --galera]
// npm run chaos -- --kinds [--limit 2 --names 4 --seconds 180 --workers 6 --seed N]
// Runs the chaos test for a bounded time and prints what the checker found;
// exits 1 when exclusion was broken or a lock leaked or was lost (with
// --kinds: exclusive, shared and semaphore holders, SIGKILLs only, also when a
// semaphore went over its limit, a wait was overtaken or outlasted its bound).
import { describe, passed, runChaos } from './controller.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} takes a non-negative integer`);
  return value;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 180);
  const seedArg = arg('seed', -1);
  const kinds = process.argv.includes('--kinds');
  const summary = await runChaos({
    durationMs: seconds * 1000,
    workers: arg('workers', 6),
    names: arg('names', kinds ? 4 : 3),
    ...(kinds ? { kinds: { limit: arg('limit', 2) } } : {}),
    ...(seedArg >= 0 ? { seed: seedArg } : {}),
    galera: process.argv.includes('--galera'),
    log: (line) => console.log(line),
  });
  console.log(describe(summary));
  for (const o of summary.overlaps.slice(0, 5)) console.log('overlap', o.name, JSON.stringify(o, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  for (const l of summary.lost.slice(0, 5)) console.log('lost', JSON.stringify(l));
  for (const l of summary.leaked.slice(0, 5)) console.log('leaked', JSON.stringify(l));
  const show = (what: string, list: unknown[]) => {
    for (const x of list.slice(0, 5)) console.log(what, JSON.stringify(x, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  };
  show('over limit', summary.overLimit);
  show('token regression', summary.tokenRegressions);
  show('over the wait bound', summary.waits.overBound);
  show('overtaken', summary.waits.overtakes);
  console.log(passed(summary) ? 'chaos: PASS' : 'chaos: FAIL');
  process.exitCode = passed(summary) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
