// `locktable doctor`: what an operator needs to know about a deployment, and
// what to do about each problem. The diagnostic statements live here, one
// function each; the judgements are pure functions, unit-tested without a server.
import type { Queryable } from './db.js';
import { parseDocument } from './document.js';
import { LockError } from './errors.js';
import { judgeEntry } from './liveness.js';
import { defaultMigrationsDir, listMigrations } from './migrate.js';
import { localView } from './owner.js';
import { DB_NOW_MS, readSpace } from './store.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** server, json, privileges, schema, migrations, document, locks, clock */
  name: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about it, for warn and fail. */
  fix?: string;
}

// --- statements -------------------------------------------------------------

interface ServerInfo {
  version: string;
  comment: string;
  database: string | null;
  user: string;
}

export async function queryServer(db: Queryable): Promise<ServerInfo> {
  const [rows] = await db.query('SELECT VERSION() AS version, @@version_comment AS comment, DATABASE() AS `database`, CURRENT_USER() AS user');
  const r = (rows as Array<{ version: string; comment: string | null; database: string | null; user: string }>)[0]!;
  return { version: String(r.version), comment: String(r.comment ?? ''), database: r.database, user: String(r.user) };
}

/** Whether the JSON functions locktable and its fast paths use exist and behave. */
export async function queryJsonFunctions(db: Queryable): Promise<boolean> {
  const [rows] = await db.query(`SELECT JSON_VALID('{"v":1}') AS valid, JSON_EXTRACT('{"v":1}', '$.v') AS v, JSON_CONTAINS_PATH('{"v":1}', 'one', '$.v') AS has`);
  const r = (rows as Array<{ valid: unknown; v: unknown; has: unknown }>)[0]!;
  return Number(r.valid) === 1 && String(r.v) === '1' && Number(r.has) === 1;
}

export async function queryGrants(db: Queryable): Promise<string[]> {
  const [rows] = await db.query('SHOW GRANTS FOR CURRENT_USER()');
  return (rows as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0]));
}

export interface Column {
  name: string;
  type: string;
  key: string;
}

/** The columns of `table` in the current database; empty when it does not exist. */
export async function queryColumns(db: Queryable, table: string): Promise<Column[]> {
  const [rows] = await db.query(
    'SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_KEY AS `key` FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [table],
  );
  return (rows as Array<{ name: string; type: string; key: string }>).map((r) => ({ name: String(r.name), type: String(r.type).toLowerCase(), key: String(r.key) }));
}

/** MariaDB's JSON column is LONGTEXT plus a JSON_VALID check: its clause, or undefined where there is none (MySQL, or no check). */
export async function queryJsonCheck(db: Queryable): Promise<string | undefined> {
  const [rows] = await db
    .query("SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'locks'")
    .catch((): [unknown, unknown] => [[], undefined]); // MySQL 5.7 has no such view (and a native JSON type)
  const r = (rows as Array<{ clause: string }>)[0];
  return r ? String(r.clause) : undefined;
}

export async function queryAppliedMigrations(db: Queryable): Promise<string[]> {
  const [rows] = await db.query('SELECT name FROM locktable_migrations ORDER BY name');
  return (rows as Array<{ name: string }>).map((r) => String(r.name));
}

// The privilege probes run statements that match no row: the server checks the
// privilege before it looks for rows, so they prove the privilege (whatever
// its source: a role, a wildcard grant) and change nothing.
export async function probeSelect(db: Queryable): Promise<void> {
  await db.query('SELECT version FROM locks WHERE FALSE');
}

export async function probeInsert(db: Queryable): Promise<void> {
  await db.query('INSERT INTO locks (id, version, dataJson) SELECT id, version, dataJson FROM locks WHERE FALSE');
}

export async function probeUpdate(db: Queryable): Promise<void> {
  await db.query('UPDATE locks SET version = version WHERE FALSE');
}

/** Database time in ms since the epoch, as the lock table reads it. */
export async function queryNow(db: Queryable): Promise<number> {
  const [rows] = await db.query(`SELECT ${DB_NOW_MS} AS now`);
  return Number((rows as Array<{ now: unknown }>)[0]!.now);
}

// --- judgements (pure) ------------------------------------------------------

