import createDebug from 'debug';
import mysql from 'mysql2/promise';
import type { Pool as CallbackPool } from 'mysql2';
import type { Bound } from './bound.js';
import { InvalidOptionError } from './errors.js';

/** What locktable needs of a database handle: a pooled `query`, and `execute` (prepared statements) where there is one. */
export interface Queryable {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  execute?(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]>;
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
    if (!url.hostname) throw new InvalidOptionError('db: the URI names no host; pass mysql://user:password@host:port/database');
    if (url.pathname.length <= 1) throw new InvalidOptionError('db: the URI names no database; add /<database> to its path');
    url.protocol = 'mysql:';
    // trace: false — mysql2 otherwise captures a stack trace for every
    // statement (about a tenth of the client's CPU per lock operation); our
    // errors carry their own context and keep the driver's error as `cause`.
    const pool = mysql.createPool({ uri: url.toString(), connectionLimit: poolSize, enableKeepAlive: true, trace: false });
    guardPool(pool);
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

/** mysql2's promise pool connection, as far as locktable uses it. */
interface PooledConnection {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  execute(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]>;
  release(): void;
  destroy(): void;
}

/**
 * Codes of the errors a bounded statement fails with when its bound fires.
 * NO_CONNECTION: no pooled connection came in time; nothing was sent.
 * CUT: the statement was sent and had not answered; its connection is
 * destroyed (the server may still finish it: a write may have been applied).
 */
export const BOUND_CODES = { NO_CONNECTION: 'ELOCKTABLE_NOCONNECTION', CUT: 'ELOCKTABLE_CUT' } as const;

/**
 * Runs `run` on a connection of `pool`, within `bound`: the wait for a free
 * connection (an exhausted pool, a server that does not accept connections)
 * and the statement itself (a hung server) both end when the bound fires, with
 * a transient error (BOUND_CODES). A connection that arrives too late goes
 * back to the pool unused, so what was given up never runs later.
 */
/** Connections asked of a pool and not yet handed over, per pool (some given up at a bound, still connecting). */
const connecting = new WeakMap<object, Set<Promise<unknown>>>();

/**
 * Resolves once every connection locktable asked of `pool` has arrived or
 * failed. Ending a mysql2 pool while one of its connections is still
 * connecting makes that connection emit an 'error' nothing listens to (an
 * uncaught exception): close() waits for this before it ends its own pool.
 */
export async function connectionsSettled(pool: mysql.Pool): Promise<void> {
  const pending = connecting.get(pool);
  if (pending?.size) await Promise.allSettled([...pending]);
}

export function withConnection<T>(pool: mysql.Pool, bound: Bound, run: (conn: PooledConnection) => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let conn: PooledConnection | undefined;
    let over = false;
    const cancel = bound.onFire((how) => {
      over = true;
      if (conn) {
        conn.destroy();
        reject(Object.assign(new Error(`the statement had not answered when the operation's bound fired (${how === 'aborted' ? 'aborted' : `${bound.ms} ms`}); its connection was closed`), { code: BOUND_CODES.CUT, fatal: true }));
      } else {
        reject(Object.assign(new Error(`no pooled connection within the operation's bound (${how === 'aborted' ? 'aborted' : `${bound.ms} ms`}): the pool's connections are all busy, or the server does not accept connections`), { code: BOUND_CODES.NO_CONNECTION }));
      }
    });
    const asked = pool.getConnection() as unknown as Promise<PooledConnection>;
    let pending = connecting.get(pool);
    if (!pending) connecting.set(pool, (pending = new Set()));
    const set = pending;
    set.add(asked);
    const forget = () => void set.delete(asked);
    asked.then(forget, forget);
    asked.then(
      (c) => {
        if (over) return c.release();
        conn = c;
        run(c).then(
          (value) => {
            if (over) return;
            over = true;
            cancel();
            c.release();
            resolve(value);
          },
          (err) => {
            if (over) return;
            over = true;
            cancel();
            // A connection the driver marked broken leaves the pool on its own error; release() of it is harmless.
            c.release();
            reject(err);
          },
        );
      },
      (err) => {
        if (over) return;
        over = true;
        cancel();
        reject(err);
      },
    );
  });
}

/** The pool as a Queryable whose every statement runs within `bound` (withConnection). */
export function boundedDb(pool: mysql.Pool, bound: Bound): Required<Queryable> {
  return {
    query: (sql, values) => withConnection(pool, bound, (c) => c.query(sql, values)),
    execute: (sql, values) => withConnection(pool, bound, (c) => c.execute(sql, values)),
  };
}
