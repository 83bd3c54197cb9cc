// Several database nodes (a Galera cluster), one writer: every statement of a
// table goes to one node, the first of the list that answers, and moves to the
// next when that node fails (connection errors, a statement that hangs past
// its share of the operation's bound, 1047 "node not ready", 1180 "not in the
// primary component").
//
// Why one node: every lock of a space lives in one row, so writes through two
// nodes always conflict at certification (1213 at commit), and each node's
// clock would judge the same leases. Through one node the writes queue on the
// row lock as on a single server, and one clock judges them. Processes that
// failed over come back to the first node once it is Synced in the primary
// component again, so that all of them converge on the same writer.
import createDebug from 'debug';
import type mysql from 'mysql2/promise';
import type { Bound } from './bound.js';
import { BOUND_CODES, createOwnedPool, parseUri, type Conn } from './db.js';
import { InvalidOptionError } from './errors.js';
import { isFailover, isTransient, notSent } from './faults.js';

const log = createDebug('locktable:cluster');

/** What locktable's code relies on, whatever a host's PoolCluster configured (as lib/db.ts pins for a pool). */
const PINNED = { rowsAsArray: false, nestTables: false, namedPlaceholders: false } as const;

/** How often a table that failed over checks whether an earlier node is back. */
const PROBE_EVERY_MS = 1_000;

export interface ClusterNode {
  /** host:port, for messages. */
  readonly label: string;
  readonly pool: mysql.Pool;
}

export class NodeList {
  readonly nodes: readonly ClusterNode[];
  /**
   * Bound on one statement on one node, ms: its share of an operation's bound
   * (retry.deadlineMs divided among the nodes, so that one operation can try
   * every node once). A node that does not answer within it (killed,
   * partitioned, hung) is given up: the statement's connection is destroyed
   * and statements go to the next node.
   */
  readonly nodeTimeoutMs: number;
  #current = 0;
  #lastProbe = 0;
  #probing = false;

  /** `operationMs`: the bound of one operation (retry.deadlineMs), shared among the nodes. */
  constructor(nodes: readonly ClusterNode[], operationMs: number) {
    this.nodes = nodes;
    this.nodeTimeoutMs = nodeTimeout(operationMs, nodes.length);
  }

  /** The node statements go to now (0-based). */
  get current(): number {
    return this.#current;
  }

  /**
   * The node list for one call: every statement also ends when the call's
   * `bound` fires (then it is cut, possibly applied, like any statement given
   * up on, but the node does not count as failed: the call ran out of time,
   * not necessarily the node).
   */
  within(bound: Bound): Conn {
    return {
      query: (sql, values) => this.#run((conn) => conn.query({ sql, values, ...PINNED }) as Promise<[unknown, unknown]>, bound),
      execute: (sql, values) => this.#run((conn) => conn.execute({ sql, values, ...PINNED }) as Promise<[unknown, unknown]>, bound),
    };
  }

