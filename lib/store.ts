// Every SQL statement locktable runs against the lock table, one function
// each, taking its connection as an argument. Names never reach SQL text:
// they travel inside the JSON document, as bound values.
import type { Queryable } from './db.js';

export interface Snapshot {
  version: number;
  /** The document's exact text (CAST, so mysql2 does not parse it). */
  raw: string;
  /** Database time, ms since the epoch: the one clock expiry uses. */
  now: number;
}

/** Reads the row of a space with the database's clock; undefined when the row does not exist. */
export async function readSpace(db: Queryable, space: string): Promise<Snapshot | undefined> {
  const [rows] = await db.query(
    'SELECT version, CAST(dataJson AS CHAR) AS raw, CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS UNSIGNED) AS now FROM locks WHERE id = ?',
    [space],
  );
  const row = (rows as Array<{ version: unknown; raw: unknown; now: unknown }>)[0];
  if (!row) return undefined;
  return { version: Number(row.version), raw: String(row.raw), now: Number(row.now) };
}

/** Creates the row of a space if it is missing. Returns whether it created it. */
export async function createSpace(db: Queryable, space: string, raw: string): Promise<boolean> {
  const [res] = await db.query('INSERT IGNORE INTO locks (id, version, dataJson) VALUES (?, 0, ?)', [space, raw]);
  return (res as { affectedRows: number }).affectedRows === 1;
}

/** Compare-and-swap: writes `raw` as version `expected + 1` only if the row is still at `expected`. */
export async function writeIfVersion(db: Queryable, space: string, expected: number, raw: string): Promise<boolean> {
  const [res] = await db.query('UPDATE locks SET version = ?, dataJson = ? WHERE id = ? AND version = ?', [
    expected + 1,
    raw,
    space,
    expected,
  ]);
  return (res as { affectedRows: number }).affectedRows === 1;
}

/** The cheap poll of waiters: the version only. */
export async function readVersion(db: Queryable, space: string): Promise<number | undefined> {
  const [rows] = await db.query('SELECT version FROM locks WHERE id = ?', [space]);
  const row = (rows as Array<{ version: unknown }>)[0];
  return row ? Number(row.version) : undefined;
}
