import createDebug from 'debug';
import mysql from 'mysql2/promise';
import type { Pool as CallbackPool } from 'mysql2';
import { InvalidOptionError } from './errors.js';

/** What locktable needs of a database handle: a pooled `query`, and `execute` (prepared statements) where there is one. */
export interface Queryable {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  execute?(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]>;
}

/** A mysql2 promise pool, a mysql2 callback pool, or a connection URI; for a cluster, a list of URIs or a mysql2 PoolCluster (lib/cluster.ts). */
export type DbInput = mysql.Pool | CallbackPool | string | string[] | mysql.PoolCluster;

export interface Db {
  pool: mysql.Pool;
  /** True when locktable created the pool from a URI and so must close it. */
  owned: boolean;
}

/**
 * Normalises what the host passed. A URI gets a small pool of our own; a pool
 * the host passed stays the host's (we never close it).
 */
export function openDb(input: unknown, poolSize = 4): Db {
  if (typeof input === 'string') {
    const pool = createOwnedPool(parseUri(input), poolSize);
    return { pool, owned: true };
  }
  if (input && typeof input === 'object') {
    const candidate = input as { promise?: unknown; query?: unknown; getConnection?: unknown };
    // A mysql2 callback pool has .promise(); its promise wrapper has none.
    if (typeof candidate.promise === 'function' && typeof candidate.getConnection === 'function') {
      return { pool: (input as CallbackPool).promise(), owned: false };
    }
    if (typeof candidate.query === 'function' && typeof candidate.getConnection === 'function') {
      return { pool: input as mysql.Pool, owned: false };
    }
  }
  throw new InvalidOptionError('db: pass a mysql2 pool (mysql2 or mysql2/promise createPool) or a mysql:// URI');
}

/** Checks a mysql:// URI and returns it parsed; InvalidOptionError saying what is wrong otherwise. */
export function parseUri(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new InvalidOptionError(`db: '${redact(input)}' is not a URI; pass mysql://user:password@host:port/database or a mysql2 pool`);
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new InvalidOptionError(`db: URI scheme '${url.protocol}' is not supported; use mysql://user:password@host:port/database`);
  }
  if (!url.hostname) throw new InvalidOptionError('db: the URI names no host; pass mysql://user:password@host:port/database');
  if (url.pathname.length <= 1) throw new InvalidOptionError('db: the URI names no database; add /<database> to its path');
  url.protocol = 'mysql:';
  return url;
}

/** A pool of our own on `url`. `connectTimeoutMs`: how long opening a connection may take (a node list bounds it). */
export function createOwnedPool(url: URL, poolSize: number, connectTimeoutMs?: number): mysql.Pool {
  // trace: false — mysql2 otherwise captures a stack trace for every
  // statement (about a tenth of the client's CPU per lock operation); our
  // errors carry their own context and keep the driver's error as `cause`.
  const pool = mysql.createPool({
    uri: url.toString(),
    connectionLimit: poolSize,
    enableKeepAlive: true,
    trace: false,
    ...(connectTimeoutMs === undefined ? {} : { connectTimeout: connectTimeoutMs }),
  });
  guardPool(pool);
  return pool;
}

export function redact(uri: string): string {
  return uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

const log = createDebug('locktable:pool');

/**
 * An EventEmitter's 'error' with no listener throws, and from a socket callback
 * that is an uncaught exception: the host process dies. mysql2 3.x pools never
 * emit 'error' themselves, and each pooled connection listens for its own
 * first 'error' (to leave the pool) — but only with `once`, so a second one
 * would be unhandled. The pools we open get a listener on the pool and a
 * permanent one on every connection: a dropped connection is logged, and the
 * query in flight on it fails (and is retried) as usual.
 */
function guardPool(pool: mysql.Pool): void {
  // The promise wrapper forwards only some events: listen on the callback pool underneath.
  const core = (pool as unknown as { pool: NodeJS.EventEmitter }).pool;
  core.on('error', (err: Error) => log('pool error: %s', err.message));
  core.on('connection', (conn: NodeJS.EventEmitter) => {
    conn.on('error', (err: Error & { code?: string }) => log('connection error (it leaves the pool): %s %s', err.code ?? '', err.message));
  });
}
