// A task worker of the demo: the kind of process a platform server spawns
// (through sudo, as another user) to update or back up an app. It takes its
// locks with using(), works until the server says `finish` on stdin, and
// reports its lock events, one JSON object a line on stdout.
import diagnostics from 'node:diagnostics_channel';
import { createInterface } from 'node:readline';
import { createLockTable, LockChannels, type LockEventKind } from '../index.js';

export interface WorkerTask {
  taskId: string;
  space: string;
  names: string[];
  /** Wait for the locks (wait()) instead of failing at once. */
  wait: boolean;
}

export type WorkerMessage =
  | { state: 'ready'; pid: number; user: string }
  | { state: 'working'; token: number }
  | { state: 'done' }
  | { state: 'failed'; error: string }
  | { event: LockEventKind; text: string };

function send(message: WorkerMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(): Promise<void> {
  const task = JSON.parse(process.argv[2] ?? '{}') as WorkerTask;
  // The URL comes through the environment so that its password is not on the command line (ps).
  const url = process.env.LOCKTABLE_DEMO_URL;
  if (!url) throw new Error('LOCKTABLE_DEMO_URL is not set');
  const locks = createLockTable({ db: url, space: task.space, owner: { taskId: task.taskId }, poolSize: 1 });

  const holderText = (h: { name: string; owner: { taskId?: string; pid: number } }) => `${h.name} held by task ${h.owner.taskId ?? '?'} (pid ${h.owner.pid})`;
  const describe: { [K in LockEventKind]?: (e: never) => string } = {
    acquired: (e: { names: string[]; token: number; waitedMs: number }) => `acquired ${e.names.join(', ')} (token ${e.token}) after ${Math.round(e.waitedMs)} ms`,
    contended: (e: { holders: Array<Parameters<typeof holderText>[0]> }) => `contended: ${e.holders.map(holderText).join('; ')}; waiting`,
    released: (e: { names: string[]; heldMs: number }) => `released ${e.names.join(', ')} after ${e.heldMs} ms`,
    lost: (e: { names: string[]; reason: string }) => `lost ${e.names.join(', ')}: ${e.reason}`,
  };
  for (const [kind, text] of Object.entries(describe) as Array<[LockEventKind, (e: unknown) => string]>) {
    diagnostics.subscribe(LockChannels[kind], (e) => {
      if ((e as { space: string }).space === task.space) send({ event: kind, text: text(e) });
    });
  }

  const lines = createInterface({ input: process.stdin });
  const finish = new Promise<void>((resolve) => {
    lines.on('line', (line) => line.trim() === 'finish' && resolve());
    lines.on('close', () => resolve()); // the server went away: finish too
  });
  send({ state: 'ready', pid: process.pid, user: locks.owner.user });
  await locks.using(
    task.names as never,
    async (lease) => {
      send({ state: 'working', token: lease.token });
      await finish; // the task's real work would run here, passing lease.token to what it writes
    },
    task.wait ? { wait: true, timeoutMs: 60_000 } : {},
  );
  lines.close();
  await locks.close();
  send({ state: 'done' });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ state: 'failed', error: (err as Error).message });
    process.exit(1);
  },
);
