import createDebug from 'debug';
import mysql from 'mysql2/promise';
import type { Bound } from './bound.js';
import { DatabaseError, InvalidOptionError } from './errors.js';

/**
 * What locktable needs of a database handle it does not know (Knex, Kysely, a
 * single connection, a PoolCluster, a test double): one method that runs one
 * statement. See docs/shared-database.md for recipes.
 *
 * - `query(sql, values)` runs `sql`, whose `?` placeholders take `values` in
 *   order (strings and numbers only), on any connection, outside any
 *   transaction (autocommit), and resolves with either the rows of a SELECT as
 *   an array of plain objects keyed by column name, or the result of another
 *   statement as an object with `affectedRows` and `insertId` (numbers,
 *   bigints or digit strings). mysql2's `[rows, fields]` pair is accepted as
 *   it is.
 * - `execute(sql, values)`, optional: the same as a server-side prepared
 *   statement (mysql2's `execute`). Used for the common one-statement writes
 *   when present.
 */
export interface Queryable {
  query(sql: string, values: Array<string | number>): Promise<unknown>;
  execute?(sql: string, values: Array<string | number>): Promise<unknown>;
}

/** The handle locktable uses internally: every input normalised to mysql2's `[result, fields]` shape, with the options it relies on pinned. */
export interface Conn {
  query(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]>;
  execute?(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]>;
}

/** A mysql2 pool (either API), a `mysql` package pool, a {@link Queryable}, or a connection URI; for a Galera cluster, a list of URIs or a mysql2 PoolCluster (lib/cluster.ts). */
export type DbInput = mysql.Pool | Queryable | string | string[] | object;

export interface Db {
  pool: Conn;
  /**
   * The mysql2 promise pool underneath, when there is one: each statement
   * then takes its own connection, so that a call's bound can give up waiting
   * for one (see boundedDb).
   */
  mysql2?: mysql.Pool;
  /** Set when locktable created the pool from a URI and so must close it. */
  end?: () => Promise<void>;
}

/** The lock table locktable uses unless told otherwise. */
export const DEFAULT_TABLE = 'locks';
/** Where migrate() records what it applied, for every lock table of the database. */
export const MIGRATIONS_TABLE = 'locktable_migrations';

/**
 * Validates a lock table name and returns it quoted for SQL. Table names are
 * the one identifier that reaches SQL text, so only `A-Z a-z 0-9 _` pass.
 * Throws EINVALIDOPTION.
 */
export function quoteTable(name: unknown, what = 'table'): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(name) || /^\d+$/.test(name)) {
    throw new InvalidOptionError(`option ${what}: ${JSON.stringify(name)} is not a table name: 1-64 characters of A-Z a-z 0-9 _, not only digits`);
  }
  if (name.toLowerCase() === MIGRATIONS_TABLE) throw new InvalidOptionError(`option ${what}: '${name}' is where migrate() records its work; choose another name`);
  return `\`${name}\``;
}

// The per-statement options that pin what locktable's code relies on, whatever
// the host configured on its pool: rows as objects keyed by column name, the
// driver's own conversions, `?` as the only placeholder. mysql2 honours each
// of them per query (a typeCast function set on the pool wins over a per-query
// `true`, so the per-query value is a function that asks for the default).
// Options mysql2 only ORs in (supportBigNumbers, bigNumberStrings,
// dateStrings, decimalNumbers, jsonStrings) cannot be turned off per query:
// locktable reads numbers through Number() and text through CAST(… AS CHAR),
// so they change nothing (test/integration/pools.test.ts pins both).
const defaultCast = (_field: unknown, next: () => unknown) => next();
const MYSQL2_PINNED = { rowsAsArray: false, nestTables: false, namedPlaceholders: false, typeCast: defaultCast } as const;
// The `mysql` package: typeCast and nestTables are per query; it has no rowsAsArray or named placeholders.
const MYSQLJS_PINNED = { typeCast: true, nestTables: false } as const;

type Fn = (...args: unknown[]) => unknown;
const isFn = (v: unknown): v is Fn => typeof v === 'function';

const ACCEPTED =
  'pass a mysql2 pool (mysql2 or mysql2/promise createPool), a mysql package pool, a mysql:// URI, or an object with query(sql, values) (see docs/shared-database.md)';

/**
 * Normalises what the host passed. A URI gets a small pool of our own (closed
 * by `end`); anything else stays the host's (we never close it). Throws
 * EINVALIDOPTION, saying what to pass, for anything else.
 */
