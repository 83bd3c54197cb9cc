// Every SQL statement locktable runs against the lock table, one function
// each, taking its connection and the table (validated and quoted by
// lib/db.ts quoteTable, the one identifier that reaches SQL text) as
// arguments. Names never reach SQL text: they travel inside the JSON document
// or as JSON paths, as bound values.
//
// Every write also stores `dataCrc = CRC32(dataJson)` (migration 002). MySQL
// and MariaDB evaluate single-table UPDATE assignments left to right, so the
// checksum is of the text just written (test/integration/server-facts pins it).
// The one-statement writes test `dataCrc = dataCrcNow`: dataCrcNow (migration
// 003) is a STORED generated CRC32(dataJson) the server keeps on every write,
// so the test is the same as `dataCrc = CRC32(dataJson)` without converting
// the old document to text for it (costly on MySQL's binary JSON).
import { rowsWith, type Conn } from './db.js';
import { FORMAT } from './document.js';

/**
 * Database time when the statement started, in ms since the epoch (UTC).
 * UTC_TIMESTAMP comes from the server's clock without the session's time
 * zone, and the difference of two zone-less DATETIMEs is plain arithmetic, so
 * the value is exact whatever `time_zone` the session, the server or the host's
 * pool has, across daylight-saving changes. (`UNIX_TIMESTAMP(NOW(3))` is not:
 * it converts local time back, and in the hour that repeats when clocks go
 * back it maps the second 02:30 onto the first, an hour early.)
 * test/integration/server-facts pins both.
 */
export const DB_NOW_MS = "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000 AS UNSIGNED)";

/**
 * Database time when the row is evaluated (after its lock is granted), in ms
 * since the epoch: the statement's start (DB_NOW_MS) plus the time since
 * (SYSDATE − NOW: there is no UTC SYSDATE). That difference is of two local
 * times, so it is off by the change of offset if the zone's offset changed
 * between the two (a daylight-saving change during the statement).
 * SYSDATE_SAFE is false then for a change backwards; a change forwards makes
 * the value an offset change (≥ 15 min) late. The one-statement guard requires
 * both SYSDATE_SAFE and a value within its tolerance, so such a statement is
 * refused, never applied on a wrong time.
 */
export const SYSDATE_MS = "((TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) + TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6))) DIV 1000)";
export const SYSDATE_SAFE = 'SYSDATE(6) >= NOW(6)';

export interface Snapshot {
  version: number;
  /** The document's exact text (CAST, so mysql2 does not parse it). */
  raw: string;
  /** Database time, ms since the epoch: the one clock expiry uses. */
  now: number;
}

/** Reads the row of a space with the database's clock; undefined when the row does not exist. */
export async function readSpace(db: Conn, table: string, space: string): Promise<Snapshot | undefined> {
  const [rows] = await db.query(
    `SELECT version, CAST(dataJson AS CHAR) AS raw, ${DB_NOW_MS} AS now FROM ${table} WHERE id = ?`,
    [space],
  );
  return toSnapshot(rows);
}

function toSnapshot(rows: unknown): Snapshot | undefined {
  const row = rowsWith<{ version: unknown; raw: unknown; now: unknown }>(rows, ['version', 'raw', 'now'])[0];
  if (!row) return undefined;
  return { version: Number(row.version), raw: String(row.raw), now: Number(row.now) };
}

/** The database's time alone (DB_NOW_MS): anchors the clock estimate of a table that has not read yet. */
export async function readNow(db: Conn): Promise<{ now: number }> {
  const [rows] = await db.query(`SELECT ${DB_NOW_MS} AS now`);
  return { now: Number((rows as Array<{ now: unknown }>)[0]!.now) };
}

/** Creates the row of a space if it is missing. Returns whether it created it. */
export async function createSpace(db: Conn, table: string, space: string, raw: string): Promise<boolean> {
  // CRC32(dataJson) refers to the value just given in this row: the stored text.
  const [res] = await db.query(`INSERT IGNORE INTO ${table} (id, version, dataJson, dataCrc) VALUES (?, 0, ?, CRC32(dataJson))`, [space, raw]);
  return (res as { affectedRows: number }).affectedRows === 1;
}