  /** A statement outside any call (the @@wsrep_on probe): bounded by the node's share alone. */
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]> {
    return this.#run((conn) => conn.query({ sql, values, ...PINNED }) as Promise<[unknown, unknown]>);
  }

  execute(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]> {
    return this.#run((conn) => conn.execute({ sql, values, ...PINNED }) as Promise<[unknown, unknown]>);
  }

  async end(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.pool.end().catch(() => {})));
  }

  async #run<T>(statement: (conn: mysql.PoolConnection) => Promise<T>, bound?: Bound): Promise<T> {
    const at = this.#current;
    if (at !== 0) this.#probe();
    try {
      return await bounded(this.nodes[at]!.pool, this.nodeTimeoutMs, statement, bound);
    } catch (err) {
      if (isFailover(err) && !isCallBound(err)) this.#moveFrom(at, err);
      throw err;
    }
  }

  #moveFrom(node: number, err: unknown): void {
    if (this.#current !== node || this.nodes.length < 2) return;
    this.#current = (node + 1) % this.nodes.length;
    const e = err as { code?: string; errno?: number; message?: string };
    log('node %s failed (%s): statements go to %s', this.nodes[node]!.label, e.code ?? e.errno ?? e.message, this.nodes[this.#current]!.label);
  }

  /** In the background, at most once a second: back to the first node that is Synced in the primary component. */
  #probe(): void {
    const now = performance.now();
    if (this.#probing || now - this.#lastProbe < PROBE_EVERY_MS) return;
    this.#probing = true;
    this.#lastProbe = now;
    void (async () => {
      for (let i = 0; i < this.#current; i++) {
        if (await ready(this.nodes[i]!.pool, this.nodeTimeoutMs)) {
          log('node %s is back: statements go to it again', this.nodes[i]!.label);
          this.#current = i;
          return;
        }
      }
    })().finally(() => (this.#probing = false));
  }
}

/** A node's share of an operation's bound `operationMs` among `nodes` nodes, ms (at least 1). */
export function nodeTimeout(operationMs: number, nodes: number): number {
  return Math.max(1, Math.floor(operationMs / Math.max(1, nodes)));
}

/** Whether `err` is the call's own bound firing (lib/db.ts BOUND_CODES), not a failure of the node. */
function isCallBound(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === BOUND_CODES.CUT || code === BOUND_CODES.NO_CONNECTION;
}

/**
 * One statement on a connection of `pool`, bounded by `timeoutMs` (the node's
 * share) from the moment it asks for a connection, and by the call's `bound`.
 * mysql2's own query timeout neither covers preparing a statement nor frees
 * the connection, which would then hold the next statement behind a reply
 * that may never come: when either fires, the connection is destroyed, and the
 * error says the statement may or may not have run — PROTOCOL_SEQUENCE_TIMEOUT
 * for the node's share (the node failed), lib/db.ts's BOUND_CODES for the call's bound.
 * Before a connection was had, the error is marked as not sent.
 */
async function bounded<T>(pool: mysql.Pool, timeoutMs: number, statement: (conn: mysql.PoolConnection) => Promise<T>, bound?: Bound): Promise<T> {
  let conn: mysql.PoolConnection | undefined;
  let over = false;
  let timer: NodeJS.Timeout | undefined;
  let unbound: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    const fire = (err: Error & { code: string }) => {
      if (over) return;
      over = true;
      // Still waiting for a connection: the statement was never sent.
      if (conn) conn.destroy();
      else notSent(err);
      reject(err);
    };
    timer = setTimeout(
      () => fire(Object.assign(new Error(`the node did not complete the statement within ${timeoutMs} ms (its share of the operation's bound)`), { code: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true })),
      timeoutMs,
    );
    unbound = bound?.onFire((how) => {
      const why = how === 'aborted' ? 'aborted' : `${bound.ms} ms`;
      fire(
        conn
          ? Object.assign(new Error(`the statement had not answered when the operation's bound fired (${why}); its connection was closed`), { code: BOUND_CODES.CUT, fatal: true })
          : Object.assign(new Error(`no connection to the node within the operation's bound (${why})`), { code: BOUND_CODES.NO_CONNECTION }),
      );
    });
  });
  try {
    const connecting = pool.getConnection().then(
      (c) => {
        // Opened after we gave up: back to the pool, unused.
        if (over) c.release();
        return c;
      },
      (err: unknown) => {
        throw notSent(err);
      },
    );
    conn = await Promise.race([connecting, expired]);
    const result = await Promise.race([statement(conn), expired]);
    over = true;
    conn.release();
    return result;
  } catch (err) {
    if (conn && !over) {
      over = true;
      if (isFailover(err) && !(((err as { errno?: number }).errno ?? 0) > 0)) conn.destroy();
      else conn.release();
    }
    throw err;
  } finally {
    over = true;
    clearTimeout(timer);
    unbound?.();
    expired.catch(() => {});
  }
}

async function ready(pool: mysql.Pool, timeout: number): Promise<boolean> {
  try {
    const [rows] = await bounded(pool, timeout, (conn) => conn.query("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_cluster_status', 'wsrep_local_state_comment')"));
    const v = Object.fromEntries((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, r.Value]));
    // A server without Galera reports none of these: it answers, so it is ready.
    if (v.wsrep_ready === undefined) return true;
    return v.wsrep_ready === 'ON' && v.wsrep_cluster_status === 'Primary' && v.wsrep_local_state_comment === 'Synced';
  } catch (err) {
    if (!isTransient(err)) log('probe failed: %s', (err as Error).message);
    return false;
  }
}

/**
 * On Galera, a node answers reads from what it has applied, which may lag
 * behind what the cluster has committed; only writes are certified. Every
 * read of a table is therefore causal there (wsrep_sync_wait, per statement
 * so that no session setting leaks into a host's pool, and so that prepared
 * statements carry it too): it sees every write committed anywhere before it
 * began. Writes need not wait: one judged on a stale state either conflicts at
 * certification (1213, and is sent again) or is refused, and then
 * `withCausalWrites()` sends it once more on the current state (the wait costs
 * about a third of the throughput of the one writer node, measured). Elsewhere
 * statements go unchanged.
 */
