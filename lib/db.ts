import mysql from 'mysql2/promise';
import type { Pool as CallbackPool } from 'mysql2';
import { InvalidOptionError } from './errors.js';

/** What locktable needs of a database handle: a pooled `query`. */
export interface Queryable {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
}

/** A mysql2 promise pool, a mysql2 callback pool, or a connection URI. */
export type DbInput = mysql.Pool | CallbackPool | string;

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
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      throw new InvalidOptionError(`db: '${redact(input)}' is not a URI; pass mysql://user:password@host:port/database or a mysql2 pool`);
    }
    if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
      throw new InvalidOptionError(`db: URI scheme '${url.protocol}' is not supported; use mysql://user:password@host:port/database`);
    }
    if (url.pathname.length <= 1) throw new InvalidOptionError('db: the URI names no database; add /<database> to its path');
    url.protocol = 'mysql:';
    const pool = mysql.createPool({ uri: url.toString(), connectionLimit: poolSize, enableKeepAlive: true });
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

export function redact(uri: string): string {
  return uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