/** Compare-and-swap: writes `raw` as version `expected + 1` only if the row is still at `expected`. */
export async function writeIfVersion(db: Conn, table: string, space: string, expected: number, raw: string): Promise<boolean> {
  const [res] = await db.query(`UPDATE ${table} SET version = ?, dataJson = ?, dataCrc = CRC32(dataJson) WHERE id = ? AND version = ?`, [
    expected + 1,
    raw,
    space,
    expected,
  ]);
  return (res as { affectedRows: number }).affectedRows === 1;
}

/** What one fastWrite statement does; built by lib/batch.ts planFast. */
export interface FastPlan {
  /** Version increment: the number of acquisitions granted (each gets its own token), at least 1. */
  bump: number;
  /** Paths of entries to remove (releases). */
  removes: string[];
  /** `{"l":{name:{"n":nonce}}}`: every released entry must still carry its nonce. */
  holds?: string;
  /** The acquiring owner's record, `$.o."key"` and its JSON text. */
  owner?: { path: string; json: string };
  /**
   * Entries to add, at paths (`$.l."name"`) of names that must be nowhere in
   * the document yet (not in `l`, `s` nor `q`); `f` in `json` is replaced by
   * `version - back` (the new version minus back). Entries are in format 4,
   * so a statement that adds any also sets `v` to 4. With `waiter`, the name
   * is taken from the front of its line instead (lib/batch.ts AcquireMember):
   * it must be held by no one, that intent must be first in its line, and
   * the intent goes (with the line, and `q`, when they are left empty).
   */
  sets: Array<{ path: string; name: string; json: string; back: number; waiter?: string }>;
  /** Names a conflict rule sets against those acquired: none of them may be held (`$.l`), held shared (`$.s`) or waited for (`$.q`). */
  guards: string[];
  /**
   * The database time as estimated here (written into new entries): the
   * statement runs only if it is within `toleranceMs` of the server's clock
   * when the row is evaluated, which also bounds how late a statement whose
   * reply was lost can still apply.
   */
  at: { ms: number; toleranceMs: number };
}

/**
 * The one-statement acquire and release: applies `plan` only if the document is
 * still the one locktable last wrote (checksum), no acquired name is present,
 * every released entry still carries its nonce, and the time estimate holds.
 * Returns the new version (the reply's insertId, set by LAST_INSERT_ID), or
 * undefined when a guard failed and nothing was written.
 */
export async function fastWrite(db: Conn, table: string, space: string, plan: FastPlan): Promise<number | undefined> {
  const { sql, values, prepared } = fastStatement(table, space, plan);
  const [res] = prepared && db.execute ? await db.execute(sql, values) : await db.query(sql, values);
  const r = res as { affectedRows: number; insertId: number };
  return r.affectedRows === 1 ? Number(r.insertId) : undefined;
}

/** The statement fastWrite sends for `plan`, and whether it goes as a prepared statement. Pure. */
export function fastStatement(table: string, space: string, plan: FastPlan): { sql: string; values: Array<string | number>; prepared: boolean } {
  const values: Array<string | number> = [plan.bump];
  let takes = 0;
  for (const path of plan.removes) values.push(path);
  for (const s of plan.sets) {
    if (s.waiter === undefined) continue;
    takes++;
    const line = linePath(s.name);
    values.push(line, `${line}[0]`, line);
  }
  if (plan.owner) values.push(plan.owner.path, plan.owner.json);
  for (const s of plan.sets) values.push(s.path, s.json, s.back);
  values.push(space);
  if (plan.sets.length) {
    // A name taken from the front of its line is in `$.q` (its taker's
    // intent, checked below): held by no one is enough.
    for (const s of plan.sets) {
      if (s.waiter === undefined) values.push(anyMapPath(s.name));
      else values.push(s.path, `$.s."${s.name}"`);
    }
    for (const g of plan.guards) values.push(anyMapPath(g));
    for (const s of plan.sets) if (s.waiter !== undefined) values.push(`${linePath(s.name)}[0].n`, s.waiter);
  }
  if (plan.holds !== undefined) values.push(plan.holds);
  values.push(plan.at.ms, plan.at.toleranceMs);
  // A take is prepared alone (2 more shapes: with and without a guard); combined, as text.
  const entries = plan.removes.length + plan.sets.length;
  const prepared = entries <= (takes ? 1 : PREPARED_MAX_ENTRIES) && plan.guards.length <= PREPARED_MAX_GUARDS;
  const shape: Shape = { removes: plan.removes.length, takes, owner: plan.owner !== undefined, sets: plan.sets.length, guards: plan.sets.length ? plan.guards.length : 0, holds: plan.holds !== undefined };
  return { sql: prepared ? preparedSql(table, shape) : fastSql(table, shape), values, prepared };
}

