// migrate(): creates locktable's own table, and only that, in a database it
// shares with others. It reads before it writes: the columns of the lock
// table and of the migration record, and what the record says was applied.
// A table it did not create is refused (ForeignTableError) before any DDL;
// with nothing pending it only reads (SELECT on the record suffices). The
// migration lock is a row of the record (not GET_LOCK: its name has a length
// limit on MySQL, and it is local to one node of a Galera cluster), and every
// statement of a migration may run again after a crash at any point.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import createDebug from 'debug';
import { DEFAULT_TABLE, MIGRATIONS_TABLE, openDb, quoteTable, rowsWith, type Conn } from './db.js';
import { DatabaseError, ForeignTableError, LockError, NotMigratedError } from './errors.js';
import { toLockError } from './faults.js';

const log = createDebug('locktable:migrate');

export interface MigrateOptions {
  /** The lock table to create or upgrade: 1-64 characters of A-Z a-z 0-9 _. Default 'locks'. */
  table?: string;
  /** Folder of numbered `NNN-name.sql` files. Default: the package's own `migrations/`. */
  dir?: string;
  /** How long to wait for another process's migration of the same table to finish, seconds. Default 60. */
  lockTimeoutSec?: number;
}

export interface MigrateResult {
  /** Files applied by this call, in order. */
  applied: string[];
  /** Every file recorded as applied, including earlier ones. */
  all: string[];
}

/**
 * A migration lock older than this (database time, seconds since it was taken
 * or last renewed: before every statement) belongs to a process that died,
 * and the next migrate() takes it over. A takeover while the holder still runs
 * a very long statement is safe as well: every statement can run twice.
 */
export const MIGRATION_LOCK_LEASE_SEC = 30;

/** The package's migrations folder: found by walking up from this file (dist/, build/lib/ or lib/). */
export function defaultMigrationsDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'migrations');
    if (existsSync(path.join(candidate, '001-create-locks.sql'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new LockError('ENOTMIGRATED', `cannot find locktable's migrations/ folder above ${__dirname}: pass { dir }`);
}

const FILE = /^\d+-[\w.-]+\.sql$/;

/** The numbered files of a folder, in order. */
export function listMigrations(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => FILE.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b));
}

/**
 * Splits a migration into statements: each ends with `;` at the end of a line.
 * `{{table}}` stands for the lock table: `table` is its quoted name.
 */