export function openDb(input: unknown, poolSize = 4): Db {
  if (typeof input === 'string') {
    const pool = poolFromUri(input, poolSize);
    return { pool: mysql2Conn(pool), end: () => pool.end(), mysql2: pool };
  }
  if (isFn(input) && isFn((input as { raw?: unknown }).raw) && (input as { client?: unknown }).client) {
    throw new InvalidOptionError(
      'db: this is a Knex instance; pass { query: (sql, values) => knex.raw(sql, values).then(([rows]) => rows) } (docs/shared-database.md)',
    );
  }
  if (!input || typeof input !== 'object') throw new InvalidOptionError(`db: ${ACCEPTED}`);
  const o = input as Record<string, unknown>;
  if (isFn(o.executeQuery) && isFn(o.selectFrom)) {
    throw new InvalidOptionError(
      'db: this is a Kysely instance; pass { query: (sql, values) => kysely.executeQuery(CompiledQuery.raw(sql, values)).then(toQueryResult) } (docs/shared-database.md)',
    );
  }
  // mysql2's callback API (a pool or a connection): its promise wrapper has the same methods.
  if (isFn(o.promise) && isFn(o.query) && isFn(o.execute)) {
    const p = (o.promise as () => PromiseQueryable)();
    return { pool: mysql2Conn(p), mysql2: asMysql2Pool(p) };
  }
  // mysql2's promise API: a pool, a pool connection or a connection.
  if (isFn(o.query) && isFn(o.execute) && isFn(o.escape) && isFn(o.format)) return { pool: mysql2Conn(input as PromiseQueryable), mysql2: asMysql2Pool(input) };
  // The mysql package: callback API, no execute.
  if (isFn(o.query) && isFn(o.escape) && !isFn(o.execute) && (isFn(o.getConnection) || isFn(o.beginTransaction))) {
    return { pool: mysqljsConn(input as CallbackQueryable) };
  }
  // A PoolCluster (either package, either API): mysql2/promise's has a query() that cannot work.
  if (isFn(o.getConnection) && isFn(o.of) && isFn(o.add)) {
    throw new InvalidOptionError(
      "db: this is a PoolCluster; pass one of its namespaces: cluster.of('*') of mysql2/promise's createPoolCluster as it is, or a callback cluster's namespace wrapped as a Queryable (docs/shared-database.md)",
    );
  }
  if (isFn(o.query)) return { pool: contractConn(input as Queryable) };
  throw new InvalidOptionError(`db: ${ACCEPTED}`);
}

interface PromiseQueryable {
  query(options: object): Promise<[unknown, unknown]>;
  execute(options: object): Promise<[unknown, unknown]>;
}

interface CallbackQueryable {
  query(options: object, cb: (err: unknown, result: unknown) => void): unknown;
}

function mysql2Conn(p: PromiseQueryable): Conn {
  return {
    query: (sql, values) => p.query({ sql, values, ...MYSQL2_PINNED }),
    execute: (sql, values) => p.execute({ sql, values, ...MYSQL2_PINNED }),
  };
}

function mysqljsConn(p: CallbackQueryable): Conn {
  return {
    query: (sql, values) =>
      new Promise((resolve, reject) => {
        p.query({ sql, values, ...MYSQLJS_PINNED }, (err, result) => (err ? reject(err) : resolve([result, undefined])));
      }),
  };
}

function contractConn(q: Queryable): Conn {
  const run = async (what: 'query' | 'execute', sql: string, values: Array<string | number> = []): Promise<[unknown, unknown]> => {
    const pending = what === 'execute' ? q.execute!(sql, values) : q.query(sql, values);
    if (!pending || !isFn((pending as { then?: unknown }).then)) {
      throw new InvalidOptionError(`db: ${what}(sql, values) returned ${typeof pending}, not a promise; a callback API needs wrapping (docs/shared-database.md)`);
    }
    return [normaliseResult(await pending), undefined];
  };
  return { query: (sql, values) => run('query', sql, values), execute: isFn(q.execute) ? (sql, values) => run('execute', sql, values) : undefined };
}

const isHeader = (v: unknown): boolean => !!v && typeof v === 'object' && !Array.isArray(v) && 'affectedRows' in v;

/** A Queryable's answer as rows or a result header: mysql2's `[rows, fields]` pair is unwrapped. Pure. */
export function normaliseResult(result: unknown): unknown {
  if (Array.isArray(result) && result.length === 2 && (Array.isArray(result[0]) || isHeader(result[0])) && (result[1] === undefined || result[1] === null || Array.isArray(result[1]))) {
    return result[0];
  }
  return result;
}

