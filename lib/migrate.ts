import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import createDebug from 'debug';
import { openDb } from './db.js';
import { DatabaseError, LockError } from './errors.js';
import { toLockError } from './faults.js';

const log = createDebug('locktable:migrate');

export interface MigrateOptions {
  /** Folder of numbered `NNN-name.sql` files. Default: the package's own `migrations/`. */
  dir?: string;
  /** How long to wait for another process's migration to finish. Default 60 s. */
  lockTimeoutSec?: number;
}

export interface MigrateResult {
  /** Files applied by this call, in order. */
  applied: string[];
  /** Every file recorded as applied, including earlier ones. */
  all: string[];
}

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

/** The numbered files of a folder, in order. */
export function listMigrations(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d+-[\w.-]+\.sql$/.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b));
}

/** Splits a migration into statements: each ends with `;` at the end of a line. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\r?\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean);
}

/**
 * Applies the pending migrations in order and records each one. Idempotent,
 * and safe when several processes run it at once: they queue on a named
 * server lock (GET_LOCK, held by one dedicated connection for the migration's
 * duration only) and each re-reads what is applied once it has the lock.
 *
 * @example
 * await migrate(pool);                       // at server start-up
 * await migrate('mysql://root@127.0.0.1/box');
 */
export async function migrate(db: unknown, options: MigrateOptions = {}): Promise<MigrateResult> {
  const { pool, owned } = openDb(db, 1);
  const dir = options.dir ?? defaultMigrationsDir();
  const files = listMigrations(dir);
  let conn;
  try {
    conn = await pool.getConnection();
  } catch (err) {
    if (owned) await pool.end().catch(() => {});
    throw toLockError(err, 'migrate: connect');
  }
  let locked = false;
  try {
    // One migration lock per database: GET_LOCK names are server-wide.
    const [got] = await conn.query("SELECT GET_LOCK(CONCAT('locktable.migrate.', DATABASE()), ?) AS ok", [
      options.lockTimeoutSec ?? 60,
    ]);
    if ((got as Array<{ ok: number | null }>)[0]?.ok !== 1) {
      throw new DatabaseError('migrate: another migration held the migration lock for too long', undefined);
    }
    locked = true;
    await conn.query(
      'CREATE TABLE IF NOT EXISTS locktable_migrations (name VARCHAR(255) NOT NULL PRIMARY KEY, appliedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB',
    );
    const [rows] = await conn.query('SELECT name FROM locktable_migrations');
    const done = new Set((rows as Array<{ name: string }>).map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      log('applying %s', file);
      for (const statement of splitStatements(readFileSync(path.join(dir, file), 'utf8'))) {
        await conn.query(statement);
      }
      await conn.query('INSERT INTO locktable_migrations (name) VALUES (?)', [file]);
      applied.push(file);
      done.add(file);
    }
    return { applied, all: files.filter((f) => done.has(f)) };
  } catch (err) {
    throw toLockError(err, 'migrate');
  } finally {
    if (locked) await conn.query("SELECT RELEASE_LOCK(CONCAT('locktable.migrate.', DATABASE()))").catch(() => {});
    conn.release();
    if (owned) await pool.end().catch(() => {});
  }
}
