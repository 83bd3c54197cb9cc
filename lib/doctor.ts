// `locktable doctor`: what an operator needs to know about a deployment, and
// what to do about each problem. The diagnostic statements live here, one
// function each; the judgements are pure functions, unit-tested without a server.
import { DEFAULT_TABLE, MIGRATIONS_TABLE, quoteTable, type Conn } from './db.js';
import { parseDocument } from './document.js';
import { LockError } from './errors.js';
import { judgeEntry } from './liveness.js';
import { defaultMigrationsDir, inspectTable, judgeOwnership, listMigrations, type Column, type Ownership, type TableState } from './migrate.js';
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

export async function queryServer(db: Conn): Promise<ServerInfo> {
  const [rows] = await db.query('SELECT VERSION() AS version, @@version_comment AS comment, DATABASE() AS `database`, CURRENT_USER() AS user');
  const r = (rows as Array<{ version: string; comment: string | null; database: string | null; user: string }>)[0]!;
  return { version: String(r.version), comment: String(r.comment ?? ''), database: r.database, user: String(r.user) };
}

/** Whether the JSON functions locktable and its fast paths use exist and behave. */
export async function queryJsonFunctions(db: Conn): Promise<boolean> {
  const [rows] = await db.query(`SELECT JSON_VALID('{"v":1}') AS valid, JSON_EXTRACT('{"v":1}', '$.v') AS v, JSON_CONTAINS_PATH('{"v":1}', 'one', '$.v') AS has`);
  const r = (rows as Array<{ valid: unknown; v: unknown; has: unknown }>)[0]!;
  return Number(r.valid) === 1 && String(r.v) === '1' && Number(r.has) === 1;
}

export async function queryGrants(db: Conn): Promise<string[]> {
  const [rows] = await db.query('SHOW GRANTS FOR CURRENT_USER()');
  return (rows as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0]));
}

