// A tap on a real pool: every statement still runs on the real server; the
// tap counts them, tracks how many are in flight, and can lose a reply (the
// statement ran, the caller sees a dropped connection) or fail a statement
// before it is sent, the way a network fault would.
import type mysql from 'mysql2/promise';

export interface TapFault {
  /** Which statement: the first one whose SQL matches. */
  match: RegExp;
  /** 'lost-reply': run it, then throw as if the connection dropped. 'before-send': throw without running it. */
  kind: 'lost-reply' | 'before-send';
}

export class Tap {
  readonly statements: string[] = [];
  /** Those of them that went as prepared statements (execute). */
  readonly prepared: string[] = [];
  /** affectedRows of each UPDATE that answered, in order. */
  readonly updates: Array<{ sql: string; affectedRows: number }> = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly #pool: mysql.Pool;
  readonly #faults: TapFault[] = [];

  constructor(pool: mysql.Pool) {
    this.#pool = pool;
  }

  /** What to pass as `db`: a mysql2-pool-shaped object over the real pool. */
  get db(): { query(sql: string, values?: unknown[]): Promise<unknown>; execute(sql: string, values?: unknown[]): Promise<unknown>; getConnection(): Promise<unknown> } {
    return {
      query: (sql: string, values?: unknown[]) => this.#query(sql, values, false),
      // Prepared statements, as a mysql2 pool runs them: the library uses them for its common writes.
      execute: (sql: string, values?: unknown[]) => this.#query(sql, values, true),
      // locktable runs each statement on a connection it takes (to bound the wait for it): tapped alike.
      getConnection: async () => {
        const conn = await this.#pool.getConnection();
        return {
          query: (sql: string, values?: unknown[]) => this.#query(sql, values, false, conn),
          execute: (sql: string, values?: unknown[]) => this.#query(sql, values, true, conn),
          release: () => conn.release(),
          destroy: () => conn.destroy(),
        };
      },
    };
  }

  /** Arms a fault for the next matching statement. */
  fail(fault: TapFault): void {
    this.#faults.push(fault);
  }

  /** Forgets what was counted so far. */
  reset(): void {
    this.statements.length = 0;
    this.prepared.length = 0;
    this.updates.length = 0;
    this.maxInFlight = this.inFlight;
  }

  async #query(sql: string, values: unknown[] | undefined, prepared: boolean, on: mysql.Pool | mysql.PoolConnection = this.#pool): Promise<unknown> {
    this.statements.push(sql);
    if (prepared) this.prepared.push(sql);
    const i = this.#faults.findIndex((f) => f.match.test(sql));
    const fault = i >= 0 ? this.#faults.splice(i, 1)[0] : undefined;
    const dropped = () => Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
    if (fault?.kind === 'before-send') throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const result = prepared ? await on.execute(sql, values as never) : await on.query(sql, values);
      if (fault?.kind === 'lost-reply') throw dropped();
      if (sql.startsWith('UPDATE')) this.updates.push({ sql, affectedRows: (result[0] as { affectedRows: number }).affectedRows });
      return result;
    } finally {
      this.inFlight--;
    }
  }
}