export function splitStatements(sql: string, table = `\`${DEFAULT_TABLE}\``): string[] {
  return sql
    .split(/;\s*(?:\r?\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean)
    .map((s) => s.replaceAll('{{table}}', table));
}

// --- the migration record ----------------------------------------------------
//
// One record, locktable_migrations (name, appliedAt), for every lock table of
// the database. A row's name is the migration file for the table `locks` (as
// locktable always recorded it) and `<table>/<file>` for any other table;
// `<file>#started` marks a migration begun and not finished, `#lock` (with the
// same prefix) is the migration lock.

/** The prefix of a table's rows in the record. Pure. */
export function recordPrefix(table: string): string {
  return table === DEFAULT_TABLE ? '' : `${table}/`;
}

export interface Column {
  name: string;
  type: string;
  key: string;
}

/** What the database holds for one lock table, read before any change. */
export interface TableState {
  table: string;
  /** Columns of the lock table; empty when it does not exist. */
  columns: Column[];
  /** Columns of locktable_migrations; empty when it does not exist. */
  recordColumns: Column[];
  /** Files the record says were applied to this table. */
  applied: string[];
  /** Files begun and not finished (a crash in the middle). */
  started: string[];
  /** The lock table exists but this user cannot see its columns (no privilege on it). */
  hidden?: boolean;
}

/** The columns of `table` in the current database; empty when it does not exist (or this user may not see it). */
export async function queryColumns(db: Conn, table: string): Promise<Column[]> {
  const [rows] = await db.query(
    'SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_KEY AS `key` FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [table],
  );
  return rowsWith<{ name: unknown; type: unknown; key: unknown }>(rows, ['name', 'type', 'key']).map((r) => ({
    name: String(r.name),
    type: String(r.type).toLowerCase(),
    key: String(r.key),
  }));
}

/** Reads the lock table's columns, the record's columns and the record's rows for `table` (unquoted). Only SELECT on the record is needed. */
export async function inspectTable(db: Conn, table: string): Promise<TableState> {
  const [columns, recordColumns] = await Promise.all([queryColumns(db, table), queryColumns(db, MIGRATIONS_TABLE)]);
  const state: TableState = { table, columns, recordColumns, applied: [], started: [] };
  if (!recordColumns.length || !isOurRecord(recordColumns)) return state;
  const [rows] = await db.query(`SELECT name FROM ${MIGRATIONS_TABLE}`);
  const prefix = recordPrefix(table);
  for (const { name } of rowsWith<{ name: unknown }>(rows, ['name'])) {
    const n = String(name);
    if (!n.startsWith(prefix)) continue;
    const rest = n.slice(prefix.length);
    if (FILE.test(rest)) state.applied.push(rest);
    else if (rest.endsWith('#started') && FILE.test(rest.slice(0, -'#started'.length))) state.started.push(rest.slice(0, -'#started'.length));
  }
  state.applied.sort();
  if (!columns.length && state.applied.length) {
    // information_schema shows only tables the user has a privilege on: ask the table itself whether it exists.
    try {
      await db.query(`SELECT 1 FROM ${quoteTable(table)} WHERE FALSE`);
      state.hidden = true;
    } catch (err) {
      if ((err as { errno?: number }).errno !== 1146) state.hidden = true;
    }
  }
  return state;
}

function isOurRecord(columns: readonly Column[]): boolean {
  const names = columns.map((c) => c.name).sort();
  return names.length === 2 && names[0] === 'appliedAt' && names[1] === 'name';
}

function describeColumns(columns: readonly Column[]): string {
  return columns.map((c) => `${c.name} ${c.type}`).join(', ');
}

export type Ownership =
  | { kind: 'missing' } // neither the table nor any record of it: migrate() creates it
  | { kind: 'ours' } // created by locktable (recorded, or begun by a migration that crashed)
  | { kind: 'foreign'; error: LockError } // someone else's table, or someone else's record table
  | { kind: 'dropped'; error: LockError }; // recorded as created, but gone

/**
 * Whether `state.table` is locktable's, from what inspectTable read. Pure.
 * `first` is the migration that creates the table (001).
 */
export function judgeOwnership(state: TableState, first: string, database = 'this database'): Ownership {
  if (state.recordColumns.length && !isOurRecord(state.recordColumns)) {
    return {
      kind: 'foreign',
      error: new ForeignTableError(
        MIGRATIONS_TABLE,
        `table ${MIGRATIONS_TABLE} of ${database} is not locktable's migration record (columns: ${describeColumns(state.recordColumns)}); ` +
          'locktable never alters or adopts a table it did not create: give locktable a database of its own, or rename that table',
      ),
    };
  }
  const created = state.applied.includes(first);
  const begun = state.started.includes(first);
  if (state.hidden) return { kind: 'ours' };
  if (!state.columns.length) {
    if (!created) return { kind: 'missing' };
    const where = `name LIKE '${recordPrefix(state.table).replace(/_/g, '\\_')}%'${state.table === DEFAULT_TABLE ? " AND name NOT LIKE '%/%'" : ''}`;
    return {
      kind: 'dropped',
      error: new NotMigratedError(
        `the lock table ${state.table} is missing, though ${MIGRATIONS_TABLE} records ${state.applied.join(', ')} as applied to it: it was dropped. ` +
          `To create it again, delete that record (DELETE FROM ${MIGRATIONS_TABLE} WHERE ${where}), then migrate`,
      ),
    };
  }
  const shaped = ['id', 'version', 'dataJson'].every((c) => state.columns.some((col) => col.name === c));
  if (created || (begun && shaped)) return { kind: 'ours' };
  const other = state.table === DEFAULT_TABLE ? 'locktable_locks' : `locktable_${state.table}`.slice(0, 64);
  return {
    kind: 'foreign',
    error: new ForeignTableError(
      state.table,
      `table ${state.table} of ${database} was not created by locktable: it has columns ${describeColumns(state.columns)}, and ` +
        `${state.recordColumns.length ? `${MIGRATIONS_TABLE} records no migration of it` : `there is no ${MIGRATIONS_TABLE}`}. ` +
        `locktable never alters or adopts a table it did not create, and nothing was changed: give locktable a table of its own ` +
        `({ table: '${other}' } for migrate() and createLockTable(), --table ${other} for the CLI)`,
      state.columns.map((c) => `${c.name} ${c.type}`),
    ),
  };
}

// --- the migration lock: a row of the record ----------------------------------

const DUPLICATE_KEY = 1062;
const DEADLOCK = 1213; // Galera: a conflicting INSERT on another node fails certification
const ALREADY_DONE = new Set([
  1050, // ER_TABLE_EXISTS_ERROR
  1060, // ER_DUP_FIELDNAME: ADD COLUMN of a column a crashed run already added
  1061, // ER_DUP_KEYNAME
  1091, // ER_CANT_DROP_FIELD_OR_KEY: already dropped
]);

async function tryLock(db: Conn, name: string): Promise<boolean> {
  try {
    await db.query(`INSERT INTO ${MIGRATIONS_TABLE} (name, appliedAt) VALUES (?, NOW(3))`, [name]);
    return true;
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (errno === DUPLICATE_KEY || errno === DEADLOCK) return false;
    throw err;
  }
}

async function takeOverStale(db: Conn, name: string): Promise<void> {
  await db.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = ? AND UNIX_TIMESTAMP(appliedAt) < UNIX_TIMESTAMP(NOW(3)) - ?`, [name, MIGRATION_LOCK_LEASE_SEC]);
}

async function lock(db: Conn, name: string, timeoutSec: number): Promise<void> {
  const deadline = Date.now() + timeoutSec * 1000;
  for (let delay = 20; ; delay = Math.min(500, delay * 2)) {
    if (await tryLock(db, name)) return;
    await takeOverStale(db, name);
    if (await tryLock(db, name)) return;
    if (Date.now() > deadline) {
      throw new DatabaseError(
        `migrate: another migration has held the migration lock (row '${name}' of ${MIGRATIONS_TABLE}) for more than ${timeoutSec} s; ` +
          `a lock not renewed for ${MIGRATION_LOCK_LEASE_SEC} s is taken over, so retry, or raise lockTimeoutSec`,
        undefined,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

// --- migrate() -------------------------------------------------------------------

/**
 * Creates or upgrades the lock table `options.table` (default `locks`):
 * applies the pending migrations in order and records each one in
 * `locktable_migrations`. Idempotent; safe from several processes at once
 * (they queue on a row of the record); converges after a crash at any point.
 *
 * Before any change it checks that the table is locktable's: a table of that
 * name that locktable did not create is never altered or adopted
 * (ForeignTableError, EFOREIGN). With nothing pending it only reads: SELECT on
 * `locktable_migrations` is enough. Applying needs CREATE, ALTER, SELECT,
 * INSERT and UPDATE on the lock table and CREATE, SELECT, INSERT, UPDATE and
 * DELETE on the record (docs/shared-database.md).
 *
 * `db` is anything createLockTable() takes. Throws EFOREIGN, EINVALIDOPTION,
 * ENOTMIGRATED (the table was dropped but is recorded), EDATABASE.
 *
 * @example
 * await migrate(pool);                                  // at server start-up
 * await migrate(pool, { table: 'locktable_locks' });    // a table of its own
 * await migrate('mysql://root@127.0.0.1/box');
 */
export async function migrate(db: unknown, options: MigrateOptions = {}): Promise<MigrateResult> {
  const table = options.table ?? DEFAULT_TABLE;
  const quoted = quoteTable(table);
  const dir = options.dir ?? defaultMigrationsDir();
  const files = listMigrations(dir);
  const { pool, end } = openDb(db, 1);
  try {
    const read = async () => {
      const state = await inspectTable(pool, table);
      const own = judgeOwnership(state, files[0] ?? '', await databaseName(pool));
      if (own.kind === 'foreign' || own.kind === 'dropped') throw own.error;
      return state;
    };
    let state = await read();
    if (files.every((f) => state.applied.includes(f))) return { applied: [], all: files.filter((f) => state.applied.includes(f)) };

    if (!state.recordColumns.length) {
      await pool.query(
        `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (name VARCHAR(255) NOT NULL PRIMARY KEY, appliedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB`,
      );
    }
    const prefix = recordPrefix(table);
    const lockName = `${prefix}#lock`;
    await lock(pool, lockName, options.lockTimeoutSec ?? 60);
    try {
      state = await read(); // another process may have migrated while we queued
      const applied: string[] = [];
      for (const file of files) {
        if (state.applied.includes(file)) continue;
        log('applying %s to %s', file, table);
        await pool.query(`INSERT IGNORE INTO ${MIGRATIONS_TABLE} (name) VALUES (?)`, [`${prefix}${file}#started`]);
        for (const statement of splitStatements(readFileSync(path.join(dir, file), 'utf8'), quoted)) {
          await pool.query(`UPDATE ${MIGRATIONS_TABLE} SET appliedAt = NOW(3) WHERE name = ?`, [lockName]);
          await runStatement(pool, statement);
        }
        await pool.query(`INSERT IGNORE INTO ${MIGRATIONS_TABLE} (name) VALUES (?)`, [`${prefix}${file}`]);
        await pool.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = ?`, [`${prefix}${file}#started`]);
        applied.push(file);
        state.applied.push(file);
      }
      return { applied, all: files.filter((f) => state.applied.includes(f)) };
    } finally {
      await pool.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = ?`, [lockName]).catch((err: Error) => log('releasing the migration lock: %s', err.message));
    }
  } catch (err) {
    throw toLockError(err, 'migrate');
  } finally {
    await end?.().catch(() => {});
  }
}

/**
 * Runs one statement of a migration. DDL commits by itself, so a crash can
 * come between it and the record: run again, a statement whose effect is
 * already there fails with one of ALREADY_DONE, which counts as done. The
 * other statements are written to be repeatable (IF NOT EXISTS, INSERT
 * IGNORE, an UPDATE whose WHERE excludes the rows it already changed).
 */
async function runStatement(db: Conn, statement: string): Promise<void> {
  try {
    await db.query(statement);
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (errno !== undefined && ALREADY_DONE.has(errno)) {
      log('already applied (%s): %s', (err as Error).message, statement.slice(0, 80));
      return;
    }
    throw err;
  }
}

async function databaseName(db: Conn): Promise<string> {
  const [rows] = await db.query('SELECT DATABASE() AS db');
  const name = rowsWith<{ db: unknown }>(rows, ['db'])[0]?.db;
  return name ? `database ${String(name)}` : 'this database';
}
