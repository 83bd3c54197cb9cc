// npm run bench:checksum [-- --held 1000 --cycles 200]
//
// What the one-statement write's checksum guard costs on the server at hand,
// with `held` other locks in the document (1,000: about 117 KB), and what the
// one alternative of the same strength costs: a STORED generated column
// `dataCrcNow = CRC32(dataJson)` that the server keeps for every write (by
// locktable or anybody else), so the guard reads it instead of recomputing
// CRC32 over the old text. Each variant is a cycle of two UPDATEs (put an
// entry, remove it) on a row of its own, as the one-statement acquire and
// release are; the variants take turns in blocks of 10 cycles, each block one
// transaction (so that the commit's fsync, the same for all, does not drown
// the difference), and drifting load falls on all of them alike. Also the bare
// cost of CRC32(dataJson) in a SELECT.
// MYSQL_URL / LOCKTABLE_SERVER choose the server as for npm run bench.
import { runBench } from './contenders.js';
import { percentile } from './measure.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
const HELD = arg('held', 1000);
const CYCLES = arg('cycles', 200);
const BLOCK = 10;

interface Variant {
  id: string;
  what: string;
  put: string;
  remove: string;
}

const set = `JSON_SET(dataJson, ?, JSON_EXTRACT(?, '$'))`;
const VARIANTS: Variant[] = [
  {
    id: 'none',
    what: 'no guard (not safe: the floor)',
    put: `UPDATE ck SET version = version + 1, dataJson = ${set} WHERE id = ?`,
    remove: `UPDATE ck SET version = version + 1, dataJson = JSON_REMOVE(dataJson, ?) WHERE id = ?`,
  },
  {
    id: 'crc',
    what: 'dataCrc = CRC32(dataJson) (as shipped)',
    put: `UPDATE ck SET version = version + 1, dataJson = ${set}, dataCrc = CRC32(dataJson) WHERE id = ? AND dataCrc = CRC32(dataJson)`,
    remove: `UPDATE ck SET version = version + 1, dataJson = JSON_REMOVE(dataJson, ?), dataCrc = CRC32(dataJson) WHERE id = ? AND dataCrc = CRC32(dataJson)`,
  },
  {
    id: 'generated',
    what: 'dataCrc = dataCrcNow (STORED generated CRC32)',
    put: `UPDATE ck SET version = version + 1, dataJson = ${set}, dataCrc = CRC32(dataJson) WHERE id = ? AND dataCrc = dataCrcNow`,
    remove: `UPDATE ck SET version = version + 1, dataJson = JSON_REMOVE(dataJson, ?), dataCrc = CRC32(dataJson) WHERE id = ? AND dataCrc = dataCrcNow`,
  },
];

runBench('checksum', { connectionLimit: 2 }, async ({ pool }) => {
  const [[{ v: version }]] = (await pool.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
  await pool.query(`CREATE TABLE ck (id VARCHAR(64) PRIMARY KEY, version BIGINT UNSIGNED NOT NULL, dataJson JSON NOT NULL,
    dataCrc INT UNSIGNED NOT NULL, dataCrcNow INT UNSIGNED AS (CRC32(dataJson)) STORED) ENGINE=InnoDB`);
  const l: Record<string, unknown> = {};
  for (let i = 0; i < HELD; i++) {
    l[`app_task_held${i}`] = { t: 'app_task', o: '0123456789abcdef', f: i + 1, n: `nonce${String(i).padStart(18, '0')}`, a: 1_700_000_000_000 + i };
  }
  const doc = JSON.stringify({ v: 2, o: { '0123456789abcdef': { h: 'host', b: 'boot', ns: 'pid:[1]', p: 1, s: 2, u: 'root' } }, l });
  for (const v of VARIANTS) await pool.query('INSERT INTO ck (id, version, dataJson, dataCrc) VALUES (?, 0, ?, CRC32(dataJson))', [v.id, doc]);
  const entry = JSON.stringify({ t: 'app_task', o: '0123456789abcdef', f: 0, n: 'x'.repeat(22), a: 1 });
  const conn = await pool.getConnection();
  const times = new Map<string, number[]>(VARIANTS.map((v) => [v.id, []]));
  try {
    for (let done = 0; done < CYCLES; done += BLOCK) {
      for (const v of VARIANTS) {
        // One transaction per block: the commit's fsync, the same for every variant, would drown the difference.
        await conn.query('BEGIN');
        for (let i = 0; i < BLOCK; i++) {
          const t0 = process.hrtime.bigint();
          const [a] = await conn.execute(v.put, ['$.l."app_task_mine"', entry, v.id]);
          const [b] = await conn.execute(v.remove, ['$.l."app_task_mine"', v.id]);
          if ((a as { affectedRows: number }).affectedRows !== 1 || (b as { affectedRows: number }).affectedRows !== 1) throw new Error(`${v.id}: a guarded write missed`);
          times.get(v.id)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        await conn.query('COMMIT');
      }
    }
    const select = async (sql: string) => {
      const ts: number[] = [];
      for (let i = 0; i < CYCLES; i++) {
        const t0 = process.hrtime.bigint();
        await conn.execute(sql, ['crc']);
        ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return percentile(ts.sort((x, y) => x - y), 50);
    };
    const plain = await select('SELECT dataCrc FROM ck WHERE id = ?');
    const crc = await select('SELECT dataCrc = CRC32(dataJson) FROM ck WHERE id = ?');
    const gen = await select('SELECT dataCrc = dataCrcNow FROM ck WHERE id = ?');
    // A write from outside locktable must stop both guards.
    await pool.query(`UPDATE ck SET dataJson = JSON_SET(dataJson, '$.x', 1) WHERE id IN ('crc', 'generated')`);
    for (const v of VARIANTS.slice(1)) {
      const [a] = await conn.execute(v.put, ['$.l."app_task_mine"', entry, v.id]);
      if ((a as { affectedRows: number }).affectedRows !== 0) throw new Error(`${v.id}: wrote into a document changed outside`);
    }
    const bytes = Buffer.byteLength(doc);
    console.log(`checksum guard on ${version}, ${HELD} other locks held (${(bytes / 1024).toFixed(0)} KB), ${CYCLES} cycles each (p50 ms of a put+remove cycle):`);
    const floor = percentile(times.get('none')!.sort((x, y) => x - y), 50);
    for (const v of VARIANTS) {
      const p50 = percentile(times.get(v.id)!.sort((x, y) => x - y), 50);
      console.log(`  ${v.id.padEnd(10)} ${p50.toFixed(2).padStart(7)} ms  (+${(p50 - floor).toFixed(2)} ms over no guard)  ${v.what}`);
    }
    console.log(`  SELECT p50: dataCrc ${plain.toFixed(3)} ms; CRC32(dataJson) ${crc.toFixed(3)} ms (+${(crc - plain).toFixed(3)}); dataCrcNow ${gen.toFixed(3)} ms`);
    console.log('  both guards refused a write into a document changed outside locktable');
  } finally {
    conn.release();
  }
});
