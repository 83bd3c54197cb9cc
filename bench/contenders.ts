// The four things the benchmark compares, behind one small interface: this
// library, and three baselines written for the benchmark — the original
// algorithm (read, check, compare-and-swap, retry after a fixed 100 ms), a
// bare single-row UPDATE (the ceiling for anything that writes the row), and
// GET_LOCK/RELEASE_LOCK on a held connection (a reference without durability).
// Every contender counts the statements it sends.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createLockTable, type LockTable } from '../lib/index.js';
import { migrate } from '../lib/migrate.js';
import { DB_NOW_MS } from '../lib/store.js';
import { serializeDocument, toStoredOwner, type Entry, type LockDocument, type StoredOwner } from '../lib/document.js';
import { currentOwner } from '../lib/owner.js';
import { SERVER_KIND_ENV, startPrivateServer } from '../test/helpers/private-server.js';

export type ContenderName = 'locktable' | 'original' | 'bare' | 'getlock';

export interface Place {
  /** URI of the benchmark's own database. */
  url: string;
  /** Its name: GET_LOCK names are server-wide, so they are prefixed with it. */
  dbName: string;
}

/**
 * The server the benchmarks run against: MYSQL_URL; else, with
 * LOCKTABLE_SERVER (mariadb-10.11, mysql-9.7, mariadb-11.8), a private server
 * of that kind started by useServer() for the run; else the local one.
 */
export let SERVER = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** Starts the private server LOCKTABLE_SERVER asks for (unless MYSQL_URL is set); resolves with its stop. */
export async function useServer(): Promise<() => Promise<void>> {
  if (process.env.MYSQL_URL || !process.env[SERVER_KIND_ENV]) return async () => {};
  const server = await startPrivateServer({ databases: ['test'] });
  SERVER = server.url('test');
  return () => server.remove();
}

/** A database of its own on SERVER, migrated; drop() removes it. */
export async function createDatabase(label: string): Promise<{ place: Place; drop(): Promise<void> }> {
  const dbName = `ltb_${label.replace(/\W/g, '_').slice(0, 30)}_${randomBytes(3).toString('hex')}`;
  const admin = await mysql.createConnection({ uri: SERVER });
  await admin.query(`CREATE DATABASE \`${dbName}\``);
  const url = new URL(SERVER);
  url.pathname = `/${dbName}`;
  const drop = async () => {
    await admin.query(`DROP DATABASE IF EXISTS \`${dbName}\``).catch(() => {});
    await admin.end();
  };
  try {
    await migrate(url.toString());
  } catch (err) {
    await drop();
    throw err;
  }
  return { place: { url: url.toString(), dbName }, drop };
}

/**
 * Runs one benchmark script: against the server useServer() picks, with a
 * database of its own and a pool on it (`pool` options), both removed after;
 * a failure is printed and the process exits with 1.
 */
export function runBench(label: string, pool: Omit<mysql.PoolOptions, 'uri'>, main: (on: { pool: mysql.Pool; place: Place }) => Promise<void>): void {
  const run = async () => {
    const { place, drop } = await createDatabase(label);
    const opened = mysql.createPool({ uri: place.url, ...pool });
    try {
      await main({ pool: opened, place });
    } finally {
      await opened.end();
      await drop();
    }
  };
  useServer()
    .then((stop) => run().finally(stop))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}

export interface Session {
  /** One acquire and release of `name`. */
  cycle(name: string): Promise<void>;
  /** Waits until `name` is acquired; resolves with its release. */
  hold(name: string): Promise<() => Promise<void>>;
  /** Statements sent so far. */
  readonly statements: number;
  close(): Promise<void>;
}

export interface Contender {
  name: ContenderName;
  label: string;
  /** Whether it is a lock at all (the bare UPDATE is not: no handoff for it). */
  locks: boolean;
  /** Fills the database with `held` other locks; resolves with what undoes it. */
  prepare(place: Place, held: number): Promise<() => Promise<void>>;
  /** A session for `callers` concurrent callers of one process. */
  open(place: Place, callers: number): Promise<Session>;
}