export class Causal implements Conn {
  readonly #inner: Conn;
  readonly #writes: boolean;
  readonly #parent: Causal | undefined;
  #wsrep: Promise<boolean> | undefined;

  constructor(inner: Conn, writes = false, parent?: Causal) {
    this.#inner = inner;
    this.#writes = writes;
    this.#parent = parent;
  }

  /** The same handle, with conditional writes causal too. */
  withCausalWrites(): Causal {
    return new Causal(this.#inner, true, this);
  }

  async query(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]> {
    return this.#inner.query((await this.galera()) ? causalSql(sql, this.#writes) : sql, values);
  }

  async execute(sql: string, values?: Array<string | number>): Promise<[unknown, unknown]> {
    const text = (await this.galera()) ? causalSql(sql, this.#writes) : sql;
    return this.#inner.execute ? this.#inner.execute(text, values) : this.#inner.query(text, values);
  }

  /**
   * Whether the server runs Galera (@@wsrep_on), asked once per root handle
   * (the one without a parent); a child asks through its own inner handle
   * (bounded, when it is a call's), so that the question keeps the asking
   * call's bound.
   */
  galera(): Promise<boolean> {
    let root: Causal = this;
    while (root.#parent) root = root.#parent;
    root.#wsrep ??= this.#inner.query('SELECT @@wsrep_on AS w').then(
      ([rows]) => Number((rows as Array<{ w: unknown }>)[0]?.w) === 1,
      (err) => {
        // MySQL has no such variable (1193): not Galera. Anything else: ask again next time.
        if ((err as { errno?: number }).errno === 1193) return false;
        root.#wsrep = undefined;
        throw err;
      },
    );
    return root.#wsrep;
  }
}

/** wsrep_sync_wait bits: 1 reads; with `writes`, 2 UPDATE and DELETE, 4 INSERT and REPLACE. */
export function causalSql(sql: string, writes = true): string {
  const verb = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase();
  const write = verb === 'UPDATE' || verb === 'DELETE' ? 2 : verb === 'INSERT' || verb === 'REPLACE' ? 4 : 0;
  const bits = verb === 'SELECT' || verb === 'SHOW' ? 1 : writes ? write : 0;
  return bits ? `SET STATEMENT wsrep_sync_wait=${bits} FOR ${sql}` : sql;
}

/**
 * A list of URIs (tried in order), or a mysql2 PoolCluster (its nodes in the
 * order they were added): one pool per node. Pools opened from URIs are ours
 * to close; a PoolCluster stays the host's.
 */
export function openNodes(input: unknown, poolSize: number, operationMs: number): { nodes: NodeList; owned: boolean } | undefined {
  if (Array.isArray(input)) {
    if (input.length === 0) throw new InvalidOptionError('db: the list of URIs is empty; give one mysql:// URI per node, the preferred writer first');
    const nodes = input.map((uri, i) => {
      if (typeof uri !== 'string') throw new InvalidOptionError(`db: entry ${i} of the list is not a URI string`);
      const url = parseUri(uri);
      // Connecting is part of a statement's share too.
      const pool = createOwnedPool(url, poolSize, nodeTimeout(operationMs, input.length));
      return { label: `${url.hostname}:${url.port || '3306'}`, pool };
    });
    return { nodes: new NodeList(nodes, operationMs), owned: true };
  }
  // mysql2/promise's PoolCluster wraps the callback one (.poolCluster).
  const given = input as { poolCluster?: unknown } | null;
  const cluster = (given && typeof given === 'object' && given.poolCluster ? given.poolCluster : input) as { of?: unknown; _nodes?: Record<string, { pool?: unknown }> } | null;
  if (cluster && typeof cluster === 'object' && typeof cluster.of === 'function' && cluster._nodes) {
    // mysql2 PoolCluster: its own selection only moves on when a connection
    // cannot be opened; we route by node, in the order they were added.
    const ids = Object.keys(cluster._nodes);
    if (!ids.length) throw new InvalidOptionError('db: the PoolCluster has no nodes; add() them before creating the lock table');
    const nodes = ids.map((id) => {
      const pool = cluster._nodes![id]!.pool as { promise(): mysql.Pool; config?: { connectionConfig?: { host?: string; port?: number } } };
      const cfg = pool.config?.connectionConfig;
      return { label: `${cfg?.host ?? id}:${cfg?.port ?? 3306}`, pool: pool.promise() };
    });
    return { nodes: new NodeList(nodes, operationMs), owned: false };
  }
  return undefined;
}