/** What a one-statement write's text depends on: how many of each kind of value it binds. */
interface Shape {
  removes: number;
  /** Sets that take from the front of a line (at most one). */
  takes: number;
  owner: boolean;
  sets: number;
  guards: number;
  holds: boolean;
}

// The texts of the prepared shapes (a few per table, PREPARED_MAX_ENTRIES),
// made once: the text of every statement is otherwise built anew each time.
const preparedTexts = new Map<string, Map<number, string>>();

function preparedSql(table: string, shape: Shape): string {
  let texts = preparedTexts.get(table);
  if (!texts) preparedTexts.set(table, (texts = new Map()));
  const key = ((((shape.removes * 64 + shape.sets) * 64 + shape.guards) * 2 + (shape.owner ? 1 : 0)) * 2 + (shape.holds ? 1 : 0)) * 2 + shape.takes;
  let sql = texts.get(key);
  if (sql === undefined) texts.set(key, (sql = fastSql(table, shape)));
  return sql;
}

/** The text of a one-statement write of `shape`, its values bound in the order fastStatement lists them. Pure. */
function fastSql(table: string, shape: Shape): string {
  let doc = 'dataJson';
  if (shape.removes || shape.takes) {
    // A take removes its intent, first in the line: the line when it was the
    // only one there, and `q` when that was its only line (a document holds
    // no empty line, lib/document.ts). The lengths are of the document
    // before the statement: hence one take per statement.
    const take = " CASE WHEN JSON_LENGTH(dataJson, ?) > 1 THEN ? WHEN JSON_LENGTH(dataJson, '$.q') > 1 THEN ? ELSE '$.q' END";
    doc = `JSON_REMOVE(${doc}${', ?'.repeat(shape.removes)}${`,${take}`.repeat(shape.takes)})`;
  }
  if (shape.sets || shape.owner) {
    // The entries are in format 4's short form: the document says so (an older
    // locktable then refuses it with EFORMAT instead of misreading it). `v` is
    // its first key, so this costs next to nothing.
    const args: string[] = [`'$.v', ${FORMAT}`];
    if (shape.owner) args.push("?, JSON_EXTRACT(?, '$')");
    for (let i = 0; i < shape.sets; i++) args.push("?, JSON_SET(?, '$.f', version - ?)");
    doc = `JSON_SET(${doc}, ${args.join(', ')})`;
  }
  let where = 'id = ? AND dataCrc = dataCrcNow';
  if (shape.sets) {
    // The name is in no map of the document: not held (`$.l`), nor by several
    // holders (`$.s`), nor anyone in line for it (`$.q`); and the same for
    // every name a conflict rule sets against them (guards). One wildcard
    // path per name: MariaDB walks the document once per call whatever the
    // number of paths, and compares every step with every path. It also
    // matches an owner record whose key is the name (`$.o`): a refusal, which
    // only sends the acquisition to the read-decide-write path.
    where += ` AND NOT JSON_CONTAINS_PATH(dataJson, 'one'${', ?'.repeat(shape.sets + shape.takes + shape.guards)})`;
    where += ' AND JSON_UNQUOTE(JSON_EXTRACT(dataJson, ?)) = ?'.repeat(shape.takes);
  }
  if (shape.holds) where += ' AND JSON_CONTAINS(dataJson, ?)';
  // SYSDATE, not NOW: NOW is fixed when the statement starts, SYSDATE is read
  // when the row is evaluated, after its lock was granted. A statement stuck
  // behind the row lock past the tolerance therefore no longer applies
  // (server-facts pins this). In UTC ms, exact across time-zone changes (SYSDATE_MS).
  where += ` AND ${SYSDATE_SAFE} AND ABS(? - ${SYSDATE_MS}) <= ?`;
  return `UPDATE ${table} SET version = LAST_INSERT_ID(version + ?), dataJson = ${doc}, dataCrc = CRC32(dataJson) WHERE ${where}`;
}