/**
 * The rows of a SELECT as objects that carry `columns`. A handle that returns
 * rows as arrays, nests them by table or renames columns is refused here, before
 * its rows can be mistaken for a damaged document. Throws EDATABASE.
 */
export function rowsWith<T>(result: unknown, columns: readonly string[]): T[] {
  if (!Array.isArray(result)) throw new DatabaseError(`the database handle answered a SELECT with ${describe(result)}, not an array of rows: see docs/shared-database.md`, undefined);
  for (const row of result) {
    if (!row || typeof row !== 'object' || Array.isArray(row) || columns.some((c) => !(c in row))) {
      throw new DatabaseError(
        `the database handle returned a row ${Array.isArray(row) ? 'as an array (rowsAsArray?)' : `without the columns ${columns.join(', ')} (${describe(row)})`}: ` +
          'locktable needs rows as objects keyed by column name; see docs/shared-database.md',
        undefined,
      );
    }
  }
  return result as T[];
}

function describe(v: unknown): string {
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? `an array of ${v.length}` : `an object with ${Object.keys(v).slice(0, 5).join(', ') || 'no keys'}`;
}

function poolFromUri(input: string, poolSize: number): mysql.Pool {
  return createOwnedPool(parseUri(input), poolSize);
}

/** Checks a mysql:// URI and returns it parsed; EINVALIDOPTION saying what is wrong otherwise. */
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
    // The first of the statement's end, its failure, or no connection: the bound's arm is cancelled, the connection goes back.
    const settle = (c: PooledConnection | undefined, done: () => void) => {
      if (over) return;
      over = true;
      cancel();
      // A connection the driver marked broken leaves the pool on its own error; release() of it is harmless.
      c?.release();
      done();
    };
    asked.then(
      (c) => {
        if (over) return c.release();
        conn = c;
        run(c).then(
          (value) => settle(c, () => resolve(value)),
          (err) => settle(c, () => reject(err)),
        );
      },
      (err) => settle(undefined, () => reject(err)),
    );
  });
}

/** A mysql2 promise pool (not a single connection, nor a pool connection): what withConnection needs. */
function asMysql2Pool(p: unknown): mysql.Pool | undefined {
  const o = p as Record<string, unknown>;
  return isFn(o.getConnection) && isFn(o.end) && !isFn(o.release) && !isFn(o.of) ? (p as mysql.Pool) : undefined;
}

/**
 * The database handle with every statement bounded by `bound`. On a mysql2
 * pool each statement takes its own connection (withConnection). A node list
 * bounds its statements itself (lib/cluster.ts). On any other handle the
 * statement is raced against the bound: given up on at the bound it may still
 * run later, so it fails as cut (possibly applied).
 */
export function boundedDb(db: Db, bound: Bound): Conn {
  const pool = db.mysql2;
  if (pool) {
    return {
      query: (sql, values) => withConnection(pool, bound, (c) => (c as unknown as PromiseQueryable).query({ sql, values, ...MYSQL2_PINNED })),
      execute: (sql, values) => withConnection(pool, bound, (c) => (c as unknown as PromiseQueryable).execute({ sql, values, ...MYSQL2_PINNED })),
    };
  }
  // A node list (lib/cluster.ts) bounds each statement itself: by its node's share, and by `bound`.
  const nodes = db.pool as { within?: (bound: Bound) => Conn };
  if (typeof nodes.within === 'function') return nodes.within(bound);
  const race = (p: Promise<[unknown, unknown]>): Promise<[unknown, unknown]> =>
    new Promise((resolve, reject) => {
      let over = false;
      const cancel = bound.onFire((how) => {
        over = true;
        reject(Object.assign(new Error(`the statement had not answered when the operation's bound fired (${how === 'aborted' ? 'aborted' : `${bound.ms} ms`})`), { code: BOUND_CODES.CUT, fatal: true }));
      });
      p.then(
        (v) => {
          if (over) return;
          over = true;
          cancel();
          resolve(v);
        },
        (e) => {
          if (over) return;
          over = true;
          cancel();
          reject(e);
        },
      );
    });
  // Called as methods: a node list (lib/cluster.ts) needs its `this`.
  const conn = db.pool;
  return { query: (sql, values) => race(conn.query(sql, values)), execute: conn.execute && ((sql, values) => race(conn.execute!(sql, values))) };
}