const SPACE = { original: 'original', bare: 'bare' } as const;
export const heldName = (i: number) => `app_task_held${i}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every contender's connections are set up alike: `trace: false`, as locktable
 * sets it on the pools it opens (mysql2 otherwise captures a stack trace per
 * statement, the same cost for each contender).
 */
const CONNECTION = { trace: false } as const;

/**
 * A mysql2 pool whose connections count the statements sent on them (each
 * query or execute call is one statement; mysql2's own pool.query hands its
 * connection one such call too).
 */
function countedOnConnections(url: string, connections: number) {
  const pool = mysql.createPool({ uri: url, connectionLimit: connections, ...CONNECTION });
  const count = { n: 0 };
  const core = (pool as unknown as { pool: NodeJS.EventEmitter }).pool;
  core.on('connection', (conn: Record<string, (...args: unknown[]) => unknown>) => {
    for (const kind of ['query', 'execute'] as const) {
      const original = conn[kind]!.bind(conn);
      conn[kind] = (...args: unknown[]) => {
        count.n++;
        return original(...args);
      };
    }
  });
  return { pool, count };
}

/** A session over a counted pool: its operations, the count, and closing the pool (after `before`, if given). */
function countedSession(counted: { pool: mysql.Pool; count: { n: number } }, ops: Pick<Session, 'cycle' | 'hold'>, before?: () => Promise<void>): Session {
  return {
    ...ops,
    get statements() {
      return counted.count.n;
    },
    async close() {
      await before?.();
      await counted.pool.end();
    },
  };
}

async function withPool<T>(url: string, fn: (pool: mysql.Pool) => Promise<T>): Promise<T> {
  const pool = mysql.createPool({ uri: url, connectionLimit: 2, ...CONNECTION });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** `held` entries of another owner, as the library stores them in memory. */
function heldDocument(held: number, owner: StoredOwner, now: number): LockDocument {
  const l: Record<string, Entry> = {};
  for (let i = 0; i < held; i++) l[heldName(i)] = { t: 'app_task', o: owner, f: i + 1, n: `filler${String(i).padStart(10, '0')}`, a: now };
  return { v: 2, l };
}

const fillerOwner = (): StoredOwner => toStoredOwner(currentOwner({ taskId: 'filler' }));

// ---------------------------------------------------------------------------

export const locktable: Contender = {
  name: 'locktable',
  label: 'locktable',
  locks: true,
  async prepare(place, held) {
    // The other locks are taken through the library itself, by another owner of this process.
    const filler = createLockTable({ db: place.url, owner: { taskId: 'filler' } });
    for (let i = 0; i < held; i += 64) {
      await filler.acquire(Array.from({ length: Math.min(64, held - i) }, (_, j) => heldName(i + j)) as never);
    }
    await filler.close();
    return async () => {};
  },
  async open(place) {
    // The table keeps at most maxInFlight (default 2) statements in flight: that is all the connections it can use.
    // It gets the mysql2 pool itself, as an application passes it (a wrapper object would be taken for a
    // Queryable and go another way); its statements are counted on the pool's connections.
    const pool = countedOnConnections(place.url, 2);
    const table: LockTable = createLockTable({ db: pool.pool, owner: { taskId: 'bench' } });
    return countedSession(
      pool,
      {
        async cycle(name) {
          await table.release(await table.acquire(name as never));
        },
        async hold(name) {
          const lease = await table.wait(name as never);
          return () => table.release(lease);
        },
      },
      () => table.close(),
    );
  },
};

// The original algorithm: read the document, check, write it back with a
// compare-and-swap on the version; when the name is held or the race is lost,
// retry after a fixed 100 ms. It stores every entry with its owner inline
// (format 1, as locktable did before format 2) and checks with JSON.parse only.
export const original: Contender = {
  name: 'original',
  label: 'original (read+CAS, 100 ms retry)',
  locks: true,
  async prepare(place, held) {
    const doc = heldDocument(held, fillerOwner(), Date.now());
    await withPool(place.url, (pool) =>
      pool.query('INSERT INTO locks (id, version, dataJson) VALUES (?, 0, ?)', [SPACE.original, JSON.stringify({ ...doc, v: 1 })]),
    );
    return async () => {};
  },
  async open(place, callers) {
    const pool = countedOnConnections(place.url, Math.min(64, Math.max(1, callers)));
    const db = pool.pool;
    const owner = toStoredOwner(currentOwner({ taskId: 'bench' }));
    let nonces = 0;
    const read = async () => {
      const [rows] = await db.query(
        `SELECT version, CAST(dataJson AS CHAR) AS raw, ${DB_NOW_MS} AS now FROM locks WHERE id = ?`,
        [SPACE.original],
      );
      const row = (rows as Array<{ version: number; raw: string; now: number }>)[0]!;
      return { version: Number(row.version), doc: JSON.parse(row.raw) as { v: 1; l: Record<string, Entry> }, now: Number(row.now) };
    };
    const cas = async (version: number, doc: unknown) => {
      const [res] = await db.query('UPDATE locks SET version = ?, dataJson = ? WHERE id = ? AND version = ?', [version + 1, JSON.stringify(doc), SPACE.original, version]);
      return (res as { affectedRows: number }).affectedRows === 1;
    };
    const acquire = async (name: string): Promise<string> => {
      const nonce = `n${process.pid}x${++nonces}`;
      for (;;) {
        const { version, doc, now } = await read();
        if (!Object.hasOwn(doc.l, name)) {
          doc.l[name] = { t: 'app_task', o: owner, f: version + 1, n: nonce, a: now };
          if (await cas(version, doc)) return nonce;
        }
        await sleep(100);
      }
    };
    const release = async (name: string, nonce: string): Promise<void> => {
      for (;;) {
        const { version, doc } = await read();
        if (doc.l[name]?.n !== nonce) return;
        delete doc.l[name];
        if (await cas(version, doc)) return;
        await sleep(100);
      }
    };
    return countedSession(pool, {
      async cycle(name) {
        await release(name, await acquire(name));
      },
      async hold(name) {
        const nonce = await acquire(name);
        return () => release(name, nonce);
      },
    });
  },
};

// The ceiling: two single-row UPDATEs per cycle on a row holding the same
// document as locktable's (so the row is as large), no JSON work, no lock.
export const bare: Contender = {
  name: 'bare',
  label: 'bare UPDATE x2 (the limit)',
  locks: false,
  async prepare(place, held) {
    const raw = serializeDocument(heldDocument(held, fillerOwner(), Date.now()));
    await withPool(place.url, (pool) => pool.query('INSERT INTO locks (id, version, dataJson) VALUES (?, 0, ?)', [SPACE.bare, raw]));
    return async () => {};
  },
  async open(place, callers) {
    const pool = countedOnConnections(place.url, Math.min(64, Math.max(1, callers)));
    // A prepared statement, as locktable's own one-statement writes are.
    const bump = () => pool.pool.execute('UPDATE locks SET version = version + 1 WHERE id = ?', [SPACE.bare]);
    return countedSession(pool, {
      async cycle() {
        await bump();
        await bump();
      },
      hold: () => Promise.reject(new Error('the bare UPDATE is not a lock')),
    });
  },
};

// GET_LOCK/RELEASE_LOCK, each caller on a connection of its own, held for the
// whole run: the session lock the design avoids (it dies with its connection).
export const getlock: Contender = {
  name: 'getlock',
  label: 'GET_LOCK on a held connection',
  locks: true,
  async prepare(place, held) {
    if (!held) return async () => {};
    const conn = await mysql.createConnection({ uri: place.url });
    for (let i = 0; i < held; i++) await conn.query('SELECT GET_LOCK(?, 10)', [`${place.dbName}:${heldName(i)}`]);
    return () => conn.end();
  },
  async open(place, callers) {
    const conns = await Promise.all(Array.from({ length: Math.max(1, callers) }, () => mysql.createConnection({ uri: place.url, ...CONNECTION })));
    const free = [...conns];
    const count = { n: 0 };
    const q = async (conn: mysql.Connection, sql: string, values: unknown[]) => {
      count.n++;
      const [rows] = await conn.query(sql, values);
      return (rows as Array<{ r: number | null }>)[0]?.r;
    };
    const lockName = (name: string) => `${place.dbName}:${name}`;
    return {
      async cycle(name) {
        const conn = free.pop()!; // one caller, one connection, for the whole cycle
        try {
          if ((await q(conn, 'SELECT GET_LOCK(?, 10) AS r', [lockName(name)])) !== 1) throw new Error(`GET_LOCK ${name} timed out`);
          await q(conn, 'SELECT RELEASE_LOCK(?) AS r', [lockName(name)]);
        } finally {
          free.push(conn);
        }
      },
      async hold(name) {
        const conn = free.pop()!;
        while ((await q(conn, 'SELECT GET_LOCK(?, 60) AS r', [lockName(name)])) !== 1);
        return async () => {
          await q(conn, 'SELECT RELEASE_LOCK(?) AS r', [lockName(name)]);
          free.push(conn);
        };
      },
      get statements() {
        return count.n;
      },
      close: async () => {
        await Promise.all(conns.map((c) => c.end()));
      },
    };
  },
};

export const CONTENDERS: Contender[] = [locktable, original, bare, getlock];
export const contender = (name: string): Contender => {
  const c = CONTENDERS.find((x) => x.name === name);
  if (!c) throw new Error(`no contender ${name}`);
  return c;
};
