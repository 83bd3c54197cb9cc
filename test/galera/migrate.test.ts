// migrate() through every node of a 3-node Galera cluster at once: the
// migration lock must hold cluster-wide (a row, which Galera certifies), and
// every node ends with the same, complete schema.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createLockTable, migrate } from '../../lib/index.js';
import { GaleraCluster } from '../helpers/galera.js';

describe('migrate() on a 3-node Galera cluster', function () {
  this.timeout(180_000);
  let cluster: GaleraCluster;

  before(async () => {
    cluster = await GaleraCluster.create();
  });

  after(async () => {
    await cluster?.remove();
  });

  it('through the three nodes at once succeeds everywhere, round after round, and converges', async () => {
    for (let round = 0; round < 4; round++) {
      const database = `lt_migrate_${randomBytes(4).toString('hex')}`;
      const admin = await mysql.createConnection({ uri: cluster.url(1) });
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.end();
      await cluster.waitSynced();
      const results = await Promise.allSettled(cluster.urls(database).map((url) => migrate(url)));
      const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
      assert.deepEqual(failed, [], `round ${round}`);
      // Every node: the lock table works, and the record agrees.
      for (const url of cluster.urls(database)) {
        const t = createLockTable({ db: url });
        await t.release(await t.acquire('box_update'));
        await t.close();
        assert.deepEqual((await migrate(url)).applied, []);
      }
    }
  });
});
