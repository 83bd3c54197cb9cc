// npm run galera -- <command>: a Galera cluster of our own by hand.
//   create [dir]      bootstrap 3 nodes (default dir: $LOCKTABLE_GALERA_DIR or /tmp/locktable-galera) and leave them running
//   status            each node: pid, state, component, cluster size
//   kill N | stop N   kill -9 / clean shutdown of node N (1-3)
//   start N           recover node N's position and rejoin (start all when N is omitted)
//   restart N         kill -9, then start
//   stop              clean shutdown of every node
//   urls              the nodes' URIs, comma-separated (for --db of the chaos run or the bench)
//   remove            kill every node and delete the directory
import { existsSync } from 'node:fs';
import { GaleraCluster } from './galera.js';

const DEFAULT_DIR = process.env.LOCKTABLE_GALERA_DIR ?? '/tmp/locktable-galera';

async function main(argv: string[]): Promise<void> {
  const [command, arg] = argv;
  const node = () => {
    const n = Number(arg);
    if (!Number.isInteger(n)) throw new Error(`${command}: give a node number, e.g. \`${command} 2\``);
    return n;
  };
  if (command === 'create') {
    const dir = arg ?? DEFAULT_DIR;
    if (existsSync(dir)) throw new Error(`${dir} exists: \`remove\` it first, or give another directory`);
    const c = await GaleraCluster.create({ dir, keep: true });
    console.log(`cluster in ${c.dir}\n${c.urls().join('\n')}`);
    return;
  }
  if (!existsSync(`${DEFAULT_DIR}/cluster.json`)) throw new Error(`no cluster in ${DEFAULT_DIR}: run \`create\` first (or set LOCKTABLE_GALERA_DIR)`);
  const c = GaleraCluster.open(DEFAULT_DIR);
  switch (command) {
    case 'status':
      for (const s of await c.status()) console.log(`node ${s.node} port ${s.port} pid ${s.pid ?? '-'} ${s.state}${s.component ? ` ${s.component} size ${s.clusterSize}` : ''}`);
      return;
    case 'kill':
      return c.kill(node());
    case 'stop':
      return arg === undefined ? c.stopAll() : c.stop(node());
    case 'start':
      return arg === undefined ? c.startAll() : c.start(node());
    case 'restart':
      return c.restart(node());
    case 'urls':
      console.log(c.urls(arg ?? 'mysql').join(','));
      return;
    case 'remove':
      return c.remove();
    default:
      throw new Error('usage: npm run galera -- create [dir] | status | kill N | stop [N] | start [N] | restart N | urls [database] | remove');
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`galera: ${(err as Error).message}`);
  process.exit(1);
});
