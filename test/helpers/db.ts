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

/** Whether the server behind `pool` is MariaDB (else Oracle MySQL). */
export async function isMariaDb(pool: mysql.Pool | mysql.Connection): Promise<boolean> {
  const [[row]] = (await pool.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
  return /mariadb/i.test(row.v);
}

/**
 * Stores `raw` as a space's document with plain SQL, as a broken tool might.
 * MariaDB's JSON column is LONGTEXT with a json_valid CHECK, switched off for
 * this one statement, so it stores any text. Oracle MySQL's native JSON type
 * cannot hold text that is not JSON: then this returns false (the server
 * refused it with ER_INVALID_JSON_TEXT 3140 or ER_INVALID_JSON_CHARSET 3144);
 * every other failure throws.
 */
export async function storeRaw(pool: mysql.Pool, raw: string, space = 'platform'): Promise<boolean> {
  if (await isMariaDb(pool)) {
    await pool.query('SET STATEMENT check_constraint_checks = 0 FOR UPDATE locks SET dataJson = ? WHERE id = ?', [raw, space]);
    return true;
  }
  try {
    await pool.query('UPDATE locks SET dataJson = ? WHERE id = ?', [raw, space]);
    return true;
  } catch (err) {
    if ([3140, 3144].includes((err as { errno?: number }).errno ?? 0)) return false;
    throw err;
  }
}

/**
 * The text the server keeps for the JSON text `raw`: MariaDB keeps it byte for
 * byte; Oracle MySQL keeps its own canonical form (keys sorted by length then
 * bytes, `", "` and `": "` spacing, a duplicate key's last value).
 */
export async function storedText(pool: mysql.Pool, raw: string): Promise<string> {
  if (await isMariaDb(pool)) return raw;
  const [[row]] = (await pool.query('SELECT CAST(CAST(? AS JSON) AS CHAR) AS t', [raw])) as unknown as [[{ t: string }]];
  return row.t;
}