export interface ServerVersion {
  flavor: 'MariaDB' | 'MySQL';
  major: number;
  minor: number;
  patch: number;
}

export function parseServerVersion(version: string): ServerVersion | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  return { flavor: /mariadb/i.test(version) ? 'MariaDB' : 'MySQL', major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/** JSON functions arrived in MariaDB 10.2.7 and MySQL 5.7.8. */
export function judgeServer(version: string): Check {
  const v = parseServerVersion(version);
  if (!v) return { name: 'server', status: 'warn', detail: `unrecognised version '${version}'`, fix: 'locktable is tested on MariaDB 10.11 and MySQL 8.0' };
  const min = v.flavor === 'MariaDB' ? [10, 2, 7] : [5, 7, 8];
  const cmp = v.major - min[0]! || v.minor - min[1]! || v.patch - min[2]!;
  const name = `${v.flavor} ${v.major}.${v.minor}.${v.patch}`;
  if (cmp < 0) return { name: 'server', status: 'fail', detail: `${name} has no JSON functions`, fix: `upgrade to ${v.flavor} ${min.join('.')} or later` };
  return { name: 'server', status: 'ok', detail: `${name} (${version})` };
}

/** Whether SHOW GRANTS lines give CREATE on every database or on `database`. Heuristic: roles and wildcards are not resolved. */
export function grantsAllowCreate(grants: readonly string[], database: string): boolean {
  const onDb = (line: string) => {
    const m = /\bON\s+(\S+)\s+TO\b/i.exec(line);
    if (!m) return false;
    const target = m[1]!.replace(/[`'"]/g, '');
    return target === '*.*' || target === `${database}.*`;
  };
  return grants.some((g) => /^GRANT\s+(ALL PRIVILEGES|.*\bCREATE\b)/i.test(g) && onDb(g));
}

export function judgeMigrations(applied: readonly string[], available: readonly string[]): Check {
  const done = new Set(applied);
  const pending = available.filter((f) => !done.has(f));
  const unknown = applied.filter((f) => !available.includes(f));
  if (pending.length) {
    return { name: 'migrations', status: 'fail', detail: `${pending.length} pending: ${pending.join(', ')}`, fix: 'run `locktable migrate` (or migrate(db) at server start-up)' };
  }
  if (unknown.length) {
    return {
      name: 'migrations',
      status: 'warn',
      detail: `applied by a newer locktable: ${unknown.join(', ')}`,
      fix: 'upgrade this copy of locktable to the version that applied them',
    };
  }
  return { name: 'migrations', status: 'ok', detail: `${applied.length} applied, none pending (${applied.join(', ')})` };
}

/** Expiry runs on the database clock alone, so an offset never breaks a lock: it only skews what humans read. */
export function judgeClock(offsetMs: number, rttMs: number): Check {
  const off = Math.round(offsetMs);
  const detail = `database clock minus this host's: ${off >= 0 ? '+' : ''}${off} ms (±${Math.ceil(rttMs / 2)} ms)`;
  if (Math.abs(offsetMs) - rttMs / 2 > 1000) {
    return {
      name: 'clock',
      status: 'warn',
      detail,
      fix: 'synchronise the clocks (chrony or systemd-timesyncd on both hosts); lock expiry uses only the database clock, but log timestamps on this host will disagree with lock ages',
    };
  }
  return { name: 'clock', status: 'ok', detail };
}

export function judgeSchema(columns: readonly Column[]): Check {
  if (!columns.length) {
    return { name: 'schema', status: 'fail', detail: 'the locks table is missing', fix: 'run `locktable migrate` (or migrate(db) at server start-up)' };
  }
  const by = new Map(columns.map((c) => [c.name, c]));
  const problems: string[] = [];
  const id = by.get('id');
  if (!id || !/char/.test(id.type) || id.key !== 'PRI') problems.push('id is not a VARCHAR primary key');
  if (!by.get('version') || !/int/.test(by.get('version')!.type)) problems.push('version is not an integer column');
  const data = by.get('dataJson');
  if (!data || !/json|text/.test(data.type)) problems.push('dataJson is not a JSON (or LONGTEXT) column');
  if (problems.length) {
    return {
      name: 'schema',
      status: 'fail',
      detail: `the locks table is not locktable's: ${problems.join('; ')}`,
      fix: 'another program owns a table called locks here: give locktable a database of its own',
    };
  }
  return { name: 'schema', status: 'ok', detail: `locks (${columns.map((c) => `${c.name} ${c.type}`).join(', ')})` };
}

// --- the whole diagnosis ----------------------------------------------------

export interface DoctorOptions {
  space: string;
  /** Default: the package's migrations. */
  migrationsDir?: string;
  /** Local clock, for tests. */
  clock?: () => number;
}

/** Runs every check it can; a check that cannot run says why instead of stopping the others. */
export async function diagnose(db: Queryable, options: DoctorOptions): Promise<Check[]> {
  const clock = options.clock ?? Date.now;
  const checks: Check[] = [];
  let server: ServerInfo;
  try {
    server = await queryServer(db);
  } catch (err) {
    return [{ name: 'connect', status: 'fail', detail: errorText(err), fix: 'check that the server runs and that --url / MYSQL_URL names a user, password and database it accepts' }];
  }
  checks.push(judgeServer(server.version));

  try {
    const works = await queryJsonFunctions(db);
    checks.push(
      works
        ? { name: 'json', status: 'ok', detail: 'JSON_VALID, JSON_EXTRACT and JSON_CONTAINS_PATH work' }
        : { name: 'json', status: 'fail', detail: 'the JSON functions return unexpected results', fix: 'use MariaDB 10.2.7+ or MySQL 5.7.8+' },
    );
  } catch (err) {
    checks.push({ name: 'json', status: 'fail', detail: `the JSON functions fail: ${errorText(err)}`, fix: 'use MariaDB 10.2.7+ or MySQL 5.7.8+' });
  }

  const columns = await queryColumns(db, 'locks').catch(() => [] as Column[]);
  const schema = judgeSchema(columns);
  if (schema.status === 'ok' && by(columns, 'dataJson')?.type !== 'json') {
    const clause = await queryJsonCheck(db);
    schema.detail += clause && /json_valid/i.test(clause) ? '; dataJson is checked by JSON_VALID' : '; dataJson has no JSON_VALID check';
    if (!clause) {
      schema.status = 'warn';
      schema.fix = 'the column accepts text that is not JSON; recreate it as JSON (see migrations/001-create-locks.sql)';
    }
  }
  checks.push(await privileges(db, server, columns.length > 0));
  checks.push(schema);

  let available: string[] = [];
  try {
    available = listMigrations(options.migrationsDir ?? defaultMigrationsDir());
  } catch (err) {
    checks.push({ name: 'migrations', status: 'warn', detail: `cannot read this package's migrations: ${errorText(err)}` });
  }
  try {
    checks.push(judgeMigrations(await queryAppliedMigrations(db), available));
  } catch (err) {
    const missing = (err as { errno?: number }).errno === 1146;
    checks.push({
      name: 'migrations',
      status: 'fail',
      detail: missing ? 'no migration recorded (locktable_migrations is missing)' : `cannot read locktable_migrations: ${errorText(err)}`,
      fix: 'run `locktable migrate` (or migrate(db) at server start-up)',
    });
  }

  if (columns.length) checks.push(...(await documentChecks(db, options.space)));

  try {
    const t0 = clock();
    const now = await queryNow(db);
    const t1 = clock();
    checks.push(judgeClock(now - (t0 + t1) / 2, t1 - t0));
  } catch (err) {
    checks.push({ name: 'clock', status: 'warn', detail: `cannot read the database clock: ${errorText(err)}` });
  }
  return checks;
}

async function privileges(db: Queryable, server: ServerInfo, tableExists: boolean): Promise<Check> {
  const grants = await queryGrants(db).catch(() => [] as string[]);
  const missing: string[] = [];
  if (tableExists) {
    for (const [what, probe] of [['SELECT', probeSelect], ['INSERT', probeInsert], ['UPDATE', probeUpdate]] as const) {
      try {
        await probe(db);
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        if (errno === 1142 || errno === 1143 || errno === 1044) missing.push(what);
        else missing.push(`${what} (${errorText(err)})`);
      }
    }
  }
  const user = server.user;
  const grantText = grants.length ? `; grants: ${grants.map((g) => g.replace(/ IDENTIFIED BY .*$/i, '')).join(' | ')}` : '';
  if (missing.length) {
    return {
      name: 'privileges',
      status: 'fail',
      detail: `${user} lacks ${missing.join(', ')} on locks${grantText}`,
      fix: `GRANT SELECT, INSERT, UPDATE ON \`${server.database}\`.locks TO ${quoteUser(user)}`,
    };
  }
  if (!grantsAllowCreate(grants, server.database ?? '')) {
    return {
      name: 'privileges',
      status: 'warn',
      detail: `${user} can${tableExists ? '' : ' perhaps'} use the locks table but no CREATE grant was seen${grantText}`,
      fix: `migrations need CREATE: run them as a user that has it, or GRANT CREATE ON \`${server.database}\`.* TO ${quoteUser(user)}`,
    };
  }
  return { name: 'privileges', status: 'ok', detail: `${user}: ${tableExists ? 'SELECT, INSERT, UPDATE on locks work; ' : ''}CREATE granted${grantText}` };
}

async function documentChecks(db: Queryable, space: string): Promise<Check[]> {
  let snap;
  try {
    snap = await readSpace(db, space);
  } catch (err) {
    return [{ name: 'document', status: 'fail', detail: `cannot read space '${space}': ${errorText(err)}` }];
  }
  if (!snap) return [{ name: 'document', status: 'ok', detail: `space '${space}' has no row yet: it is created on first use` }];
  let doc;
  try {
    doc = parseDocument(space, snap.raw);
  } catch (err) {
    const e = err as LockError & { issues?: string[] };
    if (e.code === 'EFORMAT') return [{ name: 'document', status: 'fail', detail: e.message, fix: 'upgrade locktable on this host' }];
    const preview = snap.raw.length > 300 ? `${snap.raw.slice(0, 300)}… (${snap.raw.length} chars)` : snap.raw;
    return [
      {
        name: 'document',
        status: 'fail',
        detail: `space '${space}' (version ${snap.version}) is corrupt: ${(e.issues ?? [e.message]).slice(0, 5).join('; ')}; stored text: ${preview}`,
        fix:
          'every operation on this space fails with ECORRUPT and nothing overwrites the text. Read it in full ' +
          `(SELECT CAST(dataJson AS CHAR) FROM locks WHERE id = '${space}'), find who wrote it, then fix it by hand or ` +
          'replace it with an empty document through LockTable.repair(raw); every lock in it is then lost',
      },
    ];
  }
  const names = Object.keys(doc.l);
  const checks: Check[] = [{ name: 'document', status: 'ok', detail: `space '${space}' is valid: version ${snap.version}, ${names.length} lock${names.length === 1 ? '' : 's'} held` }];
  const here = localView();
  const dead: string[] = [];
  const unknown: string[] = [];
  for (const [name, e] of Object.entries(doc.l)) {
    const liveness = judgeEntry(e, snap.now, here);
    if (liveness === 'dead') dead.push(name);
    else if (liveness === 'unknown') unknown.push(`${name} (${e.o.h})`);
  }
  if (dead.length) {
    checks.push({ name: 'locks', status: 'warn', detail: `${dead.length} held by dead owners: ${dead.join(', ')}`, fix: 'run `locktable reap` (a platform server does it at start-up with reapDead())' });
  } else {
    checks.push({
      name: 'locks',
      status: 'ok',
      detail: `no lock of a dead owner${unknown.length ? `; ${unknown.length} of owners not judged from here: ${unknown.join(', ')}` : ''}`,
    });
  }
  return checks;
}

function by(columns: readonly Column[], name: string): Column | undefined {
  return columns.find((c) => c.name === name);
}

function quoteUser(user: string): string {
  const at = user.lastIndexOf('@');
  return at < 0 ? `'${user}'` : `'${user.slice(0, at)}'@'${user.slice(at + 1)}'`;
}

function errorText(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  const message = e?.message || e?.errors?.[0]?.message || String(err);
  return `${message.replace(/\s*\n\s*/g, ' ')}${e?.code && !message.includes(e.code) ? ` (${e.code})` : ''}`;
}