/** MariaDB's JSON column is LONGTEXT plus a JSON_VALID check: its clause, or undefined where there is none (MySQL, or no check). */
export async function queryJsonCheck(db: Conn, table: string): Promise<string | undefined> {
  const [rows] = await db
    .query('SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table])
    .catch((): [unknown, unknown] => [[], undefined]); // MySQL 5.7 has no such view (and a native JSON type)
  const r = (rows as Array<{ clause: string }>)[0];
  return r ? String(r.clause) : undefined;
}

// The privilege probes run statements that match no row: the server checks the
// privilege before it looks for rows, so they prove the privilege (whatever
// its source: a role, a wildcard grant) and change nothing.
// `table` is quoted (lib/db.ts quoteTable).
export async function probeSelect(db: Conn, table: string): Promise<void> {
  await db.query(`SELECT version FROM ${table} WHERE FALSE`);
}

export async function probeInsert(db: Conn, table: string): Promise<void> {
  await db.query(`INSERT INTO ${table} (id, version, dataJson) SELECT id, version, dataJson FROM ${table} WHERE FALSE`);
}

export async function probeUpdate(db: Conn, table: string): Promise<void> {
  await db.query(`UPDATE ${table} SET version = version WHERE FALSE`);
}

/** Database time in ms since the epoch, as the lock table reads it. */
export async function queryNow(db: Conn): Promise<number> {
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

/**
 * The lock table's shape and whose it is. `ownership` comes from
 * migrate.ts judgeOwnership: a table locktable did not create fails here, with
 * advice that changes nothing of it. Pure.
 */
export function judgeSchema(columns: readonly Column[], ownership: Ownership = { kind: 'ours' }, table = DEFAULT_TABLE): Check {
  if (ownership.kind === 'foreign' || ownership.kind === 'dropped') {
    const fix =
      ownership.kind === 'dropped'
        ? ownership.error.message.replace(/^.*?: it was dropped\. /, '')
        : 'leave that table alone: locktable never alters or adopts it. Give locktable a table of its own: ' +
          '--table <name> for the CLI (then `locktable migrate --table <name>`), { table } for migrate() and createLockTable()';
    return { name: 'schema', status: 'fail', detail: ownership.error.message.replace(/ locktable never .*$/s, '').replace(/\. To create it again.*$/s, ''), fix };
  }
  if (!columns.length) {
    return { name: 'schema', status: 'fail', detail: `the ${table} table is missing`, fix: `run \`locktable migrate${table === DEFAULT_TABLE ? '' : ` --table ${table}`}\` (or migrate(db) at server start-up)` };
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
      detail: `the ${table} table is not locktable's: ${problems.join('; ')}`,
      fix: `another program owns a table called ${table} here: leave it alone, and give locktable a table of its own (--table, or the table option)`,
    };
  }
  return { name: 'schema', status: 'ok', detail: `${table} (${columns.map((c) => `${c.name} ${c.type}`).join(', ')})` };
}

// --- the whole diagnosis ----------------------------------------------------

export interface DoctorOptions {
  space: string;
  /** The lock table. Default 'locks'. */
  table?: string;
  /** Default: the package's migrations. */
  migrationsDir?: string;
  /** Local clock, for tests. */
  clock?: () => number;
}

/** Runs every check it can; a check that cannot run says why instead of stopping the others. */
export async function diagnose(db: Conn, options: DoctorOptions): Promise<Check[]> {
  const clock = options.clock ?? Date.now;
  const table = options.table ?? DEFAULT_TABLE;
  const quoted = quoteTable(table);
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

  let available: string[] = [];
  let listError: unknown;
  try {
    available = listMigrations(options.migrationsDir ?? defaultMigrationsDir());
  } catch (err) {
    listError = err;
  }
  let state: TableState | undefined;
  let stateError: unknown;
  try {
    state = await inspectTable(db, table);
  } catch (err) {
    stateError = err;
  }
  const ownership: Ownership = state ? judgeOwnership(state, available[0] ?? '', server.database ? `database ${server.database}` : undefined) : { kind: 'ours' };
  const columns = state?.columns ?? [];
  const ours = ownership.kind === 'ours' || ownership.kind === 'missing';
  const schema = judgeSchema(columns, ownership, table);
  if (schema.status === 'ok' && by(columns, 'dataJson')?.type !== 'json') {
    const clause = await queryJsonCheck(db, table);
    schema.detail += clause && /json_valid/i.test(clause) ? '; dataJson is checked by JSON_VALID' : '; dataJson has no JSON_VALID check';
    if (!clause) {
      schema.status = 'warn';
      schema.fix = 'the column accepts text that is not JSON; recreate it as JSON (see migrations/001-create-locks.sql)';
    }
  }
  const pending = !state || available.some((f) => !state!.applied.includes(f));
  checks.push(ours ? await privileges(db, server, table, quoted, columns.length > 0, pending) : { name: 'privileges', status: 'ok', detail: `not checked on ${table}: it is not locktable's` });
  checks.push(schema);

  if (listError) checks.push({ name: 'migrations', status: 'warn', detail: `cannot read this package's migrations: ${errorText(listError)}` });
  const migrate = `run \`locktable migrate${table === DEFAULT_TABLE ? '' : ` --table ${table}`}\` (or migrate(db) at server start-up)`;
  if (stateError) {
    checks.push({ name: 'migrations', status: 'fail', detail: `cannot read ${MIGRATIONS_TABLE}: ${errorText(stateError)}`, fix: `GRANT SELECT ON \`${server.database}\`.${MIGRATIONS_TABLE} TO ${quoteUser(server.user)}` });
  } else if (!ours) {
    checks.push({ name: 'migrations', status: 'fail', detail: `none recorded for ${table}, and migrate() refuses to adopt a table it did not create`, fix: 'see schema' });
  } else if (state && !state.recordColumns.length) {
    checks.push({ name: 'migrations', status: 'fail', detail: `no migration recorded (${MIGRATIONS_TABLE} is missing)`, fix: migrate });
  } else if (state) {
    const judged = judgeMigrations(state.applied, available);
    if (judged.status === 'fail') judged.fix = migrate;
    if (state.started.length) judged.detail += `; begun and not finished: ${state.started.join(', ')} (migrate() finishes them)`;
    checks.push(judged);
  }

  // Another program's table: its rows are not lock documents, and no advice about them (repair()) is safe.
  if (columns.length && ours) checks.push(...(await documentChecks(db, quoted, options.space)));

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

async function privileges(db: Conn, server: ServerInfo, table: string, quoted: string, tableExists: boolean, pending: boolean): Promise<Check> {
  const grants = await queryGrants(db).catch(() => [] as string[]);
  const missing: string[] = [];
  const failed: string[] = [];
  if (tableExists) {
    for (const [what, probe] of [['SELECT', probeSelect], ['INSERT', probeInsert], ['UPDATE', probeUpdate]] as const) {
      try {
        await probe(db, quoted);
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        if (errno === 1142 || errno === 1143 || errno === 1044) missing.push(what);
        else failed.push(`${what} (${errorText(err)})`);
      }
    }
  }
  const user = server.user;
  const grantText = grants.length ? `; grants: ${grants.map((g) => g.replace(/ IDENTIFIED BY .*$/i, '')).join(' | ')}` : '';
  if (missing.length || failed.length) {
    return {
      name: 'privileges',
      status: 'fail',
      detail: `${user} ${[missing.length ? `lacks ${missing.join(', ')} on ${table}` : '', failed.length ? `cannot run ${failed.join(', ')}` : ''].filter(Boolean).join('; ')}${grantText}`,
      // A GRANT only helps where a privilege is missing; a statement that fails otherwise is a schema problem (see schema).
      fix: missing.length ? `GRANT SELECT, INSERT, UPDATE ON \`${server.database}\`.${quoted} TO ${quoteUser(user)}` : 'see schema',
    };
  }
  if (pending && !grantsAllowCreate(grants, server.database ?? '')) {
    return {
      name: 'privileges',
      status: 'warn',
      detail: `${user} can${tableExists ? '' : ' perhaps'} use the ${table} table, migrations are pending, and no CREATE grant was seen${grantText}`,
      fix: `run the migrations as a user that has the privileges docs/shared-database.md lists, or GRANT CREATE, ALTER ON \`${server.database}\`.* TO ${quoteUser(user)}`,
    };
  }
  return { name: 'privileges', status: 'ok', detail: `${user}: ${tableExists ? `SELECT, INSERT, UPDATE on ${table} work` : `${table} not created yet`}${pending ? '; CREATE granted' : ''}${grantText}` };
}

async function documentChecks(db: Conn, table: string, space: string): Promise<Check[]> {
  let snap;
  try {
    snap = await readSpace(db, table, space);
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
          `(SELECT CAST(dataJson AS CHAR) FROM ${table} WHERE id = '${space}'), find who wrote it, then fix it by hand or ` +
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
