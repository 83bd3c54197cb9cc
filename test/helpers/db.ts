// Per-suite databases, and waiting on a condition instead of sleeping.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { migrate } from '../../lib/migrate.js';
import { SERVER_ENV } from './server.js';

export interface TestDb {
  /** URI of the suite's own database. */
  url: string;
  /** A pool on it, for assertions and backdating rows in SQL. */
  pool: mysql.Pool;
  name: string;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  const url = process.env[SERVER_ENV];
  if (!url) throw new Error(`${SERVER_ENV} is not set: run the tests through mocha with test/helpers/root-hooks`);
  return url;
}

/** Creates `lt_<suite>_<random>`, migrated unless told otherwise. Each suite gets its own: suites cannot disturb each other. */
export async function createTestDb(suite: string, options: { migrate?: boolean } = {}): Promise<TestDb> {
  const name = `lt_${suite.replace(/\W/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const base = new URL(serverUrl());
  const admin = await mysql.createConnection({ uri: base.toString() });
  await admin.query(`CREATE DATABASE \`${name}\``);
  await admin.end();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  const pool = mysql.createPool({ uri: url.toString(), connectionLimit: 4 });
  if (options.migrate !== false) await migrate(pool);
  return {
    url: url.toString(),
    pool,
    name,
    async drop() {
      await pool.query(`DROP DATABASE \`${name}\``).catch(() => {});
      await pool.end();
    },
  };
}

/** The exact stored text and version of a space. */
export async function rawRow(pool: mysql.Pool, space = 'platform'): Promise<{ version: number; raw: string } | undefined> {
  const [rows] = await pool.query('SELECT version, CAST(dataJson AS CHAR) AS raw FROM locks WHERE id = ?', [space]);
  const row = (rows as Array<{ version: number; raw: string }>)[0];
  return row && { version: Number(row.version), raw: row.raw };
}

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs` saying what it waited for. */
export async function until<T>(what: string, check: () => Promise<T> | T, timeoutMs = 15_000): Promise<T> {
  const started = Date.now();
  for (let delay = 5; ; delay = Math.min(100, delay * 2)) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