/** `$.q."name"`: the line of a name. Names are validated (no quote, no backslash). */
function linePath(name: string): string {
  return `$.q."${name}"`;
}

/** `$.*."name"`: the name as a key of any top-level map. Names are validated (no quote, no backslash). */
export function anyMapPath(name: string): string {
  return `$.*."${name}"`;
}

/**
 * At most this many entries set or removed for a statement to go as a
 * server-side prepared statement (where the pool has `execute`). The server
 * then parses it once per connection, and the client sends its values without
 * escaping them into text: one caller's acquire+release cycle measured ~9%
 * faster in a paired A/B against the same statements as text. The bound keeps
 * the number of distinct prepared statements at 5 per connection (a unit test
 * counts them): they count against the server-wide max_prepared_stmt_count,
 * which the host's other users share. Larger batches are rarer and go as text.
 */
export const PREPARED_MAX_ENTRIES = 2;
/**
 * At most this many conflict-rule guards for a statement to be prepared: one
 * covers the platform's rule (`box_update` against every app task), and adds
 * at most 3 statement shapes to the 5 above (8 per connection).
 */
export const PREPARED_MAX_GUARDS = 1;

/**
 * A locking read (the row's lock, for the length of this one statement):
 * settles a one-statement write whose reply was lost. A statement holding or
 * queued for the row lock ahead of it has finished by the time this answers;
 * `now` is the time this read started (DB_NOW_MS), a lower bound of the time
 * the row was read: a write that evaluates its row after this read evaluates
 * it later still, so once `now` is past a write's tolerance, that write can no
 * longer apply.
 */
export async function readSpaceLocked(db: Conn, table: string, space: string): Promise<Snapshot | undefined> {
  const [rows] = await db.query(
    `SELECT version, CAST(dataJson AS CHAR) AS raw, ${DB_NOW_MS} AS now FROM ${table} WHERE id = ? FOR UPDATE`,
    [space],
  );
  return toSnapshot(rows);
}

/**
 * The cheap poll of waiters: the version, the database's clock (which keeps
 * lib/clock.ts anchored) and, only if the version moved since `since`, what
 * the document holds at each of `paths` (lib/watch.ts watchPaths: nonces and
 * waiter ids): `seen` has one value per path (null where nothing is there),
 * and is null when not read.
 */
export async function readVersion(
  db: Conn,
  table: string,
  space: string,
  since: number,
  paths: readonly string[],
): Promise<{ version: number; now: number; seen: unknown[] | null } | undefined> {
  // One text on every server (MySQL's JSON type would come back parsed, MariaDB's as text): a JSON array, a value per path.
  const each = paths.map(() => "COALESCE(CAST(JSON_EXTRACT(dataJson, ?) AS CHAR), 'null')").join(", ',', ");
  const [rows] = await db.query(
    `SELECT version, ${DB_NOW_MS} AS now, IF(version = ?, NULL, CONCAT('[', ${paths.length ? each : "''"}, ']')) AS seen FROM ${table} WHERE id = ?`,
    [since, ...paths, space],
  );
  const row = rowsWith<{ version: unknown; now: unknown; seen: unknown }>(rows, ['version', 'now', 'seen'])[0];
  if (!row) return undefined;
  const seen = row.seen === null ? null : (JSON.parse(String(row.seen)) as unknown[]);
  return { version: Number(row.version), now: Number(row.now), seen };
}

/**
 * Drops an owner record no entry, shared holder or waiter refers to any more (the one-statement release
 * leaves it behind). Does not move the version: the locks are unchanged, and a
 * full write based on the previous text drops the record all the same.
 * Returns whether it removed it.
 */
export async function dropOwnerRecord(db: Conn, table: string, space: string, path: string, key: string): Promise<boolean> {
  const [res] = await db.query(
    `UPDATE ${table} SET dataJson = JSON_REMOVE(dataJson, ?), dataCrc = CRC32(dataJson)
     WHERE id = ? AND dataCrc = dataCrcNow AND JSON_CONTAINS_PATH(dataJson, 'one', ?) AND JSON_SEARCH(dataJson, 'one', ?, NULL, '$.l.*.o', '$.s.*.h[*].o', '$.q.*[*].o') IS NULL`,
    [path, space, path, key],
  );
  return (res as { affectedRows: number }).affectedRows === 1;
}
